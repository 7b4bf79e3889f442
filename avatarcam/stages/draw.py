"""Draw: the animator's plan of the frame made into the avatar's picture, checked at the seam (size, dtype).
Frozen, the last picture holds; in passthrough, the camera's own centre square goes out instead."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from avatarcam.avatar import square_crop
from avatarcam.config import Config
from avatarcam.stages import Action, Packet, StageBase
from avatarcam.types import Avatar, check_image


class DrawStage(StageBase):
    name = "draw"
    kind = "motion"

    def __init__(self, config: Config) -> None:
        self.size = config.animator.size
        self.frozen = self.passthrough = False
        self._last: np.ndarray | None = None

    @property
    def status(self) -> str:
        return "frozen" if self.frozen else "passthrough" if self.passthrough else ""

    @property
    def actions(self) -> Mapping[str, Action]:
        return {"freeze": self.toggle_freeze, "passthrough": self.toggle_passthrough}

    def toggle_freeze(self) -> None:
        self.frozen = not self.frozen

    def toggle_passthrough(self) -> None:
        self.passthrough = not self.passthrough

    def prepare(self, avatar: Avatar) -> None:
        self._last = avatar.image

    def __call__(self, packet: Packet) -> None:
        if self.frozen and self._last is not None:  # frozen wins over passthrough, as the status says
            packet.image = self._last
            return
        if self.passthrough:  # the camera's centre square: the compositor expects a square and would squash it
            packet.image = square_crop(packet.frame.image, self.size)
            return
        assert packet.plan is not None, "the draw stage needs the animate stage before it"
        animator, draw = packet.plan
        image = draw()
        check_image(image, self.size, self.size, f"the {animator} animator's output")
        packet.image = self._last = image
