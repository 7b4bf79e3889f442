"""Attribute edits at run time: the StarGAN generator (ONNX) on the face cut out by `align_face`, its change
laid back onto the full-resolution image through the attention mask. Pixels the mask leaves alone stay exactly
the portrait's own; where it edits, the portrait's detail stays under the (upsampled) change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from avatarcam.avatar import AvatarError
from avatarcam.edits.align import align_face
from avatarcam.runtime.onnx import open_session
from avatarcam.runtime.weights import WeightsError, checked_file, weights_dir
from avatarcam.tracking.facemesh import FaceMeshDetector, largest_face

EDITOR = "stargan.onnx"
EDITOR_INT8 = "stargan.int8.onnx"
CLASSIFIER = "stargan_attributes.onnx"
EXCLUSIVE = (("old", "young"),)  # asking for one of a pair takes the other away
EDGE = 0.08  # share of the crop's side over which an edit fades out toward the crop's border: no seam


class EditError(ValueError):
    """An edit that cannot be made as asked; the message says why and what is valid."""


def parse_edits(text: str) -> dict[str, float]:
    """ "smiling=1,old=0.5" → {"smiling": 1.0, "old": 0.5}; a bare name means 1."""
    edits: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            edits[name.strip()] = float(value) if value else 1.0
        except ValueError:
            raise EditError(f"edit '{part}': the strength must be a number between 0 and 1") from None
    return edits


def _taper(size: int) -> np.ndarray:
    ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / (EDGE * size), 0, 1).astype(np.float32)
    return np.outer(ramp, ramp)


class AttributeEditor:
    """The shipped (or `folder`'s) editor: which attributes it knows, and `edit` to apply them to a face."""

    def __init__(self, precision: str = "int8", threads: int = 0, folder: Path | None = None) -> None:
        folder = folder or weights_dir()
        name = EDITOR_INT8 if precision == "int8" and (folder / EDITOR_INT8).is_file() else EDITOR
        path, entry = checked_file(name, folder)
        classifier, _ = checked_file(CLASSIFIER, folder)
        self.attributes: tuple[str, ...] = tuple(entry["attributes"])
        self.size = int(entry["size"])
        try:
            self._editor = open_session(path, threads)
            self._classifier = open_session(classifier, threads)
        except Exception as exc:  # ORT raises its own types for unreadable models
            raise WeightsError(f"the attribute editor in {folder} cannot be loaded: {exc}") from None
        self._taper = _taper(self.size)

    def check(self, edits: dict[str, float]) -> None:
        for name, value in edits.items():
            if name not in self.attributes:
                raise EditError(f"unknown attribute '{name}' (valid: {', '.join(self.attributes)})")
            if not 0.0 <= value <= 1.0:
                raise EditError(f"attribute '{name}': strength {value} is outside [0, 1]")

    def target(self, own: np.ndarray, edits: dict[str, float]) -> np.ndarray:
        """The attributes to ask for: the face's own (as the critic reads them), with the edits set."""
        target = own.astype(np.float32).copy()
        for name, value in edits.items():
            target[self.attributes.index(name)] = value
            for pair in EXCLUSIVE:
                if name in pair and (other := pair[1 - pair.index(name)]) in self.attributes:
                    index = self.attributes.index(other)
                    target[index] = min(target[index], 1.0 - value)
        return target

    def edit(self, image: np.ndarray, landmarks: np.ndarray, edits: dict[str, float]) -> np.ndarray:
        """`image` (RGB uint8, any size) with the face at `landmarks` edited; unchanged when `edits` is empty."""
        self.check(edits)
        if not edits:
            return image
        crop, matrix = align_face(image, landmarks, self.size)
        face = (crop.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1)[None]
        own = self._classifier.run(None, {"face": face})[0][0]
        attributes = self.target(own, edits)[None]
        edited, mask = self._editor.run(None, {"face": face, "attributes": attributes})
        change = ((edited[0] - face[0]) * 127.5).transpose(1, 2, 0) * (mask[0, 0] * self._taper)[..., None]
        h, w = image.shape[:2]
        back = cv2.warpAffine(
            np.ascontiguousarray(change), cv2.invertAffineTransform(matrix), (w, h), flags=cv2.INTER_LINEAR
        )
        return np.clip(image.astype(np.float32) + back, 0, 255).round().astype(np.uint8)


def portrait_edit(editor: AttributeEditor, edits: dict[str, float]) -> Callable[[np.ndarray], np.ndarray]:
    """A step for the avatar-preparation chain: the portrait's largest face found, then edited."""

    def step(image: np.ndarray) -> np.ndarray:
        detector = FaceMeshDetector(static=True, max_faces=4)
        try:
            faces = detector.all_faces(image)
        finally:
            detector.close()
        if not faces:
            raise AvatarError("no face found to edit: use a portrait with one clearly visible face")
        return editor.edit(image, largest_face(faces), edits)

    return step
