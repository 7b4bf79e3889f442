"""Head pose by a similarity (Procrustes) fit to the canonical face, and expression signals."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

from avatarcam.tracking import topology as T
from avatarcam.types import Face

CANONICAL_FILE = "canonical_face.npy"


@lru_cache(maxsize=1)
def canonical_face() -> np.ndarray:
    """The project's mean neutral face (478×3, unit inter-ocular distance, frontal, centred on the nose bridge).

    Built from real clips by `avatarcam train canonical` (see tracking/canonical.py) and shipped with the package.
    """
    with resources.files("avatarcam.assets").joinpath(CANONICAL_FILE).open("rb") as fh:
        return np.load(fh).astype(np.float64)


@lru_cache(maxsize=1)
def lower_face_indices() -> np.ndarray:
    """The landmarks below the nose tip: lips, jaw and chin, which move together when speaking."""
    canon = canonical_face()
    return np.flatnonzero(canon[:, 1] > canon[T.NOSE_TIP, 1])


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares s, R, t with dst ≈ s · src @ R.T + t (Umeyama), for N×3 point sets."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / max((a**2).sum(), 1e-12))
    return scale, rot, mu_d - scale * mu_s @ rot.T


def similarity_2d(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity that maps points `src` (N×2) onto `dst` (N×2) with the least squared error."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a = (src[:, 0] - mu_s[0]) + 1j * (src[:, 1] - mu_s[1])
    b = (dst[:, 0] - mu_d[0]) + 1j * (dst[:, 1] - mu_d[1])
    # In complex numbers a similarity is z → q·z + t; the least-squares q is <a, b> / <a, a>.
    q = complex((np.conj(a) * b).sum() / max(float((np.abs(a) ** 2).sum()), 1e-12))
    linear = np.array([[q.real, -q.imag], [q.imag, q.real]])
    return np.hstack([linear, (mu_d - linear @ mu_s)[:, None]])


def fit_pose(landmarks: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Pose of a face: landmarks ≈ scale · canonical @ R.T + t, fitted on the rigid points."""
    canon = canonical_face()
    return similarity_fit(canon[T.RIGID], landmarks[T.RIGID].astype(np.float64))


def to_canonical(landmarks: np.ndarray, scale: float, rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """The face's own shape in the canonical frame (pose removed)."""
    return (landmarks - trans) @ rot / scale


def canonical_shape(face: Face) -> np.ndarray:
    """A tracked face's own shape in the canonical frame (its pose removed)."""
    return to_canonical(face.landmarks.astype(np.float64), face.scale, face.rotation, face.translation)


def from_canonical(shape: np.ndarray, scale: float, rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    return scale * shape @ rot.T + trans


def euler_degrees(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a rotation, for limits and display."""
    yaw = np.degrees(np.arcsin(np.clip(rot[0, 2], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(-rot[1, 2], rot[2, 2]))
    roll = np.degrees(np.arctan2(-rot[0, 1], rot[0, 0]))
    return float(yaw), float(pitch), float(roll)


def rotation_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Inverse of `euler_degrees`: R = Rx(pitch) · Ry(yaw) · Rz(roll)."""
    y, p, r = np.radians([yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rx @ ry @ rz


def expression_signals(landmarks: np.ndarray) -> dict[str, float]:
    """Expression signals in units of the inter-ocular distance (pose-dependent, as seen in the image)."""
    p = landmarks[:, :2]
    iod = max(float(np.linalg.norm(p[T.RIGHT_EYE_OUTER] - p[T.LEFT_EYE_OUTER])), 1e-6)

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(p[a] - p[b])) / iod

    right_eye_w = dist(33, 133)
    left_eye_w = dist(263, 362)
    right_open = dist(T.RIGHT_LID_UP, T.RIGHT_LID_DOWN)
    left_open = dist(T.LEFT_LID_UP, T.LEFT_LID_DOWN)
    signals = {
        "mouth_open": dist(T.MOUTH_UPPER, T.MOUTH_LOWER),
        "mouth_width": dist(T.MOUTH_RIGHT, T.MOUTH_LEFT),
        "eye_open_right": right_open,
        "eye_open_left": left_open,
        "brow_raise": (dist(105, 159) + dist(334, 386)) / 2,
        "smile": (p[T.MOUTH_UPPER, 1] - (p[T.MOUTH_RIGHT, 1] + p[T.MOUTH_LEFT, 1]) / 2) / iod,
    }
    if len(p) >= 478:  # irises present: gaze as the iris centre's offset within the eye, in eye widths
        for side, iris, inner, outer, width in (
            ("right", 468, 133, 33, right_eye_w),
            ("left", 473, 362, 263, left_eye_w),
        ):
            mid = (p[inner] + p[outer]) / 2
            signals[f"gaze_x_{side}"] = float((p[iris, 0] - mid[0]) / (width * iod + 1e-6))
            signals[f"gaze_y_{side}"] = float((p[iris, 1] - mid[1]) / (width * iod + 1e-6))
    return signals


def face_mask(landmarks: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """uint8 mask (255 inside) of the points' convex hull, size² or of shape (height, width): for the whole mesh,
    the face with eyes and mouth (EVAL.md's face hull)."""
    mask = np.zeros((size, size) if isinstance(size, int) else size, np.uint8)
    hull = cv2.convexHull(np.round(landmarks[:, :2]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    return mask
