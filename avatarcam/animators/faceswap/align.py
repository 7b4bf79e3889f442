"""Aligned face crops for the face swap: a similarity transform that puts the skull's rigid landmarks where the
canonical face has them, so every crop shows the face at the same place, size and roll."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from scipy.spatial import Delaunay

from avatarcam.animators.mesh import backward_map, paint_index_map, triangle_affines
from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import canonical_face, rotation_from_euler, similarity_2d

IOD_SHARE = 0.4  # inter-ocular distance as a share of the crop side: the whole face (brows to chin) fits
FACE_CENTRE_Y = 0.41  # the canonical face's vertical centre, in inter-ocular units below the nose bridge


def _targets(size: int) -> np.ndarray:
    """Where the rigid landmarks belong in a size×size crop."""
    canon = canonical_face()[T.RIGID, :2]
    return (canon - np.array([0.0, FACE_CENTRE_Y])) * (IOD_SHARE * size) + size / 2


def align_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """2×3 similarity (rotation, uniform scale, shift) mapping image pixels into the aligned size×size crop."""
    return similarity_2d(landmarks[T.RIGID, :2].astype(np.float64), _targets(size))


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Applies a 2×3 affine to the x, y of N points (z scaled by the same factor)."""
    out = points.astype(np.float64).copy()
    out[:, :2] = points[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    if points.shape[1] > 2:
        out[:, 2] = points[:, 2] * np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    return out


def aligned_crop(image: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The aligned crop and its matrix (image → crop)."""
    matrix = align_matrix(landmarks, size)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    return crop, matrix


@lru_cache(maxsize=1)
def _whole_face_triangles() -> np.ndarray:
    """Delaunay triangles over the canonical face's points: no holes, so eyes and mouth move with the rest."""
    return Delaunay(canonical_face()[:, :2]).simplices.astype(np.int32)


def nod(images: list[np.ndarray], crop_landmarks: np.ndarray, pitch_deg: float) -> list[np.ndarray]:
    """`images` (aligned crops) with the face turned about its left-right axis by `pitch_deg`: a piecewise-affine
    warp moving each landmark from where it was `pitch_deg` ago to where it is now. The similarity alignment
    takes out roll, scale and shift but leaves pitch to the decoder, which draws B at nearly one pitch."""
    if abs(pitch_deg) < 0.5:
        return images
    size = images[0].shape[0]
    centre = crop_landmarks[T.RIGID].mean(axis=0)
    before = ((crop_landmarks - centre) @ rotation_from_euler(0.0, -pitch_deg, 0.0).T + centre)[:, :2]
    now = crop_landmarks[:, :2]
    triangles = _whole_face_triangles()
    affines, ok = triangle_affines(now, before, triangles)
    index_map = paint_index_map((size, size), now, triangles, np.flatnonzero(ok))
    map_x, map_y = backward_map(index_map, affines, 1.0)
    return [cv2.remap(i, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for i in images]


def sharpness(crop: np.ndarray, mask: np.ndarray) -> float:
    """Variance of the Laplacian inside the face: low for blurred frames."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(grey, cv2.CV_64F)
    inside = mask > 0
    return float(lap[inside].var()) if inside.any() else 0.0
