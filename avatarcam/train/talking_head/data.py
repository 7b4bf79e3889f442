"""`avatarcam train data talking-head`: talking-face clips (and still faces) → a training cache for the talking head.

Per clip, one `.npz` file: face crops of frames spread over the clip, their 478 landmarks and crop boxes, and
the same crops as the warp animator draws them from one or two source frames of the clip (the generator's
input). Still faces become short synthetic clips: each is warped along real clips' motion, and the network
learns to repair a warp of one pseudo-frame into another. Files are written whole and skipped when present,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from avatarcam.animators.talking_head.crops import CROP_SIZE, crop, face_box
from avatarcam.animators.warp import WarpAnimator
from avatarcam.avatar import IMAGE_SUFFIXES, AvatarError, make_avatar, read_image, square_crop
from avatarcam.config import AnimatorConfig, RetargetConfig
from avatarcam.eval.runner import list_clips
from avatarcam.io.sources import read_video
from avatarcam.motion.retarget import Retargeter
from avatarcam.tracking.facemesh import FaceMeshDetector
from avatarcam.tracking.tracker import face_from_landmarks
from avatarcam.types import Avatar, Frame, Motion

log = logging.getLogger(__name__)

FRAME_SIZE = 256  # frames are centre-cropped and resized as `avatarcam eval` does
HOLDOUT_EVERY = 5  # one clip in five (by a hash of its name) is held out of training for evaluation
MIN_FRAMES = 8


@dataclass
class DataSettings:
    frames_per_clip: int = 64
    sources_per_clip: int = 2  # the first frame with a face (as in eval), then one from the middle
    still_frames: int = 6
    stills: int = 400  # still faces used (spread over the folder)


def is_holdout(name: str) -> bool:
    """Whether a clip is kept out of training (stable: a hash of its file stem)."""
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % HOLDOUT_EVERY == 0


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _warp_all(avatar: Avatar, landmarks: np.ndarray, images: list[np.ndarray], boxes: np.ndarray) -> np.ndarray:
    """Crops of the avatar warped to each target's landmarks (driver = the target frame: its mouth interior)."""
    animator = WarpAnimator(AnimatorConfig(size=avatar.size))
    animator.prepare(avatar)
    out = []
    for lm, image, box in zip(landmarks, images, boxes, strict=True):
        face = face_from_landmarks(lm)
        warped = animator(Motion(lm, face.rotation), Frame(image), face)
        out.append(crop(warped, box))
    return np.stack(out)


def _example(images: list[np.ndarray], landmarks: np.ndarray, sources: list[int], name: str) -> dict | None:
    boxes = np.stack([face_box(lm) for lm in landmarks])
    targets = np.stack([crop(im, box) for im, box in zip(images, boxes, strict=True)])
    warped, used = [], []
    for s in sources:
        try:
            avatar = make_avatar(images[s], FRAME_SIZE, name=f"{name}#{s}")
        except AvatarError:
            continue
        warped.append(_warp_all(avatar, landmarks, images, boxes))
        used.append(s)
    if not warped:
        return None
    return {
        "targets": targets,
        "warped": np.stack(warped),
        "landmarks": landmarks.astype(np.float32),
        "boxes": boxes.astype(np.float32),
        "sources": np.asarray(used),
    }


def cache_clip(path: Path, out: Path, settings: DataSettings, detector: FaceMeshDetector) -> str:
    originals, _ = read_video(path, max_frames=settings.frames_per_clip, spread=True)
    images, marks = [], []
    for frame in originals:
        square = square_crop(frame, FRAME_SIZE)
        found = detector(square)
        if found is not None:  # frames with no face are skipped
            images.append(square)
            marks.append(found[0])
    if len(images) < MIN_FRAMES:
        return f"{path.name}: only {len(images)} frames with a face, skipped"
    sources = [0, len(images) // 2][: settings.sources_per_clip]
    example = _example(images, np.stack(marks), sources, path.stem)
    if example is None:
        return f"{path.name}: no usable source frame, skipped"
    _write_npz(out, **example)
    return ""


def _driving_motion(clip_files: list[Path], count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Landmark sets of `count` frames of one random cached clip, its first frame first (the reference)."""
    data = np.load(clip_files[rng.integers(len(clip_files))])
    lm = data["landmarks"]
    picks = np.concatenate([[0], rng.choice(np.arange(1, len(lm)), size=count - 1, replace=False)])
    return [lm[i] for i in picks]


def cache_still(path: Path, out: Path, settings: DataSettings, clip_files: list[Path], seed: int) -> str:
    """A still face as a synthetic clip: warped along real motion; the source is a warped pseudo-frame."""
    rng = np.random.default_rng(seed)
    try:
        image = read_image(path)
        # Still crops are tight around the face: widen them (edge colours) so hair and jaw can move in frame.
        pad = image.shape[0] // 3
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        avatar = make_avatar(image, FRAME_SIZE, name=path.stem)
    except AvatarError as exc:
        return f"{path.name}: {exc}"
    retarget = Retargeter(RetargetConfig())
    retarget.set_avatar(avatar.face)
    animator = WarpAnimator(AnimatorConfig(size=FRAME_SIZE))
    animator.prepare(avatar)
    images, marks = [], []
    for lm in _driving_motion(clip_files, settings.still_frames, rng):
        motion = retarget(face_from_landmarks(lm))
        images.append(animator(motion))
        marks.append(motion.landmarks)
    # Pseudo-frame 0 shows the still at the reference pose: use the most turned one as the source instead.
    yaw = [abs(face_from_landmarks(m).rotation[0, 2]) for m in marks]
    example = _example(images, np.stack(marks), [int(np.argmax(yaw))], path.stem)
    if example is None:
        return f"{path.name}: no face in its warped frames, skipped"
    _write_npz(out, **example)
    return ""


def build_cache(
    clips_dir: str | Path,
    out_dir: str | Path,
    stills_dir: str | Path | None = None,
    settings: DataSettings | None = None,
) -> dict:
    """Caches every clip (held-out ones are listed, not cached) and, optionally, still faces; resumable."""
    settings = settings or DataSettings()
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    clips = list_clips(clips_dir)
    holdout = [c.name for c in clips if is_holdout(c.stem)]
    train = [c for c in clips if not is_holdout(c.stem)]
    notes = []
    detector = FaceMeshDetector(static=True)
    try:
        for clip in tqdm(train, desc="clips", unit="clip"):
            target = out / "clips" / f"{clip.stem}.npz"
            if not target.exists():
                notes.append(cache_clip(clip, target, settings, detector))
    finally:
        detector.close()
    clip_files = sorted((out / "clips").glob("*.npz"))
    if stills_dir and clip_files:
        (out / "stills").mkdir(exist_ok=True)
        stills = sorted(p for p in Path(stills_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        picks = stills[:: max(1, len(stills) // settings.stills)][: settings.stills]
        for k, still in enumerate(tqdm(picks, desc="stills", unit="face")):
            target = out / "stills" / f"{still.name.split('.')[0]}.npz"
            if not target.exists():
                notes.append(cache_still(still, target, settings, clip_files, seed=k))
    for note in filter(None, notes):
        log.info(note)
    summary = {
        "clips": [p.stem for p in clip_files],
        "stills": len(list((out / "stills").glob("*.npz"))) if (out / "stills").is_dir() else 0,
        "holdout": holdout,
        "crop_size": CROP_SIZE,
        "frame_size": FRAME_SIZE,
        "settings": settings.__dict__,
    }
    (out / "cache.json").write_text(json.dumps(summary, indent=1))
    (out / "holdout.txt").write_text("\n".join(holdout) + "\n")
    return summary
