"""Differentiable augmentation of every face a critic sees, real or generated (after Zhao et al., "Differentiable
Augmentation for Data-Efficient GAN Training"): a small shift, a patch cut out, brightness, saturation and
contrast jitter, drawn per face.

Why: with a few thousand faces and a CPU's few thousand steps, the critic's attribute head learns whatever
separates the classes fastest, and the generator finds small coloured patches that fool it. A critic that must
read the attribute wherever the face sits, with any patch of it hidden and under any lighting, is fooled only by
changes spread over the face the way real attributes are. Applied to generated faces too (and differentiably), so
the critic never learns the augmentation itself as a sign of real or fake.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SHIFT = 0.125  # of the side, each way
CUTOUT = 0.25  # side of the square hidden, as a share of the face's
BRIGHTNESS = 0.25  # added, in [-1, 1] pixel units
SATURATION = (0.6, 1.4)
CONTRAST = (0.7, 1.3)


def _uniform(n: int, low: float, high: float, rng: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, 1, 1, 1, generator=rng) * (high - low) + low).to(device)


def augment(x: torch.Tensor, rng: torch.Generator, cutout: bool = True) -> torch.Tensor:
    """N×3×S×S faces in [-1, 1], each shifted, recoloured and (with `cutout`) cut at random; differentiable."""
    n, _, h, w = x.shape
    device = x.device
    x = x + _uniform(n, -BRIGHTNESS, BRIGHTNESS, rng, device)
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * _uniform(n, *SATURATION, rng, device) + grey
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * _uniform(n, *CONTRAST, rng, device) + mean
    # Shift by whole pixels, the edges repeated (as the aligned crops repeat theirs).
    shift = (torch.rand(n, 2, generator=rng) * 2 - 1) * SHIFT * 2  # in grid units: the side spans 2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = (shift * torch.tensor([w, h]) / 2).round() * 2 / torch.tensor([w, h])
    grid = F.affine_grid(theta.to(device), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)
    if not cutout:
        return x
    side = max(1, round(CUTOUT * h)), max(1, round(CUTOUT * w))
    top = torch.randint(h - side[0] + 1, (n,), generator=rng)
    left = torch.randint(w - side[1] + 1, (n,), generator=rng)
    rows, cols = torch.arange(h)[None, :], torch.arange(w)[None, :]
    hide_rows = (rows >= top[:, None]) & (rows < top[:, None] + side[0])
    hide_cols = (cols >= left[:, None]) & (cols < left[:, None] + side[1])
    keep = ~(hide_rows[:, :, None] & hide_cols[:, None, :])
    return x * keep[:, None].to(device, x.dtype)
