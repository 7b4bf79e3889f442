"""K-shot episodes from the training cache: K frames of one person to embed, and one (warped, target) pair."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from avatarcam.animators.talking_head.crops import draw_landmarks, to_tensor_layout

STILL_SHARE = 0.3  # share of episodes drawn from still faces (when the cache has them)
JITTER_GAIN, JITTER_BIAS = 0.15, 0.1  # per-channel colour jitter of an episode (images in [-1, 1])
PICTURES = ("shots", "warped", "target")  # the episode's images (the drawings are not jittered)


class EpisodeSet:
    """Every cached example in memory; `sample` draws a batch of episodes."""

    def __init__(self, cache_dir: str | Path, include_stills: bool = True) -> None:
        cache = Path(cache_dir)
        if not (cache / "cache.json").is_file():
            raise FileNotFoundError(f"no training cache in {cache}: build one with `avatarcam train data talking-head`")
        self.clip_files = sorted((cache / "clips").glob("*.npz"))
        self.still_files = sorted((cache / "stills").glob("*.npz")) if include_stills else []
        files = self.clip_files + self.still_files
        if not files:
            raise FileNotFoundError(f"the training cache {cache} has no examples")
        self.names = [f.stem for f in files]
        self.examples = [dict(np.load(f)) for f in files]
        self.summary = json.loads((cache / "cache.json").read_text())

    def __len__(self) -> int:
        return len(self.examples)

    def pick(self, rng: np.random.Generator) -> int:
        """An example index: a clip, or a still face with probability STILL_SHARE."""
        n_clips = len(self.clip_files)
        if self.still_files and (rng.random() < STILL_SHARE or n_clips == 0):
            return n_clips + int(rng.integers(len(self.still_files)))
        return int(rng.integers(n_clips))

    def episode(self, who: int, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        ex = self.examples[who]
        n = len(ex["targets"])
        s = int(rng.integers(len(ex["sources"])))
        others = np.setdiff1d(np.arange(n), ex["sources"][s : s + 1])
        t = int(rng.choice(others))
        # The shots never include the target frame: at run time the portrait is all the embedder sees.
        pool = np.setdiff1d(np.arange(n), [t])
        shots = rng.choice(pool, size=k, replace=len(pool) < k)
        item = {
            "shots": np.stack([to_tensor_layout(ex["targets"][i]) for i in shots]),
            "shot_drawings": np.stack(
                [to_tensor_layout(draw_landmarks(ex["landmarks"][i], ex["boxes"][i])) for i in shots]
            ),
            "warped": to_tensor_layout(ex["warped"][s, t]),
            "drawing": to_tensor_layout(draw_landmarks(ex["landmarks"][t], ex["boxes"][t])),
            "target": to_tensor_layout(ex["targets"][t]),
        }
        if rng.random() < 0.5:  # mirror the whole episode: a free doubling of poses
            item = {key: np.ascontiguousarray(v[..., ::-1]) for key, v in item.items()}
        return _colour_jitter(item, rng)

    def sample(self, batch: int, k: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        who = [self.pick(rng) for _ in range(batch)]
        items = [self.episode(w, k, rng) for w in who]
        out = {key: torch.from_numpy(np.stack([it[key] for it in items])) for key in items[0]}
        out["who"] = torch.tensor(who, dtype=torch.long)
        return out


def _colour_jitter(item: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One random per-channel gain and bias for all of an episode's images: 35 people's exact skin and light
    are not worth memorizing, what the warp gets wrong is."""
    gain = rng.uniform(1 - JITTER_GAIN, 1 + JITTER_GAIN, size=(3, 1, 1)).astype(np.float32)
    bias = rng.uniform(-JITTER_BIAS, JITTER_BIAS, size=(3, 1, 1)).astype(np.float32)
    for key in PICTURES:
        item[key] = np.clip(item[key] * gain + bias, -1.0, 1.0).astype(np.float32)
    return item
