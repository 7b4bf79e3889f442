"""Frame sources: a live camera that survives unplugging, and video files for testing and offline renders."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from avatarcam.config import Config
from avatarcam.io.closing import Closing
from avatarcam.types import Frame, now_ns


class SourceError(RuntimeError):
    """A source could not be opened; the message is meant for the user as is."""


class Source(Protocol):
    name: str
    fps: float

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame not yet returned, or None if none arrived within `timeout` seconds."""
        ...

    def close(self) -> None: ...


def _sane_fps(value: float, fallback: float) -> float:
    # Backends report 0, NaN or absurd values when they do not know.
    return value if math.isfinite(value) and 0 < value <= 1000 else fallback


# Consecutive failed reads that mean the camera is gone rather than a glitch.
_FAILS_BEFORE_RECONNECT = 3


class CameraSource(Closing):
    """Grabs from a camera on a background thread and keeps only the newest frame, for low latency.

    When the camera stops delivering (unplugged, taken by another app) it closes it and retries every
    `retry_interval` seconds; meanwhile `connected` is False and read() returns None.
    """

    def __init__(
        self, index: int = 0, width: int = 640, height: int = 480, fps: float = 30.0, retry_interval: float = 1.0
    ) -> None:
        self.name = f"camera {index}"
        self.index = index
        self._size = (width, height)
        self._requested_fps = fps
        self._retry_interval = retry_interval
        self.connected = False
        self.reconnects = 0
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._seq = 0  # frames captured so far
        self._returned = 0  # value of _seq when read() last returned a frame
        self._stop = threading.Event()

        cap = self._open()
        if cap is None:
            raise SourceError(f"cannot open camera {index} (not connected, in use, or no permission)")
        ok, bgr = cap.read()
        if not ok or bgr is None:
            cap.release()
            raise SourceError(f"camera {index} opened but delivered no frame (in use by another app?)")
        self.fps = _sane_fps(cap.get(cv2.CAP_PROP_FPS), fps)
        self._publish(bgr, now_ns())
        self.connected = True
        self._thread = threading.Thread(target=self._run, args=(cap,), name=f"camera-{index}", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, config: Config) -> CameraSource:
        src = config.source
        return cls(src.camera, src.width, src.height, src.fps)

    def _open(self) -> cv2.VideoCapture | None:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            return None
        width, height = self._size
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_FPS, self._requested_fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a driver-side queue would add latency
        return cap

    def _publish(self, bgr: np.ndarray, timestamp_ns: int) -> None:
        frame = Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), timestamp_ns, self._seq)
        with self._cond:
            self._latest = frame
            self._seq += 1
            self._cond.notify_all()

    def _set_connected(self, value: bool) -> None:
        with self._cond:
            self.connected = value
            self._cond.notify_all()  # wake readers so they return None at once

    def _run(self, cap: cv2.VideoCapture | None) -> None:
        failures = 0
        while not self._stop.is_set():
            if cap is None:
                if self._stop.wait(self._retry_interval):
                    break
                cap = self._open()
                if cap is not None:
                    failures = 0
                    self.reconnects += 1
                    self._set_connected(True)
                continue
            ok, bgr = cap.read()
            timestamp = now_ns()
            if ok and bgr is not None:
                failures = 0
                self._publish(bgr, timestamp)
                continue
            failures += 1
            if failures >= _FAILS_BEFORE_RECONNECT:
                cap.release()
                cap = None
                self._set_connected(False)
            else:
                self._stop.wait(0.01)
        if cap is not None:
            cap.release()

    def read(self, timeout: float = 1.0) -> Frame | None:
        with self._cond:
            self._cond.wait_for(
                lambda: self._seq != self._returned or not self.connected or self._stop.is_set(), timeout
            )
            if self._seq == self._returned:
                return None
            self._returned = self._seq
            return self._latest

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)


class VideoFileSource(Closing):
    """Frames from a video file, looped or once, paced to the file's frame rate or as fast as decoded.

    Timestamps follow the file's clock (frame n at n/fps after opening), so offline renders are reproducible.
    """

    def __init__(self, path: str | Path, loop: bool = True, realtime: bool = False) -> None:
        self.path = Path(path)
        self.name = f"file {self.path.name}"
        self.loop = loop
        self.realtime = realtime
        self.finished = False
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        self._cap = self._open()
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            self._cap.release()
            raise SourceError(f"cannot read video file {self.path}: no decodable frames")
        self._pending: np.ndarray | None = bgr  # the probe frame is the first one read() returns
        self.fps = _sane_fps(self._cap.get(cv2.CAP_PROP_FPS), 30.0)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)  # NaN or negative for some streams
        self._frame_count = int(count) if math.isfinite(count) and count > 0 else 0
        self._served = 0  # frames handed out, loops included
        self.unreadable = 0  # read once: frames the container lists that could not be decoded (a damaged file)
        self._t0_ns = now_ns()

    @classmethod
    def from_config(cls, config: Config) -> VideoFileSource:
        """The file of `source.path`, paced in real time (a live run driven by a recording)."""
        if not config.source.path:
            raise SourceError("source kind 'file' needs a video path (--video FILE)")
        return cls(config.source.path, loop=config.source.loop, realtime=True)

    @property
    def frame_count(self) -> int:
        """Frames in the file as the container reports them (0 if unknown)."""
        return self._frame_count

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot read video file {self.path}: not a video OpenCV can decode")
        return cap

    def _next_bgr(self, decode: bool = True) -> np.ndarray | None:
        """The next frame of the file, rewinding at the end when looping; None at the end otherwise."""
        if self._pending is not None:
            bgr, self._pending = self._pending, None
            return bgr
        for _ in range(2):  # at most one rewind per call, so an empty file cannot spin
            if decode:
                ok, bgr = self._cap.read()
            else:
                ok, bgr = self._cap.grab(), np.empty(0, np.uint8)
            if ok and bgr is not None:
                return bgr
            if not self.loop:
                self.unreadable = self._count_unreadable()
                break
            # Reopening is more reliable than seeking to 0 across containers.
            self._cap.release()
            self._cap = self._open()
        self.finished = True
        return None

    def _count_unreadable(self) -> int:
        """At a read failure: the frames the container lists that are left, less those that still decode past a
        damaged stretch. One frame short at the very end is not counted: some containers (mkv, webm) only
        estimate their frame count from the duration."""
        left = self._frame_count - self._served
        if left <= 0:
            return 0
        missing = left - sum(bool(self._cap.grab()) for _ in range(left))
        return missing if missing > 1 or missing < left else 0

    def skip(self) -> bool:
        """Passes over one frame without decoding it; False at the end."""
        return self._next_bgr(decode=False) is not None

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self.finished:
            return None
        if self.realtime:
            due_s = self._served / self.fps
            wait = due_s - (now_ns() - self._t0_ns) / 1e9
            if wait > timeout:
                time.sleep(max(0.0, timeout))
                return None
            if wait > 0:
                time.sleep(wait)
            # A slow consumer skips frames to stay live instead of falling behind.
            behind = int((now_ns() - self._t0_ns) / 1e9 * self.fps) - self._served
            for _ in range(max(0, behind)):
                if self._next_bgr(decode=False) is None:
                    return None
                self._served += 1
        bgr = self._next_bgr()
        if bgr is None:
            return None
        timestamp = self._t0_ns + round(self._served * 1e9 / self.fps)
        frame = Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), timestamp, self._served)
        self._served += 1
        return frame

    def close(self) -> None:
        self._cap.release()


def read_video(path: str | Path, max_frames: int | None = None, spread: bool = False) -> tuple[list[np.ndarray], float]:
    """Frames of a video (RGB) and its frame rate: the first `max_frames`, or with `spread` that many spread
    evenly over the whole file (skipped frames are not decoded)."""
    frames: list[np.ndarray] = []
    with VideoFileSource(path, loop=False) as source:
        stride = max(1, source.frame_count // max_frames) if spread and max_frames else 1
        while max_frames is None or len(frames) < max_frames:
            frame = source.read()
            if frame is None:
                break
            frames.append(frame.image)
            for _ in range(stride - 1):
                source.skip()
        return frames, source.fps


class NoCameraSource:
    """`--source audio`: no camera at all. Small blank frames at the output rate (the tracker finds no face in
    them, so the voice drives the mouth), each stamped with the moment it was made."""

    name = "no camera (the voice drives the avatar)"
    SIZE = (64, 48)

    def __init__(self, fps: float = 30.0) -> None:
        self.fps = fps
        self._next = time.monotonic()
        self._index = 0
        self._blank = np.zeros((self.SIZE[1], self.SIZE[0], 3), np.uint8)

    @classmethod
    def from_config(cls, config: Config) -> NoCameraSource:
        return cls(config.output.fps)

    def read(self, timeout: float = 1.0) -> Frame | None:
        wait = self._next - time.monotonic()
        if wait > timeout:
            return None
        if wait > 0:
            time.sleep(wait)
        self._next = max(self._next + 1.0 / self.fps, time.monotonic() - 1.0 / self.fps)
        self._index += 1
        return Frame(self._blank, now_ns(), self._index - 1)

    def close(self) -> None:
        pass
