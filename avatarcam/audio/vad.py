"""Voice activity: is someone speaking in this chunk of sound?

Silero VAD (MIT) ships its ONNX model inside its wheel; we run that file with ONNX Runtime (the package's own
Python wrapper would import torch, which the live path never does). Where it is not installed, an energy gate
stands in: sound this far above the tracked noise floor counts as speech.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

VAD_RATE = 16000
CHUNK = 512  # samples at 16 kHz (32 ms): the size the Silero model takes
CONTEXT = 64  # the model also sees the end of the previous chunk


class VoiceActivity(Protocol):
    name: str

    def __call__(self, chunk: np.ndarray) -> float:
        """Speech probability (0..1) of CHUNK samples at VAD_RATE."""
        ...


def silero_model_file() -> Path | None:
    """The ONNX model in the installed `silero-vad` wheel, found without importing the package (it imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    return path if path.is_file() else None


class SileroVoiceActivity:
    name = "silero"

    def __init__(self, model: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # it runs beside the video loop
        self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._rate = np.array(VAD_RATE, np.int64)

    def __call__(self, chunk: np.ndarray) -> float:
        x = np.concatenate([self._context, np.asarray(chunk, np.float32)])[None]
        probability, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._rate})
        self._context = x[0, -CONTEXT:]
        return float(probability.ravel()[0])


class EnergyVoiceActivity:
    """Speech where the chunk's level is `margin_db` above the noise floor, which follows quiet stretches quickly
    and loud ones slowly (a floor that rose with every word would soon call speech silence)."""

    name = "energy"

    def __init__(self, margin_db: float = 12.0, span_db: float = 6.0) -> None:
        self.margin_db, self.span_db = margin_db, span_db
        self._floor: float | None = None

    def __call__(self, chunk: np.ndarray) -> float:
        level = level_db(chunk)
        if self._floor is None:
            self._floor = level
        rate = 0.3 if level < self._floor else 0.002
        self._floor += rate * (level - self._floor)
        return float(np.clip((level - self._floor - self.margin_db) / self.span_db + 0.5, 0.0, 1.0))


def level_db(samples: np.ndarray) -> float:
    """RMS level in dB of full scale (−100 for silence)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    return 20.0 * np.log10(max(rms, 1e-5))


def load_voice_activity(kind: str = "silero") -> VoiceActivity:
    """The detector `kind` names; Silero falls back to the energy gate, saying why, where its model is missing."""
    if kind == "silero":
        model = silero_model_file()
        if model is not None:
            try:
                return SileroVoiceActivity(model)
            except Exception as exc:  # a damaged install must not cost the voice its mouth
                log.warning("Silero VAD could not load (%s): using the energy gate", exc)
        else:
            log.warning("silero-vad is not installed (pip install silero-vad): using the energy gate")
    return EnergyVoiceActivity()
