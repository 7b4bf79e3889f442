"""`avatarcam faceswap record`: a webcam recording of the user, the source of their faces for a swap."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
from tqdm import tqdm

from avatarcam.io.sources import CameraSource, SourceError


def record(camera: int, seconds: float, out: Path, progress: bool = True) -> Path:
    """Records `seconds` of camera `camera` to `out` (mp4); turn your head, talk and vary your expression."""
    source = CameraSource(camera)  # raises SourceError with the reason when there is no camera
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    frames = 0
    try:
        end = time.monotonic() + seconds
        with tqdm(total=round(seconds), desc="recording", unit="s", disable=not progress) as bar:
            while (now := time.monotonic()) < end:
                frame = source.read(timeout=1.0)
                if frame is None:
                    continue
                if writer is None:
                    h, w = frame.image.shape[:2]
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), source.fps, (w, h))
                writer.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
                frames += 1
                bar.n = min(round(seconds), round(seconds - (end - now)))
                bar.refresh()
    finally:
        source.close()
        if writer is not None:
            writer.release()
    if frames == 0:
        raise SourceError(f"camera {camera} delivered no frames in {seconds:.0f} s")
    return out
