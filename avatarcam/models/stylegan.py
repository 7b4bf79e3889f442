"""A style-based generator (Karras et al., StyleGAN and StyleGAN2) for new identities, and its critic.

Generator: a mapping network (an MLP on the normalised latent z) gives w; the synthesis network starts from a
learned 4×4 constant and, at every layer, modulates its convolution's weights by a style taken from w (and
demodulates them, StyleGAN2's replacement for AdaIN), adds per-pixel noise scaled by a learned per-layer factor,
and adds its RGB to a skip path that is upsampled resolution by resolution. Every layer gets its own w: one w
broadcast to all of them is a plain sample, two ws split at a layer are a style mix (coarse layers: pose and
face shape; fine layers: colour and texture). Truncation pulls w towards the tracked mean w.

Critic: residual blocks down to 4×4, a minibatch standard-deviation channel (the critic sees how varied a batch
is, which discourages a generator that gives everyone the same face), then two dense layers.

Every weight is stored at unit variance and scaled at run time by its layer's He constant (the equalized
learning rate), so Adam's per-parameter steps are alike across layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def leaky(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with the gain that keeps unit variance."""
    return F.leaky_relu(x, 0.2) * SQRT2


class EqualLinear(nn.Module):
    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init)) / lr_mul)
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(cin), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return leaky(y) if self.act else y


class EqualConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, act: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale, self.act = 1 / math.sqrt(cin * kernel * kernel), act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)
        return leaky(y) if self.act else y


class ModulatedConv(nn.Module):
    """A convolution whose input channels are scaled per sample by a style from w, then (with `demodulate`)
    normalised so each output channel has unit variance again; with `up`, the input is first doubled in size.

    Written as StyleGAN2's unfused form (scale the activations, convolve with the shared weights, rescale the
    output): the same numbers as modulating each sample's weights, with one weight tensor for the batch, so it
    exports to ONNX as a plain convolution."""

    def __init__(self, cin: int, cout: int, kernel: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.style = EqualLinear(w_dim, cin, bias_init=1.0)
        self.scale, self.demodulate, self.up = 1 / math.sqrt(cin * kernel * kernel), demodulate, up

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.style(w)  # N × cin
        weight = self.weight * self.scale
        x = x * style[:, :, None, None]
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        out = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
        if self.demodulate:
            # Each output channel's weight norm after modulation: √(Σ_in,k (w·s)²) = √(s² · Σ_k w²).
            norms = style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t()  # N × cout
            out = out * torch.rsqrt(norms + 1e-8)[:, :, None, None]
        return out


class StyledLayer(nn.Module):
    """Modulated 3×3 convolution, per-pixel noise times a learned per-layer strength, bias, activation."""

    def __init__(self, cin: int, cout: int, w_dim: int, up: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv(cin, cout, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(x, w)
        if noise is not None:
            x = x + self.noise_strength * noise
        return leaky(x + self.bias)


class ToRGB(nn.Module):
    def __init__(self, cin: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv(cin, 3, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        rgb = self.conv(x, w) + self.bias
        if skip is not None:
            rgb = rgb + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        return rgb


def channels_at(resolution: int, width: int, max_channels: int) -> int:
    """Channels at a resolution: `width` at 64², doubling as the resolution halves, capped."""
    return min(max_channels, width * 64 // resolution) if resolution <= 64 else max(8, width * 64 // resolution)


class MappingNetwork(nn.Module):
    """z → w: the latent normalised to unit length·√dim, then `layers` dense layers at 1/100 the learning rate."""

    def __init__(self, z_dim: int, w_dim: int, layers: int) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(
            *[EqualLinear(a, b, lr_mul=0.01, act=True) for a, b in zip(dims, dims[1:], strict=False)]
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        return self.net(z)


class SynthesisNetwork(nn.Module):
    """ws (N × num_ws × w_dim) → image N×3×R×R in about [-1, 1]. Layer k of the ws list drives: the 4×4 layer,
    then two layers per doubling; each ToRGB reads the w of the layer after it (as StyleGAN2)."""

    def __init__(self, resolution: int, w_dim: int, width: int, max_channels: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.levels = int(math.log2(resolution)) - 2  # doublings from 4×4
        c4 = channels_at(4, width, max_channels)
        self.const = nn.Parameter(torch.randn(1, c4, 4, 4))
        self.first = StyledLayer(c4, c4, w_dim)
        self.first_rgb = ToRGB(c4, w_dim)
        self.ups, self.convs, self.rgbs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = c4
        for level in range(1, self.levels + 1):
            cout = channels_at(4 * 2**level, width, max_channels)
            self.ups.append(StyledLayer(cin, cout, w_dim, up=True))
            self.convs.append(StyledLayer(cout, cout, w_dim))
            self.rgbs.append(ToRGB(cout, w_dim))
            cin = cout
        self.num_ws = 2 * self.levels + 2
        # The noise shape of each styled layer, in order: 4×4, then two at each resolution.
        self.noise_sizes = [4] + [4 * 2**level for level in range(1, self.levels + 1) for _ in range(2)]

    def make_noise(self, n: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        device = self.const.device
        return [torch.randn(n, 1, s, s, generator=generator).to(device) for s in self.noise_sizes]

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        noise = noise if noise is not None else [None] * len(self.noise_sizes)
        x = self.first(self.const.expand(ws.shape[0], -1, -1, -1), ws[:, 0], noise[0])
        rgb = self.first_rgb(x, ws[:, 1], None)
        for level, (up, conv, to_rgb) in enumerate(zip(self.ups, self.convs, self.rgbs, strict=True)):
            k = 1 + 2 * level
            x = up(x, ws[:, k], noise[k])
            x = conv(x, ws[:, k + 1], noise[k + 1])
            rgb = to_rgb(x, ws[:, k + 2], rgb)
        return rgb


class StyleGenerator(nn.Module):
    """z → face. `w_avg` tracks the mean w during training (for truncation)."""

    def __init__(
        self,
        resolution: int = 64,
        z_dim: int = 128,
        w_dim: int = 128,
        mapping_layers: int = 4,
        width: int = 32,
        max_channels: int = 256,
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim = z_dim, w_dim
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.synthesis = SynthesisNetwork(resolution, w_dim, width, max_channels)
        self.num_ws = self.synthesis.num_ws
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def map(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """z → w (N × w_dim), pulled towards the mean w by 1 − `truncation` (ψ = 0: the mean face)."""
        w = self.mapping(z)
        return self.w_avg + truncation * (w - self.w_avg) if truncation != 1.0 else w

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        return w[:, None].expand(-1, self.num_ws, -1)

    def forward(
        self,
        z: torch.Tensor,
        truncation: float = 1.0,
        noise: list[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        return self.synthesis(self.broadcast(self.map(z, truncation)), noise)


def mix(w_first: torch.Tensor, w_second: torch.Tensor, crossover: int, num_ws: int) -> torch.Tensor:
    """ws taking layers [0, crossover) from `w_first` and the rest from `w_second` (N × num_ws × w_dim)."""
    take_first = (torch.arange(num_ws, device=w_first.device) < crossover)[None, :, None]
    return torch.where(take_first, w_first[:, None], w_second[:, None])


class MinibatchStd(nn.Module):
    """Appends one channel: the mean standard deviation over groups of `group` samples."""

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group, n)
        while n % g:
            g -= 1
        y = x.view(g, n // g, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # one value per group member slot
        y = y.view(n // g, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class CriticBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = EqualConv(cin, cin, 3)
        self.conv2 = EqualConv(cin, cout, 3)
        self.skip = EqualConv(cin, cout, 1, act=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.avg_pool2d(self.conv2(self.conv1(x)), 2)
        return (y + F.avg_pool2d(self.skip(x), 2)) / SQRT2


class StyleCritic(nn.Module):
    """Image N×3×R×R → realness score N×1 (no sigmoid: the logistic loss applies softplus)."""

    def __init__(self, resolution: int = 64, width: int = 32, max_channels: int = 256) -> None:
        super().__init__()
        levels = int(math.log2(resolution)) - 2
        self.from_rgb = EqualConv(3, channels_at(resolution, width, max_channels), 1)
        blocks = []
        for level in range(levels, 0, -1):
            r = 4 * 2**level
            blocks.append(CriticBlock(channels_at(r, width, max_channels), channels_at(r // 2, width, max_channels)))
        self.blocks = nn.Sequential(*blocks)
        c4 = channels_at(4, width, max_channels)
        self.stddev = MinibatchStd()
        self.conv = EqualConv(c4 + 1, c4, 3)
        self.dense = EqualLinear(c4 * 16, c4, act=True)
        self.out = EqualLinear(c4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.stddev(self.blocks(self.from_rgb(x))))
        return self.out(self.dense(x.flatten(1)))
