"""End to end: driver frames → FrameStages → LivePipeline → a (fake) virtual camera, with hotkeys and failures."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FAKE_BACKEND, TALKING_FRAMES

from avatarcam.avatar import square_crop
from avatarcam.config import Config, HotkeyConfig
from avatarcam.hotkeys import Hotkeys
from avatarcam.io.demo import DemoSource
from avatarcam.io.sinks import RecorderSink, VirtualCameraSink
from avatarcam.io.sources import VideoFileSource, read_video
from avatarcam.pipeline import LivePipeline
from avatarcam.stages import FrameStages
from avatarcam.types import Avatar, Frame, now_ns


def make_config(width: int = 256, height: int = 256, hud: bool = False) -> Config:
    config = Config()
    config.animator.size = 256
    config.output.width, config.output.height, config.output.hud = width, height, hud
    return config


class ListSource:
    """Camera-like: serves the given images stamped with the capture time; None = the camera delivered nothing."""

    name = "list"
    fps = 30.0

    def __init__(self, images: Iterable[np.ndarray | None]) -> None:
        self.images = list(images)
        self.reads = 0
        self.finished = False
        self.served: list[Frame] = []

    def read(self, timeout: float = 1.0) -> Frame | None:
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


@pytest.fixture
def stages_for(astronaut_face: Avatar):
    made: list[FrameStages] = []

    def make(config: Config) -> FrameStages:
        made.append(FrameStages(config, astronaut_face))
        return made[-1]

    yield make
    for stages in made:
        stages.close()


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_demo_motion_through_the_pipeline_into_the_virtual_camera(
    astronaut_face: Avatar, fake_virtualcam, stages_for
) -> None:
    config = make_config(320, 180, hud=True)
    source = DemoSource(astronaut_face, 320, 240, realtime=False)
    stages = stages_for(config)
    with virtual_sink(config) as sink:
        stats = LivePipeline(config, source, sink, stages).run(max_frames=30)
    source.close()
    camera = fake_virtualcam.instances[0]
    assert camera.closed
    assert stats.frames == 30 and len(camera.frames) == 30 and stats.repeats == 0
    assert all(f.shape == (180, 320, 3) and f.dtype == np.uint8 for f in camera.frames)
    assert stages.errors == 0 and stages.last_face is not None
    # The face moves: the avatar square (centre of the frame, below the HUD) changes over time.
    centre = [f[70:, 70:250] for f in camera.frames]
    assert diff(centre[0], centre[-1]) > 2.0
    assert sum(diff(a, b) > 0.05 for a, b in zip(centre, centre[1:], strict=False)) >= 25  # frame after frame
    assert len(stats.latencies_ms) == 30 and min(stats.latencies_ms) >= 0
    summary = stages.times.summary()
    assert set(summary) == {"track", "retarget", "animate"} and all(v[0] > 0 for v in summary.values())


def test_latency_and_fps_of_a_live_source(demo_frames: list[Frame], fake_virtualcam, stages_for) -> None:
    config = make_config()
    source = ListSource(f.image for f in demo_frames[:20])
    stages = stages_for(config)
    with virtual_sink(config) as sink:
        pipeline = LivePipeline(config, source, sink, stages)
        stats = pipeline.run()
    assert stats.frames == 20 and len(fake_virtualcam.instances[0].frames) == 20
    assert len(stats.latencies_ms) == 20
    assert 0 < stats.latency(50) <= stats.latency(95) < 2000  # capture → send, milliseconds
    assert stats.fps > 1.0


def test_a_video_file_drives_the_pipeline(talking_video: Path, fake_virtualcam, stages_for) -> None:
    config = make_config(320, 180)
    source = VideoFileSource(talking_video, loop=False, realtime=False)
    stages = stages_for(config)
    with virtual_sink(config) as sink:
        stats = LivePipeline(config, source, sink, stages).run(max_seconds=60)
    source.close()
    frames = fake_virtualcam.instances[0].frames
    assert source.finished
    assert stats.frames == TALKING_FRAMES == len(frames)  # ends with the file
    assert frames[0].shape == (180, 320, 3)
    assert stages.errors == 0
    assert diff(frames[0][:, 70:250], frames[-1][:, 70:250]) > 2.0


class SlowCamera(ListSource):
    """A camera that captures 14 frames a second (as its frames' capture times say), read without waiting."""

    def read(self, timeout: float = 1.0) -> Frame | None:
        frame = super().read(timeout)
        if frame is None:
            return None
        return Frame(frame.image, self.served[0].timestamp_ns + round(frame.index * 1e9 / 14), frame.index)


def test_a_recording_plays_at_the_speed_the_camera_captured(
    demo_frames: list[Frame], tmp_path: Path, stages_for
) -> None:
    """A camera delivering 14 fps into a 30 fps recording: the file lasts as long as the capture did."""
    config = make_config()
    source = SlowCamera(f.image for f in demo_frames[:28])
    stages = stages_for(config)
    path = tmp_path / "live.mp4"
    with RecorderSink(path, config.output.fps, 256, 256) as sink:
        LivePipeline(config, source, sink, stages).run()
    frames, fps = read_video(path)
    assert fps == pytest.approx(30)
    assert abs(len(frames) - 2 * 30) <= 1  # 28 captures at 14 fps last 2 s: 60 frames at 30 fps, not 28


def test_camera_lost_resends_the_last_frame_and_keeps_going(
    demo_frames: list[Frame], fake_virtualcam, stages_for
) -> None:
    config = make_config()
    images = [f.image for f in demo_frames[:5]] + [None, None, None] + [f.image for f in demo_frames[5:10]]
    source = ListSource(images)
    stages = stages_for(config)
    with virtual_sink(config) as sink:
        stats = LivePipeline(config, source, sink, stages).run()
    sent = fake_virtualcam.instances[0].frames
    assert stats.frames == 10 and stats.repeats == 3
    assert len(sent) == 13  # the virtual camera never stops receiving frames
    for k in (5, 6, 7):  # while lost: the last good output again
        np.testing.assert_array_equal(sent[k], sent[4])
    assert diff(sent[8], sent[4]) > 0.0  # then live again


class MonitorWindow:
    """A preview window only the user sees, beside the virtual camera: keeps what it shows, 'presses' `keys`
    before the given poll, and is closed by the user after `close_after` frames."""

    name, private = "monitor", True

    def __init__(self, keys: dict[int, str] | None = None, close_after: int | None = None) -> None:
        self.frames: list[np.ndarray] = []
        self.keys, self.polls, self.close_after = keys or {}, 0, close_after

    @property
    def closed(self) -> bool:
        return self.close_after is not None and len(self.frames) >= self.close_after

    def send(self, image: np.ndarray, timestamp_ns: int | None = None) -> None:
        self.frames.append(image.copy())

    def poll_key(self) -> str | None:
        self.polls += 1
        return self.keys.get(self.polls - 1)

    def close(self) -> None:
        pass


def test_the_hud_shows_in_the_monitor_and_never_in_the_call(
    demo_frames: list[Frame], fake_virtualcam, stages_for
) -> None:
    config = make_config(hud=True)
    source = ListSource([demo_frames[0].image, None])
    monitor = MonitorWindow()
    with virtual_sink(config) as sink:
        LivePipeline(config, source, sink, stages_for(config), monitor=monitor).run()
    first, lost = fake_virtualcam.instances[0].frames
    np.testing.assert_array_equal(first, lost)  # the call sees the last output again, with no text on it
    shown, shown_lost = monitor.frames
    top_left, bottom_right = (slice(0, 60), slice(0, 200)), (slice(-40, None), slice(-40, None))
    middle = (slice(100, 200), slice(None, 150))
    assert diff(shown[top_left], first[top_left]) > 0.5  # the HUD, in the monitor only
    assert diff(shown[bottom_right], first[bottom_right]) > 0.5  # and the camera with the tracked face
    np.testing.assert_array_equal(shown[middle], first[middle])  # over the very frame the call sees
    assert diff(shown[top_left], shown_lost[top_left]) > 0.5  # "camera lost" is added there


def test_the_monitor_takes_keys_and_closing_it_ends_the_session(
    demo_frames: list[Frame], fake_virtualcam, stages_for
) -> None:
    config = make_config(hud=True)
    source = ListSource(f.image for f in demo_frames[:10])
    monitor = MonitorWindow(keys={2: "h"}, close_after=6)  # HUD off from the third frame; closed after six
    with virtual_sink(config) as sink:
        stats = LivePipeline(
            config, source, sink, stages_for(config), hotkeys=Hotkeys(HotkeyConfig()), monitor=monitor
        ).run()
    sent = fake_virtualcam.instances[0].frames
    assert stats.frames == 6 and len(sent) == 6 and len(monitor.frames) == 6
    assert diff(monitor.frames[0], sent[0]) > 0.0  # with the HUD
    for shown, called in zip(monitor.frames[2:], sent[2:], strict=True):
        np.testing.assert_array_equal(shown, called)  # HUD off: the monitor shows exactly what the call sees


class FlakyAnimator:
    """The real animator, except that call number `fail_at` raises."""

    def __init__(self, inner, fail_at: int) -> None:
        self.inner, self.fail_at, self.calls = inner, fail_at, 0
        self.name, self.status = inner.name, inner.status

    def prepare(self, avatar: Avatar) -> None:
        self.inner.prepare(avatar)

    def __call__(self, motion):
        self.calls += 1
        if self.calls == self.fail_at:
            raise FloatingPointError("boom")
        return self.inner(motion)

    def close(self) -> None:
        self.inner.close()


def test_a_failing_frame_does_not_end_the_loop(demo_frames: list[Frame], fake_virtualcam, stages_for) -> None:
    config = make_config()
    stages = stages_for(config)
    stages.animator = FlakyAnimator(stages.animator, fail_at=4)
    source = ListSource(f.image for f in demo_frames[:10])
    with virtual_sink(config) as sink:
        stats = LivePipeline(config, source, sink, stages).run()
    sent = fake_virtualcam.instances[0].frames
    assert stages.errors == 1
    assert stats.frames == 10 and len(sent) == 10
    np.testing.assert_array_equal(sent[3], sent[2])  # the failed frame repeats the last good output
    assert diff(sent[4], sent[3]) > 0.0  # and the next one is live again
    assert len(stages.times.samples["animate"]) == 9


def test_frames_without_a_face_keep_producing_the_neutral_avatar(
    astronaut_face: Avatar, fake_virtualcam, stages_for
) -> None:
    config = make_config()
    source = ListSource([np.full((240, 320, 3), 90, np.uint8)] * 8)
    stages = stages_for(config)
    with virtual_sink(config) as sink:
        stats = LivePipeline(config, source, sink, stages).run()
    sent = fake_virtualcam.instances[0].frames
    assert stats.frames == 8 and len(sent) == 8 and stages.errors == 0
    assert stages.last_face is None
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
    demo_frames: list[Frame], astronaut_face: Avatar, fake_virtualcam, stages_for
) -> None:
    config = make_config()
    stages = stages_for(config)
    source = still_then_turned(demo_frames, astronaut_face, still=3, turned=40)
    with virtual_sink(config) as sink:
        pipeline = LivePipeline(config, source, sink, stages)
        pipeline.run(max_frames=33)  # the face has turned (and the filter has settled)
        turned = fake_virtualcam.instances[0].frames[-1]
        assert diff(turned, astronaut_face.image) > 5.0
        pipeline.handle("reset_reference")
        assert "reference reset" in pipeline.message
        assert not stages.retargeter.has_reference
        pipeline.run(max_frames=35)
    assert stages.retargeter.has_reference
    after = fake_virtualcam.instances[0].frames[-1]
    assert diff(after, astronaut_face.image) < 0.3 * diff(turned, astronaut_face.image)


def test_passthrough_shows_the_camera(demo_frames: list[Frame], fake_virtualcam, stages_for) -> None:
    config = make_config()
    stages = stages_for(config)
    source = ListSource(f.image for f in demo_frames[:6])
    with virtual_sink(config) as sink:
        pipeline = LivePipeline(config, source, KeyedSink(sink, {3: "t"}), stages, hotkeys=Hotkeys(HotkeyConfig()))
        pipeline.run()
    sent = fake_virtualcam.instances[0].frames
    assert not any(diff(sent[k], square_crop(source.served[k].image, 256)) < 1.0 for k in range(3))
    for k in range(3, 6):
        assert pipeline.passthrough
        # The camera image as it is: centre square, not squashed.
        assert diff(sent[k], square_crop(source.served[k].image, 256)) < 1.0
    pipeline.handle("passthrough")
    assert not pipeline.passthrough


def test_freeze_holds_the_image_and_mirror_flips_it(demo_frames: list[Frame], fake_virtualcam, stages_for) -> None:
    config = make_config()
    stages = stages_for(config)
    source = ListSource(f.image for f in demo_frames[:12])
    with virtual_sink(config) as sink:
        keyed = KeyedSink(sink, {3: "f", 6: "m", 9: "f"})
        pipeline = LivePipeline(config, source, keyed, stages, hotkeys=Hotkeys(HotkeyConfig()))
        pipeline.run()
    sent = fake_virtualcam.instances[0].frames
    assert len(sent) == 12
    for k in (3, 4, 5):  # frozen: the last live image, while the driver keeps moving
        np.testing.assert_array_equal(sent[k], sent[2])
    for k in (6, 7, 8):  # frozen and mirrored
        np.testing.assert_array_equal(sent[k], sent[2][:, ::-1])
    assert diff(sent[9], sent[2][:, ::-1]) > 0.0  # unfrozen: live again, still mirrored
    assert pipeline.mirror and not pipeline.frozen


def test_quit_stops_the_loop(demo_frames: list[Frame], fake_virtualcam, stages_for) -> None:
    config = make_config()
    stages = stages_for(config)
    source = ListSource(f.image for f in demo_frames[:30])
    with virtual_sink(config) as sink:
        keyed = KeyedSink(sink, {5: "q"})
        stats = LivePipeline(config, source, keyed, stages, hotkeys=Hotkeys(HotkeyConfig())).run(max_frames=100)
    assert stats.frames == 5 and len(fake_virtualcam.instances[0].frames) == 5


def write_portrait(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def run_until(pipeline: LivePipeline, done, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "timed out"
        assert pipeline.step()


def test_next_avatar_switches_in_the_background(
    astronaut_face: Avatar, demo_frames: list[Frame], tmp_path: Path, fake_virtualcam, stages_for
) -> None:
    folder = tmp_path / "avatars"
    folder.mkdir()
    portrait = astronaut_face.image
    tinted = np.clip(portrait * np.array([0.6, 0.8, 1.4]), 0, 255).astype(np.uint8)  # a blue-tinted twin
    paths = [write_portrait(folder / "a_astronaut.png", portrait), write_portrait(folder / "b_blue.png", tinted)]
    config = make_config()
    stages = stages_for(config)
    source = ListSource([f.image for f in demo_frames] * 20)
    with virtual_sink(config) as sink:
        pipeline = LivePipeline(config, source, sink, stages, avatar_paths=paths)
        assert pipeline.step() and pipeline.step()
        before = fake_virtualcam.instances[0].frames[-1]
        pipeline.handle("next_avatar")
        assert pipeline.message.startswith("loading b_blue.png")
        pipeline.handle("next_avatar")  # one load at a time: ignored while loading
        run_until(pipeline, lambda: stages.avatar.name == "b_blue")
        assert pipeline.message == "avatar: b_blue"
        pipeline.step()
        after = fake_virtualcam.instances[0].frames[-1]
        # The blue twin is on air.
        assert after[..., 2].mean() > before[..., 2].mean() + 20 and after[..., 0].mean() < before[..., 0].mean()
        pipeline.handle("previous_avatar")
        run_until(pipeline, lambda: stages.avatar.name == "a_astronaut")
    assert stages.errors == 0


def test_a_bad_portrait_in_the_folder_is_skipped(
    astronaut_face: Avatar, demo_frames: list[Frame], tmp_path: Path, fake_virtualcam, stages_for
) -> None:
    paths = [write_portrait(tmp_path / "blank.png", np.full((200, 200, 3), 128, np.uint8))]
    config = make_config()
    stages = stages_for(config)
    source = ListSource([f.image for f in demo_frames] * 20)
    with virtual_sink(config) as sink:
        pipeline = LivePipeline(config, source, sink, stages, avatar_paths=paths)
        pipeline.handle("next_avatar")
        run_until(pipeline, lambda: pipeline.message.startswith("avatar skipped"))
        assert "no face found in blank" in pipeline.message
        assert stages.avatar is astronaut_face
        frames = pipeline.stats.frames
        pipeline.run(max_frames=frames + 3)  # and the loop goes on
    assert pipeline.stats.frames == frames + 3


def test_next_avatar_without_a_folder_says_so(demo_frames: list[Frame], fake_virtualcam, stages_for) -> None:
    config = make_config()
    with virtual_sink(config) as sink:
        pipeline = LivePipeline(config, ListSource([]), sink, stages_for(config))
        pipeline.handle("next_avatar")
    assert "no avatar folder" in pipeline.message


def test_the_hud_says_what_the_animator_is_doing(fake_virtualcam, stages_for) -> None:
    config = make_config(hud=True)
    stages = stages_for(config)
    with virtual_sink(config) as sink:
        pipeline = LivePipeline(config, ListSource([]), sink, stages)
        assert "[warp]" in pipeline._hud_lines("")[1]
        stages.animator.status = "fine-tuning this portrait in the background"
        assert "[warp: fine-tuning this portrait in the background]" in pipeline._hud_lines("")[1]
        pipeline.handle("passthrough")
        assert "[passthrough]" in pipeline._hud_lines("")[1]


def test_hud_notices_expire(fake_virtualcam, stages_for, monkeypatch: pytest.MonkeyPatch) -> None:
    import avatarcam.pipeline as pipeline_module

    config = make_config()
    with virtual_sink(config) as sink:
        pipeline = LivePipeline(config, ListSource([]), sink, stages_for(config))
        pipeline.handle("reset_reference")
        assert "reference reset" in pipeline.message
        later = pipeline_module.time.monotonic() + pipeline_module.MESSAGE_SECONDS + 0.1
        monkeypatch.setattr(pipeline_module.time, "monotonic", lambda: later)
        assert pipeline.message == ""


def test_closing_the_preview_window_ends_the_session(fake_virtualcam, stages_for, demo_frames) -> None:
    config = make_config()
    with virtual_sink(config) as inner:
        sink = KeyedSink(inner, {}, close_at=5)
        source = ListSource(f.image for f in demo_frames[:30])
        pipeline = LivePipeline(config, source, sink, stages_for(config), hotkeys=Hotkeys(config.hotkeys))
        stats = pipeline.run(max_frames=30)
    assert stats.frames == 4  # the loop stopped at the first step after the window closed
