"""The sink stage, always last: the frame to every output. The HUD (text, and the camera with the tracked face)
goes only where the user alone sees it (a preview or monitor window), never to what a call or a file gets."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from avatarcam.compositor import draw_camera_inset, draw_hud
from avatarcam.io.sinks import Sink
from avatarcam.stages import CAMERA_LOST, Action, Packet, StageBase


class SinkStage(StageBase):
    name = "sink"

    def __init__(
        self, sinks: list[Sink], hud: bool = False, hud_lines: Callable[[Packet], list[str]] | None = None
    ) -> None:
        self.sinks = sinks
        self.hud = hud
        self._hud_lines = hud_lines or (lambda packet: [])

    @property
    def actions(self) -> Mapping[str, Action]:
        return {"hud": self.toggle_hud}

    def toggle_hud(self) -> None:
        self.hud = not self.hud

    @property
    def closed(self) -> bool:
        """The user closed a window: the session should end."""
        return any(sink.closed for sink in self.sinks)

    def poll_keys(self) -> list[str]:
        return [key for sink in self.sinks if (key := sink.poll_key()) is not None]

    def __call__(self, packet: Packet) -> None:
        """Sends `packet.image`, placed in a recording by the camera frame's capture time."""
        assert packet.image is not None
        with_hud: np.ndarray | None = None
        for sink in self.sinks:
            if sink.private and self.hud:
                if with_hud is None:
                    with_hud = self._with_hud(packet)
                sink.send(with_hud, packet.frame.timestamp_ns)
            else:
                sink.send(packet.image, packet.frame.timestamp_ns)

    def _with_hud(self, packet: Packet) -> np.ndarray:
        assert packet.image is not None
        out = draw_hud(packet.image, self._hud_lines(packet))
        if packet.failed != CAMERA_LOST:
            draw_camera_inset(out, packet.frame.image, None if packet.face is None else packet.face.landmarks)
        return out
