"""Synthetic driver faces from real landmarks: pose changes, mouth openings and blinks in the canonical frame."""

from __future__ import annotations

import numpy as np

from avatarcam.motion import expressions
from avatarcam.motion.retarget import EYE_LIDS
from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import canonical_face, from_canonical, rotation_from_euler, to_canonical
from avatarcam.tracking.tracker import face_from_landmarks
from avatarcam.types import Face


def shape_of(face: Face) -> np.ndarray:
    """The face's own shape in the canonical frame (pose removed)."""
    return to_canonical(face.landmarks.astype(np.float64), face.scale, face.rotation, face.translation)


def with_shape(face: Face, shape: np.ndarray) -> Face:
    """A face with `face`'s pose and the given canonical shape, as the tracker would report it."""
    return face_from_landmarks(from_canonical(shape, face.scale, face.rotation, face.translation).astype(np.float32))


def open_mouth(face: Face, amount: float) -> Face:
    """The jaw dropped by `amount` canonical units (≈ inter-ocular distances)."""
    shape = shape_of(face)
    expressions.open_mouth(shape, amount / expressions.JAW_DROP)
    return with_shape(face, shape)


def close_eyes(face: Face, fraction: float) -> Face:
    """Both upper lids moved down by `fraction` of the eye opening (1 = fully closed)."""
    shape = shape_of(face)
    for upper, lower in EYE_LIDS.values():
        shape[upper, 1] += fraction * (shape[lower, 1] - shape[upper, 1])
    return with_shape(face, shape)


def posed(
    face: Face,
    yaw: float = 0.0,
    pitch: float = 0.0,
    roll: float = 0.0,
    zoom: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
) -> Face:
    """The same face turned by (yaw, pitch, roll) degrees about its own head centre, scaled and moved (pixels)."""
    rot = rotation_from_euler(yaw, pitch, roll) @ face.rotation
    trans = face.translation + np.array([shift[0], shift[1], 0.0])
    landmarks = from_canonical(shape_of(face), face.scale * zoom, rot, trans)
    return face_from_landmarks(landmarks.astype(np.float32))


def canonical_driver(scale: float = 80.0, centre: tuple[float, float] = (320.0, 240.0)) -> Face:
    """A different person: the project's mean face made wider, shorter and deeper, frontal, at about `scale`
    pixels per inter-ocular distance."""
    shape = canonical_face() * np.array([1.15, 0.9, 1.2])
    landmarks = from_canonical(shape, scale, np.eye(3), np.array([centre[0], centre[1], 0.0]))
    return face_from_landmarks(landmarks.astype(np.float32))


def mouth_gap(landmarks: np.ndarray) -> float:
    """Inner-lip opening p13–p14 in pixels."""
    return float(np.linalg.norm(landmarks[T.MOUTH_UPPER, :2] - landmarks[T.MOUTH_LOWER, :2]))


def eye_gaps(landmarks: np.ndarray, pose: Face) -> np.ndarray:
    """Right and left eye openings (upper to lower lid, middle of the eye) in the canonical frame of `pose`."""
    shape = to_canonical(landmarks.astype(np.float64), pose.scale, pose.rotation, pose.translation)
    return np.array(
        [shape[T.RIGHT_LID_DOWN, 1] - shape[T.RIGHT_LID_UP, 1], shape[T.LEFT_LID_DOWN, 1] - shape[T.LEFT_LID_UP, 1]]
    )
