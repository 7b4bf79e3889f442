"""The DeepFakes autoencoder: one encoder shared by both people, one decoder per person.

Trained to reconstruct A through decoder A and B through decoder B, the shared encoder learns a code of pose,
expression and lighting that both decoders read; at run time A's face goes through decoder B.
Images in [0, 1], N×3×S×S (S = 64 or 128); each decoder outputs an image and a face mask.
"""

from __future__ import annotations

import torch
from torch import nn

PRESETS = {  # crop size → (base width, latent size)
    64: (32, 256),
    128: (32, 384),
}
CODE_SIDE = 8  # the encoder's code is a CODE_SIDE² map (after the dense bottleneck)


def _down(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 5, stride=2, padding=2), nn.LeakyReLU(0.1))


class Upscale(nn.Module):
    """Conv to 4× channels, then pixel shuffle: a 2× upsampling without checkerboard transposed convolutions."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.act(self.conv(x)))


def _levels(size: int) -> int:
    """Stride-2 steps from the crop down to the code map (4 at 128², 3 at 64²)."""
    if size not in PRESETS:
        raise ValueError(f"face swap crop size must be one of {', '.join(map(str, PRESETS))}, got {size}")
    return (size // CODE_SIDE).bit_length() - 1


class SwapEncoder(nn.Module):
    def __init__(self, size: int = 128) -> None:
        super().__init__()
        levels = _levels(size)
        width, latent = PRESETS[size]
        chans = [3] + [width * 2**i for i in range(levels)]
        self.convs = nn.Sequential(*[_down(a, b) for a, b in zip(chans, chans[1:], strict=False)])
        deep = chans[-1]
        self.code_channels = deep // 2
        self.to_latent = nn.Linear(deep * (CODE_SIDE // 2) ** 2, latent)
        self.from_latent = nn.Linear(latent, deep * (CODE_SIDE // 2) ** 2)
        self.up = Upscale(deep, self.code_channels)
        self.pool = nn.AvgPool2d(2)
        self.deep = deep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The dense bottleneck (as in the original) forces a compact code that cannot carry identity detail.
        h = self.pool(self.convs(x)).flatten(1)
        h = self.from_latent(self.to_latent(h)).view(-1, self.deep, CODE_SIDE // 2, CODE_SIDE // 2)
        return self.up(h)


class SwapDecoder(nn.Module):
    def __init__(self, size: int = 128) -> None:
        super().__init__()
        levels = _levels(size)
        width, _ = PRESETS[size]
        chans = [width * 2 ** (levels - 1) // 2] + [max(16, width * 2 ** (levels - 2 - i)) for i in range(levels)]
        self.ups = nn.Sequential(*[Upscale(a, b) for a, b in zip(chans, chans[1:], strict=False)])
        self.head = nn.Conv2d(chans[-1], 4, 5, padding=2)

    def forward(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.ups(code))
        return torch.sigmoid(out[:, :3]), torch.sigmoid(out[:, 3:4])


class FaceSwapModel(nn.Module):
    """Shared encoder, decoders A and B."""

    def __init__(self, size: int = 128) -> None:
        super().__init__()
        self.size = size
        self.encoder = SwapEncoder(size)
        self.decoder_a = SwapDecoder(size)
        self.decoder_b = SwapDecoder(size)

    def forward(self, a: torch.Tensor, b: torch.Tensor):
        """Reconstructions of A (through decoder A) and B (through decoder B): (image, mask) each."""
        return self.decoder_a(self.encoder(a)), self.decoder_b(self.encoder(b))


class SwapToB(nn.Module):
    """What runs live: an aligned face of A → B's face and mask."""

    def __init__(self, model: FaceSwapModel) -> None:
        super().__init__()
        self.encoder, self.decoder = model.encoder, model.decoder_b

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(self.encoder(face))
