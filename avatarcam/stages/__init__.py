"""The frame path as a list of stages: one `Packet` per frame flows through track → retarget → animate → draw →
image stages (edit, compose, mirror, then the marks: watermark, badge) → the sink.

Every stage speaks one small protocol (`Stage`); `StageBase` gives the defaults. Stages are built by name from
`avatarcam.registry.STAGES`, in the order `config.chain.stages` lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from avatarcam.types import Avatar, Face, Frame, Motion

CAMERA_LOST = "camera"  # `Packet.failed` of a stand-in sent while no camera frame comes

# A hotkey action: runs on the loop's thread; may return a one-line notice for the HUD.
Action = Callable[[], str | None]


@dataclass
class Packet:
    """One frame on its way through the stages: what was captured, what each stage made of it."""

    frame: Frame  # the driver's camera frame, as captured
    avatar: Avatar  # the avatar this frame is drawn with (a switch takes effect from the packet that carries it)
    face: Face | None = None  # the tracked face (None: no face in the frame)
    motion: Motion | None = None  # what the avatar must do
    plan: Any = None  # the animator's plan of the frame, for the draw stage
    image: np.ndarray | None = None  # the picture so far: the avatar's square, then the composed frame
    times: dict[str, float] = field(default_factory=dict)  # milliseconds per stage
    notices: list[str] = field(default_factory=list)  # one-line messages for the HUD
    failed: str = ""  # the first stage that failed on this frame ("" if none)


class Stage(Protocol):
    name: str
    # "motion" stages make the avatar's picture from the frame (track, retarget, animate, draw); "image" stages change
    # the picture (edit, compose, mirror, mark). After a motion stage fails the frame's other motion stages are
    # skipped and the last good picture stands in; a failed image stage is passed over.
    kind: Literal["motion", "image"]

    @property
    def status(self) -> str:
        """A few words for the HUD ("" when there is nothing to say)."""
        ...

    @property
    def actions(self) -> Mapping[str, Action]:
        """Named actions a hotkey can trigger."""
        ...

    def prepare(self, avatar: Avatar) -> None:
        """Per-avatar set-up; called before the first packet with a new avatar."""
        ...

    def __call__(self, packet: Packet) -> None:
        """Does this stage's part of the packet, in place."""
        ...

    def close(self) -> None: ...


class StageBase:
    """Defaults: an image stage with nothing to prepare, say or trigger."""

    name: ClassVar[str] = ""
    kind: ClassVar[Literal["motion", "image"]] = "image"

    @property
    def status(self) -> str:
        return ""

    @property
    def actions(self) -> Mapping[str, Action]:
        return {}

    def prepare(self, avatar: Avatar) -> None:
        pass

    def close(self) -> None:
        pass
