"""Switching avatars mid-call, and editing the one on air: the next portrait (or the current one with its
attribute edits) goes through the preparation chain on a background thread while the current avatar keeps
playing, and is swapped in whole once ready (packets from then on carry it). Edits are a set that persists
across switches; with none active the unedited avatar, kept aside, comes back exactly. A new identity (StyleGAN,
a random seed) is written as a portrait under the user's data folder and switched to the same way; keeping it
copies that portrait into the avatars folder."""

from __future__ import annotations

import dataclasses
import secrets
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

from avatarcam.avatar import AvatarError, AvatarPreparation, save_image
from avatarcam.edits.editor import AttributeEditor, EditError, portrait_edit
from avatarcam.identities.generator import MAX_SEED, IdentityError, IdentityGenerator, as_portrait
from avatarcam.runtime.paths import data_dir
from avatarcam.runtime.weights import WeightsError
from avatarcam.stages import Action
from avatarcam.types import Avatar

Loaded = tuple[Avatar, Avatar, dict[str, float]]  # a finished load: the avatar on air, it without edits, the edits
T = TypeVar("T")


def made(current: T | None, make: Callable[[], T] | None, missing: str) -> T:
    """`current`, or what `make` makes on first use; a WeightsError saying `missing` when nothing can make it."""
    if current is not None:
        return current
    if make is None:
        raise WeightsError(missing)
    return make()


def with_edits(
    neutral: Avatar, size: int, editor: AttributeEditor, edits: dict[str, float], edit_portrait: bool
) -> Avatar:
    """`neutral` as the edit hotkeys leave it with `edits` on: its portrait edited and prepared again (for an
    animator that draws the portrait), or the edits only recorded (the face swap edits every frame). An
    attribute the editor's weights were not trained on is refused either way."""
    editor.check(edits)
    if not edit_portrait:
        return dataclasses.replace(neutral, edits=edits)
    edited = AvatarPreparation(size, [portrait_edit(editor, edits)])(neutral.source)
    edited.edits = edits
    return edited


class AvatarSwitcher:
    def __init__(
        self,
        avatar: Avatar,
        paths: list[Path],
        prepare: AvatarPreparation,
        edit_names: tuple[str, ...] = (),
        editor: Callable[[], AttributeEditor] | None = None,
        edit_portrait: bool = True,
        identities: Callable[[], IdentityGenerator] | None = None,
        keep_folder: Path | None = None,
    ) -> None:
        """`edit_names`: attributes with a toggle action each; `editor` makes the editor on the first toggle.
        `edit_portrait` False (the face swap, which edits every frame): an edit is only recorded on the avatar.
        `identities` makes the identity generator on the first new identity; `keep_folder`: where kept ones go."""
        self.avatar = avatar
        self.paths = paths
        self.prepare = prepare
        self.edits: dict[str, float] = {}
        self._neutral = avatar  # the avatar on air without its edits
        self._edit_names = edit_names
        self._make_editor = editor
        self._edit_portrait = edit_portrait
        self._editor: AttributeEditor | None = None
        self._make_identities, self._identities = identities, None
        self._keep_folder = keep_folder
        self._index = next((i for i, p in enumerate(paths) if str(p) == avatar.source), 0)
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avatar-loader")
        self._pending: Future[Loaded] | None = None
        self._pending_name = ""
        self._pending_edits: dict[str, float] = {}

    @property
    def status(self) -> str:
        said = [f"edits: {', '.join(self.edits)}"] if self.edits else []
        if self._pending is not None:
            said.append(f"loading {self._pending_name}…")
        return "  ".join(said)

    @property
    def actions(self) -> Mapping[str, Action]:
        switching = {"next_avatar": lambda: self.switch(1), "previous_avatar": lambda: self.switch(-1)}
        identities = {"new_identity": self.new_identity, "keep_identity": self.keep_identity}
        return switching | identities | {f"edit_{name}": partial(self.toggle_edit, name) for name in self._edit_names}

    def switch(self, step: int) -> str | None:
        if not self.paths:
            return "no avatar folder: set avatars_dir to switch avatars"
        if self._pending is not None:
            return None  # one load at a time; the current avatar keeps playing meanwhile
        self._index = (self._index + step) % len(self.paths)
        path = self.paths[self._index]
        self._start(path.name, self._load, path, dict(self.edits))
        return None  # the status says "loading …" until it is done

    def toggle_edit(self, name: str) -> str | None:
        if self._pending is not None:
            return "one moment: an avatar is loading"
        edits = dict(self.edits)
        if edits.pop(name, None) is None:
            edits[name] = 1.0
        if not edits:  # back to the portrait itself, at once and exactly
            self.edits, self.avatar = edits, self._neutral
            return f"{name} off"
        self._start(f"{self._neutral.name} ({', '.join(edits)})", self._load, self._neutral.source, edits)
        return None

    def new_identity(self, seed: int | None = None) -> str | None:
        """Makes a new face (a random seed unless given) and switches to it, edits kept."""
        if self._pending is not None:
            return "one moment: an avatar is loading"
        seed = secrets.randbelow(MAX_SEED + 1) if seed is None else seed
        self._start(f"identity {seed}", self._load_identity, seed, dict(self.edits))
        return None

    def _load_identity(self, seed: int, edits: dict[str, float]) -> Loaded:
        self._identities = made(self._identities, self._make_identities, "no identity generator in this build")
        path = identities_dir() / f"identity_{seed}.png"
        save_image(path, as_portrait(self._identities.face(seed), self.prepare.size))
        return self._load(path, edits)

    def keep_identity(self) -> str:
        """Copies the generated identity on air into the avatars folder, where next/previous find it."""
        source = Path(self._neutral.source)
        if source.parent != identities_dir():
            return "the avatar on air is not a generated identity"
        if self._keep_folder is None:
            return "no avatar folder: set avatars_dir to keep identities"
        self._keep_folder.mkdir(parents=True, exist_ok=True)
        kept = self._keep_folder / source.name
        shutil.copyfile(source, kept)
        if kept not in self.paths:
            self.paths.append(kept)
        return f"kept {source.stem} in {self._keep_folder}"

    def _start(self, label: str, load: Callable[..., Loaded], source: object, edits: dict[str, float]) -> None:
        """`load(source, edits)` on the loader thread; `poll` swaps its result in."""
        self._pending, self._pending_name = self._loader.submit(load, source, edits), label
        self._pending_edits = edits

    def _load(self, source: str | Path, edits: dict[str, float]) -> Loaded:
        neutral = self.prepare(source) if str(source) != self._neutral.source else self._neutral
        if not edits:
            return neutral, neutral, edits
        # Loaded here even for the face swap: missing weights are said at once.
        self._editor = made(self._editor, self._make_editor, "no attribute editor in this build")
        return with_edits(neutral, self.prepare.size, self._editor, edits, self._edit_portrait), neutral, edits

    def poll(self) -> str | None:
        """Swaps in a finished load; returns what to tell the user (None while nothing finished)."""
        if self._pending is None or not self._pending.done():
            return None
        future, self._pending = self._pending, None
        try:
            self.avatar, self._neutral, self.edits = future.result()
        except (AvatarError, WeightsError, EditError, IdentityError) as exc:
            return f"{'edit not made' if self._pending_edits else 'avatar skipped'}: {exc}"
        return f"avatar: {self.avatar.name}" + (f" ({', '.join(self.edits)})" if self.edits else "")

    def close(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)


def identities_dir() -> Path:
    """Where new identities' portraits are written (kept ones are copied out of it)."""
    return data_dir() / "identities"
