"""Putting a decoded face back into the frame: colour transfer, mask erosion and feathering, and the blend."""

from __future__ import annotations

import cv2
import numpy as np

from avatarcam.config import BLEND_MODES, COLOUR_MODES


def reinhard(source: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Reinhard et al. (2001) colour transfer inside `mask`, in LAB: lightness takes the reference's mean and
    spread; chroma is scaled about neutral grey so its mean matches (an additive chroma shift, the original's,
    turns a dark-skinned face's dark eyes and mouth green when moving it to a pale one)."""
    inside = mask > 0.5
    if inside.sum() < 16:
        return source
    src = cv2.cvtColor(source, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    s_in, r_in = src[inside], ref[inside]
    out = src.copy()
    gain = np.clip((r_in[:, 0].std() + 1e-3) / (s_in[:, 0].std() + 1e-3), 0.5, 2.0)
    out[..., 0] = (src[..., 0] - s_in[:, 0].mean()) * gain + r_in[:, 0].mean()
    for c in (1, 2):  # OpenCV's 8-bit a*, b* are centred on 128
        s_mean, r_mean = s_in[:, c].mean() - 128, r_in[:, c].mean() - 128
        if abs(s_mean) > 2 and s_mean * r_mean > 0:  # same side of grey: scale about it
            out[..., c] = (src[..., c] - 128) * np.clip(r_mean / s_mean, 0.25, 4.0) + 128
        else:  # (nearly) grey, or the other side of it: no scale reaches the mean, so shift
            out[..., c] = src[..., c] + (r_mean - s_mean)
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def histogram_match(source: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-channel histogram matching of `source` to `reference`, both measured inside `mask`."""
    inside = mask > 0.5
    if inside.sum() < 16:
        return source
    out = np.empty_like(source)
    for c in range(3):
        src_values = source[..., c][inside]
        ref_values = reference[..., c][inside]
        src_cdf = np.cumsum(np.bincount(src_values, minlength=256)) / src_values.size
        ref_cdf = np.cumsum(np.bincount(ref_values, minlength=256)) / ref_values.size
        lut = np.searchsorted(ref_cdf, src_cdf).clip(0, 255).astype(np.uint8)
        out[..., c] = lut[source[..., c]]
    return out


def transfer_colour(face: np.ndarray, reference: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    if mode == "reinhard":
        return reinhard(face, reference, mask)
    if mode == "histogram":
        return histogram_match(face, reference, mask)
    if mode == "none":
        return face
    raise ValueError(f"unknown colour transfer '{mode}' (choose {', '.join(COLOUR_MODES)})")


def keep_driver_parts(
    face: np.ndarray, driver: np.ndarray, crop_landmarks: np.ndarray, contours: list[list[int]]
) -> np.ndarray:
    """`face` with the `driver`'s pixels (already in `face`'s colours) laid over it inside each landmark contour
    (the lips, the eyes), grown 1 px and feathered 1.5 px at 128². An autoencoder blurs these first: its mouth no
    longer reads as closed or open, its eyes neither blink nor look aside; the driver's own follow exactly."""
    size = face.shape[0]
    scale = size / 128
    parts = np.zeros((size, size), np.uint8)
    for contour in contours:
        cv2.fillPoly(parts, [np.round(crop_landmarks[contour, :2]).astype(np.int32)], 255)
    grow = max(1, round(scale))
    parts = cv2.dilate(parts, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    alpha = cv2.GaussianBlur(parts.astype(np.float32) / 255.0, (0, 0), 1.5 * scale)[..., None]
    return (face * (1 - alpha) + driver * alpha + 0.5).astype(np.uint8)


def refine_mask(mask: np.ndarray, erode: int, blur: int) -> np.ndarray:
    """Float mask in [0, 1]: eroded by `erode` px (the face's edge is where swaps show), then feathered."""
    if erode > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1))
        mask = cv2.erode(mask, kernel)
    if blur > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), blur / 2)
    return np.clip(mask, 0.0, 1.0)


def paste_back(
    frame: np.ndarray, face: np.ndarray, mask: np.ndarray, matrix: np.ndarray, mode: str = "feather"
) -> np.ndarray:
    """The aligned `face` (crop space, `matrix` maps frame → crop) blended into `frame` through `mask`."""
    h, w = frame.shape[:2]
    side = face.shape[0]
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [side, 0], [0, side], [side, side]], np.float64) @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = np.floor(corners.min(0)).astype(int).clip(0, [w, h])
    x1, y1 = np.ceil(corners.max(0)).astype(int).clip(0, [w, h])
    if x1 <= x0 or y1 <= y0:
        return frame
    # Warp only the face's bounding box of the frame: the rest is untouched.
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([x0, y0], np.float64)
    size = (x1 - x0, y1 - y0)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    face_roi = cv2.warpAffine(face, shifted, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    mask_roi = cv2.warpAffine(mask, shifted, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
    out = frame.copy()
    roi = out[y0:y1, x0:x1]
    if mode == "poisson":
        binary = (mask_roi > 0.5).astype(np.uint8) * 255
        if binary.any():
            ys, xs = np.nonzero(binary)
            centre = (int((xs.min() + xs.max()) // 2), int((ys.min() + ys.max()) // 2))
            try:
                out[y0:y1, x0:x1] = cv2.seamlessClone(
                    face_roi, np.ascontiguousarray(roi), binary, centre, cv2.NORMAL_CLONE
                )
                return out
            except cv2.error:
                pass  # a mask touching the frame's edge: fall back to feathering
    elif mode != "feather":
        raise ValueError(f"unknown blend '{mode}' (choose {', '.join(BLEND_MODES)})")
    alpha = mask_roi[..., None]
    out[y0:y1, x0:x1] = (roi * (1 - alpha) + face_roi * alpha + 0.5).astype(np.uint8)
    return out
