"""`avatarcam edits eval`: the issue's figures for the attribute editor, as it runs live (the ONNX export).

- Flips: each single-attribute flip of each held-out face (aligned crops the generator never saw) and of each
  portrait (edited at full resolution through `AttributeEditor.edit`, then cut again), read by the judge
  (`train.stargan.judge`, trained on faces neither the generator nor these figures saw): the share of flips the
  judge reads on the asked side.
- No-op: the face asked for the attributes it has (its labels) changes little: mean |Δ| over the face ([0, 1]).
- Identity: dlib embedding distance between each portrait and each of its edits (the `eval` extra).
- Outside the face: mean |Δ| (0–255) of the portrait's pixels outside the landmarks' hull.
- Smile: (mouth-corner distance / eye distance) of `smiling=1` minus the portrait's, on portraits the judge does
  not already read as smiling; the share that widens by ≥ 0.03.
- Speed: the generator per face at its size (the face swap's per-frame edit), and hotkey to edited avatar (the
  background preparation a toggle starts: edit the portrait, find its face, mask the person).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from avatarcam.avatar import AvatarPreparation, default_avatar_path, read_image
from avatarcam.edits.align import align_face
from avatarcam.edits.editor import AttributeEditor, portrait_edit, to_network
from avatarcam.eval.contact_sheet import expand_portraits
from avatarcam.eval.metrics import IdentityEmbedder
from avatarcam.tracking import topology as T
from avatarcam.tracking.facemesh import FaceMeshDetector, largest_face
from avatarcam.tracking.geometry import face_mask
from avatarcam.train.common import write_grid
from avatarcam.train.stargan.data import AttributeDataset
from avatarcam.train.stargan.judge import (
    JUDGE_FILE,
    judge_accuracy,
    judge_probabilities,
    load_judge,
    train_judge,
)
from avatarcam.train.stargan.train import single_flips

SMILE_WIDENING = 0.03
GRID_SIZE = 128


def mouth_ratio(landmarks: np.ndarray) -> float:
    """Mouth-corner distance over the distance between the eyes' centres."""
    xy = np.asarray(landmarks)[:, :2]
    mouth = np.linalg.norm(xy[T.MOUTH_LEFT] - xy[T.MOUTH_RIGHT])
    eyes = np.linalg.norm(xy[T.LEFT_EYE].mean(axis=0) - xy[T.RIGHT_EYE].mean(axis=0))
    return float(mouth / eyes)


def _flip_success(probs: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    return (probs[:, k] >= 0.5) == (targets[:, k] >= 0.5)


def _translated(editor: AttributeEditor, faces: np.ndarray, attributes: np.ndarray, batch: int = 64) -> np.ndarray:
    """The generator's edited faces for many faces, a batch at a time."""
    return np.concatenate(
        [editor.translate(faces[i : i + batch], attributes[i : i + batch])[0] for i in range(0, len(faces), batch)]
    )


def heldout_figures(editor: AttributeEditor, data: AttributeDataset, judge, judge_size: int) -> dict:
    attributes = editor.attributes
    size = editor.size
    crops = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in data.images])
    faces = to_network(crops)
    labels = data.labels.numpy()
    landmarks = data.landmarks * (size / data.size)
    flips = {}
    for k, target in enumerate(single_flips(torch.from_numpy(labels), attributes)):
        target = target.numpy()
        edited = _translated(editor, faces, target)
        probs = judge_probabilities(judge, judge_size, torch.from_numpy(edited))
        ok = _flip_success(probs, target, k)
        adds = target[:, k] >= 0.5
        flips[attributes[k]] = {
            "rate": float(ok.mean()),
            "add": float(ok[adds].mean()) if adds.any() else float("nan"),
            "remove": float(ok[~adds].mean()) if (~adds).any() else float("nan"),
        }
    kept = _translated(editor, faces, labels)
    regions = np.stack([face_mask(lm, size) > 0 for lm in landmarks])
    noop = np.abs(kept - faces).mean(axis=1) / 2  # [0, 1] units
    judged = judge_probabilities(judge, judge_size, torch.from_numpy(faces))
    return {
        "faces": len(faces),
        "judge_accuracy": judge_accuracy(judged, labels, attributes),
        "flips": flips,
        "noop_face_l1": float(np.mean([n[r].mean() for n, r in zip(noop, regions, strict=True)])),
    }


def portrait_figures(
    editor: AttributeEditor, portraits: list[Path], judge, judge_size: int, identity, grid_path: Path
) -> dict:
    attributes = editor.attributes
    detector = FaceMeshDetector(static=True, max_faces=4)
    rows, per_portrait = [], {}
    flips = {a: [] for a in attributes}
    distances = {a: [] for a in attributes}
    outside, widening = [], []
    try:
        for path in portraits:
            image = read_image(path)
            faces = detector.all_faces(image)
            if not faces:
                per_portrait[path.name] = "no face found"
                continue
            landmarks = largest_face(faces)
            crop, _ = align_face(image, landmarks, editor.size)
            own = editor.attributes_of(to_network(crop[None]))[0]
            region = face_mask(landmarks, image.shape[:2]) > 0
            own_judged = judge_probabilities(judge, judge_size, torch.from_numpy(to_network(crop[None])))[0]
            row = [align_face(image, landmarks, GRID_SIZE)[0]]
            own_identity = identity(image) if identity is not None else None
            said = {}
            for k, name in enumerate(attributes):
                value = 0.0 if own[k] >= 0.5 else 1.0
                edited = editor.edit(image, landmarks, {name: value})
                edited_crop, _ = align_face(edited, landmarks, editor.size)
                prob = judge_probabilities(judge, judge_size, torch.from_numpy(to_network(edited_crop[None])))[0, k]
                flips[name].append(bool((prob >= 0.5) == (value >= 0.5)))
                said[f"{name}={value:g}"] = round(float(prob), 3)
                delta = np.abs(edited.astype(np.int16) - image.astype(np.int16)).mean(axis=2)
                outside.append(float(delta[~region].mean()))
                if own_identity is not None and (theirs := identity(edited)) is not None:
                    distances[name].append(float(np.linalg.norm(own_identity - theirs)))
                if name == "smiling" and value == 1.0 and own_judged[k] < 0.5:
                    found = detector.all_faces(edited)
                    if found:
                        widening.append(mouth_ratio(largest_face(found)) - mouth_ratio(landmarks))
                row.append(align_face(edited, landmarks, GRID_SIZE)[0])
            per_portrait[path.name] = said
            rows.append(row)
    finally:
        detector.close()
    if rows:
        columns = [torch.from_numpy(to_network(np.stack(col))) for col in zip(*rows, strict=True)]
        write_grid(grid_path, columns, rows=len(rows))
    return {
        "portraits": len(rows),
        "flips": {a: float(np.mean(v)) if v else float("nan") for a, v in flips.items()},
        "identity": {a: float(np.mean(v)) if v else float("nan") for a, v in distances.items()},
        "outside_face_mean_abs": float(np.max(outside)) if outside else float("nan"),
        "smile_widening": {
            "portraits": len(widening),
            "mean": float(np.mean(widening)) if widening else float("nan"),
            "share_at_least": float(np.mean(np.array(widening) >= SMILE_WIDENING)) if widening else float("nan"),
        },
        "per_portrait": per_portrait,
    }


def speed_figures(editor: AttributeEditor, repeats: int = 3) -> dict:
    """The generator alone at its size; the whole per-frame edit of a 128² face (the face swap's: crop, critic,
    generator, paste back); and a toggle's background preparation of the default avatar at 512²."""
    portrait = read_image(default_avatar_path())
    detector = FaceMeshDetector(static=True, max_faces=1)
    try:
        small = cv2.resize(portrait, (128, 128), interpolation=cv2.INTER_AREA)
        small_face = largest_face(detector.all_faces(small))
    finally:
        detector.close()
    face = np.zeros((1, 3, editor.size, editor.size), np.float32)
    attributes = np.zeros((1, len(editor.attributes)), np.float32)
    generator, per_frame = [], []
    for _ in range(50):
        start = time.perf_counter()
        editor.translate(face, attributes)
        generator.append(time.perf_counter() - start)
        start = time.perf_counter()
        editor.edit(small, small_face, {editor.attributes[0]: 1.0})
        per_frame.append(time.perf_counter() - start)
    preparation = AvatarPreparation(512, [portrait_edit(editor, {editor.attributes[0]: 1.0})])
    toggles = []
    for _ in range(repeats):
        start = time.perf_counter()
        preparation(default_avatar_path())
        toggles.append(time.perf_counter() - start)

    def ms(times: list[float]) -> dict[str, float]:
        return {"median": 1000 * float(np.median(times)), "p95": 1000 * float(np.percentile(times, 95))}

    return {
        "generator_ms": ms(generator),
        "swap_face_128_edit_ms": ms(per_frame),
        "hotkey_to_avatar_s": {"median": float(np.median(toggles)), "max": float(np.max(toggles))},
    }


def evaluate_edits(
    cache: Path,
    portraits: list[Path],
    out: Path,
    weights: Path | None = None,
    precision: str = "int8",
    progress: bool = True,
) -> dict:
    """All figures, written to `out/edits_eval.json`, with the portraits' grid in `out/edits_grid.png`
    (`portraits`: files or folders); the judge is trained into `out/judge.pt` on the first run and reused after."""
    start = time.perf_counter()
    editor = AttributeEditor(precision, folder=weights)
    editor_load_s = time.perf_counter() - start  # the first toggle of a session waits for this too
    judge_path = out / JUDGE_FILE
    if not judge_path.is_file():
        judged = AttributeDataset(cache, "judge")
        if judged.attributes != editor.attributes:
            raise ValueError(f"the cache has {list(judged.attributes)}; the editor edits {list(editor.attributes)}")
        train_judge(judged.faces(), judged.labels, judged.attributes, out, progress=progress)
    judge, judge_size = load_judge(judge_path, editor.attributes)
    identity = IdentityEmbedder() if IdentityEmbedder.available() else None
    report = {
        "precision": precision,
        "attributes": list(editor.attributes),
        "size": editor.size,
        "heldout": heldout_figures(editor, AttributeDataset(cache, "holdout"), judge, judge_size),
        "portraits": portrait_figures(
            editor, expand_portraits(portraits), judge, judge_size, identity, out / "edits_grid.png"
        ),
        "speed": {**speed_figures(editor), "editor_load_s": editor_load_s},
    }
    (out / "edits_eval.json").write_text(json.dumps(report, indent=1))
    return report
