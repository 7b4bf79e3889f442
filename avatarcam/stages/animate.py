"""Animate: the animator chosen in config plans the avatar doing the motion (its geometry, its model of the
moment); the draw stage after it makes the pixels, on another thread when the chain is pipelined."""

from __future__ import annotations

from functools import partial

from avatarcam.animators import Animator
from avatarcam.config import Config
from avatarcam.registry import ANIMATORS
from avatarcam.stages import Packet, StageBase
from avatarcam.types import Avatar


class AnimateStage(StageBase):
    name = "animate"
    kind = "motion"

    def __init__(self, config: Config) -> None:
        self.animator: Animator = ANIMATORS.create(config.animator.name, config.animator)

    @property
    def status(self) -> str:
        said = self.animator.status
        return f"{self.animator.name}: {said}" if said else self.animator.name

    def prepare(self, avatar: Avatar) -> None:
        self.animator.prepare(avatar)

    def __call__(self, packet: Packet) -> None:
        assert packet.motion is not None, "the animate stage needs the retarget stage before it"
        plan = self.animator.plan(packet.motion, packet.frame, packet.face)
        packet.plan = (self.animator.name, partial(self.animator.draw, plan))

    def close(self) -> None:
        self.animator.close()
