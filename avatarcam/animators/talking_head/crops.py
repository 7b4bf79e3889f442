"""The face crop the talking-head networks see, its landmark drawing, and pasting results back.

A crop is an axis-aligned square around the landmarks (a scale and a shift), so taking it and putting it back
are one `cv2.warpAffine` each, at any portrait size."""

from __future__ import annotations

import cv2
import numpy as np

from avatarcam.tracking import topology as T

CROP_SIZE = 128
BOX_SCALE = 1.25  # crop side over the landmarks' larger extent: the face plus a margin of hair and jaw

# Landmark drawing channels: outline, brows and nose | eyes and irises | lips.
_NOSE = [168, 6, 197, 195, 5, 4, 1, 19, 94, 2]
_CHANNELS: list[list[tuple[list[int], bool]]] = [
    [(T.FACE_OVAL, True), (T.RIGHT_BROW[:5], False), (T.LEFT_BROW[:5], False), (_NOSE, False)],
    [(T.RIGHT_EYE, True), (T.LEFT_EYE, True), (T.RIGHT_IRIS[1:], True), (T.LEFT_IRIS[1:], True)],
    [(T.OUTER_LIPS, True), (T.INNER_LIPS, True)],
]


def face_box(landmarks: np.ndarray) -> np.ndarray:
    """(x0, y0, side) of the square crop around 478 landmarks (pixels)."""
    xy = landmarks[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    side = float((hi - lo).max()) * BOX_SCALE
    centre = (lo + hi) / 2
    return np.array([centre[0] - side / 2, centre[1] - side / 2, side])


def crop_matrix(box: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """2×3 affine from image pixels to crop pixels."""
    s = size / box[2]
    return np.array([[s, 0.0, -box[0] * s], [0.0, s, -box[1] * s]])


def crop(image: np.ndarray, box: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The box's pixels at size×size; big portraits are halved first (linear sampling would alias)."""
    box = np.asarray(box, np.float64)
    while box[2] > 2 * size:
        image = cv2.pyrDown(image)  # half-image pixel j is centred on full-image pixel 2j
        box = box / 2
    return cv2.warpAffine(
        image, crop_matrix(box, size), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def draw_landmarks(landmarks: np.ndarray, box: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """size×size×3 uint8: the face's contours drawn in the crop, one part group per channel."""
    m = crop_matrix(box, size)
    xy = landmarks[:, :2] @ m[:, :2].T + m[:, 2]
    pts = np.round(xy * 16).astype(np.int32)
    out = np.zeros((size, size, 3), np.uint8)
    for c, parts in enumerate(_CHANNELS):
        plane = np.zeros((size, size), np.uint8)
        for ids, closed in parts:
            cv2.polylines(plane, [pts[ids]], closed, 255, 1, cv2.LINE_AA, shift=4)
        out[..., c] = plane
    return out


def feather(size: int = CROP_SIZE, margin: float = 0.12) -> np.ndarray:
    """size×size float32 window: 1 inside, falling smoothly to 0 at the crop's edges (no seam on paste)."""
    ramp = np.clip(np.minimum(np.arange(size) + 0.5, size - 0.5 - np.arange(size)) / (margin * size), 0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)
    return np.outer(ramp, ramp).astype(np.float32)


def paste(base: np.ndarray, change: np.ndarray, box: np.ndarray) -> np.ndarray:
    """base (H×W×3 uint8) plus a crop-sized float change (already masked), scaled back into the image."""
    h, w = base.shape[:2]
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[0] + box[2])) + 1, w), min(int(np.ceil(box[1] + box[2])) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return base
    inverse = cv2.invertAffineTransform(crop_matrix(box, change.shape[0]))
    inverse[:, 2] -= (x0, y0)
    local = cv2.warpAffine(change, inverse, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0)
    out = base.copy()
    region = out[y0:y1, x0:x1].astype(np.float32) + local
    out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return out


def to_tensor_layout(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 → 3×H×W float32 in [-1, 1]."""
    return (image.astype(np.float32).transpose(2, 0, 1) / 127.5) - 1.0
