"""Finding a tile that repeats over a picture: its period in x and in y, whatever scaling the picture went
through, and all its repeats folded into one."""

from __future__ import annotations

import math

import cv2
import numpy as np

SCALES = (0.4, 1.6)  # the scale factors the period search covers
CANDIDATES = 2  # periods kept per axis (besides the nominal one)


def periods(mean: np.ndarray, tile: int) -> tuple[list[float], list[float]]:
    """The likeliest periods of a `tile`-pixel tile in x and in y (pixels), from the autocorrelation of the
    picture's detail `mean`."""
    height, width = mean.shape
    # Zero-padded: a linear autocorrelation (a cyclic one would wrap a cropped picture onto itself out of phase),
    # over the spectrum's magnitude rather than its power (flatter: the picture's own detail weighs less).
    spectrum = np.abs(np.fft.rfft2(mean, s=(2 * height, 2 * width)))
    autocorrelation = np.fft.irfft2(spectrum, s=(2 * height, 2 * width))
    return _peaks(autocorrelation[0, :width] / (width - np.arange(width)), tile), _peaks(
        autocorrelation[:height, 0] / (height - np.arange(height)), tile
    )


def _peaks(line: np.ndarray, tile: int) -> list[float]:
    """The likeliest periods in an autocorrelation: its highest local maxima in the searched range, each refined
    to a fraction of a pixel at the farthest multiple of it the line holds, and the nominal period."""
    low = int(tile * SCALES[0])
    high = min(int(tile * SCALES[1]), len(line) // 2)
    maxima = [lag for lag in range(low, high + 1) if line[lag] >= max(line[lag - 1], line[lag + 1])]
    found = []
    for lag in sorted(maxima, key=lambda lag: -line[lag])[:CANDIDATES]:
        period = _vertex(line, lag)
        multiple = max(1, int(len(line) * 0.6 / period))
        for k in range(2, multiple + 1):  # each multiple's peak, found near the last estimate, refines it
            near = int(round(k * period))
            window = line[near - 2 : near + 3]
            if len(window) == 5:
                period = _vertex(line, near - 2 + int(np.argmax(window))) / k
        found.append(period)
    if all(abs(period - tile) > 1 for period in found):  # unscaled: a picture too small for its peak to stand out
        found.append(float(tile))
    return found


def _vertex(line: np.ndarray, lag: int) -> float:
    """The sub-pixel position of the peak at `lag` (a parabola through it and its neighbours)."""
    left, centre, right = line[lag - 1], line[lag], line[min(lag + 1, len(line) - 1)]
    curvature = left - 2 * centre + right
    return lag + (0.5 * (left - right) / curvature if curvature < 0 else 0.0)


def fold(mean: np.ndarray, period: tuple[float, float], tile: int) -> np.ndarray:
    """The picture resampled so that its period is `tile`, and all its tiles averaged into one (tile²)."""
    sx, sy = tile / period[0], tile / period[1]
    height, width = mean.shape
    size = (max(1, int(width * sx)), max(1, int(height * sy)))
    resampled = cv2.warpAffine(mean, np.float32([[sx, 0, 0], [0, sy, 0]]), size, flags=cv2.INTER_LINEAR)
    rows, cols = math.ceil(size[1] / tile), math.ceil(size[0] / tile)
    padded = np.zeros((rows * tile, cols * tile), np.float32)
    weight = np.zeros_like(padded)
    padded[: size[1], : size[0]] = resampled
    weight[: size[1], : size[0]] = 1
    total = padded.reshape(rows, tile, cols, tile).sum(axis=(0, 2))
    counts = weight.reshape(rows, tile, cols, tile).sum(axis=(0, 2))
    return total / np.maximum(counts, 1)
