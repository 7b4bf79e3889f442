"""Attribute edits at run time: the StarGAN generator (ONNX) on the face cut out by `align_face`, its change
(already weighed by its attention mask) laid back onto the full-resolution image inside the face: the hull of the
face's landmarks, feathered inwards. Pixels outside the face stay exactly the portrait's own; inside, the
portrait's detail stays under the (upsampled) change."""

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
FEATHER = 0.03  # share of the crop's side over which an edit fades out inside the face's edge: no seam


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


def to_network(images: np.ndarray) -> np.ndarray:
    """RGB uint8 N×S×S×3 → float32 N×3×S×S in [-1, 1], as the editor's networks take faces."""
    return (images.astype(np.float32) / 127.5 - 1).transpose(0, 3, 1, 2)


def face_region(crop_landmarks: np.ndarray, size: int) -> np.ndarray:
    """size×size float32 in [0, 1]: 1 inside the hull of the landmarks (crop pixels), fading to exactly 0 a crop
    pixel before the hull's edge, so that nothing of an edit reaches past the face once pasted back (linear
    resampling spreads a crop pixel by up to one)."""
    hull = cv2.convexHull(np.round(crop_landmarks[:, :2] * 4).astype(np.int32))
    region = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(region, hull, 255, shift=2)
    feather = max(1, round(FEATHER * size))
    inset = 2 * feather + 1  # the blur's reach (3σ = 1.5 feather) and the resampling's pixel, inside the hull
    region = cv2.erode(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inset + 1,) * 2))
    region = cv2.GaussianBlur(region, (2 * round(1.5 * feather) + 1,) * 2, feather / 2)
    return region.astype(np.float32) / 255


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

    def attributes_of(self, faces: np.ndarray) -> np.ndarray:
        """P(attribute) N×A of aligned faces N×3×S×S in [-1, 1], as the critic reads them."""
        return self._classifier.run(None, {"face": faces.astype(np.float32)})[0]

    def translate(self, faces: np.ndarray, attributes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The generator on aligned faces N×3×S×S in [-1, 1] asked for `attributes` N×A: (edited, mask)."""
        feeds = {"face": faces.astype(np.float32), "attributes": attributes.astype(np.float32)}
        edited, mask = self._editor.run(None, feeds)
        return edited, mask

    def edit(self, image: np.ndarray, landmarks: np.ndarray, edits: dict[str, float]) -> np.ndarray:
        """`image` (RGB uint8, any size) with the face at `landmarks` edited; unchanged when `edits` is empty."""
        self.check(edits)
        if not edits:
            return image
        crop, matrix = align_face(image, landmarks, self.size)
        face = to_network(crop[None])
        attributes = self.target(self.attributes_of(face)[0], edits)[None]
        edited, _ = self.translate(face, attributes)
        crop_landmarks = np.asarray(landmarks, np.float64)[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        region = face_region(crop_landmarks, self.size)
        change = ((edited[0] - face[0]) * 127.5).transpose(1, 2, 0) * region[..., None]
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
