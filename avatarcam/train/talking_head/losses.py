"""Losses and the adversarial step shared by meta-training and one-portrait fine-tuning.

No pretrained perceptual network exists here, so the discriminator's own features stand in for one (feature
matching), beside an L1 at three scales (coarse scales weigh shape, fine ones detail)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass
class LossWeights:
    reconstruction: float = 10.0
    feature_matching: float = 1.0
    adversarial: float = 0.1
    match: float = 1.0  # embedding match: W_i pulled to the embedder's vector for the same person
    mask: float = 0.05  # mask sparsity: the generator replaces the warp only where that pays


def multiscale_l1(a: torch.Tensor, b: torch.Tensor, scales: int = 3) -> torch.Tensor:
    loss = (a - b).abs().mean()
    for _ in range(scales - 1):
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        loss = loss + (a - b).abs().mean()
    return loss / scales


def discriminator_step(disc, optimizer, real, fake, drawing, who) -> tuple[float, list[torch.Tensor]]:
    """One hinge-loss update of the discriminator (real and fake in one forward pass, as DDP wants); returns
    the loss and the real images' features for the generator's feature matching."""
    n = real.shape[0]
    score, features, _ = disc(torch.cat([real, fake.detach()]), torch.cat([drawing, drawing]), torch.cat([who, who]))
    loss = F.relu(1 - score[:n]).mean() + F.relu(1 + score[n:]).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), [f[:n].detach() for f in features]


def generator_loss(disc, fake, real, real_features, drawing, who, weights: LossWeights, mask, embedding=None):
    """Reconstruction + feature matching + adversarial + mask sparsity (+ embedding match when `embedding` is
    given)."""
    score, features, w = disc(fake, drawing, who)
    parts = {
        "rec": multiscale_l1(fake, real) * weights.reconstruction,
        "fm": sum((f - r).abs().mean() for f, r in zip(features, real_features, strict=True))
        / len(features)
        * weights.feature_matching,
        "adv": -score.mean() * weights.adversarial,
        "mask": mask.mean() * weights.mask,
    }
    if embedding is not None:
        parts["match"] = (w - embedding).abs().mean() * weights.match
    return sum(parts.values()), {k: float(v.detach()) for k, v in parts.items()}
