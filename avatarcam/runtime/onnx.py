"""ONNX Runtime sessions: the fastest provider present (TensorRT, CUDA, else CPU), inputs checked once."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
PREFERRED = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def providers() -> list[str]:
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    return [p for p in PREFERRED if p in available]


def session_inputs(session) -> dict[str, list]:
    return {i.name: list(i.shape) for i in session.get_inputs()}


def open_session(path: str | Path, threads: int = 0):
    """An InferenceSession on the best provider; `threads` caps CPU threads (0: ORT's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=providers())
    log.debug("%s on %s", Path(path).name, session.get_providers()[0])
    return session


def quantize_int8(
    fp32: Path, out: Path, calibration: list[dict[str, np.ndarray]], keep_fp32: tuple[str, ...] = ()
) -> None:
    """Static int8 QDQ quantization (per-channel weights), calibrated on real inputs; `keep_fp32` names nodes
    left in float."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(calibration)

        def get_next(self):
            return next(self._items, None)

    # The quantizer logs advice on the root logger for every normalization layer; it changes nothing here.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        quantize_static(
            str(fp32),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(keep_fp32),
        )
    finally:
        logging.disable(previous)
