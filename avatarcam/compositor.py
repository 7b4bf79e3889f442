"""The compositor: the avatar's square placed in the camera frame a call expects (letterbox over a blurred
backdrop), and the HUD the user alone sees (text, and the camera with the tracked face). Used by `run` and
`render` alike, through the compose stage and the sink stage."""

from __future__ import annotations

import cv2
import numpy as np

from avatarcam.tracking import topology as T

INSET_WIDTH = 0.25  # the camera thumbnail in the HUD, as a share of the frame's width
TRACKED_OUTLINES = (T.FACE_OVAL, T.RIGHT_EYE, T.LEFT_EYE, T.OUTER_LIPS)


def letterbox(square: np.ndarray, width: int, height: int, background: np.ndarray | None = None) -> np.ndarray:
    """The square avatar image scaled to fit and centred in a width×height frame, sides from `background`."""
    side = min(width, height)
    if square.shape[0] != side:
        interpolation = cv2.INTER_AREA if square.shape[0] > side else cv2.INTER_LINEAR
        square = cv2.resize(square, (side, side), interpolation=interpolation)
    if background is not None and background.shape == (height, width, 3):
        out = background.copy()
    else:
        out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - side) // 2, (height - side) // 2
    out[y0 : y0 + side, x0 : x0 + side] = square
    return out


def make_background(square: np.ndarray, width: int, height: int) -> np.ndarray:
    """The avatar stretched to cover width×height, heavily blurred and dimmed: letterbox sides, built once."""
    big = max(width, height)
    cover = cv2.resize(square, (big, big))
    x0, y0 = (cover.shape[1] - width) // 2, (cover.shape[0] - height) // 2
    cover = cover[y0 : y0 + height, x0 : x0 + width]
    # Blurring a small copy and scaling back up is a wide blur for a fraction of the cost.
    small = cv2.resize(cover, (max(1, width // 16), max(1, height // 16)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 2.0)
    blurred = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    # Dimmed so the sharp centre reads as the subject.
    return (blurred.astype(np.uint16) * 3 // 5).astype(np.uint8)


def draw_hud(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """A copy of `image` with `lines` in a translucent box at the top left."""
    out = image.copy()
    if not lines:
        return out
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, out.shape[0] / 1080), 1
    (_, text_h), baseline = cv2.getTextSize("Ag", font, scale, thickness)
    line_h = text_h + baseline + 4
    text_w = max(cv2.getTextSize(line, font, scale, thickness)[0][0] for line in lines)
    pad = 6
    box = out[: min(out.shape[0], len(lines) * line_h + 2 * pad), : min(out.shape[1], text_w + 2 * pad)]
    box //= 2  # darken in place: translucent without a blend buffer
    for i, line in enumerate(lines):
        origin = (pad, pad + text_h + i * line_h)
        cv2.putText(out, line, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def draw_camera_inset(image: np.ndarray, camera: np.ndarray, landmarks: np.ndarray | None) -> None:
    """Puts the driver's camera frame, small, in the bottom-right corner of `image` (in place), with the tracked
    face outlined: the user sees at a glance what the tracker sees and whether it holds."""
    h, w = image.shape[:2]
    width = max(2, int(w * INSET_WIDTH))
    factor = width / camera.shape[1]
    height = min(h, max(2, round(camera.shape[0] * factor)))
    thumb = cv2.resize(camera, (width, height), interpolation=cv2.INTER_AREA)
    if landmarks is not None:
        outlines = [np.round(landmarks[ids, :2] * factor).astype(np.int32) for ids in TRACKED_OUTLINES]
        cv2.polylines(thumb, outlines, True, (0, 255, 0), 1, cv2.LINE_AA)
    image[h - height :, w - width :] = thumb
