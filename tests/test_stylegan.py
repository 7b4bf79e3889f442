"""StyleGAN identities: the networks' shapes, what noise, z, ψ and mixing do, a short training on real faces, the
ONNX export and `avatarcam identity new` (on a generator trained briefly here)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import deterministic_training, small_attribute_cache

from avatarcam.cli import main
from avatarcam.identities.generator import (
    MAPPING,
    SYNTHESIS,
    IdentityError,
    IdentityGenerator,
    as_portrait,
    level_layers,
)
from avatarcam.models.stylegan import MinibatchStd, StyleCritic, StyleGenerator, mix
from avatarcam.train.stylegan.export import export_stylegan, load_generator
from avatarcam.train.stylegan.train import StyleGANSettings, train_stylegan

SMALL = {"z_dim": 32, "w_dim": 32, "mapping_layers": 2, "width": 8, "max_channels": 32}


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_shapes_at_each_resolution(resolution: int) -> None:
    gen = StyleGenerator(resolution, **SMALL)
    critic = StyleCritic(resolution, SMALL["width"], SMALL["max_channels"])
    z = torch.randn(4, SMALL["z_dim"])
    faces = gen(z, noise=gen.synthesis.make_noise(4))
    assert faces.shape == (4, 3, resolution, resolution)
    assert gen.num_ws == 2 * int(np.log2(resolution // 4)) + 2
    assert critic(faces).shape == (4, 1)


def test_truncation_zero_gives_the_mean_face_for_every_z() -> None:
    gen = StyleGenerator(32, **SMALL)
    with torch.no_grad():
        gen.w_avg.normal_()
        w = gen.map(torch.randn(5, SMALL["z_dim"]), truncation=0.0)
        torch.testing.assert_close(w, gen.w_avg.expand(5, -1))
        faces = gen(torch.randn(5, SMALL["z_dim"]), truncation=0.0)
    torch.testing.assert_close(faces, faces[:1].expand(5, -1, -1, -1))


def test_mixing_takes_the_coarse_layers_from_one_w_and_the_rest_from_the_other() -> None:
    first, second = torch.zeros(2, 4), torch.ones(2, 4)
    ws = mix(first, second, crossover=3, num_ws=8)
    assert ws.shape == (2, 8, 4)
    assert (ws[:, :3] == 0).all() and (ws[:, 3:] == 1).all()
    # Through the synthesis: changing only the fine ws leaves the coarse structure (the 8² image) alone.
    gen = StyleGenerator(32, **SMALL)
    with torch.no_grad():
        a, b = gen.map(torch.randn(1, SMALL["z_dim"])), gen.map(torch.randn(1, SMALL["z_dim"]))
        noise = gen.synthesis.make_noise(1, torch.Generator().manual_seed(0))
        plain = gen.synthesis(gen.broadcast(a), noise)
        fine_swapped = gen.synthesis(mix(a, b, 6, gen.num_ws), noise)
        coarse_swapped = gen.synthesis(mix(b, a, 4, gen.num_ws), noise)
    low = lambda x: torch.nn.functional.avg_pool2d(x, 8)  # noqa: E731
    assert (low(plain) - low(fine_swapped)).abs().mean() < (low(plain) - low(coarse_swapped)).abs().mean()
    assert level_layers(10) == {"coarse": [0, 4], "middle": [4, 8], "fine": [8, 10]}


def test_minibatch_std_adds_one_channel_of_the_batch_s_spread() -> None:
    same = torch.ones(4, 2, 3, 3)
    out = MinibatchStd()(same)
    assert out.shape == (4, 3, 3, 3) and torch.allclose(out[:, 2], torch.full((4, 3, 3), 1e-4), atol=1e-4)
    spread = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 2, 3, 3)
    assert torch.allclose(MinibatchStd()(spread)[:, 2], torch.full((4, 3, 3), float(np.std([0, 1, 2, 3]))))


def _real_faces(shared_data: Path, count: int, size: int) -> torch.Tensor:
    files = sorted((shared_data / "faces" / "utkface").glob("*.jpg"))[::53][:count]
    faces = [
        cv2.resize(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
        for f in files
    ]
    return torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data: Path) -> Path:
    """A 32² generator trained for 200 steps on real faces, exported as the product exports one."""
    root = tmp_path_factory.mktemp("stylegan")
    settings = StyleGANSettings(resolution=32, **SMALL, steps=200, batch=8, r1_every=4, sample_every=100, threads=2)
    faces = _real_faces(shared_data, 64, 32)
    with deterministic_training():
        first = train_stylegan(faces, root / "run", StyleGANSettings(**{**settings.__dict__, "steps": 20}), False)
        last = train_stylegan(faces, root / "run", settings, progress=False)
    (root / "losses.json").write_text(json.dumps({"first": first, "last": last}))
    export_stylegan(root / "run" / "stylegan.pt", root / "weights", {"data": "test"})
    return root


def test_a_short_training_on_real_faces_moves_the_critic_and_checkpoints(trained: Path) -> None:
    losses = json.loads((trained / "losses.json").read_text())
    # The critic learns to tell them apart: its loss falls below where it starts (2 log 2 for a blind critic).
    assert losses["last"]["d"] < losses["first"]["d"] and losses["last"]["d"] < 2 * np.log(2)
    assert (trained / "run" / "samples" / "step_000200.png").is_file()
    with pytest.raises(ValueError, match="trains at 32²"):
        train_stylegan(torch.zeros(2, 3, 64, 64, dtype=torch.uint8), trained / "run", StyleGANSettings(resolution=64))


def test_noise_changes_the_face_far_less_than_z_does(trained: Path) -> None:
    """Per-pixel noise is for detail (hair strands, pores): a trained generator's faces move little with it."""
    gen, _ = load_generator(trained / "run" / "stylegan.pt")
    strengths = [
        float(layer.noise_strength.detach())
        for layer in [gen.synthesis.first, *gen.synthesis.ups, *gen.synthesis.convs]
    ]
    assert any(s != 0 for s in strengths)  # trained away from their zero start
    z = torch.randn(16, gen.z_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        base = gen(z, noise=gen.synthesis.make_noise(16, torch.Generator().manual_seed(1)))
        other_noise = gen(z, noise=gen.synthesis.make_noise(16, torch.Generator().manual_seed(2)))
        other_z = gen(z.roll(1, dims=0), noise=gen.synthesis.make_noise(16, torch.Generator().manual_seed(1)))
    by_noise, by_z = (base - other_noise).abs().mean(), (base - other_z).abs().mean()
    assert 0 < by_noise < 0.25 * by_z


def test_the_export_matches_torch_and_a_seed_always_makes_the_same_face(trained: Path) -> None:
    gen, _ = load_generator(trained / "run" / "stylegan.pt")
    identities = IdentityGenerator(folder=trained / "weights")
    assert identities.resolution == 32 and identities.num_ws == gen.num_ws
    face = identities.face(7, truncation=0.7)
    assert face.shape == (32, 32, 3) and face.dtype == np.uint8
    np.testing.assert_array_equal(face, identities.face(7, truncation=0.7))
    assert np.abs(face.astype(int) - identities.face(8, truncation=0.7)).mean() > 1
    # ONNX against torch, same z, ψ and noise.
    z = np.random.default_rng(7).standard_normal((1, gen.z_dim)).astype(np.float32)
    rng = np.random.default_rng([7, 1])
    noise = [torch.from_numpy(rng.standard_normal((1, 1, s, s)).astype(np.float32)) for s in gen.synthesis.noise_sizes]
    with torch.no_grad():
        expected = gen.synthesis(gen.broadcast(gen.map(torch.from_numpy(z), 0.7)), noise)[0]
    expected = ((expected.clamp(-1, 1).permute(1, 2, 0).numpy() + 1) * 127.5).round()
    assert np.abs(face.astype(float) - expected).max() <= 1
    # ψ = 0: the mean w (the mean face, up to each seed's own noise), whatever the seed.
    np.testing.assert_allclose(identities._w(1, 0.0), identities._w(2, 0.0), atol=1e-6)
    np.testing.assert_allclose(identities._w(1, 0.0)[0], gen.w_avg.numpy(), atol=1e-5)
    # Mixing: a level of layers from another seed.
    mixed = identities.face(7, 0.7, mix_seed=8, level="middle")
    assert not np.array_equal(mixed, face)
    with pytest.raises(IdentityError, match="this 32² generator has no fine layers"):
        identities.face(7, 0.7, mix_seed=8, level="fine")  # fine layers start at 64²
    manifest = json.loads((trained / "weights" / "manifest.json").read_text())["files"]
    assert manifest[SYNTHESIS]["resolution"] == 32 and MAPPING in manifest


def test_bad_seeds_and_values_get_one_clear_error_each(trained: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    identities = IdentityGenerator(folder=trained / "weights")
    for seed in (-1, 2**32, 1.5):
        with pytest.raises(IdentityError, match="whole number from 0"):
            identities.face(seed)
    with pytest.raises(IdentityError, match=r"truncation ψ 1.5"):
        identities.face(1, truncation=1.5)
    with pytest.raises(IdentityError, match=r"unknown level 'all' \(valid: coarse, middle, fine\)"):
        identities.face(1, mix_seed=2, level="all")
    monkeypatch.setattr("avatarcam.runtime.weights.weights_dir", lambda: tmp_path)
    (tmp_path / "manifest.json").write_text('{"files": {}}')
    assert main(["identity", "new", "--seed", "3", "--out", str(tmp_path / "x.png")]) == 2
    assert "stylegan_mapping.onnx is not in" in capsys.readouterr().err


def test_identity_new_writes_a_portrait_ready_to_be_an_avatar(trained: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("avatarcam.runtime.weights.weights_dir", lambda: trained / "weights")
    out = tmp_path / "me.png"
    assert main(["identity", "new", "--seed", "5", "--truncation", "0.5", "--out", str(out), "--size", "256"]) == 0
    image = cv2.imread(str(out))
    assert image.shape == (256, 256, 3)
    portrait = as_portrait(np.full((32, 32, 3), 90, np.uint8), 256)
    assert (portrait == 90).all()  # a plain crop on its own border colour: one plain backdrop


def test_the_frechet_distance_diversity_and_novelty_against_values_worked_out_by_hand() -> None:
    from avatarcam.train.stylegan.evaluate import frechet_distance, mean_pairwise_distance, nearest_distances

    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 2))
    # Same Gaussian: ~0. Shifted by (3, 4): the means' squared distance, 25. Scaled by 2: Tr(Σ₁ + 4Σ₁ − 2·2Σ₁) = 2.
    assert abs(frechet_distance(a, rng.standard_normal((4000, 2)))) < 0.02
    assert frechet_distance(a, a + [3.0, 4.0]) == pytest.approx(25.0, rel=1e-6)
    assert frechet_distance(a, 2 * a) == pytest.approx(2.0 * np.trace(np.cov(a, rowvar=False)) / 2, rel=1e-3)
    points = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    assert mean_pairwise_distance(points) == pytest.approx((5 + 1 + np.sqrt(9 + 9)) / 3)
    np.testing.assert_allclose(nearest_distances(points, np.array([[0.0, 0.0], [3.0, 3.0]])), [0.0, 1.0, 1.0])


def test_precision_and_recall_against_values_worked_out_by_hand() -> None:
    from avatarcam.train.stylegan.evaluate import manifold_shares, real_figures

    # Ten real faces on a line, 1 apart: each one's ball reaches its 3rd neighbour (2 away; 3 at the ends).
    reals = np.stack([np.arange(10.0), np.zeros(10)], axis=1)
    assert manifold_shares(reals + [0.5, 0.0], reals) == {"precision": 1.0, "recall": 1.0}
    # Collapsed onto one point beside the first face: every sample is a plausible face, none of the rest is covered.
    assert manifold_shares(np.tile([[0.5, 0.0]], (10, 1)), reals) == {"precision": 1.0, "recall": 0.0}
    assert manifold_shares(reals + [100.0, 0.0], reals)["precision"] == 0.0  # nowhere near a face
    # The larger set is cut to the smaller's size first (the balls' radii depend on it): 20 collapsed samples too.
    assert manifold_shares(np.tile([[0.5, 0.0]], (20, 1)), reals)["recall"] == 0.0
    calibration = real_figures(training=np.array([[0.0, 0.1], [50.0, 0.0]]), held_out=reals)
    assert calibration["faces"] == 10 and calibration["novelty_min"] == pytest.approx(0.1)
    assert calibration["novelty_share"] == 0.9  # all but the face at 0 are ≥ 0.35 from every training face
    assert calibration["diversity"] == pytest.approx(165 / 45)  # Σ d·(10 − d) over d = 1…9, over 45 pairs


def test_the_dcgan_baseline_trains_for_the_time_it_is_given_and_resumes(shared_data: Path, tmp_path: Path) -> None:
    from avatarcam.train.stylegan.dcgan import DCGAN_FILE, DCCritic, DCGenerator, load_dcgan, train_dcgan

    assert DCGenerator(64)(torch.randn(2, 100)).shape == (2, 3, 64, 64) and DCCritic(64)(
        torch.zeros(2, 3, 64, 64)
    ).shape == (2, 1)
    faces = _real_faces(shared_data, 32, 32)
    with deterministic_training():
        train_dcgan(faces, tmp_path, seconds=1.0, batch=8, progress=False)
        first = torch.load(tmp_path / DCGAN_FILE, weights_only=False)
        assert first["steps"] > 0 and 1.0 <= first["seconds"] < 3.0
        # Cut short, then given more time: it goes on from where it stopped, not from scratch.
        train_dcgan(faces, tmp_path, seconds=2.0, batch=8, progress=False)
    second = torch.load(tmp_path / DCGAN_FILE, weights_only=False)
    assert second["steps"] > first["steps"] and 2.0 <= second["seconds"] < 4.0
    gen, trained = load_dcgan(tmp_path)
    assert trained == {"steps": second["steps"], "seconds": second["seconds"], "resolution": 32}
    assert gen(torch.randn(3, 100)).shape == (3, 3, 32, 32)
    with pytest.raises(ValueError, match="32²"):
        train_dcgan(_real_faces(shared_data, 4, 64), tmp_path, seconds=3.0, batch=2, progress=False)
    with pytest.raises(FileNotFoundError, match="avatarcam train dcgan"):
        load_dcgan(tmp_path / "nothing")


def test_sample_figures_on_real_faces_and_a_blank(shared_data: Path, demo_frames) -> None:
    """Real faces as 'samples' (and one blank): found by both detectors, accepted as avatars and animated; a blank
    is found by neither and lowers each share."""
    from avatarcam.eval.metrics import IdentityEmbedder
    from avatarcam.train.stylegan.evaluate import embed, sample_figures

    if not IdentityEmbedder.available():
        pytest.skip("dlib (the eval extra) is not installed")
    identity = IdentityEmbedder()
    faces = [f.permute(1, 2, 0).numpy() for f in _real_faces(shared_data, 6, 64)]
    training, held_out = embed(identity, faces[3:]), embed(identity, faces[:3])
    figures = sample_figures(
        [*faces[:3], np.full((64, 64, 3), 128, np.uint8)], identity, training, held_out, demo_frames[:4]
    )
    assert figures["samples"] == 4 and figures["dlib_found"] == 0.75 and figures["mediapipe_found"] == 0.75
    assert 0 < figures["avatar_accepted"] <= 0.75 and figures["animated_without_error"] == 1.0
    assert figures["diversity"] > 0.3 and figures["novelty_min"] > 0.3  # three different people
    assert isinstance(figures["frechet"], float)  # its values: the hand-worked test above


def _no_embedding_of_real_faces(identity, faces, label=""):
    raise AssertionError(f"embedded {label} again")


def test_identity_eval_reports_both_generators_and_draws_the_mixing_grid(
    trained: Path, shared_data: Path, talking_video: Path, tmp_path: Path, monkeypatch
) -> None:
    from avatarcam.eval.metrics import IdentityEmbedder

    if not IdentityEmbedder.available():
        pytest.skip("dlib (the eval extra) is not installed")
    cache = small_attribute_cache(shared_data, tmp_path, 211, 30, monkeypatch)
    manifest = json.loads((trained / "weights" / "manifest.json").read_text())["files"]
    assert manifest[SYNTHESIS]["train_seconds"] > 0  # the baseline's budget by default
    baseline = tmp_path / "dcgan"
    train = ["train", "dcgan", "--cache", str(cache), "--out", str(baseline), "--seconds", "1", "--quiet"]
    assert main([*train, "--weights", str(trained / "weights")]) == 0
    argv = ["identity", "eval", "--cache", str(cache), "--samples", "4", "--weights", str(trained / "weights")]
    argv += ["--baseline", str(baseline), "--driver", str(talking_video), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    report = json.loads((tmp_path / "out" / "identities_eval.json").read_text())
    for name in ("stylegan", "dcgan"):
        assert report[name]["samples"] == 4 and 0 <= report[name]["dlib_found"] <= 1
        assert {"precision", "recall"} <= report[name].keys()
    assert report["real_held_out"]["faces"] > 0  # the calibration beside them
    assert report["baseline_seconds"] >= 1.0 and report["baseline_steps"] > 0
    # The real faces' embeddings are kept for the next evaluation of the same cache: not computed again.
    assert (tmp_path / "out" / "real_embeddings.npz").is_file()
    monkeypatch.setattr("avatarcam.train.stylegan.evaluate.embed", _no_embedding_of_real_faces)
    monkeypatch.setattr("avatarcam.train.stylegan.evaluate.sample_figures", lambda *a, **k: {"samples": 4})
    assert main(argv) == 0
    grid = cv2.imread(str(tmp_path / "out" / "mixing.png"))
    assert grid.shape == (5 * 128, 7 * 128, 3)  # a header row and column of sources, 4 × 6 mixes


def test_a_hotkey_makes_a_new_identity_and_another_keeps_it(
    trained: Path, shared_data: Path, astronaut_face, tmp_path: Path, monkeypatch
) -> None:
    """The switcher's side of the two hotkeys. The face is a real one (the 200-step generator's blobs are no
    face), so that what is tested is the switch: written under the data folder, prepared, swapped in, kept."""
    from avatarcam.avatar import AvatarPreparation
    from avatarcam.switcher import AvatarSwitcher, identities_dir

    monkeypatch.setenv("AVATARCAM_DATA", str(tmp_path / "data"))
    real = cv2.cvtColor(
        cv2.imread(str(sorted((shared_data / "faces" / "utkface").glob("*.jpg"))[500])), cv2.COLOR_BGR2RGB
    )
    monkeypatch.setattr(IdentityGenerator, "face", lambda self, seed, *a, **k: real)
    make = lambda: IdentityGenerator(folder=trained / "weights")  # noqa: E731
    avatars = tmp_path / "avatars"
    switcher = AvatarSwitcher(astronaut_face, [], AvatarPreparation(256), (), None, True, make, avatars)
    assert {"new_identity", "keep_identity"} <= set(switcher.actions)
    assert switcher.keep_identity() == "the avatar on air is not a generated identity"
    assert switcher.new_identity(seed=1234) is None and "loading identity 1234" in switcher.status
    switcher._pending.result(timeout=60)
    assert switcher.poll() == "avatar: identity_1234"
    assert Path(switcher.avatar.source) == identities_dir() / "identity_1234.png"
    assert switcher.keep_identity() == f"kept identity_1234 in {avatars}"
    assert (avatars / "identity_1234.png").is_file() and switcher.paths == [avatars / "identity_1234.png"]
    switcher.close()
    # No generator shipped: the HUD says so and the avatar stays.
    bare = AvatarSwitcher(astronaut_face, [], AvatarPreparation(256))
    bare.new_identity()
    bare._pending.exception(timeout=60)
    assert bare.poll() == "avatar skipped: no identity generator in this build" and bare.avatar is astronaut_face
    bare.close()
