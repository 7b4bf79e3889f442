"""The stage chain: packets through stages in order, failures counted per stage with the last good picture
standing in, avatars prepared before their first packet, pipelined groups that keep order, the registries, the
frozen per-section config, and background work at idle priority."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from avatarcam.config import Config, load_config, user_config_file
from avatarcam.registry import ANIMATORS, STAGES, Registry
from avatarcam.runtime.background import BackgroundJob
from avatarcam.stages import Action, Packet, StageBase
from avatarcam.stages.chain import Chain, build_stages
from avatarcam.stages.mirror import MirrorStage
from avatarcam.stages.pipelined import END, PipelinedChain, split
from avatarcam.types import Avatar, Frame


def _avatar(value: int = 10, name: str = "a") -> Avatar:
    return Avatar(name, np.full((8, 8, 3), value, np.uint8), face=None, key=name)  # type: ignore[arg-type]


def _frame(index: int) -> Frame:
    return Frame(np.full((4, 4, 3), index % 256, np.uint8), index=index, timestamp_ns=index)


class Draw(StageBase):
    """A motion stage that draws the frame's index (and fails on the indices it is given)."""

    name = "draw"
    kind = "motion"

    def __init__(self, fail_on: set[int] = frozenset(), delay: float = 0.0) -> None:
        self.fail_on, self.delay, self.prepared = fail_on, delay, []

    def prepare(self, avatar: Avatar) -> None:
        self.prepared.append(avatar.name)

    def __call__(self, packet: Packet) -> None:
        time.sleep(self.delay)
        if packet.frame.index in self.fail_on:
            raise RuntimeError("bad frame")
        packet.image = np.full((8, 8, 3), packet.frame.index, np.uint8)


class AddOne(StageBase):
    name = "add"

    def __init__(self, fail_on: set[int] = frozenset(), delay: float = 0.0) -> None:
        self.fail_on, self.delay, self.pressed = fail_on, delay, 0

    @property
    def actions(self) -> Mapping[str, Action]:
        return {"press": self.press}

    def press(self) -> str:
        self.pressed += 1
        return "pressed"

    def __call__(self, packet: Packet) -> None:
        time.sleep(self.delay)
        if packet.frame.index in self.fail_on:
            raise RuntimeError("bad frame")
        assert packet.image is not None
        packet.image = packet.image + 1


def test_a_failed_stage_is_counted_and_the_last_good_picture_stands_in() -> None:
    chain = Chain([Draw(fail_on={2, 3}), AddOne(fail_on={5})])
    avatar = _avatar(value=7)
    chain.prepare(avatar)
    out = [int(chain(Packet(_frame(i), avatar)).image[0, 0, 0]) for i in range(7)]  # type: ignore[index]
    # 2, 3: the draw stage failed, its last picture (frame 1's) stands in and the image stage still runs;
    # 5: the image stage failed, its own last output (frame 4's) stands in.
    assert out == [1, 2, 2, 2, 5, 5, 7]
    assert chain.errors == {"draw": 2, "add": 1}
    assert len(chain.times.samples["draw"]) == 5 and len(chain.times.samples["add"]) == 6


def test_before_any_good_picture_the_avatar_stands_in_and_avatars_are_prepared_on_their_first_packet() -> None:
    draw = Draw(fail_on={0})
    chain = Chain([draw, AddOne()])
    first, second = _avatar(30, "first"), _avatar(40, "second")
    assert int(chain(Packet(_frame(0), first)).image[0, 0, 0]) == 31  # type: ignore[index]
    chain(Packet(_frame(1), first))
    assert draw.prepared == ["first"]
    chain(Packet(_frame(2), second))
    assert draw.prepared == ["first", "second"]
    draw.fail_on = {3}
    assert int(chain(Packet(_frame(3), second)).image[0, 0, 0]) == 3  # frame 2's picture, drawn for `second`


def test_a_motion_failure_skips_the_frame_s_later_motion_stages() -> None:
    later = Draw()
    later.name = "later"
    chain = Chain([Draw(fail_on={1}), later])
    avatar = _avatar()
    chain(Packet(_frame(0), avatar))
    packet = chain(Packet(_frame(1), avatar))
    assert packet.failed == "draw" and len(chain.times.samples["later"]) == 1
    assert int(packet.image[0, 0, 0]) == 0  # type: ignore[index]


def test_split_cuts_after_the_named_stages() -> None:
    a, b, c = Draw(), AddOne(), AddOne()
    c.name = "c"
    assert split([a, b, c], ["draw"]) == [[a], [b, c]]
    assert split([a, b, c], ["c"]) == [[a, b, c]]
    assert split([a, b, c], ["draw", "add"]) == [[a], [b], [c]]


def _drain(runner: PipelinedChain, frames: int, avatar: Avatar) -> list[int]:
    def feed() -> None:
        for i in range(frames):
            runner.put(Packet(_frame(i), avatar))
        runner.end()

    threading.Thread(target=feed, daemon=True).start()
    got = []
    while (item := runner.get(timeout=5.0)) is not END:
        assert isinstance(item, Packet)
        got.append(item.frame.index)
    return got


def test_pipelined_keeps_every_frame_in_order_when_lossless_and_overlaps_the_stages() -> None:
    avatar = _avatar()
    runner = PipelinedChain([Draw(delay=0.01), AddOne(delay=0.01)], ["draw"], lossless=True)
    runner.prepare(avatar)
    start = time.perf_counter()
    assert _drain(runner, 40, avatar) == list(range(40))
    elapsed = time.perf_counter() - start
    runner.close()
    assert elapsed < 40 * 0.02 * 0.8  # the two 10 ms stages overlap: well under their sum per frame


def test_pipelined_live_drops_the_oldest_but_keeps_order_and_counts_errors_per_stage() -> None:
    avatar = _avatar()
    runner = PipelinedChain([Draw(fail_on={3}, delay=0.005), AddOne(fail_on={4}, delay=0.02)], ["draw"])
    runner.prepare(avatar)
    got = _drain(runner, 60, avatar)
    runner.close()
    assert got == sorted(got) and len(set(got)) == len(got) and got[-1] == 59
    assert runner.dropped > 0 and len(got) + runner.dropped == 60
    assert set(runner.errors) <= {"draw", "add"}
    assert all(not t.is_alive() for t in threading.enumerate() if t.name.startswith("stages-"))


def test_registries_list_the_valid_names_and_take_new_entries() -> None:
    assert set(STAGES.names()) >= {"track", "retarget", "animate", "compose", "mirror"}
    assert set(ANIMATORS.names()) == {"warp", "talking-head", "faceswap"}
    with pytest.raises(ValueError, match=r"unknown animator 'nope' \(valid: warp, talking-head, faceswap\)"):
        ANIMATORS.create("nope")
    registry = Registry("thing", {"path": "os.path:join"})
    assert registry.create("path", "a", "b") == os.path.join("a", "b")
    registry.add("upper", str.upper)
    assert registry.create("upper", "x") == "X"


def test_a_new_stage_is_one_class_and_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The design notes' example: the mirror stage, registered by name and listed in `chain.stages`."""
    monkeypatch.setitem(STAGES.entries, "flip", "avatarcam.stages.mirror:MirrorStage")
    config = load_config(overrides={"chain.stages": ["flip", "watermark", "badge"], "output.mirror": True})
    stage, *marks = build_stages(config)  # the disclosure marks end every chain a user configures
    assert isinstance(stage, MirrorStage) and set(stage.actions) == {"mirror"}
    assert [mark.name for mark in marks] == ["watermark", "badge"]
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    packet = Packet(_frame(0), _avatar(), image=image)
    Chain([stage])(packet)
    assert np.array_equal(packet.image, image[:, ::-1])
    stage.actions["mirror"]()
    Chain([stage])(packet := Packet(_frame(1), _avatar(), image=image))
    assert packet.image is image


def test_config_is_frozen_sectioned_and_says_what_is_valid(tmp_path: Path) -> None:
    config = load_config(overrides={"animator.faceswap.colour": "histogram", "animator.warp.grid": 128})
    assert config.animator.faceswap.colour == "histogram" and config.animator.warp.grid == 128
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.animator.size = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"unknown animator.faceswap.blend 'soft' \(valid: feather, poisson\)"):
        load_config(overrides={"animator.faceswap.blend": "soft"})
    with pytest.raises(ValueError, match=r"unknown animator.name 'x' \(valid: warp, talking-head, faceswap\)"):
        load_config(overrides={"animator.name": "x"})
    with pytest.raises(ValueError, match=r"unknown chain.stages 'blur'"):
        load_config(overrides={"chain.stages": ["track", "blur"]})
    with pytest.raises(ValueError, match=r"unknown output.sink 'tv' \(valid: auto, virtual, preview, file, null\)"):
        load_config(overrides={"output.sink": "tv"})
    with pytest.raises(ValueError, match="takes true or false"):
        load_config(overrides={"output.mirror": "yes"})
    file = tmp_path / "c.toml"
    file.write_text('[animator.talking_head]\nprecision = "fp32"\n[animator]\nname = "talking-head"\n')
    assert load_config(file).animator.talking_head.precision == "fp32"
    file.write_text('[animator.talking_head]\nprecision = "int4"\n')
    with pytest.raises(
        ValueError, match=r"c.toml: unknown animator.talking_head.precision 'int4' \(valid: int8, fp32\)"
    ):
        load_config(file)


def test_load_config_reads_the_user_config_file_when_no_file_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    assert load_config() == Config()  # none there: the defaults
    user_config_file().parent.mkdir(parents=True)
    user_config_file().write_text("[output]\nmirror = true\n")
    assert user_config_file() == tmp_path / "avatarcam" / "config.toml"
    assert load_config().output.mirror is True
    assert load_config(overrides={"output.mirror": False}).output.mirror is False  # flags win


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")
def test_background_work_runs_at_idle_priority_with_its_thread_budget_and_reports_progress(
    tmp_path, monkeypatch
) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        "import os, sys, time\n"
        "from avatarcam.runtime.background import report_progress\n"
        "report_progress(1, 4)\n"
        "print(os.sched_getscheduler(0) == os.SCHED_IDLE, os.environ['OMP_NUM_THREADS'], sys.argv[1:],\n"
        "      file=open(sys.argv[1], 'w'))\n"
        "time.sleep(0.5)\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    job = BackgroundJob("job", [str(tmp_path / "out.txt")], threads=1)
    deadline = time.monotonic() + 20
    while job.progress is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.progress == 0.25 and job.describe() == "25%, under a minute left"
    assert job.wait() == 0
    assert (tmp_path / "out.txt").read_text().split()[:2] == ["True", "1"]  # idle class; one thread
    assert not job.progress_file.exists()
