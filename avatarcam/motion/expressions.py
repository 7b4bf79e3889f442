"""Expressions drawn onto a face's canonical shape (pose removed, unit inter-ocular distance), in place: the demo
motion's script and the voice-driven mouth both speak these."""

from __future__ import annotations

import numpy as np

from avatarcam.tracking import topology as T

LOWER_LIP = [146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324]
UPPER_LIDS = [246, 161, 160, 159, 158, 157, 173, 466, 388, 387, 386, 385, 384, 398]
LOWER_LIDS = [7, 163, 144, 145, 153, 154, 155, 249, 390, 373, 374, 380, 381, 382]
JAW_DROP = 0.2  # iod: how far the chin drops with the mouth wide open
CORNER_REACH = 0.12  # points this near a mouth corner (iod) move with it


def open_mouth(shape: np.ndarray, amount: float) -> None:
    """Drops the jaw: points below the mouth corners move down by up to `amount` · JAW_DROP, the chin most."""
    chin_y, corner_y = shape[T.CHIN, 1], shape[[T.MOUTH_RIGHT, T.MOUTH_LEFT], 1].mean()
    jaw = np.clip((shape[:, 1] - corner_y) / (chin_y - corner_y), 0, 1)
    jaw[LOWER_LIP] = 1.0
    below = (np.abs(shape[:, 0]) < 0.9) & (shape[:, 1] > corner_y - 0.02)
    shape[below, 1] += JAW_DROP * amount * jaw[below]


def close_eyes(shape: np.ndarray, amount: float) -> None:
    lids = shape[LOWER_LIDS, 1] - shape[UPPER_LIDS, 1]
    shape[UPPER_LIDS, 1] += 0.9 * amount * lids


def move_corners(shape: np.ndarray, outward: float, up: float) -> None:
    """The mouth corners and the skin around them: out (negative: in, pursed) and up, in iod."""
    for corner, side in ((T.MOUTH_RIGHT, -1), (T.MOUTH_LEFT, 1)):
        near = np.linalg.norm(shape[:, :2] - shape[corner, :2], axis=1) < CORNER_REACH
        shape[near, 0] += side * outward
        shape[near, 1] -= up


def smile(shape: np.ndarray, amount: float) -> None:
    move_corners(shape, 0.06 * amount, 0.06 * amount)
