"""Voice: while the driver's face is not tracked (lost, or no camera with `--source audio`), the avatar's mouth
follows the microphone, it blinks and sways idly; when the face returns, tracking takes over again smoothly."""

from __future__ import annotations

import numpy as np

from avatarcam.audio.engine import acquire_engine, release_engine
from avatarcam.config import Config
from avatarcam.motion.voice import with_voice
from avatarcam.stages import Packet, StageBase
from avatarcam.tracking.geometry import canonical_shape
from avatarcam.types import Avatar


class VoiceStage(StageBase):
    name = "voice"
    kind = "motion"

    def __init__(self, config: Config) -> None:
        self.engine = acquire_engine(config) if config.audio.voice_mouth else None
        self.blend_seconds = max(config.audio.blend_seconds, 1e-3)
        self.weight = 0.0  # 0: tracking drives the face, 1: the voice does
        self._shape: np.ndarray | None = None  # the avatar's canonical face
        self._last_time: float | None = None

    @property
    def status(self) -> str:
        return "voice drives the mouth" if self.weight > 0.5 else ""

    def prepare(self, avatar: Avatar) -> None:
        self._shape = canonical_shape(avatar.face)

    def __call__(self, packet: Packet) -> None:
        if self.engine is None or packet.motion is None or self._shape is None:
            return
        t = packet.frame.timestamp_ns * 1e-9
        step = 0.0 if self._last_time is None else max(t - self._last_time, 0.0) / self.blend_seconds
        self._last_time = t
        target = 0.0 if packet.motion.tracked else 1.0
        self.weight = min(self.weight + step, target) if target > self.weight else max(self.weight - step, target)
        if self.weight <= 0:
            return
        shape = self.engine.voice.at(t)  # None before any sound: the avatar still blinks and sways
        opening, rounded, wide = (shape.opening, shape.round, shape.wide) if shape is not None else (0.0, 0.0, 0.0)
        packet.motion = with_voice(packet.motion, self._shape, opening, rounded, wide, t, self.weight)

    def close(self) -> None:
        release_engine(self.engine)
        self.engine = None
