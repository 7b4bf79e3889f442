"""`avatarcam train stargan`: the attribute-edit generator and its critic, from the attribute cache.

Each step trains the critic on real faces (real/fake and their attributes) and, every `critic_steps` steps,
the generator: each face asks for one attribute flipped (old and young exclusive), must fool the critic, be
classified as asked, come back to itself when the original attributes are asked again, and change few pixels
(the attention mask). Runs as is under `torchrun` (DDP); rank 0 writes checkpoints every `checkpoint_every`
steps (atomically) and sample grids (each held-out face, then each single-attribute flip); started again on
the same folder it resumes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from avatarcam.edits.editor import EXCLUSIVE
from avatarcam.models.stargan import Discriminator, Generator
from avatarcam.train.augment import augment
from avatarcam.train.common import end_run, history_means, pick_preset, save_atomic, start_run, write_grid
from avatarcam.train.stargan.losses import (
    LossWeights,
    attention_loss,
    classification_loss,
    critic_loss,
    gradient_penalty,
    reconstruction_loss,
)

CHECKPOINT = "stargan.pt"


@dataclass(frozen=True)
class StarGANSettings:
    # The CPU preset: 64² faces (an edit is a smooth change laid over the full-resolution portrait, so 64² is
    # enough for it, and 2.25× cheaper a face than 96²), batch 16, ~1.2 steps/s on the 2-core machine; the GPU
    # preset trains at 128² with a wider, deeper network for the paper's 200,000 steps.
    size: int = 64
    width: int = 24  # the generator's and the critic's first layer; the rest double as they go down
    blocks: int = 3
    steps: int = 4500
    batch: int = 16
    critic_steps: int = 2  # critic updates per generator update (the paper: 5; fewer learn faster on a CPU)
    lr: float = 1e-4  # both networks' Adam rate, decayed linearly to 0 over the second half (as the paper)
    augment: bool = True  # the critic sees every face shifted, cut and recoloured (train.augment)
    keep_share: float = 0.25  # faces asked for their own attributes, which must come back unchanged
    losses: LossWeights = LossWeights()
    checkpoint_every: int = 100
    sample_every: int = 250
    seed: int = 0
    threads: int = 0


PRESETS = {
    "cpu": StarGANSettings(),
    "gpu": StarGANSettings(size=128, width=64, blocks=6, steps=200000, critic_steps=5, batch=32),
}


def flip(labels: torch.Tensor, which: torch.Tensor, attributes: tuple[str, ...]) -> torch.Tensor:
    """Each row's attributes with attribute `which[row]` flipped; asking for one of an exclusive pair clears the
    other."""
    target = labels.clone()
    rows = torch.arange(labels.shape[0])
    target[rows, which] = 1 - target[rows, which]
    for a, b in EXCLUSIVE:
        if a in attributes and b in attributes:
            ia, ib = attributes.index(a), attributes.index(b)
            target[(which == ia) & (target[:, ia] == 1), ib] = 0
            target[(which == ib) & (target[:, ib] == 1), ia] = 0
    return target


def flip_one(labels: torch.Tensor, attributes: tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """Each row's attributes with one of them, chosen at random, flipped."""
    return flip(labels, torch.randint(len(attributes), (labels.shape[0],), generator=generator), attributes)


def single_flips(labels: torch.Tensor, attributes: tuple[str, ...]) -> list[torch.Tensor]:
    """For each attribute, every row's attributes with just that one flipped."""
    return [flip(labels, torch.full((labels.shape[0],), i), attributes) for i in range(len(attributes))]


def _batch(images: torch.Tensor, labels: torch.Tensor, size: int, rng: torch.Generator) -> tuple[torch.Tensor, ...]:
    pick = torch.randint(images.shape[0], (size,), generator=rng)
    x = images[pick].float() / 127.5 - 1
    mirror = torch.rand(size, generator=rng) < 0.5
    x[mirror] = x[mirror].flip(-1)
    return x, labels[pick]


def train_stargan(
    images: torch.Tensor,
    labels: torch.Tensor,
    attributes: tuple[str, ...],
    out_dir: str | Path,
    settings: StarGANSettings | None = None,
    samples: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Trains (or resumes) in `out_dir` on uint8 faces N×3×S×S with 0/1 `labels` N×A; returns the mean losses of
    the last 50 steps. `samples`: held-out faces (uint8) and their labels, for the grids."""
    settings = settings or StarGANSettings()
    if images.shape[-1] != settings.size:
        raise ValueError(f"the cache holds {images.shape[-1]}² faces; this preset trains at {settings.size}²")
    rank, world, device, out = start_run(out_dir, settings.threads, settings.seed)
    gen = Generator(len(attributes), settings.width, settings.blocks).to(device)
    critic = Discriminator(len(attributes), settings.size, settings.width).to(device)
    g_opt = torch.optim.Adam(gen.parameters(), lr=settings.lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(critic.parameters(), lr=settings.lr, betas=(0.5, 0.999))
    step = 0
    if (out / CHECKPOINT).is_file():
        state = torch.load(out / CHECKPOINT, map_location=device, weights_only=False)
        if tuple(state["attributes"]) != attributes:
            raise ValueError(f"{out} was trained on {state['attributes']}, not {list(attributes)}: use another --out")
        gen.load_state_dict(state["generator"])
        critic.load_state_dict(state["critic"])
        g_opt.load_state_dict(state["g_opt"])
        d_opt.load_state_dict(state["d_opt"])
        step = state["step"]
    g_net = DistributedDataParallel(gen) if world > 1 else gen
    d_net = DistributedDataParallel(critic) if world > 1 else critic
    weights = settings.losses
    rng = torch.Generator().manual_seed(settings.seed * 1000 + rank * 7919 + step)

    def seen(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return d_net(augment(faces, rng) if settings.augment else faces)

    history: list[dict[str, float]] = []
    bar = tqdm(total=settings.steps, initial=step, desc="stargan", unit="step", disable=not progress or rank > 0)
    while step < settings.steps:
        x, c = _batch(images, labels, settings.batch, rng)
        x, c = x.to(device), c.to(device)
        keep = (torch.rand(c.shape[0], generator=rng) < settings.keep_share).to(device)
        target = torch.where(keep[:, None], c, flip_one(c, attributes, rng).to(device))
        rate = settings.lr * min(1.0, 2.0 * (1.0 - step / settings.steps))
        for opt in (g_opt, d_opt):
            for group in opt.param_groups:
                group["lr"] = rate
        # The critic: real faces high and classified right, fakes low, unit gradients in between.
        with torch.no_grad():
            fake = g_net(x, target)[0]
        real_scores, real_logits = seen(x)
        fake_scores, _ = seen(fake)
        d_adv = critic_loss(real_scores, fake_scores)
        d_cls = classification_loss(real_logits, c)
        d_gp = gradient_penalty(d_net, x, fake)
        d_opt.zero_grad(set_to_none=True)
        (d_adv + weights.cls * d_cls + weights.gp * d_gp).backward()
        d_opt.step()
        losses = {"d_adv": float(d_adv.detach()), "d_cls": float(d_cls.detach())}
        if step % settings.critic_steps == 0:
            fake, _, mask = g_net(x, target)
            scores, logits = seen(fake)
            restored, _, back_mask = g_net(fake, c)
            g_adv = -scores.mean()
            g_cls = classification_loss(logits, target)
            # Asked for what it has, a face comes back as it was; asked for a change, it comes back by the cycle.
            g_rec = reconstruction_loss(torch.where(keep[:, None, None, None], fake, restored), x)
            g_att = attention_loss(mask, weights) + attention_loss(back_mask, weights)
            g_opt.zero_grad(set_to_none=True)
            (g_adv + weights.cls_fake * g_cls + weights.rec * g_rec + g_att).backward()
            g_opt.step()
            losses |= {
                "g_cls": float(g_cls.detach()),
                "g_rec": float(g_rec.detach()),
                "mask": float(mask.mean().detach()),
            }
        step += 1
        history = [*history[-49:], losses]
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in history_means(history, ("d_cls", "g_cls", "g_rec")).items()})
        if rank == 0 and (step % settings.checkpoint_every == 0 or step == settings.steps):
            state = {"generator": gen.state_dict(), "critic": critic.state_dict(), "g_opt": g_opt.state_dict()}
            state |= {"d_opt": d_opt.state_dict(), "step": step, "attributes": list(attributes)}
            save_atomic({**state, "settings": asdict(settings)}, out / CHECKPOINT)
        if rank == 0 and samples is not None and (step % settings.sample_every == 0 or step == settings.steps):
            write_samples(gen, *samples, attributes, out / "samples" / f"step_{step:06d}.png")
    bar.close()
    result = history_means(history)
    if rank == 0:
        info = {"steps": step, "attributes": list(attributes), "settings": asdict(settings), "losses": result}
        (out / "info.json").write_text(json.dumps(info, indent=1))
    end_run(world)
    return result


@torch.no_grad()
def write_samples(
    gen: Generator, faces: torch.Tensor, labels: torch.Tensor, attributes: tuple[str, ...], path: Path
) -> None:
    """Rows: held-out faces; columns: the face, then each single-attribute flip of it."""
    device = next(gen.parameters()).device
    x, c = faces.float().to(device) / 127.5 - 1, labels.to(device)
    columns = [x] + [gen(x, target)[0] for target in single_flips(c, attributes)]
    write_grid(path, columns, rows=x.shape[0])


def preset(name: str, **changes: object) -> StarGANSettings:
    return pick_preset(PRESETS, name, **changes)
