"""How far an expression may stretch the portrait's skin before its texture tears.

A piecewise-affine warp magnifies each triangle of the portrait by its own affine map. Against the rigid head (the
portrait's face as it is, turned and scaled to this frame's pose), that map is the expression alone. At an
expressive peak (brows thrown up, a wide "O", a grimace) a portrait shaped unlike the driver gets some triangles
magnified far more than skin stretches: their few pixels smear into a hard-edged patch beside unstretched
neighbours (a forehead patch over a brow, a torn chin line under the lip). The limit hands the stretch on to the
neighbours instead: the over-stretched triangles are clipped to the limit and the mesh settles round them by
least squares, while the points a call partner reads (the inner lips, the eyes) stay where the driver put them.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu

from avatarcam.tracking import topology as T

# The most a face triangle's texture may be magnified, along any direction, beyond the rigid head (the default
# of `animator.warp.stretch_limit`; the reasons in docs/DESIGN.md, "Expressive peaks").
STRETCH_LIMIT = 2.0
# Triangles smaller than this (share of the inter-ocular distance squared) in the rigid head carry too few pixels
# to tear, and side-on triangles of a turned head are foreshortened to slivers whose ratios mean nothing.
MIN_AREA_IOD2 = 0.001
LIMIT_ROUNDS = 8  # rounds of clip, then settle the mesh
RELAX = 1.5  # over-relaxed: each round moves half as far again as its settled mesh (converges in fewer rounds)
CLIP_MARGIN = 0.9  # over-stretched triangles are asked for a little less than the limit, for the same reason
TEAR_TOLERANCE = 0.05  # a triangle counts as torn this far past the limit (the rounds stop just short of it)
PINNED = T.INNER_LIPS + T.RIGHT_EYE + T.LEFT_EYE  # the motion a call partner reads: never moved by the limit


def skin_triangles() -> np.ndarray:
    """The face's triangles the limit watches: all but the eyelids' (a blink folds the lid's skin over the eye, a
    stretch no limit may hold back) and the eyes' and mouth's holes."""
    lids = set(T.RIGHT_EYE) | set(T.LEFT_EYE) | {i for rings in T.LID_RINGS.values() for ring in rings for i in ring}
    triangles = T.face_triangles()
    return triangles[~np.isin(triangles, list(lids)).any(axis=1)]


def _edges(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Per triangle, the 2×2 matrix whose columns are its two edge vectors from its first corner."""
    p = points[triangles][:, :, :2]
    return np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], axis=2)


def _inverse(m: np.ndarray) -> np.ndarray:
    """Inverses of 2×2 matrices with non-zero determinants, in closed form (NumPy's batched inverse of small
    matrices costs ~100× more)."""
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    inv = np.stack([np.stack([m[:, 1, 1], -m[:, 0, 1]], 1), np.stack([-m[:, 1, 0], m[:, 0, 0]], 1)], 1)
    return inv / det[:, None, None]


def _largest_singular(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """σ₁ of each 2×2 matrix with its singular vectors u₁, v₁ (M v₁ = σ₁ u₁), in closed form: v₁ is the leading
    eigenvector of MᵀM."""
    mtm = np.einsum("tki,tkj->tij", m, m)
    a, b, d = mtm[:, 0, 0], mtm[:, 0, 1], mtm[:, 1, 1]
    half_gap = np.sqrt(((a - d) / 2) ** 2 + b * b)
    largest = (a + d) / 2 + half_gap
    sigma = np.sqrt(np.maximum(largest, 0.0))
    # Eigenvector of [[a, b], [b, d]] for `largest` from its first row; where that row vanishes (b = 0 and the
    # first axis is the larger), the first axis itself.
    v = np.stack([b, largest - a], 1)
    flat = np.hypot(v[:, 0], v[:, 1]) < 1e-12
    v[flat] = np.where((a >= d)[flat, None], [1.0, 0.0], [0.0, 1.0])
    v /= np.hypot(v[:, 0], v[:, 1])[:, None]
    u = np.einsum("tij,tj->ti", m, v) / np.maximum(sigma, 1e-12)[:, None]
    return sigma, u, v


def stretch(rigid: np.ndarray, dst: np.ndarray, triangles: np.ndarray, min_area: float) -> np.ndarray:
    """Per triangle, the largest singular value of its affine map from `rigid` to `dst` (2-D points): how far its
    texture is magnified beyond the rigid head. 1 for triangles under `min_area` (px²) in either."""
    before, after = _edges(rigid, triangles), _edges(dst, triangles)
    measured = (np.abs(np.linalg.det(before)) >= 2 * min_area) & (np.abs(np.linalg.det(after)) >= 2 * min_area)
    result = np.ones(len(triangles))
    if measured.any():
        result[measured] = _largest_singular(after[measured] @ _inverse(before[measured]))[0]
    return result


def tears(rigid: np.ndarray, dst: np.ndarray, triangles: np.ndarray, iod: float) -> int:
    """How many triangles are stretched past STRETCH_LIMIT (with TEAR_TOLERANCE) beyond the rigid head: the
    eval's measure, whatever limit the animator ran with."""
    sigma = stretch(rigid, dst, triangles, MIN_AREA_IOD2 * iod * iod)
    return int(np.count_nonzero(sigma > STRETCH_LIMIT + TEAR_TOLERANCE))


class StretchLimiter:
    """Keeps every skin triangle within `limit` of the rigid head, the rest of the mesh giving way smoothly.

    Each round clips the over-stretched triangles' maps to the limit (same place and turn, singular values capped),
    asks every other triangle to keep the shape it has, and moves the free points to the least-squares fit of all
    those edge vectors (one sparse system, factorized once per avatar)."""

    def __init__(self, n_points: int, limit: float = STRETCH_LIMIT) -> None:
        self.limit = limit
        self.triangles = skin_triangles()
        edges = np.concatenate([self.triangles[:, [0, 1]], self.triangles[:, [1, 2]], self.triangles[:, [2, 0]]])
        self._edges = edges
        rows = np.repeat(np.arange(len(edges)), 2)
        values = np.tile([-1.0, 1.0], len(edges))
        operator = csc_matrix((values, (rows, edges.ravel())), shape=(len(edges), n_points))
        self._free = np.setdiff1d(np.unique(self.triangles), PINNED)
        self._fixed = np.setdiff1d(np.arange(n_points), self._free)
        self._on_free = operator[:, self._free]
        self._on_fixed = operator[:, self._fixed]
        self._solve = splu(csc_matrix(self._on_free.T @ self._on_free)).solve

    def __call__(self, rigid: np.ndarray, dst: np.ndarray, iod: float) -> np.ndarray:
        """`dst` (2-D points) with no skin triangle stretched past the limit beyond `rigid`."""
        dst = np.array(dst[:, :2], np.float64)
        min_area = MIN_AREA_IOD2 * iod * iod
        before = _edges(rigid, self.triangles)
        measured = np.abs(np.linalg.det(before)) >= 2 * min_area
        undo_rigid = _inverse(before[measured])
        rigid_edges = rigid[self._edges[:, 1], :2] - rigid[self._edges[:, 0], :2]
        pinned_pull = self._on_fixed @ dst[self._fixed]
        for _ in range(LIMIT_ROUNDS):
            after = _edges(dst, self.triangles)
            big = measured.copy()
            big[measured] = np.abs(np.linalg.det(after[measured])) >= 2 * min_area
            maps = after[big] @ undo_rigid[big[measured]]
            sigma, u, v = _largest_singular(maps)
            over = sigma > self.limit
            if not over.any():
                break
            # Clipped: the largest singular value brought down to the limit (same place and turn).
            maps[over] -= ((sigma[over] - self.limit * CLIP_MARGIN)[:, None, None] * u[over][:, :, None]) * v[over][
                :, None, :
            ]
            # Each edge's wanted vector: the over-stretched triangles' clipped maps applied to the rigid edges; every
            # other triangle keeps its edges as they are.
            wanted = dst[self._edges[:, 1]] - dst[self._edges[:, 0]]
            clipped = np.flatnonzero(big)[over]
            rows = np.concatenate([clipped, clipped + len(self.triangles), clipped + 2 * len(self.triangles)])
            wanted[rows] = np.einsum("eij,ej->ei", np.tile(maps[over], (3, 1, 1)), rigid_edges[rows])
            rhs = self._on_free.T @ (wanted - pinned_pull)
            settled = np.stack([self._solve(rhs[:, 0]), self._solve(rhs[:, 1])], axis=1)
            dst[self._free] += RELAX * (settled - dst[self._free])
        return dst
