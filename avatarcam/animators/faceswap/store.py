"""Where face-swap models live and what their folders hold (no torch here: the live path imports it)."""

from __future__ import annotations

from pathlib import Path

from avatarcam.runtime.paths import data_dir

CHECKPOINT = "checkpoint.pt"  # training state: encoder, decoders A and B, optimizer, step
INFO = "model.json"  # size, steps, sources, losses, export checks
SWAP = "swap_b.onnx"  # encoder + decoder B: what runs live
SWAP_INT8 = "swap_b.int8.onnx"


class SwapModelError(FileNotFoundError):
    pass


def models_root() -> Path:
    return data_dir() / "faceswap"


def model_dir(name: str) -> Path:
    """A model's folder: `name` itself when it is a path to a folder, else under the user data folder."""
    path = Path(name)
    return path if path.is_dir() or len(path.parts) > 1 else models_root() / name
