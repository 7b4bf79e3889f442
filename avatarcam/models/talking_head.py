"""Talking Heads networks (Zakharov et al. 2019), built on the geometric warp.

The generator does not draw a face from scratch: it sees the portrait already warped to the target landmarks
plus a drawing of those landmarks, and predicts what a warp cannot give (mouth interior, eyelids, uncovered
cheeks, shading) as an image and a blend mask. Its normalization layers take AdaIN parameters ("style") that a
projection matrix makes from the embedder's identity vector; fine-tuning on one portrait starts from that style.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

EMBED_DIM = 128


def _down(cin: int, cout: int, sn: bool = False) -> nn.Module:
    conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
    return nn.Sequential(spectral_norm(conv) if sn else conv, nn.LeakyReLU(0.2))


class AdaIN(nn.Module):
    """Instance norm whose scale and shift come from the style vector (a slice of it per layer)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.norm = nn.InstanceNorm2d(channels, affine=False)

    @property
    def style_size(self) -> int:
        return 2 * self.channels

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = style.view(-1, 2, self.channels, 1, 1).unbind(1)
        return self.norm(x) * (1 + gamma) + beta


class AdaINResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = AdaIN(channels)
        self.norm2 = AdaIN(channels)

    @property
    def style_size(self) -> int:
        return self.norm1.style_size + self.norm2.style_size

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s1, s2 = style.split([self.norm1.style_size, self.norm2.style_size], dim=1)
        h = F.leaky_relu(self.norm1(self.conv1(x), s1), 0.2)
        return x + self.norm2(self.conv2(h), s2)


class UpBlock(nn.Module):
    """Upsample ×2, join the encoder's skip, conv, AdaIN."""

    def __init__(self, cin: int, skip: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin + skip, cout, 3, padding=1)
        self.norm = AdaIN(cout)

    @property
    def style_size(self) -> int:
        return self.norm.style_size

    def forward(self, x: torch.Tensor, skip: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.leaky_relu(self.norm(self.conv(torch.cat([x, skip], 1)), style), 0.2)


class Generator(nn.Module):
    """(warped crop, landmark drawing, style) → (image, blend mask); the caller blends with the warp.

    Inputs in [-1, 1], N×3×S×S each (S a multiple of 8); style N×style_size."""

    def __init__(self, width: int = 16, blocks: int = 2) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(6, w, 3, padding=1), nn.LeakyReLU(0.2))
        self.down = nn.ModuleList([_down(w, 2 * w), _down(2 * w, 4 * w), _down(4 * w, 8 * w)])
        self.blocks = nn.ModuleList([AdaINResBlock(8 * w) for _ in range(blocks)])
        self.up = nn.ModuleList([UpBlock(8 * w, 4 * w, 4 * w), UpBlock(4 * w, 2 * w, 2 * w), UpBlock(2 * w, w, w)])
        self.head = nn.Conv2d(w, 4, 3, padding=1)
        self.style_sizes = [m.style_size for m in [*self.blocks, *self.up]]
        self.style_size = sum(self.style_sizes)
        # The projection matrix P of the paper: identity vector → AdaIN parameters.
        self.project = nn.Linear(EMBED_DIM, self.style_size)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)
        # Start as "trust the warp": a closed mask.
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -3.0]))

    def style_from(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.project(embedding)

    def forward(self, warped: torch.Tensor, drawing: torch.Tensor, style: torch.Tensor):
        x = self.stem(torch.cat([warped, drawing], 1))
        skips = [x]
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        styles = style.split(self.style_sizes, dim=1)
        for block, s in zip(self.blocks, styles, strict=False):
            x = block(x, s)
        for up, skip, s in zip(self.up, reversed(skips[:-1]), styles[len(self.blocks) :], strict=True):
            x = up(x, skip, s)
        out = self.head(x)
        image = torch.tanh(out[:, :3])
        mask = torch.sigmoid(out[:, 3:4])
        return image, mask


def blend(warped: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return warped + mask * (image - warped)


class Encoder(nn.Module):
    """(image, landmark drawing) → per-layer features and a pooled vector; the embedder's and the
    discriminator's body."""

    def __init__(self, width: int = 32, sn: bool = False) -> None:
        super().__init__()
        w = width
        conv = nn.Conv2d(6, w, 3, padding=1)
        self.layers = nn.ModuleList(
            [
                nn.Sequential(spectral_norm(conv) if sn else conv, nn.LeakyReLU(0.2)),
                _down(w, 2 * w, sn),
                _down(2 * w, 4 * w, sn),
                _down(4 * w, 4 * w, sn),
                _down(4 * w, EMBED_DIM, sn),
            ]
        )

    def forward(self, image: torch.Tensor, drawing: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = torch.cat([image, drawing], 1)
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features, x.mean(dim=(2, 3))


class Embedder(nn.Module):
    """K (frame, landmark drawing) pairs of one person → their identity vector ê (the mean over the K)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.body = Encoder(width)

    def forward(self, frames: torch.Tensor, drawings: torch.Tensor) -> torch.Tensor:
        """frames, drawings: N×K×3×S×S → N×EMBED_DIM."""
        n, k = frames.shape[:2]
        _, pooled = self.body(frames.flatten(0, 1), drawings.flatten(0, 1))
        return F.relu(pooled).view(n, k, -1).mean(1)


class ProjectionDiscriminator(nn.Module):
    """Realism of (image, landmarks) for identity i: V(x, y)·(W_i + w0) + b, with spectral norm.

    W has a column per training identity; a fine-tune replaces it with the one portrait's column."""

    def __init__(self, identities: int, width: int = 32) -> None:
        super().__init__()
        self.body = Encoder(width, sn=True)
        self.identity = nn.Embedding(identities, EMBED_DIM)
        nn.init.normal_(self.identity.weight, std=0.02)
        self.w0 = nn.Parameter(torch.zeros(EMBED_DIM))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, image: torch.Tensor, drawing: torch.Tensor, who: torch.Tensor):
        """Score, the body's features (for feature matching) and W_i (for the embedding-match loss)."""
        features, pooled = self.body(image, drawing)
        v = F.relu(pooled)
        w = self.identity(who)
        score = (v * (w + self.w0)).sum(1) + self.b
        return score, features, w


class TalkingHead(nn.Module):
    """Embedder and generator together (one module for training): K shots + warped target → output."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.embedder = Embedder()
        self.generator = Generator(width)

    def forward(self, shots: torch.Tensor, shot_drawings: torch.Tensor, warped: torch.Tensor, drawing: torch.Tensor):
        embedding = self.embedder(shots, shot_drawings)
        image, mask = self.generator(warped, drawing, self.generator.style_from(embedding))
        return blend(warped, image, mask), mask, embedding
