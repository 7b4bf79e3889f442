"""StarGAN (Choi et al. 2018) for attribute edits of a face crop: one generator for every combination of
attribute domains, one discriminator with a real/fake patch head and an attribute-classification head.

The generator predicts a colour change and an attention mask (after GANimation's attention): the edit is the
input changed where the mask is on. Pixels it leaves alone stay the portrait's own, so an edit pasted back into
a 512² avatar keeps the avatar's full resolution everywhere the mask is zero, and where it is on the portrait's
detail stays under the change.

The change is one of shading and colourfulness, never of hue: a luminance offset and a chroma gain per pixel.
The attributes edited here live there (teeth and smile folds, wrinkles, greying, lipstick and make-up), while the
first CPU runs with a free colour change spent their steps on magenta and green blotches that fool an attribute
classifier long before they look like anything. A change rather than a colour image to blend in: the mask then
costs nothing in fidelity, so a broad, faint edit is as cheap for the generator as a small, loud one.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(True)
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    # Resize then convolve: a transposed convolution's checkerboard shows in skin.
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.InstanceNorm2d(cout, affine=True),
        nn.ReLU(True),
    )


class Generator(nn.Module):
    """G(x, c): the face x (N×3×S×S in [-1, 1]) with attributes c (N×A in [0, 1]); returns the edited face,
    the change (luminance offset, chroma gain: N×2×S×S in [-1, 1]) and the attention mask (1 = the change
    applied, 0 = the input kept)."""

    def __init__(self, attributes: int, width: int = 32, blocks: int = 4) -> None:
        super().__init__()
        self.attributes = attributes
        self.encode = nn.Sequential(
            nn.Conv2d(3 + attributes, width, 7, padding=3, bias=False),
            nn.InstanceNorm2d(width, affine=True),
            nn.ReLU(True),
            _down(width, 2 * width),
            _down(2 * width, 4 * width),
            *[ResidualBlock(4 * width) for _ in range(blocks)],
            _up(4 * width, 2 * width),
            _up(2 * width, width),
        )
        self.colour = nn.Sequential(nn.Conv2d(width, 2, 7, padding=3), nn.Tanh())
        self.attention = nn.Sequential(nn.Conv2d(width, 1, 7, padding=3), nn.Sigmoid())

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tiled = c[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        features = self.encode(torch.cat([x, tiled], dim=1))
        change, mask = self.colour(features), self.attention(features)
        return apply_change(x, change, mask), change, mask


LUMA = (0.299, 0.587, 0.114)  # Rec. 601


def apply_change(x: torch.Tensor, change: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x with its luminance raised by 2·change[0] (the whole range) and its chroma scaled by 1 + change[1]
    (0: grey, 2: twice as colourful), both weighed by the mask; clamped to [-1, 1]."""
    weights = x.new_tensor(LUMA).view(1, 3, 1, 1)
    luma = (x * weights).sum(dim=1, keepdim=True)
    chroma = x - luma
    edited = luma + 2 * mask * change[:, :1] + chroma * (1 + mask * change[:, 1:])
    return edited.clamp(-1, 1)


class Discriminator(nn.Module):
    """D(x): a patch map of real/fake scores (no sigmoid: WGAN critic) and attribute logits (N×A)."""

    def __init__(self, attributes: int, size: int, width: int = 32, layers: int = 5) -> None:
        super().__init__()
        body: list[nn.Module] = []
        cin = 3
        for i in range(layers):
            cout = width * 2**i
            # No normalization: the gradient penalty is taken per sample.
            body += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            cin = cout
        self.body = nn.Sequential(*body)
        self.source = nn.Conv2d(cin, 1, 3, padding=1)
        self.classify = nn.Conv2d(cin, attributes, size // 2**layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.source(features), self.classify(features).flatten(1)


class AttributesOf(nn.Module):
    """What the live edit asks first: the probability of each attribute in a face (the critic's class head)."""

    def __init__(self, critic: Discriminator) -> None:
        super().__init__()
        self.critic = critic

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.critic(face)[1])


class EditExport(nn.Module):
    """What runs live: (face, attributes) → (edited face, attention mask), for ONNX."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, face: torch.Tensor, attributes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        edited, _, mask = self.generator(face, attributes)
        return edited, mask
