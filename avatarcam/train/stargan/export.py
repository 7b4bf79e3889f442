"""`avatarcam export stargan`: the trained generator to ONNX for the live edits, fp32 and (where it holds
quality on real faces) int8, with manifest entries that name the attributes it was trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from avatarcam.edits.editor import CLASSIFIER, EDITOR, EDITOR_INT8
from avatarcam.models.stargan import AttributesOf, Discriminator, EditExport, Generator
from avatarcam.runtime.onnx import quantize_int8
from avatarcam.runtime.weights import add_entry
from avatarcam.train.common import export_onnx, output_parity

INT8_MAX_MEAN = 0.01  # int8 is kept only while its edited face stays this close to fp32's ([0, 1] pixel units)


def load_networks(checkpoint: Path) -> tuple[Generator, Discriminator, list[str], int]:
    """The generator and critic of a training checkpoint, its attributes and its face size."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    settings, attributes = state["settings"], list(state["attributes"])
    gen = Generator(len(attributes), settings["width"], settings["blocks"])
    gen.load_state_dict(state["generator"])
    critic = Discriminator(len(attributes), settings["size"], settings["width"])
    critic.load_state_dict(state["critic"])
    return gen.eval(), critic.eval(), attributes, int(settings["size"])


def export_stargan(checkpoint: Path, out: Path, faces: np.ndarray, labels: np.ndarray, fields: dict) -> dict:
    """Writes the fp32 editor (and int8 where it holds) into `out` with manifest entries; `faces` (uint8
    N×3×S×S) and `labels` are real held-out faces: int8's calibration and its check. Returns the check."""
    gen, critic, attributes, size = load_networks(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    (out / EDITOR_INT8).unlink(missing_ok=True)  # an int8 of an earlier export would outlive a retrained model
    probe = torch.zeros(1, 3, size, size), torch.zeros(1, len(attributes))
    export_onnx(EditExport(gen), probe, out / EDITOR, ["face", "attributes"], ["image", "mask"])
    export_onnx(AttributesOf(critic), probe[:1], out / CLASSIFIER, ["face"], ["attributes"])
    fields = {**fields, "attributes": attributes, "size": size}
    add_entry(out, CLASSIFIER, inputs={"face": ["batch", 3, size, size]}, **fields)
    rng = np.random.default_rng(0)
    feeds = []
    for face, label in zip(faces, labels, strict=True):
        target, flip = label.copy(), rng.integers(len(attributes))
        target[flip] = 1 - target[flip]
        feeds.append({"face": face[None].astype(np.float32) / 127.5 - 1, "attributes": target[None].astype(np.float32)})
    inputs = {"face": ["batch", 3, size, size], "attributes": ["batch", len(attributes)]}
    entry = {"inputs": inputs, **fields}
    add_entry(out, EDITOR, **entry)
    quantize_int8(out / EDITOR, out / EDITOR_INT8, feeds[::2])
    check = {"int8": output_parity(out / EDITOR, out / EDITOR_INT8, feeds[1::2], unit=2.0)}  # in [0, 1] units
    if check["int8"]["mean"] > INT8_MAX_MEAN:
        (out / EDITOR_INT8).unlink()
        check["int8_dropped"] = True
    else:
        add_entry(out, EDITOR_INT8, **entry, int8_parity=check["int8"])
    return check
