import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvirtualcam
import pyvirtualcam.camera
from conftest import FAKE_BACKEND

from avatarcam.compositor import draw_camera_inset, draw_hud, letterbox, make_background
from avatarcam.config import Config, OutputConfig, load_config
from avatarcam.devices import open_monitor, open_sink
from avatarcam.io import sinks as sinks_module
from avatarcam.io.sinks import NullSink, PreviewSink, RecorderSink, SinkError, VirtualCameraSink, virtual_camera_hint
from avatarcam.io.sources import read_video
from avatarcam.registry import SINKS


def empty_toml(folder: Path) -> Path:
    """A config file that sets nothing (so the user's own config file is not read)."""
    path = folder / "empty.toml"
    path.write_text("")
    return path


def output(**settings) -> Config:
    return Config(output=OutputConfig(**settings))


class NoDeviceBackend:
    def __init__(self, **kw) -> None:
        raise RuntimeError("No v4l2 loopback device found")


@pytest.fixture
def no_display(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def gradient(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs * 255 // max(1, w - 1), ys * 255 // max(1, h - 1), (xs + ys) % 256], -1).astype(np.uint8)


def test_virtual_camera_sends_rgb_frames_through_pyvirtualcam(fake_virtualcam):
    image = gradient(48, 64)
    with VirtualCameraSink(64, 48, 30, backend=FAKE_BACKEND) as sink:
        assert sink.device == "/dev/video-fake" and "/dev/video-fake" in sink.name
        sink.send(image)
        sink.send(image[::-1].copy())
        with pytest.raises(ValueError, match=r"expects 48×64×3 uint8"):
            sink.send(np.zeros((48, 64, 4), np.uint8))
        with pytest.raises(ValueError, match="float32"):
            sink.send(np.zeros((48, 64, 3), np.float32))
    backend = fake_virtualcam.instances[0]
    assert backend.closed
    assert backend.fourcc == pyvirtualcam.camera.encode_fourcc(pyvirtualcam.PixelFormat.RGB.value)
    assert len(backend.frames) == 2
    np.testing.assert_array_equal(backend.frames[0].reshape(48, 64, 3), image)
    np.testing.assert_array_equal(backend.frames[1].reshape(48, 64, 3), image[::-1])


def test_virtual_camera_failure_says_how_to_create_one(monkeypatch):
    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {"v4l2loopback": NoDeviceBackend})
    monkeypatch.setattr("platform.system", lambda: "Linux")
    with pytest.raises(SinkError) as info:
        VirtualCameraSink(64, 48, 30)
    assert "No v4l2 loopback device found" in info.value.reason
    assert "sudo modprobe v4l2loopback exclusive_caps=1 card_label=avatarcam" in str(info.value)
    assert "video` group" in str(info.value)


def test_virtual_camera_hint_per_os():
    assert "OBS Studio 30+" in virtual_camera_hint("Windows")
    assert "OBS Studio 30+" in virtual_camera_hint("Darwin")
    assert "modprobe" in virtual_camera_hint("Linux") and "OBS" not in virtual_camera_hint("Linux")
    other = virtual_camera_hint("Plan9")
    assert "modprobe" in other and "OBS" in other


def test_preview_without_display_raises(no_display):
    with pytest.raises(SinkError, match="no display"):
        PreviewSink("t", 64, 48)


def test_open_sink_auto_falls_back_to_file_with_fix_hint(monkeypatch, no_display, tmp_path):
    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {"v4l2loopback": NoDeviceBackend})
    monkeypatch.setattr("platform.system", lambda: "Linux")
    path = tmp_path / "out" / "auto.mp4"
    config = output(sink="auto", width=64, height=48, fps=10, path=str(path))
    sink, message = open_sink(config)
    with sink:
        assert isinstance(sink, RecorderSink)
        sink.send(gradient(48, 64))
    assert "auto.mp4" in message and "no display" in message
    assert "sudo modprobe v4l2loopback exclusive_caps=1 card_label=avatarcam" in message
    frames, _ = read_video(path)
    assert len(frames) == 1


def test_open_sink_auto_prefers_the_virtual_camera(monkeypatch, fake_virtualcam):
    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {FAKE_BACKEND: fake_virtualcam})
    sink, message = open_sink(output(sink="auto", width=64, height=48, fps=10))
    with sink:
        assert isinstance(sink, VirtualCameraSink)
        sink.send(gradient(48, 64))
    assert message == "output: virtual camera /dev/video-fake"
    camera = fake_virtualcam.instances[0]
    assert (camera.width, camera.height, camera.fps) == (64, 48, 10) and len(camera.frames) == 1


def test_open_sink_auto_falls_back_to_a_preview_window_with_fix_hint(monkeypatch):
    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {"v4l2loopback": NoDeviceBackend})
    monkeypatch.setattr("platform.system", lambda: "Linux")
    made = []
    monkeypatch.setattr(sinks_module, "_display_problem", lambda: None)  # a display, as far as it can tell
    monkeypatch.setattr(sinks_module.cv2, "namedWindow", lambda title, flags: made.append(title))
    monkeypatch.setattr(sinks_module.cv2, "resizeWindow", lambda title, w, h: made.append((w, h)))
    sink, message = open_sink(output(sink="auto", width=64, height=48))
    assert isinstance(sink, PreviewSink) and made == ["avatarcam", (64, 48)]
    first_line = message.splitlines()[0]
    assert first_line.startswith("cannot open a virtual camera: ") and "No v4l2 loopback device found" in first_line
    assert first_line.endswith(": showing a preview window instead.")
    assert "sudo modprobe v4l2loopback exclusive_caps=1 card_label=avatarcam" in message


def test_only_preview_windows_are_private():
    assert PreviewSink.private and not VirtualCameraSink.private and not RecorderSink.private
    assert not NullSink().private


def test_a_monitor_opens_only_beside_what_the_call_sees(no_display):
    sink = NullSink()
    monitor, message = open_monitor(Config(), sink)
    assert monitor is None and "no display" in message and "HUD is off" in message
    assert open_monitor(output(monitor=False), sink) == (None, "")

    class Window:
        private = True

    assert open_monitor(Config(), Window()) == (None, "")  # a preview window carries the HUD itself


def test_open_sink_explicit_kinds(tmp_path, no_display):
    sink, message = open_sink(output(sink="null"))
    assert isinstance(sink, NullSink) and message == "output: none (frames discarded)"
    path = tmp_path / "explicit.mp4"
    sink, message = open_sink(output(sink="file", path=str(path), width=64, height=48, fps=12))
    with sink:
        assert isinstance(sink, RecorderSink) and (sink.width, sink.height, sink.fps) == (64, 48, 12)
    assert message == f"output: recording to {path}"
    with pytest.raises(SinkError, match="no display"):  # an explicit kind never falls back
        open_sink(output(sink="preview"))
    with pytest.raises(ValueError, match=r"unknown sink 'screen' \(valid: virtual, preview, file, null\)"):
        open_sink(output(sink="screen"))
    with pytest.raises(ValueError, match=r"unknown output.sink 'screen' \(valid: auto, virtual, preview, file, null\)"):
        load_config(empty_toml(tmp_path), {"output.sink": "screen"})
    assert set(SINKS.names()) == {"virtual", "preview", "file", "null"}


def test_recorder_writes_a_readable_mp4(tmp_path):
    path = tmp_path / "nested" / "dir" / "rec.mp4"
    with RecorderSink(path, 15, 64, 48) as sink:
        for i in range(12):
            image = np.zeros((48, 64, 3), np.uint8)
            image[..., 0] = 40 + 10 * i  # red rising
            sink.send(image)
        assert sink.frames_written == 12
        with pytest.raises(ValueError, match="expects 48×64×3"):
            sink.send(np.zeros((10, 10, 3), np.uint8))
    frames, fps = read_video(path)
    assert len(frames) == 12 and fps == pytest.approx(15)
    assert frames[0].shape == (48, 64, 3)
    red, green, blue = frames[-1].reshape(-1, 3).mean(axis=0)
    assert red == pytest.approx(150, abs=6) and green < 8 and blue < 8


def test_recorder_keeps_wall_clock_timing_of_a_slow_camera(tmp_path):
    """Frames captured at 14 fps, recorded at 30: each shows for as long as it did live (repeated), so 2 s of
    camera play for 2 s, not 0.9; frames faster than 30 fps share a slot (the newest is kept)."""
    path = tmp_path / "slow.mp4"
    t0 = 5_000_000_000
    with RecorderSink(path, 30, 64, 48) as sink:
        for i in range(29):  # 0 … 2 s at 14 fps
            sink.send(np.full((48, 64, 3), 20 + 8 * i, np.uint8), t0 + round(i * 1e9 / 14))
        sink.send(np.full((48, 64, 3), 255, np.uint8), t0 + round(28 * 1e9 / 14) + 5_000_000)  # 5 ms later
    frames, fps = read_video(path)
    assert fps == pytest.approx(30)
    assert len(frames) == 61  # slots 0 … 60: 2 s at 30 fps
    slots = [round(i * 30 / 14) for i in range(29)]  # each capture's time, to the nearest 1/30 s
    for k in (0, 1, 2, 3, 17, 30, 59):  # slot k shows the newest frame captured by then
        newest = max(i for i, slot in enumerate(slots) if slot <= k)
        assert frames[k].mean() == pytest.approx(20 + 8 * newest, abs=4), k
    assert frames[-1].mean() == pytest.approx(255, abs=4)  # the last frame replaced the one in its slot


def test_recorder_unwritable_path_raises(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SinkError, match="rec.mp4"):
        RecorderSink(blocker / "rec.mp4", 30, 64, 48)


def test_null_sink_counts():
    with NullSink() as sink:
        for _ in range(3):
            sink.send(np.zeros((2, 2, 3), np.uint8))
        assert sink.poll_key() is None
    assert sink.frames_sent == 3


def test_letterbox_centres_the_square_over_the_background():
    square = gradient(100, 100)
    background = make_background(square, 160, 90)
    assert background.shape == (90, 160, 3) and background.dtype == np.uint8
    out = letterbox(square, 160, 90, background)
    assert out.shape == (90, 160, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 35:125], cv2.resize(square, (90, 90), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(out[:, :35], background[:, :35])
    np.testing.assert_array_equal(out[:, 125:], background[:, 125:])
    assert out[:, :35].any()  # sides are filled, not black


def test_letterbox_without_background_is_black_and_keeps_same_size_square():
    square = gradient(48, 48)
    out = letterbox(square, 64, 48, None)
    np.testing.assert_array_equal(out[:, 8:56], square)
    assert not out[:, :8].any() and not out[:, 56:].any()


def test_background_is_blurred():
    square = np.zeros((64, 64, 3), np.uint8)
    square[:, ::2] = 255  # maximal high frequency
    background = make_background(square, 128, 72)
    assert background.std() < 10


def test_camera_inset_sits_bottom_right_with_the_face_outlined():
    image = np.full((540, 960, 3), 200, np.uint8)
    camera = np.full((480, 640, 3), 50, np.uint8)
    draw_camera_inset(image, camera, None)
    assert (image[-180:, -240:] == 50).all()  # a quarter of the width, the camera's aspect
    assert (image[:-180] == 200).all() and (image[:, :-240] == 200).all()
    face = np.zeros((478, 3), np.float32)
    face[:, :2] = (320.0, 240.0) + 100.0 * np.stack([np.cos(np.arange(478)), np.sin(np.arange(478))], 1)
    draw_camera_inset(image, camera, face)
    green = (image[..., 1] > 150) & (image[..., 0] < 100)
    assert green[-180:, -240:].sum() > 50 and not green[:-180].any()  # the tracked face, outlined in the inset


def test_draw_hud_marks_top_left_only_and_copies():
    image = np.full((540, 960, 3), 200, np.uint8)
    out = draw_hud(image, ["fps 30.0", "avatar: demo"])
    assert out.shape == image.shape
    assert (image == 200).all()  # input untouched
    assert (out[:4, :4] == 100).all()  # translucent dark box (half brightness)
    assert (out[300:, 500:] == 200).all()
    assert (out[:40, :100] > 200).any()  # white text inside the box
    np.testing.assert_array_equal(draw_hud(image, []), image)
