"""`avatarcam eval`: self- and cross-reenactment of a folder of clips, beside the static-portrait baseline."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import numpy as np
from tqdm import tqdm

from avatarcam.avatar import AvatarError, list_avatars, load_avatar, make_avatar, save_image, square_crop
from avatarcam.config import Config
from avatarcam.eval.metrics import (
    FRAME_SIZE,
    IdentityEmbedder,
    StaticLandmarks,
    aggregate,
    format_table,
    score_clip,
)
from avatarcam.eval.sidebyside import side_by_side
from avatarcam.io.sources import read_video
from avatarcam.stages import Packet
from avatarcam.stages.animate import AnimateStage
from avatarcam.stages.chain import motion_chain
from avatarcam.tracking.geometry import euler_degrees
from avatarcam.train.talking_head.finetune import ensure_finetuned
from avatarcam.types import Avatar, Frame

log = logging.getLogger(__name__)
# results.md lists the clips that score worst on each
WORST_METRICS = ("P99F", "MOUTHC_MAX", "GRAYC", "LIPSAT", "MOUTHSAT")
WORST_COUNT = 5
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm"}
# Clips whose first frame is turned further than this are also scored apart: a warp cannot show the side such a
# source hides, and one of them can move a mean more than any change to the animator.
TURNED_SOURCE_DEGREES = 40.0


@dataclass
class EvalReport:
    self_rows: dict[str, dict[str, float]] = field(default_factory=dict)
    cross_rows: dict[str, dict[str, float]] = field(default_factory=dict)
    per_clip: list[dict] = field(default_factory=list)
    turned: list[str] = field(default_factory=list)  # clips whose source is turned past TURNED_SOURCE_DEGREES
    frontal_self_rows: dict[str, dict[str, float]] = field(default_factory=dict)  # the same, without them
    frontal_cross_rows: dict[str, dict[str, float]] = field(default_factory=dict)

    def markdown(self) -> str:
        parts = _tables(self.self_rows, self.cross_rows)
        if self.turned and (self.frontal_self_rows or self.frontal_cross_rows):
            parts += [
                "",
                f"Without the {len(self.turned)} clips whose first frame is turned past {TURNED_SOURCE_DEGREES:.0f}° "
                f"({', '.join(self.turned)})",
                "",
                *_tables(self.frontal_self_rows, self.frontal_cross_rows),
            ]
        worst = worst_cases(self.per_clip)
        if worst:
            parts += ["", "Worst cases (animators only; clip, or clip → portrait in cross-reenactment)", "", *worst]
        return "\n".join(parts)


def worst_cases(per_clip: Sequence[dict], count: int = WORST_COUNT) -> list[str]:
    """One line per WORST_METRICS metric: the `count` animator clips (or clip → portrait pairs) that score highest;
    the static baseline is left out (it is worst by design)."""
    lines = []
    for metric in WORST_METRICS:
        rows = [r for r in per_clip if r.get("method") != "static" and not math.isnan(r.get(metric, math.nan))]
        rows.sort(key=lambda r: -r[metric])
        cases = [
            f"{r['clip']}{' → ' + r['portrait'] if 'portrait' in r else ''} ({r['method']}, {r['mode']}) "
            f"{r[metric]:.1f}"
            for r in rows[:count]
        ]
        if cases:
            lines.append(f"- {metric}: " + "; ".join(cases))
    return lines


def _tables(self_rows: dict[str, dict[str, float]], cross_rows: dict[str, dict[str, float]]) -> list[str]:
    parts = []
    if self_rows:
        parts += ["Self-reenactment (source = first frame)", "", format_table(self_rows), ""]
    if cross_rows:
        parts += ["Cross-reenactment (clip drives another person's portrait)", "", format_table(cross_rows)]
    return parts


def aggregate_methods(scores: dict[str, list[dict]], keep: list[bool] | None = None) -> dict[str, dict[str, float]]:
    """Per method, the aggregate of its clip scores: over every clip, or over those marked in `keep` (one flag
    per clip, in order)."""
    rows_kept = {
        name: rows if keep is None else [row for row, kept in zip(rows, keep, strict=True) if kept]
        for name, rows in scores.items()
    }
    return {name: aggregate(rows) for name, rows in rows_kept.items() if rows}


# What the animator counts in each frame it draws, by the eval's name for it: triangles turned over (a fold shows
# its texture mirrored) and face triangles stretched past the tear limit (animators/limits.py).
COUNTERS = {"FOLDS": "last_folds", "TEARS": "last_tears"}


def frame_count(animator: object, attribute: str) -> int | None:
    """The animator's counter for its last frame (`last_folds`, `last_tears`), or that of the warp an animator
    wraps (the talking head's `warp`); None when it keeps no such counter."""
    for candidate in (animator, getattr(animator, "warp", None)):
        count = getattr(candidate, attribute, None)
        if isinstance(count, int | np.integer):  # a NumPy count is as good; anything else is no counter
            return int(count)
    return None


def animate_with_counts(
    config: Config, avatar: Avatar, drivers: list[np.ndarray], fps: float
) -> tuple[list[np.ndarray], dict[str, list[int | None]]]:
    """The animator's frames (through the live stages) and each of its COUNTERS after each one."""
    chain = motion_chain(config)
    animator = cast(AnimateStage, chain.stage("animate")).animator
    frames: list[np.ndarray] = []
    counts: dict[str, list[int | None]] = {name: [] for name in COUNTERS}
    try:
        for i, image in enumerate(drivers):
            out = chain(Packet(Frame(image, int(i * 1e9 / fps), i), avatar)).image
            assert out is not None
            frames.append(out)
            for name, attribute in COUNTERS.items():
                counts[name].append(frame_count(animator, attribute))
        return frames, counts
    finally:
        chain.close()


def count_scores(name: str, counts: Sequence[int | None]) -> dict[str, float]:
    """NAME: frames in which the animator counted one or more (folds, tears); NAME_T: how many over all of them.
    NaN for an animator with no such counter (the static baseline, the face swap)."""
    known = [c for c in counts if c is not None]
    if not known:
        return {name: math.nan, f"{name}_T": math.nan}
    return {name: float(sum(c > 0 for c in known)), f"{name}_T": float(sum(known))}


def at_eval_size(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Frames as EVAL.md measures them (FRAME_SIZE², whatever size they were animated at)."""
    return [f if f.shape[0] == FRAME_SIZE else square_crop(f, FRAME_SIZE) for f in frames]


def reenact(
    config: Config, avatar: Avatar, drivers: list[np.ndarray], fps: float, animators: list[str], still: np.ndarray
) -> tuple[dict[str, list[np.ndarray]], dict[str, dict[str, float]]]:
    """The static baseline (`still` on every frame) and each animator's frames, keyed by method, and each
    method's count_scores (folds, tears)."""
    outputs: dict[str, list[np.ndarray]] = {"static": [still] * len(drivers)}
    counted = {"static": {k: v for name in COUNTERS for k, v in count_scores(name, []).items()}}
    for method in animators:
        named = replace(config, animator=replace(config.animator, name=method))
        outputs[method], per_frame = animate_with_counts(named, avatar, drivers, fps)
        counted[method] = {k: v for name, counts in per_frame.items() for k, v in count_scores(name, counts).items()}
    return outputs, counted


def load_portraits(folders: Sequence[str | Path], size: int) -> list[Avatar]:
    """The portraits of every folder that can be animated. One folder keeps its sorted order (so cross pairs stay
    as they always were); several are interleaved (a1, b1, a2, b2, ...) so that even a short clip list drives
    portraits from each folder."""
    per_folder: list[list[Avatar]] = []
    for folder in folders:
        loaded = []
        for path in list_avatars(folder):
            try:
                loaded.append(load_avatar(path, size))
            except AvatarError as exc:
                log.info("portrait skipped: %s", exc)
        per_folder.append(loaded)
    longest = max((len(f) for f in per_folder), default=0)
    return [f[i] for i in range(longest) for f in per_folder if i < len(f)]


def list_clips(folder: str | Path, only: str | Path | None = None) -> list[Path]:
    """The folder's clips, sorted; `only` names a file listing the clips to keep (one file name per line)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"clip folder not found: {folder}")
    clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if only is None:
        return clips
    wanted = {line.strip() for line in Path(only).read_text().splitlines() if line.strip()}
    missing = wanted - {p.name for p in clips}
    if missing:
        raise FileNotFoundError(f"clips listed in {only} but not in {folder}: {', '.join(sorted(missing))}")
    return [p for p in clips if p.name in wanted]


def run_eval(
    config: Config,
    clips_dir: str | Path,
    animators: list[str],
    portraits_dir: str | Path | Sequence[str | Path] | None = None,
    frames: int = 100,
    size: int = 256,
    limit: int | None = None,
    out_dir: str | Path | None = None,
    showcase: str | None = None,
    only: str | Path | None = None,
    finetune: bool = False,
) -> EvalReport:
    """Scores each animator and the static baseline; writes results.md, per_clip.json and side-by-sides.
    `portraits_dir` is one folder or several (see load_portraits); clip k drives portrait k mod their number.
    With `finetune`, the talking head is first fine-tuned on every source portrait (cached), as `run` does."""
    clips = list_clips(clips_dir, only)[:limit]
    if isinstance(portraits_dir, str | Path):
        portraits_dir = [portraits_dir]
    portraits = load_portraits(portraits_dir or [], size)
    identity = IdentityEmbedder() if IdentityEmbedder.available() else None
    if identity is None:
        log.warning("identity metric off: install the eval extra (pip install 'avatarcam[eval]')")
    landmarks = StaticLandmarks()
    # One-shot (meta-trained weights) unless a portrait's fine-tune is cached.
    talking_head = replace(config.animator.talking_head, finetune=False)
    config = replace(config, animator=replace(config.animator, size=size, talking_head=talking_head))
    report = EvalReport()
    self_scores: dict[str, list] = {"static": [], **{a: [] for a in animators}}
    cross_scores: dict[str, list] = {"static": [], **{a: [] for a in animators}} if portraits else {}
    out = Path(out_dir) if out_dir else None
    frontal: list[bool] = []  # per scored clip: is its source within TURNED_SOURCE_DEGREES of the camera
    for k, clip in enumerate(tqdm(clips, desc="eval", unit="clip")):
        originals, fps = read_video(clip, max_frames=frames)
        truths = [square_crop(f, size) for f in originals]
        try:
            avatar = make_avatar(truths[0], size, name=clip.stem)
        except AvatarError:
            log.info("%s: no face in the first frame, skipped", clip.name)
            continue
        yaw = float(euler_degrees(avatar.face.rotation)[0])
        frontal.append(abs(yaw) <= TURNED_SOURCE_DEGREES)
        if not frontal[-1]:
            report.turned.append(clip.name)
        if finetune and "talking-head" in animators:
            ensure_finetuned(avatar)
        outputs, folds = reenact(config, avatar, originals, fps, animators, still=truths[0])
        for name, frames_out in outputs.items():
            scores = score_clip(
                at_eval_size(frames_out), truths=at_eval_size(truths), landmarks=landmarks, identity=identity
            )
            scores.update(folds[name])
            self_scores[name].append(scores)
            report.per_clip.append(
                {"clip": clip.name, "first_frame_yaw": round(yaw, 1), "mode": "self", "method": name, **scores}
            )
        cross_out: dict[str, list[np.ndarray]] = {}
        if portraits:
            portrait = portraits[k % len(portraits)]
            if finetune and "talking-head" in animators:
                ensure_finetuned(portrait)
            cross_out, cross_folds = reenact(config, portrait, originals, fps, animators, still=portrait.image)
            for name, frames_out in cross_out.items():
                scores = score_clip(
                    at_eval_size(frames_out),
                    driver=at_eval_size(truths),
                    portrait=at_eval_size([portrait.image])[0],
                    landmarks=landmarks,
                    identity=identity,
                )
                scores.update(cross_folds[name])
                cross_scores[name].append(scores)
                report.per_clip.append(
                    {
                        "clip": clip.name,
                        "first_frame_yaw": round(yaw, 1),
                        "portrait": portrait.name,
                        "mode": "cross",
                        "method": name,
                        **scores,
                    }
                )
        if out and (showcase is None or showcase == clip.stem):
            picks = list(np.linspace(0, len(truths) - 1, 5).astype(int))
            columns = {"driver": truths, **{n: f for n, f in outputs.items() if n != "static"}}
            save_image(out / f"self_{clip.stem}.png", side_by_side(columns, picks))
            if cross_out:
                cross_columns = {"driver": truths, **{f"{n} (cross)": f for n, f in cross_out.items()}}
                save_image(out / f"cross_{clip.stem}.png", side_by_side(cross_columns, picks))
    landmarks.close()
    report.self_rows = aggregate_methods(self_scores)
    report.cross_rows = aggregate_methods(cross_scores)
    if report.turned:
        report.frontal_self_rows = aggregate_methods(self_scores, frontal)
        report.frontal_cross_rows = aggregate_methods(cross_scores, frontal)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.md").write_text(report.markdown() + "\n")
        (out / "per_clip.json").write_text(json.dumps(report.per_clip, indent=1, default=float))
    return report
