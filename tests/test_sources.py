import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarcam.config import Config, SourceConfig, load_config
from avatarcam.demo import DemoSource
from avatarcam.devices import open_source
from avatarcam.io import sources
from avatarcam.io.sources import CameraSource, SourceError, VideoFileSource, read_video
from avatarcam.registry import SOURCES


def source(**settings) -> Config:
    return Config(source=SourceConfig(**settings))


def write_video(path: Path, n: int = 10, fps: float = 10.0, size: tuple[int, int] = (64, 48)) -> list[int]:
    """Flat-grey frames whose level encodes the frame number (survives mp4v compression)."""
    levels = [20 + 20 * i for i in range(n)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for level in levels:
        writer.write(np.full((size[1], size[0], 3), level, np.uint8))
    writer.release()
    return levels


def test_missing_camera_raises_source_error():
    with pytest.raises(SourceError, match="camera 97"):
        CameraSource(97)


def test_open_source_auto_falls_back_to_demo():
    demo, message = open_source(source(kind="auto", camera=97, width=320, height=240))
    try:
        assert isinstance(demo, DemoSource)
        assert message.startswith("no camera found (")
        assert "camera 97" in message and message.endswith("using demo motion")
        frame = demo.read(timeout=1.0)
        assert frame is not None and frame.image.shape == (240, 320, 3)  # the configured camera size
    finally:
        demo.close()


def test_open_source_explicit_camera_does_not_fall_back():
    with pytest.raises(SourceError, match="camera 97"):
        open_source(source(kind="camera", camera=97))


def test_open_source_says_which_camera_it_opened(monkeypatch):
    monkeypatch.setattr(FlakyCapture, "plugged", True)
    monkeypatch.setattr(FlakyCapture, "good", 10_000)
    monkeypatch.setattr(sources.cv2, "VideoCapture", FlakyCapture)
    for kind in ("auto", "camera"):  # auto takes the camera when there is one
        camera, message = open_source(source(kind=kind, camera=3))
        with camera:
            assert isinstance(camera, CameraSource) and camera.index == 3
            assert message == "source: camera 3 (25 fps)"  # the fps the camera reports


def test_open_source_explicit_demo():
    demo, message = open_source(source(kind="demo", width=320, height=240))
    try:
        assert isinstance(demo, DemoSource) and message == "source: demo motion"
    finally:
        demo.close()


def test_open_source_file_and_unknown_kind(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path)
    opened, message = open_source(source(kind="file", path=str(path), loop=False))
    with opened:
        assert isinstance(opened, VideoFileSource) and opened.realtime and not opened.loop
        assert "clip.mp4" in message and message.endswith("(10 fps, once)")
    opened, message = open_source(source(kind="file", path=str(path)))
    with opened:
        assert opened.loop and message.endswith("(10 fps, looping)")
    with pytest.raises(SourceError, match="needs a video path"):
        open_source(source(kind="file"))
    with pytest.raises(ValueError, match=r"unknown source 'webcam' \(valid: camera, file, demo, audio\)"):
        open_source(source(kind="webcam"))
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"unknown source.kind 'webcam' \(valid: auto, camera, file, demo, audio\)"):
        load_config(empty, {"source.kind": "webcam"})
    assert set(SOURCES.names()) == {"camera", "file", "demo", "audio"}


def test_video_once_reads_every_frame_in_order_then_finishes(tmp_path):
    path = tmp_path / "clip.mp4"
    levels = write_video(path, n=10, fps=10)
    with VideoFileSource(path, loop=False) as source:
        assert source.frame_count == 10
        assert source.fps == pytest.approx(10.0)
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
        assert source.finished
        assert source.read() is None
    assert [f.index for f in frames] == list(range(10))
    assert [round(f.image.mean()) for f in frames] == pytest.approx(levels, abs=4)
    # File clock: 100 ms apart at 10 fps.
    assert frames[1].timestamp_ns - frames[0].timestamp_ns == 100_000_000


def test_video_loop_wraps_to_the_first_frame(tmp_path):
    path = tmp_path / "clip.mp4"
    levels = write_video(path, n=5)
    with VideoFileSource(path, loop=True) as source:
        frames = [source.read() for _ in range(12)]
    assert all(f is not None for f in frames)
    means = [f.image.mean() for f in frames]
    assert means[5] == pytest.approx(levels[0], abs=4)
    assert means[11] == pytest.approx(levels[1], abs=4)
    assert not source.finished


def test_video_colour_order_is_rgb(tmp_path):
    path = tmp_path / "red.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    bgr_red = np.zeros((48, 64, 3), np.uint8)
    bgr_red[..., 2] = 220
    for _ in range(3):
        writer.write(bgr_red)
    writer.release()
    frames, fps = read_video(path)
    r, g, b = frames[0].reshape(-1, 3).mean(axis=0)
    assert r > 180 and g < 40 and b < 40
    assert fps == pytest.approx(10.0)


def test_video_realtime_is_paced(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, n=10, fps=20)
    with VideoFileSource(path, loop=False, realtime=True) as source:
        start = time.monotonic()
        frames = [source.read() for _ in range(4)]
        elapsed = time.monotonic() - start
    assert all(f is not None for f in frames)
    assert elapsed >= 3 / 20 * 0.8  # frame 3 is due 150 ms after frame 0


def test_read_video_max_frames(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, n=10, size=(32, 24))
    frames, _ = read_video(path, max_frames=4)
    assert len(frames) == 4
    assert frames[0].shape == (24, 32, 3) and frames[0].dtype == np.uint8


def test_corrupt_and_missing_files_raise_naming_the_file(tmp_path):
    corrupt = tmp_path / "x.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match="x.mp4") as info:
        VideoFileSource(corrupt)
    assert "\n" not in str(info.value)
    with pytest.raises(SourceError, match="nothere.mp4"):
        VideoFileSource(tmp_path / "nothere.mp4")


class FlakyCapture:
    """Stands in for cv2.VideoCapture: delivers `good` frames, then fails until `plugged` is set again."""

    plugged = True
    good = 5
    opens = 0
    lock = threading.Lock()

    def __init__(self, index: int) -> None:
        with FlakyCapture.lock:
            FlakyCapture.opens += 1
        self._open = FlakyCapture.plugged
        self._left = FlakyCapture.good

    def isOpened(self) -> bool:
        return self._open

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(0.002)
        if self._left <= 0:
            FlakyCapture.plugged = False  # the first failure is the unplug
            return False, None
        self._left -= 1
        frame = np.zeros((8, 8, 3), np.uint8)
        frame[..., 0] = 200  # blue in BGR
        return True, frame

    def release(self) -> None:
        self._open = False


def wait_until(condition, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_camera_reconnects_after_unplug(monkeypatch):
    monkeypatch.setattr(FlakyCapture, "plugged", True)
    monkeypatch.setattr(FlakyCapture, "opens", 0)
    monkeypatch.setattr(sources.cv2, "VideoCapture", FlakyCapture)
    with CameraSource(3, retry_interval=0.02) as camera:
        assert camera.connected and camera.fps == 25.0
        first = camera.read(timeout=1.0)
        assert first is not None
        assert first.image[0, 0].tolist() == [0, 0, 200]  # converted to RGB
        assert wait_until(lambda: not camera.connected)
        assert camera.reconnects == 0
        camera.read(timeout=0.0)  # drain whatever arrived before the unplug
        assert camera.read(timeout=0.05) is None
        assert wait_until(lambda: FlakyCapture.opens >= 3)  # it keeps retrying while unplugged, without raising
        FlakyCapture.plugged = True
        assert wait_until(lambda: camera.connected)
        assert camera.reconnects == 1
        after = camera.read(timeout=1.0)
        assert after is not None and after.index > first.index


def test_camera_read_returns_only_the_newest_frame(monkeypatch):
    monkeypatch.setattr(FlakyCapture, "plugged", True)
    monkeypatch.setattr(FlakyCapture, "good", 10_000)
    monkeypatch.setattr(sources.cv2, "VideoCapture", FlakyCapture)
    with CameraSource(0) as camera:
        time.sleep(0.05)  # several frames arrive meanwhile
        a = camera.read()
        b = camera.read()
    assert a is not None and b is not None
    assert a.index >= 3  # older frames were dropped, not queued
    assert b.index > a.index and b.timestamp_ns > a.timestamp_ns
