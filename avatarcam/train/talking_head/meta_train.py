"""`avatarcam train talking-head`: meta-learning on K-shot episodes (the paper's first stage).

Runs as is under `torchrun --nproc-per-node N` (DistributedDataParallel: NCCL on GPUs, gloo on CPUs); rank 0
writes checkpoints (atomically, every `checkpoint_every` steps), sample grids and the final weights. Started
again on the same folder, it resumes from the last checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from avatarcam.models.talking_head import ProjectionDiscriminator, TalkingHead
from avatarcam.train.common import end_run, save_atomic, start_run, write_grid
from avatarcam.train.talking_head.episodes import EpisodeSet
from avatarcam.train.talking_head.losses import LossWeights, discriminator_step, generator_loss

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "talking_head.pt"


@dataclass
class TrainSettings:
    steps: int = 12000  # what the shipped weights had
    batch: int = 8
    shots: int = 2  # K: frames embedded per episode
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    width: int = 16
    checkpoint_every: int = 100
    sample_every: int = 250
    seed: int = 0
    threads: int = 0  # torch CPU threads per process (0: torch's default)
    weights: LossWeights = field(default_factory=LossWeights)


def export_weights(
    model: TalkingHead, disc: ProjectionDiscriminator, names: list[str], settings: TrainSettings
) -> dict:
    """What ships: the networks in half precision, without the training identities' W (a new portrait's column
    starts as its own embedding)."""
    disc_state = {k: v for k, v in disc.state_dict().items() if not k.startswith("identity.")}
    return {
        "model": {k: v.half() for k, v in model.state_dict().items()},
        "discriminator": {k: v.half() if v.is_floating_point() else v for k, v in disc_state.items()},
        "width": settings.width,
        "identities": len(names),
    }


def train(cache_dir: str | Path, out_dir: str | Path, settings: TrainSettings | None = None, progress: bool = True):
    """Meta-trains on the cache; returns the final mean losses of the last 50 steps (rank 0)."""
    settings = settings or TrainSettings()
    data = EpisodeSet(cache_dir)
    rank, world, device, out = start_run(out_dir, settings.threads, settings.seed)
    model = TalkingHead(settings.width).to(device)
    disc = ProjectionDiscriminator(len(data), width=32).to(device)
    g_opt = torch.optim.Adam([*model.parameters(), disc.identity.weight], lr=settings.lr_g, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(disc.parameters(), lr=settings.lr_d, betas=(0.5, 0.999))
    step = 0
    ckpt = out / CHECKPOINT
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        disc.load_state_dict(state["discriminator"])
        g_opt.load_state_dict(state["g_opt"])
        d_opt.load_state_dict(state["d_opt"])
        step = state["step"]
        if rank == 0:
            log.info("resuming from step %d", step)
    g_model, d_model = model, disc
    if world > 1:
        g_model = DistributedDataParallel(model)
        d_model = DistributedDataParallel(disc)
    rng = np.random.default_rng(settings.seed * 1000 + rank * 7919 + step)
    history: list[dict[str, float]] = []
    bar = tqdm(total=settings.steps, initial=step, desc="meta-train", unit="step", disable=not progress or rank > 0)
    while step < settings.steps:
        batch = {k: v.to(device) for k, v in data.sample(settings.batch, settings.shots, rng).items()}
        fake, mask, embedding = g_model(batch["shots"], batch["shot_drawings"], batch["warped"], batch["drawing"])
        d_loss, real_features = discriminator_step(
            d_model, d_opt, batch["target"], fake, batch["drawing"], batch["who"]
        )
        g_loss, parts = generator_loss(
            d_model,
            fake,
            batch["target"],
            real_features,
            batch["drawing"],
            batch["who"],
            settings.weights,
            mask,
            embedding,
        )
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        step += 1
        parts["d"] = d_loss
        history = [*history[-49:], parts]
        bar.update(1)
        bar.set_postfix({k: f"{np.mean([h[k] for h in history]):.3f}" for k in parts})
        if rank == 0 and (step % settings.checkpoint_every == 0 or step == settings.steps):
            save_atomic(
                {
                    "model": model.state_dict(),
                    "discriminator": disc.state_dict(),
                    "g_opt": g_opt.state_dict(),
                    "d_opt": d_opt.state_dict(),
                    "step": step,
                    "names": data.names,
                    "settings": asdict(settings),
                },
                ckpt,
            )
        if rank == 0 and (step % settings.sample_every == 0 or step == settings.steps):
            write_grid(
                out / "samples" / f"step_{step:06d}.png",
                [batch["warped"], fake, batch["target"], mask * 2 - 1],
            )
    bar.close()
    if rank == 0:
        save_atomic(export_weights(model, disc, data.names, settings), out / WEIGHTS)
    end_run(world)
    return {k: float(np.mean([h[k] for h in history])) for k in history[0]} if history else {}
