"""The vocabulary every stage speaks: plain dataclasses, no behaviour beyond checks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

NUM_LANDMARKS = 478


def now_ns() -> int:
    return time.monotonic_ns()


def check_image(image: np.ndarray, width: int, height: int, what: str) -> None:
    """Raises a ValueError naming `what` unless `image` is height×width×3 uint8 RGB: the check at every seam."""
    if image.shape != (height, width, 3) or image.dtype != np.uint8:
        raise ValueError(f"{what} expects {height}×{width}×3 uint8 RGB images, got shape {image.shape} {image.dtype}")


@dataclass
class Frame:
    """An H×W×3 uint8 RGB image and the monotonic time it was captured."""

    image: np.ndarray
    timestamp_ns: int = field(default_factory=now_ns)
    index: int = 0

    def __post_init__(self) -> None:
        img = self.image
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"Frame needs an H×W×3 uint8 RGB image, got shape {img.shape} dtype {img.dtype}")


@dataclass
class Face:
    """One tracked face, in the pixel coordinates of the image it was found in.

    `landmarks` are 478×3 (x, y in pixels; z in the same pixel scale, towards the camera negative).
    The pose maps the canonical face into the image: landmarks ≈ scale · canonical @ rotation.T + translation.
    """

    landmarks: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: float
    expression: dict[str, float]
    blendshapes: dict[str, float] | None = None

    @property
    def xy(self) -> np.ndarray:
        return self.landmarks[:, :2]


@dataclass
class Motion:
    """What the avatar must do this frame, in avatar pixels (`tracked`: False while holding or easing to neutral
    after the driver's face was lost)."""

    landmarks: np.ndarray
    rotation: np.ndarray
    tracked: bool = True
    # per skin triangle (motion.stretch.skin_triangles), how far the driver's own skin is stretched beyond its
    # neutral: the avatar's may stretch as far (None: not known, as while the face is lost)
    driver_stretch: np.ndarray | None = None


@dataclass
class Avatar:
    """A prepared portrait: the square image the animators draw, its face and person mask.

    `key` identifies the portrait whatever size it is drawn at (a hash of the image it was made from): the
    per-portrait caches (fine-tunes) are kept under it."""

    name: str
    image: np.ndarray
    face: Face
    key: str
    source: str = ""
    mask: np.ndarray | None = None  # H×W float32 person mask (1 = person), when segmentation found one
    edits: dict[str, float] = field(default_factory=dict)  # attribute edits made to the portrait (none: as it is)

    @property
    def size(self) -> int:
        return int(self.image.shape[0])
