"""The warp animator on the default avatar: identity at rest, background fixed, mouth interior, landmark accuracy."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from face_edits import close_eyes, open_mouth, posed, shape_of, with_shape

from avatarcam.animators.folds import folded, push_outside
from avatarcam.animators.interior import blur_scale, match_lip_colour
from avatarcam.animators.mesh import fill_holes
from avatarcam.animators.warp import EYE_AXES, WarpAnimator, irises_follow_lids, lid_gaps
from avatarcam.colour import chroma, to_lab
from avatarcam.config import AnimatorConfig, RetargetConfig, WarpConfig, load_config
from avatarcam.eval.metrics import lips_kept
from avatarcam.motion.retarget import Retargeter
from avatarcam.registry import ANIMATORS
from avatarcam.tracking import topology as T
from avatarcam.tracking.facemesh import FaceMeshDetector
from avatarcam.tracking.segmentation import claimed_edges, push_pull
from avatarcam.tracking.tracker import face_from_landmarks
from avatarcam.types import Avatar, Face, Frame, Motion

# Inner-lip chains, corner to corner (MediaPipe topology): lower 78→95→…→308, upper 78→191→…→308.
INNER_LOWER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]


def warp_for(avatar: Avatar, **settings) -> WarpAnimator:
    """A warp animator prepared for `avatar`; `settings` are WarpConfig's (grid, mouth_interior)."""
    animator = WarpAnimator(AnimatorConfig(size=avatar.size, warp=WarpConfig(**settings)))
    animator.prepare(avatar)
    return animator


def motion_for(avatar: Avatar, driver: Face, frame: Frame | None = None) -> Motion:
    """The avatar doing what `driver` does relative to the avatar's own neutral face."""
    retargeter = Retargeter(RetargetConfig())
    retargeter.set_avatar(avatar.face)
    retargeter(avatar.face, None)  # reference: the neutral face
    return retargeter(driver, frame)


def polygon_mask(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[:, :2]).astype(np.int32)], 1)
    return mask > 0


def luminance(image: np.ndarray, mask: np.ndarray) -> float:
    return float(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[mask].mean())


def lip_luminance(avatar: Avatar) -> float:
    """Mean luminance of the avatar's own lips (outer lip contour minus the inner one)."""
    lm = avatar.face.landmarks
    mask = polygon_mask(avatar.image.shape, lm[T.OUTER_LIPS]) & ~polygon_mask(avatar.image.shape, lm[T.INNER_LIPS])
    return luminance(avatar.image, mask)


def inner_mouth(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The target inner-lip polygon, shrunk by a pixel so the lip edges do not count."""
    mask = polygon_mask(image.shape, landmarks[T.INNER_LIPS]).astype(np.uint8)
    return cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0


@pytest.fixture(scope="module")
def closed_mouth_avatar(astronaut_face: Avatar) -> Avatar:
    """The astronaut with closed lips (she smiles with her teeth showing): an avatar with no mouth interior."""
    face = astronaut_face.face
    shape = shape_of(face)
    gap = shape[T.MOUTH_LOWER, 1] - shape[T.MOUTH_UPPER, 1]
    closing = open_mouth(face, -gap)
    image = warp_for(astronaut_face)(motion_for(astronaut_face, closing))
    # Its landmarks: where the warp put them, with the inner lips exactly closed.
    closed_shape = shape_of(closing)
    closed_shape[INNER_LOWER] = closed_shape[INNER_UPPER]
    closed = with_shape(closing, closed_shape)
    assert np.linalg.norm(closed.xy[T.MOUTH_UPPER] - closed.xy[T.MOUTH_LOWER]) < 0.1
    return Avatar(name="closed", image=image, face=closed, key="closed-mouth")


def test_neutral_motion_returns_the_portrait(astronaut_face: Avatar) -> None:
    out = warp_for(astronaut_face)(motion_for(astronaut_face, astronaut_face.face))
    assert out.shape == astronaut_face.image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(np.int16) - astronaut_face.image).mean() < 1.0


def test_output_shape_and_dtype_at_another_size() -> None:
    from avatarcam.avatar import load_avatar

    avatar = load_avatar(None, 192)
    animator = warp_for(avatar, grid=64)  # a coarser warp field than the image: upsampled maps
    out = animator(motion_for(avatar, posed(avatar.face, yaw=10.0)))
    assert out.shape == (192, 192, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert animator.name == "warp"


def test_head_turn_moves_the_face_and_keeps_the_background(astronaut_face: Avatar) -> None:
    portrait = astronaut_face.image.astype(np.int16)
    out = warp_for(astronaut_face)(motion_for(astronaut_face, posed(astronaut_face.face, yaw=20.0, roll=8.0)))
    diff = np.abs(out.astype(np.int16) - portrait).mean(axis=2)
    face = polygon_mask(out.shape, astronaut_face.face.landmarks[T.FACE_OVAL])
    assert diff[face].mean() > 10.0  # the face moved
    corner = 24
    for patch in (diff[:corner, :corner], diff[:corner, -corner:], diff[-corner:, :corner], diff[-corner:, -corner:]):
        assert patch.mean() < 2.0  # the image corners (background) stay put


def test_output_landmarks_follow_the_target(astronaut_face: Avatar) -> None:
    """The core accuracy property: MediaPipe finds the drawn face where the motion asked for it."""
    motion = motion_for(astronaut_face, posed(astronaut_face.face, yaw=15.0, pitch=-5.0, roll=8.0))
    out = warp_for(astronaut_face)(motion)
    detector = FaceMeshDetector(static=True)
    try:
        found = detector(out)
    finally:
        detector.close()
    assert found is not None
    target = motion.landmarks[:468, :2]
    error = np.linalg.norm(found[0][:468, :2] - target, axis=1)
    unmoved = np.linalg.norm(astronaut_face.face.landmarks[:468, :2] - target, axis=1)
    assert unmoved.mean() > 3.0  # the target is really somewhere else than the portrait's face
    assert error.mean() < 2.0 and np.percentile(error, 90) < 4.0  # pixels, in a 256² image
    assert error.mean() < 0.5 * unmoved.mean()


def _driver_with_interior(avatar: Avatar, jaw: float, colour: tuple[int, int, int]) -> tuple[Frame, Face]:
    """A driver frame: `avatar` with its jaw dropped by `jaw` and its open mouth painted `colour` inside."""
    driver_face = open_mouth(avatar.face, jaw)
    driver_image = warp_for(avatar)(motion_for(avatar, driver_face))
    cv2.fillPoly(driver_image, [np.round(driver_face.xy[T.INNER_LIPS]).astype(np.int32)], colour)
    return Frame(driver_image, 0, 0), driver_face


def core(mask: np.ndarray, pixels: int) -> np.ndarray:
    """The mask less its rim of `pixels` (where the interior fades in under the lips)."""
    return cv2.erode(mask.astype(np.uint8), np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)) > 0


def test_open_mouth_with_a_driver_shows_the_driver_interior_not_smeared_lips(closed_mouth_avatar: Avatar) -> None:
    avatar = closed_mouth_avatar
    frame, driver_face = _driver_with_interior(avatar, 0.2, (45, 20, 25))  # a dark open mouth
    motion = motion_for(avatar, driver_face, frame)
    interior = inner_mouth(frame.image, motion.landmarks)
    assert interior.sum() > 100  # a wide-open mouth

    out = warp_for(avatar)(motion, frame, driver_face)
    lips = lip_luminance(avatar)
    assert luminance(out, core(interior, 3)) < 0.5 * lips
    # The interior is the driver's own (its frame and face are used), not the dark fill drawn without a driver.
    assert not np.array_equal(out[interior], warp_for(avatar)(motion)[interior])
    # Without the interior the stretched portrait mouth (lips) shows instead: bright.
    plain = warp_for(avatar, mouth_interior=False)(motion, frame, driver_face)
    assert luminance(plain, interior) > 0.8 * lips


def test_the_interior_fades_in_under_the_avatars_own_lips(closed_mouth_avatar: Avatar) -> None:
    """No cut-out edge and no driver's lip rim: just inside the lips the avatar's own lip colour shows, and the
    driver's interior only deeper in."""
    avatar = closed_mouth_avatar
    frame, driver_face = _driver_with_interior(avatar, 0.25, (20, 120, 20))  # green: easy to tell apart
    motion = motion_for(avatar, driver_face, frame)
    animator = warp_for(avatar, stretch_limit=0.0)
    out = animator(motion, frame, driver_face)
    interior = polygon_mask(out.shape, motion.landmarks[T.INNER_LIPS])
    rim = interior & ~core(interior, 1)
    lip = animator._look.lip_colour
    assert np.abs(out[rim].astype(np.float32) - lip).mean() < np.abs(out[core(interior, 4)] - lip).mean() / 2

    def greenness(pixels: np.ndarray) -> float:
        return float((pixels[:, 1] - (pixels[:, 0] + pixels[:, 2]) / 2).mean())

    assert greenness(out[core(interior, 4)].astype(np.float32)) > greenness(out[rim].astype(np.float32)) + 10


def test_open_mouth_without_a_driver_frame_is_dark_inside(closed_mouth_avatar: Avatar) -> None:
    avatar = closed_mouth_avatar
    motion = motion_for(avatar, open_mouth(avatar.face, 0.2))  # no driver frame or face given to the animator
    interior = inner_mouth(avatar.image, motion.landmarks)
    assert interior.sum() > 100
    lips = lip_luminance(avatar)
    out = warp_for(avatar)(motion)
    assert luminance(out, interior) < 0.6 * lips
    plain = warp_for(avatar, mouth_interior=False)(motion)
    assert luminance(plain, interior) > 0.8 * lips  # what it would be: smeared lips


def test_closed_mouth_stays_closed(closed_mouth_avatar: Avatar) -> None:
    avatar = closed_mouth_avatar
    out = warp_for(avatar)(motion_for(avatar, avatar.face))
    assert np.abs(out.astype(np.int16) - avatar.image).mean() < 1.0


def test_animator_needs_prepare(astronaut_face: Avatar) -> None:
    animator = WarpAnimator(AnimatorConfig(size=256))
    with pytest.raises(RuntimeError, match="prepare"):
        animator(Motion(astronaut_face.face.landmarks, astronaut_face.face.rotation))


def test_registry_creates_by_name_and_lists_the_available_ones() -> None:
    assert "warp" in ANIMATORS.names()
    animator = ANIMATORS.create("warp", AnimatorConfig(name="warp", size=256))
    assert isinstance(animator, WarpAnimator) and animator.name == "warp"
    with pytest.raises(ValueError, match=r"unknown animator 'nope' \(valid: .*warp"):
        ANIMATORS.create("nope", AnimatorConfig())
    with pytest.raises(ValueError, match=r"unknown animator.name 'nope' \(valid: .*warp"):  # a config says it first
        load_config(overrides={"animator.name": "nope"})


def test_a_registered_animator_is_created(astronaut_face: Avatar, monkeypatch: pytest.MonkeyPatch) -> None:
    class Still:
        name = "still"

        def __init__(self, config: AnimatorConfig) -> None:
            self.config = config

        def prepare(self, avatar: Avatar) -> None:
            self.image = avatar.image

        def __call__(self, motion: Motion, driver: Frame | None = None, driver_face: Face | None = None) -> np.ndarray:
            return self.image

        def close(self) -> None:
            pass

    monkeypatch.setattr(ANIMATORS, "entries", dict(ANIMATORS.entries))  # the registration ends with the test
    ANIMATORS.add("still", Still)
    assert "still" in ANIMATORS.names()
    created = ANIMATORS.create("still", AnimatorConfig(name="still"))
    assert isinstance(created, Still) and created.config.name == "still"
    created.prepare(astronaut_face)
    assert created(Motion(astronaut_face.face.landmarks, np.eye(3))) is astronaut_face.image


def test_face_from_landmarks_round_trip(astronaut_face: Avatar) -> None:
    again = face_from_landmarks(astronaut_face.face.landmarks)
    np.testing.assert_allclose(again.rotation, astronaut_face.face.rotation, atol=1e-6)
    assert again.scale == pytest.approx(astronaut_face.face.scale)


def normals(points: np.ndarray) -> list[np.ndarray]:
    out = []
    for *_, (a, b) in EYE_AXES:
        along = (points[b] - points[a]) / np.linalg.norm(points[b] - points[a])
        out.append(np.array([-along[1], along[0]]))
    return out


def test_closed_eyes_take_the_irises_with_the_lids(astronaut_face: Avatar) -> None:
    """Fully closed lids pull the iris points onto the lid line (no iris or sclera poking through); open eyes
    leave them alone."""
    lm = astronaut_face.face.landmarks[:, :2].astype(np.float64)
    gaps = lid_gaps(lm)
    assert np.array_equal(irises_follow_lids(lm, gaps), lm)
    closed = close_eyes(astronaut_face.face, 1.0).landmarks[:, :2].astype(np.float64)
    moved = irises_follow_lids(closed, gaps)
    for (upper, lower, iris, _), axis in zip(EYE_AXES, normals(moved), strict=True):
        before = np.abs((closed[iris] - (closed[upper] + closed[lower]) / 2) @ axis)
        after = np.abs((moved[iris] - (moved[upper] + moved[lower]) / 2) @ axis)
        assert before.max() > 1.0  # the irises stuck out of the closed eye
        assert after.max() < 0.25  # now they lie on the lid line


def test_the_background_stays_still_while_the_head_moves(astronaut_face: Avatar) -> None:
    """With a person mask the warped person is laid over a clean plate: the background around the head, where a
    plain mesh warp stretches it along with the hair, stays exactly where it was."""
    assert astronaut_face.mask is not None
    shift = (14.0, -8.0)
    out = warp_for(astronaut_face)(motion_for(astronaut_face, posed(astronaut_face.face, shift=shift)))
    person = (astronaut_face.mask > 0.05).astype(np.uint8)
    moved_person = np.roll(person, (int(shift[1]), int(shift[0])), axis=(0, 1))
    near_person = cv2.dilate(person | moved_person, np.ones((41, 41), np.uint8)) > 0
    far_from_person = cv2.dilate(person | moved_person, np.ones((9, 9), np.uint8)) == 0
    ring = near_person & far_from_person  # background close around the head, before and after the move
    assert ring.sum() > 500
    changed = np.abs(out.astype(np.int16) - astronaut_face.image).mean(axis=2) > 12
    assert changed[ring].mean() < 0.02


def test_push_outside_moves_only_the_points_inside() -> None:
    square = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    points = np.array([[7.0, 5.0], [20.0, 5.0], [5.0, 4.0]])
    clearance = np.full(3, 2.0)
    moved = push_outside(points, square, clearance)
    assert np.allclose(moved[0], [12.0, 5.0])  # out along the ray from the centre, 2 past the edge
    assert np.allclose(moved[1], [20.0, 5.0])  # already outside: untouched
    assert np.allclose(moved[2], [5.0, -2.0])
    assert np.allclose(push_outside(points, square[::-1], clearance), moved)  # either winding
    assert np.allclose(push_outside(points, np.insert(square, 1, square[0], axis=0), clearance), moved)  # a repeat


def test_the_driver_interior_takes_the_avatar_light_and_keeps_its_colours() -> None:
    lipstick, dark_lips = np.array([200.0, 60.0, 70.0]), np.array([100.0, 40.0, 45.0])
    teeth, tongue = np.array([225.0, 215.0, 200.0]), np.array([150.0, 50.0, 60.0])
    interior = np.stack([lipstick, teeth, tongue])[None]  # (1, 3, 3): one row of pixels
    out = match_lip_colour(interior, lipstick, dark_lips)[0]
    lab_in, lab_out = to_lab(interior.astype(np.uint8))[0], to_lab(out[None].astype(np.uint8))[0]
    assert np.all(lab_out[:, 0] < 0.8 * lab_in[:, 0])  # the avatar's darker light
    assert np.abs(lab_out[:, 1:] - lab_in[:, 1:]).max() < 8  # the driver's own colours: no tinted teeth
    assert out[1].mean() > 2 * out[2].mean()  # still teeth against a darker tongue: the interior keeps its detail
    # The same lips on both sides (the same face) leave the interior as it is.
    assert np.abs(match_lip_colour(interior, lipstick, lipstick) - interior).max() < 1


@pytest.fixture(scope="module")
def turned_avatar(astronaut_face: Avatar) -> Avatar:
    """The astronaut's landmarks turned 55°: the hair ring behind her far cheek projects into her face."""
    face = posed(astronaut_face.face, yaw=55.0)
    return Avatar(name="turned", image=astronaut_face.image, face=face, key="turned", mask=astronaut_face.mask)


def test_a_turned_portraits_rings_stay_outside_its_face(turned_avatar: Avatar) -> None:
    animator = warp_for(turned_avatar)
    hull = cv2.convexHull(np.ascontiguousarray(turned_avatar.face.landmarks[:, :2]))
    rings = animator._src[animator._ring_slice]
    assert max(cv2.pointPolygonTest(hull, (float(x), float(y)), True) for x, y in rings) < 0
    # The moved ring points keep their offset as the head moves: at rest nothing moves.
    out = animator(motion_for(turned_avatar, turned_avatar.face))
    assert np.abs(out.astype(np.int16) - turned_avatar.image).mean() < 1.0


def test_the_plate_never_keeps_the_face_where_the_segmenter_missed_it(astronaut_face: Avatar) -> None:
    """A profile's nose against a dark background often falls outside the person mask: it must still be painted
    out of the background plate, or a copy of it stays behind when the head turns."""
    lm = astronaut_face.face.landmarks
    face = polygon_mask(
        astronaut_face.image.shape, lm[cv2.convexHull(np.ascontiguousarray(lm[:, :2]), returnPoints=False).ravel()]
    )
    missed = astronaut_face.mask.copy()
    missed[face] = 0.0  # the segmenter saw no face at all
    avatar = Avatar(name="missed", image=astronaut_face.image, face=astronaut_face.face, key="missed", mask=missed)
    plate = warp_for(avatar)._look.plate
    diff = np.abs(plate.astype(np.int16) - astronaut_face.image).mean(axis=2)
    assert (diff[face] > 20).mean() > 0.5


@pytest.mark.parametrize(
    "pose",
    [
        dict(yaw=40.0),
        dict(yaw=-40.0, pitch=15.0),
        dict(pitch=-25.0, roll=20.0),
        dict(shift=(400.0, 0.0)),  # the driver slides far aside: the head eases to a stop at the frame's edge
        dict(shift=(0.0, 400.0), pitch=20.0),
        dict(zoom=1.6, yaw=30.0),
    ],
)
def test_no_triangle_turns_over_at_the_hardest_poses(astronaut_face: Avatar, pose: dict) -> None:
    """A turned-over triangle draws its texture mirrored: a tear beside the head or a torn cheek."""
    animator = warp_for(astronaut_face)
    retargeter = Retargeter(RetargetConfig())
    retargeter.set_avatar(astronaut_face.face, astronaut_face.size)
    frame = Frame(np.zeros((1024, 1024, 3), np.uint8), 0)
    retargeter(astronaut_face.face, frame)
    driver_face = open_mouth(posed(astronaut_face.face, **pose), 0.3)
    animator(retargeter(driver_face, frame), frame, driver_face)
    assert animator.last_folds == 0


def test_folded_finds_a_triangle_turned_over() -> None:
    src = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    dst = src.copy()
    dst[3] = [-5.0, -5.0]  # the second triangle's corner passes over its opposite edge
    triangles = np.array([[0, 1, 2], [1, 3, 2]])
    assert folded(src, dst, triangles).tolist() == [False, True]


def test_fill_holes_gives_each_empty_cell_its_nearest_triangle() -> None:
    index_map = np.full((4, 6), -1, np.int32)
    index_map[0, 0], index_map[3, 5] = 2, 9
    filled = fill_holes(index_map)
    assert filled[0, 1] == 2 and filled[1, 0] == 2 and filled[3, 4] == 9 and filled[2, 5] == 9
    assert (filled >= 0).all()


def test_a_smiles_own_teeth_stay_while_the_driver_keeps_its_mouth_shut(
    astronaut_face: Avatar, closed_mouth_avatar: Avatar
) -> None:
    """The astronaut smiles with her teeth showing; a driver whose mouth is shut has no interior to lend, and
    pasting its lips there made the grin a dark hole."""
    driver = Frame(closed_mouth_avatar.image, 0, 0)
    retargeter = Retargeter(RetargetConfig())
    retargeter.set_avatar(astronaut_face.face)
    retargeter(closed_mouth_avatar.face, driver)  # the driver's neutral: mouth shut
    motion = retargeter(closed_mouth_avatar.face, driver)
    out = warp_for(astronaut_face)(motion, driver, closed_mouth_avatar.face)
    teeth = inner_mouth(astronaut_face.image, astronaut_face.face.landmarks)
    assert teeth.sum() > 30
    assert np.abs(out.astype(np.int16) - astronaut_face.image)[teeth].mean() < 3.0


def test_a_greyscale_portrait_keeps_a_grey_mouth(astronaut_face: Avatar) -> None:
    grey_image = cv2.cvtColor(cv2.cvtColor(astronaut_face.image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    grey_avatar = dataclasses.replace(astronaut_face, image=grey_image, mask=None)
    driver_face = open_mouth(astronaut_face.face, 0.25)
    driver_image = warp_for(astronaut_face)(motion_for(astronaut_face, driver_face))
    cv2.fillPoly(driver_image, [np.round(driver_face.xy[T.INNER_LIPS]).astype(np.int32)], (40, 200, 60))  # green
    frame = Frame(driver_image, 0, 0)
    out = warp_for(grey_avatar)(motion_for(grey_avatar, driver_face, frame), frame, driver_face)
    assert chroma(out).max() < 2.0  # 8-bit rounding only


def test_push_pull_fills_a_hole_smoothly_from_its_surroundings() -> None:
    """A hole between a red and a blue background fills with a blend of them and no streaks (Telea's boundary
    inpainting drew bright radial fans from a hole's rim)."""
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, :32], image[:, 32:] = (200, 30, 30), (30, 30, 200)
    image[:2, 20:44] = 255  # a bright rim on the hole's top edge, as a bald head against the frame's top
    known = np.ones((64, 64), np.float32)
    known[2:50, 16:48] = 0.0
    filled = push_pull(image, known).astype(np.float32)
    hole = filled[10:50, 18:46]
    assert hole[..., 1].max() < 90  # the rim does not stream down into the hole
    assert hole[:, :4, 0].mean() > hole[:, -4:, 0].mean() + 60  # red on the left, blue on the right
    assert np.abs(np.diff(hole, axis=0)).max() < 20  # smooth down the hole: no streaks (Telea: 50)
    assert np.array_equal(filled[known > 0], image[known > 0].astype(np.float32))


def test_a_shut_eye_is_a_lash_line_without_white_specks(astronaut_face: Avatar) -> None:
    motion = motion_for(astronaut_face, close_eyes(astronaut_face.face, 1.0))
    animator = warp_for(astronaut_face)
    out = animator(motion)
    lash_light = max(float(np.mean(colour)) for colour in animator._look.lash_colours)
    for contour in (T.RIGHT_EYE, T.LEFT_EYE):
        eye = polygon_mask(out.shape, motion.landmarks[contour])
        assert eye.sum() > 0
        assert out[eye].mean(axis=1).max() < lash_light + 40  # no sclera or highlight squeezed between the lids


def test_blur_scale_reads_how_soft_a_face_is(astronaut_face: Avatar) -> None:
    lm = astronaut_face.face.landmarks
    scales = [
        blur_scale(cv2.GaussianBlur(astronaut_face.image, (0, 0), s) if s else astronaut_face.image, lm)
        for s in (0, 2, 4)
    ]
    assert scales[0] < 1.0 < scales[1] < scales[2]


def test_a_blurred_portrait_gets_a_mouth_interior_as_soft_as_itself(astronaut_face: Avatar) -> None:
    """Crisp teeth pasted into a low-resolution face look pasted on."""
    soft = dataclasses.replace(astronaut_face, image=cv2.GaussianBlur(astronaut_face.image, (0, 0), 3.0), mask=None)
    driver_face = open_mouth(astronaut_face.face, 0.25)
    driver_image = warp_for(astronaut_face)(motion_for(astronaut_face, driver_face))
    stripes = np.zeros_like(driver_image)
    stripes[:, ::2] = 255  # one-pixel teeth: all edge
    mouth = polygon_mask(driver_image.shape, driver_face.xy[T.INNER_LIPS])
    driver_image[mouth] = stripes[mouth]
    frame = Frame(driver_image, 0, 0)
    motion = motion_for(soft, driver_face, frame)
    animator = warp_for(soft)
    assert animator._look.softness > 0.9
    interior = inner_mouth(soft.image, motion.landmarks)
    softened = cv2.Laplacian(cv2.cvtColor(animator(motion, frame, driver_face), cv2.COLOR_RGB2GRAY), cv2.CV_32F)
    animator._look = dataclasses.replace(animator._look, softness=0.0)
    crisp = cv2.Laplacian(cv2.cvtColor(animator(motion, frame, driver_face), cv2.COLOR_RGB2GRAY), cv2.CV_32F)
    softened, crisp = softened[interior].std(), crisp[interior].std()
    assert softened < 0.5 * crisp


def test_a_smiles_own_teeth_give_way_gradually_as_the_driver_opens(
    astronaut_face: Avatar, closed_mouth_avatar: Avatar
) -> None:
    """A hard switch between the smile's own teeth and the driver's interior flickered at the threshold."""
    from avatarcam.animators.warp import OWN_TEETH_FADE, _mouth_opening

    closed = closed_mouth_avatar.face
    driver = Frame(closed_mouth_avatar.image, 0, 0)
    teeth = inner_mouth(astronaut_face.image, astronaut_face.face.landmarks)
    changes = []
    for amount in np.linspace(0.0, 0.012, 13):
        face = open_mouth(closed, float(amount))
        retargeter = Retargeter(RetargetConfig())
        retargeter.set_avatar(astronaut_face.face)
        retargeter(closed, driver)
        out = warp_for(astronaut_face)(retargeter(face, driver), driver, face)
        opening = _mouth_opening(face.landmarks[:, :2])
        changes.append((opening, np.abs(out.astype(np.int16) - astronaut_face.image)[teeth].mean()))
    openings, diffs = np.array(changes).T
    assert openings[0] < OWN_TEETH_FADE[0] < OWN_TEETH_FADE[1] < openings[-1]  # the sweep crosses the fade
    assert diffs[openings <= OWN_TEETH_FADE[0]].max() < 3.0  # shut: her own teeth
    assert np.abs(np.diff(diffs)).max() < 0.5 * (diffs.max() - diffs.min())  # no jump between two steps


def test_a_lipstick_drivers_colour_stays_out_of_the_avatars_mouth(closed_mouth_avatar: Avatar) -> None:
    """The lips are the avatar's; only what lies between them is new: a driver wearing lipstick, with a pink mouth
    inside, leaves no colour in the avatar's mouth beyond its own lips' (EVAL.md's LIPSAT and MOUTHSAT ≤ 4)."""
    avatar = closed_mouth_avatar
    frame, driver_face = _driver_with_interior(avatar, 0.25, (205, 80, 120))
    lm = driver_face.xy
    lips = polygon_mask(frame.image.shape, lm[T.OUTER_LIPS]) & ~polygon_mask(frame.image.shape, lm[T.INNER_LIPS])
    frame.image[lips] = (215, 25, 70)  # lipstick
    cv2.polylines(frame.image, [np.round(lm[T.INNER_LIPS]).astype(np.int32)], True, (215, 25, 70), 2)
    own = avatar.face.landmarks[:, :2]
    driven = lips_kept([frame.image], [lm], avatar.image, own)
    assert driven["LIPSAT"] > 20 and driven["MOUTHSAT"] > 20, "the driver's mouth must be far too colourful"
    motion = motion_for(avatar, driver_face, frame)
    out = warp_for(avatar)(motion, frame, driver_face)
    kept = lips_kept([out], [motion.landmarks[:, :2]], avatar.image, own)
    assert kept["LIPSAT"] <= 4 and kept["MOUTHSAT"] <= 4


def test_the_same_face_keeps_its_own_mouth_interior(closed_mouth_avatar: Avatar) -> None:
    """Self-reenactment: a driver whose lips are the avatar's own keeps its interior's colours exactly (its pink
    tongue is its own), only faded in under the lips."""
    avatar = closed_mouth_avatar
    frame, driver_face = _driver_with_interior(avatar, 0.25, (205, 80, 120))
    motion = motion_for(avatar, driver_face, frame)
    out = warp_for(avatar)(motion, frame, driver_face)
    deep = core(polygon_mask(out.shape, motion.landmarks[T.INNER_LIPS]), 4)
    assert np.abs(out[deep].astype(np.float32) - (205, 80, 120)).mean() < 4


def test_a_grins_own_teeth_ride_on_its_lips_over_the_drivers_interior(astronaut_face: Avatar) -> None:
    """The astronaut grins with her teeth showing. Wide open, her upper teeth stay under her upper lip (where a
    dark driver interior made them a hole before) and the driver's dark cavity shows between the rows."""
    frame, driver_face = _driver_with_interior(astronaut_face, 0.3, (40, 20, 25))
    motion = motion_for(astronaut_face, driver_face, frame)
    out = warp_for(astronaut_face)(motion, frame, driver_face)
    grey = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float32)
    upper, lower = motion.landmarks[T.UPPER_LIP_CHAIN, :2], motion.landmarks[T.LOWER_LIP_CHAIN, :2]
    middle = len(T.UPPER_LIP_CHAIN) // 2
    x = int(round(upper[middle, 0]))
    top, bottom = upper[middle, 1], lower[middle, 1]
    assert bottom - top > 12, "a wide-open mouth"
    teeth = grey[int(top) + 2 : int(top) + 5, x - 3 : x + 4].mean()
    cavity = grey[int((top + bottom) / 2) - 1 : int((top + bottom) / 2) + 2, x - 3 : x + 4].mean()
    assert teeth > cavity + 60


def test_a_rim_the_segmenter_left_out_is_claimed_for_the_person() -> None:
    """The default avatar's collar rim lay a few pixels outside the person mask: it stayed in the background plate
    and showed as a ghost arc behind the neck once the person moved. What stands out from the background just
    outside the mask is the person's; the background itself, however textured, is not."""
    size = 256
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.empty((size, size, 3), np.uint8)
    image[:] = (200, 195, 190)
    image[..., 0] = (190 + 15 * np.sin(xx / 9.0)).astype(np.uint8)  # a gently textured backdrop
    body = (xx - 128) ** 2 + (yy - 200) ** 2 < 70**2
    image[body] = (230, 100, 60)
    mask = body.astype(np.float32)
    rim = ((xx - 128) ** 2 + (yy - 200) ** 2 >= 71**2) & ((xx - 128) ** 2 + (yy - 200) ** 2 < 73**2) & (yy < 170)
    image[rim] = (70, 60, 90)  # a dark rim 1–3 px outside the mask
    claimed = claimed_edges(image, mask) > 0.5
    assert claimed[rim].mean() > 0.8
    far_off = ~body & ~rim & (np.hypot(xx - 128, yy - 200) > 80)
    assert not claimed[far_off].any()
    assert claimed[~rim & ~body].mean() < 0.01  # the backdrop's own texture is not claimed
