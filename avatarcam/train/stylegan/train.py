"""`avatarcam train stylegan`: the identity generator and its critic (StyleGAN2's recipe, scaled for a CPU).

Each step: the critic on real faces and on generated ones (the logistic loss; every `r1_every` steps the R1
penalty on real faces, scaled up by the interval as StyleGAN2's lazy regularization does); then the generator
(non-saturating logistic loss), with two latents mixed at a random layer for `mixing` of the faces (style-mixing
regularization: neighbouring layers must not rely on each other). The mean w is tracked for truncation and an
exponential moving average of the generator's weights (half-life `ema_images` faces, ramped up over the first
steps as StyleGAN2-ADA does: a twentieth of the faces seen so far) is what gets exported. Both
networks see the faces through the same differentiable augmentation (shift, colour, cut-out), which keeps a
critic trained on a few thousand faces from memorising them. Runs under `torchrun` (DDP); rank 0 writes
checkpoints (atomically) and sample grids; started again on the same folder it resumes.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from avatarcam.models.stylegan import StyleCritic, StyleGenerator, mix
from avatarcam.train.augment import augment
from avatarcam.train.common import end_run, history_means, pick_preset, save_atomic, start_run, write_grid
from avatarcam.train.stargan.data import AttributeDataset

CHECKPOINT = "stylegan.pt"
EMA_RAMPUP = 0.05  # the average's half-life is at most this share of the faces seen so far
W_AVG_RATE = 0.005  # the mean w moves this far towards each batch's (StyleGAN's tracking)
SAMPLE_SEEDS = 8  # the grid's fixed latents: the same faces at every step, to watch them form


@dataclass(frozen=True)
class StyleGANSettings:
    resolution: int = 64
    # The central share of the aligned crop it learns: UTKFace's chips fill only ~77% of the crop's side, the rest
    # is their repeated edge; 0.72 keeps the face from forehead to chin and leaves the streaks out.
    crop: float = 0.72
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    width: int = 32  # channels at 64²; doubling as the resolution halves, up to max_channels
    max_channels: int = 256
    steps: int = 9000  # ~0.87 steps/s on the 2-core machine: just under 3 hours
    batch: int = 16
    lr: float = 0.002
    r1_gamma: float = 0.05  # StyleGAN2-ADA's heuristic: 0.0002 · resolution² / batch
    r1_every: int = 16
    mixing: float = 0.9
    ema_images: int = 10000
    augment: bool = True
    checkpoint_every: int = 200
    sample_every: int = 500
    seed: int = 0
    threads: int = 0


PRESETS = {
    "cpu": StyleGANSettings(),
    "gpu": StyleGANSettings(
        resolution=128,
        z_dim=512,
        w_dim=512,
        mapping_layers=8,
        width=128,
        max_channels=512,
        steps=200000,
        batch=32,
        r1_gamma=0.1,
    ),
}


def preset(name: str, **changes: object) -> StyleGANSettings:
    return pick_preset(PRESETS, name, **changes)


def build_generator(settings: StyleGANSettings | dict) -> StyleGenerator:
    s = settings if isinstance(settings, dict) else asdict(settings)
    return StyleGenerator(s["resolution"], s["z_dim"], s["w_dim"], s["mapping_layers"], s["width"], s["max_channels"])


class Sampler(nn.Module):
    """One generator pass as a module, so that DDP sees it whole: faces for z, mixed from layer `crossover` on
    with the latents `other` where given; returns the faces and the ws of z (for the mean w)."""

    def __init__(self, gen: StyleGenerator) -> None:
        super().__init__()
        self.gen = gen

    def forward(
        self, z: torch.Tensor, other: torch.Tensor | None, crossover: int, noise: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.gen.map(z)
        ws = self.gen.broadcast(w) if other is None else mix(w, self.gen.map(other), crossover, self.gen.num_ws)
        return self.gen.synthesis(ws, noise), w


def generate(
    sampler: nn.Module, gen: StyleGenerator, z: torch.Tensor, mixing: float, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Faces for latents z, a share `mixing` of batches from two latents crossed at a random layer."""
    other, crossover = None, 0
    if mixing > 0 and torch.rand((), generator=rng) < mixing:
        other = torch.randn(z.shape, generator=rng).to(z.device)
        crossover = int(torch.randint(1, gen.num_ws, (), generator=rng))
    return sampler(z, other, crossover, gen.synthesis.make_noise(z.shape[0], rng))


def r1_penalty(critic: torch.nn.Module, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ‖∇ₓ D(x)‖² at real faces (Mescheder et al.)."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(real).sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1).mean()


def training_faces(cache: str | Path, size: int, crop: float) -> torch.Tensor:
    """Every face of the attribute cache but the held-out ones (they are the real side of the evaluation's
    Fréchet distance), uint8 N×3×size×size framed as the identity generator learns them: what it and its DCGAN
    baseline train on."""
    return torch.cat([AttributeDataset(cache, split).faces(size, crop) for split in ("train", "judge")])


def train_stylegan(
    faces: torch.Tensor, out_dir: str | Path, settings: StyleGANSettings | None = None, progress: bool = True
) -> dict[str, float]:
    """Trains (or resumes) in `out_dir` on uint8 faces N×3×R×R; returns the mean losses of the last 50 steps."""
    settings = settings or StyleGANSettings()
    if faces.shape[-1] != settings.resolution:
        raise ValueError(f"the faces are {faces.shape[-1]}²; this preset trains at {settings.resolution}²")
    rank, world, device, out = start_run(out_dir, settings.threads, settings.seed)
    gen = build_generator(settings).to(device)
    critic = StyleCritic(settings.resolution, settings.width, settings.max_channels).to(device)
    ema = copy.deepcopy(gen).eval().requires_grad_(False)
    betas = (0.0, 0.99)
    r1_ratio = settings.r1_every / (settings.r1_every + 1)  # lazy R1: Adam's rate and momenta rescaled
    g_opt = torch.optim.Adam(gen.parameters(), lr=settings.lr, betas=betas)
    d_opt = torch.optim.Adam(critic.parameters(), lr=settings.lr * r1_ratio, betas=(0.0, 0.99**r1_ratio))
    step, seconds = 0, 0.0  # seconds: wall time trained, over every resume (the baseline gets as long)
    if (out / CHECKPOINT).is_file():
        state = torch.load(out / CHECKPOINT, map_location=device, weights_only=False)
        if state["settings"]["resolution"] != settings.resolution:
            raise ValueError(f"{out} trains at {state['settings']['resolution']}², not {settings.resolution}²")
        gen.load_state_dict(state["generator"])
        ema.load_state_dict(state["ema"])
        critic.load_state_dict(state["critic"])
        g_opt.load_state_dict(state["g_opt"])
        d_opt.load_state_dict(state["d_opt"])
        step, seconds = state["step"], state.get("seconds", 0.0)
    sampler = Sampler(gen)
    g_net = DistributedDataParallel(sampler) if world > 1 else sampler
    d_net = DistributedDataParallel(critic) if world > 1 else critic
    rng = torch.Generator().manual_seed(settings.seed * 1000 + rank * 7919 + step)
    sample_z = torch.randn(SAMPLE_SEEDS, settings.z_dim, generator=torch.Generator().manual_seed(0))

    def seen(images: torch.Tensor) -> torch.Tensor:
        return d_net(augment(images, rng) if settings.augment else images)

    history: list[dict[str, float]] = []
    bar = tqdm(total=settings.steps, initial=step, desc="stylegan", unit="step", disable=not progress or rank > 0)
    clock = time.monotonic()
    while step < settings.steps:
        pick = torch.randint(faces.shape[0], (settings.batch,), generator=rng)
        real = faces[pick].float().div(127.5).sub(1).to(device)
        mirror = torch.rand(settings.batch, generator=rng) < 0.5
        real[mirror] = real[mirror].flip(-1)
        z = torch.randn(settings.batch, settings.z_dim, generator=rng).to(device)
        # The critic.
        with torch.no_grad():
            fake, _ = generate(sampler, gen, z, settings.mixing, rng)
        d_loss = F.softplus(seen(fake)).mean() + F.softplus(-seen(real)).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        losses = {"d": float(d_loss.detach())}
        if step % settings.r1_every == 0:
            r1 = r1_penalty(d_net, real)
            d_opt.zero_grad(set_to_none=True)
            (settings.r1_gamma / 2 * r1 * settings.r1_every).backward()
            d_opt.step()
            losses["r1"] = float(r1.detach())
        # The generator.
        z = torch.randn(settings.batch, settings.z_dim, generator=rng).to(device)
        fake, w = generate(g_net, gen, z, settings.mixing, rng)
        g_loss = F.softplus(-seen(fake)).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        losses["g"] = float(g_loss.detach())
        half_life = min(settings.ema_images, EMA_RAMPUP * (step + 1) * settings.batch * world)
        ema_beta = 0.5 ** (settings.batch * world / half_life)
        with torch.no_grad():
            gen.w_avg.lerp_(w.mean(dim=0), W_AVG_RATE)
            for p_ema, p in zip(ema.parameters(), gen.parameters(), strict=True):
                p_ema.lerp_(p, 1 - ema_beta)
            ema.w_avg.copy_(gen.w_avg)
        step += 1
        history = [*history[-49:], losses]
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in history_means(history, ("d", "g", "r1")).items()})
        if rank == 0 and (step % settings.checkpoint_every == 0 or step == settings.steps):
            seconds, clock = seconds + time.monotonic() - clock, time.monotonic()
            state = {"generator": gen.state_dict(), "ema": ema.state_dict(), "critic": critic.state_dict()}
            state |= {"g_opt": g_opt.state_dict(), "d_opt": d_opt.state_dict(), "step": step, "seconds": seconds}
            save_atomic({**state, "settings": asdict(settings)}, out / CHECKPOINT)
        if rank == 0 and (step % settings.sample_every == 0 or step == settings.steps):
            write_samples(ema, sample_z, out / "samples" / f"step_{step:06d}.png")
    bar.close()
    result = history_means(history)
    if rank == 0:
        info = {"steps": step, "settings": asdict(settings), "losses": result}
        (out / "info.json").write_text(json.dumps(info, indent=1))
    end_run(world)
    return result


@torch.no_grad()
def write_samples(gen: StyleGenerator, z: torch.Tensor, path: Path) -> None:
    """Columns: the fixed latents at ψ = 1, then at ψ = 0.7 (rows of one face each)."""
    z = z.to(gen.w_avg.device)
    noise = gen.synthesis.make_noise(z.shape[0], torch.Generator().manual_seed(0))
    columns = [gen(z, truncation, noise) for truncation in (1.0, 0.7)]
    write_grid(path, columns, rows=z.shape[0])
