"""Runs a list of stages over packets, one after another: timings and failures counted per stage, and a stage
prepared for an avatar before the first packet that carries it."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from avatarcam.config import Config
from avatarcam.registry import STAGES
from avatarcam.stages import Packet, Stage
from avatarcam.types import Avatar

log = logging.getLogger(__name__)


@dataclass
class StageTimes:
    """Per-stage durations in milliseconds, one entry per frame."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, stage: str, ms: float) -> None:
        self.samples.setdefault(stage, []).append(ms)

    def summary(self) -> dict[str, tuple[float, float]]:
        return {k: (float(np.median(v)), float(np.percentile(v, 95))) for k, v in self.samples.items() if v}


MOTION_STAGES = ("track", "retarget", "animate", "draw")  # frame in, the avatar's square out: what eval measures


def build_stages(config: Config, names: Iterable[str] | None = None) -> list[Stage]:
    """The stages `names` (default: `config.chain.stages`), built from the stage registry."""
    names = list(config.chain.stages if names is None else names)
    if "animate" in names and "draw" not in names[names.index("animate") :]:
        raise ValueError("the chain's animate stage needs the draw stage after it (chain.stages)")
    return [STAGES.create(name, config) for name in names]


def find_stage(stages: Iterable[Stage], name: str) -> Stage:
    """The stage called `name`, or a KeyError that lists the names there are."""
    stages = list(stages)
    for stage in stages:
        if stage.name == name:
            return stage
    raise KeyError(f"no stage '{name}' (stages: {', '.join(s.name for s in stages)})")


def motion_chain(config: Config) -> Chain:
    """Track → retarget → animate → draw: the avatar's square for each camera frame, nothing composed around it."""
    return Chain(build_stages(config, MOTION_STAGES))


class Chain:
    """Stages run in order on the caller's thread. One bad frame never ends a call: the failing stage is
    logged and counted, and the frame goes on with the last good picture (see `Stage.kind`)."""

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages
        self.times = StageTimes()
        self.errors: Counter[str] = Counter()
        self._avatar: Avatar | None = None
        self._held: dict[int, np.ndarray] = {}  # each stage's last good picture

    def stage(self, name: str) -> Stage:
        return find_stage(self.stages, name)

    def prepare(self, avatar: Avatar) -> None:
        for stage in self.stages:
            stage.prepare(avatar)
        self._avatar = avatar
        self._held.clear()

    def __call__(self, packet: Packet) -> Packet:
        if packet.avatar is not self._avatar:
            self.prepare(packet.avatar)
        for index, stage in enumerate(self.stages):
            if packet.failed and stage.kind == "motion":
                self._stand_in(index, packet)
                continue
            start = time.perf_counter()
            try:
                stage(packet)
            except Exception:  # one bad frame must never end a call: log it, count it, show the last good picture
                self.errors[stage.name] += 1
                log.exception("frame %d: the %s stage failed", packet.frame.index, stage.name)
                packet.failed = packet.failed or stage.name
                self._stand_in(index, packet)
                continue
            ms = (time.perf_counter() - start) * 1e3
            packet.times[stage.name] = ms
            self.times.add(stage.name, ms)
            if packet.image is not None:
                self._held[index] = packet.image
        return packet

    def _stand_in(self, index: int, packet: Packet) -> None:
        """The picture stage `index` last made stands in for the one it could not make now; before any, the
        avatar's own portrait."""
        held = self._held.get(index)
        if held is not None:
            packet.image = held
        elif packet.image is None:
            packet.image = packet.avatar.image

    def close(self) -> None:
        for stage in self.stages:
            stage.close()
