"""How far an expression stretches the portrait's skin: the measure the stretch limit and the eval share.

A piecewise-affine warp magnifies each triangle of the portrait by its own affine map. Against the rigid head (the
portrait's face as it is, turned and scaled to this frame's pose), that map is the expression alone; its largest
singular value σ₁ is how far the triangle's texture is magnified along some direction. Real skin stretches too (the
band under a talking lower lip reaches σ₁ 3–5 against the face at rest), so a triangle *tears* where it is stretched
past both STRETCH_LIMIT and DRIVER_ALLOWANCE times the driver's own stretch of the same triangle: further than skin
stretches on the face that drives it (a portrait shaped unlike the driver, the same move on smaller skin).
"""

from __future__ import annotations

import numpy as np

from avatarcam.tracking import topology as T

# A triangle may always be magnified this far beyond the rigid head (the default of `animator.warp.stretch_limit`;
# the reasons in docs/DESIGN.md, "Expressive peaks").
STRETCH_LIMIT = 2.0
# ... and as far as this many times the driver's own skin is stretched there, against its neutral.
DRIVER_ALLOWANCE = 1.3
# Triangles smaller than this (share of the inter-ocular distance squared) carry too few pixels to tear, and
# side-on triangles of a turned head are foreshortened to slivers whose ratios mean nothing.
MIN_AREA_IOD2 = 0.001
DEGENERATE_IOD2 = 1e-6  # under this a triangle has no shape to measure at all
TEAR_TOLERANCE = 0.05  # a triangle counts as torn this far past its allowance (the limit stops just short of it)


def skin_triangles() -> np.ndarray:
    """The face's triangles whose stretch is watched: all but the eyelids' (a blink folds the lid's skin over the eye, a
    stretch no limit may hold back) and the eyes' and mouth's holes."""
    lids = set(T.RIGHT_EYE) | set(T.LEFT_EYE) | {i for rings in T.LID_RINGS.values() for ring in rings for i in ring}
    triangles = T.face_triangles()
    return triangles[~np.isin(triangles, list(lids)).any(axis=1)]


def edge_vectors(points: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per triangle, its two edge vectors from its first corner, as four arrays: (x₁, y₁, x₂, y₂). 2×2 matrices are
    kept as their four entries throughout: NumPy's batched small-matrix routines cost ~10–100× more."""
    p0, p1, p2 = points[triangles[:, 0], :2], points[triangles[:, 1], :2], points[triangles[:, 2], :2]
    return p1[:, 0] - p0[:, 0], p1[:, 1] - p0[:, 1], p2[:, 0] - p0[:, 0], p2[:, 1] - p0[:, 1]


def linear_maps(rigid: tuple[np.ndarray, ...], dst: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Entries (m₀₀, m₀₁, m₁₀, m₁₁) of each triangle's linear map taking its `rigid` edges onto its `dst` edges:
    M = D R⁻¹, with the columns of R and D the edges."""
    rx1, ry1, rx2, ry2 = rigid
    dx1, dy1, dx2, dy2 = dst
    det = rx1 * ry2 - rx2 * ry1
    i00, i01, i10, i11 = ry2 / det, -rx2 / det, -ry1 / det, rx1 / det
    return dx1 * i00 + dx2 * i10, dx1 * i01 + dx2 * i11, dy1 * i00 + dy2 * i10, dy1 * i01 + dy2 * i11


def largest_singular(m: tuple[np.ndarray, ...]) -> np.ndarray:
    """σ₁ of each 2×2 map: the square root of MᵀM's larger eigenvalue."""
    m00, m01, m10, m11 = m
    a, b, d = m00 * m00 + m10 * m10, m00 * m01 + m10 * m11, m01 * m01 + m11 * m11
    return np.sqrt(np.maximum((a + d) / 2 + np.sqrt(((a - d) / 2) ** 2 + b * b), 0.0))


def triangle_areas(edges: tuple[np.ndarray, ...]) -> np.ndarray:
    x1, y1, x2, y2 = edges
    return np.abs(x1 * y2 - x2 * y1) / 2


def stretch(rigid: np.ndarray, dst: np.ndarray, triangles: np.ndarray, min_area: float) -> np.ndarray:
    """Per triangle, the largest singular value of its affine map from `rigid` to `dst` (2-D points): how far its
    texture is magnified beyond the rigid head. 1 for triangles under `min_area` (px²) in either."""
    before, after = edge_vectors(rigid, triangles), edge_vectors(dst, triangles)
    measured = (triangle_areas(before) >= min_area) & (triangle_areas(after) >= min_area)
    result = np.ones(len(triangles))
    result[measured] = largest_singular(linear_maps([e[measured] for e in before], [e[measured] for e in after]))
    return result


def allowance(driver_stretch: np.ndarray | None, limit: float = STRETCH_LIMIT) -> np.ndarray | float:
    """Per skin triangle, how far it may be stretched: `limit`, or DRIVER_ALLOWANCE times the driver's own stretch
    there where that is more (none known: `limit` everywhere)."""
    if driver_stretch is None:
        return limit
    return np.maximum(limit, DRIVER_ALLOWANCE * driver_stretch)


def tears(
    rigid: np.ndarray, dst: np.ndarray, triangles: np.ndarray, iod: float, driver_stretch: np.ndarray | None
) -> int:
    """How many triangles are stretched past their allowance (with TEAR_TOLERANCE) beyond the rigid head: the
    eval's measure, whatever limit the animator ran with."""
    sigma = stretch(rigid, dst, triangles, MIN_AREA_IOD2 * iod * iod)
    return int(np.count_nonzero(sigma > allowance(driver_stretch) + TEAR_TOLERANCE))
