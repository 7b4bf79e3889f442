"""`avatarcam train faceswap`: the shared encoder and decoders A and B, from two folders of extracted faces.

Each step reconstructs randomly warped faces of A through decoder A and of B through decoder B: masked L1 +
structural dissimilarity (DSSIM) inside the face, L1 again over eyes and mouth, and the predicted mask against
the extracted one. Runs as is under `torchrun` (DDP); rank 0 writes checkpoints every `checkpoint_every` steps
(atomically) and preview grids (rows: A, A→A, A→B, then B, B→B); started again on the same folder it resumes.
The end exports the live model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from avatarcam.animators.faceswap.store import CHECKPOINT, INFO
from avatarcam.models.faceswap import PRESETS, FaceSwapModel
from avatarcam.train.common import end_run, save_atomic, start_run, write_grid
from avatarcam.train.faceswap.faceset import FaceSet, FaceSetError

log = logging.getLogger(__name__)


@dataclass
class SwapTrainSettings:
    size: int = 128  # preset: 64 or 128
    steps: int = 18000  # closer to B, and B's own mouth follows far better than at 12000 (README: 0.46 vs 0.19)
    batch: int = 8  # faces of each person per step
    lr: float = 1e-4
    checkpoint_every: int = 200
    preview_every: int = 250
    seed: int = 0
    threads: int = 0


def _ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM with an 11-tap Gaussian window (σ 1.5), per channel."""
    coords = torch.arange(11, dtype=a.dtype, device=a.device) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(a.shape[1], 1, 11, 11)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, padding=5, groups=a.shape[1])

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim.mean()


def reconstruction_loss(
    image: torch.Tensor, mask: torch.Tensor, target: torch.Tensor, face: torch.Tensor, priority: torch.Tensor
) -> torch.Tensor:
    """Masked L1 + DSSIM inside the face (a little weight outside keeps the edge stable), L1 once more over the
    eyes and mouth (the expression: they must stay sharp enough to read) + mask L1."""
    error = (image - target).abs()
    weight = 0.05 + face
    l1 = (error * weight).sum() / (weight.sum() * 3)
    expression = (error * priority).sum() / (priority.sum() * 3 + 1e-6)
    dssim = (1 - _ssim(image * face, target * face)) / 2
    return (l1 + expression) * 10 + dssim * 5 + (mask - face).abs().mean()


def _check_sets(a: FaceSet, b: FaceSet, size: int) -> None:
    if a.size != b.size:
        raise FaceSetError(
            f"A's faces are {a.size}² but B's are {b.size}²: extract both with the same --size (e.g. {size})"
        )
    if a.size < size:
        raise FaceSetError(f"the {size}² preset needs faces extracted at {size}² or larger; these are {a.size}²")


def train_faceswap(
    a_dir: str | Path,
    b_dir: str | Path,
    out_dir: str | Path,
    settings: SwapTrainSettings | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Trains (or resumes) the swap model in `out_dir`; returns the mean losses of the last 50 steps."""
    settings = settings or SwapTrainSettings()
    if settings.size not in PRESETS:
        raise ValueError(f"unknown face swap preset {settings.size} (choose {' or '.join(map(str, PRESETS))})")
    a, b = FaceSet(a_dir), FaceSet(b_dir)
    _check_sets(a, b, settings.size)
    rank, world, device, out = start_run(out_dir, settings.threads, settings.seed)
    model = FaceSwapModel(settings.size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=(0.5, 0.999))
    step = 0
    if (out / CHECKPOINT).is_file():
        state = torch.load(out / CHECKPOINT, map_location=device, weights_only=False)
        if state["settings"]["size"] != settings.size:
            raise FaceSetError(
                f"{out} holds a {state['settings']['size']}² model; use another --name for {settings.size}²"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
    net = DistributedDataParallel(model) if world > 1 else model
    rng = np.random.default_rng(settings.seed * 1000 + rank * 7919 + step)
    history: list[dict[str, float]] = []
    bar = tqdm(total=settings.steps, initial=step, desc="faceswap", unit="step", disable=not progress or rank > 0)
    while step < settings.steps:
        batch_a = {k: torch.from_numpy(v).to(device) for k, v in a.batch(settings.batch, settings.size, rng).items()}
        batch_b = {k: torch.from_numpy(v).to(device) for k, v in b.batch(settings.batch, settings.size, rng).items()}
        (img_a, mask_a), (img_b, mask_b) = net(batch_a["input"], batch_b["input"])
        loss_a = reconstruction_loss(img_a, mask_a, batch_a["target"], batch_a["mask"], batch_a["priority"])
        loss_b = reconstruction_loss(img_b, mask_b, batch_b["target"], batch_b["mask"], batch_b["priority"])
        optimizer.zero_grad(set_to_none=True)
        (loss_a + loss_b).backward()
        optimizer.step()
        step += 1
        history = [*history[-49:], {"a": float(loss_a.detach()), "b": float(loss_b.detach())}]
        bar.update(1)
        bar.set_postfix({k: f"{np.mean([h[k] for h in history]):.4f}" for k in ("a", "b")})
        if rank == 0 and (step % settings.checkpoint_every == 0 or step == settings.steps):
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
            save_atomic({**state, "settings": asdict(settings)}, out / CHECKPOINT)
        if rank == 0 and (step % settings.preview_every == 0 or step == settings.steps):
            write_preview(model, batch_a["target"], batch_b["target"], out / "previews" / f"step_{step:06d}.png")
    bar.close()
    losses = {k: float(np.mean([h[k] for h in history])) for k in ("a", "b")} if history else {}
    if rank == 0:
        info = {"size": settings.size, "steps": step, "a": str(a_dir), "b": str(b_dir), "faces": [len(a), len(b)]}
        (out / INFO).write_text(json.dumps({**info, "losses": losses}, indent=1))
    end_run(world)
    return losses


def write_preview(model: FaceSwapModel, faces_a: torch.Tensor, faces_b: torch.Tensor, path: Path) -> None:
    """Columns of samples; rows A, A→A, A→B, B, B→B (images in [0, 1] shown through the [-1, 1] grid writer)."""
    with torch.no_grad():
        code_a, code_b = model.encoder(faces_a[:4]), model.encoder(faces_b[:4])
        rows = [faces_a[:4], model.decoder_a(code_a)[0], model.decoder_b(code_a)[0], faces_b[:4]]
        rows.append(model.decoder_b(code_b)[0])
    # write_grid lays samples out as rows: transpose so each sample is a column.
    columns = [torch.cat(list(r), dim=2)[None] * 2 - 1 for r in rows]
    write_grid(path, [torch.cat(columns, dim=2)], rows=1)
