"""The `faceswap` animator: the driver's own face replaced by person B's, the DeepFakes way.

Per frame: align the driver's face (its tracked landmarks) → encoder + decoder B (ONNX Runtime) → temporal
smoothing in the aligned frame → the driver's nod added (the decoder hardly draws pitch) → colour transfer to
the driver's skin → the driver's own lips and eyes laid over (by default) → mask (the mesh hull ∩ the decoder's
mask, eroded and feathered) → warp back and blend. The output is the driver frame's centre square at the
animator size, like every animator's. With no face the frame passes through unswapped, or the last swap holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from avatarcam.animators.faceswap.align import align_matrix, nod, transform_points
from avatarcam.animators.faceswap.blend import (
    keep_driver_parts,
    paste_back,
    refine_mask,
    reinhard,
    transfer_colour,
)
from avatarcam.animators.faceswap.store import SWAP, SWAP_INT8, SwapModelError, model_dir
from avatarcam.avatar import square_crop
from avatarcam.config import AnimatorConfig
from avatarcam.runtime.onnx import open_session
from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import euler_degrees, face_mask
from avatarcam.types import Avatar, Face, Frame, Motion

log = logging.getLogger(__name__)
EROSION_REFERENCE = 128  # swap_erode / swap_blur are pixels of a 128² crop


@dataclass(frozen=True)
class SwapPlan:
    image: np.ndarray  # the driver's frame
    face: Face | None
    pitch: float  # degrees


class FaceSwapAnimator:
    name = "faceswap"
    status = ""
    draws_portrait = False

    def __init__(self, animator: AnimatorConfig) -> None:
        self.config = config = animator.faceswap  # its choices were checked when the config was loaded
        self.size = animator.size
        if not config.model:
            raise SwapModelError(
                "the faceswap animator needs a model: --model NAME (train one with "
                "`avatarcam train faceswap --a DIR --b DIR --name NAME`)"
            )
        folder = model_dir(config.model)
        path = folder / (SWAP_INT8 if config.precision == "int8" and (folder / SWAP_INT8).is_file() else SWAP)
        if not path.is_file():
            raise SwapModelError(
                f"face swap model '{config.model}' ({folder}) has no decoder B ({SWAP} missing): train it with "
                f"`avatarcam train faceswap --name {config.model} …` or `avatarcam export faceswap --model …`"
            )
        self.session = open_session(path, config.threads)
        self.crop_size = int(self.session.get_inputs()[0].shape[2])
        scale = self.crop_size / EROSION_REFERENCE
        self._erode, self._blur = round(config.erode * scale), round(config.blur * scale)
        self._kept_parts: list[list[int]] = ([T.OUTER_LIPS] if config.keep_mouth else []) + (
            [T.RIGHT_EYE, T.LEFT_EYE] if config.keep_eyes else []
        )
        self._previous: np.ndarray | None = None  # last swapped face (aligned, float), for smoothing
        self._neutral = np.eye(3)
        self._last: np.ndarray | None = None
        self.swapped = 0  # frames swapped (vs passed through / held)

    def prepare(self, avatar: Avatar) -> None:
        """The face swap draws the driver, not a portrait; the portrait's pose is only the one that the
        retargeter turns by the driver's motion since its reference, from which the nod is read."""
        self._previous = None
        self._neutral = avatar.face.rotation

    def swap_frame(self, image: np.ndarray, landmarks: np.ndarray, pitch_deg: float = 0.0) -> np.ndarray:
        """`image` (any size, RGB) with the face at `landmarks` replaced by B's, nodded by `pitch_deg`."""
        size = self.crop_size
        matrix = align_matrix(landmarks, size)
        crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
        face_in = (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        decoded, decoded_mask = self.session.run(None, {"face": face_in})
        face = decoded[0].transpose(1, 2, 0)
        smoothing = self.config.smoothing
        if self._previous is not None and smoothing > 0:
            face = (1 - smoothing) * face + smoothing * self._previous
        self._previous = face
        face_u8 = (face * 255 + 0.5).clip(0, 255).astype(np.uint8)
        crop_landmarks = transform_points(matrix, landmarks)
        face_u8, decoded_mask = nod([face_u8, decoded_mask[0, 0]], crop_landmarks, pitch_deg)
        hull = face_mask(crop_landmarks, size).astype(np.float32) / 255.0
        face_u8 = transfer_colour(face_u8, crop, hull, self.config.colour)
        if self._kept_parts:
            # A colour transfer already put the swap in the driver's colours; without one, the parts go to B's.
            driver = crop if self.config.colour != "none" else reinhard(crop, face_u8, hull)
            face_u8 = keep_driver_parts(face_u8, driver, crop_landmarks, self._kept_parts)
        mask = refine_mask(np.minimum(hull, decoded_mask), self._erode, self._blur)
        return paste_back(image, face_u8, mask, matrix, self.config.blend)

    def __call__(self, motion: Motion, driver: Frame | None = None, driver_face: Face | None = None) -> np.ndarray:
        return self.draw(self.plan(motion, driver, driver_face))

    def plan(self, motion: Motion, driver: Frame | None = None, driver_face: Face | None = None) -> SwapPlan:
        """The driver's frame and face, and its nod since its reference (the retargeter's relative rotation, on
        the portrait's pose)."""
        if driver is None:
            raise RuntimeError("the faceswap animator needs the driver frame")
        pitch = euler_degrees(motion.rotation @ self._neutral.T)[1] if self.config.follow_pitch else 0.0
        return SwapPlan(driver.image, driver_face, pitch)

    def draw(self, plan: SwapPlan) -> np.ndarray:
        if plan.face is None:  # no face in the frame (one cut by the camera's edge is still swapped)
            self._previous = None
            if self.config.no_face == "hold" and self._last is not None:
                return self._last
            return square_crop(plan.image, self.size)
        self._last = square_crop(self.swap_frame(plan.image, plan.face.landmarks, plan.pitch), self.size)
        self.swapped += 1
        return self._last

    def close(self) -> None:
        self._previous = self._last = None
