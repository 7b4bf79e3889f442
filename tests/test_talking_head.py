"""Talking Heads: the networks, the training cache, meta-training (also under torchrun), one-portrait fine-tuning,
ONNX export and parity, the weights manifest, and the live `talking-head` animator.

Training runs here are tiny (a few steps, on a cache made from real frames of the bundled avatar talking); the
shipped weights in weights/ are what the live-path and parity tests use.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import FAKE_BACKEND, write_mp4

from avatarcam.animators.talking_head.animator import TalkingHeadAnimator
from avatarcam.animators.talking_head.crops import CROP_SIZE, face_box
from avatarcam.animators.talking_head.runtime import GENERATOR, GENERATOR_INT8, FineTuned, base_weights, portrait_dir
from avatarcam.avatar import default_avatar_path, load_avatar
from avatarcam.cli import main
from avatarcam.config import AnimatorConfig, ChainConfig, Config, OutputConfig, TalkingHeadConfig
from avatarcam.demo import DemoSource
from avatarcam.io.sinks import VirtualCameraSink
from avatarcam.models.talking_head import (
    EMBED_DIM,
    Embedder,
    Generator,
    ProjectionDiscriminator,
    TalkingHead,
    blend,
)
from avatarcam.pipeline import LivePipeline
from avatarcam.registry import ANIMATORS
from avatarcam.runtime.weights import WeightsError, checked_file, weights_dir
from avatarcam.stages import Packet
from avatarcam.stages.chain import motion_chain
from avatarcam.train.talking_head import finetune as finetune_module
from avatarcam.train.talking_head.data import DataSettings, build_cache
from avatarcam.train.talking_head.episodes import EpisodeSet
from avatarcam.train.talking_head.export import export_generator, load_networks, parity, verify_shipped
from avatarcam.train.talking_head.finetune import FineTuneSettings, finetune
from avatarcam.train.talking_head.losses import multiscale_l1
from avatarcam.train.talking_head.meta_train import CHECKPOINT, WEIGHTS, TrainSettings, train
from avatarcam.types import Avatar, Frame, Motion

REPO = Path(__file__).resolve().parents[1]
S = 64  # crop size for the module tests (any multiple of 8 works)
FP32_TOLERANCE = 1e-4  # ONNX fp32 vs torch, max abs difference in [-1, 1] units
INT8_MEAN, INT8_P99 = 0.005, 0.05  # int8 vs fp32 on real inputs, blended output in [0, 1] pixel units


def images(n: int, size: int = S) -> torch.Tensor:
    return torch.rand(n, 3, size, size) * 2 - 1


# ---------------------------------------------------------------- modules


def test_generator_shapes_and_gradients() -> None:
    gen = Generator(width=8)
    # The head and the projection start at zero (output = warp, neutral style), which blocks gradients to the
    # body until the first update; give them that update's worth of weight.
    with torch.no_grad():
        gen.head.weight.normal_(std=0.01)
        gen.project.weight.normal_(std=0.01)
    warped, drawing = images(2), images(2)
    style = gen.style_from(torch.randn(2, EMBED_DIM))
    assert style.shape == (2, gen.style_size)
    image, mask = gen(warped, drawing, style)
    assert image.shape == (2, 3, S, S) and mask.shape == (2, 1, S, S)
    assert image.abs().max() <= 1 and 0 <= mask.min() and mask.max() <= 1
    out = blend(warped, image, mask)
    (out - drawing).abs().mean().backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_the_generator_starts_as_the_warp() -> None:
    """Mask closed at initialization: an untrained generator changes the warp by little."""
    gen = Generator(width=8)
    warped = images(2)
    out = blend(warped, *gen(warped, images(2), gen.style_from(torch.randn(2, EMBED_DIM))))
    assert (out - warped).abs().mean() < 0.1


def test_embedder_averages_the_shots_and_style_depends_on_it() -> None:
    emb = Embedder(width=8)
    frames, drawings = images(6).view(2, 3, 3, S, S), images(6).view(2, 3, 3, S, S)
    e = emb(frames, drawings)
    assert e.shape == (2, EMBED_DIM)
    one_by_one = torch.stack([emb(frames[:, k : k + 1], drawings[:, k : k + 1]) for k in range(3)]).mean(0)
    assert torch.allclose(e, one_by_one, atol=1e-5)
    e.sum().backward()
    assert all(p.grad is not None for p in emb.parameters())


def test_projection_discriminator_scores_by_identity() -> None:
    disc = ProjectionDiscriminator(identities=3, width=8).eval()  # eval: spectral norm holds still
    x, d = images(2), images(2)
    score, features, w = disc(x, d, torch.tensor([0, 2]))
    assert score.shape == (2,) and w.shape == (2, EMBED_DIM) and len(features) >= 2
    with torch.no_grad():
        disc.identity.weight[1] += 1.0
        other, _, _ = disc(x, d, torch.tensor([1, 2]))
    assert not torch.isclose(other[0], score[0]) and torch.isclose(other[1], score[1])  # V·(W_i + w0) + b
    score.sum().backward()
    assert disc.identity.weight.grad is not None and disc.identity.weight.grad[1].abs().sum() == 0


def test_talking_head_end_to_end_gradients() -> None:
    model = TalkingHead(width=8)
    fake, mask, embedding = model(images(4).view(2, 2, 3, S, S), images(4).view(2, 2, 3, S, S), images(2), images(2))
    assert fake.shape == (2, 3, S, S) and embedding.shape == (2, EMBED_DIM)
    multiscale_l1(fake, images(2)).backward()
    assert all(p.grad is not None for p in model.embedder.parameters())


# ---------------------------------------------------------------- training cache and meta-training


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory, demo_frames: list[Frame]) -> Path:
    """A training cache from two short clips of a real face (the bundled avatar talking) and one still."""
    root = tmp_path_factory.mktemp("th-data")
    clips = root / "clips"
    clips.mkdir()
    frames = [f.image for f in demo_frames]
    write_mp4(clips / "alpha.mp4", frames[:20])
    write_mp4(clips / "bravo.mp4", [np.ascontiguousarray(f[:, ::-1]) for f in frames[20:]])
    write_mp4(clips / "charlie.mp4", [np.full_like(f, 90) for f in frames[:12]])  # no face anywhere
    stills = root / "stills"
    stills.mkdir()
    shutil.copy(default_avatar_path(), stills / "astronaut.png")
    settings = DataSettings(frames_per_clip=12, sources_per_clip=1, still_frames=6, stills=1)
    build_cache(clips, root / "cache", stills, settings)
    return root / "cache"


def test_train_data_caches_faces_skips_faceless_clips_and_resumes(tiny_cache: Path) -> None:
    summary = json.loads((tiny_cache / "cache.json").read_text())
    assert summary["clips"] == ["alpha", "bravo"] and summary["stills"] == 1
    example = np.load(tiny_cache / "clips" / "alpha.npz")
    n = len(example["targets"])
    assert 8 <= n <= 12 and example["targets"].shape == (n, CROP_SIZE, CROP_SIZE, 3)
    assert example["landmarks"].shape == (n, 478, 3) and example["warped"].shape == (1, n, CROP_SIZE, CROP_SIZE, 3)
    # Resumable: a second run keeps what is cached (same file, untouched).
    stamp = (tiny_cache / "clips" / "alpha.npz").stat().st_mtime_ns
    clips_dir = tiny_cache.parent / "clips"
    build_cache(clips_dir, tiny_cache, None, DataSettings(frames_per_clip=12, sources_per_clip=1))
    assert (tiny_cache / "clips" / "alpha.npz").stat().st_mtime_ns == stamp


def test_episodes_never_embed_the_target_frame(tiny_cache: Path) -> None:
    data = EpisodeSet(tiny_cache)
    rng = np.random.default_rng(0)
    batch = data.sample(6, 2, rng)
    assert batch["shots"].shape == (6, 2, 3, CROP_SIZE, CROP_SIZE) and batch["target"].shape == (6, 3, 128, 128)
    for i in range(6):
        for k in range(2):
            assert (batch["shots"][i, k] - batch["target"][i]).abs().mean() > 1e-3


def _rec_loss(model: TalkingHead, data: EpisodeSet, seed: int = 7) -> float:
    """Reconstruction L1 of the blended output on a fixed set of episodes."""
    batch = data.sample(8, 2, np.random.default_rng(seed))
    with torch.no_grad():
        fake, _, _ = model.eval()(batch["shots"], batch["shot_drawings"], batch["warped"], batch["drawing"])
    return float(multiscale_l1(fake, batch["target"]))


def _model_at(run: Path) -> TalkingHead:
    state = torch.load(run / CHECKPOINT, weights_only=False)
    model = TalkingHead(state["settings"]["width"])
    model.load_state_dict(state["model"])
    return model


def test_meta_training_lowers_the_loss_checkpoints_and_resumes(
    tiny_cache: Path, tmp_path: Path, deterministic: None
) -> None:
    data = EpisodeSet(tiny_cache)
    settings = TrainSettings(steps=1, batch=4, width=8, checkpoint_every=10, sample_every=10, lr_g=1e-3)
    train(tiny_cache, tmp_path, settings, progress=False)
    before = _rec_loss(_model_at(tmp_path), data)
    settings.steps = 40
    train(tiny_cache, tmp_path, settings, progress=False)  # resumes at step 1
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert state["step"] == 40
    assert _rec_loss(_model_at(tmp_path), data) < 0.9 * before
    assert (tmp_path / "samples" / "step_000040.png").is_file() and (tmp_path / WEIGHTS).is_file()
    grid = cv2.imread(str(tmp_path / "samples" / "step_000010.png"))
    assert grid.shape[1] == 4 * CROP_SIZE  # warped | output | target | mask


def test_meta_training_runs_under_torchrun_with_two_cpu_processes(tiny_cache: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29613"]
    cmd += ["-m", "avatarcam.cli", "train", "talking-head", "--cache", str(tiny_cache), "--out", str(tmp_path)]
    cmd += ["--steps", "3", "--batch", "2", "--threads", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["step"] == 3
    assert "last losses" in done.stdout


# ---------------------------------------------------------------- shipped weights, export and parity


@pytest.fixture(scope="module")
def shipped() -> Path:
    folder = weights_dir()
    if not (folder / "manifest.json").is_file():
        pytest.fail(f"the shipped weights are missing from {folder}")
    return folder


def _real_feeds(shipped: Path, avatar: Avatar, count: int = 8) -> list[dict[str, np.ndarray]]:
    """Real generator inputs: the avatar's fine-tune views (warped portrait, landmark drawing, its style)."""
    model, _ = load_networks(shipped / "talking_head.pt")
    views = finetune_module.training_views(avatar, count, np.random.default_rng(3))
    with torch.no_grad():
        embedding = model.embedder(views["target"][:, None], views["drawing"][:, None])
        style = model.generator.style_from(embedding).numpy()
    return [
        {
            "warped": views["moved"][k : k + 1].numpy(),
            "drawing": views["moved_drawings"][k : k + 1].numpy(),
            "style": style,
        }
        for k in range(count)
    ]


def test_shipped_weights_match_the_manifest(shipped: Path) -> None:
    paths = verify_shipped(shipped)
    assert {p.name for p in paths} == {"talking_head.pt", GENERATOR, GENERATOR_INT8, "talking_head_embedder.onnx"}
    entry = json.loads((shipped / "manifest.json").read_text())["files"][GENERATOR]
    assert {"sha256", "inputs", "data", "licence", "rebuild"} <= set(entry)
    assert sum(p.stat().st_size for p in paths) < 20e6


def test_onnx_fp32_matches_torch_and_int8_stays_close(shipped: Path, astronaut_face: Avatar, tmp_path: Path) -> None:
    model, _ = load_networks(shipped / "talking_head.pt")
    export_generator(model, tmp_path / "g.onnx")
    feeds = _real_feeds(shipped, astronaut_face)
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    for feed in feeds[:3]:
        with torch.no_grad():
            image, mask = model.generator(*(torch.from_numpy(feed[k]) for k in ("warped", "drawing", "style")))
        onnx_image, onnx_mask = session.run(None, feed)
        assert np.abs(onnx_image - image.numpy()).max() < FP32_TOLERANCE
        assert np.abs(onnx_mask - mask.numpy()).max() < FP32_TOLERANCE
    check = parity(shipped / GENERATOR, shipped / GENERATOR_INT8, feeds)
    assert check["mean"] < INT8_MEAN and check["p99"] < INT8_P99, check


def _copy_weights(shipped: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    shutil.copytree(shipped, folder)
    return folder


def test_weights_with_a_wrong_sha256_are_refused_by_name(shipped: Path, tmp_path: Path) -> None:
    folder = _copy_weights(shipped, tmp_path)
    data = bytearray((folder / GENERATOR_INT8).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / GENERATOR_INT8).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=f"{GENERATOR_INT8} does not match its sha256"):
        verify_shipped(folder)


def test_weights_with_other_shapes_are_refused_by_name(shipped: Path, tmp_path: Path) -> None:
    folder = _copy_weights(shipped, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][GENERATOR]["inputs"]["style"] = ["batch", 999]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match=f"{GENERATOR} has inputs"):
        verify_shipped(folder)


def test_missing_weights_stop_the_cli_with_one_clear_line(
    shipped: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    folder = _copy_weights(shipped, tmp_path)
    (folder / "talking_head_embedder.onnx").unlink()
    monkeypatch.setenv("AVATARCAM_WEIGHTS", str(folder))
    driver = tmp_path / "d.mp4"
    write_mp4(driver, [np.full((64, 64, 3), 100, np.uint8)] * 2)
    argv = ["render", "--animator", "talking-head", "--avatar", str(default_avatar_path()), "--driver", str(driver)]
    argv += ["--out", str(tmp_path / "o.mp4")]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "talking_head_embedder.onnx is missing" in err[0] and "rebuild" in err[0]
    with pytest.raises(WeightsError, match="is missing"):
        checked_file("talking_head_embedder.onnx", folder)


# ---------------------------------------------------------------- one-portrait fine-tuning


@pytest.fixture
def portraits_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AVATARCAM_DATA", str(tmp_path / "data"))
    return tmp_path / "data" / "portraits"


def test_fine_tuning_moves_the_output_toward_the_portrait(
    shipped: Path, astronaut_face: Avatar, portraits_home: Path, deterministic: None
) -> None:
    result = finetune(astronaut_face, FineTuneSettings(steps=12, views=4, batch=4, lr_g=2e-4), progress=False)
    assert result.l1_after < result.l1_before
    tuned = FineTuned(portrait_dir(astronaut_face.key, base_weights()))
    assert tuned.ready and tuned.folder == result.folder and tuned.folder.parent.parent == portraits_home
    assert tuned.style().shape[0] == 1 and (tuned.folder / GENERATOR_INT8).is_file()
    assert result.int8_parity["mean"] < INT8_MEAN
    assert not finetune_module.ensure_finetuned(astronaut_face)  # cached: `eval --finetune` reuses it


def test_an_interrupted_fine_tune_leaves_the_previous_one_intact(
    shipped: Path, astronaut_face: Avatar, portraits_home: Path, monkeypatch: pytest.MonkeyPatch, deterministic: None
) -> None:
    settings = FineTuneSettings(steps=2, views=2, batch=2)
    first = finetune(astronaut_face, settings, progress=False)
    before = {p.name: p.read_bytes() for p in first.folder.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune_module, "quantize_int8", interrupted)
    with pytest.raises(KeyboardInterrupt):
        finetune(astronaut_face, settings, progress=False)
    assert {p.name: p.read_bytes() for p in first.folder.iterdir()} == before
    assert [p.name for p in first.folder.parent.iterdir()] == [first.folder.name]  # no half-written folder left


def test_a_portrait_without_a_face_is_refused_before_training(
    shipped: Path, tmp_path: Path, portraits_home: Path, capsys
) -> None:
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((300, 300, 3), 180, np.uint8))
    started = time.monotonic()
    assert main(["avatar", "add", str(wall), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no face found" in err[0]
    assert time.monotonic() - started < 30 and not portraits_home.exists()


# ---------------------------------------------------------------- live


def _talking_head_config(finetune_on: bool = False, finetune_steps: int = 300) -> Config:
    """The talking head at 256² into a 256² output without a HUD, its stages run in turn (one output per frame)."""
    return Config(
        animator=AnimatorConfig(
            name="talking-head",
            size=256,
            talking_head=TalkingHeadConfig(finetune=finetune_on, finetune_steps=finetune_steps),
        ),
        output=OutputConfig(width=256, height=256, hud=False),
        chain=ChainConfig(pipelined=False),
    )


def test_live_pipeline_with_the_talking_head_into_the_virtual_camera(
    shipped: Path, astronaut_face: Avatar, fake_virtualcam, portraits_home: Path
) -> None:
    config = _talking_head_config()
    source = DemoSource(astronaut_face, 320, 240, realtime=False)
    out = config.output
    calls = []
    try:
        with VirtualCameraSink(out.width, out.height, out.fps, backend=FAKE_BACKEND) as sink:
            pipeline = LivePipeline(config, source, sink, astronaut_face)
            try:
                animator = pipeline.stage("animate").animator
                assert isinstance(animator, TalkingHeadAnimator)
                real_generate = animator.net.generate

                def counted(*args):
                    calls.append(1)
                    return real_generate(*args)

                animator.net.generate = counted
                stats = pipeline.run(max_frames=20)
            finally:
                pipeline.close()
    finally:
        source.close()
    frames = fake_virtualcam.instances[0].frames
    assert stats.frames == 20 and len(frames) == 20 and pipeline.errors == 0
    assert len(calls) == 20 and not animator.finetuned
    assert np.abs(frames[0].astype(np.int16) - frames[-1]).mean() > 1.0  # the avatar moves


def test_the_generator_change_lands_on_the_face_and_fades_out(
    shipped: Path, astronaut_face: Avatar, portraits_home: Path
) -> None:
    """Wiring, whatever the weights: a generator that paints the whole crop grey with an open mask greys the
    face; outside the crop the frame is the warp's, and the crop's edge is feathered (no seam)."""
    config = _talking_head_config()
    chain = motion_chain(config)
    warp_chain = motion_chain(dataclasses.replace(config, animator=dataclasses.replace(config.animator, name="warp")))
    animator = chain.stage("animate").animator
    assert isinstance(animator, TalkingHeadAnimator) and warp_chain.stage("animate").animator.name == "warp"
    animator.net.generate = lambda session, warped, drawing, style: (
        np.zeros_like(warped),
        np.ones_like(warped[:1]),
    )
    sources = [DemoSource(astronaut_face, 320, 240, realtime=False) for _ in range(2)]
    try:
        for _ in range(5):
            grey = chain(Packet(sources[0].read(), astronaut_face)).image
            warped = warp_chain(Packet(sources[1].read(), astronaut_face)).image
        box = face_box(animator.avatar.face.landmarks)
        assert sum(chain.errors.values()) == sum(warp_chain.errors.values()) == 0
    finally:
        for closable in (*sources, chain, warp_chain):
            closable.close()
    x0, y0, side = (int(v) for v in box)
    centre = grey[y0 + side // 2 - 8 : y0 + side // 2 + 8, x0 + side // 2 - 8 : x0 + side // 2 + 8]
    # Grey, but for the fine detail the crop's resampling cannot carry (the warp keeps its full resolution).
    assert abs(centre.mean() - 127.5) < 2 and centre.std() < 5
    outside = np.ones(grey.shape[:2], bool)
    outside[max(0, y0 - 4) : y0 + side + 4, max(0, x0 - 4) : x0 + side + 4] = False
    assert np.array_equal(grey[outside], warped[outside])
    # The change's weight along a row into the crop, whatever lies under it: (out − warp) / (grey − warp), read
    # in the channels where the warp is far enough from grey to tell.
    out, under = grey[y0 + side // 2].astype(np.float32), warped[y0 + side // 2].astype(np.float32)
    span = 127.5 - under
    readable = np.abs(span) > 10
    weight = np.where(readable, (out - under) / np.where(readable, span, 1.0), 0.0).sum(axis=1)
    ramp = (weight / np.maximum(readable.sum(axis=1), 1))[x0 : x0 + side // 2]
    assert ramp[1] < ramp[side // 4] and np.all(np.diff(ramp[: side // 8]) >= -0.05)  # fades in from the edge


def test_live_talking_head_switches_to_the_background_fine_tune(
    shipped: Path, fake_virtualcam, portraits_home: Path
) -> None:
    avatar = load_avatar(None, 256)
    assert avatar.source  # the bundled portrait's file: what the background fine-tune reads
    config = _talking_head_config(finetune_on=True, finetune_steps=3)
    chain = motion_chain(config)
    animator = chain.stage("animate").animator
    assert isinstance(animator, TalkingHeadAnimator)
    source = DemoSource(avatar, 320, 240, realtime=False)
    # While it runs: the job's progress in brackets ("starting" before its first report, then "40%, about 2 min
    # left").
    running = re.compile(
        r"fine-tuning this portrait in the background "
        r"\((starting|finishing|\d+%(, (about \d+ min|under a minute) left)?)\)"
    )
    try:
        chain.prepare(avatar)  # starts the fine-tune
        assert running.fullmatch(animator.status), animator.status
        statuses = []
        deadline = time.monotonic() + 240
        while not animator.finetuned and time.monotonic() < deadline:
            statuses.append(animator.status)
            chain(Packet(source.read(), avatar))
            time.sleep(0.2)
        assert animator.finetuned, f"the background fine-tune never switched in (last status: {statuses[-1:]})"
        assert animator.status == "fine-tuned"
        # Until it switched: running, or just finished and loading (no status); never failed.
        assert all(running.fullmatch(status) or status == "" for status in statuses), set(statuses)
        assert FineTuned(portrait_dir(avatar.key, base_weights())).ready
        chain(Packet(source.read(), avatar))
        assert sum(chain.errors.values()) == 0
    finally:
        source.close()
        chain.close()


def test_a_failed_background_fine_tune_says_so_and_keeps_the_meta_weights(
    shipped: Path, portraits_home: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "gone.png"
    broken.write_text("not an image")  # the portrait file was replaced after loading: `avatar add` refuses it
    avatar = dataclasses.replace(load_avatar(None, 256), source=str(broken))
    config = _talking_head_config(finetune_on=True)
    animator = ANIMATORS.create(config.animator.name, config.animator)
    try:
        animator.prepare(avatar)
        deadline = time.monotonic() + 120
        while not animator.status.startswith("fine-tune failed") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert animator.status == "fine-tune failed: meta-trained weights"
        assert not animator.finetuned
        assert animator(Motion(avatar.face.landmarks, avatar.face.rotation)).shape == (256, 256, 3)
    finally:
        animator.close()
