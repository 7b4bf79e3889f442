"""The mouth interior the warp lays into an open mouth: the driver's own teeth, tongue and cavity, made to belong to
the avatar's face: its light, no more colour than its own lips, its softness, and a soft edge under its own lips."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarcam.colour import chroma
from avatarcam.tracking.geometry import face_mask

# Bounds on the lips' lightness ratio, avatar to driver (a dim estimate of the driver's lips must not blow the
# interior up).
LIP_LIGHT_RANGE = (0.5, 2.0)
# The interior's blur stops here (px at 256²): past it the teeth no longer stand out from the dark, and an open
# mouth stops reading as one (cross mouth correlation on five low-resolution portraits 0.83–0.91 → 0.68–0.77
# uncapped, 0.81–0.91 at 1 px).
MAX_INTERIOR_BLUR = 1.0
# The interior's chroma is held under the avatar's own lip chroma (a driver's lipstick, or a hot-pink tongue, must
# not colour a pale-lipped avatar's mouth): kept as it is up to this share of it, then eased (tanh) towards it.
CHROMA_KNEE = 0.6
MIN_LIP_CHROMA = 4.0  # a greyscale portrait's lips still allow a trace (its interior is made grey apart)
SHARP_BLUR_SCALE = 0.7  # what blur_scale reads on a sharp photo (Sobel's own smoothing, the content's edges)


def match_lip_colour(
    interior: np.ndarray, driver_lip: np.ndarray, avatar_lip: np.ndarray, lip_chroma: float | None = None
) -> np.ndarray:
    """The driver's mouth interior (float RGB) in the avatar's light: in Lab, lightness scales by the ratio of the
    two mean lip lightnesses; the hue stays the driver's, and its chroma is held under the avatar's own
    `lip_chroma` (none given: not held). Turning it onto the avatar's lip hue went wrong wherever those lips have
    little colour (grey, tinted or low-resolution portraits: cyan or green teeth, a magenta tongue); a greyscale
    portrait takes the interior to grey instead (see WarpAnimator)."""
    lab = _to_lab(interior)
    driver, avatar = _to_lab(driver_lip), _to_lab(avatar_lip)
    lab[..., 0] *= np.clip(avatar[0] / max(float(driver[0]), 1.0), *LIP_LIGHT_RANGE)
    if lip_chroma is not None:
        lab[..., 1:] *= _chroma_gain(np.hypot(lab[..., 1], lab[..., 2]), max(lip_chroma, MIN_LIP_CHROMA))[..., None]
    rgb = cv2.cvtColor(lab.reshape(-1, 1, 3), cv2.COLOR_Lab2RGB).reshape(lab.shape)
    return np.clip(rgb * 255.0, 0, 255)


def _chroma_gain(chroma: np.ndarray, cap: float) -> np.ndarray:
    """Per pixel, what to multiply (a, b) by so that chroma stays as it is up to CHROMA_KNEE·cap, then eases
    smoothly towards `cap` and never passes it."""
    knee = CHROMA_KNEE * cap
    eased = knee + (cap - knee) * np.tanh((chroma - knee) / (cap - knee))
    return np.where(chroma > knee, eased / np.maximum(chroma, 1e-6), 1.0).astype(np.float32)


def lip_band_chroma(image: np.ndarray, outer: np.ndarray, inner: np.ndarray) -> float:
    """The median chroma of the lip band (the `outer` lip polygon minus the `inner`), as EVAL.md's LIPSAT reads a
    portrait's own lips; 0 when the band covers no pixel."""
    h, w = image.shape[:2]
    x0, y0 = np.clip(np.floor(outer.min(axis=0)).astype(int), 0, (w, h))
    x1, y1 = np.clip(np.ceil(outer.max(axis=0)).astype(int) + 1, 0, (w, h))
    band = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(band, [np.round(outer - (x0, y0)).astype(np.int32)], 1)
    cv2.fillPoly(band, [np.round(inner - (x0, y0)).astype(np.int32)], 0)
    if not band.any():
        return 0.0
    return float(np.median(chroma(image[y0:y1, x0:x1])[band > 0]))


def soft_edge(mask: np.ndarray, width: float) -> np.ndarray:
    """Opacity (0–1) over a polygon's uint8 `mask`: 0 at its edge, rising smoothly to 1 at `width` px inside, so
    the avatar's own lips show over the interior's rim and the interior fades in under them (no cut-out edge).
    A narrow opening rises over at most a third of its depth, so a half-open mouth still reads as open."""
    inside = (mask >= 128).astype(np.uint8)
    depth = cv2.distanceTransform(np.pad(inside, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    width = min(width, float(depth.max()) / 3.0)
    if width <= 0.5:
        return mask.astype(np.float32) / 255.0
    t = np.clip(depth / width, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    """Float RGB (0–255, any shape ending in 3) to float Lab (L 0–100, a and b around 0)."""
    flat = np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(np.shape(rgb))


def blur_scale(image: np.ndarray, landmarks: np.ndarray) -> float:
    """How blurred the face is, as a Gaussian σ in pixels: re-blurring by σ₁ = 1 leaves r = σ / √(σ² + σ₁²) of a
    blurred edge's gradient energy, so σ = r / √(1 − r²). A sharp photo reads about SHARP_BLUR_SCALE."""
    grey_face = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    face = face_mask(landmarks, image.shape[0])

    def energy(x: np.ndarray) -> float:
        gx, gy = cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1)
        return float((gx * gx + gy * gy)[face > 0].sum())

    r = min(energy(cv2.GaussianBlur(grey_face, (0, 0), 1.0)) / max(energy(grey_face), 1e-9), 0.99)
    return r / float(np.sqrt(1.0 - r * r))


def interior_softness(image: np.ndarray, landmarks: np.ndarray) -> float:
    """The blur (Gaussian σ, px) that makes a sharp interior as soft as this portrait's face, capped."""
    softness = float(np.sqrt(max(blur_scale(image, landmarks) ** 2 - SHARP_BLUR_SCALE**2, 0.0)))
    return min(softness, MAX_INTERIOR_BLUR * image.shape[0] / 256)


@dataclass(frozen=True)
class OwnTeeth:
    """A portrait's own teeth, when it shows them: the upper row rides on the upper lip and the lower row on the
    lower lip, at their own size, over the driver's interior (a grin stretched open turned its teeth into a dark
    hole, or into long smeared ones). The rows are the portrait's inner-mouth pixels either side of the line
    midway between its inner lips."""

    patch: np.ndarray  # float RGB, the portrait round its open mouth
    upper_mask: np.ndarray  # float 0–1 over the patch: the upper row; the lower row likewise
    lower_mask: np.ndarray
    upper_lip: np.ndarray  # the inner-lip chains in patch pixels, corner to corner
    lower_lip: np.ndarray

    @staticmethod
    def of(image: np.ndarray, upper_lip: np.ndarray, lower_lip: np.ndarray) -> OwnTeeth:
        """From the portrait and its inner-lip chains (image pixels, corner to corner, the same corners)."""
        points = np.concatenate([upper_lip, lower_lip])
        x0, y0 = np.maximum(np.floor(points.min(axis=0)).astype(int) - 2, 0)
        x1, y1 = np.minimum(np.ceil(points.max(axis=0)).astype(int) + 3, (image.shape[1], image.shape[0]))
        upper, lower = upper_lip - (x0, y0), lower_lip - (x0, y0)
        middle = (upper + lower) / 2
        shape = (int(y1 - y0), int(x1 - x0))
        return OwnTeeth(
            patch=image[y0:y1, x0:x1].astype(np.float32),
            upper_mask=_fill(np.concatenate([upper, middle[::-1]]), shape),
            lower_mask=_fill(np.concatenate([middle, lower[::-1]]), shape),
            upper_lip=upper,
            lower_lip=lower,
        )

    def lay(self, interior: np.ndarray, upper_lip: np.ndarray, lower_lip: np.ndarray) -> np.ndarray:
        """`interior` (float RGB) with both rows laid over it where the lips now are (chains in its pixels)."""
        size = (interior.shape[1], interior.shape[0])
        out = np.array(interior, np.float32)
        for mask, rest, now in (
            (self.upper_mask, self.upper_lip, upper_lip),
            (self.lower_mask, self.lower_lip, lower_lip),
        ):
            move = _similarity(rest, now)
            row = cv2.warpAffine(self.patch, move, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            alpha = cv2.warpAffine(mask, move, size, flags=cv2.INTER_LINEAR)[..., None]
            out = out * (1 - alpha) + row * alpha
        return out


def _fill(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 rotation, uniform scale and shift that best takes the points `src` onto `dst` (least squares)."""
    p, q = src - src.mean(axis=0), dst - dst.mean(axis=0)
    norm = max(float((p * p).sum()), 1e-9)
    a = float((p * q).sum()) / norm
    b = float((p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum()) / norm
    linear = np.array([[a, -b], [b, a]])
    return np.concatenate([linear, (dst.mean(axis=0) - linear @ src.mean(axis=0))[:, None]], axis=1)
