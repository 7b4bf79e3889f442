"""Colour measures shared by the animators and the evaluation (OpenCV's 8-bit Lab, as ../shared/EVAL.md uses)."""

from __future__ import annotations

import cv2
import numpy as np

GREY_CHROMA = 6.0  # a portrait whose 99th-percentile chroma is below this is greyscale (a black-and-white photo)


def to_lab(image_rgb: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit Lab as float (L 0-255, a and b centred on 0 by taking off 128)."""
    lab = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2Lab).astype(np.float32)
    lab[..., 1:] -= 128.0
    return lab


def chroma(image_rgb: np.ndarray) -> np.ndarray:
    """Per-pixel chroma sqrt(a² + b²) in 8-bit Lab units."""
    lab = to_lab(image_rgb)
    return np.hypot(lab[..., 1], lab[..., 2])


def is_greyscale(image_rgb: np.ndarray) -> bool:
    """The 99th-percentile chroma of the whole image is below GREY_CHROMA."""
    return float(np.percentile(chroma(image_rgb), 99)) < GREY_CHROMA


def grey(rgb: np.ndarray) -> np.ndarray:
    """Float RGB (any shape ending in 3) to its luminance (ITU-R BT.601) in all three channels."""
    luma = np.asarray(rgb, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(luma[..., None], 3, axis=-1)
