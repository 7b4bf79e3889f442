"""Frame sinks: the virtual camera call apps see, a preview window, an mp4 recorder, and a null sink."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from avatarcam.config import OutputConfig
from avatarcam.io.closing import Closing
from avatarcam.tracking import topology as T

INSET_WIDTH = 0.25  # the camera thumbnail in the HUD, as a share of the frame's width
TRACKED_OUTLINES = (T.FACE_OVAL, T.RIGHT_EYE, T.LEFT_EYE, T.OUTER_LIPS)


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


def _check_image(image: np.ndarray, width: int, height: int, what: str) -> None:
    if image.shape != (height, width, 3) or image.dtype != np.uint8:
        raise ValueError(f"{what} expects {height}×{width}×3 uint8 RGB images, got shape {image.shape} {image.dtype}")


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

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        _check_image(image, self.width, self.height, "the virtual camera")
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

    @property
    def frames_written(self) -> int:
        """Frames the file holds (or will, once closed)."""
        return self._written + (self._pending is not None)

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        _check_image(image, self.width, self.height, f"the recorder for {self.path.name}")
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

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        self.frames_sent += 1

    def close(self) -> None:
        pass


def open_sink(config: OutputConfig, kind_override: str | None = None) -> tuple[Sink, str]:
    """The sink the config asks for, and a line saying what was opened (or fallen back to, and why)."""
    kind = kind_override or config.sink
    width, height, fps = config.width, config.height, config.fps
    if kind == "virtual":
        camera = VirtualCameraSink(width, height, fps)
        return camera, f"output: {camera.name}"
    if kind == "preview":
        return PreviewSink("avatarcam", width, height), "output: preview window"
    if kind == "file":
        return RecorderSink(config.path, fps, width, height), f"output: recording to {config.path}"
    if kind == "null":
        return NullSink(), "output: none (frames discarded)"
    if kind != "auto":
        raise ValueError(f"unknown output sink '{kind}' (known: auto, virtual, preview, file, null)")
    try:
        camera = VirtualCameraSink(width, height, fps)
        return camera, f"output: {camera.name}"
    except SinkError as exc:
        no_camera, hint = exc.reason, exc.hint
    try:
        preview = PreviewSink("avatarcam", width, height)
        return preview, f"{no_camera}: showing a preview window instead.\n{hint}"
    except SinkError as exc:
        no_preview = exc.reason
    recorder = RecorderSink(config.path, fps, width, height)
    return recorder, f"{no_camera}; {no_preview}: recording to {config.path} instead.\n{hint}"


def open_monitor(config: OutputConfig, sink: Sink) -> tuple[Sink | None, str]:
    """A preview window beside a sink the user cannot see (virtual camera, recording), to carry the HUD and take
    keys; None where the config turns it off or no window can be shown. Also says what it did."""
    if sink.private or not config.monitor:
        return None, ""
    try:
        return PreviewSink("avatarcam (monitor)", config.width, config.height), "monitor: a preview window with the HUD"
    except SinkError as exc:
        return None, f"no monitor window ({exc.reason}); the HUD is off, the output is unchanged"


def letterbox(square: np.ndarray, width: int, height: int, background: np.ndarray | None = None) -> np.ndarray:
    """The square avatar image scaled to fit and centred in a width×height frame, sides from `background`."""
    side = min(width, height)
    if square.shape[0] != side:
        interpolation = cv2.INTER_AREA if square.shape[0] > side else cv2.INTER_LINEAR
        square = cv2.resize(square, (side, side), interpolation=interpolation)
    if background is not None and background.shape == (height, width, 3):
        out = background.copy()
    else:
        out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - side) // 2, (height - side) // 2
    out[y0 : y0 + side, x0 : x0 + side] = square
    return out


def make_background(square: np.ndarray, width: int, height: int) -> np.ndarray:
    """The avatar stretched to cover width×height, heavily blurred and dimmed: letterbox sides, built once."""
    big = max(width, height)
    cover = cv2.resize(square, (big, big))
    x0, y0 = (cover.shape[1] - width) // 2, (cover.shape[0] - height) // 2
    cover = cover[y0 : y0 + height, x0 : x0 + width]
    # Blurring a small copy and scaling back up is a wide blur for a fraction of the cost.
    small = cv2.resize(cover, (max(1, width // 16), max(1, height // 16)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 2.0)
    blurred = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    # Dimmed so the sharp centre reads as the subject.
    return (blurred.astype(np.uint16) * 3 // 5).astype(np.uint8)


def draw_hud(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """A copy of `image` with `lines` in a translucent box at the top left."""
    out = image.copy()
    if not lines:
        return out
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, out.shape[0] / 1080), 1
    (_, text_h), baseline = cv2.getTextSize("Ag", font, scale, thickness)
    line_h = text_h + baseline + 4
    text_w = max(cv2.getTextSize(line, font, scale, thickness)[0][0] for line in lines)
    pad = 6
    box = out[: min(out.shape[0], len(lines) * line_h + 2 * pad), : min(out.shape[1], text_w + 2 * pad)]
    box //= 2  # darken in place: translucent without a blend buffer
    for i, line in enumerate(lines):
        origin = (pad, pad + text_h + i * line_h)
        cv2.putText(out, line, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def draw_camera_inset(image: np.ndarray, camera: np.ndarray, landmarks: np.ndarray | None) -> None:
    """Puts the driver's camera frame, small, in the bottom-right corner of `image` (in place), with the tracked
    face outlined: the user sees at a glance what the tracker sees and whether it holds."""
    h, w = image.shape[:2]
    width = max(2, int(w * INSET_WIDTH))
    factor = width / camera.shape[1]
    height = min(h, max(2, round(camera.shape[0] * factor)))
    thumb = cv2.resize(camera, (width, height), interpolation=cv2.INTER_AREA)
    if landmarks is not None:
        outlines = [np.round(landmarks[ids, :2] * factor).astype(np.int32) for ids in TRACKED_OUTLINES]
        cv2.polylines(thumb, outlines, True, (0, 255, 0), 1, cv2.LINE_AA)
    image[h - height :, w - width :] = thumb
