"""`avatarcam faceswap extract`: aligned face crops, landmarks and masks of one person from videos or images.

Every frame (or every n-th) is searched for faces; each face is aligned to a fixed crop (align.py). Frames with
no face are skipped, blurred ones (sharpness under a share of the source's median) too, and only the main
identity is kept: the person whose look (skin colour statistics) and rigid face shape are closest to the medoid
of the largest faces. The folder gets `crops/NNNNNN.png`, `masks/NNNNNN.png`, `landmarks.npz` (crop
coordinates) and `extract.json` (what was kept and why the rest was not).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from avatarcam.animators.faceswap.align import aligned_crop, sharpness, transform_points
from avatarcam.avatar import IMAGE_SUFFIXES, AvatarError, read_image
from avatarcam.eval.runner import VIDEO_SUFFIXES
from avatarcam.io.sources import SourceError, VideoFileSource
from avatarcam.tracking import topology as T
from avatarcam.tracking.facemesh import FaceMeshDetector
from avatarcam.tracking.geometry import face_mask, fit_pose, to_canonical

log = logging.getLogger(__name__)

MAX_FACES_PER_FRAME = 3
IDENTITY_SPREAD = 3.0  # a face further than this many median distances from the main identity is someone else


@dataclass
class ExtractSettings:
    size: int = 128
    every: int = 1  # take every n-th video frame
    max_faces: int = 2000
    blur_share: float = 0.35  # sharpness below this share of the median: blurred


@dataclass
class ExtractReport:
    frames: int = 0
    no_face: int = 0
    blurry: int = 0
    other_identity: int = 0
    kept: int = 0
    size: int = 0
    sources: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.kept} faces kept of {self.frames} frames ({self.no_face} without a face, {self.blurry} blurred, "
            f"{self.other_identity} of someone else)"
        )


@dataclass
class Candidate:
    frame: int
    crop: np.ndarray
    landmarks: np.ndarray  # crop coordinates
    area: float  # face area in the source image (the main person is usually the largest)
    shape: np.ndarray  # rigid canonical shape, flattened
    look: np.ndarray  # LAB mean and std inside the face


def _media(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images or videos in {source}")
        return files
    if not source.is_file():
        raise FileNotFoundError(f"no such file or folder: {source}")
    return [source]


def _frames(path: Path, every: int, bar: tqdm):
    """(image) for an image, or every n-th frame of a video; RGB uint8. Adds what it will read to the bar's total."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        bar.total = (bar.total or 0) + 1
        try:
            yield read_image(path)
        except AvatarError as exc:
            log.info("%s", exc)
        return
    try:
        video = VideoFileSource(path, loop=False)
    except SourceError as exc:
        log.warning("skipped: %s", exc)
        return
    bar.total = (bar.total or 0) + -(-video.frame_count // every)
    bar.refresh()
    with video:
        while (frame := video.read()) is not None:
            yield frame.image
            for _ in range(every - 1):
                video.skip()


def _candidate(image: np.ndarray, landmarks: np.ndarray, frame: int, size: int) -> Candidate:
    crop, matrix = aligned_crop(image, landmarks, size)
    local = transform_points(matrix, landmarks).astype(np.float32)
    mask = face_mask(local, size) > 0
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).reshape(-1, 3)[mask.ravel()].astype(np.float64)
    scale, rot, trans = fit_pose(landmarks)
    shape = to_canonical(landmarks[T.RIGID].astype(np.float64), scale, rot, trans)
    area = float(np.ptp(landmarks[:, 0]) * np.ptp(landmarks[:, 1]))
    look = np.concatenate([lab.mean(0), lab.std(0)]) if len(lab) else np.zeros(6)
    return Candidate(frame, crop, local, area, (shape - shape.mean(0)).ravel(), look)


def _identity_distances(candidates: list[Candidate], reference: list[Candidate]) -> np.ndarray:
    """Distance of every candidate to the medoid of `reference`, shape and look each in units of their median."""
    shapes = np.stack([c.shape for c in candidates])
    looks = np.stack([c.look for c in candidates])
    ref_shapes = np.stack([c.shape for c in reference])
    ref_looks = np.stack([c.look for c in reference])
    # Medoid of the reference set (the largest face per frame), by the summed normalized distance.
    ds = np.linalg.norm(ref_shapes[:, None] - ref_shapes[None], axis=2)
    dl = np.linalg.norm(ref_looks[:, None] - ref_looks[None], axis=2)
    norm_s, norm_l = max(float(np.median(ds)), 1e-6), max(float(np.median(dl)), 1e-6)
    medoid = int(np.argmin((ds / norm_s + dl / norm_l).sum(1)))
    dist_s = np.linalg.norm(shapes - ref_shapes[medoid], axis=1) / norm_s
    dist_l = np.linalg.norm(looks - ref_looks[medoid], axis=1) / norm_l
    return dist_s + dist_l


def extract(
    source: str | Path, out_dir: str | Path, settings: ExtractSettings | None = None, progress: bool = True
) -> ExtractReport:
    settings = settings or ExtractSettings()
    files = _media(Path(source))
    report = ExtractReport(size=settings.size, sources=[str(p) for p in files])
    per_frame: list[list[Candidate]] = []
    detector = FaceMeshDetector(static=True, max_faces=MAX_FACES_PER_FRAME)
    bar = tqdm(desc="extract", unit="frame", disable=not progress)
    try:
        for path in files:
            for image in _frames(path, settings.every, bar):
                report.frames += 1
                bar.update(1)
                faces = detector.all_faces(image)
                if not faces:
                    report.no_face += 1
                    continue
                per_frame.append([_candidate(image, lm, report.frames - 1, settings.size) for lm in faces])
                if len(per_frame) >= settings.max_faces:
                    break
            if len(per_frame) >= settings.max_faces:
                break
    finally:
        bar.close()
        detector.close()
    # Blur first: a blurred face also looks like someone else (flatter colour statistics).
    kept = _main_identity(_sharp(per_frame, settings.blur_share, report), report)
    _write(Path(out_dir), kept, settings, report)
    return report


def _main_identity(per_frame: list[list[Candidate]], report: ExtractReport) -> list[Candidate]:
    """One face per frame, of the main person."""
    if not per_frame:
        return []
    largest = [max(faces, key=lambda c: c.area) for faces in per_frame]
    flat = [c for faces in per_frame for c in faces]
    distances = _identity_distances(flat, largest)
    limit = IDENTITY_SPREAD * max(float(np.median(distances[: len(flat)])), 1e-6)
    kept, k = [], 0
    for faces in per_frame:
        d = distances[k : k + len(faces)]
        k += len(faces)
        best = int(np.argmin(d))
        if d[best] <= limit:
            kept.append(faces[best])
        else:
            report.other_identity += 1
    return kept


def _sharp(per_frame: list[list[Candidate]], share: float, report: ExtractReport) -> list[list[Candidate]]:
    """Frames whose largest face is sharp enough (against the source's median sharpness)."""
    if not per_frame:
        return []
    scores = []
    for faces in per_frame:
        main = max(faces, key=lambda c: c.area)
        scores.append(sharpness(main.crop, face_mask(main.landmarks, main.crop.shape[0])))
    floor = share * float(np.median(scores))
    kept = [faces for faces, score in zip(per_frame, scores, strict=True) if score >= floor]
    report.blurry += len(per_frame) - len(kept)
    return kept


def _write(out: Path, kept: list[Candidate], settings: ExtractSettings, report: ExtractReport) -> None:
    (out / "crops").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    names = []
    for i, c in enumerate(kept):
        name = f"{i:06d}"
        cv2.imwrite(str(out / "crops" / f"{name}.png"), cv2.cvtColor(c.crop, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / "masks" / f"{name}.png"), face_mask(c.landmarks, settings.size))
        names.append(name)
    landmarks = np.stack([c.landmarks for c in kept]) if kept else np.zeros((0, 478, 3), np.float32)
    np.savez(out / "landmarks.npz", names=np.array(names), landmarks=landmarks)
    report.kept = len(kept)
    (out / "extract.json").write_text(json.dumps({**asdict(report), "settings": asdict(settings)}, indent=1))
