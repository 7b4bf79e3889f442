"""The identity generator's figures (issue targets), each beside a DCGAN baseline trained for as long
(`avatarcam train dcgan`):

- found: the share of samples (upscaled to EVAL_SIZE) in which dlib and MediaPipe find a face;
- accepted: the share `make_avatar` takes as an avatar portrait (`as_portrait` at 512²), and whether each accepted
  one animates with the warp on a real clip without a failed frame;
- diversity: mean pairwise dlib embedding distance between samples;
- novelty: each sample's distance to its nearest training face (all must be ≥ NOVELTY);
- precision and recall (Kynkäänniemi et al., 2019): the share of samples inside the real faces' manifold, and of
  real faces inside the samples' (each point's ball reaching its K-th nearest neighbour); recall shows how much
  of real faces' variety a generator covers, where diversity alone cannot say which part is missing;
- Fréchet distance between the dlib embeddings of the samples and of held-out real faces (a Gaussian fitted to
  each: ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)).

The held-out real faces get the same figures, as the calibration: what real faces, framed as the generator's,
score on each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import linalg
from scipy.spatial.distance import cdist, pdist
from tqdm import tqdm

from avatarcam.avatar import AvatarError, make_avatar
from avatarcam.config import load_config
from avatarcam.eval.metrics import IdentityEmbedder
from avatarcam.identities.generator import IdentityGenerator, as_portrait
from avatarcam.render import animate_frames, video_frames
from avatarcam.stages.chain import motion_chain
from avatarcam.tracking.facemesh import FaceMeshDetector
from avatarcam.train.common import to_image
from avatarcam.train.stargan.data import AttributeDataset
from avatarcam.train.stylegan.dcgan import load_dcgan
from avatarcam.train.stylegan.train import training_faces
from avatarcam.types import Frame

EVAL_SIZE = 256
NOVELTY = 0.35
NEIGHBOURS = 3  # K of precision and recall, as in their paper


def upscaled(face: np.ndarray, size: int = EVAL_SIZE) -> np.ndarray:
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_LANCZOS4)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Between Gaussians fitted to the rows of `a` and of `b`."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    root = root.real if np.iscomplexobj(root) else root
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))


def mean_pairwise_distance(embeddings: np.ndarray) -> float:
    return float(pdist(embeddings).mean())


def nearest_distances(samples: np.ndarray, references: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Each sample's distance to its nearest reference."""
    return np.concatenate(
        [cdist(samples[i : i + chunk], references).min(axis=1) for i in range(0, len(samples), chunk)]
    )


def manifold_shares(samples: np.ndarray, reals: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Precision (samples inside the real faces' manifold) and recall (real faces inside the samples'). Each ball's
    radius depends on how many points share the space, so the larger set is first cut to the smaller's size."""
    rng = np.random.default_rng(seed)
    n = min(len(samples), len(reals))
    if n <= NEIGHBOURS:
        return {"precision": float("nan"), "recall": float("nan")}
    samples, reals = (x[rng.choice(len(x), n, replace=False)] if len(x) > n else x for x in (samples, reals))

    def inside(points: np.ndarray, centres: np.ndarray) -> float:
        radii = np.sort(cdist(centres, centres), axis=1)[:, NEIGHBOURS]  # column 0: each centre itself
        return float((cdist(points, centres) <= radii).any(axis=1).mean())

    return {"precision": inside(samples, reals), "recall": inside(reals, samples)}


def novelty_figures(embeddings: np.ndarray, training: np.ndarray) -> dict[str, float]:
    """The nearest training face's distance: its smallest over the embeddings, and the share at least NOVELTY away."""
    nearest = nearest_distances(embeddings, training) if len(embeddings) and len(training) else np.zeros(0)
    return {
        "novelty_min": float(nearest.min()) if nearest.size else float("nan"),
        "novelty_share": float((nearest >= NOVELTY).mean()) if nearest.size else float("nan"),
    }


def real_figures(training: np.ndarray, held_out: np.ndarray) -> dict:
    """The calibration: the held-out real faces' own diversity and novelty, and one random half's Fréchet
    distance, precision and recall against the other (what two sets of real faces score; a random half, as the
    faces come in the order of their file names, which begin with the age)."""
    if len(held_out) < 2 or not len(training):
        return {"faces": len(held_out)}
    shuffled = held_out[np.random.default_rng(0).permutation(len(held_out))]
    half = len(held_out) // 2
    return {
        "faces": len(held_out),
        "diversity": mean_pairwise_distance(held_out),
        **novelty_figures(held_out, training),
        "frechet": frechet_distance(shuffled[:half], shuffled[half:]),
        **manifold_shares(shuffled[:half], shuffled[half:]),
    }


def embed(
    identity: Callable[[np.ndarray], np.ndarray | None], faces: Sequence[np.ndarray], label: str = ""
) -> np.ndarray:
    """dlib embeddings of the faces it finds (upscaled), N_found × 128; a progress bar named `label` if given."""
    faces = tqdm(faces, desc=label, unit="face", disable=not label, leave=False)
    found = [e for e in (identity(upscaled(f)) for f in faces) if e is not None]
    return np.stack(found) if found else np.zeros((0, 128))


def real_embeddings(
    identity: Callable[[np.ndarray], np.ndarray | None], cache: Path, size: int, crop: float, out: Path
) -> tuple[np.ndarray, np.ndarray]:
    """dlib embeddings of the training faces (the train and judge splits) and of the held-out ones, framed as the
    generator's; kept in `out` for the next evaluation of the same cache and framing (they take minutes)."""
    path = out / "real_embeddings.npz"
    key = f"{Path(cache).resolve()} {size} {crop}"
    if path.is_file():
        kept = np.load(path)
        if str(kept["key"]) == key:
            return kept["training"], kept["held_out"]
    as_rgb = lambda t: [f.permute(1, 2, 0).numpy() for f in t]  # noqa: E731
    training = embed(identity, as_rgb(training_faces(cache, size, crop)), "training faces")
    held_out = embed(identity, as_rgb(AttributeDataset(cache, "holdout").faces(size, crop)), "held-out faces")
    out.mkdir(parents=True, exist_ok=True)
    np.savez(path, key=key, training=training, held_out=held_out)
    return training, held_out


def sample_figures(
    faces: Sequence[np.ndarray],
    identity: Callable[[np.ndarray], np.ndarray | None],
    training: np.ndarray,
    held_out: np.ndarray,
    driver: Sequence[Frame],
    label: str = "",
) -> dict:
    """The figures of one generator's samples; `training` and `held_out` are dlib embeddings of real faces.
    `label` names the progress bars (none without)."""
    detector = FaceMeshDetector(static=True, max_faces=1)
    try:
        mediapipe = float(np.mean([detector(upscaled(f)) is not None for f in faces]))
    finally:
        detector.close()
    embeddings = embed(identity, faces, f"{label}: dlib" if label else "")
    accepted, animated = 0, 0
    chain = motion_chain(load_config(overrides={"animator.size": 256}))  # one chain: it prepares each avatar
    for face in tqdm(faces, desc=f"{label}: as avatars", unit="face", disable=not label, leave=False):
        try:
            avatar = make_avatar(as_portrait(face, 512), 256, name="sample")
        except AvatarError:
            continue
        accepted += 1
        if driver:
            failed_before = sum(chain.errors.values())
            for _ in animate_frames(chain, avatar, driver):
                pass
            animated += sum(chain.errors.values()) == failed_before
    chain.close()
    return {
        "samples": len(faces),
        "dlib_found": len(embeddings) / max(len(faces), 1),
        "mediapipe_found": mediapipe,
        "avatar_accepted": accepted / max(len(faces), 1),
        "animated_without_error": animated / max(accepted, 1) if driver else None,
        "diversity": mean_pairwise_distance(embeddings) if len(embeddings) > 1 else float("nan"),
        **novelty_figures(embeddings, training),
        "frechet": frechet_distance(embeddings, held_out)
        if len(embeddings) > 2 and len(held_out) > 2
        else float("nan"),
        **manifold_shares(embeddings, held_out),
    }


def mixing_grid(face: Callable[..., np.ndarray], coarse_seeds: Sequence[int], fine_seeds: Sequence[int], path: Path):
    """Rows: the coarse source; columns: the fine source; each cell takes the coarse layers from its row's seed and
    everything else (colour, texture) from its column's. The top row and left column are the sources themselves."""
    tile = lambda f: upscaled(f, 128)  # noqa: E731
    rows = [[np.full((128, 128, 3), 255, np.uint8)] + [tile(face(s)) for s in fine_seeds]]
    for coarse in coarse_seeds:
        rows.append([tile(face(coarse))] + [tile(face(fine, mix_seed=coarse, level="coarse")) for fine in fine_seeds])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate([np.concatenate(r, axis=1) for r in rows]), cv2.COLOR_RGB2BGR))


def evaluate_identities(
    cache: Path,
    driver: Path,
    out: Path,
    samples: int = 500,
    truncation: float = 0.7,
    weights: Path | None = None,
    baseline: Path | None = None,
    driver_frames: int = 16,
) -> dict:
    """The shipped generator's figures, and beside them those of the DCGAN trained in `baseline` if given, on
    `samples` faces each; writes `out/identities_eval.json` and `out/mixing.png`."""
    if not IdentityEmbedder.available():
        raise RuntimeError("the identity figures need dlib: pip install -e '.[eval]'")
    generator = IdentityGenerator(folder=weights)
    size, crop = generator.resolution, generator.crop  # real faces framed as the generator's are
    dcgan, trained = load_dcgan(baseline) if baseline else (None, {})
    if dcgan is not None and trained["resolution"] != size:
        raise ValueError(f"the baseline in {baseline} makes {trained['resolution']}² faces, the generator {size}²")
    identity = IdentityEmbedder()
    training, held_out = real_embeddings(identity, cache, size, crop, out)
    frames, _ = video_frames(driver, driver_frames)
    ours = [generator.face(seed, truncation) for seed in range(samples)]
    report = {
        "samples": samples,
        "truncation": truncation,
        "generator_seconds": generator.train_seconds,
        "real_held_out": real_figures(training, held_out),
        "stylegan": sample_figures(ours, identity, training, held_out, list(frames), "stylegan"),
    }
    if dcgan is not None:
        with torch.no_grad():
            z = torch.randn(samples, dcgan.z_dim, generator=torch.Generator().manual_seed(0))
            theirs = [to_image(f) for f in dcgan(z)]
        report |= {"baseline_seconds": trained["seconds"], "baseline_steps": trained["steps"]}
        report["dcgan"] = sample_figures(theirs, identity, training, held_out, [], "dcgan")
    mixing_grid(
        lambda seed, **kw: generator.face(seed, truncation, **kw), range(4), range(100, 106), out / "mixing.png"
    )
    (out / "identities_eval.json").write_text(json.dumps(report, indent=1))
    return report
