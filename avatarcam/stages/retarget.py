"""Retarget: the driver's change from its own neutral, as motion of the avatar's own face."""

from __future__ import annotations

from collections.abc import Mapping

from avatarcam.config import Config
from avatarcam.motion.retarget import Retargeter
from avatarcam.stages import Action, Packet, StageBase
from avatarcam.types import Avatar


class RetargetStage(StageBase):
    name = "retarget"
    kind = "motion"

    def __init__(self, config: Config) -> None:
        self.retargeter = Retargeter(config.retarget)

    @property
    def actions(self) -> Mapping[str, Action]:
        return {"reset_reference": self.reset_reference}

    def reset_reference(self) -> str:
        self.retargeter.reset_reference()
        return "reference reset: hold a neutral face"

    def prepare(self, avatar: Avatar) -> None:
        self.retargeter.set_avatar(avatar.face, avatar.size)

    def __call__(self, packet: Packet) -> None:
        packet.motion = self.retargeter(packet.face, packet.frame)
