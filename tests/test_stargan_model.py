"""StarGAN's networks and losses: shapes, gradient flow, each loss against a value worked out by hand, the
target attributes it asks for, and a short training on real faces that lowers its losses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import deterministic_training
from torch import nn

from avatarcam.edits.editor import EDITOR, EDITOR_INT8
from avatarcam.models.stargan import Discriminator, Generator, apply_change
from avatarcam.train.augment import CUTOUT, augment
from avatarcam.train.stargan.export import export_stargan
from avatarcam.train.stargan.judge import (
    JUDGE_FILE,
    JudgeSettings,
    judge_accuracy,
    judge_probabilities,
    load_judge,
    train_judge,
)
from avatarcam.train.stargan.losses import (
    LossWeights,
    attention_loss,
    classification_loss,
    critic_loss,
    gradient_penalty,
    reconstruction_loss,
)
from avatarcam.train.stargan.train import StarGANSettings, flip_one, single_flips, train_stargan

ATTRS = ("smiling", "old", "young", "female")


def test_generator_and_critic_shapes_and_the_mask_blends_the_input() -> None:
    gen, critic = Generator(4, width=8, blocks=1), Discriminator(4, size=64, width=8)
    x, c = torch.rand(2, 3, 64, 64) * 2 - 1, torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 1]])
    edited, change, mask = gen(x, c)
    assert edited.shape == (2, 3, 64, 64) and change.shape == (2, 2, 64, 64) and mask.shape == (2, 1, 64, 64)
    assert mask.min() >= 0 and mask.max() <= 1
    torch.testing.assert_close(edited, apply_change(x, change, mask))
    # Where the mask is off the face is its own; a change never turns a grey pixel colourful (no hue).
    grey = torch.zeros(1, 3, 4, 4)
    torch.testing.assert_close(
        apply_change(x[:, :, :4, :4], change[:, :, :4, :4], torch.zeros(2, 1, 4, 4)), x[:, :, :4, :4]
    )
    lifted = apply_change(grey, torch.tensor([0.1, 0.9]).view(1, 2, 1, 1).expand(1, 2, 4, 4), torch.ones(1, 1, 4, 4))
    torch.testing.assert_close(lifted, torch.full((1, 3, 4, 4), 0.2))
    scores, logits = critic(x)
    assert scores.shape == (2, 1, 2, 2) and logits.shape == (2, 4)


def test_every_parameter_gets_a_gradient() -> None:
    gen, critic = Generator(4, width=8, blocks=1), Discriminator(4, size=32, width=8)
    x, c = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 4).round()
    fake, _, mask = gen(x, c)
    scores, logits = critic(fake)
    (-scores.mean() + classification_loss(logits, c) + attention_loss(mask, LossWeights())).backward()
    for name, p in [*gen.named_parameters(), *critic.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_the_three_losses_against_values_worked_out_by_hand() -> None:
    # Adversarial (critic): mean fake − mean real = 0 − 1.5.
    assert critic_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.5, -0.5])).item() == pytest.approx(-1.5)
    # Classification: −log σ(0) for a wanted attribute, −log(1 − σ(2)) for an unwanted one, summed per face.
    expected = math.log(2) + math.log(1 + math.e**2)
    value = classification_loss(torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]]))
    assert value.item() == pytest.approx(expected, rel=1e-6)
    # Two faces: the batch mean of the per-face sums.
    two = classification_loss(torch.tensor([[0.0, 2.0], [0.0, 0.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    assert two.item() == pytest.approx((expected + 2 * math.log(2)) / 2, rel=1e-6)
    # Reconstruction: mean absolute difference.
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.25)
    b[0, 0, 0, 0] = 1.25
    assert reconstruction_loss(b, a).item() == pytest.approx((11 * 0.25 + 1.25) / 12)


class LinearCritic(nn.Module):
    """D(x) = Σ w·x: its gradient is w everywhere, so the penalty is (‖w‖ − 1)²."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x * self.w).flatten(1).sum(1), x.new_zeros(x.shape[0], 1)


def test_the_gradient_penalty_of_a_linear_critic() -> None:
    w = torch.zeros(1, 3, 2, 2)
    w[0, 0, 0, 0], w[0, 1, 1, 1] = 3.0, 4.0  # ‖w‖ = 5
    penalty = gradient_penalty(LinearCritic(w), torch.rand(4, 3, 2, 2), torch.rand(4, 3, 2, 2))
    assert penalty.item() == pytest.approx(16.0)


def test_the_mask_loss_is_its_mean_plus_its_total_variation() -> None:
    mask = torch.zeros(1, 1, 2, 2)
    mask[0, 0, 0, 0] = 1.0  # mean 1/4; two neighbours differ by 1: total variation 2
    weights = LossWeights(attention=1.0, smooth=0.5)
    assert attention_loss(mask, weights).item() == pytest.approx(0.25 + 0.5 * 2)


def test_targets_flip_one_attribute_and_never_ask_old_and_young_at_once() -> None:
    labels = torch.tensor([[0.0, 0, 1, 0], [0, 1, 0, 1], [1, 0, 0, 0]]).repeat(200, 1)
    target = flip_one(labels, ATTRS, torch.Generator().manual_seed(0))
    changed = (target != labels).sum(1)
    assert ((changed == 1) | (changed == 2)).all()
    assert not ((target[:, 1] == 1) & (target[:, 2] == 1)).any()
    for i, flipped in enumerate(single_flips(labels[:3], ATTRS)):
        assert (flipped[:, i] == 1 - labels[:3, i]).all()
        assert not ((flipped[:, 1] == 1) & (flipped[:, 2] == 1)).any()


def _real_faces(shared_data: Path, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    files = sorted((shared_data / "faces" / "utkface").glob("*.jpg"))[::97][:count]
    faces, labels = [], []
    for path in files:
        age, gender = (int(v) for v in path.name.split("_")[:2])
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        faces.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA).transpose(2, 0, 1))
        labels.append([0.0, float(age >= 50), float(age <= 30), float(gender == 1)])
    return torch.from_numpy(np.stack(faces)), torch.tensor(labels)


def test_a_short_training_on_real_faces_lowers_its_losses(shared_data: Path, tmp_path: Path) -> None:
    faces, labels = _real_faces(shared_data, 32, 32)
    settings = StarGANSettings(size=32, width=8, blocks=1, batch=8, steps=2, critic_steps=1, threads=2)
    first = train_stargan(faces, labels, ATTRS, tmp_path, settings, progress=False)
    later = train_stargan(
        faces,
        labels,
        ATTRS,
        tmp_path,
        StarGANSettings(**{**settings.__dict__, "steps": 150}),
        samples=(faces[:2], labels[:2]),
        progress=False,
    )
    assert later["d_cls"] < first["d_cls"] and later["g_rec"] < first["g_rec"]
    assert (tmp_path / "stargan.pt").is_file() and (tmp_path / "samples" / "step_000150.png").is_file()
    grid = cv2.imread(str(tmp_path / "samples" / "step_000150.png"))
    assert grid.shape == (2 * 32, (1 + len(ATTRS)) * 32, 3)  # each face, then each single flip
    with pytest.raises(ValueError, match="trained on"):
        train_stargan(faces, labels, ("smiling",), tmp_path, settings, progress=False)


def test_the_exported_editor_matches_torch_and_int8_is_kept_only_where_it_holds(shared_data, tmp_path) -> None:
    faces, labels = _real_faces(shared_data, 12, 32)
    settings = StarGANSettings(size=32, width=8, blocks=1, batch=4, steps=3, critic_steps=1, threads=2)
    train_stargan(faces, labels, ATTRS, tmp_path / "run", settings, progress=False)
    out = tmp_path / "weights"
    check = export_stargan(tmp_path / "run" / "stargan.pt", out, faces.numpy(), labels.numpy(), {"data": "test"})
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert manifest[EDITOR]["attributes"] == list(ATTRS) and manifest[EDITOR]["size"] == 32
    state = torch.load(tmp_path / "run" / "stargan.pt", weights_only=False)
    gen = Generator(len(ATTRS), 8, 1)
    gen.load_state_dict(state["generator"])
    gen.eval()
    x, c = faces[:2].float() / 127.5 - 1, labels[:2]
    with torch.no_grad():
        expected, _, mask = gen(x, c)
    session = ort.InferenceSession(str(out / EDITOR), providers=["CPUExecutionProvider"])
    image, onnx_mask = session.run(None, {"face": x.numpy(), "attributes": c.numpy()})
    assert np.abs(image - expected.numpy()).max() < 1e-4 and np.abs(onnx_mask - mask.numpy()).max() < 1e-4
    if check.get("int8_dropped"):
        assert not (out / EDITOR_INT8).exists() and EDITOR_INT8 not in manifest
    else:
        assert check["int8"]["mean"] <= 0.01 and manifest[EDITOR_INT8]["int8_parity"] == check["int8"]


def test_the_critic_s_augmentation_is_drawn_per_face_and_differentiable() -> None:
    x = (torch.rand(6, 3, 32, 32) * 2 - 1).requires_grad_(True)
    first = augment(x, torch.Generator().manual_seed(1))
    assert first.shape == x.shape
    assert torch.equal(first, augment(x, torch.Generator().manual_seed(1)))  # the generator decides everything
    assert not torch.equal(first[0], first[1] - (x[1] - x[0]))  # each face its own draw
    first.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # Without cutout no square is zeroed; with it, a CUTOUT-sided square of each face is.
    bright = torch.ones(4, 3, 32, 32)
    kept = augment(bright, torch.Generator().manual_seed(2), cutout=False)
    assert (kept != 0).all()
    cut = augment(bright, torch.Generator().manual_seed(2))
    side = round(CUTOUT * 32)
    assert ((cut == 0).all(dim=1).sum(dim=(1, 2)) == side * side).all()


def test_the_judge_learns_real_faces_and_refuses_other_attributes(shared_data: Path, tmp_path: Path) -> None:
    faces, labels = _real_faces(shared_data, 64, 32)
    settings = JudgeSettings(size=32, width=8, epochs=40, batch=16)
    with deterministic_training():
        judge = train_judge(faces, labels, ATTRS, tmp_path, settings, progress=False)
    probs = judge_probabilities(judge, settings.size, faces.float() / 127.5 - 1)
    assert probs.shape == (64, 4) and (0 <= probs).all() and (probs <= 1).all()
    accuracy = judge_accuracy(probs, labels.numpy(), ATTRS)
    assert accuracy["female"] > 0.7 and accuracy["young"] > 0.7  # its own training faces (chance: 0.5)
    loaded, size = load_judge(tmp_path / JUDGE_FILE, ATTRS)
    assert size == 32
    np.testing.assert_allclose(judge_probabilities(loaded, size, faces.float() / 127.5 - 1), probs, atol=1e-6)
    with pytest.raises(ValueError, match="delete it to retrain"):
        load_judge(tmp_path / JUDGE_FILE, ("smiling",))


def test_judge_accuracy_is_the_mean_of_both_classes_recall() -> None:
    probs = np.array([[0.9], [0.8], [0.2], [0.6]])
    labels = np.array([[1.0], [1.0], [0.0], [0.0]])  # positives both right (1.0), negatives one of two (0.5)
    assert judge_accuracy(probs, labels, ("smiling",)) == {"smiling": 0.75}
