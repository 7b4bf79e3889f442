"""The judge: an attribute classifier that scores the edits, trained on the cache's `judge` split, faces the
generator never saw (its critic's own attribute head would grade its own homework).

A small plain CNN at 64² (age, gender and a smile read at that size), trained with shifts, mirroring and
lighting jitter so that it reads attributes rather than a crop's exact pixels. Its accuracy on the held-out
faces is reported beside every figure it gives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from avatarcam.train.augment import augment
from avatarcam.train.common import save_atomic

JUDGE_FILE = "judge.pt"


@dataclass(frozen=True)
class JudgeSettings:
    size: int = 64
    width: int = 32
    epochs: int = 12
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0


class AttributeJudge(nn.Module):
    """Faces N×3×S×S in [-1, 1] → attribute logits N×A."""

    def __init__(self, attributes: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout in (width, 2 * width, 4 * width, 8 * width):
            layers += [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(True),
                nn.MaxPool2d(2),
            ]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(cin, attributes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


def to_judge(faces: torch.Tensor, size: int) -> torch.Tensor:
    """Faces in [-1, 1] at any size, resized (area) to the judge's."""
    return faces if faces.shape[-1] == size else F.interpolate(faces, size=(size, size), mode="area")


def train_judge(
    faces: torch.Tensor,
    labels: torch.Tensor,
    attributes: tuple[str, ...],
    out: Path,
    settings: JudgeSettings | None = None,
    progress: bool = True,
) -> AttributeJudge:
    """Trains on uint8 faces N×3×S×S with 0/1 labels and writes `out/judge.pt`; returns the judge (eval mode)."""
    settings = settings or JudgeSettings()
    torch.manual_seed(settings.seed)
    rng = torch.Generator().manual_seed(settings.seed)
    x_all = to_judge(faces.float() / 127.5 - 1, settings.size)
    judge = AttributeJudge(len(attributes), settings.width)
    opt = torch.optim.AdamW(judge.parameters(), lr=settings.lr, weight_decay=1e-4)
    steps = settings.epochs * max(1, len(x_all) // settings.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=steps)
    judge.train()
    for _ in tqdm(range(steps), desc="judge", unit="step", disable=not progress):
        pick = torch.randint(len(x_all), (settings.batch,), generator=rng)
        x = x_all[pick]
        mirror = torch.rand(settings.batch, generator=rng) < 0.5
        x[mirror] = x[mirror].flip(-1)
        loss = F.binary_cross_entropy_with_logits(judge(augment(x, rng, cutout=False)), labels[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    judge.eval()
    out.mkdir(parents=True, exist_ok=True)
    state = {"judge": judge.state_dict(), "attributes": list(attributes), "settings": asdict(settings)}
    save_atomic(state, out / JUDGE_FILE)
    return judge


def load_judge(path: Path, attributes: tuple[str, ...]) -> tuple[AttributeJudge, int]:
    """A trained judge and its input size; refuses one trained on other attributes."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if tuple(state["attributes"]) != tuple(attributes):
        raise ValueError(f"{path} judges {state['attributes']}, not {list(attributes)}: delete it to retrain")
    settings = JudgeSettings(**state["settings"])
    judge = AttributeJudge(len(attributes), settings.width)
    judge.load_state_dict(state["judge"])
    return judge.eval(), settings.size


@torch.no_grad()
def judge_probabilities(judge: AttributeJudge, size: int, faces: torch.Tensor, batch: int = 128) -> np.ndarray:
    """P(attribute) N×A for faces in [-1, 1] (N×3×S×S, any S)."""
    out = [torch.sigmoid(judge(to_judge(faces[i : i + batch], size))) for i in range(0, len(faces), batch)]
    return torch.cat(out).numpy() if out else np.zeros((0, judge.head[-1].out_features), np.float32)


def judge_accuracy(probabilities: np.ndarray, labels: np.ndarray, attributes: tuple[str, ...]) -> dict[str, float]:
    """Share of faces each attribute is read right on (balanced: the mean of both classes' recall)."""
    said, truth = probabilities >= 0.5, labels >= 0.5
    result = {}
    for k, name in enumerate(attributes):
        recalls = [float((said[truth[:, k] == v, k] == v).mean()) for v in (True, False) if (truth[:, k] == v).any()]
        result[name] = float(np.mean(recalls))
    return result
