"""Watermark: the invisible, keyed provenance mark in every frame (see `avatarcam.marks.watermark`)."""

from __future__ import annotations

import logging

import cv2
import numpy as np

from avatarcam.config import Config
from avatarcam.marks.payload import new_session
from avatarcam.marks.watermark import Watermark, masking_gain
from avatarcam.stages import Packet, StageBase
from avatarcam.types import Avatar

log = logging.getLogger(__name__)
KEPT_LAYERS = 8  # avatars whose masked layers are kept (each ~3 MB at 960×540)


class WatermarkStage(StageBase):
    name = "watermark"

    def __init__(self, config: Config) -> None:
        self.codec = Watermark(config.marks.watermark_key, config.marks.watermark_strength)
        self.payload = new_session()
        self._layers: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._avatar = ""
        log.debug("watermark: %s", self.payload)

    def prepare(self, avatar: Avatar) -> None:
        self._avatar = avatar.key  # another picture, another masking; an avatar switched back to keeps its own

    @property
    def status(self) -> str:
        return f"session {self.payload.session:04x}"

    def __call__(self, packet: Packet) -> None:
        assert packet.image is not None
        height, width = packet.image.shape[:2]
        key = (self._avatar, width, height)
        if key not in self._layers:  # once per avatar and size: then two saturating adds a frame
            gain = masking_gain(packet.image)  # from its first frame: the backdrop and the portrait stand still
            if len(self._layers) >= KEPT_LAYERS:
                self._layers.pop(next(iter(self._layers)))
            self._layers[key] = self.codec.layer(self.payload, width, height, gain)
        plus, minus = self._layers[key]
        marked = cv2.add(packet.image, plus)  # a new array: the picture may be one a stage holds
        packet.image = cv2.subtract(marked, minus, dst=marked)
