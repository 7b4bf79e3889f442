"""Expressive peaks keep the face whole: the stretch limit, and no sliver fetching pixels from elsewhere."""

from __future__ import annotations

import numpy as np
from face_edits import shape_of, with_shape

from avatarcam.animators.limits import PINNED, StretchLimiter
from avatarcam.animators.warp import MAX_SQUEEZE, WarpAnimator
from avatarcam.config import AnimatorConfig, RetargetConfig, WarpConfig
from avatarcam.motion import expressions
from avatarcam.motion.retarget import Retargeter
from avatarcam.motion.stretch import STRETCH_LIMIT, skin_triangles, stretch, tears
from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import fit_pose
from avatarcam.types import Avatar, Face, Motion


def expressive(face: Face, brows: float = 0.0, corners: float = 0.0, jaw: float = 0.0) -> Face:
    """`face` with its brows thrown up, its mouth corners pulled out and its jaw dropped (canonical units, iod)."""
    shape = shape_of(face)
    shape[T.RIGHT_BROW + T.LEFT_BROW, 1] -= brows
    expressions.move_corners(shape, corners, 0.0)
    expressions.open_mouth(shape, jaw / expressions.JAW_DROP)
    return with_shape(face, shape)


def long_faced(face: Face) -> Face:
    """Another person: `face` twice as tall, so that the same move stretches its skin about half as much."""
    return with_shape(face, shape_of(face) * np.array([1.0, 2.0, 1.0]))


def motion_for(avatar: Avatar, driver: Face, neutral: Face | None = None) -> Motion:
    """The avatar doing what `driver` does relative to `neutral` (the driver's face at rest; by default the
    avatar's own: self-reenactment)."""
    retargeter = Retargeter(RetargetConfig())
    retargeter.set_avatar(avatar.face)
    retargeter(avatar.face if neutral is None else neutral, None)
    return retargeter(driver, None)


def warp(avatar: Avatar, limit: float) -> WarpAnimator:
    animator = WarpAnimator(AnimatorConfig(size=avatar.size, warp=WarpConfig(stretch_limit=limit)))
    animator.prepare(avatar)
    return animator


def test_stretch_reads_the_largest_magnification_beyond_the_rigid_head() -> None:
    rigid = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    triangle = np.array([[0, 1, 2]])
    assert stretch(rigid, rigid * 1.0, triangle, 1.0)[0] == 1.0
    assert np.isclose(stretch(rigid, rigid * [3.0, 1.0], triangle, 1.0)[0], 3.0)  # pulled 3× sideways
    assert stretch(rigid, rigid * [0.01, 1.0], triangle, 1.0)[0] == 1.0  # a sliver: too small to measure


def test_a_long_faced_drivers_peak_tears_a_portrait_without_the_limit_and_not_with_it(astronaut_face: Avatar) -> None:
    """The same brow lift or corner pull on a shorter face stretches its skin further than the driver's: past the
    driver's own stretch (×1.3) and the limit, the portrait tears; the limit hands it on."""
    neutral = long_faced(astronaut_face.face)
    for driver in (expressive(neutral, brows=0.4), expressive(neutral, corners=0.15)):
        motion = motion_for(astronaut_face, driver, neutral)
        torn = warp(astronaut_face, 0.0)
        torn(motion)
        assert torn.last_tears > 0, "the peak must stretch skin past its allowance, or the test proves nothing"
        whole = warp(astronaut_face, STRETCH_LIMIT)
        plan = whole.plan(motion)
        assert whole.last_tears == 0
        # The lips' opening and the eyes are the driver's, exactly: the stretch went to the skin around them.
        assert np.allclose(plan.dst[PINNED], motion.landmarks[PINNED, :2])


def test_skin_stretched_as_far_as_the_drivers_own_is_left_alone(astronaut_face: Avatar) -> None:
    """Self-reenactment: the portrait's own face thrown up to the same peak stretches its skin exactly as the
    driver's: no tear, and nothing moved."""
    motion = motion_for(astronaut_face, expressive(astronaut_face.face, brows=0.4))
    assert motion.driver_stretch is not None and motion.driver_stretch.max() > STRETCH_LIMIT
    animator = warp(astronaut_face, STRETCH_LIMIT)
    plan = animator.plan(motion)
    assert animator.last_tears == 0
    assert np.allclose(plan.dst[: len(motion.landmarks)], motion.landmarks[:, :2], atol=1e-6)


def test_the_limit_leaves_an_ordinary_expression_as_it_is(astronaut_face: Avatar) -> None:
    motion = motion_for(astronaut_face, expressive(astronaut_face.face, brows=0.05, corners=0.03))
    plan = warp(astronaut_face, STRETCH_LIMIT).plan(motion)
    assert np.array_equal(plan.dst[: len(motion.landmarks)], motion.landmarks[:, :2].astype(np.float64))


def test_the_limiter_hands_the_stretch_to_the_neighbours(astronaut_face: Avatar) -> None:
    neutral = long_faced(astronaut_face.face)
    motion = motion_for(astronaut_face, expressive(neutral, brows=0.4), neutral)
    rigid, iod = warp(astronaut_face, 0.0).rigid_head(*fit_pose(motion.landmarks.astype(np.float64)))
    limiter = StretchLimiter(len(motion.landmarks))
    sigma = stretch(rigid, motion.landmarks, limiter.triangles, 0.001 * iod * iod)
    torn = limiter.triangles[sigma > STRETCH_LIMIT]
    limited = limiter(rigid, motion.landmarks, iod)
    assert tears(rigid, limited, limiter.triangles, iod, None) == 0
    moved = np.flatnonzero(np.linalg.norm(limited - motion.landmarks[:, :2], axis=1) > 0.5)
    assert len(set(moved) - set(torn.ravel())) > 0, "points beyond the torn triangles give way too"
    assert set(skin_triangles().ravel()).isdisjoint(T.RIGHT_EYE + T.LEFT_EYE), "the eyelids are never held back"


def test_a_squeezed_face_triangle_paints_no_cell(astronaut_face: Avatar) -> None:
    """A face triangle squeezed to a sliver fetched pixels from far off the cells it painted (a speck of teeth on
    the cheek): it paints none now, its neighbours cover them."""
    motion = motion_for(astronaut_face, astronaut_face.face)
    landmarks = motion.landmarks.copy()
    animator = warp(astronaut_face, 0.0)
    triangles = animator._triangles
    face_from = len(animator._background)
    # Squeeze one cheek triangle: move a corner onto the middle of the opposite edge.
    a, b, c = next(t for t in triangles[face_from:] if 205 in t)
    moved = {a, b, c} - {205}
    landmarks[205, :2] = np.mean([landmarks[i, :2] for i in moved], axis=0) + 0.05
    plan = animator.plan(Motion(landmarks, motion.rotation, True))
    painted = np.unique(plan.index_map[plan.index_map >= face_from])
    squeeze = np.linalg.norm(plan.affines[painted, :, :2], axis=(1, 2))
    assert squeeze.max() <= MAX_SQUEEZE * np.sqrt(2.0)
