"""Compose: the avatar's square letterboxed into the output frame over a blurred backdrop of the avatar."""

from __future__ import annotations

import numpy as np

from avatarcam.compositor import letterbox, make_background
from avatarcam.config import Config
from avatarcam.stages import Packet, StageBase
from avatarcam.types import Avatar


class ComposeStage(StageBase):
    name = "compose"

    def __init__(self, config: Config) -> None:
        self.width, self.height = config.output.width, config.output.height
        self._backdrop: np.ndarray | None = None

    def prepare(self, avatar: Avatar) -> None:
        self._backdrop = make_background(avatar.image, self.width, self.height)

    def __call__(self, packet: Packet) -> None:
        assert packet.image is not None
        packet.image = letterbox(packet.image, self.width, self.height, self._backdrop)
