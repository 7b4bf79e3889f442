"""Talking-head weights: loading the shipped checkpoint, ONNX export (fp32 and int8 QDQ) and parity checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from avatarcam.animators.talking_head.crops import CROP_SIZE
from avatarcam.animators.talking_head.runtime import CHECKPOINT, EMBEDDER, GENERATOR, GENERATOR_INT8
from avatarcam.models.talking_head import ProjectionDiscriminator, TalkingHead
from avatarcam.runtime.onnx import quantize_int8
from avatarcam.runtime.weights import WeightsError, add_entry, checked_file
from avatarcam.train.common import export_onnx

REBUILD = (
    "avatarcam train data talking-head --clips ../shared/data/driving --stills ../shared/data/faces/utkface "
    "--out CACHE && "
    "avatarcam train talking-head --cache CACHE --out RUN --steps 12000 && "
    "avatarcam export talking-head --run RUN --cache CACHE --steps-note 12000"
)
DATA = (
    "../shared/data/driving (35 of 45 clips; 10 held out), ../shared/data/faces/utkface (400 stills, synthetic motion)"
)
# The output layer stays float in the int8 generator: quantizing it doubles the error (p99 0.066 → 0.029 on
# real crops, [0, 1] units) to save 0.4 ms.
FP32_NODES = ("/head/Conv",)
LICENCE = (
    "non-commercial research (training data: clips under MIT, Apache-2.0, CC BY 4.0, CC BY-NC 4.0, CC BY-NC-SA 4.0 "
    "and GPL-3.0 per origin, of public figures and dataset subjects; UTKFace: non-commercial research)"
)


def load_networks(path: Path, identities: int = 1) -> tuple[TalkingHead, ProjectionDiscriminator]:
    """The meta-trained networks from a shipped checkpoint (tensors only: weights_only=True)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = TalkingHead(int(state["width"]))
        model.load_state_dict({k: v.float() for k, v in state["model"].items()})
        disc = ProjectionDiscriminator(identities)
        missing = disc.load_state_dict({k: v.float() for k, v in state["discriminator"].items()}, strict=False)
    except (RuntimeError, KeyError, EOFError, ValueError) as exc:
        raise WeightsError(f"weights file {path} does not fit the talking-head networks: {exc}") from None
    if set(missing.missing_keys) != {"identity.weight"} or missing.unexpected_keys:
        raise WeightsError(f"weights file {path} does not fit the talking-head discriminator: {missing}")
    return model.eval(), disc


class StyleOf(nn.Module):
    """Embedder + projection for one portrait: (frame, drawing) → AdaIN style (what the runtime needs)."""

    def __init__(self, model: TalkingHead) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: torch.Tensor, drawing: torch.Tensor) -> torch.Tensor:
        embedding = self.model.embedder(frame[:, None], drawing[:, None])
        return self.model.generator.style_from(embedding)


def export_generator(model: TalkingHead, path: Path, size: int = CROP_SIZE) -> None:
    g = model.generator
    x = torch.zeros(1, 3, size, size)
    export_onnx(g, (x, x, torch.zeros(1, g.style_size)), path, ["warped", "drawing", "style"], ["image", "mask"])


def export_embedder(model: TalkingHead, path: Path, size: int = CROP_SIZE) -> None:
    x = torch.zeros(1, 3, size, size)
    export_onnx(StyleOf(model), (x, x), path, ["frame", "drawing"], ["style"])


def parity(reference: Path, candidate: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """How far `candidate`'s blended output is from `reference`'s over real inputs (in [0, 1] pixel units)."""
    a, b = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (reference, candidate))
    diffs = []
    for feed in feeds:
        outs = []
        for session in (a, b):
            image, mask = session.run(None, feed)
            outs.append(feed["warped"] + mask * (image - feed["warped"]))
        diffs.append(np.abs(outs[0] - outs[1]) / 2)
    d = np.concatenate([x.ravel() for x in diffs])
    return {"mean": float(d.mean()), "p99": float(np.percentile(d, 99)), "max": float(d.max())}


def export_all(checkpoint: Path, out: Path, calibration: list[dict[str, np.ndarray]], extra: dict) -> dict:
    """Writes the checkpoint copy, generator fp32 + int8 and the embedder into `out`, with manifest entries."""
    out.mkdir(parents=True, exist_ok=True)
    if checkpoint.resolve() != (out / CHECKPOINT).resolve():
        shutil.copyfile(checkpoint, out / CHECKPOINT)
    model, _ = load_networks(out / CHECKPOINT)
    export_generator(model, out / GENERATOR)
    export_embedder(model, out / EMBEDDER)
    quantize_int8(out / GENERATOR, out / GENERATOR_INT8, calibration[: len(calibration) // 2], FP32_NODES)
    check = parity(out / GENERATOR, out / GENERATOR_INT8, calibration[len(calibration) // 2 :])
    style = model.generator.style_size
    crop = [1, 3, CROP_SIZE, CROP_SIZE]
    common = {"model": "talking-head", "data": DATA, "licence": LICENCE, "rebuild": REBUILD, **extra}
    add_entry(out, CHECKPOINT, inputs={}, format="torch state dicts, fp16 (weights_only)", **common)
    gen_inputs = {"warped": ["batch", *crop[1:]], "drawing": ["batch", *crop[1:]], "style": ["batch", style]}
    add_entry(out, GENERATOR, inputs=gen_inputs, format="onnx fp32", **common)
    add_entry(out, GENERATOR_INT8, inputs=gen_inputs, format="onnx int8 static QDQ", parity_vs_fp32=check, **common)
    emb_inputs = {"frame": ["batch", *crop[1:]], "drawing": ["batch", *crop[1:]]}
    add_entry(out, EMBEDDER, inputs=emb_inputs, format="onnx fp32", **common)
    return check


def verify_shipped(folder: Path | None = None) -> list[Path]:
    """Checks every talking-head file against the manifest (sha256; ONNX input names and shapes)."""
    from avatarcam.runtime.weights import check_inputs

    paths = []
    for name in (CHECKPOINT, GENERATOR, GENERATOR_INT8, EMBEDDER):
        path, entry = checked_file(name, folder)
        if name.endswith(".onnx"):
            try:
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            except Exception as exc:  # ORT raises its own exception types for malformed models
                raise WeightsError(f"weights file {path} is not a loadable ONNX model: {exc}") from None
            check_inputs(name, {i.name: list(i.shape) for i in session.get_inputs()}, entry)
        paths.append(path)
    return paths


def calibration_feeds(cache_dir: Path, model: TalkingHead, count: int = 64, seed: int = 1) -> list[dict]:
    """Real generator inputs from the training cache, each with its person's style (for int8 and parity)."""
    from avatarcam.train.talking_head.episodes import EpisodeSet

    data = EpisodeSet(cache_dir)
    rng = np.random.default_rng(seed)
    style_of = StyleOf(model).eval()
    feeds = []
    with torch.no_grad():
        for _ in range(count):
            ep = data.episode(data.pick(rng), 1, rng)
            style = style_of(torch.from_numpy(ep["shots"]), torch.from_numpy(ep["shot_drawings"])).numpy()
            feeds.append({"warped": ep["warped"][None], "drawing": ep["drawing"][None], "style": style})
    return feeds
