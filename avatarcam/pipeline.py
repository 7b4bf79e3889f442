"""The live frame loop: newest camera frame → stages → compositor → sink, with hotkeys and statistics.

Two threads: the source's own capture thread keeps only the newest frame (a bounded queue of one that drops
the oldest), and this loop tracks, animates and sends. The stages take a few milliseconds, far below a camera
frame, so more threads would add latency and hand-offs without adding frames.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatarcam.avatar import AvatarError, load_avatar, square_crop
from avatarcam.config import Config
from avatarcam.hotkeys import Hotkeys
from avatarcam.io.sinks import Sink, draw_camera_inset, draw_hud, letterbox, make_background
from avatarcam.io.sources import Source
from avatarcam.stages import FrameStages
from avatarcam.types import Avatar, Frame, now_ns

log = logging.getLogger(__name__)
MESSAGE_SECONDS = 4.0


@dataclass
class LiveStats:
    frames: int = 0
    repeats: int = 0  # frames re-sent while the camera was lost
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=1000))
    send_times: deque = field(default_factory=lambda: deque(maxlen=60))

    @property
    def fps(self) -> float:
        if len(self.send_times) < 2:
            return 0.0
        return (len(self.send_times) - 1) / max(self.send_times[-1] - self.send_times[0], 1e-9)

    def latency(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0


class LivePipeline:
    def __init__(
        self,
        config: Config,
        source: Source,
        sink: Sink,
        stages: FrameStages,
        avatar_paths: list[Path] | None = None,
        hotkeys: Hotkeys | None = None,
        monitor: Sink | None = None,
    ) -> None:
        """`monitor`: a window only the user sees beside a `sink` the call sees; the HUD goes there."""
        self.config = config
        self.source, self.sink, self.stages, self.hotkeys = source, sink, stages, hotkeys
        self._windows = [w for w in (sink, monitor) if w is not None]
        self.avatar_paths = avatar_paths or []
        self._avatar_index = 0
        self.stats = LiveStats()
        self.passthrough = self.frozen = False
        self.hud = config.output.hud
        self.mirror = config.output.mirror
        self._message, self._message_until = "", 0.0
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avatar-loader")
        self._pending: Future[Avatar] | None = None
        self._background = self._make_background(stages.avatar)
        self._last_square = stages.avatar.image
        self._running = True

    def _say(self, text: str) -> None:
        """A one-line notice in the HUD, shown for a few seconds."""
        self._message, self._message_until = text, time.monotonic() + MESSAGE_SECONDS

    @property
    def message(self) -> str:
        return self._message if time.monotonic() < self._message_until else ""

    def _make_background(self, avatar: Avatar) -> np.ndarray:
        out = self.config.output
        return make_background(avatar.image, out.width, out.height)

    # Hotkey actions -----------------------------------------------------------------------------------------
    def handle(self, action: str) -> None:
        if action == "quit":
            self._running = False
        elif action in ("next_avatar", "previous_avatar"):
            self._switch_avatar(1 if action == "next_avatar" else -1)
        elif action == "reset_reference":
            self.stages.reset_reference()
            self._say("reference reset: hold a neutral face")
        elif action == "passthrough":
            self.passthrough = not self.passthrough
        elif action == "freeze":
            self.frozen = not self.frozen
        elif action == "hud":
            self.hud = not self.hud
        elif action == "mirror":
            self.mirror = not self.mirror

    def _switch_avatar(self, step: int) -> None:
        if not self.avatar_paths:
            self._say("no avatar folder: set avatars_dir to switch avatars")
            return
        if self._pending is not None:
            return  # one load at a time; the current avatar keeps playing meanwhile
        self._avatar_index = (self._avatar_index + step) % len(self.avatar_paths)
        path = self.avatar_paths[self._avatar_index]
        self._say(f"loading {path.name}…")
        self._pending = self._loader.submit(load_avatar, path, self.config.animator.size)

    def _finish_switch(self) -> None:
        if self._pending is None or not self._pending.done():
            return
        future, self._pending = self._pending, None
        try:
            avatar = future.result()
        except AvatarError as exc:
            self._say(f"avatar skipped: {exc}")
            return
        self.stages.set_avatar(avatar)
        self._background = self._make_background(avatar)
        self._say(f"avatar: {avatar.name}")

    # The loop -----------------------------------------------------------------------------------------------
    def step(self) -> bool:
        """One frame (or one wait for a frame); False when the loop should end."""
        if self.hotkeys:
            for window in self._windows:
                self.hotkeys.feed_preview_key(window.poll_key())
            for action in self.hotkeys.poll():
                self.handle(action)
        self._finish_switch()
        if not self._running or any(window.closed for window in self._windows):
            return False
        frame = self.source.read(timeout=0.5)
        if frame is None:
            if getattr(self.source, "finished", False):
                return False
            self._resend_last("camera lost: retrying…")
            return True
        self._send(self._square_for(frame), frame)
        return True

    def _square_for(self, frame: Frame) -> np.ndarray:
        if self.frozen:
            return self._last_square
        if self.passthrough:  # the camera's centre square: letterbox() expects a square and would squash it
            return square_crop(frame.image, self.stages.avatar.size)
        self._last_square = self.stages(frame)
        return self._last_square

    def _compose(self, square: np.ndarray) -> np.ndarray:
        out = self.config.output
        image = letterbox(square, out.width, out.height, self._background)
        if self.mirror:
            image = np.ascontiguousarray(image[:, ::-1])
        return image

    def _show(self, image: np.ndarray, status: str = "", camera: Frame | None = None) -> None:
        """The frame to the sink; the HUD (text, and the camera with the tracked face) only where just the user
        sees it: the preview or monitor window. A recording places it by the camera frame's capture time."""
        with_hud = None
        timestamp = camera.timestamp_ns if camera is not None else now_ns()
        for window in self._windows:
            if window.private and self.hud:
                if with_hud is None:
                    with_hud = self._with_hud(image, status, camera)
                window.send(with_hud, timestamp)
            else:
                window.send(image, timestamp)

    def _with_hud(self, image: np.ndarray, status: str, camera: Frame | None) -> np.ndarray:
        out = draw_hud(image, self._hud_lines(status))
        if camera is not None and not self.passthrough:
            face = None if self.frozen else self.stages.last_face
            draw_camera_inset(out, camera.image, None if face is None else face.landmarks)
        return out

    def _hud_lines(self, status: str) -> list[str]:
        s = self.stats
        animator = self.stages.animator
        mode = "passthrough" if self.passthrough else "frozen" if self.frozen else animator.name
        if animator.status and not self.passthrough:
            mode += f": {animator.status}"
        lines = [
            f"{s.fps:4.1f} fps  latency p50 {s.latency(50):.0f} ms  p95 {s.latency(95):.0f} ms",
            f"avatar: {self.stages.avatar.name}  [{mode}]  errors: {self.stages.errors}",
        ]
        if self.stages.last_face is None and not self.passthrough:
            lines.append("no face: holding, then easing to neutral")
        for extra in (status, self.message):
            if extra:
                lines.append(extra)
        return lines

    def _send(self, square: np.ndarray, frame: Frame) -> None:
        self._show(self._compose(square), camera=frame)
        self.stats.frames += 1
        self.stats.send_times.append(time.monotonic())
        self.stats.latencies_ms.append((now_ns() - frame.timestamp_ns) / 1e6)

    def _resend_last(self, status: str) -> None:
        """Keeps the virtual camera alive with the last output while the camera is away."""
        self.stats.repeats += 1
        self._show(self._compose(self._last_square), status)

    def run(self, max_frames: int | None = None, max_seconds: float | None = None) -> LiveStats:
        start = time.monotonic()
        try:
            while self.step():
                if max_frames is not None and self.stats.frames >= max_frames:
                    break
                if max_seconds is not None and time.monotonic() - start >= max_seconds:
                    break
        except KeyboardInterrupt:
            log.info("stopped by the user")
        return self.stats

    def close(self) -> None:
        """Stops the avatar loader; the source, sink and stages belong to the caller."""
        self._loader.shutdown(wait=False, cancel_futures=True)
