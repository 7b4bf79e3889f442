"""`avatarcam export stylegan`: the moving-average generator to ONNX for the live identities: the mapping (z and
ψ → w, truncated towards the tracked mean w inside the graph) and the synthesis (one w per layer and the
per-layer noise → face), with manifest entries that give the resolution and the layers each level drives."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avatarcam.identities.generator import MAPPING, SYNTHESIS, level_layers
from avatarcam.models.stylegan import StyleGenerator
from avatarcam.runtime.weights import add_entry
from avatarcam.train.common import export_onnx
from avatarcam.train.stylegan.train import build_generator


class MappingExport(nn.Module):
    def __init__(self, gen: StyleGenerator) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, z: torch.Tensor, truncation: torch.Tensor) -> torch.Tensor:
        w = self.gen.mapping(z)
        return self.gen.w_avg + truncation[:, None] * (w - self.gen.w_avg)


class SynthesisExport(nn.Module):
    def __init__(self, gen: StyleGenerator) -> None:
        super().__init__()
        self.gen = gen

    def forward(self, ws: torch.Tensor, *noise: torch.Tensor) -> torch.Tensor:
        return self.gen.synthesis(ws, list(noise))


def load_generator(checkpoint: Path) -> tuple[StyleGenerator, dict]:
    """The moving-average generator of a training checkpoint (eval mode) and its settings."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    gen = build_generator(state["settings"])
    gen.load_state_dict(state["ema"])
    return gen.eval(), {**state["settings"], "steps": state["step"], "train_seconds": state.get("seconds", 0.0)}


def export_stylegan(checkpoint: Path, out: Path, fields: dict) -> dict:
    """Writes both graphs into `out` with manifest entries; returns the synthesis entry."""
    gen, settings = load_generator(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    z, psi = torch.zeros(1, gen.z_dim), torch.ones(1)
    export_onnx(MappingExport(gen), (z, psi), out / MAPPING, ["z", "truncation"], ["w"])
    ws = torch.zeros(1, gen.num_ws, gen.w_dim)
    noise = [torch.zeros(1, 1, s, s) for s in gen.synthesis.noise_sizes]
    names = [f"noise{i}" for i in range(len(noise))]
    export_onnx(SynthesisExport(gen), (ws, *noise), out / SYNTHESIS, ["ws", *names], ["image"])
    shape = {
        "resolution": settings["resolution"],
        "z_dim": gen.z_dim,
        "w_dim": gen.w_dim,
        "num_ws": gen.num_ws,
        "noise_sizes": gen.synthesis.noise_sizes,
        "levels": level_layers(gen.num_ws),
        "steps": settings["steps"],
        "train_seconds": round(settings["train_seconds"], 1),
        "crop": settings.get("crop", 1.0),
    }
    add_entry(out, MAPPING, inputs={"z": ["batch", gen.z_dim], "truncation": ["batch"]}, **shape, **fields)
    inputs = {"ws": ["batch", gen.num_ws, gen.w_dim]} | {
        n: ["batch", 1, s, s] for n, s in zip(names, shape["noise_sizes"], strict=True)
    }
    return add_entry(out, SYNTHESIS, inputs=inputs, **shape, **fields)
