"""Builds the canonical neutral face from real clips: a generalized Procrustes mean of tracked landmarks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from avatarcam.tracking import topology as T
from avatarcam.tracking.facemesh import FaceMeshDetector
from avatarcam.tracking.geometry import similarity_fit


def _normalise(points: np.ndarray) -> np.ndarray:
    """Frontal axes (x: right eye → left eye, y: forehead → chin, z away from camera), unit iod, origin p168."""
    x = points[T.LEFT_EYE_OUTER] - points[T.RIGHT_EYE_OUTER]
    iod = np.linalg.norm(x)
    x /= iod
    y = points[T.CHIN] - points[T.FOREHEAD]
    y -= x * (x @ y)
    y /= np.linalg.norm(y)
    axes = np.stack([x, y, np.cross(x, y)])
    return (points - points[168]) @ axes.T / iod


def build_canonical(clips: list[Path], frames_per_clip: int = 20, iterations: int = 5) -> np.ndarray:
    shapes = []
    detector = FaceMeshDetector(static=True)
    for clip in tqdm(clips, desc="canonical face", unit="clip"):
        cap = cv2.VideoCapture(str(clip))
        total = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 1)
        for index in np.linspace(0, total - 1, frames_per_clip).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, bgr = cap.read()
            found = detector(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) if ok else None
            if found is not None:
                shapes.append(_normalise(found[0].astype(np.float64)))
        cap.release()
    detector.close()
    if not shapes:
        raise ValueError("no faces found in the clips: cannot build the canonical face")
    mean = shapes[0]
    for _ in range(iterations):
        aligned = []
        for shape in shapes:
            s, r, t = similarity_fit(shape[T.RIGID], mean[T.RIGID])
            aligned.append(s * shape @ r.T + t)
        mean = _normalise(np.median(aligned, axis=0))
    return mean.astype(np.float32)


def write_canonical(clips_dir: Path, out: Path) -> int:
    clips = sorted(p for p in Path(clips_dir).iterdir() if p.suffix.lower() in {".mp4", ".mov", ".avi", ".mkv"})
    np.save(out, build_canonical(clips))
    return len(clips)
