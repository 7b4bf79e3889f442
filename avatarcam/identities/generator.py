"""New faces that belong to nobody (StyleGAN, ONNX), reproducible from a seed, framed as avatar portraits.

A seed gives the latent z and the per-layer noise (numpy's PCG64 from that seed), so the same seed always makes
the same face. Truncation ψ pulls the face towards the mean face (ψ = 0: the mean face, whatever the seed).
Mixing takes one level of layers from a second seed: `coarse` (4²–8²: pose, face shape), `middle` (16²–32²:
features, hair style), `fine` (64² and up: colour, skin texture).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from avatarcam.runtime.onnx import open_session
from avatarcam.runtime.weights import WeightsError, checked_file

MAPPING = "stylegan_mapping.onnx"
SYNTHESIS = "stylegan_synthesis.onnx"
LEVELS = ("coarse", "middle", "fine")
MAX_SEED = 2**32 - 1
FACE_SHARE = 0.72  # the generated face crop's side as a share of the portrait's: room around the head to move


class IdentityError(ValueError):
    """A seed, ψ or level the generator cannot take; the message says what is valid."""


def level_layers(num_ws: int) -> dict[str, list[int]]:
    """The ws each level drives, [first, end): two per resolution from 4² on (4² has one conv and one ToRGB)."""
    return {"coarse": [0, 4], "middle": [4, min(8, num_ws)], "fine": [min(8, num_ws), num_ws]}


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise IdentityError(f"seed {seed!r}: use a whole number from 0 to {MAX_SEED}")
    return int(seed)


class IdentityGenerator:
    """The shipped (or `folder`'s) identity generator."""

    def __init__(self, threads: int = 0, folder: Path | None = None) -> None:
        mapping, entry = checked_file(MAPPING, folder)
        synthesis, _ = checked_file(SYNTHESIS, folder)
        self.resolution = int(entry["resolution"])
        self.z_dim, self.num_ws = int(entry["z_dim"]), int(entry["num_ws"])
        self.noise_sizes = [int(s) for s in entry["noise_sizes"]]
        self.levels = {k: tuple(v) for k, v in entry["levels"].items()}
        self.train_seconds = float(entry.get("train_seconds", 0.0))
        self.crop = float(entry.get("crop", 1.0))  # the share of the aligned crop's side its faces show
        try:
            self._mapping = open_session(mapping, threads)
            self._synthesis = open_session(synthesis, threads)
        except Exception as exc:  # ORT raises its own types for unreadable models
            raise WeightsError(f"the identity generator in {mapping.parent} cannot be loaded: {exc}") from None

    def _w(self, seed: int, truncation: float) -> np.ndarray:
        z = np.random.default_rng(check_seed(seed)).standard_normal((1, self.z_dim)).astype(np.float32)
        return self._mapping.run(None, {"z": z, "truncation": np.array([truncation], np.float32)})[0]

    def face(
        self, seed: int, truncation: float = 0.7, mix_seed: int | None = None, level: str = "coarse"
    ) -> np.ndarray:
        """The face of `seed` (RGB uint8, resolution²), aligned as the attribute edits' crops are; with `mix_seed`,
        the `level` layers come from that seed's face."""
        if not 0.0 <= truncation <= 1.0:
            raise IdentityError(f"truncation ψ {truncation}: use a value from 0 (the mean face) to 1 (no pull)")
        if level not in LEVELS:
            raise IdentityError(f"unknown level '{level}' (valid: {', '.join(LEVELS)})")
        w = self._w(seed, truncation)
        ws = np.repeat(w[:, None], self.num_ws, axis=1)
        if mix_seed is not None:
            first, end = self.levels[level]
            if first >= end:
                raise IdentityError(f"this {self.resolution}² generator has no {level} layers to mix")
            ws[:, first:end] = self._w(mix_seed, truncation)[:, None]
        rng = np.random.default_rng([check_seed(seed), 1])  # the noise: another stream of the same seed
        feeds = {"ws": ws.astype(np.float32)}
        feeds |= {
            f"noise{i}": rng.standard_normal((1, 1, s, s)).astype(np.float32) for i, s in enumerate(self.noise_sizes)
        }
        image = self._synthesis.run(None, feeds)[0][0]
        return ((np.clip(image, -1, 1).transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)


def as_portrait(face: np.ndarray, size: int = 512) -> np.ndarray:
    """A generated face crop as an avatar portrait: upscaled (Lanczos) to FACE_SHARE of `size`, centred on a
    plain backdrop the colour of the crop's own border, its edge faded into it."""
    side = round(FACE_SHARE * size)
    upscaled = cv2.resize(face, (side, side), interpolation=cv2.INTER_LANCZOS4)
    border = np.concatenate([face[0], face[-1], face[:, 0], face[:, -1]]).astype(np.float32)
    backdrop = np.median(border, axis=0)
    canvas = np.empty((size, size, 3), np.float32)
    canvas[:] = backdrop
    ramp = np.clip(np.minimum(np.arange(side), np.arange(side)[::-1]) / (0.12 * side), 0, 1)
    alpha = np.outer(ramp, ramp)[..., None]
    top = (size - side) // 2
    region = canvas[top : top + side, top : top + side]
    region[:] = alpha * upscaled + (1 - alpha) * region
    return np.clip(canvas, 0, 255).round().astype(np.uint8)
