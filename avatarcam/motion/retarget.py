"""Relative motion transfer: the driver's change from its own neutral moves the avatar's own face.

The avatar keeps its face shape (no identity leak): only the driver's pose change relative to the reference and
its expression deformation in the canonical frame are applied. Eye apertures transfer as ratios, so a blink
closes an avatar's eyes fully whatever their size.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatarcam.config import RetargetConfig
from avatarcam.motion.stretch import DEGENERATE_IOD2, skin_triangles, stretch
from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import (
    canonical_shape,
    euler_degrees,
    from_canonical,
    lower_face_indices,
    rotation_from_euler,
    to_canonical,
)
from avatarcam.tracking.topology import LID_RINGS
from avatarcam.types import Face, Frame, Motion

# Upper/lower lid point pairs of each eye (same column), for aperture ratios.
EYE_LIDS = {
    "right": ([246, 161, 160, 159, 158, 157, 173], [7, 163, 144, 145, 153, 154, 155]),
    "left": ([466, 388, 387, 386, 385, 384, 398], [249, 390, 373, 374, 380, 381, 382]),
}

# The rings above each upper lid (topology.LID_RINGS): the detector leaves both still in a blink, so the lashes
# stretched down over the closed eye (a melted lid); they follow the closing lid this much instead.
LID_RING_FOLLOW = (0.7, 0.35)

# Inner-lip columns (corners excluded): facing upper and lower lip points, which must never cross.
LIP_COLUMNS = (np.asarray(T.UPPER_LIP_CHAIN[1:-1]), np.asarray(T.LOWER_LIP_CHAIN[1:-1]))
# Inner-lip gaps (iod units): a driver's reference mouth this much more open than the avatar's was taken mid-word,
# and a mouth this much more closed than that reference replaces it.
MOUTH_REFERENCE_MARGIN = 0.03
MOUTH_REFERENCE_STEP = 0.01
# A reference eye opening under this share of the driver's own within the next second (a blink is over by then),
# and this much (iod) narrower than the avatar's, was taken mid-blink.
EYE_REFERENCE_RATIO = 0.7
EYE_REFERENCE_MARGIN = 0.02
EYE_REFERENCE_SECONDS = 1.0


def mouth_gap(shape: np.ndarray) -> float:
    return float(shape[T.MOUTH_LOWER, 1] - shape[T.MOUTH_UPPER, 1])


def eye_gap(shape: np.ndarray, upper: list[int], lower: list[int]) -> float:
    return float(np.mean(shape[lower, 1] - shape[upper, 1]))


def _ease_into(move: float, room: float) -> float:
    """`move` (px) as it is up to half the `room`, then easing smoothly (tanh) to a stop at the room's end."""
    knee = room / 2
    if abs(move) <= knee:
        return move
    return float(np.sign(move) * (knee + knee * np.tanh((abs(move) - knee) / max(knee, 1e-9))))


class _Reference:
    """The driver's neutral: pose and canonical shape when the reference was taken."""

    def __init__(self, face: Face, t: float) -> None:
        self.taken_at = t
        self.scale = face.scale
        self.rotation = face.rotation
        self.translation = face.translation
        self.shape = canonical_shape(face)


class Retargeter:
    def __init__(self, config: RetargetConfig) -> None:
        self.config = config
        self._reference: _Reference | None = None
        self._avatar_shape: np.ndarray | None = None
        self._avatar_face: Face | None = None
        # Last applied change (rotation vector, log scale ratio, translation delta, shape delta), for hold/ease.
        self._last: tuple[np.ndarray, float, np.ndarray, np.ndarray] | None = None
        self._lost_since: float | None = None
        self._lower_face = lower_face_indices()
        self._room: np.ndarray | None = None
        self._skin = skin_triangles()

    def set_avatar(self, face: Face, size: int | None = None) -> None:
        """`size`: the avatar image's side, when its head must stay inside it."""
        self._avatar_face = face
        lm = face.landmarks.astype(np.float64)
        self._avatar_shape = to_canonical(lm, face.scale, face.rotation, face.translation)
        self._room = None
        if size is not None:
            # How far the face can move each way (−x, −y, +x, +y) before the overhang has passed the edge.
            low, high = lm[:, :2].min(axis=0), lm[:, :2].max(axis=0)
            overhang = self.config.frame_overhang * (high - low)
            self._room = np.maximum(np.concatenate([low + overhang, size - 1 - high + overhang]), 0.0)

    def reset_reference(self) -> None:
        """The next tracked face becomes the driver's neutral."""
        self._reference = None

    @property
    def has_reference(self) -> bool:
        return self._reference is not None

    def __call__(self, face: Face | None, frame: Frame | None = None) -> Motion:
        if self._avatar_face is None:
            raise RuntimeError("Retargeter.set_avatar() must be called before use")
        t = frame.timestamp_ns * 1e-9 if frame is not None else 0.0
        if face is None:
            return self._lost(t)
        if frame is not None and self._cut_by_edge(face, frame):
            return self._lost(t)  # the face is still there (the face swap swaps it), but gives no pose
        self._lost_since = None
        if self._reference is None:
            self._reference = _Reference(face, t)
        ref = self._reference
        cfg = self.config
        rel = face.rotation @ ref.rotation.T
        rvec = cv2.Rodrigues(rel)[0].ravel() * cfg.rotation_gain
        shape = canonical_shape(face)
        self._settle_reference(shape, ref, t)
        change = (
            rvec,
            float(np.log(face.scale / ref.scale)),
            (face.translation - ref.translation) / ref.scale * cfg.translation_gain,
            self._shape_delta(shape, ref),
        )
        self._last = change
        motion = self._motion(change, tracked=True)
        # How far the driver's own skin stretches beyond its neutral held rigid in this pose, triangle by triangle,
        # measured in its image as the animator measures the avatar's: the avatar's may stretch as far.
        # Every triangle is measured, however thin: the avatar's own, just over the animator's size floor where the
        # driver's was just under it, would otherwise be held to the bare limit.
        rigid = from_canonical(ref.shape, face.scale, face.rotation, face.translation)
        motion.driver_stretch = stretch(rigid, face.landmarks, self._skin, DEGENERATE_IOD2 * face.scale * face.scale)
        return motion

    def _settle_reference(self, shape: np.ndarray, ref: _Reference, t: float) -> None:
        """Replaces the parts of the driver's reference that caught a passing expression (a word, a blink)."""
        avatar = self._avatar_shape
        ref_mouth = mouth_gap(ref.shape)
        if (
            ref_mouth > mouth_gap(avatar) + MOUTH_REFERENCE_MARGIN
            and mouth_gap(shape) < ref_mouth - MOUTH_REFERENCE_STEP
        ):
            # The driver was talking when the reference was taken (its mouth more open than the avatar's at rest),
            # so its most closed mouth since becomes the mouth's neutral: else closing would push the avatar's
            # lips through each other and every word that opens less than the reference would be lost. Matching
            # references (the same face: self-transfer) are kept, which keeps that transfer exact.
            ref.shape[self._lower_face] = shape[self._lower_face]
        for upper, lower in EYE_LIDS.values():
            ref_eye = eye_gap(ref.shape, upper, lower)
            if (
                t - ref.taken_at <= EYE_REFERENCE_SECONDS
                and ref_eye < EYE_REFERENCE_RATIO * eye_gap(shape, upper, lower)
                and ref_eye < eye_gap(avatar, upper, lower) - EYE_REFERENCE_MARGIN
            ):
                # The reference was taken mid-blink: against it every open eye would be an eye opened wide, and
                # the avatar would stare all session. The open eye becomes the lids' neutral. An avatar whose own
                # eyes are as narrow (the same face) keeps the reference, which keeps self-transfer exact.
                ref.shape[upper + lower] = shape[upper + lower]

    def _shape_delta(self, shape: np.ndarray, ref: _Reference) -> np.ndarray:
        delta = (shape - ref.shape) * self.config.expression_gain
        avatar = self._avatar_shape
        for upper, lower in EYE_LIDS.values():
            # Lid motion scaled by the eyes' size ratio: the avatar's eye closes by the same fraction as the
            # driver's (a full blink closes it fully, whatever its size), and is exact for the same face.
            ref_gap = np.maximum(ref.shape[lower, 1] - ref.shape[upper, 1], 1e-3)
            avatar_gap = np.maximum(avatar[lower, 1] - avatar[upper, 1], 1e-3)
            ratio = np.clip(avatar_gap / ref_gap, 0.3, 3.0)
            delta[upper, 1] *= ratio
            delta[lower, 1] *= ratio
            # Lids never cross.
            overshoot = (avatar[upper, 1] + delta[upper, 1]) - (avatar[lower, 1] + delta[lower, 1])
            delta[upper, 1] -= np.maximum(overshoot, 0.0)
        for side, (upper, _) in EYE_LIDS.items():
            for ring, follow in zip(LID_RINGS[side], LID_RING_FOLLOW, strict=True):
                delta[ring, 1] += follow * np.maximum(delta[upper, 1] - delta[ring, 1], 0.0)
        upper, lower = LIP_COLUMNS
        # Lips never cross either: the lower lip moves down to meet the upper one.
        overshoot = (avatar[upper, 1] + delta[upper, 1]) - (avatar[lower, 1] + delta[lower, 1])
        delta[lower, 1] += np.maximum(overshoot, 0.0)
        return delta

    def _lost(self, t: float) -> Motion:
        """Hold the last motion, then ease to the avatar's neutral."""
        if self._last is None:
            return self._motion(None, tracked=False)
        if self._lost_since is None:
            self._lost_since = t
        elapsed = t - self._lost_since - self.config.hold_seconds
        k = 1.0 if elapsed <= 0 else max(0.0, 1.0 - elapsed / max(self.config.ease_seconds, 1e-6))
        k = k * k * (3 - 2 * k)  # smoothstep: no visible jerk at either end
        rvec, log_s, dt, ds = self._last
        return self._motion((rvec * k, log_s * k, dt * k, ds * k), tracked=False)

    def _motion(self, change, tracked: bool) -> Motion:
        av = self._avatar_face
        if change is None:
            return Motion(av.landmarks.copy(), av.rotation, tracked)
        rvec, log_s, dtrans, dshape = change
        rel = self._limit(cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3, 1))[0])
        rot = rel @ av.rotation
        scale = av.scale * float(np.exp(log_s))
        shift = np.array(dtrans, dtype=np.float64) * av.scale
        if self._room is not None:
            shift[:2] = [_ease_into(v, self._room[i + 2] if v > 0 else self._room[i]) for i, v in enumerate(shift[:2])]
        trans = av.translation + shift
        # Rotate about the avatar's own head centre (canonical origin), not the image origin.
        shape = self._avatar_shape + dshape
        landmarks = from_canonical(shape, scale, rot, trans).astype(np.float32)
        return Motion(landmarks, rot, tracked)

    def _cut_by_edge(self, face: Face, frame: Frame) -> bool:
        """The driver's face is partly out of its camera's view (sliding out): what is left of it is no pose."""
        h, w = frame.image.shape[:2]
        xy = face.landmarks[:, :2]
        outside = (xy[:, 0] < 0) | (xy[:, 0] > w - 1) | (xy[:, 1] < 0) | (xy[:, 1] > h - 1)
        return float(outside.mean()) > self.config.edge_lost_share

    def _limit(self, rel: np.ndarray) -> np.ndarray:
        cfg = self.config
        yaw, pitch, roll = euler_degrees(rel)
        clipped = (
            float(np.clip(yaw, -cfg.max_yaw_deg, cfg.max_yaw_deg)),
            float(np.clip(pitch, -cfg.max_pitch_deg, cfg.max_pitch_deg)),
            float(np.clip(roll, -cfg.max_roll_deg, cfg.max_roll_deg)),
        )
        if clipped == (yaw, pitch, roll):
            return rel
        return rotation_from_euler(*clipped)
