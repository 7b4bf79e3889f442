"""StarGAN's three losses (adversarial WGAN-GP, domain classification, cycle reconstruction) and the attention
mask's regularizer, as the paper and GANimation define them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LossWeights:
    cls: float = 1.0  # the critic's attribute head on real faces
    cls_fake: float = 1.0  # the generator's: its edits classified as asked (the paper: the same weight)
    rec: float = 10.0
    gp: float = 10.0
    attention: float = 0.1  # mean of the mask: without it the generator repaints the whole face
    smooth: float = 1e-4  # total variation of the mask: soft, connected edit regions


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic: push real scores up and fake ones down (minimized by D)."""
    return fake_scores.mean() - real_scores.mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """(‖∇D(x̂)‖₂ − 1)² at random points x̂ between real and fake samples (Gulrajani et al.)."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    between = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores, _ = critic(between)
    (grad,) = torch.autograd.grad(scores.sum(), between, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per attribute, summed over attributes, averaged over the batch (as the paper)."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / logits.shape[0]


def reconstruction_loss(restored: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """L1 of G(G(x, c), c_orig) against x."""
    return (restored - original).abs().mean()


def attention_loss(mask: torch.Tensor, weights: LossWeights) -> torch.Tensor:
    """Small and smooth masks: the mean of the mask plus its total variation."""
    tv = (mask[:, :, 1:, :] - mask[:, :, :-1, :]).pow(2).sum() + (mask[:, :, :, 1:] - mask[:, :, :, :-1]).pow(2).sum()
    return weights.attention * mask.mean() + weights.smooth * tv / mask.shape[0]
