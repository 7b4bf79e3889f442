"""Attribute edits at run time: the editor's checks, the face it edits and the pixels it leaves alone, and
`avatarcam avatar edit` end to end (on an editor trained briefly here: the shipped one is tested for quality
by the README's figures)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import small_attribute_cache

from avatarcam.avatar import read_image
from avatarcam.cli import main
from avatarcam.edits.editor import AttributeEditor, EditError, parse_edits
from avatarcam.train.stargan.export import export_stargan
from avatarcam.train.stargan.train import StarGANSettings, train_stargan

ATTRS = ("smiling", "old", "young", "female")


@pytest.fixture(scope="module")
def editor_folder(tmp_path_factory, shared_data: Path) -> Path:
    """A 32² editor trained for a few steps on real faces and exported as the product exports one."""
    root = tmp_path_factory.mktemp("editor")
    files = sorted((shared_data / "faces" / "utkface").glob("*.jpg"))[::301][:16]
    faces = np.stack([cv2.resize(read_image(f), (32, 32), interpolation=cv2.INTER_AREA) for f in files])
    faces = torch.from_numpy(faces).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([[0.0, int(f.name.split("_")[0]) >= 50, 0, f.name.split("_")[1] == "1"] for f in files])
    settings = StarGANSettings(size=32, width=8, blocks=1, batch=4, steps=5, critic_steps=1, threads=2)
    train_stargan(faces, labels, ATTRS, root / "run", settings, progress=False)
    export_stargan(root / "run" / "stargan.pt", root / "weights", faces.numpy(), labels.numpy(), {"data": "test"})
    return root / "weights"


def test_parse_edits() -> None:
    assert parse_edits("smiling=1, old=0.5,female") == {"smiling": 1.0, "old": 0.5, "female": 1.0}
    with pytest.raises(EditError, match="must be a number"):
        parse_edits("smiling=lots")


def test_the_editor_refuses_unknown_attributes_and_strengths_outside_0_1(editor_folder: Path) -> None:
    editor = AttributeEditor("fp32", folder=editor_folder)
    assert editor.attributes == ATTRS and editor.size == 32
    with pytest.raises(EditError, match=r"unknown attribute 'bald' \(valid: smiling, old, young, female\)"):
        editor.check({"bald": 1.0})
    with pytest.raises(EditError, match=r"strength 1.5 is outside \[0, 1\]"):
        editor.check({"smiling": 1.5})


def test_asking_old_takes_young_away_and_the_rest_stays_the_face_s_own(editor_folder: Path) -> None:
    editor = AttributeEditor("fp32", folder=editor_folder)
    own = np.array([0.2, 0.1, 0.9, 0.7], np.float32)
    np.testing.assert_allclose(editor.target(own, {"old": 1.0}), [0.2, 1.0, 0.0, 0.7])
    np.testing.assert_allclose(editor.target(own, {"old": 0.5, "smiling": 1.0}), [1.0, 0.5, 0.5, 0.7])


def test_an_edit_changes_the_face_only(editor_folder: Path, astronaut_face) -> None:
    editor = AttributeEditor("fp32", folder=editor_folder)
    image, landmarks = astronaut_face.image, astronaut_face.face.landmarks
    assert editor.edit(image, landmarks, {}) is image
    edited = editor.edit(image, landmarks, {"smiling": 1.0, "old": 1.0})
    assert edited.shape == image.shape and edited.dtype == np.uint8
    # Outside the hull of the face's landmarks nothing may change at all; inside, the edit shows.
    face = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(np.round(landmarks[:, :2]).astype(np.int32)), 1)
    changed = np.abs(edited.astype(int) - image).max(axis=2) > 0
    assert not changed[face == 0].any()
    assert changed[face > 0].mean() > 0.1


def test_avatar_edit_writes_the_edited_portrait_and_says_what_is_wrong(
    editor_folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from avatarcam.avatar import default_avatar_path

    monkeypatch.setattr("avatarcam.edits.editor.weights_dir", lambda: editor_folder)
    out = tmp_path / "edited.png"
    assert main(["avatar", "edit", str(default_avatar_path()), "--set", "smiling=1", "--out", str(out)]) == 0
    portrait, edited = read_image(default_avatar_path()), read_image(out)
    assert edited.shape == portrait.shape and np.abs(edited.astype(int) - portrait).max() > 0
    assert main(["avatar", "edit", str(default_avatar_path()), "--set", "bald=1", "--out", str(out)]) == 2
    assert "unknown attribute 'bald' (valid: smiling, old, young, female)" in capsys.readouterr().err
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((64, 64, 3), 128, np.uint8))
    assert main(["avatar", "edit", str(blank), "--set", "smiling=1", "--out", str(out)]) == 2
    assert "no face found" in capsys.readouterr().err


class Capture:
    """A sink that keeps every frame it is sent."""

    name, closed, private = "capture", False, False

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        self.frames.append(image.copy())

    def poll_key(self) -> None:
        return None

    def close(self) -> None:
        pass


def test_a_hotkey_toggles_an_edit_on_air_and_back_exactly(editor_folder: Path, astronaut_face, monkeypatch) -> None:
    from avatarcam.config import load_config
    from avatarcam.demo import DemoSource
    from avatarcam.marks.payload import new_session
    from avatarcam.pipeline import LivePipeline

    monkeypatch.setattr("avatarcam.edits.editor.weights_dir", lambda: editor_folder)
    session = new_session()
    monkeypatch.setattr("avatarcam.stages.watermark.new_session", lambda: session)  # both runs: one watermark
    overrides = {"animator.size": 256, "output.width": 256, "output.height": 256, "chain.pipelined": False}
    config = load_config(overrides={**overrides, "edits.precision": "fp32"})
    source = DemoSource(astronaut_face, 320, 240, realtime=False)
    sink = Capture()
    pipeline = LivePipeline(config, source, sink, astronaut_face)
    try:
        pipeline.run(max_frames=2)
        assert "edit_smiling" in pipeline.actions
        pipeline.trigger("edit_smiling")
        deadline = pipeline.stats.frames + 200
        while pipeline.switcher.avatar is astronaut_face and pipeline.stats.frames < deadline:
            pipeline.step()
        edited = pipeline.switcher.avatar
        assert edited is not astronaut_face and pipeline.switcher.edits == {"smiling": 1.0}
        assert "edits: smiling" in pipeline.switcher.status
        assert np.abs(edited.image.astype(int) - astronaut_face.image).max() > 0
        pipeline.step()
        on_air = sink.frames[-1]
        pipeline.trigger("edit_smiling")  # off again: the portrait itself, at once
        assert pipeline.switcher.avatar is astronaut_face and not pipeline.switcher.edits
        pipeline.step()
        assert not np.array_equal(sink.frames[-1], on_air)
    finally:
        pipeline.close()
        source.close()
    # The same motion with the edit toggled back gives exactly the frames of a run that never edited.
    plain_sink, plain_source = Capture(), DemoSource(astronaut_face, 320, 240, realtime=False)
    plain = LivePipeline(config, plain_source, plain_sink, astronaut_face)
    try:
        plain.run(max_frames=len(sink.frames))
    finally:
        plain.close()
        plain_source.close()
    np.testing.assert_array_equal(plain_sink.frames[1], sink.frames[1])  # before the toggle
    np.testing.assert_array_equal(plain_sink.frames[-1], sink.frames[-1])  # toggled back: exactly restored


def test_the_face_swap_s_frames_are_edited_where_the_driver_s_face_is(
    editor_folder: Path, astronaut_face, monkeypatch
) -> None:
    import dataclasses

    from avatarcam.config import load_config
    from avatarcam.stages import Packet
    from avatarcam.stages.edit import EditStage, square_landmarks
    from avatarcam.types import Frame

    monkeypatch.setattr("avatarcam.edits.editor.weights_dir", lambda: editor_folder)
    # The driver's frame: the portrait letterboxed into a 4:3 camera frame; the swap's output is its centre.
    camera = cv2.copyMakeBorder(astronaut_face.image, 0, 0, 64, 64, cv2.BORDER_REPLICATE)
    face = dataclasses.replace(astronaut_face.face, landmarks=astronaut_face.face.landmarks + (64, 0, 0))
    np.testing.assert_allclose(square_landmarks(face.landmarks, camera.shape, 256), astronaut_face.face.xy)
    edited_avatar = dataclasses.replace(astronaut_face, edits={"smiling": 1.0})
    config = load_config(overrides={"animator.name": "faceswap", "edits.precision": "fp32"})
    stage = EditStage(config)
    square = astronaut_face.image.copy()
    packet = Packet(Frame(camera), edited_avatar, face=face, image=square)
    stage(packet)
    expected = AttributeEditor("fp32", folder=editor_folder).edit(square, astronaut_face.face.xy, {"smiling": 1.0})
    np.testing.assert_array_equal(packet.image, expected)
    assert not np.array_equal(packet.image, square)
    untouched = Packet(Frame(camera), astronaut_face, face=face, image=square)  # no edits: nothing to do
    stage(untouched)
    assert untouched.image is square
    warp_stage = EditStage(load_config())  # a portrait animator's avatar was edited once, not per frame
    again = Packet(Frame(camera), edited_avatar, face=face, image=square)
    warp_stage(again)
    assert again.image is square


def test_an_edit_without_an_editor_says_so_and_the_avatar_stays(astronaut_face, tmp_path, monkeypatch) -> None:
    from avatarcam.avatar import AvatarPreparation
    from avatarcam.switcher import AvatarSwitcher

    (tmp_path / "manifest.json").write_text('{"files": {}}')  # weights without an editor
    monkeypatch.setattr("avatarcam.edits.editor.weights_dir", lambda: tmp_path)
    switcher = AvatarSwitcher(astronaut_face, [], AvatarPreparation(256), ("smiling",), lambda: AttributeEditor())
    assert switcher.toggle_edit("smiling") is None and "loading" in switcher.status
    assert switcher._pending is not None
    switcher._pending.exception(timeout=60)  # the load ends (in error)
    said = switcher.poll()
    assert said is not None and said.startswith("edit not made: weights file stargan.onnx")
    assert switcher.avatar is astronaut_face and switcher.edits == {}
    switcher.close()


def test_with_the_face_swap_an_edit_is_recorded_not_drawn_into_the_portrait(
    editor_folder: Path, astronaut_face
) -> None:
    from avatarcam.animators import draws_portrait
    from avatarcam.avatar import AvatarPreparation
    from avatarcam.switcher import AvatarSwitcher

    assert not draws_portrait("faceswap") and draws_portrait("warp") and draws_portrait("talking-head")
    make = partial(AttributeEditor, "fp32", folder=editor_folder)
    switcher = AvatarSwitcher(astronaut_face, [], AvatarPreparation(256), ("smiling",), make, edit_portrait=False)
    switcher.toggle_edit("smiling")
    assert switcher._pending is not None
    switcher._pending.result(timeout=60)
    assert switcher.poll() == f"avatar: {astronaut_face.name} (smiling)"
    # The swap edits every frame (the edit stage); its portrait, which only poses it, stays as it was.
    avatar = switcher.avatar
    assert avatar.edits == {"smiling": 1.0} and avatar.image is astronaut_face.image
    assert avatar.face is astronaut_face.face
    switcher.toggle_edit("smiling")
    assert switcher.avatar is astronaut_face
    switcher.close()


@pytest.mark.parametrize("edit_portrait", [True, False])
def test_a_toggle_for_an_attribute_the_weights_do_not_know_says_so(
    editor_folder: Path, astronaut_face, edit_portrait: bool
) -> None:
    """A config that binds `edit_bald` to weights trained on four other attributes: the HUD says which it knows."""
    from avatarcam.avatar import AvatarPreparation
    from avatarcam.switcher import AvatarSwitcher

    make = partial(AttributeEditor, "fp32", folder=editor_folder)
    switcher = AvatarSwitcher(astronaut_face, [], AvatarPreparation(256), ("bald",), make, edit_portrait)
    switcher.toggle_edit("bald")
    assert switcher._pending is not None
    switcher._pending.exception(timeout=60)
    assert switcher.poll() == "edit not made: unknown attribute 'bald' (valid: smiling, old, young, female)"
    assert switcher.avatar is astronaut_face and switcher.edits == {}
    switcher.close()


def test_the_edits_evaluation_reports_every_figure_the_issue_names(
    editor_folder: Path, shared_data: Path, tmp_path: Path, monkeypatch
) -> None:
    """On a small cache of real faces and two portraits (one without a face): judged flips, no-op change,
    identity (where dlib is installed), pixels outside the face, the smile's widening, speed, and the grid."""
    from avatarcam.avatar import default_avatar_path
    from avatarcam.train.stargan import judge as judge_module
    from avatarcam.train.stargan.evaluate import evaluate_edits

    cache = small_attribute_cache(shared_data, tmp_path, 151, 40, monkeypatch)
    monkeypatch.setattr(judge_module, "JudgeSettings", partial(judge_module.JudgeSettings, size=32, width=8, epochs=2))
    portraits = tmp_path / "portraits"
    portraits.mkdir()
    (portraits / "default.png").symlink_to(default_avatar_path())
    cv2.imwrite(str(portraits / "blank.png"), np.full((64, 64, 3), 128, np.uint8))
    report = evaluate_edits(cache, [portraits], tmp_path / "out", editor_folder, "fp32", progress=False)
    held, shown = report["heldout"], report["portraits"]
    assert held["faces"] > 0 and set(held["flips"]) == set(ATTRS) and set(held["judge_accuracy"]) == set(ATTRS)
    assert all(0 <= f["rate"] <= 1 for f in held["flips"].values())
    assert 0 < held["noop_face_l1"] < 1
    assert shown["portraits"] == 1 and shown["per_portrait"]["blank.png"] == "no face found"
    said = shown["per_portrait"]["default.png"]  # each attribute flipped once, with the judge's reading
    assert sorted(key.split("=")[0] for key in said) == sorted(ATTRS) and all(0 <= p <= 1 for p in said.values())
    assert shown["outside_face_mean_abs"] == 0.0  # edits stay inside the face, exactly
    speed = report["speed"]
    assert speed["generator_ms"]["median"] > 0 and speed["swap_face_128_edit_ms"]["median"] > 0
    assert speed["hotkey_to_avatar_s"]["median"] > 0 and speed["editor_load_s"] > 0
    assert (tmp_path / "out" / "edits_eval.json").is_file() and (tmp_path / "out" / "judge.pt").is_file()
    grid = cv2.imread(str(tmp_path / "out" / "edits_grid.png"))
    assert grid.shape[1] == (1 + len(ATTRS)) * 128  # the portrait, then each flip


def test_the_bench_runs_the_live_loop_with_an_edit_on(editor_folder: Path, monkeypatch) -> None:
    from avatarcam.bench import bench_live, bench_with_edit, ratios
    from avatarcam.config import load_config

    monkeypatch.setattr("avatarcam.edits.editor.weights_dir", lambda: editor_folder)
    config = load_config(overrides={"animator.size": 128, "edits.precision": "fp32"})
    plain = bench_live(config, 1.0, None)
    edited = bench_with_edit(config, 1.0, None, "smiling")
    assert edited.key == "live-edit" and edited.what.endswith(", edit smiling") and edited.fps > 0
    assert plain.key == "live-pipelined"
    assert any(line.startswith("live fps with an attribute edit on: ") for line in ratios([plain, edited]))
