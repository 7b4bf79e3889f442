"""A folder of extracted faces (crops + masks) in memory, and the random warps the decoders learn to undo."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

MIN_FACES = 32  # fewer faces than this cannot train a decoder; a few hundred varied ones train far better


class FaceSetError(ValueError):
    pass


class FaceSet:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        crops = sorted((self.folder / "crops").glob("*.png"))
        if not crops:
            raise FaceSetError(
                f"no extracted faces in {self.folder}: run `avatarcam faceswap extract SOURCE --out {self.folder}`"
            )
        if len(crops) < MIN_FACES:
            raise FaceSetError(
                f"{self.folder} has {len(crops)} faces; training needs at least {MIN_FACES} (a few hundred from "
                "varied frames work far better): extract from a longer video or more images"
            )
        images, masks = [], []
        for path in crops:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            mask = cv2.imread(str(self.folder / "masks" / path.name), cv2.IMREAD_GRAYSCALE)
            if image is None or mask is None:
                raise FaceSetError(f"unreadable face {path} or its mask in {self.folder / 'masks'}")
            images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            masks.append(mask)
        sizes = {i.shape[:2] for i in images} | {m.shape[:2] for m in masks}
        if len(sizes) != 1 or images[0].shape[0] != images[0].shape[1]:
            raise FaceSetError(f"{self.folder} mixes crop sizes {sorted(sizes)}: extract it again with one --size")
        self.images = np.stack(images)
        self.masks = np.stack(masks)
        self.size = int(self.images.shape[1])
        info = self.folder / "extract.json"
        self.sources = json.loads(info.read_text()).get("sources", []) if info.is_file() else []

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, n: int, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """n training samples at size²: warped input, target and mask (N×C×S×S float32 in [0, 1])."""
        picks = rng.integers(len(self), size=n)
        items = [augment(self.images[i], self.masks[i], size, rng) for i in picks]
        return {k: np.stack([it[k] for it in items]) for k in ("input", "target", "mask")}


def _random_affine(side: int, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(-10, 10)
    scale = rng.uniform(0.95, 1.05)
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-0.05, 0.05, size=2) * side
    return matrix


def random_warp(image: np.ndarray, rng: np.random.Generator, strength: float = 0.03) -> np.ndarray:
    """A smooth random distortion (a 5×5 grid of displacements, interpolated): the decoders learn to undo it, so
    the encoder learns faces rather than memorizing pixels."""
    side = image.shape[0]
    grid = rng.normal(0, strength * side, size=(2, 5, 5)).astype(np.float32)
    dx, dy = (cv2.resize(g, (side, side), interpolation=cv2.INTER_CUBIC) for g in grid)
    xs, ys = np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32))
    return cv2.remap(image, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def augment(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    side = image.shape[0]
    matrix = _random_affine(side, rng)
    target = cv2.warpAffine(image, matrix, (side, side), borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(mask, matrix, (side, side))
    if rng.random() < 0.5:
        target, mask = target[:, ::-1], mask[:, ::-1]
    warped = random_warp(np.ascontiguousarray(target), rng)
    if side != size:
        target, warped, mask = (
            cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA) for x in (target, warped, mask)
        )
    return {
        "input": np.ascontiguousarray(warped.transpose(2, 0, 1), dtype=np.float32) / 255.0,
        "target": np.ascontiguousarray(target.transpose(2, 0, 1), dtype=np.float32) / 255.0,
        "mask": np.ascontiguousarray(mask[None], dtype=np.float32) / 255.0,
    }
