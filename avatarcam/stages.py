"""One frame through tracker → retargeter → animator: the part shared by live and offline runs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from avatarcam import animators
from avatarcam.config import Config
from avatarcam.motion.retarget import Retargeter
from avatarcam.tracking.tracker import Tracker
from avatarcam.types import Avatar, Face, Frame, Motion

log = logging.getLogger(__name__)


@dataclass
class StageTimes:
    """Per-stage durations in milliseconds, one entry per frame."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, stage: str, ms: float) -> None:
        self.samples.setdefault(stage, []).append(ms)

    def summary(self) -> dict[str, tuple[float, float]]:
        return {k: (float(np.median(v)), float(np.percentile(v, 95))) for k, v in self.samples.items() if v}


class FrameStages:
    """Tracks the driver, retargets onto the avatar and draws it. Never raises on one bad frame."""

    def __init__(self, config: Config, avatar: Avatar) -> None:
        self.config = config
        self.tracker = Tracker(config.tracker)
        self.retargeter = Retargeter(config.retarget)
        self.animator = animators.create(config.animator)
        self.times = StageTimes()
        self.errors = 0
        self.last_face: Face | None = None
        self.set_avatar(avatar)

    def set_avatar(self, avatar: Avatar) -> None:
        self.avatar = avatar
        self.animator.prepare(avatar)
        self.retargeter.set_avatar(avatar.face, avatar.size)
        self._last_output = avatar.image.copy()

    def reset_reference(self) -> None:
        self.retargeter.reset_reference()

    def __call__(self, frame: Frame) -> np.ndarray:
        try:
            t0 = time.perf_counter()
            face = self.tracker(frame)
            t1 = time.perf_counter()
            motion: Motion = self.retargeter(face, frame)
            t2 = time.perf_counter()
            out = self.animator(motion)
            t3 = time.perf_counter()
        except Exception:  # one bad frame must never end a call: log it, count it, show the last good output
            self.errors += 1
            log.exception("frame %d failed; showing the last good output", frame.index)
            return self._last_output
        self.last_face = face
        self.times.add("track", (t1 - t0) * 1e3)
        self.times.add("retarget", (t2 - t1) * 1e3)
        self.times.add("animate", (t3 - t2) * 1e3)
        self._last_output = out
        return out

    def close(self) -> None:
        self.tracker.close()
        self.animator.close()
