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


class WatermarkStage(StageBase):
    name = "watermark"

    def __init__(self, config: Config) -> None:
        self.codec = Watermark(config.marks.watermark_key, config.marks.watermark_strength)
        self.payload = new_session()
        self._layers: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        log.debug("watermark: %s", self.payload)

    def prepare(self, avatar: Avatar) -> None:
        self._layers.clear()  # another picture: another masking

    @property
    def status(self) -> str:
        return f"session {self.payload.session:04x}"

    def __call__(self, packet: Packet) -> None:
        assert packet.image is not None
        height, width = packet.image.shape[:2]
        if (width, height) not in self._layers:  # once per avatar and size: then two saturating adds a frame
            gain = masking_gain(packet.image)  # from the first frame: the backdrop and the portrait stand still
            self._layers[(width, height)] = self.codec.layer(self.payload, width, height, gain)
        plus, minus = self._layers[(width, height)]
        marked = cv2.add(packet.image, plus)  # a new array: the picture may be one a stage holds
        packet.image = cv2.subtract(marked, minus, dst=marked)
