"""Frame sinks: the virtual camera call apps see, a preview window, an mp4 recorder, and a null sink."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from avatarcam.config import Config
from avatarcam.io.closing import Closing
from avatarcam.types import check_image


class SinkError(RuntimeError):
    """A sink could not be opened. `reason` says why, `hint` how to fix it."""

    def __init__(self, reason: str, hint: str = "") -> None:
        super().__init__(f"{reason}\n{hint}" if hint else reason)
        self.reason = reason
        self.hint = hint


class Sink(Protocol):
    name: str
    closed: bool  # the user closed it (a preview window's close button): the session should end
    private: bool  # only the user sees it (a preview window): the HUD may be drawn on it, never on what a call sees

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        """Show one H×W×3 uint8 RGB image, captured at `timestamp_ns` (the now_ns clock; None: just now)."""
        ...

    def poll_key(self) -> str | None:
        """The key pressed in a preview window since the last call, else None."""
        ...

    def close(self) -> None: ...


class _SinkBase(Closing):
    """The no-window defaults for poll_key and closed."""

    closed = False  # True once the user has closed the sink (its window), which ends the session
    private = False

    def poll_key(self) -> str | None:
        return None


def virtual_camera_hint(system: str | None = None) -> str:
    """How to get a virtual camera device on this (or the named) OS."""
    system = system or platform.system()
    linux = (
        "create one with `sudo modprobe v4l2loopback exclusive_caps=1 card_label=avatarcam` "
        "(package v4l2loopback-dkms) and make sure your user is in the `video` group"
    )
    obs = "install OBS Studio 30+ and start its Virtual Camera once (Tools → Start Virtual Camera), then stop it"
    if system == "Linux":
        return f"To get a virtual camera: {linux}."
    if system in ("Windows", "Darwin"):
        return f"To get a virtual camera: {obs}."
    return f"To get a virtual camera: on Linux {linux}; on Windows/macOS {obs}."


class VirtualCameraSink(_SinkBase):
    """Sends RGB frames to a virtual webcam through pyvirtualcam (v4l2loopback, OBS, ...)."""

    def __init__(self, width: int, height: int, fps: float, backend: str | None = None) -> None:
        import pyvirtualcam

        self.width = width
        self.height = height
        try:
            # No backend named: pyvirtualcam tries the ones for this OS.
            self._camera = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB, backend=backend)
        except Exception as exc:
            detail = " ".join(str(exc).split()) or "no virtual camera backend available"
            raise SinkError(f"cannot open a virtual camera: {detail}", virtual_camera_hint()) from exc
        self.device: str = self._camera.device
        self.name = f"virtual camera {self.device}"

    @classmethod
    def from_config(cls, config: Config) -> VirtualCameraSink:
        out = config.output
        return cls(out.width, out.height, out.fps)

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        check_image(image, self.width, self.height, "the virtual camera")
        self._camera.send(image)

    def close(self) -> None:
        self._camera.close()


def _display_problem() -> str | None:
    """Why no window can be shown, or None if one probably can."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    return None


class PreviewSink(_SinkBase):
    """An OpenCV window; its key presses come back through poll_key()."""

    private = True

    def __init__(self, title: str = "avatarcam", width: int = 960, height: int = 540) -> None:
        problem = _display_problem()
        if problem:
            raise SinkError(f"cannot open a preview window: {problem}")
        self.name = f"preview window '{title}'"
        self.title = title
        self._key: str | None = None
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
            cv2.resizeWindow(title, width, height)
        except cv2.error as exc:
            raise SinkError(f"cannot open a preview window: {' '.join(str(exc).split())}") from exc

    @classmethod
    def from_config(cls, config: Config) -> PreviewSink:
        return cls("avatarcam", config.output.width, config.output.height)

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        if self.closed:
            return  # imshow would open the window again
        cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        # The window only repaints inside waitKey; keep the key for poll_key so none is lost.
        key = self._wait_key()
        if key is not None:
            self._key = key
        # The window's close button: the user means quit.
        self.closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1

    def _wait_key(self) -> str | None:
        code = cv2.waitKey(1)
        return chr(code & 0xFF) if code >= 0 else None

    def poll_key(self) -> str | None:
        key, self._key = self._key, None
        return key if key is not None else self._wait_key()

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass  # already closed by the user


class RecorderSink(_SinkBase):
    """Writes an mp4 (mp4v) file at a fixed `fps`.

    A frame sent with its capture time fills the frame slots from its own up to the next frame's: repeated when
    frames come slower than `fps`, dropped when faster, so the file plays at the speed things happened (a 14 fps
    camera is not played at 30). A frame sent without one takes the next slot."""

    def __init__(self, path: str | Path, fps: float, width: int, height: int) -> None:
        self.path = Path(path)
        self.width = width
        self.height = height
        self.name = f"file {self.path}"
        self.fps = fps
        self._written = 0  # slots written to the file
        self._pending: tuple[np.ndarray, int] | None = None  # the newest frame (BGR) and its slot, not yet written
        self._t0_ns: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create the folder for {self.path}: {exc}") from exc
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not self._writer.isOpened():
            raise SinkError(f"cannot write video file {self.path} (mp4v encoder unavailable or path not writable)")

    @classmethod
    def from_config(cls, config: Config) -> RecorderSink:
        out = config.output
        return cls(out.path, out.fps, out.width, out.height)

    @property
    def frames_written(self) -> int:
        """Frames the file holds (or will, once closed)."""
        return self._written + (self._pending is not None)

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        check_image(image, self.width, self.height, f"the recorder for {self.path.name}")
        if timestamp_ns is None:
            slot = self.frames_written
        else:
            if self._t0_ns is None:
                self._t0_ns = timestamp_ns
            slot = round((timestamp_ns - self._t0_ns) * self.fps / 1e9)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if self._pending is not None:
            previous, previous_slot = self._pending
            if slot <= previous_slot:  # same slot (faster than fps): the newer frame takes it
                slot = previous_slot
            else:  # the previous frame shows until this one's slot
                for _ in range(slot - previous_slot):
                    self._writer.write(previous)
                self._written += slot - previous_slot
        self._pending = (bgr, slot)

    def close(self) -> None:
        if self._pending is not None:
            self._writer.write(self._pending[0])
            self._written += 1
            self._pending = None
        self._writer.release()


class NullSink(_SinkBase):
    """Discards frames, counting them (benchmarks, tests)."""

    def __init__(self) -> None:
        self.name = "null"
        self.frames_sent = 0

    @classmethod
    def from_config(cls, config: Config) -> NullSink:
        return cls()

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        self.frames_sent += 1

    def close(self) -> None:
        pass
