"""Badge: a small "AI avatar" label drawn last on every frame. Its hotkey hides it, never silently: the frames
sent then say for a few seconds that the user hid it (the HUD alone would tell only the user)."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from avatarcam.config import Config
from avatarcam.stages import Action, Packet, StageBase

HIDDEN_NOTICE = "AI avatar: badge hidden by the user"
FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_label(image: np.ndarray, text: str, corner: str, opacity: float) -> None:
    """`text` in white on a dark box in a corner of `image` (in place), the box at `opacity`, sized to the frame."""
    height, width = image.shape[:2]
    scale = max(0.35, height / 900)
    thickness = max(1, round(scale * 2))
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(3, round(text_h * 0.45))
    box_w, box_h = min(width, text_w + 2 * pad), min(height, text_h + baseline + 2 * pad)
    margin = max(2, round(height * 0.02))
    x = margin if corner.endswith("left") else max(0, width - box_w - margin)
    y = margin if corner.startswith("top") else max(0, height - box_h - margin)
    region = image[y : y + box_h, x : x + box_w]
    label = np.full_like(region, 24)
    cv2.putText(label, text, (pad, pad + text_h), FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    cv2.addWeighted(label, opacity, region, 1 - opacity, 0, dst=region)


class BadgeStage(StageBase):
    name = "badge"

    def __init__(self, config: Config) -> None:
        marks = config.marks
        self.text, self.corner, self.opacity = marks.badge_text, marks.badge_corner, marks.badge_opacity
        self.notice_frames = max(1, round(marks.notice_seconds * config.output.fps))
        self.on = True
        self._notice_left = 0  # frames that still carry the notice
        if not marks.badge:
            self.hide()  # off by the settings: said in the first frames just as when hidden by the hotkey

    @property
    def status(self) -> str:
        return f"'{self.text}' shown" if self.on else "hidden"

    @property
    def actions(self) -> Mapping[str, Action]:
        return {"badge": self.toggle}

    def hide(self) -> None:
        self._notice_left = self.notice_frames  # first: a frame drawn between the two lines still says something
        self.on = False

    def toggle(self) -> str:
        if self.on:
            self.hide()
            return f"AI badge hidden: the call sees '{HIDDEN_NOTICE}' for {self.notice_frames} frames"
        self.on, self._notice_left = True, 0
        return "AI badge shown"

    def __call__(self, packet: Packet) -> None:
        assert packet.image is not None
        if self.on:
            text, opacity = self.text, self.opacity
        elif self._notice_left > 0:
            self._notice_left -= 1
            text, opacity = HIDDEN_NOTICE, 1.0
        else:
            return
        packet.image = packet.image.copy()  # the picture may be one a stage holds
        draw_label(packet.image, text, self.corner, opacity)
