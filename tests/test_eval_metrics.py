"""Metrics on real faces: the astronaut bundled with scikit-image, and shared portraits when present."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from avatarcam.avatar import default_avatar_path, read_image, save_image, square_crop
from avatarcam.colour import is_greyscale
from avatarcam.config import AnimatorConfig, Config
from avatarcam.eval.metrics import (
    INNER_LIPS,
    MOVE_THRESHOLDS,
    OUTER_LIPS,
    IdentityEmbedder,
    StaticLandmarks,
    aggregate,
    format_table,
    lip_chroma,
    lips_kept,
    motion_signals,
    mouth_colour,
    normalized_jitter,
    score_clip,
)
from avatarcam.eval.runner import (
    TURNED_SOURCE_DEGREES,
    EvalReport,
    aggregate_methods,
    animate_with_counts,
    count_scores,
    frame_count,
    load_portraits,
    worst_cases,
)
from avatarcam.eval.sidebyside import side_by_side
from avatarcam.types import Avatar, Frame

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


# --- What a person sees (EVAL.md): worst blocks, mouth colour, greyscale kept, normalized jitter, folds ---


def _grey(image: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def _tint_mouth(image: np.ndarray, lm: np.ndarray, a: int, b: int) -> np.ndarray:
    """The mouth interior recoloured to (a, b), its lightness (teeth, shadows) kept so the detector still sees it."""
    inside = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(lm[INNER_LIPS]).astype(np.int32)], 1)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2Lab)
    lab[inside > 0, 1:] = (128 + a, 128 + b)
    return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)


def test_inner_lip_polygon_is_evals() -> None:
    # EVAL.md lists it from 78 the other way round; the same points in the same cyclic order.
    listed = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
    assert list(INNER_LIPS) == [listed[0], *reversed(listed[1:])]


def test_torn_block_raises_p99f_but_barely_l1f(landmarks: StaticLandmarks, moving_clip: list[np.ndarray]) -> None:
    clean = score_clip(moving_clip, truths=moving_clip, landmarks=landmarks, identity=None)
    assert clean["P99F"] == 0.0
    torn = []
    for frame in moving_clip:
        x, y = (np.round(landmarks(frame)[1]).astype(int) // 8) * 8  # a strip of whole 8x8 blocks at the nose
        out = frame.copy()
        out[y : y + 8, x - 24 : x + 24] = np.roll(frame, 40, axis=1)[y : y + 8, x - 24 : x + 24]  # a tear: 6 blocks
        torn.append(out)
    scores = score_clip(torn, truths=moving_clip, landmarks=landmarks, identity=None)
    assert scores["P99F"] > 10.0  # 8-bit Lab units (17 here)
    assert scores["L1F"] < 0.01  # the same tear hardly moves the face mean (0.006 on a 0-1 scale: 1.4 of 255)


def test_grey_portrait_gets_grayc_and_a_coloured_patch_raises_it(
    landmarks: StaticLandmarks, astronaut: np.ndarray
) -> None:
    grey = _grey(astronaut)
    assert is_greyscale(grey) and not is_greyscale(astronaut)
    clip = [grey] * 6  # frames 0 and 5 are looked at
    kept = score_clip(clip, driver=clip, portrait=grey, landmarks=landmarks, identity=None)
    assert kept["GRAYC"] < 1.0
    assert "MOUTHC" not in kept, "mouth colour is for colour portraits"
    x, y = np.round(landmarks(grey)[1]).astype(int)
    tinted = grey.copy()
    tinted[y - 12 : y + 12, x - 12 : x + 12] = (40, 160, 60)  # a green patch on the nose
    frames = [grey] * 5 + [tinted]  # only the worst of the frames looked at counts
    scores = score_clip(frames, driver=clip, portrait=grey, landmarks=landmarks, identity=None)
    assert scores["GRAYC"] > 30.0


def test_green_mouth_against_red_driver_raises_mouthc(landmarks: StaticLandmarks, astronaut: np.ndarray) -> None:
    lm = landmarks(astronaut)
    signals = motion_signals(lm)
    assert signals["mouth"] >= 0.06, "the astronaut smiles with her mouth open"
    red = [_tint_mouth(astronaut, lm, 40, 20)] * 4
    green = [_tint_mouth(astronaut, lm, -40, 30)] * 4
    same = score_clip(red, driver=red, portrait=astronaut, landmarks=landmarks, identity=None)
    assert same["MOUTHC"] < 1.0 and same["MOUTHC_MAX"] < 1.0
    assert "GRAYC" not in same
    wrong = score_clip(green, driver=red, portrait=astronaut, landmarks=landmarks, identity=None)
    assert wrong["MOUTHC"] > 40.0 and wrong["MOUTHC_MAX"] == pytest.approx(wrong["MOUTHC"])
    # Self-reenactment measures it too (the clip's first frame is the colour source).
    assert score_clip(green, truths=red, landmarks=landmarks, identity=None)["MOUTHC"] > 40.0


def test_outer_lip_polygon_is_evals() -> None:
    listed = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
    assert list(OUTER_LIPS) == [listed[0], *reversed(listed[1:])]


def _tint_rim(image: np.ndarray, lm: np.ndarray, a: int, b: int) -> np.ndarray:
    """A lipstick rim: the inner-lip polygon's outline, 3 px wide, recoloured to (a, b), its lightness kept."""
    rim = np.zeros(image.shape[:2], np.uint8)
    cv2.polylines(rim, [np.round(lm[INNER_LIPS]).astype(np.int32)], True, 1, 3)
    inside = np.zeros_like(rim)
    cv2.fillPoly(inside, [np.round(lm[INNER_LIPS]).astype(np.int32)], 1)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2Lab)
    lab[(rim > 0) & (inside > 0), 1:] = (128 + a, 128 + b)
    return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)


def test_lipstick_rim_and_pink_interior_raise_lipsat_and_mouthsat(
    landmarks: StaticLandmarks, astronaut: np.ndarray
) -> None:
    lm = landmarks(astronaut)
    own = lip_chroma(astronaut, lm)
    assert 5.0 < own < 60.0, "the astronaut's lips have a colour of their own"
    # Her own frame: her own interior (teeth) reads near 0 on both.
    kept = lips_kept([astronaut] * 3, [lm] * 3, astronaut, lm)
    assert kept["LIPSAT"] < 4.0 and kept["MOUTHSAT"] < 4.0
    # A hot-pink rim inside her lips raises LIPSAT; a hot-pink interior raises both.
    rimmed = lips_kept([_tint_rim(astronaut, lm, 60, -10)] * 3, [lm] * 3, astronaut, lm)
    assert rimmed["LIPSAT"] > 20.0
    pink = lips_kept([_tint_mouth(astronaut, lm, 60, -10)] * 3, [lm] * 3, astronaut, lm)
    assert pink["LIPSAT"] > 20.0 and pink["MOUTHSAT"] > 20.0
    # Only open mouths count; cross-reenactment of a colour portrait reports both, self-reenactment neither.
    shut = lm.copy()
    shut[14] = shut[13]
    assert math.isnan(lips_kept([astronaut], [shut], astronaut, lm)["LIPSAT"])
    cross = score_clip([astronaut] * 2, driver=[astronaut] * 2, portrait=astronaut, landmarks=landmarks, identity=None)
    assert cross["LIPSAT"] < 4.0 and cross["MOUTHSAT"] < 4.0
    assert "LIPSAT" not in score_clip([astronaut] * 2, truths=[astronaut] * 2, landmarks=landmarks, identity=None)


def test_mouthc_counts_only_frames_where_both_mouths_are_open(
    landmarks: StaticLandmarks, astronaut: np.ndarray
) -> None:
    lm = landmarks(astronaut)
    green = _tint_mouth(astronaut, lm, -40, 30)
    shut = lm.copy()
    shut[14] = shut[13]  # the lips meet: closed
    assert mouth_colour([green], [lm], [astronaut], [lm])["MOUTHC"] > 20.0
    for out_lm, drv_lm in ((shut, lm), (lm, shut), (None, lm)):
        scores = mouth_colour([green], [out_lm], [astronaut], [drv_lm])
        assert math.isnan(scores["MOUTHC"]) and math.isnan(scores["MOUTHC_MAX"])


def test_normalized_jitter_ignores_face_size() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(50, 200, (478, 2))
    lms = [base + rng.normal(0, 0.5, base.shape) for _ in range(10)]
    iod = np.mean([np.linalg.norm(lm[33] - lm[263]) for lm in lms])
    small = normalized_jitter(lms)
    assert normalized_jitter([lm * 2 for lm in lms]) == pytest.approx(small)
    jitter = np.mean(
        [np.linalg.norm(c - 2 * b + a, axis=1).mean() for a, b, c in zip(lms, lms[1:], lms[2:], strict=False)]
    )
    assert small == pytest.approx(100 * jitter / iod)
    assert math.isnan(normalized_jitter([None] * 4))


def test_score_clip_reports_normalized_jitter(landmarks: StaticLandmarks, moving_clip: list[np.ndarray]) -> None:
    scores = score_clip(moving_clip, truths=moving_clip, landmarks=landmarks, identity=None)
    assert scores["JITN"] == pytest.approx(scores["JITN_D"]) and scores["JITN"] > 0


class _Warp:
    last_folds = 3


class _Wrapper:
    warp = _Warp()


def test_fold_counts_are_read_defensively() -> None:
    assert frame_count(_Warp(), "last_folds") == 3
    assert frame_count(_Wrapper(), "last_folds") == 3, "the talking head's warp is read through"
    assert frame_count(object(), "last_folds") is None
    assert count_scores("FOLDS", [0, 2, None, 1]) == {"FOLDS": 2.0, "FOLDS_T": 3.0}
    assert all(math.isnan(v) for v in count_scores("FOLDS", [None, None]).values())
    # Over an eval the counts add up; the other metrics average.
    total = aggregate([{"FOLDS": 2.0, "FOLDS_T": 5.0, "P99F": 4.0}, {"FOLDS": 1.0, "FOLDS_T": 1.0, "P99F": 2.0}])
    assert total["FOLDS"] == 3.0 and total["FOLDS_T"] == 6.0 and total["P99F"] == 3.0
    table = format_table({"static": count_scores("FOLDS", []), "warp": total})
    assert table.splitlines()[0] == "| method | P99F | FOLDS | FOLDS_T |"
    assert "| static | n/a | n/a | n/a |" in table


def test_warp_reports_folds_and_tears_each_frame(astronaut_face: Avatar, demo_frames: list[Frame]) -> None:
    config = Config(animator=AnimatorConfig(size=256))
    frames, counts = animate_with_counts(config, astronaut_face, [f.image for f in demo_frames[:4]], 30.0)
    assert len(frames) == len(counts["FOLDS"]) == len(counts["TEARS"]) == 4
    assert all(isinstance(c, int) and c >= 0 for name in ("FOLDS", "TEARS") for c in counts[name])


def test_worst_cases_name_clips_and_pairs() -> None:
    per_clip = [
        {"clip": "a.mp4", "mode": "self", "method": "warp", "P99F": 5.0},
        {"clip": "a.mp4", "mode": "self", "method": "static", "P99F": 50.0},
        {"clip": "b.mp4", "mode": "cross", "portrait": "lia_monroe", "method": "warp", "P99F": 9.0, "GRAYC": 7.5},
        {"clip": "c.mp4", "mode": "self", "method": "warp", "P99F": math.nan, "MOUTHC_MAX": 3.0},
    ]
    lines = worst_cases(per_clip)
    assert lines[0] == "- P99F: b.mp4 → lia_monroe (warp, cross) 9.0; a.mp4 (warp, self) 5.0"
    assert lines[1] == "- MOUTHC_MAX: c.mp4 (warp, self) 3.0"
    assert lines[2] == "- GRAYC: b.mp4 → lia_monroe (warp, cross) 7.5"
    assert "Worst cases" in EvalReport(per_clip=per_clip).markdown()


def test_several_portrait_folders_interleave(tmp_path: Path) -> None:
    image = cv2.cvtColor(read_image(default_avatar_path()), cv2.COLOR_RGB2BGR)
    for name in ("a/1.png", "a/2.png", "b/1.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / name), image if name != "b/1.png" else cv2.cvtColor(_grey(image), cv2.COLOR_RGB2BGR))
    one = load_portraits([tmp_path / "a"], 128)
    assert [p.source for p in one] == [str(tmp_path / "a/1.png"), str(tmp_path / "a/2.png")]
    both = load_portraits([tmp_path / "a", tmp_path / "b"], 128)
    assert [Path(p.source).relative_to(tmp_path).as_posix() for p in both] == ["a/1.png", "b/1.png", "a/2.png"]
    assert is_greyscale(both[1].image)


def test_shared_greyscale_portrait_is_detected() -> None:
    assert is_greyscale(_load_portrait("lia_monroe.png"))
    assert not is_greyscale(_load_portrait("lia_macron.png"))
