"""Edit: the avatar's attribute edits on the face swap, frame by frame. A portrait animator draws a portrait
that was edited once, when the edit was toggled (see switcher.py); the face swap draws the driver's own frame,
so its swapped face is edited here, every frame, where the driver's face is."""

from __future__ import annotations

import numpy as np

from avatarcam.animators import draws_portrait
from avatarcam.config import Config
from avatarcam.edits.editor import AttributeEditor
from avatarcam.stages import Packet, StageBase


def square_landmarks(landmarks: np.ndarray, frame_shape: tuple[int, ...], size: int) -> np.ndarray:
    """Landmarks of a camera frame in its centre square drawn at size×size (the face swap's output)."""
    h, w = frame_shape[:2]
    side = min(h, w)
    return (landmarks[:, :2] - ((w - side) / 2, (h - side) / 2)) * (size / side)


class EditStage(StageBase):
    name = "edit"

    def __init__(self, config: Config) -> None:
        self.per_frame = not draws_portrait(config.animator.name)
        self.precision, self.threads = config.edits.precision, config.edits.threads
        self._editor: AttributeEditor | None = None

    def __call__(self, packet: Packet) -> None:
        edits = packet.avatar.edits
        if not (self.per_frame and edits and packet.face is not None and packet.image is not None):
            return
        if self._editor is None:
            self._editor = AttributeEditor(self.precision, self.threads)
        square = packet.image
        landmarks = square_landmarks(packet.face.landmarks, packet.frame.image.shape, square.shape[0])
        packet.image = self._editor.edit(square, landmarks, edits)
