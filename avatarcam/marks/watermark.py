"""The invisible watermark: a keyed spread-spectrum pattern in the luminance, tiled over the frame.

One tile (TILE² pixels, CELLS² cells of CELL² pixels) holds sync cells, whose signs only the key decides, and
the payload's code bits (a convolutional code: `coding`), one a cell; a keyed permutation places them and keyed
signs scramble them. The cells are smoothed into a mid-frequency pattern that scaling and a call's compression
keep, and added to R, G and B alike at an RMS of `strength` grey levels (precomputed per frame size: two
saturating uint8 operations a frame).

Reading back needs no knowledge of the frame's size or position: the luminance's fine detail is averaged over the
frames of a window (the pattern stands still, the picture moves), the tile's period in x and in y is read off the
autocorrelation's peaks (scaling, even unequal in x and y, changes it; cropping shifts its phase only), the
picture is resampled to the nominal period and every tile folded onto one, the sync cells' cyclic shift is found
by cross-correlation, and the code bits are decoded (Viterbi) and checked by their CRC.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from avatarcam.marks import coding
from avatarcam.marks import payload as code
from avatarcam.marks.payload import Payload
from avatarcam.marks.tiling import SCALES, fold, periods

CELLS = 16  # cells per tile side
CELL = 8  # pixels per cell side
TILE = CELLS * CELL
CODED = coding.coded_length(code.CODE_BITS)  # cells of the channel code: one code bit each
SYNC = CELLS * CELLS - CODED  # the cells left over
SMOOTH_SIGMA = 2.5  # of the cells' edges, in pixels: keeps the pattern's energy where compression keeps detail
DETAIL_SIGMA = 4.0  # reading: the picture's detail is what a blur this wide leaves out
# Reading weighs the detail by its local contrast: flat areas (a blurred backdrop) carry the pattern almost
# alone, busy ones (hair, edges) mostly the picture. The floor is about the pattern's own contrast there.
LOCAL_SIGMA = 8.0
CONTRAST_FLOOR = 1.0
# Perceptual masking: the pattern's gain follows the picture's local contrast (grey levels) within this range.
MASK_CONTRAST = 3.0
MASK_RANGE = (0.55, 1.45)
REFINE = 0.016  # each period is refined within this share of itself
# Sync peaks tried per pair of periods. The CRC decides, so a chance match in a window stays below
# (tiling.CANDIDATES + 1)²·SHIFTS / 65,536 = 0.04%.
SHIFTS = 3
MAX_SIDE = 1024  # larger pictures (a call recorded at 1080p) are halved until they fit: the period stays in range
MIN_SIDE = 2 * int(TILE * SCALES[0])  # pixels: at least two tiles at the smallest scale searched


def masking_gain(image: np.ndarray) -> np.ndarray:
    """Where the pattern may be stronger and where weaker (height×width float32, mean 1 over the frame): weak on
    flat areas, where the eye sees a faint texture (a blurred backdrop), strong on detail, which hides it."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    detail = gray - cv2.GaussianBlur(gray, (0, 0), 2.0)
    contrast = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), LOCAL_SIGMA))
    gain = np.clip(contrast / MASK_CONTRAST, MASK_RANGE[0], MASK_RANGE[1])
    return gain / float(np.sqrt(np.mean(gain**2)))  # the same energy over the frame: the same PSNR


class WatermarkError(ValueError):
    """A picture the watermark cannot be read from (too small)."""


@dataclass(frozen=True)
class Detection:
    payload: Payload | None  # None: not found
    confidence: float  # the share of code cells that agree with the payload found (chance: 0.5; 0 when not found)
    sync_z: float  # the sync peak read, in standard deviations of the cross-correlation
    period: tuple[float, float]  # the tile's period found, in pixels (x, y)

    @property
    def found(self) -> bool:
        return self.payload is not None


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"avatarcam-watermark:{key}".encode()).digest()[:8], "big")


def _wrap_blur(tile: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of a tile that repeats: its edges blur into the opposite ones."""
    pad = int(4 * sigma) + 1
    padded = np.pad(tile, pad, mode="wrap")
    return cv2.GaussianBlur(padded, (0, 0), sigma)[pad:-pad, pad:-pad]


def _detail(gray: np.ndarray) -> np.ndarray:
    """The fine detail of a luminance image over its local contrast."""
    detail = gray - cv2.GaussianBlur(gray, (0, 0), DETAIL_SIGMA)
    contrast = cv2.GaussianBlur(detail * detail, (0, 0), LOCAL_SIGMA) + CONTRAST_FLOOR**2
    return detail / np.sqrt(contrast)


class Watermark:
    """The codec for one key: the pattern of a payload, and reading a payload back from frames."""

    def __init__(self, key: str, strength: float = 2.2) -> None:
        rng = np.random.default_rng(_seed(key))
        order = rng.permutation(CELLS * CELLS)
        self.sync_cells = order[:SYNC]
        self.data_cells = order[SYNC:]
        self.signs = rng.choice(np.array([-1.0, 1.0], np.float32), CELLS * CELLS)
        self.strength = strength
        sync = np.zeros(CELLS * CELLS, np.float32)
        sync[self.sync_cells] = self.signs[self.sync_cells]
        self._reference_fft = np.conj(np.fft.rfft2(self._detail_tile(self._detail_tile(self._smooth(sync)))))

    def _smooth(self, cells: np.ndarray) -> np.ndarray:
        """Cell values (CELLS² ±1 or 0) as a smooth TILE² pattern."""
        blocks = np.kron(cells.reshape(CELLS, CELLS), np.ones((CELL, CELL), np.float32))
        return _wrap_blur(blocks.astype(np.float32), SMOOTH_SIGMA)

    @staticmethod
    def _detail_tile(tile: np.ndarray) -> np.ndarray:
        return tile - _wrap_blur(tile, DETAIL_SIGMA)

    def tile(self, message: Payload) -> np.ndarray:
        """The pattern of one tile, float32 TILE², RMS 1: the smoothed cells without the coarse part that reading
        discards (so all of the pattern's strength goes where it is read)."""
        cells = self.signs.copy()
        cells[self.data_cells] *= coding.encode(code.encode(message)).astype(np.float32) * 2 - 1
        pattern = self._detail_tile(self._smooth(cells))
        return pattern / float(np.sqrt(np.mean(pattern**2)))

    def layer(
        self, message: Payload, width: int, height: int, gain: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The pattern over a `width`×`height` frame as what to add and what to subtract (uint8, 3 channels);
        `gain` (height×width) scales it place by place (`masking_gain`)."""
        reps = (math.ceil(height / TILE), math.ceil(width / TILE))
        levels = np.tile(self.tile(message), reps)[:height, :width] * self.strength
        levels = np.rint(levels if gain is None else levels * gain)
        plus = np.clip(levels, 0, 255).astype(np.uint8)
        minus = np.clip(-levels, 0, 255).astype(np.uint8)
        return cv2.merge([plus] * 3), cv2.merge([minus] * 3)

    def detect(self, frames: Iterable[np.ndarray]) -> Detection:
        """The payload in `frames` (RGB uint8, one size; a window of a video, or one image), if there is one."""
        total: np.ndarray | None = None
        count = 0
        for frame in frames:
            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
            while max(gray.shape) > MAX_SIDE:
                gray = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
            detail = _detail(gray)
            total = detail if total is None else total + detail
            count += 1
        if total is None:
            raise WatermarkError("no frames to read the watermark from")
        height, width = total.shape
        if min(height, width) < MIN_SIDE:
            raise WatermarkError(
                f"the picture is {width}×{height}: the watermark needs at least {MIN_SIDE}×{MIN_SIDE} pixels "
                f"(two of its tiles at the smallest scale read)"
            )
        mean = total / count
        best = Detection(None, 0.0, 0.0, (0.0, 0.0))
        for coarse in itertools.product(*periods(mean, TILE)):
            period = self._refine(mean, coarse)
            found = self._read(fold(mean, period, TILE), period)
            if found.found:
                return found
            best = max(best, found, key=lambda d: d.sync_z)
        return best

    def _sync(self, folded: np.ndarray) -> np.ndarray:
        """The cross-correlation of a folded tile with the sync cells' pattern, over every cyclic shift."""
        return np.fft.irfft2(np.fft.rfft2(folded) * self._reference_fft, s=folded.shape)

    def _refine(self, mean: np.ndarray, period: tuple[float, float]) -> tuple[float, float]:
        """The period near `period` whose fold shows the sharpest sync peak: an autocorrelation places a short
        picture's period a few tenths of a pixel off, enough to smear the far tiles of the fold."""

        def sharpness(candidate: tuple[float, float]) -> float:
            correlation = self._sync(fold(mean, candidate, TILE))
            return float((correlation.max() - correlation.mean()) / (correlation.std() + 1e-12))

        for reach in (REFINE, REFINE / 4):  # coarse, then fine
            for axis in (0, 1):  # one axis at a time: the two hardly interact
                options = [
                    tuple(p * (1 + step) if i == axis else p for i, p in enumerate(period))
                    for step in np.linspace(-reach, reach, 5)
                ]
                period = max(options, key=sharpness)  # type: ignore[assignment]
        return period

    def _read(self, folded: np.ndarray, period: tuple[float, float]) -> Detection:
        """The payload in a folded tile: tried at the strongest sync peaks, the first whose CRC holds."""
        correlation = self._sync(folded)
        spread = float(correlation.std()) + 1e-12
        peaks = np.argsort(correlation, axis=None)[::-1][:SHIFTS]
        sync_z = float((correlation.flat[peaks[0]] - correlation.mean()) / spread)
        for peak in peaks:
            dy, dx = divmod(int(peak), TILE)
            aligned = np.roll(folded, (-dy, -dx), axis=(0, 1))
            inner = slice(CELL // 4, CELL - CELL // 4)
            soft = aligned.reshape(CELLS, CELL, CELLS, CELL)[:, inner, :, inner].mean(axis=(1, 3)).ravel() * self.signs
            bits = coding.decode(soft[self.data_cells])
            message = code.decode(bits)
            if message is None:
                continue
            codeword = coding.encode(bits).astype(np.float32) * 2 - 1
            confidence = float(np.mean(soft[self.data_cells] * codeword > 0))
            z = float((correlation.flat[peak] - correlation.mean()) / spread)
            return Detection(message, confidence, z, period)
        return Detection(None, 0.0, sync_z, period)
