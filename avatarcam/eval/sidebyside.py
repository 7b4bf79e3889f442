"""Side-by-side comparison grids: one labelled column per sequence, one row per chosen frame."""

from __future__ import annotations

import cv2
import numpy as np

from avatarcam.avatar import square_crop

_LABEL_HEIGHT = 24
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def label_strip(name: str, width: int) -> np.ndarray:
    strip = np.zeros((_LABEL_HEIGHT, width, 3), dtype=np.uint8)
    # Shrink long names so they stay inside their own column.
    scale = 0.5
    while scale > 0.25 and cv2.getTextSize(name, _FONT, scale, 1)[0][0] > width - 8:
        scale -= 0.05
    cv2.putText(strip, name, (4, _LABEL_HEIGHT - 8), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def side_by_side(columns: dict[str, list[np.ndarray]], frame_indices: list[int], tile: int = 160) -> np.ndarray:
    """RGB uint8 grid of tile x tile frames under a label strip; frames past a sequence's end stay black."""
    if not columns or not frame_indices:
        raise ValueError("side_by_side needs at least one column and one frame index")
    blank = np.zeros((tile, tile, 3), dtype=np.uint8)
    stacks = []
    for name, frames in columns.items():
        tiles = [square_crop(frames[i], tile) if 0 <= i < len(frames) else blank for i in frame_indices]
        stacks.append(np.vstack([label_strip(name, tile), *tiles]))
    return np.hstack(stacks)
