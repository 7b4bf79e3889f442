"""What every training command shares: torchrun/DDP set-up, the device, atomic checkpoints, sample grids and
ONNX export."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
from torch import distributed as dist
from torch import nn

Settings = TypeVar("Settings", bound=Any)


def distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def device_for(rank: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count()
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def start_run(out_dir: str | Path, threads: int, seed: int) -> tuple[int, int, torch.device, Path]:
    """Rank, world size, device and the (created) run folder, with torch's threads and seed set."""
    rank, world = distributed()
    device = device_for(rank)
    if threads:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    return rank, world, device, out


def pick_preset(presets: Mapping[str, Settings], name: str, **changes: object) -> Settings:
    """The preset `name` (a frozen dataclass) with the changes that are not None applied."""
    if name not in presets:
        raise ValueError(f"unknown preset '{name}' (valid: {', '.join(presets)})")
    return replace(presets[name], **{k: v for k, v in changes.items() if v is not None})


def history_means(history: list[dict[str, float]], keys: Iterable[str] | None = None) -> dict[str, float]:
    """Each loss's mean over the recent steps that logged it (every key any step logged, sorted, by default); a
    key no recent step logged (a lazy regularizer right after a resume) is left out."""
    keys = sorted({k for h in history for k in h}) if keys is None else keys
    return {k: float(np.mean(v)) for k in keys if (v := [h[k] for h in history if k in h])}


def end_run(world: int) -> None:
    """Every process waits for the others, then leaves the process group (torchrun); alone, nothing to do."""
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def to_image(t: torch.Tensor) -> np.ndarray:
    """3×H×W in [-1, 1] → H×W×3 uint8."""
    return ((t.detach().float().cpu().clamp(-1, 1).permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)


def write_grid(path: Path, columns: list[torch.Tensor], rows: int = 4) -> None:
    """One row per sample, one column per tensor batch (warped, output, target, mask…)."""
    tiles = []
    for i in range(min(rows, columns[0].shape[0])):
        tiles.append(np.concatenate([to_image(c[i].expand(3, -1, -1)) for c in columns], axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(tiles, axis=0), cv2.COLOR_RGB2BGR))


def export_onnx(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str]) -> None:
    """`module` (in eval mode) to ONNX at `path`, written whole, with a dynamic batch axis on every input and
    output."""
    module.eval()
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes taken as constants: sizes are fixed here
        torch.onnx.export(
            module,
            args,
            str(tmp),
            input_names=inputs,
            output_names=outputs,
            opset_version=17,
            dynamic_axes={n: {0: "batch"} for n in inputs + outputs},
            dynamo=False,
        )
    tmp.replace(path)


def output_parity(reference: Path, candidate: Path, feeds: list[dict[str, np.ndarray]], unit: float = 1.0) -> dict:
    """How far `candidate`'s first output is from `reference`'s over the same inputs (an int8 model against its
    fp32 one): mean, 99th percentile and max of |Δ| / `unit` (2 for images in [-1, 1], to read in [0, 1])."""
    import onnxruntime as ort

    a, b = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (reference, candidate))
    d = np.concatenate([np.abs(a.run(None, feed)[0] - b.run(None, feed)[0]).ravel() / unit for feed in feeds])
    return {"mean": float(d.mean()), "p99": float(np.percentile(d, 99)), "max": float(d.max())}
