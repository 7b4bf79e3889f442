"""Animate: the animator chosen in config draws the avatar doing the motion; frozen, the last picture holds;
in passthrough, the camera's own centre square goes out instead."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from avatarcam.animators import Animator
from avatarcam.avatar import square_crop
from avatarcam.config import Config
from avatarcam.registry import ANIMATORS
from avatarcam.stages import Action, Packet, StageBase
from avatarcam.types import Avatar, check_image


class AnimateStage(StageBase):
    name = "animate"
    kind = "motion"

    def __init__(self, config: Config) -> None:
        self.animator: Animator = ANIMATORS.create(config.animator.name, config.animator)
        self.size = config.animator.size
        self.frozen = self.passthrough = False
        self._last: np.ndarray | None = None

    @property
    def status(self) -> str:
        if self.frozen:
            return "frozen"
        if self.passthrough:
            return "passthrough"
        said = self.animator.status
        return f"{self.animator.name}: {said}" if said else self.animator.name

    @property
    def actions(self) -> Mapping[str, Action]:
        return {"freeze": self.toggle_freeze, "passthrough": self.toggle_passthrough}

    def toggle_freeze(self) -> None:
        self.frozen = not self.frozen

    def toggle_passthrough(self) -> None:
        self.passthrough = not self.passthrough

    def prepare(self, avatar: Avatar) -> None:
        self.animator.prepare(avatar)
        self._last = avatar.image

    def __call__(self, packet: Packet) -> None:
        if self.frozen and self._last is not None:  # frozen wins over passthrough, as the status says
            packet.image = self._last
            return
        if self.passthrough:  # the camera's centre square: the compositor expects a square and would squash it
            packet.image = square_crop(packet.frame.image, self.size)
            return
        assert packet.motion is not None, "the animate stage needs the retarget stage before it"
        image = self.animator(packet.motion, packet.frame, packet.face)
        check_image(image, self.size, self.size, f"the {self.animator.name} animator's output")
        packet.image = self._last = image

    def close(self) -> None:
        self.animator.close()
