"""Keeping a piecewise-affine mesh from turning over: a triangle whose winding flips shows its texture mirrored
(a tear beside the head, a halo above it, a torn cheek)."""

from __future__ import annotations

import cv2
import numpy as np

from avatarcam.animators.mesh import signed_areas

FOLD_MIN_WIDTH = 1.0  # px: a triangle narrower than this shows nothing when it turns over
EDGE_CLEARANCE = 1.0  # px past a hull's edge at which a point it passes over rides along
UNFOLD_PASSES = 30  # passes, at most, over the folded triangles (one or two undo most folds)
UNFOLD_STEP = 4.0  # px: the most a point moves in one pass (others' folds get their turn in between)
UNFOLD_AREA = 1.0  # px²: a folded triangle is opened to at least this area (or its rest area, if smaller)


def folded(src: np.ndarray, dst: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Which triangles turn over from `src` to `dst` (their winding flips: drawn, they show their texture
    mirrored). Needles and slivers, under FOLD_MIN_WIDTH wide on either side, have no texture to show and are
    left out."""
    before, after = signed_areas(src, triangles), signed_areas(dst, triangles)
    flipped = before * after < 0
    return flipped & wide(src, triangles, before, flipped) & wide(dst, triangles, after, flipped)


def wide(points: np.ndarray, triangles: np.ndarray, areas: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Which of the triangles `among` are wider than FOLD_MIN_WIDTH (height over the longest edge); measured only
    there, since most frames have none to measure."""
    result = np.zeros(len(triangles), bool)
    p = points[triangles[among]][:, :, :2]
    longest = np.linalg.norm(p - np.roll(p, 1, axis=1), axis=2).max(axis=1)
    result[among] = 2.0 * np.abs(areas[among]) > FOLD_MIN_WIDTH * longest
    return result


def push_outside(points: np.ndarray, polygon: np.ndarray, clearance: np.ndarray) -> np.ndarray:
    """Points inside the convex `polygon` moved away from its centroid until `clearance` past its edge; the
    others as they are."""
    edges = np.roll(polygon, -1, axis=0) - polygon
    kept = np.linalg.norm(edges, axis=1) > 1e-9  # a repeated corner has no edge (and no normal) to test against
    polygon, edges = polygon[kept], edges[kept]
    centre = polygon.mean(axis=0)
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    if ((polygon - centre) @ normals.T).trace() < 0:  # orient the normals outwards whatever the winding
        normals = -normals
    limits = np.einsum("ij,ij->i", normals, polygon)  # inside: normal · x ≤ limit, for every edge
    inside = np.all(points @ normals.T < limits, axis=1)
    rays = points[inside] - centre
    rays /= np.maximum(np.linalg.norm(rays, axis=1, keepdims=True), 1e-9)
    speed = rays @ normals.T  # how fast each ray nears each edge's line
    room = limits - normals @ centre
    exits = np.where(speed > 1e-9, room / np.where(speed > 1e-9, speed, 1.0), np.inf).min(axis=1)
    moved = points.copy()
    moved[inside] = centre + rays * (exits + clearance[inside])[:, None]
    return moved


def push_out_of_hull(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """`points` moved out of the convex hull of `others`, onto its edge (EDGE_CLEARANCE past it)."""
    hull = others[cv2.convexHull(others.astype(np.float32), returnPoints=False).ravel()]
    return push_outside(points, hull, np.full(len(points), EDGE_CLEARANCE))


def unfold(
    dst: np.ndarray, src: np.ndarray, triangles: np.ndarray, movable: np.ndarray, box: tuple[float, float]
) -> None:
    """Moves the `movable` points of `dst` (in place), as little as it takes, until none of `triangles` turns
    over from `src`: a folded one shows hair or background mirrored (a tear beside the head, a halo above it).
    Each pass moves the movable corners of every folded triangle along the gradient of its area to a sliver of
    its own winding, and keeps them inside `box` (low, high); the move grows from zero with the fold, so
    nothing jumps between frames."""
    rest = signed_areas(src, triangles)
    goal = np.sign(rest) * np.minimum(np.abs(rest), UNFOLD_AREA)
    for _ in range(UNFOLD_PASSES):
        short = np.flatnonzero((np.abs(rest) > 0.05) & (signed_areas(dst, triangles) * np.sign(rest) < np.abs(goal)))
        if not len(short):
            return
        for t in short:
            corners = triangles[t]
            p = dst[corners]
            # d(area)/d(corner i) = ½ · the opposite edge turned a quarter: (y_j − y_k, x_k − x_j).
            j, k = p[[1, 2, 0]], p[[2, 0, 1]]
            grad = 0.5 * np.stack([j[:, 1] - k[:, 1], k[:, 0] - j[:, 0]], axis=1)
            grad[~movable[corners]] = 0.0
            norm = float((grad * grad).sum())
            if norm < 0.25:  # the edge it must clear is under a pixel long (two outline points meeting): a
                continue  # needle, whose side flips with the detector's noise; chasing it moved rings far
            area = 0.5 * ((p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[2, 0] - p[0, 0]) * (p[1, 1] - p[0, 1]))
            step = grad * (goal[t] - area) / norm
            dst[corners] += step * min(1.0, UNFOLD_STEP / max(float(np.abs(step).max()), 1e-9))
        dst[movable] = np.clip(dst[movable], *box)
