"""Metrics on real faces: the astronaut bundled with scikit-image, and shared portraits when present."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from avatarcam.avatar import square_crop
from avatarcam.eval.metrics import (
    MOVE_THRESHOLDS,
    IdentityEmbedder,
    StaticLandmarks,
    aggregate,
    format_table,
    motion_signals,
    score_clip,
)
from avatarcam.eval.runner import TURNED_SOURCE_DEGREES, EvalReport, aggregate_methods
from avatarcam.eval.sidebyside import save_image, side_by_side

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PORTRAITS = SHARED_DATA / "portraits"


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return square_crop(data.astronaut()[20:260, 120:360], 256)


@pytest.fixture(scope="module")
def landmarks():
    with StaticLandmarks() as tracker:
        yield tracker


@pytest.fixture(scope="module")
def identity() -> IdentityEmbedder:
    if not IdentityEmbedder.available():
        pytest.skip("dlib eval extra not installed")
    return IdentityEmbedder()


def _load_portrait(name: str) -> np.ndarray:
    path = PORTRAITS / name
    if not path.is_file():
        pytest.skip(f"shared data absent: {path}")
    return square_crop(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), 256)


def _squashed(image: np.ndarray, factors: list[float]) -> list[np.ndarray]:
    """Vertical stretches about the centre: eye and mouth openings change while the iod stays put."""
    centre = image.shape[0] / 2
    frames = []
    for factor in factors:
        matrix = np.float32([[1, 0, 0], [0, factor, centre * (1 - factor)]])
        frames.append(cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT))
    return frames


@pytest.fixture(scope="module")
def moving_clip(astronaut: np.ndarray) -> list[np.ndarray]:
    return _squashed(astronaut, [1.0, 0.8, 1.3, 0.85, 1.4, 0.9, 1.2, 0.8, 1.35, 1.0, 1.3, 0.8])


def test_square_crop_crops_centre_and_sizes() -> None:
    wide = np.zeros((100, 300, 3), dtype=np.uint8)
    wide[:, 100:200] = 255
    out = square_crop(wide, 50)
    assert out.shape == (50, 50, 3)
    assert out.min() == 255


def test_landmarks_on_astronaut_and_none_on_blank(landmarks: StaticLandmarks, astronaut: np.ndarray) -> None:
    points = landmarks(astronaut)
    assert points is not None and points.shape == (478, 2)
    assert 0 < points.min() and points.max() < 256
    assert landmarks(np.zeros((256, 256, 3), dtype=np.uint8)) is None


def test_motion_signals_are_plausible(landmarks: StaticLandmarks, astronaut: np.ndarray) -> None:
    signals = motion_signals(landmarks(astronaut))
    assert set(signals) == set(MOVE_THRESHOLDS)
    assert 0.0 <= signals["mouth"] < 1.0
    assert 0.05 < signals["eyes"] < 0.5
    assert abs(signals["yaw"]) < 0.5


def test_identical_output_scores_perfectly(landmarks: StaticLandmarks, moving_clip: list[np.ndarray]) -> None:
    scores = score_clip(moving_clip, truths=moving_clip, landmarks=landmarks, identity=None)
    assert scores["L1"] == 0.0 and scores["L1F"] == 0.0
    assert math.isfinite(scores["PSNR"]) and scores["PSNR"] >= 99.0
    assert scores["AKD"] < 1e-6
    assert scores["miss"] == 0.0
    assert math.isnan(scores["ID"])
    assert scores["JIT"] == pytest.approx(scores["JIT_D"])
    # The vertical stretches move the eyes and pitch past their thresholds.
    assert scores["corr_eyes"] == pytest.approx(1.0)
    assert scores["corr_pitch"] == pytest.approx(1.0)
    for name in MOVE_THRESHOLDS:
        value = scores[f"corr_{name}"]
        assert math.isnan(value) or value == pytest.approx(1.0)


def test_frozen_output_scores_zero_correlation(landmarks: StaticLandmarks, moving_clip: list[np.ndarray]) -> None:
    frozen = [moving_clip[0]] * len(moving_clip)
    scores = score_clip(frozen, truths=moving_clip, landmarks=landmarks, identity=None)
    assert scores["corr_eyes"] == 0.0 and scores["corr_pitch"] == 0.0
    assert scores["JIT"] == 0.0
    assert scores["JIT_D"] > 0.5
    assert scores["L1"] > 0.0 and scores["L1F"] > scores["L1"]
    assert scores["PSNR"] < 60.0


def test_shifted_output_gives_akd_of_the_shift(landmarks: StaticLandmarks, moving_clip: list[np.ndarray]) -> None:
    shifted = [np.roll(frame, 3, axis=1) for frame in moving_clip]
    scores = score_clip(shifted, truths=moving_clip, landmarks=landmarks, identity=None)
    assert scores["AKD"] == pytest.approx(3.0, abs=0.5)
    assert scores["corr_eyes"] > 0.95


def test_faceless_output_counts_as_miss(landmarks: StaticLandmarks, moving_clip: list[np.ndarray]) -> None:
    blank = [np.zeros_like(frame) for frame in moving_clip]
    scores = score_clip(blank, truths=moving_clip, landmarks=landmarks, identity=None)
    assert scores["miss"] == 1.0
    assert math.isnan(scores["AKD"]) and math.isnan(scores["JIT"])
    assert scores["corr_eyes"] == 0.0


def test_score_clip_rejects_unsized_frames(landmarks: StaticLandmarks) -> None:
    frames = [np.zeros((100, 100, 3), dtype=np.uint8)] * 3
    with pytest.raises(ValueError, match="square_crop"):
        score_clip(frames, truths=frames, landmarks=landmarks)


def test_identity_same_image_is_close(identity: IdentityEmbedder, astronaut: np.ndarray) -> None:
    first, again = identity(astronaut), identity(astronaut.copy())
    assert first is not None and first.shape == (128,)
    assert float(np.linalg.norm(first - again)) < 0.3
    assert identity(np.zeros((256, 256, 3), dtype=np.uint8)) is None


def test_identity_separates_people(identity: IdentityEmbedder, astronaut: np.ndarray) -> None:
    other = identity(_load_portrait("lia_macron.png"))
    assert other is not None
    assert float(np.linalg.norm(identity(astronaut) - other)) > 0.5


def test_cross_reenactment_identity_and_correlation(
    landmarks: StaticLandmarks, identity: IdentityEmbedder, moving_clip: list[np.ndarray], astronaut: np.ndarray
) -> None:
    scores = score_clip(moving_clip, driver=moving_clip, portrait=astronaut, landmarks=landmarks, identity=identity)
    assert "L1" not in scores and "AKD" not in scores
    # Frames 0 and 10 are sampled; 0 is the portrait itself.
    assert scores["ID"] < 0.3
    assert scores["corr_eyes"] == pytest.approx(1.0)
    assert scores["id_miss"] == 0.0


def test_aggregate_averages_over_eligible_clips() -> None:
    clips = [
        {"L1": 0.1, "corr_mouth": 0.8, "corr_yaw": math.nan},
        {"L1": 0.3, "corr_mouth": math.nan, "corr_yaw": math.nan},
        {"L1": 0.2, "corr_mouth": 0.4, "corr_yaw": math.nan},
    ]
    result = aggregate(clips)
    assert result["L1"] == pytest.approx(0.2)
    assert result["corr_mouth"] == pytest.approx(0.6)
    assert result["n_corr_mouth"] == 2
    assert math.isnan(result["corr_yaw"]) and result["n_corr_yaw"] == 0
    assert result["n_clips"] == 3


def test_format_table_orders_columns_and_marks_missing() -> None:
    table = format_table({"static": {"L1": 0.12345, "corr_mouth": math.nan, "JIT": 0.5}, "warp": {"L1": 0.1}})
    lines = table.splitlines()
    assert lines[0] == "| method | L1 | mouth | JIT |"
    assert lines[2] == "| static | 0.123 | n/a | 0.500 |"
    assert lines[3] == "| warp | 0.100 | n/a | n/a |"


def test_side_by_side_grid(tmp_path: Path, moving_clip: list[np.ndarray]) -> None:
    grid = side_by_side({"driver": moving_clip, "static": [moving_clip[0]] * 3}, [0, 5, 11], tile=64)
    assert grid.dtype == np.uint8 and grid.shape[1:] == (2 * 64, 3)
    label_height = grid.shape[0] - 3 * 64
    assert 0 < label_height < 64
    assert grid[:label_height].max() > 0, "labels are drawn"
    assert not grid[label_height + 2 * 64 :, 64:].any(), "frames past a sequence's end stay black"
    path = tmp_path / "nested" / "grid.png"
    save_image(path, grid)
    assert cv2.imread(str(path)).shape == grid.shape


def test_identity_without_dlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(IdentityEmbedder, "available", staticmethod(lambda: False))
    with pytest.raises(RuntimeError, match=r"avatarcam\[eval\]"):
        IdentityEmbedder()


def test_turned_sources_are_also_scored_apart() -> None:
    scores = {"warp": [{"AKD": 1.0}, {"AKD": 9.0}, {"AKD": 2.0}], "static": [{"AKD": 8.0}, {"AKD": 12.0}, {"AKD": 9.0}]}
    kept = aggregate_methods(scores, [True, False, True])
    assert kept["warp"]["AKD"] == 1.5 and kept["warp"]["n_clips"] == 2 and kept["static"]["AKD"] == 8.5
    assert aggregate_methods(scores, [False, False, False]) == {}
    report = EvalReport(
        self_rows={"warp": aggregate(scores["warp"])}, turned=["b.mp4"], frontal_self_rows={"warp": kept["warp"]}
    )
    text = report.markdown()
    assert f"Without the 1 clips whose first frame is turned past {TURNED_SOURCE_DEGREES:.0f}° (b.mp4)" in text
    assert text.count("| warp |") == 2 and "| warp | 4.000 |" in text and "| warp | 1.500 |" in text
    assert "turned past" not in EvalReport(self_rows={"warp": aggregate(scores["warp"])}).markdown()
