"""`avatarcam train data attributes`: labelled, aligned face crops for the StarGAN attribute edits.

Faces come from UTKFace (age and gender in the file names; `smiling` labelled here, from the MediaPipe Face
Landmarker's smile blendshapes, or from the mouth's geometry where the .task file is absent) or from CelebA
(`list_attr_celeba.txt`: any of its 40 attributes). Every face is found with the landmarker and cut with
`avatarcam.edits.align.align_face`, the crop the live avatar is edited in. Faces are written in shards of
SHARD_FACES, each whole (a temporary file, then a rename) and skipped when present, so an interrupted build
resumes where it stopped; `summary.json` is written last. UTKFace names also carry an ethnicity field: it is
never read or stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from avatarcam.avatar import IMAGE_SUFFIXES
from avatarcam.edits.align import EYE_DISTANCE, EYES_Y, MOUTH_Y, align_face, anchor_points
from avatarcam.tracking import topology as T
from avatarcam.tracking.facemesh import FaceMeshDetector, LandmarkerDetector

log = logging.getLogger(__name__)

ATTRIBUTES = ("smiling", "old", "young", "female")
OLD_AGE = 50  # old: age ≥ 50
YOUNG_AGE = 30  # young: age ≤ 30 (31–49 is neither)
# Smiling by the landmarker's blendshapes: mean(mouthSmileLeft, mouthSmileRight) > 0.35. Over UTKFace the
# score is bimodal (3,543 faces below 0.05, most of the rest above 0.6). Looking at faces by score band: below
# 0.2 mouths are neutral (a few open-mouthed babies, and some laughs the blendshapes miss); 0.22–0.34 is mixed,
# about half faint closed-lip smiles, half neutral faces with upturned corners; from 0.35 up nearly every face
# visibly smiles, closed-lip or with teeth. 0.35 keeps the positive class clean.
SMILE_THRESHOLD = 0.35
# The fallback without the .task file: (mouth-corner distance + corner lift above the lips' middle) / eye
# distance > 0.94. Weight and threshold were fitted to the blendshape labels on the 9,708 UTKFace faces the
# landmarker finds: the two agree on 92% of them (balanced accuracy); on FaceMesh's landmarks, as the fallback
# runs, on 91% (1,492 faces).
GEOMETRY_THRESHOLD = 0.94
# Splits by a hash of the file name (stable as the folder grows): one face in ten is held out of everything, for
# the figures; two in ten train the judge (train.stargan.judge), the attribute classifier that scores the
# edits and so must never have been seen by the generator; the rest train the generator.
HOLDOUT_EVERY = 10
JUDGE_BUCKETS = (1, 2)
SPLITS = ("train", "judge", "holdout")
SHARD_FACES = 500
SHARED = Path(__file__).resolve().parents[4] / "shared"  # ../shared beside the repository
DEFAULT_FACES = SHARED / "data" / "faces" / "utkface"
DEFAULT_TASK_FILE = SHARED / "models" / "face_landmarker_v2_with_blendshapes.task"
SUMMARY = "summary.json"
SETTINGS = "settings.json"

# AGE_GENDER_RACE_DATE.jpg[.chip.jpg]: the third field is matched to check the form, never captured.
_UTKFACE_NAME = re.compile(r"(\d{1,3})_([01])_\d_\d+\.jpg(?:\.chip\.jpg)?", re.IGNORECASE)

# The project's attribute names on CelebA's labels: (CelebA attribute, negated).
CELEBA_ALIASES: dict[str, tuple[str, bool]] = {
    "smiling": ("Smiling", False),
    "young": ("Young", False),
    "old": ("Young", True),  # coarser than UTKFace's age ≥ 50: CelebA labels only "young" or not
    "female": ("Male", True),
}


@dataclass(frozen=True)
class UtkFace:
    """What a UTKFace file name says that the project uses."""

    age: int
    female: bool


def parse_utkface_name(name: str) -> UtkFace | None:
    """Age and gender from `AGE_GENDER_RACE_DATE.jpg.chip.jpg`; None for a name of another form."""
    match = _UTKFACE_NAME.fullmatch(Path(name).name)
    if match is None:
        return None
    return UtkFace(age=int(match.group(1)), female=match.group(2) == "1")


def utkface_labels(face: UtkFace) -> dict[str, float]:
    """The labels a UTKFace name gives (all but `smiling`)."""
    return {"old": float(face.age >= OLD_AGE), "young": float(face.age <= YOUNG_AGE), "female": float(face.female)}


def split_of(name: str) -> str:
    """The split a face belongs to (stable: a hash of its file name): train, judge or holdout."""
    bucket = int(hashlib.sha1(name.encode()).hexdigest(), 16) % HOLDOUT_EVERY
    return "holdout" if bucket == 0 else "judge" if bucket in JUDGE_BUCKETS else "train"


def is_holdout(name: str) -> bool:
    """Whether a face is kept out of all training."""
    return split_of(name) == "holdout"


# --- CelebA -------------------------------------------------------------------------------------------------


def celeba_attribute_names(attr_file: str | Path) -> list[str]:
    """The 40 attribute names on the second line of `list_attr_celeba.txt`."""
    with open(attr_file) as fh:
        fh.readline()
        names = fh.readline().split()
    if not names:
        raise ValueError(f"{attr_file}: no attribute names on its second line (is it list_attr_celeba.txt?)")
    return names


def _celeba_columns(names: list[str], attributes: Sequence[str] | None) -> list[tuple[str, int, bool]]:
    """(requested name, column, negated) per requested attribute; unknown names → ValueError listing the valid."""
    if attributes is None:
        return [(name, k, False) for k, name in enumerate(names)]
    unknown = [a for a in attributes if a not in names and a not in CELEBA_ALIASES]
    if unknown:
        raise ValueError(
            f"unknown CelebA attribute(s): {', '.join(unknown)}; valid: {', '.join(names)} "
            f"(or the project's names: {', '.join(CELEBA_ALIASES)})"
        )
    columns = []
    for a in attributes:
        name, negated = (a, False) if a in names else CELEBA_ALIASES[a]
        if name not in names:
            raise ValueError(f"'{a}' stands for CelebA's '{name}', which this attribute file does not list")
        columns.append((a, names.index(name), negated))
    return columns


def read_celeba(
    attr_file: str | Path, images_dir: str | Path, attributes: Sequence[str] | None = None
) -> Iterator[tuple[Path, np.ndarray]]:
    """(image path, float32 0/1 labels) per line of CelebA's `list_attr_celeba.txt`, for `attributes` (CelebA's
    names, or the project's: smiling, young, old = not Young, female = not Male; None: all 40, in file order).

    The file: a count, the 40 names, then `000001.jpg  -1  1 …` per image (-1 → 0, 1 → 1). Names are checked
    before the first line is read (unknown → ValueError listing the valid ones)."""
    names = celeba_attribute_names(attr_file)
    columns = _celeba_columns(names, attributes)
    images = Path(images_dir)

    def rows() -> Iterator[tuple[Path, np.ndarray]]:
        with open(attr_file) as fh:
            for number, line in enumerate(fh, start=1):
                fields = line.split()
                if number <= 2 or not fields:
                    continue
                if len(fields) != len(names) + 1:
                    raise ValueError(
                        f"{attr_file}, line {number}: {len(fields) - 1} values for {len(names)} attributes"
                    )
                values = np.array([fields[1 + column] == "1" for _, column, _ in columns], np.float32)
                flips = np.array([negated for _, _, negated in columns], bool)
                yield images / fields[0], np.where(flips, 1.0 - values, values).astype(np.float32)

    return rows()


# --- Smile labellers ----------------------------------------------------------------------------------------


def smile_geometry(landmarks: np.ndarray) -> float:
    """Mouth width plus corner lift, in eye distances: (mouth-corner distance + how far the corners sit above
    the lips' middle, across the eye line) / eye distance. Rises with a smile, whatever the face's roll."""
    eyes_and_mouth = anchor_points(landmarks)
    across = eyes_and_mouth[1] - eyes_and_mouth[0]
    eye_distance = float(np.linalg.norm(across))
    down = np.array([-across[1], across[0]]) / max(eye_distance, 1e-9)  # image y grows downwards
    xy = np.asarray(landmarks, np.float64)[:, :2]
    corners = xy[[T.MOUTH_RIGHT, T.MOUTH_LEFT]]
    middle = xy[[T.MOUTH_UPPER, T.MOUTH_LOWER]].mean(axis=0)
    width = float(np.linalg.norm(corners[1] - corners[0]))
    lift = float(((middle - corners) @ down).mean())
    return (width + lift) / max(eye_distance, 1e-9)


@dataclass
class FaceLabeller:
    """Finds a face's landmarks and scores its smile: the Face Landmarker's blendshapes where the .task file
    is, else FaceMesh's landmarks (bundled with mediapipe) and `smile_geometry`."""

    task_file: str | Path | None = DEFAULT_TASK_FILE
    detector: LandmarkerDetector | FaceMeshDetector = field(init=False)
    kind: str = field(init=False)
    threshold: float = field(init=False)

    def __post_init__(self) -> None:
        if self.task_file and Path(self.task_file).is_file():
            self.detector = LandmarkerDetector(str(self.task_file))
            self.kind, self.threshold = "blendshapes", SMILE_THRESHOLD
        else:
            log.info("no Face Landmarker model at %s: smiles are labelled by the mouth's geometry", self.task_file)
            self.detector = FaceMeshDetector(static=True)
            self.kind, self.threshold = "geometry", GEOMETRY_THRESHOLD

    @property
    def description(self) -> str:
        if self.kind == "blendshapes":
            return (
                f"MediaPipe Face Landmarker ({Path(str(self.task_file)).name}) blendshapes: "
                f"mean(mouthSmileLeft, mouthSmileRight) > {self.threshold}"
            )
        return f"landmark geometry (FaceMesh): (mouth-corner distance + corner lift) / eye distance > {self.threshold}"

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, float] | None:
        """(478×3 pixel landmarks, smile score) of the largest face in an RGB image, or None."""
        found = self.detector(image)
        if found is None:
            return None
        landmarks, shapes = found
        if shapes is not None:
            return landmarks, 0.5 * (shapes["mouthSmileLeft"] + shapes["mouthSmileRight"])
        return landmarks, smile_geometry(landmarks)

    def close(self) -> None:
        self.detector.close()


# --- The cache ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Face:
    path: Path
    labels: dict[str, float]  # the labels the source gives (UTKFace: all but smiling)


def _utkface_faces(faces_dir: Path) -> tuple[list[_Face], list[str]]:
    """The parseable UTKFace faces (sorted by name) and the names that do not parse."""
    if not faces_dir.is_dir():
        raise FileNotFoundError(f"faces folder not found: {faces_dir}")
    faces, unparsed = [], []
    for path in sorted(p for p in faces_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        parsed = parse_utkface_name(path.name)
        if parsed is None:
            unparsed.append(path.name)
        else:
            faces.append(_Face(path, utkface_labels(parsed)))
    return faces, unparsed


def _celeba_faces(attr_file: Path, images_dir: Path, attributes: Sequence[str]) -> list[_Face]:
    if not attr_file.is_file():
        raise FileNotFoundError(f"CelebA attribute file not found: {attr_file}")
    if not images_dir.is_dir():
        raise FileNotFoundError(f"CelebA images folder not found: {images_dir}")
    return [
        _Face(path, dict(zip(attributes, labels.tolist(), strict=True)))
        for path, labels in read_celeba(attr_file, images_dir, attributes)
    ]


def _spread(faces: list[_Face], limit: int | None) -> list[_Face]:
    """At most `limit` faces spread over the list (sorted by name, UTKFace's first are all the youngest)."""
    if limit is None or limit >= len(faces):
        return faces
    if limit < 1:
        raise ValueError(f"--limit must be at least 1 (got {limit})")
    return faces[:: max(1, len(faces) // limit)][:limit]


def _read_rgb(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _inside_share(shape: tuple[int, ...], matrix: np.ndarray, size: int) -> float:
    """The share of the crop's pixels that come from inside the image (tight chips are padded at the edges)."""
    ones = np.ones(shape[:2], np.uint8)
    return float(cv2.warpAffine(ones, matrix, (size, size), flags=cv2.INTER_NEAREST).mean())


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # a shard is there whole or not at all


def _cache_shard(
    faces: list[_Face], path: Path, size: int, attributes: tuple[str, ...], labeller: FaceLabeller, bar: tqdm
) -> None:
    images, labels, names, landmarks, scores, inside, no_face, unreadable = [], [], [], [], [], [], [], []
    for face in faces:
        bar.update()
        image = _read_rgb(face.path)
        if image is None:
            unreadable.append(face.path.name)
            continue
        found = labeller(image)
        if found is None:
            no_face.append(face.path.name)
            continue
        marks, score = found
        crop, matrix = align_face(image, marks, size)
        known = {**face.labels}
        if "smiling" in attributes and "smiling" not in known:
            known["smiling"] = float(score > labeller.threshold)
        images.append(crop)
        labels.append([known[a] for a in attributes])
        names.append(face.path.name)
        landmarks.append(marks[:, :2] @ matrix[:, :2].T + matrix[:, 2])
        scores.append(score)
        inside.append(_inside_share(image.shape, matrix, size))
    _write_npz(
        path,
        images=np.asarray(images, np.uint8).reshape(-1, size, size, 3),
        labels=np.asarray(labels, np.float32).reshape(-1, len(attributes)),
        names=np.asarray(names, dtype=str),
        landmarks=np.asarray(landmarks, np.float32).reshape(-1, 478, 2),
        smile_score=np.asarray(scores, np.float32),
        inside=np.asarray(inside, np.float32),
        no_face=np.asarray(no_face, dtype=str),
        unreadable=np.asarray(unreadable, dtype=str),
    )


def _shards(out: Path) -> list[Path]:
    return sorted(out.glob("shard_[0-9][0-9][0-9][0-9][0-9].npz"))


def _check_settings(out: Path, settings: dict) -> None:
    """A cache folder holds one build: resuming with other settings would mix two kinds of crops or labels."""
    path = out / SETTINGS
    if path.is_file():
        before = json.loads(path.read_text())
        if before != settings:
            changed = sorted(k for k in settings.keys() | before.keys() if settings.get(k) != before.get(k))
            raise ValueError(
                f"{out} holds an attribute cache built with other settings ({', '.join(changed)} differ): "
                "use another --out folder, or delete this one"
            )
    else:
        path.write_text(json.dumps(settings, indent=1) + "\n")


def build_attribute_cache(
    faces_dir: str | Path | None,
    out_dir: str | Path,
    size: int = 128,
    limit: int | None = None,
    progress: bool = True,
    *,
    celeba: tuple[str | Path, str | Path] | None = None,
    attributes: Sequence[str] | None = None,
    task_file: str | Path | None = DEFAULT_TASK_FILE,
) -> dict:
    """Aligned size×size crops (uint8) and 0/1 labels (float32, one per attribute) of every face found, in
    `.npz` shards, and `summary.json`. Faces from `faces_dir` (UTKFace names), or from CelebA with
    `celeba=(list_attr_celeba.txt, images folder)`. Resumable; returns the summary."""
    if size < 16:
        raise ValueError(f"crop size must be at least 16 (got {size})")
    out = Path(out_dir)
    start = time.perf_counter()
    unparsed: list[str] = []
    if celeba is not None:
        attributes = tuple(attributes) if attributes else ATTRIBUTES
        attr_file, images_dir = Path(celeba[0]), Path(celeba[1])
        if len(attributes) == 1 and attributes[0] == "all":
            attributes = tuple(celeba_attribute_names(attr_file))
        faces = _celeba_faces(attr_file, images_dir, attributes)
        source = {"source": "celeba", "attr_file": str(attr_file.resolve()), "images": str(images_dir.resolve())}
    else:
        attributes = tuple(attributes) if attributes else ATTRIBUTES
        unknown = [a for a in attributes if a not in ATTRIBUTES]
        if unknown:
            raise ValueError(f"unknown attribute(s) for UTKFace: {', '.join(unknown)}; valid: {', '.join(ATTRIBUTES)}")
        folder = Path(faces_dir) if faces_dir is not None else DEFAULT_FACES
        faces, unparsed = _utkface_faces(folder)
        source = {"source": "utkface", "faces": str(folder.resolve())}
    faces = _spread(faces, limit)
    if not faces:
        raise ValueError(f"no faces to cache in {source.get('faces') or source.get('images')}")
    if unparsed:
        log.info("%d file name(s) not of the form AGE_GENDER_RACE_DATE.jpg.chip.jpg, skipped", len(unparsed))

    out.mkdir(parents=True, exist_ok=True)
    labeller = FaceLabeller(task_file)
    try:
        settings = {
            **source,
            "size": size,
            "attributes": list(attributes),
            "faces": len(faces),
            "limit": limit,
            "shard_faces": SHARD_FACES,
            "detector": "landmarker" if labeller.kind == "blendshapes" else "facemesh",
            "align": {"eye_distance": EYE_DISTANCE, "eyes_y": EYES_Y, "mouth_y": MOUTH_Y},
        }
        _check_settings(out, settings)
        chunks = [faces[k : k + SHARD_FACES] for k in range(0, len(faces), SHARD_FACES)]
        paths = [out / f"shard_{k:05d}.npz" for k in range(len(chunks))]
        done = sum(len(chunk) for chunk, path in zip(chunks, paths, strict=True) if path.exists())
        written = 0
        with tqdm(total=len(faces), initial=done, desc="faces", unit="face", disable=not progress) as bar:
            for chunk, path in zip(chunks, paths, strict=True):
                if not path.exists():
                    _cache_shard(chunk, path, size, attributes, labeller, bar)
                    written += 1
    finally:
        labeller.close()
    summary = _summary(out, paths, settings, unparsed, labeller, attributes)
    summary["shards_written"] = written
    summary["seconds"] = round(time.perf_counter() - start, 1)
    (out / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _summary(
    out: Path,
    paths: list[Path],
    settings: dict,
    unparsed: list[str],
    labeller: FaceLabeller,
    attributes: tuple[str, ...],
) -> dict:
    names, labels, no_face, unreadable = [], [], [], []
    for path in paths:
        with np.load(path) as shard:
            names += shard["names"].tolist()
            labels.append(shard["labels"])
            no_face += shard["no_face"].tolist()
            unreadable += shard["unreadable"].tolist()
    table = np.concatenate(labels) if labels else np.zeros((0, len(attributes)), np.float32)
    split = np.array([split_of(n) for n in names])
    held = split == "holdout"

    def counts(rows: np.ndarray) -> dict[str, int]:
        return {a: int(rows[:, k].sum()) for k, a in enumerate(attributes)}

    if settings["source"] == "celeba":
        how = {a: f"CelebA list_attr_celeba.txt: {_celeba_how(a)}" for a in attributes}
    else:
        how = {
            "smiling": labeller.description,
            "old": f"UTKFace file name: age >= {OLD_AGE}",
            "young": f"UTKFace file name: age <= {YOUNG_AGE}",
            "female": "UTKFace file name: gender 1",
        }
        how = {a: how[a] for a in attributes}
    return {
        **settings,
        "faces_cached": len(names),
        "train": int((split == "train").sum()),
        "judge": int((split == "judge").sum()),
        "holdout_count": int(held.sum()),
        "counts": {"all": counts(table), **{s: counts(table[split == s]) for s in SPLITS}},
        "skipped": {"unparsed_name": len(unparsed), "no_face": len(no_face), "unreadable": len(unreadable)},
        "skipped_names": {"unparsed_name": unparsed, "no_face": no_face, "unreadable": unreadable},
        "labels": how,
        "landmarks": (
            f"MediaPipe Face Landmarker ({Path(str(labeller.task_file)).name})"
            if labeller.kind == "blendshapes"
            else "MediaPipe FaceMesh (no .task file)"
        ),
        # Who said "smiling": the blendshapes, the geometry fallback, or CelebA's own labels.
        "labeller": labeller.kind if settings["source"] == "utkface" else "celeba",
        "smile_threshold": labeller.threshold if settings["source"] == "utkface" else None,
        "split_rule": f"sha1(file name) % {HOLDOUT_EVERY}: 0 holdout, {JUDGE_BUCKETS} judge, the rest train",
        "holdout": [n for n, h in zip(names, held, strict=True) if h],
        "shards": [p.name for p in paths],
    }


def _celeba_how(attribute: str) -> str:
    if attribute in CELEBA_ALIASES:
        name, negated = CELEBA_ALIASES[attribute]
        return f"not {name}" if negated else name
    return attribute


# --- Reading it back ----------------------------------------------------------------------------------------


class AttributeDataset(Dataset):
    """The faces of one split of an attribute cache: items are (3×S×S float32 in [-1, 1], A float32 0/1 labels)
    in the order of the cache's `attributes`; `batch(indices)` stacks them (N×3×S×S, N×A)."""

    def __init__(self, cache_dir: str | Path, split: str = "train") -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}' (choose {', '.join(SPLITS)})")
        cache = Path(cache_dir)
        summary_path = cache / SUMMARY
        if not summary_path.is_file():
            raise FileNotFoundError(
                f"no finished attribute cache in {cache}: build one with `avatarcam train data attributes`"
            )
        summary = json.loads(summary_path.read_text())
        self.attributes: tuple[str, ...] = tuple(summary["attributes"])
        self.size: int = summary["size"]
        self.split = split
        images, labels, names, landmarks = [], [], [], []
        for shard_name in summary["shards"]:
            with np.load(cache / shard_name) as shard:
                keep = np.array([split_of(n) == split for n in shard["names"]], bool)
                images.append(shard["images"][keep])
                labels.append(shard["labels"][keep])
                names += shard["names"][keep].tolist()
                landmarks.append(shard["landmarks"][keep])
        self.images = np.concatenate(images)  # uint8 N×S×S×3, kept small until asked for
        self.labels = torch.from_numpy(np.concatenate(labels))
        self.landmarks = np.concatenate(landmarks)  # N×478×2, crop pixels
        self.names: list[str] = names

    def __len__(self) -> int:
        return len(self.names)

    @staticmethod
    def to_tensor(images: np.ndarray) -> torch.Tensor:
        """uint8 (…×S×S×3) → float32 (…×3×S×S) in [-1, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(127.5).sub_(1.0)
        return x.movedim(-1, -3).contiguous()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.to_tensor(self.images[index]), self.labels[index]

    def batch(self, indices: Sequence[int] | np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(N×3×S×S, N×A) for `indices` (None: the whole split)."""
        picks = np.arange(len(self)) if indices is None else np.asarray(indices, np.int64)
        return self.to_tensor(self.images[picks]), self.labels[picks]

    def faces(self, size: int | None = None, centre: float = 1.0) -> torch.Tensor:
        """The whole split as uint8 N×3×size×size (the cache's own size by default; a preset that trains at
        another is resized here): a quarter of the floats' memory, for a loop that normalises per batch. With
        `centre` < 1 only that central share of each crop's side is kept (before resizing)."""
        images = self.images
        if centre < 1.0:
            side = round(centre * self.size)
            start = (self.size - side) // 2
            images = images[:, start : start + side, start : start + side]
        if size is not None and size != images.shape[1]:
            images = np.stack([cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA) for face in images])
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
