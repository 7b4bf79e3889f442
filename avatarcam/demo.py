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
from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import from_canonical, rotation_from_euler, to_canonical
from avatarcam.types import Avatar, Frame, Motion, now_ns

LOWER_LIP = [146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324]
UPPER_LIDS = [246, 161, 160, 159, 158, 157, 173, 466, 388, 387, 386, 385, 384, 398]
LOWER_LIDS = [7, 163, 144, 145, 153, 154, 155, 249, 390, 373, 374, 380, 381, 382]


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
    chin_y, corner_y = shape[T.CHIN, 1], shape[[T.MOUTH_RIGHT, T.MOUTH_LEFT], 1].mean()
    jaw = np.clip((shape[:, 1] - corner_y) / (chin_y - corner_y), 0, 1)
    jaw[LOWER_LIP] = 1.0
    below = (np.abs(shape[:, 0]) < 0.9) & (shape[:, 1] > corner_y - 0.02)
    shape[below, 1] += 0.2 * s["mouth"] * jaw[below]
    lids = shape[LOWER_LIDS, 1] - shape[UPPER_LIDS, 1]
    shape[UPPER_LIDS, 1] += 0.9 * s["blink"] * lids
    for corner, side in ((T.MOUTH_RIGHT, -1), (T.MOUTH_LEFT, 1)):
        near = np.linalg.norm(shape[:, :2] - shape[corner, :2], axis=1) < 0.12
        shape[near, 0] += side * 0.06 * s["smile"]
        shape[near, 1] -= 0.06 * s["smile"]
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
        self._shape = to_canonical(face.landmarks.astype(np.float64), face.scale, face.rotation, face.translation)
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
