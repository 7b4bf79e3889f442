"""Loading a portrait as an Avatar: checked, cropped to a square, landmarks found once."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from avatarcam.tracking.facemesh import FaceMeshDetector, largest_face
from avatarcam.tracking.geometry import euler_degrees
from avatarcam.tracking.segmentation import person_mask
from avatarcam.tracking.tracker import face_from_landmarks
from avatarcam.types import Avatar

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
MAX_PIXELS = 40_000_000  # larger images are refused before decoding
MIN_FACE_FRACTION = 0.08  # the face's width must be at least this share of the square
DEFAULT_AVATAR = "default_avatar.png"
TURNED_DEGREES = 30.0  # beyond this yaw or pitch a portrait hides too much of its face to animate well


class AvatarError(ValueError):
    """A portrait that cannot be used, with a message that says why and what to do."""


def square_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to size×size (the render contract)."""
    h, w = image.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    crop = image[y : y + side, x : x + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=interp))


def read_image(path: str | Path) -> np.ndarray:
    """An RGB uint8 image from a file, or AvatarError with a clear reason."""
    path = Path(path)
    if not path.is_file():
        raise AvatarError(f"portrait not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    header_ok = cv2.haveImageReader(str(path)) if data.size else False
    if not header_ok:
        raise AvatarError(f"{path} is not an image file OpenCV can read (use PNG or JPEG)")
    probe = cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_8)
    if probe is None:
        raise AvatarError(f"{path} is corrupt or not an image")
    if probe.shape[0] * probe.shape[1] * 64 > MAX_PIXELS:
        raise AvatarError(f"{path} is too large ({probe.shape[1] * 8}×{probe.shape[0] * 8} px); use at most 40 MP")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise AvatarError(f"{path} is corrupt or not an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def save_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB image as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def _face_in_zoomed_tiles(detector: FaceMeshDetector, square: np.ndarray) -> bool:
    """Whether a small face shows up in one of nine overlapping half-size tiles, each zoomed back to full size.

    Only small finds count: a big one in a zoomed tile was no face at full size either (an animal, a drawing)."""
    h, w = square.shape[:2]
    for y in (0, h // 4, h // 2):
        for x in (0, w // 4, w // 2):
            tile = cv2.resize(square[y : y + h // 2, x : x + w // 2], (w, h), interpolation=cv2.INTER_CUBIC)
            found = detector(tile)
            if found is not None and np.ptp(found[0][:, 0]) < 0.25 * w:
                return True
    return False


def default_avatar_path() -> Path:
    return Path(str(resources.files("avatarcam.assets").joinpath(DEFAULT_AVATAR)))


def _square_around_face(detector: FaceMeshDetector, image: np.ndarray, size: int, name: str) -> tuple[np.ndarray, int]:
    """The portrait's square at `size`, and how many faces the whole image holds (0: not looked).

    The centre square (`square_crop`, the render contract) unless the largest face in the whole image reaches
    outside it (two people side by side, a face off centre): then a square of the same size moved over it."""
    h, w = image.shape[:2]
    if h == w:
        return square_crop(image, size), 0
    faces = detector.all_faces(image)
    if not faces:
        return square_crop(image, size), 0  # the centre square, where a small face may still be found
    box = largest_face(faces)[:, :2]
    side = min(h, w)
    centre_x, centre_y = (w - side) // 2, (h - side) // 2
    (left, top), (right, bottom) = box.min(axis=0), box.max(axis=0)
    if centre_x <= left and right <= centre_x + side and centre_y <= top and bottom <= centre_y + side:
        return square_crop(image, size), len(faces)
    mid_x, mid_y = (left + right) / 2, (top + bottom) / 2
    x = int(np.clip(round(mid_x - side / 2), 0, w - side))
    y = int(np.clip(round(mid_y - side / 2), 0, h - side))
    log.warning("%s: the face is not inside the image's centre square: framing the square around it", name)
    return square_crop(image[y : y + side, x : x + side], size), len(faces)


def make_avatar(
    image: np.ndarray, size: int, name: str = "avatar", source: str = "", frame_face: bool = False
) -> Avatar:
    """Prepares an RGB portrait: square crop at `size`, the largest face's landmarks and pose.

    The square is the image's centre; with `frame_face` (portrait files), it moves over the largest face where
    that face reaches outside the centre square. Training and eval frames keep the centre square: their targets
    are cropped the same way."""
    detector = FaceMeshDetector(static=True, max_faces=4)
    try:
        if frame_face:
            square, faces_in_image = _square_around_face(detector, image, size, name)
        else:
            square, faces_in_image = square_crop(image, size), 0
        found = detector(square)
        faces = max(detector.faces_found, faces_in_image)
        # The detector misses faces below ~10% of the image, so look again, zoomed, to say why instead.
        tiny = found is None and _face_in_zoomed_tiles(detector, square)
    finally:
        detector.close()
    if tiny:
        raise AvatarError(
            f"the face in {name} is too small to animate (under a tenth of the image width after cropping to a "
            "square); crop the portrait closer to the face"
        )
    if found is None:
        raise AvatarError(
            f"no face found in {name}: use a portrait with one clearly visible, roughly frontal face "
            "(the image is cropped to a square first: around the largest face, or its centre)"
        )
    landmarks, _ = found
    width = float(np.ptp(landmarks[:, 0]))
    if width < MIN_FACE_FRACTION * size:
        raise AvatarError(
            f"the face in {name} is too small ({width / size:.0%} of the image width after cropping to a square); "
            "crop the portrait closer to the face"
        )
    if faces > 1:
        log.warning("%s has %d faces: animating the largest", name, faces)
    face = face_from_landmarks(landmarks)
    yaw, pitch, _ = euler_degrees(face.rotation)
    if max(abs(yaw), abs(pitch)) > TURNED_DEGREES:
        log.warning(
            "%s is turned %.0f° from the camera: the side it hides cannot be shown well when you turn the other "
            "way; a frontal portrait animates best",
            name,
            max(abs(yaw), abs(pitch)),
        )
    return Avatar(
        name=name,
        image=square,
        face=face,
        key=hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16],
        source=source,
        mask=person_mask(square),
    )


Edit = Callable[[np.ndarray], np.ndarray]  # an RGB portrait in, the edited portrait out


@dataclass
class AvatarPreparation:
    """A portrait file to an Avatar: load → edits (none yet; attribute edits add theirs) → landmarks and framing
    → person mask. The avatar's key is that of the edited portrait: its caches (fine-tunes) are its own."""

    size: int
    edits: list[Edit] = field(default_factory=list)

    def __call__(self, path: str | Path | None) -> Avatar:
        path = Path(path) if path else default_avatar_path()
        image = read_image(path)
        for edit in self.edits:
            image = edit(image)
        return make_avatar(image, self.size, name=path.stem, source=str(path), frame_face=True)


def load_avatar(path: str | Path | None, size: int) -> Avatar:
    """An Avatar from a portrait file, or the bundled default avatar when path is empty."""
    return AvatarPreparation(size)(path)


def list_avatars(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise AvatarError(f"avatar folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
