"""`avatarcam faceswap eval`: does a swap wear B's identity while following A's face, without flicker?

On frames of A's clip that training did not see: the dlib face-embedding distance of each swapped frame to B
(mean embedding of B's clip) and to A (the same input frame), the correlations of mouth opening, eyes, yaw and
pitch between A's input and the swapped output (EVAL.md's signals; NaN where A does not move in one), and
frame-to-frame change inside the face (mean |frame t − frame t−1| over the input's face hull) for the output
beside the input's own.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from avatarcam.avatar import load_avatar, save_image, square_crop
from avatarcam.config import Config
from avatarcam.eval.metrics import IdentityEmbedder, StaticLandmarks, motion_correlations
from avatarcam.eval.sidebyside import side_by_side
from avatarcam.io.sources import read_video
from avatarcam.render import animate_frames
from avatarcam.stages.chain import motion_chain
from avatarcam.tracking.geometry import face_mask
from avatarcam.types import Frame

SIZE = 256
ID_EVERY = 5


def _swap(config: Config, frames: list[np.ndarray], fps: float) -> list[np.ndarray]:
    chain = motion_chain(config)
    try:
        frames_in = (Frame(image, int(i * 1e9 / fps), i) for i, image in enumerate(frames))
        return list(animate_frames(chain, load_avatar(None, SIZE), frames_in))
    finally:
        chain.close()


def _mean_embedding(identity: IdentityEmbedder, frames: list[np.ndarray]) -> np.ndarray:
    found = [e for e in (identity(f) for f in frames[::ID_EVERY]) if e is not None]
    if not found:
        raise ValueError("dlib finds no face in B's clip")
    return np.mean(found, axis=0)


def _flicker(frames: list[np.ndarray], hulls: list[np.ndarray | None]) -> float:
    values = []
    for prev, cur, hull in zip(frames, frames[1:], hulls[1:], strict=False):
        if hull is not None and hull.any():
            values.append(float(np.abs(cur.astype(np.float64) - prev)[hull].mean()) / 255.0)
    return float(np.mean(values)) if values else math.nan


def evaluate_swap(
    config: Config, driver: Path, b_clip: Path, start: int, frames: int, out_dir: Path | None = None
) -> dict[str, float]:
    if not IdentityEmbedder.available():
        raise RuntimeError("faceswap eval needs the eval extra: pip install 'avatarcam[eval]'")
    config = replace(config, animator=replace(config.animator, name="faceswap", size=SIZE))
    originals, fps = read_video(driver, max_frames=start + frames)
    originals = originals[start:]
    if len(originals) < 3:
        raise ValueError(f"{driver} has no frames past frame {start}")
    outputs = _swap(config, originals, fps)
    inputs = [square_crop(f, SIZE) for f in originals]
    identity = IdentityEmbedder()
    b_frames, _ = read_video(b_clip, max_frames=300)
    b_mean = _mean_embedding(identity, [square_crop(f, SIZE) for f in b_frames])
    to_a, to_b, closer, misses = [], [], 0, 0
    for i in range(0, len(outputs), ID_EVERY):
        out, ref = identity(outputs[i]), identity(inputs[i])
        if out is None or ref is None:
            misses += 1
            continue
        to_a.append(float(np.linalg.norm(out - ref)))
        to_b.append(float(np.linalg.norm(out - b_mean)))
        closer += to_b[-1] < to_a[-1]
    landmarks = StaticLandmarks()
    in_lm = [landmarks(f) for f in inputs]
    out_lm = [landmarks(f) for f in outputs]
    landmarks.close()
    hulls = [face_mask(lm, SIZE) > 0 if lm is not None else None for lm in in_lm]
    input_to_b = [float(np.linalg.norm(e - b_mean)) for e in (identity(f) for f in inputs[::ID_EVERY]) if e is not None]
    result = {
        "frames": float(len(outputs)),
        "id_to_b": float(np.mean(to_b)) if to_b else math.nan,
        "id_to_a": float(np.mean(to_a)) if to_a else math.nan,
        "input_id_to_b": float(np.mean(input_to_b)) if input_to_b else math.nan,
        "closer_to_b": closer / len(to_b) if to_b else math.nan,
        "id_miss": misses / max(1, len(range(0, len(outputs), ID_EVERY))),
        **motion_correlations(in_lm, out_lm),
        "flicker": _flicker(outputs, hulls),
        "flicker_input": _flicker(inputs, hulls),
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        picks = list(np.linspace(0, len(outputs) - 1, 5).astype(int))
        blank = np.zeros((SIZE, SIZE, 3), np.uint8)
        b_column = [blank] * len(outputs)  # B's own frames beside the picks, for reference
        for k, i in enumerate(picks):
            b_column[i] = square_crop(b_frames[k * (len(b_frames) - 1) // max(1, len(picks) - 1)], SIZE)
        image = side_by_side({"A (input)": inputs, "A as B (swap)": outputs, "B (reference)": b_column}, picks)
        save_image(out_dir / "faceswap.png", image)
        (out_dir / "faceswap.json").write_text(json.dumps(result, indent=1))
    return result
