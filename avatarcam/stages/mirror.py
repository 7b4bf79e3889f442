"""Mirror: flips the frame left to right, on a setting and a hotkey (the smallest image stage: a model for
new ones)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from avatarcam.config import Config
from avatarcam.stages import Action, Packet, StageBase


class MirrorStage(StageBase):
    name = "mirror"

    def __init__(self, config: Config) -> None:
        self.on = config.output.mirror

    @property
    def actions(self) -> Mapping[str, Action]:
        return {"mirror": self.toggle}

    def toggle(self) -> None:
        self.on = not self.on

    def __call__(self, packet: Packet) -> None:
        if self.on and packet.image is not None:
            packet.image = np.ascontiguousarray(packet.image[:, ::-1])
