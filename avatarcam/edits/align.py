"""The face crop attribute edits work on, the same for training and at run time.

A similarity transform (rotation, uniform scale, shift) puts the two eye centres and the mouth centre where they
belong in a size×size square, with room above the brows for hair and below the chin. Training crops every face
with `align_face`; at run time the same call cuts the avatar's face, the edit is made on the crop, and the
inverse of the returned matrix (`cv2.invertAffineTransform`) pastes it back at full resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import similarity_2d

# Where the anchors belong, as shares of the crop side. Measured on 192 UTKFace faces: the mouth centre lies
# 0.98 eye distances below the eyes' midpoint (median), the chin 1.76 (90th percentile 1.95) and the top of the
# face oval 0.77 above; the face is 2.2 eye distances wide. An eye distance of 0.30 with the eyes at 0.36 puts
# the chin at 0.89 (0.95 for the 90th percentile), the top of the forehead at 0.13 with hair above it, and the
# cheeks at 0.17 and 0.83: the whole face with a margin, as the talking head's crop (1.25 × the landmarks' box).
EYE_DISTANCE = 0.30
EYES_Y = 0.36
MOUTH_Y = 0.66  # EYES_Y + EYE_DISTANCE: one eye distance below the eyes
TARGETS = np.array(
    [
        [0.5 - EYE_DISTANCE / 2, EYES_Y],  # the subject's right eye (on the image's left)
        [0.5 + EYE_DISTANCE / 2, EYES_Y],  # the subject's left eye
        [0.5, MOUTH_Y],  # the mouth centre
    ]
)


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """3×2 pixels: the right eye's centre, the left eye's centre, the mouth centre.

    Eye centres are the means of the eye contours (the irises move with the gaze); the mouth centre is the
    midpoint of the mouth corners (the lips' middle moves when the mouth opens)."""
    xy = np.asarray(landmarks, np.float64)[:, :2]
    return np.stack(
        [xy[T.RIGHT_EYE].mean(axis=0), xy[T.LEFT_EYE].mean(axis=0), xy[[T.MOUTH_RIGHT, T.MOUTH_LEFT]].mean(axis=0)]
    )


def align_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """2×3 matrix from image pixels to the size×size aligned crop."""
    return similarity_2d(anchor_points(landmarks), TARGETS * size)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The size×size aligned crop of the face with 478 `landmarks` (pixels) in `image`, and its 2×3 matrix
    (image pixels → crop pixels; invert it with `cv2.invertAffineTransform` to paste an edited crop back).

    Where the crop reaches past the image's edge (tight face chips) the edge pixels are repeated outwards: mirroring
    the image showed a second chin below the first."""
    matrix = align_matrix(landmarks, size)
    sample, source = matrix.copy(), image
    # Shrinking by more than 2 with linear sampling aliases: halve the image first, as often as needed
    # (half-image pixel j sits on full-image pixel 2j, so the matrix's linear part doubles).
    while np.sqrt(abs(np.linalg.det(sample[:, :2]))) < 0.5 and min(source.shape[:2]) >= 2:
        source = cv2.pyrDown(source)
        sample[:, :2] *= 2.0
    crop = cv2.warpAffine(source, sample, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, matrix
