"""Retargeting with real landmarks (the default avatar's face): relative motion transfer onto the avatar."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from face_edits import (
    canonical_driver,
    close_eyes,
    eye_gaps,
    mouth_gap,
    open_mouth,
    posed,
    shape_of,
    with_shape,
)

from avatarcam.config import AnimatorConfig, Config, RetargetConfig
from avatarcam.motion.retarget import Retargeter
from avatarcam.registry import ANIMATORS
from avatarcam.stages import Packet
from avatarcam.stages.animate import AnimateStage
from avatarcam.stages.chain import Chain
from avatarcam.stages.draw import DrawStage
from avatarcam.stages.retarget import RetargetStage
from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import euler_degrees, fit_pose, to_canonical
from avatarcam.types import Avatar, Face, Frame, Motion

TINY = 1e-3  # pixels: float32 round trips only


def make_retargeter(avatar: Avatar, **settings) -> Retargeter:
    # Explicit gains and limits, so the tests do not depend on the tuned defaults.
    base = dict(expression_gain=1.0, rotation_gain=1.0, translation_gain=1.0, hold_seconds=0.5, ease_seconds=1.0)
    retargeter = Retargeter(RetargetConfig(**{**base, **settings}))
    retargeter.set_avatar(avatar.face)
    return retargeter


def at(seconds: float) -> Frame:
    """A black frame (no memory: a broadcast view) around the avatar's face, stamped at `seconds`."""
    return Frame(np.broadcast_to(np.zeros(3, np.uint8), (1024, 1024, 3)), int(seconds * 1e9))


def max_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a[:, :2].astype(np.float64) - b[:, :2]).max())


def test_neutral_driver_leaves_the_avatar_unchanged(astronaut_face: Avatar) -> None:
    retargeter = make_retargeter(astronaut_face)
    for i in range(5):
        motion = retargeter(astronaut_face.face, at(i / 30))
        assert motion.tracked
        assert motion.landmarks.shape == (478, 3)
        assert max_error(motion.landmarks, astronaut_face.face.landmarks) < TINY
        np.testing.assert_allclose(motion.rotation, astronaut_face.face.rotation, atol=1e-6)


@pytest.mark.parametrize(
    "pose",
    [
        dict(yaw=15.0),
        dict(pitch=-10.0, roll=8.0),
        dict(yaw=-20.0, pitch=5.0, roll=-5.0, zoom=1.2, shift=(12.0, -7.0)),
        dict(zoom=0.8, shift=(-20.0, 15.0)),
    ],
)
def test_self_retargeting_reproduces_a_moved_driver_exactly(astronaut_face: Avatar, pose: dict) -> None:
    retargeter = make_retargeter(astronaut_face)
    retargeter(astronaut_face.face, at(0.0))  # reference = the avatar's own neutral face
    driver = posed(astronaut_face.face, **pose)
    motion = retargeter(driver, at(1 / 30))
    assert max_error(motion.landmarks, astronaut_face.face.landmarks) > 1.0  # it did move
    assert max_error(motion.landmarks, driver.landmarks) < 0.01
    np.testing.assert_allclose(motion.rotation, driver.rotation, atol=1e-5)


def test_driver_mouth_opening_opens_the_avatar_mouth(astronaut_face: Avatar) -> None:
    retargeter = make_retargeter(astronaut_face)
    retargeter(astronaut_face.face, at(0.0))
    closed = mouth_gap(astronaut_face.face.landmarks)
    gaps = [mouth_gap(retargeter(open_mouth(astronaut_face.face, amount), at(0.1)).landmarks) for amount in (0.1, 0.2)]
    assert closed < gaps[0] < gaps[1]
    # Self-retargeting: exactly the driver's own opening.
    assert gaps[1] == pytest.approx(mouth_gap(open_mouth(astronaut_face.face, 0.2).landmarks), abs=0.01)
    # The eyes do not move with the mouth.
    eyes = eye_gaps(retargeter(open_mouth(astronaut_face.face, 0.2), at(0.2)).landmarks, astronaut_face.face)
    np.testing.assert_allclose(eyes, eye_gaps(astronaut_face.face.landmarks, astronaut_face.face), atol=1e-3)


def test_driver_blink_closes_the_avatar_eyes_proportionally(astronaut_face: Avatar) -> None:
    retargeter = make_retargeter(astronaut_face)
    retargeter(astronaut_face.face, at(0.0))
    face = astronaut_face.face
    open_gaps = eye_gaps(face.landmarks, face)  # measured in the canonical frame: pose and depth removed
    half = eye_gaps(retargeter(close_eyes(face, 0.5), at(0.1)).landmarks, face) / open_gaps
    full = eye_gaps(retargeter(close_eyes(face, 1.0), at(0.2)).landmarks, face) / open_gaps
    assert np.all((half > 0.35) & (half < 0.65)), half
    assert np.all(full < 0.15), full
    # The mouth does not move with the eyes.
    assert mouth_gap(retargeter(close_eyes(astronaut_face.face, 1.0), at(0.3)).landmarks) == pytest.approx(
        mouth_gap(astronaut_face.face.landmarks), abs=0.05
    )


def test_blink_of_a_different_driver_closes_the_avatar_eyes_by_the_same_fraction(astronaut_face: Avatar) -> None:
    driver = canonical_driver()
    retargeter = make_retargeter(astronaut_face)
    retargeter(driver, at(0.0))
    face = astronaut_face.face
    open_gaps = eye_gaps(face.landmarks, face)
    half = eye_gaps(retargeter(close_eyes(driver, 0.5), at(0.1)).landmarks, face) / open_gaps
    full = eye_gaps(retargeter(close_eyes(driver, 1.0), at(0.2)).landmarks, face) / open_gaps
    assert np.all((half > 0.3) & (half < 0.7)), half
    assert np.all(full < 0.2), full


def test_the_avatar_keeps_its_own_face_shape_with_a_different_driver(astronaut_face: Avatar) -> None:
    """Cross-reenactment: another face shape, at another place and size in its frame, drives the avatar."""
    driver = canonical_driver(scale=80.0, centre=(400.0, 260.0))
    avatar_shape = shape_of(astronaut_face.face)
    assert np.abs(shape_of(driver) - avatar_shape)[T.RIGID].max() > 0.05  # really a different face
    retargeter = make_retargeter(astronaut_face)
    for i in range(3):  # neutral driver: the avatar is unchanged (no identity leak)
        motion = retargeter(driver, at(i / 30))
        assert max_error(motion.landmarks, astronaut_face.face.landmarks) < TINY
    # Moving and talking: the avatar turns and opens its mouth but keeps its own rigid face shape.
    motion = retargeter(open_mouth(posed(driver, yaw=12.0, roll=5.0), 0.15), at(0.2))
    scale, rot, trans = fit_pose(motion.landmarks)
    shape_now = to_canonical(motion.landmarks.astype(np.float64), scale, rot, trans)
    to_avatar = np.linalg.norm(shape_now[T.RIGID] - avatar_shape[T.RIGID], axis=1).mean()
    to_driver = np.linalg.norm(shape_now[T.RIGID] - shape_of(driver)[T.RIGID], axis=1).mean()
    assert to_avatar < 0.01 < to_driver
    assert mouth_gap(motion.landmarks) > mouth_gap(astronaut_face.face.landmarks) + 3.0
    yaw, _, roll = euler_degrees(motion.rotation @ astronaut_face.face.rotation.T)
    assert yaw == pytest.approx(12.0, abs=0.5) and roll == pytest.approx(5.0, abs=0.5)


def test_driver_translation_moves_the_avatar_in_face_units(astronaut_face: Avatar) -> None:
    driver = canonical_driver(scale=100.0)
    retargeter = make_retargeter(astronaut_face)
    retargeter(driver, at(0.0))
    motion = retargeter(posed(driver, shift=(50.0, 0.0)), at(0.1))
    shift = (motion.landmarks[:, :2] - astronaut_face.face.landmarks[:, :2]).mean(axis=0)
    # The same distance in face units: the avatar's face is smaller than the driver's.
    assert shift[0] == pytest.approx(50.0 / driver.scale * astronaut_face.face.scale, rel=0.02)
    assert shift[0] < 40.0
    assert abs(shift[1]) < 0.5


def test_yaw_is_clamped_to_the_limit(astronaut_face: Avatar) -> None:
    retargeter = make_retargeter(astronaut_face, max_yaw_deg=20.0, max_pitch_deg=30.0, max_roll_deg=30.0)
    retargeter(astronaut_face.face, at(0.0))
    for yaw in (35.0, -50.0):
        motion = retargeter(posed(astronaut_face.face, yaw=yaw, pitch=6.0), at(0.1))
        got_yaw, got_pitch, _ = euler_degrees(motion.rotation @ astronaut_face.face.rotation.T)
        assert got_yaw == pytest.approx(np.sign(yaw) * 20.0, abs=0.5)
        assert got_pitch == pytest.approx(6.0, abs=1.0)
    # Within the limit, nothing is clamped.
    motion = retargeter(posed(astronaut_face.face, yaw=15.0), at(0.2))
    assert euler_degrees(motion.rotation @ astronaut_face.face.rotation.T)[0] == pytest.approx(15.0, abs=0.1)


def test_lost_face_holds_then_eases_to_neutral(astronaut_face: Avatar) -> None:
    retargeter = make_retargeter(astronaut_face, hold_seconds=0.5, ease_seconds=1.0)
    retargeter(astronaut_face.face, at(10.0))
    moved = retargeter(open_mouth(posed(astronaut_face.face, yaw=15.0), 0.15), at(10.1))
    neutral = astronaut_face.face.landmarks
    assert max_error(moved.landmarks, neutral) > 3.0

    lost = 10.2  # the first frame without a face
    held = [retargeter(None, at(lost + dt)) for dt in (0.0, 0.2, 0.45)]
    for motion in held:  # hold: the last motion, unchanged
        assert not motion.tracked
        assert max_error(motion.landmarks, moved.landmarks) < TINY
    easing = retargeter(None, at(lost + 0.5 + 0.5))  # half way through the ease
    away_from_moved = max_error(easing.landmarks, moved.landmarks)
    away_from_neutral = max_error(easing.landmarks, neutral)
    assert away_from_moved > 0.5 and away_from_neutral > 0.5
    later = retargeter(None, at(lost + 0.5 + 0.8))
    assert max_error(later.landmarks, neutral) < away_from_neutral  # still heading home
    done = retargeter(None, at(lost + 0.5 + 1.0 + 0.1))
    assert max_error(done.landmarks, neutral) < 0.01  # back to the avatar's own face
    assert retargeter(None, at(lost + 5.0)).landmarks == pytest.approx(neutral, abs=0.01)

    # The face comes back: motion resumes at once, relative to the same reference.
    back = retargeter(posed(astronaut_face.face, yaw=15.0), at(lost + 6.0))
    assert back.tracked
    assert max_error(back.landmarks, posed(astronaut_face.face, yaw=15.0).landmarks) < 0.01


def test_no_face_before_any_face_is_the_neutral_avatar(astronaut_face: Avatar) -> None:
    motion = make_retargeter(astronaut_face)(None, at(1.0))
    assert not motion.tracked
    assert max_error(motion.landmarks, astronaut_face.face.landmarks) < TINY


def test_reset_reference_makes_the_next_face_the_neutral(astronaut_face: Avatar) -> None:
    retargeter = make_retargeter(astronaut_face)
    assert not retargeter.has_reference
    retargeter(astronaut_face.face, at(0.0))
    assert retargeter.has_reference
    turned: Face = posed(astronaut_face.face, yaw=15.0, shift=(10.0, 0.0))
    assert max_error(retargeter(turned, at(0.1)).landmarks, astronaut_face.face.landmarks) > 3.0

    retargeter.reset_reference()
    assert not retargeter.has_reference
    # The turned face is now the neutral: the avatar is back to its own face.
    assert max_error(retargeter(turned, at(0.2)).landmarks, astronaut_face.face.landmarks) < TINY
    # And motion is measured from it: turning back to frontal turns the avatar the other way.
    motion = retargeter(astronaut_face.face, at(0.3))
    yaw = euler_degrees(motion.rotation @ astronaut_face.face.rotation.T)[0]
    assert yaw == pytest.approx(-15.0, abs=0.5)


def test_retargeter_needs_an_avatar() -> None:
    with pytest.raises(RuntimeError, match="set_avatar"):
        Retargeter(RetargetConfig())(None, at(0.0))


def test_closed_mouth_avatar_takes_the_drivers_most_closed_mouth_as_reference(astronaut_face: Avatar) -> None:
    """A driver whose reference frame had the mouth open: closing must not push the avatar's lips through each
    other, and opening again must open the avatar's mouth by the opening since the most closed frame."""
    face = astronaut_face.face
    shape = shape_of(face)
    closed_shape = shape.copy()
    closed_shape[T.LOWER_LIP_CHAIN, 1] = closed_shape[T.UPPER_LIP_CHAIN, 1]  # lips together
    closed = with_shape(face, closed_shape)
    avatar = Avatar(name="closed", image=astronaut_face.image, face=closed, key="closed")
    retargeter = make_retargeter(avatar)
    talking = open_mouth(closed, 0.15)
    retargeter(talking, at(0.0))  # the reference: mouth open
    shut = retargeter(closed, at(0.1)).landmarks
    shut_shape = to_canonical(shut.astype(np.float64), closed.scale, closed.rotation, closed.translation)
    upper, lower = T.UPPER_LIP_CHAIN[1:-1], T.LOWER_LIP_CHAIN[1:-1]
    assert (shut_shape[lower, 1] >= shut_shape[upper, 1] - 1e-6).all()  # lips meet, never cross
    reopened = retargeter(talking, at(0.2)).landmarks
    assert mouth_gap(reopened) > mouth_gap(closed.landmarks) + 5.0  # the mouth opens again, by real pixels


def test_a_reference_mouth_like_the_avatars_is_kept(astronaut_face: Avatar) -> None:
    """The same face as reference (self-transfer): its mouth is as open as the avatar's, so it stays, exactly."""
    retargeter = make_retargeter(astronaut_face)
    retargeter(astronaut_face.face, at(0.0))
    narrower = open_mouth(astronaut_face.face, -0.02)
    motion = retargeter(narrower, at(0.1))
    assert max_error(motion.landmarks, narrower.landmarks) < TINY


def test_open_mouth_avatar_follows_a_driver_who_was_talking_at_the_reference(astronaut_face: Avatar) -> None:
    """The astronaut smiles with her teeth showing; the driver's reference was taken mid-word, far more open. When
    the driver closes, that becomes the mouth's reference, so opening again opens her mouth wider than at rest
    (against the first reference every word opening less than it would close her mouth instead)."""
    face = astronaut_face.face
    retargeter = make_retargeter(astronaut_face)
    retargeter(open_mouth(face, 0.25), at(0.0))  # the reference: mid-word
    retargeter(face, at(0.1))  # the driver at the avatar's own opening: the new reference
    opened = retargeter(open_mouth(face, 0.1), at(0.2)).landmarks
    assert mouth_gap(opened) > mouth_gap(face.landmarks) + 3.0  # 0.1 iod wider (against the first: shut)


def test_a_reference_taken_mid_blink_gives_way_to_the_open_eyes(astronaut_face: Avatar) -> None:
    """Against a half-closed reference every open eye would be opened twice as wide: the avatar would stare."""
    face = astronaut_face.face
    retargeter = make_retargeter(astronaut_face)
    retargeter(close_eyes(face, 0.5), at(0.0))  # the reference: mid-blink
    retargeter(face, at(0.1))  # eyes open: the new reference
    motion = retargeter(face, at(0.2))
    assert np.allclose(eye_gaps(motion.landmarks, face), eye_gaps(face.landmarks, face), rtol=0.02)
    blink = retargeter(close_eyes(face, 1.0), at(0.3))  # and a blink still closes them
    assert (eye_gaps(blink.landmarks, face) < 0.1 * eye_gaps(face.landmarks, face)).all()


def test_a_half_closed_avatar_driven_by_its_own_face_stays_exact(astronaut_face: Avatar) -> None:
    """The same face half-closed as avatar and as reference (self-transfer): opening the eyes opens them, exactly."""
    squinting = close_eyes(astronaut_face.face, 0.5)
    avatar = Avatar(name="squint", image=astronaut_face.image, face=squinting, key="squint")
    retargeter = make_retargeter(avatar)
    retargeter(squinting, at(0.0))
    motion = retargeter(astronaut_face.face, at(0.1))
    assert max_error(motion.landmarks, astronaut_face.face.landmarks) < 0.05


def test_eyes_opened_wide_later_are_an_expression_not_a_new_reference(astronaut_face: Avatar) -> None:
    """Only in the second after the reference can an opening eye mean the reference was a blink: a driver whose
    eyes are narrower than the avatar's and who opens them wide later is surprised, and so is the avatar."""
    wide = close_eyes(astronaut_face.face, -0.5)
    avatar = Avatar(name="wide", image=astronaut_face.image, face=wide, key="wide")
    retargeter = make_retargeter(avatar)
    retargeter(astronaut_face.face, at(0.0))
    surprised = retargeter(wide, at(2.0))
    assert (eye_gaps(surprised.landmarks, wide) > 1.2 * eye_gaps(wide.landmarks, wide)).all()


def test_the_head_eases_to_a_stop_inside_its_frame(astronaut_face: Avatar) -> None:
    retargeter = make_retargeter(astronaut_face)
    retargeter.set_avatar(astronaut_face.face, astronaut_face.size)
    retargeter(astronaut_face.face, at(0.0))
    rest = astronaut_face.face.landmarks[:, :2]
    small = retargeter(posed(astronaut_face.face, shift=(5.0, -3.0)), at(0.1)).landmarks[:, :2]
    assert np.allclose(small - rest, (5.0, -3.0), atol=0.01)  # an ordinary move is followed exactly
    overhang = RetargetConfig().frame_overhang * np.ptp(rest, axis=0)
    for shift in ((600.0, 0.0), (-600.0, 0.0), (0.0, 600.0), (0.0, -600.0)):
        xy = retargeter(posed(astronaut_face.face, shift=shift), at(0.2)).landmarks[:, :2]
        assert np.all(xy.min(axis=0) >= -overhang - 0.5) and np.all(
            xy.max(axis=0) <= astronaut_face.size - 1 + overhang + 0.5
        )


def test_a_face_cut_by_the_camera_edge_is_lost_and_held(astronaut_face: Avatar) -> None:
    retargeter = make_retargeter(astronaut_face)
    frame = Frame(np.zeros((256, 256, 3), np.uint8), 0)
    assert retargeter(astronaut_face.face, frame).tracked
    leaving = posed(astronaut_face.face, shift=(120.0, 0.0))  # half the face is past the frame's right edge
    motion = retargeter(leaving, Frame(frame.image, int(0.1e9)))
    assert not motion.tracked
    assert max_error(motion.landmarks, astronaut_face.face.landmarks) < TINY  # held where it was


def test_a_face_cut_by_the_camera_edge_still_reaches_the_animator(
    astronaut_face: Avatar, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lost for the pose, the cut face is still handed to the animator with its frame: the face swap swaps what
    the camera shows."""
    calls: list[tuple[Motion, Frame | None, Face | None]] = []

    class Recorder:
        name = "recorder"
        status = ""

        def __init__(self, config: AnimatorConfig) -> None:
            pass

        def prepare(self, avatar: Avatar) -> None:
            self.image = avatar.image

        def plan(self, motion: Motion, driver: Frame | None = None, driver_face: Face | None = None) -> tuple:
            calls.append((motion, driver, driver_face))
            return (motion,)

        def draw(self, plan: tuple) -> np.ndarray:
            return self.image

        def close(self) -> None:
            pass

    monkeypatch.setattr(ANIMATORS, "entries", dict(ANIMATORS.entries))
    ANIMATORS.add("recorder", Recorder)
    config = dataclasses.replace(Config(), animator=AnimatorConfig(name="recorder", size=astronaut_face.size))
    chain = Chain([RetargetStage(config), AnimateStage(config), DrawStage(config)])
    image = np.zeros((256, 256, 3), np.uint8)
    first = chain(Packet(Frame(image, 0), astronaut_face, face=astronaut_face.face))
    assert first.motion is not None and first.motion.tracked
    leaving = posed(astronaut_face.face, shift=(120.0, 0.0))  # half the face is past the frame's right edge
    frame = Frame(image, int(0.1e9), 1)
    packet = chain(Packet(frame, astronaut_face, face=leaving))
    assert sum(chain.errors.values()) == 0
    assert packet.motion is not None and not packet.motion.tracked
    assert len(calls) == 2 and calls[-1][0] is packet.motion
    assert calls[-1][1] is frame and calls[-1][2] is leaving


def test_the_lashes_come_down_with_a_closing_lid(astronaut_face: Avatar) -> None:
    """The detector keeps the rings above the lid still in a blink; left so, the lashes between them stretched
    down over the closed eye."""
    from avatarcam.motion.retarget import EYE_LIDS, LID_RINGS

    retargeter = make_retargeter(astronaut_face)
    face = astronaut_face.face
    retargeter(face, at(0.0))

    def canonical(landmarks: np.ndarray) -> np.ndarray:
        landmarks = landmarks.astype(np.float64)
        return to_canonical(landmarks, *fit_pose(landmarks))

    shut, rest = canonical(retargeter(close_eyes(face, 1.0), at(0.5)).landmarks), canonical(face.landmarks)
    for side, (upper, _) in EYE_LIDS.items():
        lid_drop = shut[upper, 1] - rest[upper, 1]
        assert lid_drop.max() > 0.05
        lashes, skin = LID_RINGS[side]
        assert np.all(shut[lashes, 1] - rest[lashes, 1] > 0.6 * lid_drop - 0.01)  # the lashes move down with it
        assert np.all(shut[skin, 1] - rest[skin, 1] > 0.3 * lid_drop - 0.01)  # the lid's skin above, less
