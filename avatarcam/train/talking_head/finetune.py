"""`avatarcam avatar add PORTRAIT`: one-shot fine-tuning of the talking head on the portrait (the paper's
second stage), cached per portrait.

The portrait's style starts as the projection of its embedding and the discriminator's identity column as the
embedding itself; then generator, style and discriminator are trained on views made from the one image:
- round trips: the portrait warped to another pose (scripted motion) and warped back, with the portrait itself as
  the target (the generator learns this face's detail, and to undo the warp's damage);
- moved views: the portrait warped to those poses, with the meta-trained generator's own output as the target
  (what it learned about mouths and lids from many people is kept, not overwritten by one neutral image).
The result is written to a temporary folder and moved into place whole: an interrupted fine-tune leaves the
previous one untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from avatarcam.animators.talking_head.crops import crop, draw_landmarks, face_box, to_tensor_layout
from avatarcam.animators.talking_head.runtime import (
    CHECKPOINT,
    GENERATOR,
    GENERATOR_INT8,
    FineTuned,
    base_weights,
    portrait_dir,
)
from avatarcam.animators.warp import WarpAnimator
from avatarcam.config import AnimatorConfig
from avatarcam.demo import SCRIPT_SECONDS, scripted_motion
from avatarcam.models.talking_head import blend
from avatarcam.runtime.background import report_progress
from avatarcam.runtime.onnx import quantize_int8
from avatarcam.runtime.weights import checked_file
from avatarcam.tracking.geometry import canonical_shape
from avatarcam.tracking.tracker import face_from_landmarks
from avatarcam.train.talking_head.export import FP32_NODES, export_generator, load_networks, parity
from avatarcam.train.talking_head.losses import LossWeights, discriminator_step, generator_loss
from avatarcam.types import Avatar, Motion


@dataclass
class FineTuneSettings:
    steps: int = 300
    batch: int = 4
    views: int = 24
    lr_g: float = 5e-5
    lr_d: float = 2e-4
    seed: int = 0
    threads: int = 0


@dataclass
class FineTuneResult:
    folder: Path
    l1_before: float  # round-trip views vs the portrait, [0, 1] pixel units
    l1_after: float
    seconds: float
    int8_parity: dict


def _tensor(items: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack([to_tensor_layout(i) for i in items]))


def training_views(avatar: Avatar, count: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Round-trip and moved views of the one portrait (see the module's docstring)."""
    face = avatar.face
    box = face_box(face.landmarks)
    config = AnimatorConfig(size=avatar.size)
    warp = WarpAnimator(config)
    warp.prepare(avatar)
    shape = canonical_shape(face)
    back, moved, moved_drawings = [], [], []
    own = Motion(face.landmarks, face.rotation)
    for t in rng.uniform(0, SCRIPT_SECONDS, size=count):
        motion = scripted_motion(avatar, shape, float(t))
        pseudo = warp(motion)
        moved_box = face_box(motion.landmarks)
        moved.append(crop(pseudo, moved_box))
        moved_drawings.append(draw_landmarks(motion.landmarks, moved_box))
        there = Avatar(avatar.name, pseudo, face_from_landmarks(motion.landmarks), key="")
        back_warp = WarpAnimator(config)
        back_warp.prepare(there)
        back.append(crop(back_warp(own), box))
    return {
        "target": _tensor([crop(avatar.image, box)]),
        "drawing": _tensor([draw_landmarks(face.landmarks, box)]),
        "back": _tensor(back),
        "moved": _tensor(moved),
        "moved_drawings": _tensor(moved_drawings),
    }


def _replace_dir(tmp: Path, final: Path) -> None:
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def finetune(
    avatar: Avatar, settings: FineTuneSettings | None = None, weights: Path | None = None, progress: bool = True
) -> FineTuneResult:
    settings = settings or FineTuneSettings()
    start = time.monotonic()
    if settings.threads:
        torch.set_num_threads(settings.threads)
        if settings.threads == 1:  # a background job's budget: no pool of inter-op threads either
            torch.set_num_interop_threads(1)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    checkpoint, entry = checked_file(CHECKPOINT, weights)
    model, disc = load_networks(checkpoint, identities=1)
    views = training_views(avatar, settings.views, rng)
    gen = model.generator
    with torch.no_grad():
        embedding = model.embedder(views["target"][:, None], views["drawing"][:, None])
        style = nn.Parameter(gen.style_from(embedding).clone())
        disc.identity.weight.copy_(embedding)
        n = settings.views
        drawings = views["drawing"].expand(n, -1, -1, -1)
        teacher = blend(views["moved"], *gen(views["moved"], views["moved_drawings"], style.expand(n, -1)))
        before = _round_trip_l1(gen, views, style)
    gen.train()
    disc.train()
    g_opt = torch.optim.Adam([*gen.parameters(), style], lr=settings.lr_g, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(disc.parameters(), lr=settings.lr_d, betas=(0.5, 0.999))
    weights_ = LossWeights()
    half = max(1, settings.batch // 2)
    who = torch.zeros(2 * half, dtype=torch.long)
    for step in tqdm(range(settings.steps), desc="fine-tune", unit="step", disable=not progress):
        if step % 5 == 0:
            report_progress(step, settings.steps)
        i = torch.from_numpy(rng.integers(n, size=half))
        j = torch.from_numpy(rng.integers(n, size=half))
        warped = torch.cat([views["back"][i], views["moved"][j]])
        drawing = torch.cat([drawings[i], views["moved_drawings"][j]])
        real = torch.cat([views["target"].expand(half, -1, -1, -1), teacher[j]])
        image, mask = gen(warped, drawing, style.expand(2 * half, -1))
        fake = blend(warped, image, mask)
        _, real_features = discriminator_step(disc, d_opt, real, fake, drawing, who)
        loss, _ = generator_loss(disc, fake, real, real_features, drawing, who, weights_, mask)
        g_opt.zero_grad(set_to_none=True)
        loss.backward()
        g_opt.step()
    gen.eval()
    with torch.no_grad():
        after = _round_trip_l1(gen, views, style)
    final = portrait_dir(avatar.key, entry["sha256"])
    return _save(final, avatar, model, style.detach().numpy(), views, settings, before, after, start)


def _round_trip_l1(gen, views: dict[str, torch.Tensor], style: torch.Tensor) -> float:
    n = views["back"].shape[0]
    drawings = views["drawing"].expand(n, -1, -1, -1)
    out = blend(views["back"], *gen(views["back"], drawings, style.expand(n, -1)))
    return float((out - views["target"]).abs().mean() / 2)


def _save(final: Path, avatar, model, style: np.ndarray, views, settings, before: float, after: float, start: float):
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write(tmp, avatar, model, style, views, settings, before, after, start)
    except BaseException:  # interrupted or failed: the previous fine-tune (if any) stays as it was
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace_dir(tmp, final)
    info = json.loads((final / "done.json").read_text())
    return FineTuneResult(final, before, after, info["seconds"], info["int8_parity"])


def _write(tmp: Path, avatar, model, style: np.ndarray, views, settings, before: float, after: float, start: float):
    export_generator(model, tmp / GENERATOR)
    n = views["back"].shape[0]
    drawing = views["drawing"][0].numpy()
    feeds = [
        {"warped": views[key][k : k + 1].numpy(), "drawing": draw[None], "style": style}
        for k in range(n)
        for key, draw in (("back", drawing), ("moved", views["moved_drawings"][k].numpy()))
    ]
    quantize_int8(tmp / GENERATOR, tmp / GENERATOR_INT8, feeds[::2], FP32_NODES)
    check = parity(tmp / GENERATOR, tmp / GENERATOR_INT8, feeds[1::2])
    np.save(tmp / "style.npy", style)
    seconds = time.monotonic() - start
    info = {
        "portrait": avatar.source or avatar.name,
        "l1_before": before,
        "l1_after": after,
        "seconds": seconds,
        "int8_parity": check,
        "settings": asdict(settings),
    }
    (tmp / "done.json").write_text(json.dumps(info, indent=1))


def ensure_finetuned(avatar: Avatar, settings: FineTuneSettings | None = None) -> bool:
    """Fine-tunes on `avatar` unless a fine-tune of the current weights is cached; whether it trained."""
    if FineTuned(portrait_dir(avatar.key, base_weights())).ready:
        return False
    finetune(avatar, settings, progress=False)
    return True


def main(argv: list[str] | None = None) -> int:
    """The background job the talking-head animator starts for a new portrait (a `BackgroundJob`)."""
    from avatarcam.avatar import AvatarError, load_avatar
    from avatarcam.train.talking_head.data import FRAME_SIZE

    parser = argparse.ArgumentParser(description="fine-tune the talking head on one portrait (cached)")
    parser.add_argument("portrait")
    parser.add_argument("--steps", type=int, default=FineTuneSettings.steps)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        avatar = load_avatar(args.portrait, FRAME_SIZE)
    except AvatarError as exc:
        print(exc, file=sys.stderr)
        return 2
    finetune(avatar, FineTuneSettings(steps=args.steps, threads=args.threads), progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
