"""Person/background separation of a portrait (MediaPipe selfie segmentation, bundled in the wheel)."""

from __future__ import annotations

import cv2
import numpy as np

from avatarcam.tracking.facemesh import quiet_native_stderr

MIN_PERSON_SHARE = 0.02  # below this the segmenter has missed the person: better no mask than a wrong one
# The segmenter's edge can fall a few pixels short of the person (the default avatar's collar rim): what lies in
# a thin band outside it (EDGE_BAND, share of the image side) and stands out from the background round it by more
# than EDGE_CONTRAST (8-bit, any channel) is claimed as person. Left out, such a rim stayed in the background plate
# and showed as a ghost arc behind the neck once the person moved off it.
EDGE_BAND = 0.012
EDGE_CONTRAST = 40.0
EDGE_SIZE = 256  # side at which the band is looked at


def person_mask(image: np.ndarray) -> np.ndarray | None:
    """H×W float32 in [0, 1]: 1 on the person (face, hair, body), 0 on the background; None if none found."""
    import mediapipe as mp

    with quiet_native_stderr(), mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        mask = seg.process(np.ascontiguousarray(image)).segmentation_mask
    mask = np.clip(mask, 0.0, 1.0).astype(np.float32)
    if float(mask.mean()) < MIN_PERSON_SHARE:
        return None
    # A firmer edge: a wide soft band would blend plate into pixels the warp leaves in place.
    mask = np.clip((mask - 0.5) * 3.0 + 0.5, 0.0, 1.0)
    return np.maximum(mask, claimed_edges(image, mask))


def claimed_edges(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """H×W float32: 1 where a pixel just outside the `mask` (within EDGE_BAND) differs from the background beyond
    the band (a push-pull fill from there) by more than EDGE_CONTRAST: part of the person the segmenter left out."""
    h, w = mask.shape
    scale = EDGE_SIZE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    person = (cv2.resize(mask, size, interpolation=cv2.INTER_AREA) > 0.5).astype(np.uint8)
    reach = max(1, round(EDGE_BAND * EDGE_SIZE))
    grown = cv2.dilate(person, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    band = grown > person
    background = push_pull(small, 1.0 - grown.astype(np.float32))  # what lies beyond the band, carried into it
    claimed = band & (np.abs(small - background).max(axis=2) > EDGE_CONTRAST)
    return cv2.resize(claimed.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def clean_plate(image: np.ndarray, mask: np.ndarray, zone: np.ndarray) -> np.ndarray:
    """The background with the person painted out inside `zone` (H×W float32, 1 where the head can move).

    Outside the zone the plate is the image itself, so whatever the warp leaves in place stays exactly as it
    was. The fill runs on a small copy (the plate only shows in thin disoccluded slivers, where detail is not
    missed) and is pasted back only inside the person's silhouette."""
    h, w = mask.shape
    scale = 128 / max(h, w)
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    # The whole person is the hole, so only background colours flow in (not the shirt below the zone).
    # Grown by one pixel (at 128²): the fill is what shows in the thin band a moving head uncovers, and grown by
    # two it replaced the real background there with a smooth average (a halo; P99F 27.1 → 26.2 on one clip);
    # not grown at all, the hair's soft edge stayed in the plate as a ghost outline of the head.
    hole = cv2.dilate((cv2.resize(mask, small.shape[1::-1]) > 0.2).astype(np.uint8), np.ones((3, 3), np.uint8))
    filled = cv2.resize(push_pull(small, 1.0 - hole.astype(np.float32)), (w, h), interpolation=cv2.INTER_LINEAR)
    inside = cv2.resize(hole.astype(np.float32), (w, h)) * zone
    inside = cv2.GaussianBlur(inside, (0, 0), 2.0)[..., None]
    return (image * (1 - inside) + filled * inside).astype(np.uint8)


def push_pull(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fills the pixels where `known` is 0 with the local mean of the known ones, coarser the further they lie
    (a weighted image pyramid, down then up). Smooth, with no streaks: inpainting a large hole along its
    boundary (Telea) drew bright radial fans above the head wherever the head moved off them."""
    levels = []
    colour, weight = image.astype(np.float32) * known[..., None], known.astype(np.float32)
    while min(weight.shape) > 2:
        levels.append((colour, weight))
        colour, weight = cv2.pyrDown(colour), cv2.pyrDown(weight)
    fill = colour / np.maximum(weight, 1e-6)[..., None]
    for colour, weight in reversed(levels):
        up = cv2.pyrUp(fill, dstsize=weight.shape[::-1])
        trust = np.clip(weight * 2.0, 0.0, 1.0)[..., None]  # half covered by known pixels: their mean is enough
        fill = colour / np.maximum(weight, 1e-6)[..., None] * trust + up * (1.0 - trust)
    return np.clip(fill, 0, 255).astype(np.uint8)
