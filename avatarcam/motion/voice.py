"""The voice's mouth on a motion whose face is not tracked: jaw, rounded or spread lips, with idle blinks and a
slow sway so a voice-only avatar does not stare, all scaled by how far the hand-over from tracking has come."""

from __future__ import annotations

import math

import numpy as np

from avatarcam.motion.expressions import close_eyes, move_corners, open_mouth
from avatarcam.tracking.geometry import from_canonical, rotation_from_euler, to_canonical
from avatarcam.types import Motion

# The voice's widest opening, as a share of the demo's full jaw drop (0.2 iod): speech keeps the lips within
# ~0.1 iod (the tracked inner-lip gap on the real clips: 0.05 iod spread), and the dark interior the warp lays
# into a mouth with no driver behind it reads as a gap there but as a hole beyond.
VOICE_JAW = 0.45
ROUND_IN = 0.05  # iod the corners move in with fully rounded lips
WIDE_OUT = 0.04  # and out with fully spread ones
BLINK_EVERY, BLINK_SECONDS = 3.7, 0.18
SWAY_DEGREES = (4.0, 2.0, 1.5)  # yaw, pitch, roll amplitudes of the idle sway


def idle(t: float) -> tuple[float, tuple[float, float, float]]:
    """Blink amount (0..1) and sway (yaw, pitch, roll degrees) at time t: slow incommensurate periods, so the
    pattern never visibly repeats; blinks a little irregular."""
    phase = (t + 0.8 * math.sin(t / 5.3)) % BLINK_EVERY / BLINK_SECONDS
    blink = math.sin(math.pi * phase) if phase < 1 else 0.0
    yaw, pitch, roll = SWAY_DEGREES
    sway = (
        yaw * math.sin(2 * math.pi * t / 7.1),
        pitch * math.sin(2 * math.pi * t / 5.3 + 1.0),
        roll * math.sin(2 * math.pi * t / 9.7 + 2.0),
    )
    return blink, sway


def pose_of(motion: Motion, shape: np.ndarray) -> tuple[float, np.ndarray]:
    """Scale and translation that carry the avatar's canonical `shape` to `motion`'s landmarks with its rotation
    (least squares): the frame in which the motion's own shape is edited."""
    posed = shape @ motion.rotation.T
    target = motion.landmarks.astype(np.float64)
    p, q = posed - posed.mean(axis=0), target - target.mean(axis=0)
    scale = float((p * q).sum() / max((p * p).sum(), 1e-9))
    return scale, target.mean(axis=0) - scale * posed.mean(axis=0)


def with_voice(
    motion: Motion, avatar_shape: np.ndarray, opening: float, rounded: float, wide: float, t: float, weight: float
) -> Motion:
    """`motion` of the avatar whose canonical shape is `avatar_shape`, with the voice's mouth and the idle blinks
    and sway, all at `weight` (0: unchanged)."""
    if weight <= 0:
        return motion
    scale, trans = pose_of(motion, avatar_shape)
    shape = to_canonical(motion.landmarks.astype(np.float64), scale, motion.rotation, trans)
    blink, (yaw, pitch, roll) = idle(t)
    open_mouth(shape, VOICE_JAW * weight * opening)
    move_corners(shape, weight * (WIDE_OUT * wide - ROUND_IN * rounded), 0.0)
    close_eyes(shape, weight * blink)
    rotation = rotation_from_euler(weight * yaw, weight * pitch, weight * roll) @ motion.rotation
    landmarks = from_canonical(shape, scale, rotation, trans).astype(np.float32)
    return Motion(landmarks, rotation, motion.tracked)
