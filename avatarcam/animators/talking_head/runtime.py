"""The talking head at run time: ONNX Runtime sessions for the embedder and generator, and per-portrait state
(the style from the embedder, or a fine-tuned generator and style from the portrait cache)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarcam.runtime.onnx import open_session, session_inputs
from avatarcam.runtime.paths import data_dir
from avatarcam.runtime.weights import WeightsError, check_inputs, checked_file

CHECKPOINT = "talking_head.pt"
GENERATOR = "talking_head_generator.onnx"
GENERATOR_INT8 = "talking_head_generator.int8.onnx"
EMBEDDER = "talking_head_embedder.onnx"


def portrait_cache_root() -> Path:
    """Per-portrait fine-tunes, keyed by the meta-trained weights and the image's hash."""
    return data_dir() / "portraits"


def base_weights(folder: Path | None = None) -> str:
    """Which meta-trained weights a fine-tune starts from (their sha256): fine-tunes of other weights are stale."""
    return checked_file(CHECKPOINT, folder)[1]["sha256"]


def portrait_dir(key: str, base: str) -> Path:
    """A portrait's fine-tune of the meta-trained weights `base` (shipping new weights starts afresh)."""
    return portrait_cache_root() / base[:12] / key


@dataclass
class FineTuned:
    """A portrait's fine-tuned generator (fp32 and int8 ONNX) and its style vector."""

    folder: Path

    @property
    def ready(self) -> bool:
        return (self.folder / "done.json").is_file()

    def generator(self, precision: str) -> Path:
        return self.folder / (GENERATOR_INT8 if precision == "int8" else GENERATOR)

    def style(self) -> np.ndarray:
        return np.load(self.folder / "style.npy")

    def info(self) -> dict:
        return json.loads((self.folder / "done.json").read_text())


class TalkingHeadNet:
    """Meta-trained sessions, shared by every portrait; a fine-tuned portrait swaps in its own generator."""

    def __init__(self, precision: str = "int8", threads: int = 0, folder: Path | None = None) -> None:
        if precision not in ("int8", "fp32"):
            raise ValueError(f"unknown precision '{precision}' (known: int8, fp32)")
        self.precision = precision
        self.threads = threads
        self.base = base_weights(folder)
        self.embedder = self._open(EMBEDDER, folder)
        self.meta_generator = self._open(GENERATOR_INT8 if precision == "int8" else GENERATOR, folder)

    def _open(self, name: str, folder: Path | None):
        path, entry = checked_file(name, folder)
        session = open_session(path, self.threads)
        check_inputs(name, session_inputs(session), entry)
        return session

    def style(self, frame: np.ndarray, drawing: np.ndarray) -> np.ndarray:
        """1×style: the portrait's AdaIN parameters from its crop and landmark drawing (3×S×S in [-1, 1])."""
        return self.embedder.run(None, {"frame": frame[None], "drawing": drawing[None]})[0]

    def open_finetuned(self, tuned: FineTuned):
        path = tuned.generator(self.precision)
        try:
            return open_session(path, self.threads)
        except Exception as exc:  # ORT raises its own types for unreadable models
            raise WeightsError(f"fine-tuned generator {path} cannot be loaded: {exc}") from None

    @staticmethod
    def generate(session, warped: np.ndarray, drawing: np.ndarray, style: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image, mask = session.run(None, {"warped": warped[None], "drawing": drawing[None], "style": style})
        return image[0], mask[0]
