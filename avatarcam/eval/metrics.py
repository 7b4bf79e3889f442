"""Quality metrics for animated frames, implemented exactly as the shared EVAL.md defines them.

All frames are 256x256 RGB uint8 (see `avatarcam.avatar.square_crop`); landmark and jitter figures are in
pixels at that size.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import cv2
import numpy as np

from avatarcam.colour import chroma, is_greyscale, to_lab
from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import face_mask

FRAME_SIZE = 256
SIGNALS = ("mouth", "eyes", "yaw", "pitch")
# Driver std below which a signal does not move enough for a correlation to mean anything (EVAL.md).
MOVE_THRESHOLDS = {"mouth": 0.03, "eyes": 0.015, "yaw": 0.04, "pitch": 0.03}
ID_EVERY = 10
# Identical frames have MSE 0; flooring it keeps PSNR finite so means stay usable (caps PSNR at 100 dB).
MSE_FLOOR = 1e-10
_FLAT_STD = 1e-9
# "What a person sees" (EVAL.md): worst blocks, mouth colour and greyscale, all in OpenCV's 8-bit Lab.
BLOCK = 8  # P99F block side, pixels at 256²
BLOCK_INSIDE = 0.5  # a block counts when at least this share of it lies inside the face hull
MOUTH_OPEN_IOD = 0.06  # a mouth is open when |p13 - p14| >= this many iod
GRAY_EVERY = 5  # GRAYC looks at every 5th frame
# EVAL.md lists the inner-lip polygon from 78 round the other way; the same polygon, so the topology's is reused
# (and the outer-lip polygon from 61 the other way round).
INNER_LIPS = T.INNER_LIPS
OUTER_LIPS = T.OUTER_LIPS
LIP_RIM_IOD = 0.04  # LIPSAT's rim: the inner-lip polygon minus itself eroded by this many iod
LIPSAT_PERCENTILE = 95

_EVAL_EXTRA_MSG = "identity metric needs the eval extra: pip install 'avatarcam[eval]'"


class _FrameCache:
    """Bounded LRU keyed by frame content: the static baseline repeats one frame and every method shares a driver."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[bytes, Any] = OrderedDict()

    @staticmethod
    def key(image: np.ndarray) -> bytes:
        digest = hashlib.blake2b(image.tobytes(), digest_size=16)
        digest.update(repr((image.shape, image.dtype.str)).encode())
        return digest.digest()

    def get(self, key: bytes) -> tuple[bool, Any]:
        if key not in self._items:
            return False, None
        self._items.move_to_end(key)
        return True, self._items[key]

    def put(self, key: bytes, value: Any) -> None:
        if self._size <= 0:
            return
        self._items[key] = value
        if len(self._items) > self._size:
            self._items.popitem(last=False)


class StaticLandmarks:
    """MediaPipe FaceMesh in static image mode: each frame is measured on its own, with no tracking to smooth it."""

    def __init__(self, cache_size: int = 4096) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1)
        self._cache = _FrameCache(cache_size)

    def __call__(self, image_rgb_256: np.ndarray) -> np.ndarray | None:
        """(478, 2) float pixel coordinates of the face, or None when no face is found."""
        key = self._cache.key(image_rgb_256)
        hit, value = self._cache.get(key)
        if hit:
            return None if value is None else value.copy()
        height, width = image_rgb_256.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(image_rgb_256))
        points = None
        if result.multi_face_landmarks:
            marks = result.multi_face_landmarks[0].landmark
            points = np.array([(m.x * width, m.y * height) for m in marks], dtype=np.float64)
        self._cache.put(key, points)
        return None if points is None else points.copy()

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _models_dir() -> Path | None:
    # Located without importing face_recognition_models: its __init__ needs pkg_resources, often absent.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


_DLIB_MODELS = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")


class IdentityEmbedder:
    """dlib face embeddings (128-d); distances below 0.6 mean the same person."""

    def __init__(self, cache_size: int = 1024) -> None:
        if not IdentityEmbedder.available():
            raise RuntimeError(_EVAL_EXTRA_MSG)
        import dlib

        models = _models_dir()
        assert models is not None  # guaranteed by available()
        self._detector = dlib.get_frontal_face_detector()
        self._shapes = dlib.shape_predictor(str(models / _DLIB_MODELS[0]))
        self._encoder = dlib.face_recognition_model_v1(str(models / _DLIB_MODELS[1]))
        self._cache = _FrameCache(cache_size)

    @staticmethod
    def available() -> bool:
        models = _models_dir()
        return (
            importlib.util.find_spec("dlib") is not None
            and models is not None
            and all((models / name).is_file() for name in _DLIB_MODELS)
        )

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """128-d embedding of the largest detected face, or None when dlib finds no face (callers count these)."""
        key = self._cache.key(image_rgb)
        hit, value = self._cache.get(key)
        if hit:
            return None if value is None else value.copy()
        image = np.ascontiguousarray(image_rgb)
        faces = self._detector(image, 1)
        embedding = None
        if len(faces) > 0:
            face = max(faces, key=lambda rect: rect.area())
            descriptor = self._encoder.compute_face_descriptor(image, self._shapes(image, face))
            embedding = np.array(descriptor, dtype=np.float64)
        self._cache.put(key, embedding)
        return None if embedding is None else embedding.copy()


def motion_signals(lm: np.ndarray) -> dict[str, float]:
    """Mouth, eye opening, yaw and pitch in units of the inter-ocular distance |p33 - p263|."""

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(lm[a] - lm[b]))

    iod = dist(33, 263)
    return {
        "mouth": dist(13, 14) / iod,
        "eyes": (dist(159, 145) + dist(386, 374)) / (2.0 * iod),
        "yaw": (dist(1, 234) - dist(1, 454)) / iod,
        "pitch": (dist(1, 10) - dist(1, 152)) / iod,
    }


Landmarks = list[np.ndarray | None]


def _check_frames(name: str, frames: Sequence[np.ndarray]) -> None:
    expected = (FRAME_SIZE, FRAME_SIZE, 3)
    for frame in frames:
        if frame.shape != expected or frame.dtype != np.uint8:
            raise ValueError(
                f"{name} frames must be {expected} uint8 (use avatarcam.avatar.square_crop), "
                f"got {frame.shape} {frame.dtype}"
            )


def _mean_or_nan(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _pixel_metrics(
    outputs: Sequence[np.ndarray], truths: Sequence[np.ndarray], truth_lm: Landmarks
) -> dict[str, float]:
    l1, l1_face, psnr, p99f = [], [], [], []
    for out, truth, lm in zip(outputs, truths, truth_lm, strict=False):
        diff = np.abs(out.astype(np.float64) - truth.astype(np.float64)) / 255.0
        l1.append(float(diff.mean()))
        psnr.append(10.0 * math.log10(1.0 / max(float(np.mean(diff**2)), MSE_FLOOR)))
        if lm is not None:
            mask = face_mask(lm, truth.shape[0]) > 0
            if mask.any():
                l1_face.append(float(diff[mask].mean()))
            worst = worst_face_blocks(out, truth, mask)
            if not math.isnan(worst):
                p99f.append(worst)
    return {
        "L1": _mean_or_nan(l1),
        "L1F": _mean_or_nan(l1_face),
        "PSNR": _mean_or_nan(psnr),
        "P99F": _mean_or_nan(p99f),
    }


def worst_face_blocks(out: np.ndarray, truth: np.ndarray, face: np.ndarray) -> float:
    """P99F of one frame: the 99th percentile, over the BLOCK² blocks at least half inside `face`, of the block's
    mean |output - truth|. The difference is in 8-bit Lab units (0-255 per channel), averaged over L, a and b, so
    a false colour counts as much as a wrong lightness. NaN when no block is inside the face."""
    h, w = face.shape
    grid = (h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    diff = np.abs(to_lab(out) - to_lab(truth)).mean(axis=2)
    block_diff = diff[: grid[0] * BLOCK, : grid[2] * BLOCK].reshape(grid).mean(axis=(1, 3))
    inside = face[: grid[0] * BLOCK, : grid[2] * BLOCK].reshape(grid).mean(axis=(1, 3)) >= BLOCK_INSIDE
    return float(np.percentile(block_diff[inside], 99)) if inside.any() else math.nan


def _mouth_open(lm: np.ndarray) -> bool:
    return float(np.linalg.norm(lm[13] - lm[14])) >= MOUTH_OPEN_IOD * float(np.linalg.norm(lm[33] - lm[263]))


def _polygon_mask(lm: np.ndarray, polygon: list[int], shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(lm[polygon, :2]).astype(np.int32)], 1)
    return mask.astype(bool)


def _mean_mouth_ab(image: np.ndarray, lm: np.ndarray) -> np.ndarray | None:
    """Mean (a, b) inside the inner-lip polygon, or None when the polygon covers no pixel."""
    mask = _polygon_mask(lm, INNER_LIPS, image.shape)
    if not mask.any():
        return None
    return to_lab(image)[mask][:, 1:].mean(axis=0)


def mouth_colour(
    outputs: Sequence[np.ndarray], output_lm: Landmarks, driver: Sequence[np.ndarray], driver_lm: Landmarks
) -> dict[str, float]:
    """MOUTHC (mean) and MOUTHC_MAX (95th percentile) of the (a, b) distance between the output's and the
    driver's mouth interiors, over frames where both mouths are open; NaN when none is."""
    distances = []
    for out, o_lm, drv, d_lm in zip(outputs, output_lm, driver, driver_lm, strict=True):
        if o_lm is None or d_lm is None or not (_mouth_open(o_lm) and _mouth_open(d_lm)):
            continue
        o_ab, d_ab = _mean_mouth_ab(out, o_lm), _mean_mouth_ab(drv, d_lm)
        if o_ab is not None and d_ab is not None:
            distances.append(float(np.linalg.norm(o_ab - d_ab)))
    return {
        "MOUTHC": _mean_or_nan(distances),
        "MOUTHC_MAX": float(np.percentile(distances, 95)) if distances else math.nan,
    }


def lip_chroma(portrait: np.ndarray, lm: np.ndarray) -> float:
    """The portrait's own lip chroma: the median chroma of its lip band (outer-lip polygon minus inner); NaN when
    the band covers no pixel."""
    band = _polygon_mask(lm, OUTER_LIPS, portrait.shape) & ~_polygon_mask(lm, INNER_LIPS, portrait.shape)
    return float(np.median(chroma(portrait)[band])) if band.any() else math.nan


def lips_kept(
    outputs: Sequence[np.ndarray], output_lm: Landmarks, portrait: np.ndarray, portrait_lm: np.ndarray | None
) -> dict[str, float]:
    """LIPSAT and MOUTHSAT (EVAL.md): in each output frame with an open mouth, the median chroma of the rim just
    inside the inner-lip polygon (LIPSAT) and of the whole polygon (MOUTHSAT) above the portrait's own lip
    chroma, floored at 0; the 95th percentile of each over the frames. NaN when no frame's mouth is open."""
    own = lip_chroma(portrait, portrait_lm) if portrait_lm is not None else math.nan
    rims, wholes = [], []
    for out, lm in zip(outputs, output_lm, strict=True):
        if lm is None or math.isnan(own) or not _mouth_open(lm):
            continue
        inner = _polygon_mask(lm, INNER_LIPS, out.shape)
        if not inner.any():
            continue
        depth = cv2.distanceTransform(np.pad(inner, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        rim = inner & (depth <= LIP_RIM_IOD * float(np.linalg.norm(lm[33] - lm[263])))
        c = chroma(out)
        wholes.append(max(float(np.median(c[inner])) - own, 0.0))
        rims.append(max(float(np.median(c[rim if rim.any() else inner])) - own, 0.0))
    return {
        "LIPSAT": float(np.percentile(rims, LIPSAT_PERCENTILE)) if rims else math.nan,
        "MOUTHSAT": float(np.percentile(wholes, LIPSAT_PERCENTILE)) if wholes else math.nan,
    }


def grey_kept(outputs: Sequence[np.ndarray], output_lm: Landmarks) -> float:
    """GRAYC: the worst, over every GRAY_EVERY-th output frame with a face, of the 99th-percentile chroma inside
    the output's face hull; NaN when none of them has a face."""
    values = []
    for i in range(0, len(outputs), GRAY_EVERY):
        lm = output_lm[i]
        face = face_mask(lm, outputs[i].shape[0]) > 0 if lm is not None else None
        if face is not None and face.any():
            values.append(float(np.percentile(chroma(outputs[i])[face], 99)))
    return max(values) if values else math.nan


def _akd(output_lm: Landmarks, truth_lm: Landmarks) -> float:
    distances = [
        float(np.linalg.norm(out - truth, axis=1).mean())
        for out, truth in zip(output_lm, truth_lm, strict=False)
        if out is not None and truth is not None
    ]
    return _mean_or_nan(distances)


def _jitter(lms: Landmarks) -> float:
    """Mean Euclidean second difference, over frames whose face is found in it and both neighbours."""
    values = []
    for prev, cur, nxt in zip(lms, lms[1:], lms[2:], strict=False):
        if prev is not None and cur is not None and nxt is not None:
            values.append(float(np.linalg.norm(nxt - 2.0 * cur + prev, axis=1).mean()))
    return _mean_or_nan(values)


def normalized_jitter(lms: Landmarks) -> float:
    """JITN: jitter over the sequence's mean inter-ocular distance (points 33-263), x100."""
    iods = [float(np.linalg.norm(lm[33] - lm[263])) for lm in lms if lm is not None]
    return 100.0 * _jitter(lms) / float(np.mean(iods)) if iods else math.nan


def motion_correlations(driver_lm: Landmarks, output_lm: Landmarks) -> dict[str, float]:
    """Pearson r per signal; NaN where the driver does not move in it, 0 where the output does not follow."""
    driver_sig = [motion_signals(lm) if lm is not None else None for lm in driver_lm]
    output_sig = [motion_signals(lm) if lm is not None else None for lm in output_lm]
    result = {}
    for name in SIGNALS:
        moving = np.array([s[name] for s in driver_sig if s is not None])
        if len(moving) < 2 or float(moving.std()) < MOVE_THRESHOLDS[name]:
            result[f"corr_{name}"] = math.nan
            continue
        pairs = np.array(
            [(d[name], o[name]) for d, o in zip(driver_sig, output_sig, strict=True) if d is not None and o is not None]
        )
        # A frozen output, or one with (almost) no face, has not transferred the motion; the tolerance absorbs
        # float rounding in the std of identical values.
        if len(pairs) < 2 or float(pairs[:, 0].std()) < _FLAT_STD or float(pairs[:, 1].std()) < _FLAT_STD:
            result[f"corr_{name}"] = 0.0
            continue
        result[f"corr_{name}"] = float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])
    return result


def _identity(
    outputs: Sequence[np.ndarray], references: Sequence[np.ndarray | None], identity: IdentityEmbedder
) -> dict[str, float]:
    """Distance of every ID_EVERY-th output to its reference embedding; id_miss counts outputs dlib finds no face in."""
    distances, misses, sampled = [], 0, 0
    for index in range(0, len(outputs), ID_EVERY):
        sampled += 1
        out = identity(outputs[index])
        if out is None:
            misses += 1
        elif references[index] is not None:
            distances.append(float(np.linalg.norm(out - references[index])))
    return {"ID": _mean_or_nan(distances), "id_miss": misses / sampled if sampled else math.nan}


def score_clip(
    outputs: Sequence[np.ndarray],
    truths: Sequence[np.ndarray] | None = None,
    driver: Sequence[np.ndarray] | None = None,
    portrait: np.ndarray | None = None,
    *,
    landmarks: StaticLandmarks,
    identity: IdentityEmbedder | None = None,
) -> dict[str, float]:
    """Metrics of one clip: self-reenactment when truths are given (they are the driver), else cross-reenactment.
    The source (`portrait`, or in self-reenactment the first truth) decides between MOUTHC (a colour source) and
    GRAYC (a greyscale one): only the one that applies is in the result."""
    if truths is not None:
        if len(truths) != len(outputs):
            raise ValueError(f"{len(outputs)} outputs but {len(truths)} ground-truth frames")
        driver = truths
    elif driver is None or portrait is None:
        raise ValueError("cross-reenactment needs both driver and portrait")
    if len(driver) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs but {len(driver)} driver frames")
    _check_frames("output", outputs)
    _check_frames("driver", driver)

    output_lm = [landmarks(frame) for frame in outputs]
    driver_lm = [landmarks(frame) for frame in driver]
    scores: dict[str, float] = {}
    if truths is not None:
        scores.update(_pixel_metrics(outputs, truths, driver_lm))
        scores["AKD"] = _akd(output_lm, driver_lm)
    if identity is not None:
        if truths is not None:
            references = [identity(truths[i]) if i % ID_EVERY == 0 else None for i in range(len(truths))]
        else:
            references = [identity(portrait)] * len(outputs)
        scores.update(_identity(outputs, references, identity))
    else:
        scores["ID"] = math.nan
    scores.update(motion_correlations(driver_lm, output_lm))
    scores["miss"] = sum(lm is None for lm in output_lm) / len(outputs) if outputs else math.nan
    scores["JIT"] = _jitter(output_lm)
    scores["JIT_D"] = _jitter(driver_lm)
    scores["JITN"] = normalized_jitter(output_lm)
    scores["JITN_D"] = normalized_jitter(driver_lm)
    source = portrait if truths is None else truths[0]
    if source is not None and is_greyscale(source):
        scores["GRAYC"] = grey_kept(outputs, output_lm)
    elif source is not None:
        scores.update(mouth_colour(outputs, output_lm, driver, driver_lm))
        if truths is None:
            scores.update(lips_kept(outputs, output_lm, portrait, landmarks(portrait)))
    return scores


# Counts that add up over an eval rather than average (frames with a fold or a tear, folded or torn triangles).
SUMMED = ("FOLDS", "FOLDS_T", "TEARS", "TEARS_T")


def aggregate(per_clip: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the clips where it is defined (the total for SUMMED counts), and how many clips
    each correlation rests on."""
    keys = list(dict.fromkeys(key for clip in per_clip for key in clip))
    result: dict[str, float] = {"n_clips": float(len(per_clip))}
    for key in keys:
        values = [clip[key] for clip in per_clip if key in clip and not math.isnan(clip[key])]
        result[key] = (float(sum(values)) if values else math.nan) if key in SUMMED else _mean_or_nan(values)
        if key.startswith("corr_"):
            result[f"n_{key}"] = float(len(values))
    return result


# (result key, column header), in the order EVAL.md introduces the metrics.
TABLE_COLUMNS = (
    ("L1", "L1"),
    ("L1F", "L1F"),
    ("PSNR", "PSNR"),
    ("AKD", "AKD"),
    ("ID", "ID"),
    ("corr_mouth", "mouth"),
    ("corr_eyes", "eyes"),
    ("corr_yaw", "yaw"),
    ("corr_pitch", "pitch"),
    ("miss", "miss"),
    ("JIT", "JIT"),
    ("JIT_D", "JIT_D"),
    ("JITN", "JITN"),
    ("JITN_D", "JITN_D"),
    ("P99F", "P99F"),
    ("MOUTHC", "MOUTHC"),
    ("MOUTHC_MAX", "MOUTHC_MAX"),
    ("GRAYC", "GRAYC"),
    ("LIPSAT", "LIPSAT"),
    ("MOUTHSAT", "MOUTHSAT"),
    ("FOLDS", "FOLDS"),
    ("FOLDS_T", "FOLDS_T"),
    ("TEARS", "TEARS"),
    ("TEARS_T", "TEARS_T"),
)


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table, one row per method; only the columns some method reports, NaN shown as n/a."""
    columns = [(key, header) for key, header in TABLE_COLUMNS if any(key in row for row in rows.values())]
    lines = [
        "| method | " + " | ".join(header for _, header in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for method, row in rows.items():
        cells = [_format_cell(row.get(key, math.nan)) for key, _ in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _format_cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"
