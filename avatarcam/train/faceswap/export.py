"""The live face-swap model: encoder + decoder B as ONNX (fp32 and int8 QDQ), checked against torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from avatarcam.animators.faceswap.store import CHECKPOINT, INFO, SWAP, SWAP_INT8, SwapModelError
from avatarcam.models.faceswap import FaceSwapModel, SwapToB
from avatarcam.runtime.onnx import quantize_int8
from avatarcam.train.common import export_onnx, output_parity
from avatarcam.train.faceswap.faceset import FaceSet

INT8_MAX_MEAN = 0.01  # int8 is used live only while its mean error stays under this ([0, 1] pixel units)
FP32_NODES = ("/decoder/head/Conv",)  # the output layer stays float: its error is what shows


def load_model(folder: Path) -> FaceSwapModel:
    path = folder / CHECKPOINT
    if not path.is_file():
        raise SwapModelError(
            f"no trained face swap in {folder} ({CHECKPOINT} missing): train one with "
            "`avatarcam train faceswap --a DIR --b DIR --name NAME`"
        )
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = FaceSwapModel(state["settings"]["size"])
    decoders = {k.split(".")[0] for k in state["model"]}
    if {"encoder", "decoder_a", "decoder_b"} - decoders:
        raise SwapModelError(f"{path} lacks {sorted({'encoder', 'decoder_a', 'decoder_b'} - decoders)}: retrain it")
    model.load_state_dict(state["model"])
    return model.eval()


def export_swap(folder: Path, faces_a: FaceSet | None = None) -> dict:
    """Writes swap_b.onnx (+ int8 when calibration faces are given and it holds quality); returns the check,
    whose "live" says which one the animator runs."""
    model = load_model(folder)
    size = model.size
    (folder / SWAP_INT8).unlink(missing_ok=True)  # an int8 of an earlier export would outlive a retrained model
    export_onnx(SwapToB(model), (torch.zeros(1, 3, size, size),), folder / SWAP, ["face"], ["image", "mask"])
    session = ort.InferenceSession(str(folder / SWAP), providers=["CPUExecutionProvider"])
    probe = torch.rand(1, 3, size, size)
    with torch.no_grad():
        expected = SwapToB(model)(probe)[0].numpy()
    check: dict = {"fp32_max": float(np.abs(session.run(None, {"face": probe.numpy()})[0] - expected).max())}
    if faces_a is not None:
        rng = np.random.default_rng(0)
        feeds = [{"face": faces_a.batch(1, size, rng)["target"]} for _ in range(32)]
        quantize_int8(folder / SWAP, folder / SWAP_INT8, feeds[:16], FP32_NODES)
        check["int8"] = output_parity(folder / SWAP, folder / SWAP_INT8, feeds[16:])
        if check["int8"]["mean"] > INT8_MAX_MEAN:
            (folder / SWAP_INT8).unlink()  # too far from fp32: the live path uses fp32
            check["int8_dropped"] = True
    check["live"] = "int8" if (folder / SWAP_INT8).is_file() else "fp32"
    info_path = folder / INFO
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info_path.write_text(json.dumps({**info, "export": check}, indent=1))
    return check
