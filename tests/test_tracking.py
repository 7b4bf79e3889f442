"""Tracking: the One Euro filter, pose fitting, expression signals, the Tracker stage and the mesh topology."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from face_edits import close_eyes, open_mouth, posed

from avatarcam.config import TrackerConfig
from avatarcam.tracking import topology as T
from avatarcam.tracking.facemesh import FaceMeshDetector
from avatarcam.tracking.filters import OneEuroFilter
from avatarcam.tracking.geometry import (
    euler_degrees,
    expression_signals,
    fit_pose,
    rotation_from_euler,
    similarity_fit,
)
from avatarcam.tracking.tracker import Tracker
from avatarcam.types import Avatar, Face, Frame

FPS = 30.0


# One Euro filter ----------------------------------------------------------------------------------------------
def run_filter(filt: OneEuroFilter, values: np.ndarray) -> np.ndarray:
    return np.array([filt(v, i / FPS) for i, v in enumerate(values)])


def test_one_euro_constant_input_passes_through() -> None:
    value = np.array([3.0, -1.5, 42.0])
    out = run_filter(OneEuroFilter(min_cutoff=1.0, beta=0.5), np.tile(value, (50, 1)))
    np.testing.assert_allclose(out, np.tile(value, (50, 1)), atol=1e-12)


def test_one_euro_smooths_noise_on_a_constant() -> None:
    rng = np.random.default_rng(0)
    noisy = 5.0 + rng.normal(0, 0.5, size=(300, 4))
    out = run_filter(OneEuroFilter(min_cutoff=1.0, beta=0.0), noisy)[30:]
    assert out.var(axis=0).max() < 0.25 * noisy[30:].var(axis=0).min()
    assert np.abs(out.mean(axis=0) - 5.0).max() < 0.1  # unbiased


def test_one_euro_follows_a_step() -> None:
    values = np.concatenate([np.zeros(10), np.ones(60)])
    slow = run_filter(OneEuroFilter(min_cutoff=1.0, beta=0.0), values)
    assert slow[10] < 0.5  # smoothed: not at once
    assert np.all(np.diff(slow) >= -1e-12) and slow.max() <= 1.0 + 1e-12  # no overshoot
    assert slow[10 + 20] > 0.95  # but within 20 frames (0.7 s)
    assert slow[-1] > 0.999
    # Speed opens the filter: with beta the step is followed faster.
    fast = run_filter(OneEuroFilter(min_cutoff=1.0, beta=5.0), values)
    assert fast[12] > slow[12] + 0.1


def test_one_euro_restarts_after_reset_or_a_clock_going_back() -> None:
    filt = OneEuroFilter(min_cutoff=0.5)
    filt(np.zeros(2), 0.0)
    filt(np.zeros(2), 0.1)
    np.testing.assert_array_equal(filt(np.full(2, 7.0), 0.05), [7.0, 7.0])  # clock went back: starts again
    filt.reset()
    np.testing.assert_array_equal(filt(np.full(2, -3.0), 1.0), [-3.0, -3.0])


# Geometry -----------------------------------------------------------------------------------------------------
def test_similarity_fit_recovers_scale_rotation_translation() -> None:
    rng = np.random.default_rng(1)
    src = rng.normal(size=(60, 3))
    rot = rotation_from_euler(25.0, -10.0, 40.0)
    dst = 3.5 * src @ rot.T + np.array([10.0, -4.0, 2.5])
    scale, got_rot, trans = similarity_fit(src, dst)
    assert scale == pytest.approx(3.5)
    np.testing.assert_allclose(got_rot, rot, atol=1e-9)
    np.testing.assert_allclose(trans, [10.0, -4.0, 2.5], atol=1e-9)
    assert np.linalg.det(got_rot) == pytest.approx(1.0)


def test_similarity_fit_never_returns_a_reflection() -> None:
    rng = np.random.default_rng(2)
    src = rng.normal(size=(30, 3))
    mirrored = src * np.array([-1.0, 1.0, 1.0])
    _, rot, _ = similarity_fit(src, mirrored)
    assert np.linalg.det(rot) == pytest.approx(1.0)


def test_fit_pose_of_the_portrait_is_near_frontal(astronaut_face: Avatar) -> None:
    scale, rot, trans = fit_pose(astronaut_face.face.landmarks)
    yaw, pitch, roll = euler_degrees(rot)
    assert max(abs(yaw), abs(pitch), abs(roll)) < 15.0
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-9)
    # Scale is pixels per inter-ocular distance: the eyes are about that far apart in the image.
    iod = np.linalg.norm(astronaut_face.face.xy[T.RIGHT_EYE_OUTER] - astronaut_face.face.xy[T.LEFT_EYE_OUTER])
    assert scale == pytest.approx(iod, rel=0.15)
    # The face is in the middle of the portrait.
    assert 0.3 * 256 < trans[0] < 0.7 * 256 and 0.2 * 256 < trans[1] < 0.7 * 256


def test_fit_pose_follows_a_turned_head(astronaut_face: Avatar) -> None:
    turned = posed(astronaut_face.face, yaw=20.0, roll=-10.0)
    rel = fit_pose(turned.landmarks)[1] @ fit_pose(astronaut_face.face.landmarks)[1].T
    yaw, pitch, roll = euler_degrees(rel)
    assert (yaw, pitch, roll) == pytest.approx((20.0, 0.0, -10.0), abs=0.1)


def test_expression_signals_mouth_and_eyes(astronaut_face: Avatar) -> None:
    face = astronaut_face.face
    neutral = expression_signals(face.landmarks)
    opened = expression_signals(open_mouth(face, 0.2).landmarks)
    blinked = expression_signals(close_eyes(face, 0.9).landmarks)
    assert opened["mouth_open"] > neutral["mouth_open"] + 0.1
    assert blinked["eye_open_right"] < 0.5 * neutral["eye_open_right"]
    assert blinked["eye_open_left"] < 0.5 * neutral["eye_open_left"]
    assert blinked["mouth_open"] == pytest.approx(neutral["mouth_open"], abs=0.01)
    # Units of the inter-ocular distance: a bigger image of the same face gives the same signals.
    bigger = expression_signals(face.landmarks * 2.0)
    assert bigger["mouth_open"] == pytest.approx(neutral["mouth_open"])
    assert {"mouth_open", "eye_open_right", "eye_open_left", "gaze_x_right", "gaze_y_left"} <= set(neutral)


# The Tracker stage --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tracked(demo_frames: list[Frame]) -> list[Face | None]:
    tracker = Tracker(TrackerConfig())
    try:
        return [tracker(frame) for frame in demo_frames]
    finally:
        tracker.close()


def test_tracker_finds_the_face_in_every_demo_frame(tracked: list[Face | None]) -> None:
    assert all(face is not None for face in tracked)
    for face in tracked:
        assert face.landmarks.shape == (478, 3) and face.landmarks.dtype == np.float32
        np.testing.assert_allclose(face.rotation @ face.rotation.T, np.eye(3), atol=1e-6)
        assert face.scale > 10.0
        # In the frame: the demo face is centred in a 320×240 image.
        assert 100 < face.translation[0] < 220 and 50 < face.translation[1] < 190
        assert set(face.expression) >= {"mouth_open", "eye_open_right", "eye_open_left"}


def test_tracker_follows_the_scripted_motion(tracked: list[Face | None], demo_frames: list[Frame]) -> None:
    from avatarcam.demo import script

    first = tracked[0].rotation
    yaws = np.array([euler_degrees(face.rotation @ first.T)[0] for face in tracked])
    scripted = np.array([script(f.timestamp_ns * 1e-9)["yaw"] for f in demo_frames])
    # The script turns the head by ~16° over the clip; the tracker sees the turn, in the same direction.
    assert abs(yaws[-1]) > 8.0 and np.sign(yaws[-1]) == np.sign(scripted[-1] - scripted[0])
    assert np.corrcoef(yaws, scripted)[0, 1] > 0.9
    # Talking: the tracked mouth opening goes up and down with the scripted mouth.
    mouth = np.array([face.expression["mouth_open"] for face in tracked])
    scripted_mouth = np.array([script(f.timestamp_ns * 1e-9)["mouth"] for f in demo_frames])
    assert np.corrcoef(mouth, scripted_mouth)[0, 1] > 0.5


def test_tracker_smooths_jitter_on_a_still_face(demo_frames: list[Frame]) -> None:
    """A still face with sensor noise: the filtered landmarks shake less than unfiltered ones."""
    rng = np.random.default_rng(3)
    still = demo_frames[0].image
    frames = [
        Frame(np.clip(still + rng.normal(0, 6, still.shape), 0, 255).astype(np.uint8), int(i * 1e9 / FPS), i)
        for i in range(30)
    ]
    # The same detector with the filters wide open (cutoff 10 kHz at 30 fps: every new value passes).
    unfiltered_config = TrackerConfig(
        pose_min_cutoff=1e4, pose_beta=0.0, expression_min_cutoff=1e4, expression_beta=0.0
    )
    raw_tracker, tracker = Tracker(unfiltered_config), Tracker(TrackerConfig())
    try:
        raw = [raw_tracker(f) for f in frames]
        filtered = [tracker(f) for f in frames]
    finally:
        raw_tracker.close()
        tracker.close()

    def jitter(values: list[np.ndarray]) -> float:
        return float(np.abs(np.diff(np.array(values[5:]), axis=0)).mean())

    # The pose (what a viewer sees as the whole face shaking) gets the strong filter…
    for pose_of in (lambda f: f.translation, lambda f: cv2.Rodrigues(f.rotation)[0].ravel()):
        raw_jitter = jitter([pose_of(f) for f in raw])
        assert raw_jitter > 0  # the noise does shake the detections
        assert jitter([pose_of(f) for f in filtered]) < 0.75 * raw_jitter
    # …and the landmarks as a whole shake less too.
    raw_landmarks = [f.landmarks[:, :2] for f in raw]
    filtered_landmarks = [f.landmarks[:, :2] for f in filtered]
    assert jitter(filtered_landmarks) < 0.95 * jitter(raw_landmarks)
    # Smoothing, not drifting: the filtered face stays on the raw one.
    offset = np.mean(filtered_landmarks[5:], axis=0) - np.mean(raw_landmarks[5:], axis=0)
    assert np.abs(offset).mean() < 1.0


def test_tracker_returns_none_without_a_face_and_recovers(demo_frames: list[Frame]) -> None:
    tracker = Tracker(TrackerConfig())
    try:
        assert tracker(demo_frames[0]) is not None
        blank = Frame(np.full((240, 320, 3), 128, np.uint8), demo_frames[1].timestamp_ns, 1)
        assert tracker(blank) is None
        again = tracker(demo_frames[2])
        assert again is not None
        # After a loss the filter restarts: no lag from the stale state, the face is where it is now.
        raw = FaceMeshDetector(static=True)
        try:
            truth = raw(demo_frames[2].image)[0]
        finally:
            raw.close()
        assert np.abs(again.landmarks[:, :2] - truth[:, :2]).mean() < 2.0
    finally:
        tracker.close()


def test_unknown_tracker_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown tracker backend"):
        Tracker(TrackerConfig(backend="nope"))


def test_landmarker_backend_without_its_file_says_what_to_do() -> None:
    with pytest.raises(FileNotFoundError, match="face_landmarker.task"):
        Tracker(TrackerConfig(backend="landmarker", task_file="/nonexistent/face_landmarker.task"))


# Topology -----------------------------------------------------------------------------------------------------
def _covered(point: np.ndarray, xy: np.ndarray, triangles: np.ndarray) -> bool:
    for tri in triangles:
        if cv2.pointPolygonTest(xy[tri].astype(np.float32).reshape(-1, 1, 2), tuple(map(float, point)), False) >= 0:
            return True
    return False


def test_face_triangles_shape_and_range() -> None:
    tris = T.face_triangles()
    assert tris.ndim == 2 and tris.shape[1] == 3 and tris.dtype == np.int32
    assert 800 < len(tris) < 950  # the 468-point tessellation (852 triangles + a few) minus the holes
    assert tris.min() >= 0 and tris.max() < 468
    assert np.all((tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2]))
    assert len({tuple(t) for t in tris}) == len(tris)


def test_face_triangles_leave_mouth_and_eye_holes(astronaut_face: Avatar) -> None:
    tris = T.face_triangles()
    for hole in (T.INNER_LIPS, T.RIGHT_EYE, T.LEFT_EYE):
        assert not any(set(t) <= set(hole) for t in tris.tolist())
    xy = astronaut_face.face.xy.astype(np.float64)
    # The portrait shows its teeth: the middle of the open mouth and the irises are in no face triangle…
    mouth_centre = (xy[T.MOUTH_UPPER] + xy[T.MOUTH_LOWER]) / 2
    assert not _covered(mouth_centre, xy, tris)
    assert not _covered(xy[T.RIGHT_IRIS[0]], xy, tris)
    assert not _covered(xy[T.LEFT_IRIS[0]], xy, tris)
    # …while the skin around them is.
    for skin in (T.NOSE_TIP, 151, 50, 280, 18):  # nose tip, forehead, both cheeks, below the lower lip
        assert _covered(xy[skin] + 0.3, xy, tris)


def test_landmarker_backend_tracks_with_blendshapes(shared_data, demo_frames) -> None:
    """The Tasks Face Landmarker, given its .task bundle, gives the same 478 points plus 52 blendshapes."""
    task = shared_data.parent / "models" / "face_landmarker_v2_with_blendshapes.task"
    if not task.is_file():
        pytest.skip("no Face Landmarker bundle in ../shared/models")
    tracker = Tracker(TrackerConfig(backend="landmarker", task_file=str(task)))
    try:
        faces = [tracker(frame) for frame in demo_frames[:5]]
    finally:
        tracker.close()
    assert all(face is not None for face in faces)
    face = faces[-1]
    assert face.landmarks.shape == (478, 3)
    assert face.blendshapes is not None and len(face.blendshapes) == 52
    assert 0.0 <= face.blendshapes["eyeBlinkLeft"] <= 1.0


def test_one_euro_takes_one_rest_cutoff_per_value() -> None:
    """A per-value cutoff: the fast column (the lips) follows a step sooner than the slow one (the rest)."""
    filt = OneEuroFilter(min_cutoff=np.array([[1.0, 20.0]]), beta=0.0)
    filt(np.zeros((1, 2)), 0.0)
    out = filt(np.ones((1, 2)), 1 / 30)
    assert out[0, 1] > 2 * out[0, 0] > 0
