"""The StarGAN attribute data: UTKFace names, smile labels, the aligned crop, the resumable cache, CelebA's file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from avatarcam.cli import main
from avatarcam.edits.align import TARGETS, align_face, align_matrix, anchor_points
from avatarcam.tracking import topology as T
from avatarcam.tracking.geometry import canonical_face
from avatarcam.train.stargan.data import (
    ATTRIBUTES,
    DEFAULT_TASK_FILE,
    SMILE_THRESHOLD,
    AttributeDataset,
    FaceLabeller,
    build_attribute_cache,
    is_holdout,
    parse_utkface_name,
    read_celeba,
    split_of,
    utkface_labels,
)
from avatarcam.types import Avatar

# Picked by looking: a broad smile with teeth (blendshape score 0.97), a man with glasses and a closed,
# neutral mouth (0.0004), and an older woman's neutral face (0.003).
SMILING = "29_0_0_20170104202211753.jpg.chip.jpg"
NEUTRAL = ("39_0_0_20170104202631251.jpg.chip.jpg", "51_1_0_20170109142258293.jpg.chip.jpg")


@pytest.fixture(scope="module")
def utkface(shared_data: Path) -> Path:
    folder = shared_data / "faces" / "utkface"
    if not folder.is_dir():
        pytest.skip(f"UTKFace absent: {folder}")
    return folder


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_utkface_names_give_age_and_gender_and_nothing_else() -> None:
    face = parse_utkface_name("100_1_0_20170110183726390.jpg.chip.jpg")
    assert face is not None and face.age == 100 and face.female
    assert set(vars(face)) == {"age", "female"}  # the ethnicity field is never kept
    assert utkface_labels(face) == {"old": 1.0, "young": 0.0, "female": 1.0}
    assert utkface_labels(parse_utkface_name("/some/where/30_0_2_20170116174525125.jpg.chip.jpg")) == {
        "old": 0.0,
        "young": 1.0,
        "female": 0.0,
    }
    assert utkface_labels(parse_utkface_name("40_0_4_20170117.jpg")) == {"old": 0.0, "young": 0.0, "female": 0.0}
    for bad in (
        "61_1_20170109142408075.jpg.chip.jpg",  # a field missing (two such names are in the shared folder)
        "25_2_0_20170116174525125.jpg.chip.jpg",  # gender is 0 or 1
        "old_1_0_20170116174525125.jpg.chip.jpg",
        "25_1_0_20170116174525125.png",
        "notes.txt",
    ):
        assert parse_utkface_name(bad) is None, bad


def test_labels_of_real_faces_from_their_names(utkface: Path, tmp_path: Path) -> None:
    names = ["100_1_0_20170110183726390.jpg.chip.jpg", "10_0_0_20170110220033115.jpg.chip.jpg", SMILING, NEUTRAL[1]]
    faces = tmp_path / "faces"
    faces.mkdir()
    for name in [*names, "61_1_20170109142408075.jpg.chip.jpg"]:
        (faces / name).symlink_to(utkface / name)
    summary = build_attribute_cache(faces, tmp_path / "cache", size=64, progress=False)
    assert summary["skipped"]["unparsed_name"] == 1 and summary["faces_cached"] == 4
    data = AttributeDataset(tmp_path / "cache", "train")
    held = AttributeDataset(tmp_path / "cache", "holdout")
    both = torch.cat([data.labels, held.labels])
    labels = {n: lab.tolist() for n, lab in zip(data.names + held.names, both, strict=True)}
    assert data.attributes == ATTRIBUTES == ("smiling", "old", "young", "female")
    assert labels[names[0]][1:] == [1.0, 0.0, 1.0]  # 100, female
    assert labels[names[1]][1:] == [0.0, 1.0, 0.0]  # 10, male
    assert labels[SMILING] == [1.0, 0.0, 1.0, 0.0]  # 29, male, smiling
    assert labels[NEUTRAL[1]] == [0.0, 1.0, 0.0, 1.0]  # 51, female, neutral
    assert summary["counts"]["all"] == {"smiling": 1, "old": 2, "young": 2, "female": 2}


@pytest.mark.parametrize("kind", ["blendshapes", "geometry"])
def test_the_smile_labeller_tells_a_smile_from_a_neutral_face(utkface: Path, kind: str) -> None:
    if kind == "blendshapes" and not DEFAULT_TASK_FILE.is_file():
        pytest.skip(f"Face Landmarker model absent: {DEFAULT_TASK_FILE}")
    labeller = FaceLabeller(DEFAULT_TASK_FILE if kind == "blendshapes" else None)
    try:
        assert labeller.kind == kind
        smile = labeller(_rgb(utkface / SMILING))
        neutral = [labeller(_rgb(utkface / name)) for name in NEUTRAL]
    finally:
        labeller.close()
    assert smile is not None and all(n is not None for n in neutral)
    assert smile[0].shape == (478, 3)
    assert smile[1] > labeller.threshold + 0.2
    assert all(n[1] < labeller.threshold - 0.1 for n in neutral)
    if kind == "blendshapes":
        assert labeller.threshold == SMILE_THRESHOLD


def _canonical_landmarks(scale: float, angle_deg: float, shift: tuple[float, float]) -> np.ndarray:
    """The canonical face placed in an image by a known similarity, its anchors moved onto the targets' shape
    (so a similarity can put all three exactly where they belong)."""
    canon = canonical_face()[:, :2].copy()
    anchors = anchor_points(canon)
    # Shift the eye and mouth landmark groups so their centres have the targets' proportions.
    want = (TARGETS - TARGETS[:2].mean(axis=0)) / np.linalg.norm(TARGETS[1] - TARGETS[0])
    want = want * np.linalg.norm(anchors[1] - anchors[0]) + anchors[:2].mean(axis=0)
    for group, k in ((T.RIGHT_EYE, 0), (T.LEFT_EYE, 1), ([T.MOUTH_RIGHT, T.MOUTH_LEFT], 2)):
        canon[group] += want[k] - anchors[k]
    a = np.radians(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return canon @ rot.T + np.asarray(shift)


def test_align_face_puts_the_eyes_and_mouth_at_fixed_places_and_its_matrix_inverts() -> None:
    size = 128
    image = np.zeros((400, 500, 3), np.uint8)
    landmarks = _canonical_landmarks(scale=140.0, angle_deg=17.0, shift=(260.0, 170.0))
    for point in anchor_points(landmarks):  # white dots on the eye and mouth centres
        cv2.circle(image, tuple(int(round(v)) for v in point), 4, (255, 255, 255), -1)
    crop, matrix = align_face(image, landmarks, size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8 and matrix.shape == (2, 3)
    placed = anchor_points(landmarks) @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(placed, TARGETS * size, atol=1e-6)
    for x, y in TARGETS * size:  # the dots are drawn there
        assert crop[int(round(y)), int(round(x))].min() > 200
    # The inverse maps crop pixels back onto the image: the anchors, and the crop's content.
    inverse = cv2.invertAffineTransform(matrix)
    np.testing.assert_allclose(TARGETS * size @ inverse[:, :2].T + inverse[:, 2], anchor_points(landmarks), atol=1e-6)
    texture = cv2.resize(np.random.default_rng(0).integers(0, 255, (50, 63, 3), np.uint8), (500, 400))
    crop, matrix = align_face(texture, landmarks, size)
    back = cv2.warpAffine(crop, cv2.invertAffineTransform(matrix), (500, 400), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.ones((size, size), np.uint8), cv2.invertAffineTransform(matrix), (500, 400))
    inside = cv2.erode(inside, np.ones((5, 5), np.uint8)) > 0
    assert inside.sum() > 5000
    assert np.abs(back[inside].astype(int) - texture[inside]).mean() < 12


def test_align_face_on_a_512_avatar(astronaut_face: Avatar) -> None:
    """At run time: the avatar's face, cut at 128² (the image shrunk by pyramid steps first), lands with its eyes
    near the targets; an unchanged crop pasted back leaves the face as it was, up to resampling."""
    image = cv2.resize(astronaut_face.image, (512, 512), interpolation=cv2.INTER_CUBIC)
    landmarks = astronaut_face.face.landmarks * (512 / astronaut_face.size)
    crop, matrix = align_face(image, landmarks, 128)
    placed = anchor_points(landmarks) @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(placed - TARGETS * 128).max() < 0.04 * 128  # a real face is not the targets' exact shape
    np.testing.assert_allclose(matrix, align_matrix(landmarks, 128))
    back = cv2.warpAffine(crop, cv2.invertAffineTransform(matrix), (512, 512), flags=cv2.INTER_LINEAR)
    face = np.zeros((512, 512), np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(landmarks[:, :2].astype(np.int32)), 1)
    assert np.abs(back[face > 0].astype(int) - image[face > 0]).mean() < 10  # 128² of a ~300² face: blurrier


def test_the_cache_resumes_and_its_holdout_split_is_stable(utkface: Path, tmp_path: Path, monkeypatch) -> None:
    from avatarcam.train.stargan import data as module

    monkeypatch.setattr(module, "SHARD_FACES", 8)
    out = tmp_path / "cache"
    first = build_attribute_cache(utkface, out, size=32, limit=20, progress=False)
    assert first["shards_written"] == 3 and len(first["shards"]) == 3
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*.npz")}
    # An interrupted build: the last shard was never written. The next run writes it alone.
    (out / "shard_00002.npz").unlink()
    second = build_attribute_cache(utkface, out, size=32, limit=20, progress=False)
    assert second["shards_written"] == 1
    third = build_attribute_cache(utkface, out, size=32, limit=20, progress=False)
    assert third["shards_written"] == 0  # nothing new
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard_0000[01].npz")} == {
        k: v for k, v in stamps.items() if k != "shard_00002.npz"
    }
    assert not list(out.glob("*.tmp.npz"))
    for key in ("counts", "holdout", "faces_cached", "skipped"):
        assert first[key] == third[key], key
    # Held out: the faces whose name hashes to 0 mod 10, whatever the run; the judge's are 2 in 10 others.
    train, judge, held = (AttributeDataset(out, s) for s in ("train", "judge", "holdout"))
    everyone = train.names + judge.names + held.names
    assert held.names == first["holdout"] == [n for n in everyone if is_holdout(n)]
    assert len(set(everyone)) == len(everyone) == first["faces_cached"]
    assert first["train"] == len(train) and first["judge"] == len(judge)
    assert is_holdout("x.jpg") == is_holdout("x.jpg")
    splits = [split_of(f"{k}_0_0_2017.jpg.chip.jpg") for k in range(5000)]
    assert 0.08 < splits.count("holdout") / 5000 < 0.12 and 0.17 < splits.count("judge") / 5000 < 0.23
    with pytest.raises(ValueError, match="choose train, judge, holdout"):
        AttributeDataset(out, "test")
    # The reader: floats in [-1, 1], N×3×S×S, labels N×4.
    images, labels = train.batch()
    assert images.shape == (len(train), 3, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (len(train), 4) and set(labels.unique().tolist()) <= {0.0, 1.0}
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.min() < -0.5 and images.max() > 0.5
    item, label = train[0]
    assert torch.equal(item, images[0]) and torch.equal(label, labels[0])
    raw = train.faces()
    assert raw.dtype == torch.uint8 and torch.equal(raw.float() / 127.5 - 1.0, images)
    assert train.faces(16).shape == (len(train), 3, 16, 16)  # a preset at another size
    centre = train.faces(centre=0.5)  # the central half of each side, at the cache's own size
    assert centre.shape == (len(train), 3, 16, 16) and torch.equal(centre, raw[:, :, 8:24, 8:24])
    # Other settings in the same folder are refused, not mixed in.
    with pytest.raises(ValueError, match="other settings.*size"):
        build_attribute_cache(utkface, out, size=64, limit=20, progress=False)
    with pytest.raises(ValueError, match="unknown split"):
        AttributeDataset(out, "test")
    with pytest.raises(FileNotFoundError, match="train data attributes"):
        AttributeDataset(tmp_path / "nothing")


CELEBA_NAMES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def _celeba(tmp_path: Path, astronaut_face: Avatar) -> tuple[Path, Path, list[np.ndarray]]:
    """A 3-line list_attr_celeba.txt and its 3 images (the default avatar, flipped and darker: real faces)."""
    images_dir = tmp_path / "img_align_celeba"
    images_dir.mkdir()
    face = cv2.resize(astronaut_face.image, (178, 218))
    rows = []
    for k, image in enumerate([face, face[:, ::-1], (face * 0.7).astype(np.uint8)], start=1):
        cv2.imwrite(str(images_dir / f"{k:06d}.jpg"), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
        values = -np.ones(40, int)
        values[CELEBA_NAMES.index("Smiling")] = 1 if k != 2 else -1
        values[CELEBA_NAMES.index("Male")] = 1 if k == 3 else -1
        values[CELEBA_NAMES.index("Young")] = 1 if k == 1 else -1
        rows.append(f"{k:06d}.jpg " + " ".join(f"{v:2d}" for v in values))
    attr_file = tmp_path / "list_attr_celeba.txt"
    attr_file.write_text(f"3\n{' '.join(CELEBA_NAMES)} \n" + "\n".join(rows) + "\n")
    return attr_file, images_dir, [face]


def test_the_celeba_reader(tmp_path: Path, astronaut_face: Avatar) -> None:
    attr_file, images_dir, _ = _celeba(tmp_path, astronaut_face)
    rows = list(read_celeba(attr_file, images_dir))
    assert [p.name for p, _ in rows] == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert all(p.parent == images_dir and labels.shape == (40,) for p, labels in rows)
    assert rows[0][1][CELEBA_NAMES.index("Smiling")] == 1.0 and rows[1][1][CELEBA_NAMES.index("Smiling")] == 0.0
    assert set(np.concatenate([labels for _, labels in rows]).tolist()) == {0.0, 1.0}
    picked = [labels.tolist() for _, labels in read_celeba(attr_file, images_dir, ["Smiling", "Male", "Young"])]
    assert picked == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]
    # The project's names: old = not Young, female = not Male.
    ours = [labels.tolist() for _, labels in read_celeba(attr_file, images_dir, ATTRIBUTES)]
    assert ours == [[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="unknown CelebA attribute.*Smiley.*valid: 5_o_Clock_Shadow.*Young"):
        read_celeba(attr_file, images_dir, ["Smiling", "Smiley"])
    bad = tmp_path / "bad.txt"
    bad.write_text(f"1\n{' '.join(CELEBA_NAMES)}\n000001.jpg 1 -1\n")
    with pytest.raises(ValueError, match="line 3: 2 values for 40 attributes"):
        list(read_celeba(bad, images_dir))


def test_a_celeba_cache_through_the_command_line(tmp_path: Path, astronaut_face: Avatar, capsys) -> None:
    attr_file, images_dir, _ = _celeba(tmp_path, astronaut_face)
    out = tmp_path / "cache"
    argv = ["train", "data", "attributes", "--celeba", str(attr_file), str(images_dir), "--out", str(out)]
    assert main([*argv, "--size", "64", "--attributes", "Smiling", "Male", "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["source"] == "celeba" and summary["labeller"] == "celeba" and summary["faces_cached"] == 3
    assert summary["counts"]["all"] == {"Smiling": 2, "Male": 1}
    faces = AttributeDataset(out, "train")
    assert faces.attributes == ("Smiling", "Male") and faces.batch()[0].shape[1:] == (3, 64, 64)
    assert main([*argv, "--attributes", "Smiley"]) == 2
    assert "unknown CelebA attribute(s): Smiley; valid: 5_o_Clock_Shadow" in capsys.readouterr().err


def test_the_data_commands_parse(tmp_path: Path, capsys) -> None:
    from avatarcam.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "data", "talking-head", "--clips", "c", "--out", "o"])
    assert args.func.__name__ == "cmd_train_data_talking_head" and args.clips == "c"
    args = parser.parse_args(["train", "data", "attributes", "--faces", "f", "--out", "o", "--limit", "5"])
    assert args.func.__name__ == "cmd_train_data_attributes" and args.limit == 5 and args.size == 128
    for argv in (
        ["train", "data", "--clips", "c", "--out", "o"],  # the old form
        ["train", "data", "attributes", "--out", "o"],  # no faces
        ["train", "data", "attributes", "--faces", "f", "--celeba", "a", "b", "--out", "o"],  # both
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    capsys.readouterr()
    assert main(["train", "data", "attributes", "--faces", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "faces folder not found" in capsys.readouterr().err
    bad = tmp_path / "faces"
    bad.mkdir()
    argv = ["train", "data", "attributes", "--faces", str(bad), "--out", str(tmp_path / "o"), "--attributes", "asian"]
    assert main(argv) == 2
    assert "unknown attribute(s) for UTKFace: asian; valid: smiling, old, young, female" in capsys.readouterr().err
