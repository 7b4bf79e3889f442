"""End to end: driver frames → the stage chain → LivePipeline → a (fake) virtual camera, with hotkeys and failures.

Most tests run the stages in turn (`chain.pipelined=False`): they count frames exactly and compare frame k with
frame k-1. The tests with "pipelined" in their name run the default mode (the stages on their own threads).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FAKE_BACKEND, TALKING_FRAMES

from avatarcam.avatar import square_crop
from avatarcam.config import AnimatorConfig, ChainConfig, Config, HotkeyConfig, OutputConfig
from avatarcam.demo import DemoSource
from avatarcam.hotkeys import Hotkeys
from avatarcam.io.sinks import RecorderSink, VirtualCameraSink
from avatarcam.io.sources import VideoFileSource, read_video
from avatarcam.pipeline import LivePipeline
from avatarcam.stages import CAMERA_LOST, Packet, StageBase
from avatarcam.stages.chain import Chain, build_stages
from avatarcam.stages.mirror import MirrorStage
from avatarcam.stages.pipelined import PipelinedChain
from avatarcam.types import Avatar, Frame, now_ns

MARKS = ("watermark", "badge")
UNMARKED = tuple(name for name in ChainConfig().stages if name not in MARKS)


def make_config(
    width: int = 256,
    height: int = 256,
    hud: bool = False,
    pipelined: bool = False,
    mirror: bool = False,
    marks: bool = False,
    **chain,
) -> Config:
    """Avatar at 256², output `width`×`height`; the stages in turn unless `pipelined` (the product's default);
    without the disclosure marks unless `marks` (tests compare frames pixel by pixel; the marks have their own)."""
    if not marks:
        chain.setdefault("stages", UNMARKED)
    return Config(
        animator=AnimatorConfig(size=256),
        output=OutputConfig(width=width, height=height, hud=hud, mirror=mirror),
        chain=ChainConfig(pipelined=pipelined, **chain),
    )


class ListSource:
    """Camera-like: serves the given images stamped with the capture time; None = the camera delivered nothing.
    `pace`: seconds each read waits first (a camera's frame interval)."""

    name = "list"
    fps = 30.0

    def __init__(self, images: Iterable[np.ndarray | None], pace: float = 0.0) -> None:
        self.images = list(images)
        self.pace = pace
        self.reads = 0
        self.finished = False
        self.served: list[Frame] = []

    def read(self, timeout: float = 1.0) -> Frame | None:
        time.sleep(self.pace)
        if self.reads >= len(self.images):
            self.finished = True
            return None
        image = self.images[self.reads]
        self.reads += 1
        if image is None:
            return None
        frame = Frame(image, now_ns(), self.reads - 1)
        self.served.append(frame)
        return frame

    def index_of(self, timestamp_ns: int | None) -> int | None:
        """The index of the served frame captured at `timestamp_ns` (None: not a camera frame, a stand-in)."""
        return next((f.index for f in self.served if f.timestamp_ns == timestamp_ns), None)

    def close(self) -> None:
        pass


class KeyedSink:
    """Wraps a sink; its preview window 'presses' the given key before the given step (0-based poll count)."""

    def __init__(self, sink, keys: dict[int, str], close_at: int | None = None) -> None:
        self.sink, self.keys, self.polls, self.close_at = sink, keys, 0, close_at
        self.name, self.private = sink.name, sink.private

    @property
    def closed(self) -> bool:
        """The user closes the window before poll `close_at`."""
        return self.close_at is not None and self.polls >= self.close_at

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        self.sink.send(image, timestamp_ns)

    def poll_key(self) -> str | None:
        key = self.keys.get(self.polls)
        self.polls += 1
        return key

    def close(self) -> None:
        self.sink.close()


def virtual_sink(config: Config) -> VirtualCameraSink:
    out = config.output
    return VirtualCameraSink(out.width, out.height, out.fps, backend=FAKE_BACKEND)


class Pipelines:
    """Makes LivePipelines with the default avatar and closes (once) those a test left open."""

    def __init__(self, avatar: Avatar) -> None:
        self.avatar = avatar
        self.open: list[LivePipeline] = []

    def __call__(self, config: Config, source, sink, **kw) -> LivePipeline:
        pipeline = LivePipeline(config, source, sink, kw.pop("avatar", self.avatar), **kw)
        self.open.append(pipeline)
        return pipeline

    def close(self, pipeline: LivePipeline) -> None:
        self.open.remove(pipeline)
        pipeline.close()


@pytest.fixture
def pipelines(astronaut_face: Avatar):
    made = Pipelines(astronaut_face)
    yield made
    for pipeline in list(made.open):
        made.close(pipeline)


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def packet_for(frame: Frame, avatar: Avatar, notices: list[str] | None = None) -> Packet:
    return Packet(frame, avatar, notices=notices or [])


def test_demo_motion_through_the_pipeline_into_the_virtual_camera(
    astronaut_face: Avatar, fake_virtualcam, pipelines
) -> None:
    config = make_config(320, 180, hud=True, marks=True)  # the product's chain, as shipped
    source = DemoSource(astronaut_face, 320, 240, realtime=False)
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink)
        stats = pipeline.run(max_frames=30)
    source.close()
    camera = fake_virtualcam.instances[0]
    assert camera.closed
    assert stats.frames == 30 and len(camera.frames) == 30 and stats.repeats == 0
    assert all(f.shape == (180, 320, 3) and f.dtype == np.uint8 for f in camera.frames)
    assert pipeline.errors == 0 and not pipeline.runner.errors
    assert pipeline.stage("track").status == ""  # the last frame's face was tracked ("no face…" otherwise)
    # The face moves: the avatar square (centre of the frame, below the HUD) changes over time.
    centre = [f[70:, 70:250] for f in camera.frames]
    assert diff(centre[0], centre[-1]) > 2.0
    assert sum(diff(a, b) > 0.05 for a, b in zip(centre, centre[1:], strict=False)) >= 25  # frame after frame
    assert len(stats.latencies_ms) == 30 and min(stats.latencies_ms) >= 0
    summary = pipeline.times.summary()
    assert set(summary) == set(ChainConfig().stages)  # every stage of the default path, the marks included
    assert all(v[0] > 0 for v in summary.values())
    assert all(len(pipeline.times.samples[name]) == 30 for name in summary)  # every stage, every frame


def test_latency_and_fps_of_a_live_source(demo_frames: list[Frame], fake_virtualcam, pipelines) -> None:
    config = make_config()
    source = ListSource(f.image for f in demo_frames[:20])
    with virtual_sink(config) as sink:
        stats = pipelines(config, source, sink).run()
    assert stats.frames == 20 and len(fake_virtualcam.instances[0].frames) == 20
    assert len(stats.latencies_ms) == 20
    assert 0 < stats.latency(50) <= stats.latency(95) < 2000  # capture → send, milliseconds
    assert stats.fps > 1.0


def test_a_video_file_drives_the_pipeline(talking_video: Path, fake_virtualcam, pipelines) -> None:
    config = make_config(320, 180)
    source = VideoFileSource(talking_video, loop=False, realtime=False)
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink)
        stats = pipeline.run(max_seconds=60)
    source.close()
    frames = fake_virtualcam.instances[0].frames
    assert source.finished
    assert stats.frames == TALKING_FRAMES == len(frames)  # ends with the file
    assert frames[0].shape == (180, 320, 3)
    assert pipeline.errors == 0
    assert diff(frames[0][:, 70:250], frames[-1][:, 70:250]) > 2.0


class SlowCamera(ListSource):
    """A camera that captures 14 frames a second (as its frames' capture times say), read without waiting."""

    def read(self, timeout: float = 1.0) -> Frame | None:
        frame = super().read(timeout)
        if frame is None:
            return None
        return Frame(frame.image, self.served[0].timestamp_ns + round(frame.index * 1e9 / 14), frame.index)


def test_a_recording_plays_at_the_speed_the_camera_captured(
    demo_frames: list[Frame], tmp_path: Path, pipelines
) -> None:
    """A camera delivering 14 fps into a 30 fps recording: the file lasts as long as the capture did."""
    config = make_config()
    source = SlowCamera(f.image for f in demo_frames[:28])
    path = tmp_path / "live.mp4"
    with RecorderSink(path, config.output.fps, 256, 256) as sink:
        pipelines(config, source, sink).run()
    frames, fps = read_video(path)
    assert fps == pytest.approx(30)
    assert abs(len(frames) - 2 * 30) <= 1  # 28 captures at 14 fps last 2 s: 60 frames at 30 fps, not 28


def test_camera_lost_resends_the_last_frame_and_keeps_going(
    demo_frames: list[Frame], fake_virtualcam, pipelines
) -> None:
    """While the camera is lost a stand-in goes through the image stages: composed to the output's size (not the
    avatar's square) and mirrored like every frame, it repeats the last good output and counts as a repeat."""
    config = make_config(320, 180, mirror=True)
    images = [f.image for f in demo_frames[:5]] + [None, None, None] + [f.image for f in demo_frames[5:10]]
    source = ListSource(images)
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink)
        stats = pipeline.run()
    sent = fake_virtualcam.instances[0].frames
    assert stats.frames == 10 and stats.repeats == 3
    assert len(sent) == 13  # the virtual camera never stops receiving frames
    assert all(f.shape == (180, 320, 3) for f in sent)
    for k in (5, 6, 7):  # while lost: the last good output again
        np.testing.assert_array_equal(sent[k], sent[4])
    assert diff(sent[8], sent[4]) > 0.0  # then live again
    assert pipeline.errors == 0  # a lost camera is not a frame error
    assert len(stats.latencies_ms) == 10  # and stand-ins are not live frames


class MonitorWindow:
    """A preview window only the user sees, beside the virtual camera: keeps what it shows (and, for each frame,
    its timestamp and how many key polls came before it), 'presses' `keys` before the given poll, and is closed
    by the user after `close_after` frames."""

    name, private = "monitor", True

    def __init__(self, keys: dict[int, str] | None = None, close_after: int | None = None) -> None:
        self.frames: list[np.ndarray] = []
        self.stamps: list[int | None] = []
        self.polls_at: list[int] = []
        self.keys, self.polls, self.close_after = keys or {}, 0, close_after

    @property
    def closed(self) -> bool:
        return self.close_after is not None and len(self.frames) >= self.close_after

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        self.frames.append(image.copy())
        self.stamps.append(timestamp_ns)
        self.polls_at.append(self.polls)

    def poll_key(self) -> str | None:
        self.polls += 1
        return self.keys.get(self.polls - 1)

    def between_polls(self, first: int, last: int | None = None) -> list[np.ndarray]:
        """The frames shown after the key of poll `first` (0-based) was handled, and before that of poll `last`."""
        return [
            image
            for image, polls in zip(self.frames, self.polls_at, strict=True)
            if first < polls and (last is None or polls <= last)
        ]

    def close(self) -> None:
        pass


TOP_LEFT, BOTTOM_RIGHT = (slice(0, 100), slice(0, 200)), (slice(-40, None), slice(-40, None))


def test_the_hud_shows_in_the_monitor_and_never_in_the_call(
    demo_frames: list[Frame], fake_virtualcam, pipelines
) -> None:
    config = make_config(hud=True)
    source = ListSource([demo_frames[0].image, None])
    monitor = MonitorWindow()
    with virtual_sink(config) as sink:
        pipelines(config, source, sink, monitor=monitor).run()
    first, lost = fake_virtualcam.instances[0].frames
    np.testing.assert_array_equal(first, lost)  # the call sees the last output again, with no text on it
    shown, shown_lost = monitor.frames
    middle = (slice(100, 200), slice(None, 150))
    assert diff(shown[TOP_LEFT], first[TOP_LEFT]) > 0.5  # the HUD, in the monitor only
    assert diff(shown[BOTTOM_RIGHT], first[BOTTOM_RIGHT]) > 0.5  # and the camera with the tracked face
    np.testing.assert_array_equal(shown[middle], first[middle])  # over the very frame the call sees
    assert diff(shown[TOP_LEFT], shown_lost[TOP_LEFT]) > 0.5  # "camera lost" is added there
    np.testing.assert_array_equal(shown_lost[BOTTOM_RIGHT], lost[BOTTOM_RIGHT])  # and no camera while it is lost


def test_the_monitor_takes_keys_and_closing_it_ends_the_session(
    demo_frames: list[Frame], fake_virtualcam, pipelines
) -> None:
    config = make_config(hud=True)
    source = ListSource(f.image for f in demo_frames[:10])
    monitor = MonitorWindow(keys={2: "h"}, close_after=6)  # HUD off from the third frame; closed after six
    with virtual_sink(config) as sink:
        stats = pipelines(config, source, sink, hotkeys=Hotkeys(HotkeyConfig()), monitor=monitor).run()
    sent = fake_virtualcam.instances[0].frames
    assert stats.frames == 6 and len(sent) == 6 and len(monitor.frames) == 6
    assert diff(monitor.frames[0], sent[0]) > 0.0  # with the HUD
    for shown, called in zip(monitor.frames[2:], sent[2:], strict=True):
        np.testing.assert_array_equal(shown, called)  # HUD off: the monitor shows exactly what the call sees


class FlakyAnimator:
    """The real animator, except that call number `fail_at` raises (`failed_on`: that call's driver frame)."""

    def __init__(self, inner, fail_at: int) -> None:
        self.inner, self.fail_at, self.calls = inner, fail_at, 0
        self.name, self.status = inner.name, inner.status
        self.failed_on: int | None = None

    def prepare(self, avatar: Avatar) -> None:
        self.inner.prepare(avatar)

    def plan(self, motion, driver: Frame | None = None, driver_face=None):
        self.calls += 1
        if self.calls == self.fail_at:
            self.failed_on = None if driver is None else driver.index
            raise FloatingPointError("boom")
        return self.inner.plan(motion, driver, driver_face)

    def draw(self, plan):
        return self.inner.draw(plan)

    def __call__(self, motion, driver: Frame | None = None, driver_face=None):
        return self.draw(self.plan(motion, driver, driver_face))

    def close(self) -> None:
        self.inner.close()


def test_a_failing_frame_does_not_end_the_loop(demo_frames: list[Frame], fake_virtualcam, pipelines) -> None:
    config = make_config()
    source = ListSource(f.image for f in demo_frames[:10])
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink)
        animate = pipeline.stage("animate")
        animate.animator = FlakyAnimator(animate.animator, fail_at=4)
        stats = pipeline.run()
    sent = fake_virtualcam.instances[0].frames
    assert pipeline.errors == 1 and pipeline.runner.errors == Counter({"animate": 1})
    assert stats.frames == 10 and len(sent) == 10 and stats.repeats == 0
    np.testing.assert_array_equal(sent[3], sent[2])  # the failed frame repeats the last good output
    assert diff(sent[4], sent[3]) > 0.0  # and the next one is live again
    assert len(pipeline.times.samples["animate"]) == 9
    assert len(pipeline.times.samples["compose"]) == 10  # the image stages ran on the failed frame too
    hud = pipeline._hud_lines(packet_for(source.served[-1], pipeline.switcher.avatar))
    assert hud[1].endswith("errors: 1")


def test_frames_without_a_face_keep_producing_the_neutral_avatar(
    astronaut_face: Avatar, fake_virtualcam, pipelines
) -> None:
    config = make_config()
    source = ListSource([np.full((240, 320, 3), 90, np.uint8)] * 8)
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink)
        stats = pipeline.run()
    sent = fake_virtualcam.instances[0].frames
    assert stats.frames == 8 and len(sent) == 8 and pipeline.errors == 0
    assert pipeline.stage("track").status == "no face: holding, then easing to neutral"
    hud = pipeline._hud_lines(packet_for(source.served[-1], astronaut_face))
    assert "track: no face: holding, then easing to neutral" in hud
    for image in sent:
        assert diff(image, astronaut_face.image) < 1.0


# Hotkeys ------------------------------------------------------------------------------------------------------
def still_then_turned(demo_frames: list[Frame], astronaut_face: Avatar, still: int, turned: int) -> ListSource:
    """`still` frames of the face looking ahead, then `turned` frames of it turned away (the demo at 1.5 s)."""
    demo = DemoSource(astronaut_face, 320, 240, realtime=False)
    away = demo.render(1.5)  # yaw 18°
    demo.close()
    return ListSource([demo_frames[0].image] * still + [away] * turned)


def test_reset_reference_makes_the_current_pose_neutral(
    demo_frames: list[Frame], astronaut_face: Avatar, fake_virtualcam, pipelines
) -> None:
    config = make_config()
    source = still_then_turned(demo_frames, astronaut_face, still=3, turned=40)
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink)
        retargeter = pipeline.stage("retarget").retargeter
        pipeline.run(max_frames=33)  # the face has turned (and the filter has settled)
        turned = fake_virtualcam.instances[0].frames[-1]
        assert diff(turned, astronaut_face.image) > 5.0
        pipeline.trigger("reset_reference")
        assert "reference reset" in pipeline.message
        assert not retargeter.has_reference
        pipeline.run(max_frames=35)
    assert retargeter.has_reference
    after = fake_virtualcam.instances[0].frames[-1]
    assert diff(after, astronaut_face.image) < 0.3 * diff(turned, astronaut_face.image)


def test_passthrough_shows_the_camera(demo_frames: list[Frame], fake_virtualcam, pipelines) -> None:
    config = make_config()
    source = ListSource(f.image for f in demo_frames[:6])
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, KeyedSink(sink, {3: "t"}), hotkeys=Hotkeys(HotkeyConfig()))
        pipeline.run()
    sent = fake_virtualcam.instances[0].frames
    draw = pipeline.stage("draw")
    assert not any(diff(sent[k], square_crop(source.served[k].image, 256)) < 1.0 for k in range(3))
    for k in range(3, 6):
        assert draw.passthrough
        # The camera image as it is: centre square, not squashed.
        assert diff(sent[k], square_crop(source.served[k].image, 256)) < 1.0
    pipeline.trigger("passthrough")
    assert not draw.passthrough


def test_freeze_holds_the_image_and_mirror_flips_it(demo_frames: list[Frame], fake_virtualcam, pipelines) -> None:
    config = make_config()
    source = ListSource(f.image for f in demo_frames[:12])
    with virtual_sink(config) as sink:
        keyed = KeyedSink(sink, {3: "f", 6: "m", 9: "f"})
        pipeline = pipelines(config, source, keyed, hotkeys=Hotkeys(HotkeyConfig()))
        pipeline.run()
    sent = fake_virtualcam.instances[0].frames
    assert len(sent) == 12
    for k in (3, 4, 5):  # frozen: the last live image, while the driver keeps moving
        np.testing.assert_array_equal(sent[k], sent[2])
    for k in (6, 7, 8):  # frozen and mirrored
        np.testing.assert_array_equal(sent[k], sent[2][:, ::-1])
    assert diff(sent[9], sent[2][:, ::-1]) > 0.0  # unfrozen: live again, still mirrored
    assert pipeline.stage("mirror").on and not pipeline.stage("draw").frozen


def test_quit_stops_the_loop(demo_frames: list[Frame], fake_virtualcam, pipelines) -> None:
    config = make_config()
    source = ListSource(f.image for f in demo_frames[:30])
    with virtual_sink(config) as sink:
        keyed = KeyedSink(sink, {5: "q"})
        stats = pipelines(config, source, keyed, hotkeys=Hotkeys(HotkeyConfig())).run(max_frames=100)
    assert stats.frames == 5 and len(fake_virtualcam.instances[0].frames) == 5


def test_every_default_hotkey_runs_an_action_some_stage_offers(fake_virtualcam, pipelines, caplog) -> None:
    config = make_config(marks=True)
    with caplog.at_level(logging.WARNING, logger="avatarcam.pipeline"), virtual_sink(config) as sink:
        pipeline = pipelines(config, ListSource([]), sink, hotkeys=Hotkeys(HotkeyConfig()))
    assert set(pipeline.actions) == set(HotkeyConfig().bindings)
    assert not [r for r in caplog.records if "nothing offers" in r.getMessage()]


def test_a_hotkey_bound_to_an_action_nothing_offers_is_reported(fake_virtualcam, pipelines, caplog) -> None:
    config = make_config()
    bindings = {**HotkeyConfig().bindings, "explode": ("e",)}
    with caplog.at_level(logging.WARNING, logger="avatarcam.pipeline"), virtual_sink(config) as sink:
        pipeline = pipelines(config, ListSource([]), sink, hotkeys=Hotkeys(HotkeyConfig(bindings=bindings)))
        pipeline.trigger("explode")  # nothing happens, nothing breaks
    warned = [r.getMessage() for r in caplog.records if "nothing offers" in r.getMessage()]
    assert len(warned) == 1 and "'explode'" in warned[0]
    assert "explode" not in pipeline.actions and pipeline.message == ""


class Stamp(StageBase):
    """A stage added by a plug-in: marks the frame's top-left corner while its own `stamp` action is on."""

    name = "stamp"

    def __init__(self) -> None:
        self.on = False
        self.closed = False

    @property
    def actions(self):
        return {"stamp": self.toggle}

    def toggle(self) -> str:
        self.on = not self.on
        return f"stamp {'on' if self.on else 'off'}"

    def __call__(self, packet: Packet) -> None:
        if self.on:
            assert packet.image is not None
            image = packet.image.copy()
            image[:8, :8] = (255, 0, 255)
            packet.image = image

    def close(self) -> None:
        self.closed = True


def stamped(image: np.ndarray) -> bool:
    return bool((image[:8, :8] == (255, 0, 255)).all())


@pytest.mark.parametrize("pipelined", [False, True], ids=["sequential", "pipelined"])
def test_a_hotkey_runs_whichever_stage_offers_its_action(
    demo_frames: list[Frame], fake_virtualcam, pipelines, pipelined: bool
) -> None:
    """A new stage's action needs its binding and nothing else: no edit to the pipeline or to Hotkeys."""
    config = make_config(pipelined=pipelined)
    stamp = Stamp()
    hotkeys = Hotkeys(HotkeyConfig(bindings={**HotkeyConfig().bindings, "stamp": ("s", "<ctrl>+<alt>+s")}))
    source = ListSource((f.image for f in demo_frames[:20]), pace=1 / 30 if pipelined else 0.0)
    with virtual_sink(config) as sink:
        pipeline = pipelines(
            config, source, KeyedSink(sink, {3: "s"}), hotkeys=hotkeys, stages=[*build_stages(config), stamp]
        )
        assert "stamp" in pipeline.actions
        pipeline.run()
        assert stamp.on and pipeline.message == "stamp on"  # the action's notice goes to the HUD
        pipeline.trigger("stamp")
        assert not stamp.on and pipeline.message == "stamp off"
    marks = [stamped(image) for image in fake_virtualcam.instances[0].frames]
    if pipelined:  # frames already past the stage when the key came go out unmarked; all later ones are marked
        assert marks == sorted(marks) and marks[0] is False and marks.count(True) >= 3
    else:
        assert marks == [False] * 3 + [True] * 17
    pipelines.close(pipeline)
    assert stamp.closed  # the pipeline closes the stages it was given


@pytest.mark.parametrize("pipelined", [False, True], ids=["sequential", "pipelined"])
def test_two_stages_offering_one_action_are_refused(fake_virtualcam, pipelines, pipelined: bool) -> None:
    config = make_config(pipelined=pipelined)
    stages = [*build_stages(config), MirrorStage(config)]
    before = set(threading.enumerate())
    with virtual_sink(config) as sink, pytest.raises(ValueError, match="two stages offer the hotkey action 'mirror'"):
        pipelines(config, ListSource([]), sink, stages=stages)
    left = new_threads(before, seconds=1.0)
    if not left:
        for stage in stages:  # refused: the stages are still the caller's
            stage.close()
    assert left == []


def write_portrait(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def run_until(pipeline: LivePipeline, done: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "timed out"
        assert pipeline.step()


def test_next_avatar_switches_in_the_background(
    astronaut_face: Avatar, demo_frames: list[Frame], tmp_path: Path, fake_virtualcam, pipelines
) -> None:
    folder = tmp_path / "avatars"
    folder.mkdir()
    portrait = astronaut_face.image
    tinted = np.clip(portrait * np.array([0.6, 0.8, 1.4]), 0, 255).astype(np.uint8)  # a blue-tinted twin
    paths = [write_portrait(folder / "a_astronaut.png", portrait), write_portrait(folder / "b_blue.png", tinted)]
    config = make_config()
    source = ListSource([f.image for f in demo_frames] * 20)
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink, avatar_paths=paths)
        switcher = pipeline.switcher
        assert pipeline.step() and pipeline.step()
        before = fake_virtualcam.instances[0].frames[-1]
        pipeline.trigger("next_avatar")
        hud = pipeline._hud_lines(packet_for(source.served[-1], switcher.avatar))
        assert "loading b_blue.png…" in hud and switcher.status == "loading b_blue.png…"
        pipeline.trigger("next_avatar")  # one load at a time: ignored while loading
        run_until(pipeline, lambda: switcher.avatar.name == "b_blue")
        assert pipeline.message == "avatar: b_blue"
        pipeline.step()
        after = fake_virtualcam.instances[0].frames[-1]
        # The blue twin is on air.
        assert after[..., 2].mean() > before[..., 2].mean() + 20 and after[..., 0].mean() < before[..., 0].mean()
        hud = pipeline._hud_lines(packet_for(source.served[-1], switcher.avatar))
        assert hud[1].startswith("avatar: b_blue  errors: 0")
        pipeline.trigger("previous_avatar")
        run_until(pipeline, lambda: switcher.avatar.name == "a_astronaut")
    assert pipeline.errors == 0


def test_the_switching_notice_shows_once_in_the_hud(
    astronaut_face: Avatar, demo_frames: list[Frame], tmp_path: Path, fake_virtualcam, pipelines
) -> None:
    paths = [write_portrait(tmp_path / "b_blue.png", astronaut_face.image)]
    config = make_config()
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, ListSource([]), sink, avatar_paths=paths)
        pipeline.trigger("next_avatar")
        hud = pipeline._hud_lines(packet_for(demo_frames[0], astronaut_face))
    loading = [line for line in hud if line.startswith("loading b_blue.png")]
    assert loading == ["loading b_blue.png…"]


def test_a_bad_portrait_in_the_folder_is_skipped(
    astronaut_face: Avatar, demo_frames: list[Frame], tmp_path: Path, fake_virtualcam, pipelines
) -> None:
    paths = [write_portrait(tmp_path / "blank.png", np.full((200, 200, 3), 128, np.uint8))]
    config = make_config()
    source = ListSource([f.image for f in demo_frames] * 20)
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink, avatar_paths=paths)
        pipeline.trigger("next_avatar")
        run_until(pipeline, lambda: pipeline.message.startswith("avatar skipped"))
        assert "no face found in blank" in pipeline.message
        assert pipeline.switcher.avatar is astronaut_face
        frames = pipeline.stats.frames
        pipeline.run(max_frames=frames + 3)  # and the loop goes on
    assert pipeline.stats.frames == frames + 3


def test_next_avatar_without_a_folder_says_so(fake_virtualcam, pipelines) -> None:
    config = make_config()
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, ListSource([]), sink)
        pipeline.trigger("next_avatar")
    assert "no avatar folder" in pipeline.message


def test_the_hud_says_what_each_stage_is_doing(
    astronaut_face: Avatar, demo_frames: list[Frame], fake_virtualcam, pipelines
) -> None:
    config = make_config(hud=True)
    packet = packet_for(demo_frames[0], astronaut_face, notices=["a packet's notice"])
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, ListSource([]), sink)
        lines = pipeline._hud_lines(packet)
        assert lines[0].endswith(" fps  latency p50 0 ms  p95 0 ms")
        assert lines[1] == f"avatar: {astronaut_face.name}  errors: 0"
        assert lines[2:] == ["animate: warp", "a packet's notice"]  # stages with nothing to say say nothing
        pipeline.stage("animate").animator.status = "fine-tuning this portrait in the background"
        assert "animate: warp: fine-tuning this portrait in the background" in pipeline._hud_lines(packet)
        pipeline.trigger("passthrough")
        assert "draw: passthrough" in pipeline._hud_lines(packet)
        pipeline.trigger("passthrough")
        pipeline.trigger("freeze")
        assert "draw: frozen" in pipeline._hud_lines(packet)
        pipeline.trigger("reset_reference")
        lines = pipeline._hud_lines(packet)
        assert lines[-2:] == ["reference reset: hold a neutral face", "a packet's notice"]  # notice, then packet's


def test_hud_notices_expire(fake_virtualcam, pipelines, monkeypatch: pytest.MonkeyPatch) -> None:
    import avatarcam.pipeline as pipeline_module

    config = make_config()
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, ListSource([]), sink)
        pipeline.trigger("reset_reference")
        assert "reference reset" in pipeline.message
        later = pipeline_module.time.monotonic() + pipeline_module.MESSAGE_SECONDS + 0.1
        monkeypatch.setattr(pipeline_module.time, "monotonic", lambda: later)
        assert pipeline.message == ""


def test_closing_the_preview_window_ends_the_session(fake_virtualcam, pipelines, demo_frames) -> None:
    config = make_config()
    with virtual_sink(config) as inner:
        sink = KeyedSink(inner, {}, close_at=5)
        source = ListSource(f.image for f in demo_frames[:30])
        stats = pipelines(config, source, sink, hotkeys=Hotkeys(config.hotkeys)).run(max_frames=30)
    assert stats.frames == 4  # the loop stopped at the first step after the window closed


# The default mode: stages on their own threads ---------------------------------------------------------------
def new_threads(before: set[threading.Thread], seconds: float = 3.0) -> list[str]:
    """Names of the threads started since `before` that are still alive after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def test_pipelined_end_to_end_in_order_with_hotkeys_and_a_clean_stop(
    demo_frames: list[Frame], fake_virtualcam, pipelines
) -> None:
    """The default mode, live: a 30 fps camera into the virtual camera and a monitor window; frames arrive in
    capture order, freeze, mirror and quit work from the monitor's keys, and closing leaves no thread behind."""
    config = make_config(pipelined=True)
    # The product's default but the marks: pipelined: track | plan | draw and compose
    assert config.chain == ChainConfig(stages=UNMARKED)
    before = set(threading.enumerate())
    source = ListSource([f.image for f in demo_frames] * 12, pace=1 / 30)  # 16 s of a 30 fps camera
    monitor = MonitorWindow(keys={10: "f", 20: "m", 30: "q"})
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink, hotkeys=Hotkeys(HotkeyConfig()), monitor=monitor)
        assert isinstance(pipeline.runner, PipelinedChain)
        assert [[s.name for s in chain.stages] for chain in pipeline.runner.chains] == [
            ["track"],
            ["retarget", "voice", "animate"],
            ["draw", "edit", "compose", "mirror", "audio"],
        ]
        stats = pipeline.run(max_seconds=60)
        running = {t.name for t in threading.enumerate()}
        assert {"stages-0", "stages-1", "stages-2", "feeder"} <= running
        pipelines.close(pipeline)
    assert new_threads(before) == []  # the feeder and the stage threads are gone
    sent = fake_virtualcam.instances[0].frames
    assert monitor.polls == 31 and not source.finished  # quit (key 30) ended it, not the source
    assert 10 <= stats.frames and stats.frames + stats.repeats == len(sent) == len(monitor.frames)
    assert all(f.shape == (256, 256, 3) for f in sent)
    for shown, called in zip(monitor.frames, sent, strict=True):
        np.testing.assert_array_equal(shown, called)  # HUD off: the monitor shows what the call sees
    # In capture order: each frame sent is newer than the one before (a frame may be dropped, never reordered).
    indices = [source.index_of(stamp) for stamp in monitor.stamps]
    live = [k for k in indices if k is not None]
    assert len(live) == stats.frames and all(b > a for a, b in zip(live, live[1:], strict=False))
    assert len(indices) - len(live) == stats.repeats  # anything else was a stand-in, counted as a repeat
    # Live, then frozen (a packet or two already past the animate stage may still move), then mirrored.
    before_freeze = monitor.between_polls(-1, 10)
    assert sum(diff(a, b) > 0.05 for a, b in zip(before_freeze, before_freeze[1:], strict=False)) >= 3
    frozen = monitor.between_polls(10, 20)[3:]
    mirrored = monitor.between_polls(20)[3:]
    assert len(frozen) >= 3 and len(mirrored) >= 3
    for image in frozen:
        np.testing.assert_array_equal(image, frozen[0])
    for image in mirrored:
        np.testing.assert_array_equal(image, frozen[0][:, ::-1])
    assert pipeline.stage("draw").frozen and pipeline.stage("mirror").on


class Glitch(StageBase):
    """An image stage that fails on its call number `fail_at`."""

    name = "glitch"

    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.calls = fail_at, 0

    def __call__(self, packet: Packet) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise ValueError("glitch")


def test_pipelined_bad_frames_never_end_the_loop_and_are_counted_per_stage(
    demo_frames: list[Frame], fake_virtualcam, pipelines
) -> None:
    config = make_config(pipelined=True)
    glitch = Glitch(fail_at=3)
    source = ListSource((f.image for f in demo_frames[:30]), pace=1 / 20)
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink, stages=[*build_stages(config), glitch])
        animate = pipeline.stage("animate")
        flaky = animate.animator = FlakyAnimator(animate.animator, fail_at=4)
        stats = pipeline.run(max_seconds=60)
    assert source.finished  # the loop ran to the source's end
    assert pipeline.runner.errors == Counter({"animate": 1, "glitch": 1}) and pipeline.errors == 2
    assert flaky.calls > 4 and glitch.calls > 3  # frames went on through both stages after they failed
    sent = fake_virtualcam.instances[0].frames
    assert stats.frames + stats.repeats == len(sent) and stats.frames > 4
    assert all(f.shape == (256, 256, 3) for f in sent)
    assert flaky.failed_on is not None and flaky.failed_on in [f.index for f in source.served]


class UnpluggedCamera:
    """A 30 fps camera, unplugged from `lost_at` to `back_at` seconds after its first read, ended at `end_at`.
    Unplugged, read() returns None at once, as CameraSource does while it is disconnected."""

    name = "camera"
    fps = 30.0

    def __init__(self, images: list[np.ndarray], lost_at: float, back_at: float, end_at: float) -> None:
        self.images, self.lost_at, self.back_at, self.end_at = images, lost_at, back_at, end_at
        self.start: float | None = None
        self.served: list[Frame] = []
        self.reads_while_lost = 0
        self.finished = False

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self.start is None:
            self.start = time.monotonic()
        t = time.monotonic() - self.start
        if t >= self.end_at:
            self.finished = True
            return None
        if self.lost_at <= t < self.back_at:
            self.reads_while_lost += 1
            return None
        time.sleep(1 / self.fps)
        frame = Frame(self.images[len(self.served) % len(self.images)], now_ns(), len(self.served))
        self.served.append(frame)
        return frame

    def close(self) -> None:
        pass


def test_pipelined_camera_lost_sends_composed_stand_ins_counted_as_repeats(
    demo_frames: list[Frame], fake_virtualcam, pipelines
) -> None:
    config = make_config(320, 180, hud=True, pipelined=True, mirror=True)
    source = UnpluggedCamera([f.image for f in demo_frames], lost_at=0.8, back_at=2.0, end_at=2.8)
    monitor = MonitorWindow()
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink, monitor=monitor)
        stats = pipeline.run(max_seconds=60)
    sent = fake_virtualcam.instances[0].frames
    assert source.finished and stats.repeats >= 1  # about one stand-in per half second without a frame
    assert stats.frames + stats.repeats == len(sent) == len(monitor.frames)
    assert all(f.shape == (180, 320, 3) for f in sent)  # stand-ins were composed to the output's size too
    served = {f.timestamp_ns for f in source.served}
    lost = [k for k, stamp in enumerate(monitor.stamps) if stamp not in served]
    assert len(lost) == stats.repeats and 0 < lost[0]
    last_good = lost[0] - 1
    while_lost = [k for n, k in enumerate(lost) if k == lost[0] + n]  # the stand-ins sent one after another
    for k in while_lost:  # the last good output again (composed and mirrored like it), "camera lost" in the HUD
        np.testing.assert_array_equal(sent[k], sent[last_good])
        assert diff(monitor.frames[k][TOP_LEFT], monitor.frames[last_good][TOP_LEFT]) > 0.5
        np.testing.assert_array_equal(monitor.frames[k][BOTTOM_RIGHT], sent[k][BOTTOM_RIGHT])  # no camera inset
    back = [k for k in range(while_lost[-1] + 1, len(sent)) if k not in lost]
    assert len(back) >= 3 and diff(sent[back[-1]], sent[last_good]) > 0.0  # live again once it is back
    assert pipeline.errors == 0


def test_pipelined_an_unplugged_camera_is_not_polled_in_a_busy_loop(
    demo_frames: list[Frame], fake_virtualcam, pipelines
) -> None:
    """CameraSource.read returns None at once while the camera is unplugged: the loop must wait between tries
    (a camera's frame interval, say) rather than burn a CPU core until it is back."""
    config = make_config(pipelined=True)
    source = UnpluggedCamera([f.image for f in demo_frames], lost_at=0.3, back_at=1.3, end_at=1.6)
    with virtual_sink(config) as sink:
        stats = pipelines(config, source, sink).run(max_seconds=60)
    assert source.finished and stats.frames >= 1
    per_second = source.reads_while_lost / (source.back_at - source.lost_at)
    assert per_second <= 200


class SlowAnimator(FlakyAnimator):
    """The real animator, taking `seconds` longer per frame (a heavy model on a slow machine)."""

    def __init__(self, inner, seconds: float) -> None:
        super().__init__(inner, fail_at=0)
        self.seconds = seconds

    def __call__(self, motion, driver: Frame | None = None, driver_face=None):
        time.sleep(self.seconds)
        return super().__call__(motion, driver, driver_face)


def test_pipelined_a_slow_chain_is_not_a_lost_camera(demo_frames: list[Frame], fake_virtualcam, pipelines) -> None:
    """A chain slower than the loop's half-second wait (one stage thread here) must not make up camera-lost
    stand-ins while the camera delivers, nor lose the source's end."""
    config = make_config(pipelined=True, split_after=())
    source = ListSource((f.image for f in demo_frames[:4]), pace=1 / 30)
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, source, sink)
        animate = pipeline.stage("animate")
        animate.animator = SlowAnimator(animate.animator, 0.7)
        start = time.monotonic()
        stats = pipeline.run(max_seconds=8)
        took = time.monotonic() - start
    assert source.finished
    assert stats.repeats == 0 and stats.frames >= 1 and took < 8


def test_camera_lost_stand_ins_are_marked(astronaut_face: Avatar, fake_virtualcam, pipelines) -> None:
    """A stand-in packet says it is one (failed == CAMERA_LOST): the sink stage leaves the camera inset out."""
    seen: list[str] = []

    class Spy(StageBase):
        name = "spy"

        def __call__(self, packet: Packet) -> None:
            seen.append(packet.failed)

    config = make_config()
    with virtual_sink(config) as sink:
        pipeline = pipelines(config, ListSource([None]), sink, stages=[*build_stages(config), Spy()])
        stats = pipeline.run()
    assert seen == [CAMERA_LOST] and stats.repeats == 1 and stats.frames == 0
    assert isinstance(pipeline.runner, Chain)
