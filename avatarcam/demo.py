"""Demo motion: a scripted face (head turns, nods, talking, blinks, smiles) for machines with no camera.

The project's default avatar is animated by the warp animator along a script and served as camera frames, so
the whole live path (tracking included) runs exactly as it would on a webcam.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

from avatarcam.animators.warp import WarpAnimator
from avatarcam.avatar import load_avatar
from avatarcam.config import AnimatorConfig, Config, WarpConfig
from avatarcam.motion.expressions import close_eyes, open_mouth, smile
from avatarcam.tracking.geometry import canonical_shape, from_canonical, rotation_from_euler
from avatarcam.types import Avatar, Frame, Motion, now_ns

SCRIPT_SECONDS = 12.0  # the script loops


def script(t: float) -> dict[str, float]:
    """Pose (degrees) and expression amounts (0..1) at time t seconds; loops every SCRIPT_SECONDS."""
    blink_phase = (t % 3.1) / 0.18
    return {
        "yaw": 18 * math.sin(2 * math.pi * t / 6.0),
        "pitch": 9 * math.sin(2 * math.pi * t / 4.0 + 1.0),
        "roll": 5 * math.sin(2 * math.pi * t / 8.0),
        "mouth": max(0.0, math.sin(2 * math.pi * 3.0 * t)) * (0.5 + 0.5 * math.sin(2 * math.pi * t / 5.0)) ** 2,
        "blink": math.sin(math.pi * blink_phase) if blink_phase < 1 else 0.0,
        "smile": max(0.0, math.sin(2 * math.pi * t / SCRIPT_SECONDS)),
    }


def scripted_motion(avatar: Avatar, shape: np.ndarray, t: float) -> Motion:
    """The avatar (canonical shape `shape`) doing the script at time t: its own face, posed and expressive."""
    s = script(t)
    shape = shape.copy()
    open_mouth(shape, s["mouth"])
    close_eyes(shape, s["blink"])
    smile(shape, s["smile"])
    face = avatar.face
    rot = rotation_from_euler(s["yaw"], s["pitch"], s["roll"]) @ face.rotation
    landmarks = from_canonical(shape, face.scale, rot, face.translation).astype(np.float32)
    return Motion(landmarks=landmarks, rotation=rot)


DEMO_AVATAR_SIZE = 480  # the scripted face is drawn at the frame height of a 640×480 camera


def default_demo(width: int = 640, height: int = 480, fps: float = 30.0, realtime: bool = True) -> DemoSource:
    """Demo motion of the project's default avatar: what runs where there is no camera."""
    return DemoSource(load_avatar(None, DEMO_AVATAR_SIZE), width, height, fps, realtime)


class DemoSource:
    """Serves the scripted face as `width`×`height` RGB frames at `fps`, paced in real time."""

    name = "demo motion"

    def __init__(
        self, avatar: Avatar, width: int = 640, height: int = 480, fps: float = 30.0, realtime: bool = True
    ) -> None:
        self.fps = fps
        self.width, self.height = width, height
        self.realtime = realtime
        self._avatar = avatar
        self._warp = WarpAnimator(AnimatorConfig(size=avatar.size, warp=WarpConfig(grid=min(128, avatar.size))))
        self._warp.prepare(avatar)
        face = avatar.face
        self._shape = canonical_shape(face)
        self._pad_x = (width - height) // 2
        self._start = time.monotonic()
        self._index = 0

    @classmethod
    def from_config(cls, config: Config) -> DemoSource:
        src = config.source
        return default_demo(src.width, src.height, src.fps)

    def motion_at(self, t: float) -> Motion:
        return scripted_motion(self._avatar, self._shape, t)

    def render(self, t: float) -> np.ndarray:
        square = self._warp(self.motion_at(t))
        square = cv2.resize(square, (self.height, self.height), interpolation=cv2.INTER_AREA)
        return cv2.copyMakeBorder(
            square, 0, 0, self._pad_x, self.width - self.height - self._pad_x, cv2.BORDER_REPLICATE
        )

    def read(self, timeout: float = 1.0) -> Frame | None:
        t = self._index / self.fps
        if self.realtime:
            delay = self._start + t - time.monotonic()
            if delay > timeout:
                return None
            if delay > 0:
                time.sleep(delay)
        frame = Frame(self.render(t), now_ns() if self.realtime else int(t * 1e9), self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        self._warp.close()
