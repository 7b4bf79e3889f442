"""Reading the watermark back from a file: an image is one window; a video is cut into windows of a few seconds,
each read on its own (the mark must be found again in any stretch of a call)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from avatarcam.io.sources import VideoFileSource
from avatarcam.marks.payload import Payload
from avatarcam.marks.watermark import Detection, Watermark, WatermarkError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
WINDOW_SECONDS = 2.0


@dataclass(frozen=True)
class Verdict:
    windows: list[Detection]
    window_frames: int  # frames per window (1: an image)

    @property
    def found(self) -> list[Detection]:
        return [d for d in self.windows if d.found]

    @property
    def payload(self) -> Payload | None:
        """The payload most windows read (None: not found)."""
        counts = Counter(d.payload for d in self.found)
        return counts.most_common(1)[0][0] if counts else None

    @property
    def confidence(self) -> float:
        return max((d.confidence for d in self.found if d.payload == self.payload), default=0.0)


def read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise WatermarkError(f"cannot read image {path}: not a file OpenCV can decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def windows(path: Path, seconds: float = WINDOW_SECONDS) -> tuple[Iterator[list[np.ndarray]], int]:
    """The video's consecutive windows of `seconds` (a last, shorter part is left out) and frames per window."""
    source = VideoFileSource(path, loop=False, realtime=False)
    size = max(1, round(seconds * source.fps))
    if 0 < source.frame_count < size:
        source.close()
        raise WatermarkError(
            f"{path.name} has {source.frame_count} frames ({source.frame_count / source.fps:.1f} s): shorter than "
            f"one {seconds:g}-second window ({size} frames); verify a longer recording, or a frame of it as an image"
        )

    def cut() -> Iterator[list[np.ndarray]]:
        window: list[np.ndarray] = []
        with source:
            while (frame := source.read()) is not None:
                window.append(frame.image)
                if len(window) == size:
                    yield window
                    window = []

    return cut(), size


def verify(path: str | Path, key: str, seconds: float = WINDOW_SECONDS) -> Verdict:
    """The watermark of `key` in an image or in each window of a video."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    codec = Watermark(key)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return Verdict([codec.detect([read_image(path)])], 1)
    parts, size = windows(path, seconds)
    found = [codec.detect(window) for window in parts]
    if not found:  # the container did not say how long it is, and it is shorter than a window
        raise WatermarkError(f"{path.name} is shorter than one {seconds:g}-second window ({size} frames)")
    return Verdict(found, size)
