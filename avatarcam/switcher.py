"""Switching avatars mid-call: the next portrait goes through the preparation chain on a background thread while
the current one keeps playing, and is swapped in whole once ready (packets from then on carry it)."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from avatarcam.avatar import AvatarError, AvatarPreparation
from avatarcam.stages import Action
from avatarcam.types import Avatar


class AvatarSwitcher:
    def __init__(self, avatar: Avatar, paths: list[Path], prepare: AvatarPreparation) -> None:
        self.avatar = avatar
        self.paths = paths
        self.prepare = prepare
        self._index = next((i for i, p in enumerate(paths) if str(p) == avatar.source), 0)
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avatar-loader")
        self._pending: Future[Avatar] | None = None
        self._pending_name = ""

    @property
    def status(self) -> str:
        return f"loading {self._pending_name}…" if self._pending is not None else ""

    @property
    def actions(self) -> Mapping[str, Action]:
        return {"next_avatar": lambda: self.switch(1), "previous_avatar": lambda: self.switch(-1)}

    def switch(self, step: int) -> str | None:
        if not self.paths:
            return "no avatar folder: set avatars_dir to switch avatars"
        if self._pending is not None:
            return None  # one load at a time; the current avatar keeps playing meanwhile
        self._index = (self._index + step) % len(self.paths)
        path = self.paths[self._index]
        self._pending, self._pending_name = self._loader.submit(self.prepare, path), path.name
        return None  # the status says "loading …" until it is done

    def poll(self) -> str | None:
        """Swaps in a finished load; returns what to tell the user (None while nothing finished)."""
        if self._pending is None or not self._pending.done():
            return None
        future, self._pending = self._pending, None
        try:
            self.avatar = future.result()
        except AvatarError as exc:
            return f"avatar skipped: {exc}"
        return f"avatar: {self.avatar.name}"

    def close(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)
