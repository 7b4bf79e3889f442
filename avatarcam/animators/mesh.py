"""Piecewise-affine backward maps: for each output pixel, where to sample the source.

Triangles are painted far to near (painter's algorithm on vertex depth) into a coarse index map, so a turned
head's nose hides its far cheek; each output pixel then takes its triangle's affine map back to the source.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay


def triangle_affines(dst: np.ndarray, src: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-triangle 2×3 affine maps from dst to src positions, and a mask of the non-degenerate ones.

    Closed form (2×2 inverse of the edge vectors): batched LAPACK inverses cost ~20× more for 3×3 matrices.
    """
    d, s = dst[triangles], src[triangles]  # T×3×2
    e1, e2 = d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(det) > 1e-6
    inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    # Inverse of the 2×2 matrix whose columns are e1, e2.
    inv = np.empty((len(d), 2, 2))
    inv[:, 0, 0], inv[:, 0, 1] = e2[:, 1] * inv_det, -e2[:, 0] * inv_det
    inv[:, 1, 0], inv[:, 1, 1] = -e1[:, 1] * inv_det, e1[:, 0] * inv_det
    f = np.stack([s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]], axis=2)  # columns: source edge vectors
    linear = f @ inv
    offset = s[:, 0] - np.einsum("tij,tj->ti", linear, d[:, 0])
    return np.concatenate([linear, offset[:, :, None]], axis=2), ok


def paint_index_map(
    shape: tuple[int, int],
    dst: np.ndarray,
    triangles: np.ndarray,
    order: np.ndarray,
    index_map: np.ndarray | None = None,
    offset: int = 0,
) -> np.ndarray:
    """Paints triangle numbers (offset + i) in `order` into an int32 map (−1 where nothing is painted)."""
    if index_map is None:
        index_map = np.full(shape, -1, np.int32)
    corners = np.round(dst[triangles] * 16).astype(np.int32)  # 4 fractional bits: sub-pixel edges
    for i in order:
        cv2.fillConvexPoly(index_map, corners[i], int(offset + i), lineType=cv2.LINE_8, shift=4)
    return index_map


def fill_holes(index_map: np.ndarray) -> np.ndarray:
    """Cells that no triangle covers (−1) take the number of the nearest covered cell."""
    holes = index_map < 0
    if not holes.any() or holes.all():
        return index_map
    _, labels = cv2.distanceTransformWithLabels(
        holes.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # Each covered cell is a zero pixel with its own label (numbered in raster order): map labels back to cells.
    covered = index_map[~holes]
    filled = index_map.copy()
    filled[holes] = covered[labels[holes] - 1]
    return filled


def backward_map(index_map: np.ndarray, affines: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates (in source pixels) for each cell of the index map, whose cells are `scale` pixels.

    Cells with no triangle map to themselves."""
    h, w = index_map.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs = (xs + 0.5) * scale - 0.5
    ys = (ys + 0.5) * scale - 0.5
    valid = index_map >= 0
    a = affines[np.where(valid, index_map, 0)].astype(np.float32)  # h×w×2×3
    map_x = np.where(valid, a[..., 0, 0] * xs + a[..., 0, 1] * ys + a[..., 0, 2], xs)
    map_y = np.where(valid, a[..., 1, 0] * xs + a[..., 1, 1] * ys + a[..., 1, 2], ys)
    return map_x.astype(np.float32), map_y.astype(np.float32)


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Signed area of each triangle (positive for one winding, negative for the other)."""
    p = points[triangles][:, :, :2]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    return 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def delaunay_inside(points: np.ndarray, polygon: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Delaunay triangles of `points` (global `indices`) whose centroid lies inside `polygon`."""
    tri = Delaunay(points).simplices
    centroids = points[tri].mean(axis=1)
    poly = polygon.astype(np.float32).reshape(-1, 1, 2)
    inside = np.array([cv2.pointPolygonTest(poly, (float(x), float(y)), False) >= 0 for x, y in centroids])
    return indices[tri[inside]] if inside.any() else np.zeros((0, 3), np.int32)
