"""Track: the driver's face in the camera frame (landmarks, pose, filtered over time)."""

from __future__ import annotations

from avatarcam.config import Config
from avatarcam.stages import Packet, StageBase
from avatarcam.tracking.tracker import Tracker


class TrackStage(StageBase):
    name = "track"
    kind = "motion"

    def __init__(self, config: Config) -> None:
        self.tracker = Tracker(config.tracker)
        self._seen_face = True

    @property
    def status(self) -> str:
        return "" if self._seen_face else "no face: holding, then easing to neutral"

    def __call__(self, packet: Packet) -> None:
        packet.face = self.tracker(packet.frame)
        self._seen_face = packet.face is not None

    def close(self) -> None:
        self.tracker.close()
