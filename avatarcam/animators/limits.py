"""The stretch limit: an expressive peak's stretch handed to the neighbouring skin instead of torn.

At an expressive peak (brows thrown up, a wide "O", a grimace) a portrait shaped unlike the driver gets some
triangles magnified far more than skin stretches (motion/stretch.py): their few pixels smear into a hard-edged patch
beside unstretched neighbours (a forehead patch over a brow, a torn chin line under the lip). The over-stretched
triangles are clipped to their allowance and the mesh settles round them by least squares, while the points a call
partner reads (the inner lips, the eyes) stay where the driver put them.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu

from avatarcam.motion.stretch import (
    MIN_AREA_IOD2,
    STRETCH_LIMIT,
    allowance,
    edge_vectors,
    largest_singular,
    linear_maps,
    skin_triangles,
    triangle_areas,
)
from avatarcam.tracking import topology as T

LIMIT_ROUNDS = 40  # rounds of clip, then settle the mesh, at most (most frames need none; a peak 1–6)
RELAX = 1.9  # over-relaxed: each round overshoots its settled mesh by 90% (on four of the expressive clips'
# hardest pairs, 6 rounds at p95 and 25 at most, against 8 and 30 at 1.5)
CLIP_MARGIN = 0.8  # over-stretched triangles are asked for this share of their allowance, so that they settle under it
PINNED = T.INNER_LIPS + T.RIGHT_EYE + T.LEFT_EYE  # the motion a call partner reads: never moved by the limit


def _clip(m: tuple[np.ndarray, ...], sigma: np.ndarray, limit: float) -> tuple[np.ndarray, ...]:
    """The maps with σ₁ brought down to `limit`: M − (σ₁ − limit) u₁v₁ᵀ, where v₁ is MᵀM's leading eigenvector and
    u₁ = M v₁ / σ₁ (same place and turn; the other direction as it was)."""
    m00, m01, m10, m11 = m
    a, b = m00 * m00 + m10 * m10, m00 * m01 + m10 * m11
    vx, vy = b, sigma * sigma - a  # from MᵀM's first row; where it vanishes (b = 0), the first axis itself
    flat = np.hypot(vx, vy) < 1e-12
    vx, vy = np.where(flat, 1.0, vx), np.where(flat, 0.0, vy)
    norm = np.hypot(vx, vy)
    vx, vy = vx / norm, vy / norm
    ux, uy = (m00 * vx + m01 * vy) / sigma, (m10 * vx + m11 * vy) / sigma
    cut = sigma - limit
    return m00 - cut * ux * vx, m01 - cut * ux * vy, m10 - cut * uy * vx, m11 - cut * uy * vy


class StretchLimiter:
    """Keeps every skin triangle within its allowance of the rigid head, the rest of the mesh giving way smoothly.

    Each round clips the over-stretched triangles' maps to the limit (same place and turn, singular values capped),
    asks every other triangle to keep the shape it has, and moves the free points to the least-squares fit of all
    those edge vectors (one sparse system, factorized once per avatar)."""

    converged = True  # the last call left no triangle over the limit

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
        on_free = operator[:, self._free]
        self._gather = on_free.T.tocsr()
        self._on_fixed = operator[:, self._fixed]
        self._solve = splu(csc_matrix(on_free.T @ on_free)).solve

    def __call__(
        self, rigid: np.ndarray, dst: np.ndarray, iod: float, driver_stretch: np.ndarray | None = None
    ) -> np.ndarray:
        """`dst` (2-D points) with no skin triangle stretched past its allowance beyond `rigid` (the limit, or more
        where the driver's own skin stretches further: `driver_stretch`, per skin triangle)."""
        dst = np.array(dst[:, :2], np.float64)
        min_area = MIN_AREA_IOD2 * iod * iod
        before = edge_vectors(rigid, self.triangles)
        measured = triangle_areas(before) >= min_area
        before = tuple(e[measured] for e in before)
        triangles = self.triangles[measured]
        allowed = np.broadcast_to(allowance(driver_stretch, self.limit), measured.shape)[measured]
        n = len(self.triangles)
        rows = np.flatnonzero(measured)
        rigid_edges = rigid[self._edges[:, 1], :2] - rigid[self._edges[:, 0], :2]
        pinned_pull = self._on_fixed @ dst[self._fixed]
        self.converged = False
        for _ in range(LIMIT_ROUNDS):
            after = edge_vectors(dst, triangles)
            maps = linear_maps(before, after)
            sigma = largest_singular(maps)
            over = (sigma > allowed) & (triangle_areas(after) >= min_area)
            if not over.any():
                self.converged = True
                break
            m00, m01, m10, m11 = _clip(tuple(m[over] for m in maps), sigma[over], allowed[over] * CLIP_MARGIN)
            # Each edge's wanted vector: the over-stretched triangles' clipped maps applied to their rigid edges;
            # every other triangle keeps its edges as they are.
            wanted = dst[self._edges[:, 1]] - dst[self._edges[:, 0]]
            for k in range(3):
                edge = rows[over] + k * n
                ex, ey = rigid_edges[edge, 0], rigid_edges[edge, 1]
                wanted[edge, 0], wanted[edge, 1] = m00 * ex + m01 * ey, m10 * ex + m11 * ey
            settled = self._solve(self._gather @ (wanted - pinned_pull))
            dst[self._free] += RELAX * (settled - dst[self._free])
        return dst
