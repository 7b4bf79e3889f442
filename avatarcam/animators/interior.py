"""The mouth interior the warp lays into an open mouth: the driver's own teeth, tongue and cavity, made to belong to
the avatar's face: its light, its lips' colourfulness, its softness, a soft edge under its own lips, its own upper
teeth when it shows them."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarcam.colour import chroma
from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import face_mask

# Bounds on the lips' lightness ratio, avatar to driver (a dim estimate of the driver's lips must not blow the
# interior up).
LIP_LIGHT_RANGE = (0.5, 2.0)
# The interior's blur stops here (px at 256²): past it the teeth no longer stand out from the dark, and an open
# mouth stops reading as one (cross mouth correlation on five low-resolution portraits 0.83–0.91 → 0.68–0.77
# uncapped, 0.81–0.91 at 1 px). With the interior fading in under the lips, 1.5 px costs 0.01 on the 16
# low-quality portraits (0.656 → 0.647) and the teeth of a blurred face no longer look pasted on.
MAX_INTERIOR_BLUR = 1.5
# The interior's colourfulness is the driver's, relative to the driver's own lips, carried onto the avatar's lips,
# with this much to spare (EVAL.md's MOUTHSAT and LIPSAT allow 4 over the avatar's lips): a driver's lipstick or a
# hot-pink tongue no longer colours a pale-lipped avatar's mouth, and the same face (self-reenactment) keeps its
# own interior exactly.
LIP_CHROMA_MARGIN = 4.0
# 8-bit luminance by which the portrait's own teeth must outshine the driver's interior to be laid over it, and to
# be laid over it fully: only over a dark cavity (laid wherever they were lighter at all, from 0 to 60, they
# covered the same face's own teeth and lips in self-reenactment: AKD 1.1886 → 1.1946, P99F 13.48 → 13.52).
TEETH_CONTRAST = (40.0, 100.0)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
SHARP_BLUR_SCALE = 0.7  # what blur_scale reads on a sharp photo (Sobel's own smoothing, the content's edges)


def match_lip_colour(
    interior: np.ndarray,
    driver_lip: np.ndarray,
    avatar_lip: np.ndarray,
    lip_chroma: tuple[float, float] | None = None,
) -> np.ndarray:
    """The driver's mouth interior (float RGB) in the avatar's light: in Lab, lightness scales by the ratio of the
    two mean lip lightnesses; the hue stays the driver's. With `lip_chroma` (the driver's and the avatar's lip
    chroma, lip_look), the chroma scales down by (avatar's + LIP_CHROMA_MARGIN) / driver's where that is
    under 1: the interior is as colourful against the avatar's lips as it was against the driver's. Turning it
    onto the avatar's lip hue went wrong wherever those lips have little colour (grey, tinted or low-resolution
    portraits: cyan or green teeth, a magenta tongue); a greyscale portrait takes the interior to grey instead
    (see WarpAnimator)."""
    lab = _to_lab(interior)
    driver, avatar = _to_lab(driver_lip), _to_lab(avatar_lip)
    lab[..., 0] *= np.clip(avatar[0] / max(float(driver[0]), 1.0), *LIP_LIGHT_RANGE)
    if lip_chroma is not None:
        driver_chroma, avatar_chroma = lip_chroma
        lab[..., 1:] *= min(1.0, (avatar_chroma + LIP_CHROMA_MARGIN) / max(driver_chroma, 1e-6))
    rgb = cv2.cvtColor(lab.reshape(-1, 1, 3), cv2.COLOR_Lab2RGB).reshape(lab.shape)
    return np.clip(rgb * 255.0, 0, 255)


DEFAULT_LIP_COLOUR = (150.0, 80.0, 80.0)  # when the lips cover under MIN_LIP_PIXELS (a mouth seen edge on)
MIN_LIP_PIXELS = 4


def lip_look(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The lips' mean colour (RGB) and their chroma (the median over the lip band, as EVAL.md's LIPSAT reads a
    portrait's own lips; 0 on too few pixels), from one read of the band: the outer-lip polygon minus the inner.
    Read inside the lips' bounding box: a full-frame mask cost ~1 ms per open-mouth frame on a 720p camera."""
    outer = np.round(landmarks[T.OUTER_LIPS, :2]).astype(np.int32)
    inner = np.round(landmarks[T.INNER_LIPS, :2]).astype(np.int32)
    h, w = image.shape[:2]
    x0, y0 = np.clip(outer.min(axis=0), 0, (w, h))
    x1, y1 = np.clip(outer.max(axis=0) + 1, 0, (w, h))
    band = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(band, [outer - (x0, y0)], 1)
    cv2.fillPoly(band, [inner - (x0, y0)], 0)
    pixels = image[y0:y1, x0:x1][band > 0].reshape(-1, 1, 3)
    lip_chroma = float(np.median(chroma(pixels))) if len(pixels) else 0.0
    colour = pixels.reshape(-1, 3).mean(axis=0) if len(pixels) >= MIN_LIP_PIXELS else np.array(DEFAULT_LIP_COLOUR)
    return colour, lip_chroma


def soft_edge(mask: np.ndarray, width: float) -> np.ndarray:
    """The interior's share (0–1) over a polygon's uint8 `mask`: 0 at its edge, rising smoothly to 1 at `width`
    px inside, the avatar's own lip colour filling the rest, so the interior fades in under its lips (no cut-out
    edge). A narrow opening rises over at most a third of its depth, so a half-open mouth still reads as open."""
    inside = (mask >= 128).astype(np.uint8)
    depth = cv2.distanceTransform(np.pad(inside, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    width = min(width, float(depth.max()) / 3.0)
    if width <= 0.5:
        return mask.astype(np.float32) / 255.0
    t = np.clip(depth / width, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def lips_round(region: np.ndarray, mask: np.ndarray, width: float, fallback: np.ndarray) -> np.ndarray:
    """Per pixel of `region` (uint8 RGB), the mean colour of what lies outside the polygon `mask` (uint8) nearby,
    within about `width` px (a normalized Gaussian): the lips' own colour carried into the mouth's rim. Where
    nothing outside is near (deep inside a wide mouth, where the interior covers it anyway), `fallback`."""
    outside = 1.0 - mask.astype(np.float32) / 255.0
    sigma = max(width, 1.0)
    total = cv2.GaussianBlur(region.astype(np.float32) * outside[..., None], (0, 0), sigma)
    weight = cv2.GaussianBlur(outside, (0, 0), sigma)[..., None]
    near = np.clip(weight / 0.05, 0.0, 1.0)
    return total / np.maximum(weight, 1e-6) * near + np.asarray(fallback, np.float32) * (1 - near)


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
    """A portrait's own upper teeth, when it shows them: they ride on the upper lip at their own size, over the
    driver's interior (a grin stretched open turned its teeth into a dark hole, or into long smeared ones). The
    row is the portrait's inner-mouth pixels between its upper inner lip and the line midway to the lower one;
    the lower row is the driver's, which moves with the jaw: both rows of a grin laid on the lips kept the
    opening filled with teeth, and the mouth read as shut (cross mouth correlation 0.80 → 0.74 on the
    low-quality portraits)."""

    patch: np.ndarray  # float RGB, the portrait round its open mouth
    mask: np.ndarray  # float 0–1 over the patch: the upper row
    upper_lip: np.ndarray  # the upper inner-lip chain in patch pixels, corner to corner

    @staticmethod
    def of(image: np.ndarray, upper_lip: np.ndarray, lower_lip: np.ndarray) -> OwnTeeth:
        """From the portrait and its inner-lip chains (image pixels, corner to corner, the same corners)."""
        points = np.concatenate([upper_lip, lower_lip])
        x0, y0 = np.maximum(np.floor(points.min(axis=0)).astype(int) - 2, 0)
        x1, y1 = np.minimum(np.ceil(points.max(axis=0)).astype(int) + 3, (image.shape[1], image.shape[0]))
        upper, lower = upper_lip - (x0, y0), lower_lip - (x0, y0)
        middle = (upper + lower) / 2
        return OwnTeeth(
            patch=image[y0:y1, x0:x1].astype(np.float32),
            mask=_fill(np.concatenate([upper, middle[::-1]]), (int(y1 - y0), int(x1 - x0))),
            upper_lip=upper,
        )

    def lay(self, interior: np.ndarray, upper_lip: np.ndarray) -> np.ndarray:
        """`interior` (float RGB) with the row laid over it where the upper lip now is (its chain in the
        interior's pixels)."""
        size = (interior.shape[1], interior.shape[0])
        move = _similarity(self.upper_lip, upper_lip)
        row = cv2.warpAffine(self.patch, move, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(self.mask, move, size, flags=cv2.INTER_LINEAR)
        # Only where the row is much lighter than what the driver shows there (its teeth over a dark cavity): where
        # the driver shows teeth or lips of its own (the same face, in self-reenactment) they stay.
        lighter = (row - interior) @ LUMA
        low, high = TEETH_CONTRAST
        alpha = (alpha * np.clip((lighter - low) / (high - low), 0.0, 1.0))[..., None]
        return interior * (1 - alpha) + row * alpha


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
