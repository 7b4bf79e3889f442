"""The mouth interior the warp lays into an open mouth: the driver's own, in the avatar's light and softness."""

from __future__ import annotations

import cv2
import numpy as np

from avatarcam.tracking.geometry import face_mask

# Bounds on the lips' lightness ratio, avatar to driver (a dim estimate of the driver's lips must not blow the
# interior up).
LIP_LIGHT_RANGE = (0.5, 2.0)
# The interior's blur stops here (px at 256²): past it the teeth no longer stand out from the dark, and an open
# mouth stops reading as one (cross mouth correlation on five low-resolution portraits 0.83–0.91 → 0.68–0.77
# uncapped, 0.81–0.91 at 1 px).
MAX_INTERIOR_BLUR = 1.0
SHARP_BLUR_SCALE = 0.7  # what blur_scale reads on a sharp photo (Sobel's own smoothing, the content's edges)


def match_lip_colour(interior: np.ndarray, driver_lip: np.ndarray, avatar_lip: np.ndarray) -> np.ndarray:
    """The driver's mouth interior (float RGB) in the avatar's light: in Lab, lightness scales by the ratio of the
    two mean lip lightnesses; the colour plane stays the driver's. Turning it onto the avatar's lip hue went
    wrong wherever those lips have little colour (grey, tinted or low-resolution portraits: cyan or green teeth,
    a magenta tongue); a greyscale portrait takes the interior to grey instead (see WarpAnimator)."""
    lab = _to_lab(interior)
    driver, avatar = _to_lab(driver_lip), _to_lab(avatar_lip)
    lab[..., 0] *= np.clip(avatar[0] / max(float(driver[0]), 1.0), *LIP_LIGHT_RANGE)
    rgb = cv2.cvtColor(lab.reshape(-1, 1, 3), cv2.COLOR_Lab2RGB).reshape(lab.shape)
    return np.clip(rgb * 255.0, 0, 255)


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
