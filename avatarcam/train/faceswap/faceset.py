"""A folder of extracted faces (crops + masks) in memory, and the random warps the decoders learn to undo."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import face_mask

MIN_FACES = 32  # fewer faces than this cannot train a decoder; a few hundred varied ones train far better
EXPRESSION_PARTS = (T.OUTER_LIPS, T.RIGHT_EYE, T.LEFT_EYE)  # weighed more in the loss


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
        self.size = int(self.images.shape[1])
        self.masks = np.stack(masks)
        self.priority = np.stack(self._priority(crops))
        info = self.folder / "extract.json"
        self.sources = json.loads(info.read_text()).get("sources", []) if info.is_file() else []

    def _priority(self, crops: list[Path]) -> list[np.ndarray]:
        """Masks of the eyes and mouth (from the extracted landmarks), where the loss weighs more: they carry the
        expression, and an autoencoder left alone blurs them first. Blank where a folder has no landmarks."""
        blank = np.zeros((self.size, self.size), np.uint8)
        path = self.folder / "landmarks.npz"
        if not path.is_file():
            return [blank] * len(crops)
        data = np.load(path)
        by_name = dict(zip((str(n) for n in data["names"]), data["landmarks"], strict=True))
        grow = np.ones((self.size // 16 + 1,) * 2, np.uint8)
        out = []
        for crop in crops:
            points = by_name.get(crop.stem)
            if points is None:
                out.append(blank)
                continue
            mask = np.maximum.reduce([face_mask(points[part], self.size) for part in EXPRESSION_PARTS])
            out.append(cv2.dilate(mask, grow))
        return out

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, n: int, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """n training samples at size²: warped input, target, face mask and eyes+mouth mask (N×C×S×S float32 in
        [0, 1])."""
        picks = rng.integers(len(self), size=n)
        items = [augment(self.images[i], np.dstack([self.masks[i], self.priority[i]]), size, rng) for i in picks]
        return {k: np.stack([it[k] for it in items]) for k in ("input", "target", "mask", "priority")}


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


def augment(image: np.ndarray, masks: np.ndarray, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One sample from a crop and its masks (H×W×2: face, eyes+mouth), moved together."""
    side = image.shape[0]
    matrix = _random_affine(side, rng)
    target = cv2.warpAffine(image, matrix, (side, side), borderMode=cv2.BORDER_REFLECT)
    masks = cv2.warpAffine(masks, matrix, (side, side))
    if rng.random() < 0.5:
        target, masks = target[:, ::-1], masks[:, ::-1]
    warped = random_warp(np.ascontiguousarray(target), rng)
    if side != size:
        target, warped, masks = (
            cv2.resize(np.ascontiguousarray(x), (size, size), interpolation=cv2.INTER_AREA)
            for x in (target, warped, masks)
        )
    masks = masks.transpose(2, 0, 1).astype(np.float32) / 255.0
    return {
        "input": np.ascontiguousarray(warped.transpose(2, 0, 1), dtype=np.float32) / 255.0,
        "target": np.ascontiguousarray(target.transpose(2, 0, 1), dtype=np.float32) / 255.0,
        "mask": np.ascontiguousarray(masks[:1]),
        "priority": np.ascontiguousarray(masks[1:]),
    }
