"""Audio: the last stage before the sink hands the engine each frame's capture→send latency, which the delayed
voice follows; it shows the delay and the input level in the HUD, and offers the two offset hotkeys."""

from __future__ import annotations

from collections.abc import Mapping

from avatarcam.audio.engine import acquire_engine, release_engine
from avatarcam.config import Config
from avatarcam.stages import CAMERA_LOST, Action, Packet, StageBase
from avatarcam.types import now_ns


class AudioStage(StageBase):
    name = "audio"

    def __init__(self, config: Config) -> None:
        self.engine = acquire_engine(config)
        self.step = config.audio.step_ms / 1000

    @property
    def status(self) -> str:
        return self.engine.status if self.engine is not None else ""

    @property
    def actions(self) -> Mapping[str, Action]:
        return {"audio_later": lambda: self._nudge(self.step), "audio_earlier": lambda: self._nudge(-self.step)}

    def _nudge(self, seconds: float) -> str:
        if self.engine is None:
            return "no audio in this run (start it with --audio)"
        return f"audio offset {self.engine.nudge(seconds) * 1000:+.0f} ms"

    def __call__(self, packet: Packet) -> None:
        if self.engine is not None and packet.failed != CAMERA_LOST:
            self.engine.video_latency((now_ns() - packet.frame.timestamp_ns) / 1e9)

    def close(self) -> None:
        release_engine(self.engine)
        self.engine = None
