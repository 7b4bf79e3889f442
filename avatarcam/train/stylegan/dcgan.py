"""The baseline the identity generator is measured against: a plain DCGAN (Radford et al.) trained for the same
time on the same faces. Transposed convolutions up from z, strided convolutions down to one logit, batch norm,
the non-saturating logistic loss; nothing else."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from avatarcam.train.common import save_atomic

DCGAN_FILE = "dcgan.pt"


class DCGenerator(nn.Module):
    def __init__(self, resolution: int = 64, z_dim: int = 100, width: int = 32) -> None:
        super().__init__()
        levels = int(np.log2(resolution)) - 2
        channels = [width * 2 ** (levels - 1 - i) for i in range(levels)]  # 4² … resolution/2
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, channels[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(True),
        ]
        for cin, cout in zip(channels, channels[1:], strict=False):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(channels[-1], 3, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class DCCritic(nn.Module):
    def __init__(self, resolution: int = 64, width: int = 32) -> None:
        super().__init__()
        levels = int(np.log2(resolution)) - 2
        layers: list[nn.Module] = []
        cin = 3
        for i in range(levels):
            cout = width * 2**i
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=i == 0)]
            layers += [nn.BatchNorm2d(cout)] if i else []
            layers += [nn.LeakyReLU(0.2, True)]
            cin = cout
        layers += [nn.Conv2d(cin, 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


CHECKPOINT_SECONDS = 120.0


def compute_seconds() -> float:
    """This process's CPU time over torch's threads: its wall time when it runs alone, but not the time it waits
    for the cores (other work, a pause), so a baseline trained beside other jobs still gets its full share."""
    return time.process_time() / torch.get_num_threads()


def train_dcgan(
    faces: torch.Tensor, out: Path, seconds: float, batch: int = 32, seed: int = 0, progress: bool = True
) -> DCGenerator:
    """Trains on uint8 faces N×3×R×R for `seconds` of compute (the identity generator's training time), resuming
    `out/dcgan.pt` if a run was cut short (checkpoints every CHECKPOINT_SECONDS); returns the generator."""
    torch.manual_seed(seed)
    resolution = faces.shape[-1]
    gen, critic = DCGenerator(resolution), DCCritic(resolution)
    g_opt = torch.optim.Adam(gen.parameters(), 2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(critic.parameters(), 2e-4, betas=(0.5, 0.999))
    step, trained = 0, 0.0
    out.mkdir(parents=True, exist_ok=True)
    if (out / DCGAN_FILE).is_file():
        state = torch.load(out / DCGAN_FILE, weights_only=False)
        if state["resolution"] != resolution:
            raise ValueError(f"{out / DCGAN_FILE} trains at {state['resolution']}², not {resolution}²")
        gen.load_state_dict(state["generator"])
        critic.load_state_dict(state["critic"])
        g_opt.load_state_dict(state["g_opt"])
        d_opt.load_state_dict(state["d_opt"])
        step, trained = state["steps"], state["seconds"]
    rng = torch.Generator().manual_seed(seed * 1000 + step)

    def save() -> None:
        state = {"generator": gen.state_dict(), "critic": critic.state_dict(), "g_opt": g_opt.state_dict()}
        state |= {"d_opt": d_opt.state_dict(), "steps": step, "seconds": trained, "resolution": resolution}
        save_atomic(state, out / DCGAN_FILE)

    bar = tqdm(desc="dcgan", unit="s", total=round(seconds), initial=round(min(trained, seconds)), disable=not progress)
    clock = saved = compute_seconds()
    while trained < seconds:
        real = faces[torch.randint(len(faces), (batch,), generator=rng)].float() / 127.5 - 1
        fake = gen(torch.randn(batch, gen.z_dim, generator=rng))
        d_loss = F.softplus(critic(fake.detach())).mean() + F.softplus(-critic(real)).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        g_loss = F.softplus(-critic(fake)).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        step += 1
        now = compute_seconds()
        trained, clock = trained + now - clock, now
        bar.n = round(min(trained, seconds))
        bar.set_postfix(step=step, refresh=True)
        if now - saved >= CHECKPOINT_SECONDS:
            save()
            saved = now
    bar.close()
    save()
    return gen.eval()


def load_dcgan(run: Path) -> tuple[DCGenerator, dict]:
    """The baseline trained in `run` (eval mode) and its steps, seconds and resolution."""
    path = run / DCGAN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {DCGAN_FILE} in {run}: run `avatarcam train dcgan --out {run}` first")
    state = torch.load(path, map_location="cpu", weights_only=False)
    gen = DCGenerator(state["resolution"])
    gen.load_state_dict(state["generator"])
    return gen.eval(), {k: state[k] for k in ("steps", "seconds", "resolution")}
