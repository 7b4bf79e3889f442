"""Shared fixtures: the default avatar, the shared data folder, a generated talking video, a fake virtual camera.

Everything here is offline and CPU only: the "talking" driver is the project's own demo motion (the default
avatar animated along a script: head turns, nods, talking, blinks), so the real tracker sees a real face.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvirtualcam
import pyvirtualcam.camera

from avatarcam.avatar import load_avatar
from avatarcam.demo import DemoSource
from avatarcam.types import Avatar, Frame

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TALKING_FRAMES = 40
TALKING_SIZE = (320, 240)  # width, height
TALKING_FPS = 30.0
FAKE_BACKEND = "avatarcam-test-fake"
TRAIN_THREADS = 2  # torch's CPU threads while a test trains: the thread count changes the order of float sums


@contextmanager
def deterministic_training(threads: int = TRAIN_THREADS) -> Iterator[None]:
    """While a tiny model trains: torch, numpy and random seeded, torch's CPU threads fixed and CUDA hidden, so a
    test sees the same numbers on every run and on any machine of the same CPU kind (a GPU, or another thread
    count, sums in another order). Restores threads and CUDA after."""
    import torch

    threads_before, cuda_available = torch.get_num_threads(), torch.cuda.is_available
    torch.set_num_threads(threads)
    torch.cuda.is_available = lambda: False
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    try:
        yield
    finally:
        torch.set_num_threads(threads_before)
        torch.cuda.is_available = cuda_available


@pytest.fixture
def deterministic() -> Iterator[None]:
    """`deterministic_training` for one test."""
    with deterministic_training():
        yield


@pytest.fixture(scope="session")
def astronaut_face() -> Avatar:
    """The project's default avatar (the astronaut portrait), prepared at 256²."""
    return load_avatar(None, 256)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's shared data folder (../shared/data beside the repo), or a clean skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data absent: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_frames(astronaut_face: Avatar) -> list[Frame]:
    """TALKING_FRAMES driver frames of the scripted demo face (file clock: frame i at i/fps)."""
    demo = DemoSource(astronaut_face, *TALKING_SIZE, fps=TALKING_FPS, realtime=False)
    try:
        return [demo.read() for _ in range(TALKING_FRAMES)]
    finally:
        demo.close()


def write_mp4(path: Path, images: list[np.ndarray], fps: float = TALKING_FPS) -> Path:
    """RGB images → an mp4v file."""
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), f"cannot write {path}"
    for image in images:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def talking_video(tmp_path: Path, demo_frames: list[Frame]) -> Path:
    """A short mp4 (40 frames, 320×240, 30 fps) of a real face turning its head, talking and blinking."""
    return write_mp4(tmp_path / "talking.mp4", [f.image for f in demo_frames])


class FakeCameraBackend:
    """A pyvirtualcam backend (see pyvirtualcam/camera.py `Backend`) that records what it is sent."""

    instances: list[FakeCameraBackend] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw) -> None:
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self.frames: list[np.ndarray] = []
        self.closed = False
        FakeCameraBackend.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        self.frames.append(frame.reshape(self.height, self.width, 3).copy())

    def close(self) -> None:
        self.closed = True

    def device(self) -> str:
        return "/dev/video-fake"

    def native_fourcc(self) -> int | None:
        return None


@pytest.fixture
def fake_virtualcam() -> Iterator[type[FakeCameraBackend]]:
    """Registers FakeCameraBackend as pyvirtualcam backend FAKE_BACKEND for one test, then removes it again
    (so `backend=None` auto-detection elsewhere never finds it). Its `instances` hold the recorded frames."""
    FakeCameraBackend.instances = []
    pyvirtualcam.register_backend(FAKE_BACKEND, FakeCameraBackend)
    try:
        yield FakeCameraBackend
    finally:
        pyvirtualcam.camera.BACKENDS.pop(FAKE_BACKEND, None)
        FakeCameraBackend.instances = []


def small_attribute_cache(shared_data: Path, out: Path, every: int, count: int, monkeypatch) -> Path:
    """An attribute cache (32²) of `count` real UTKFace faces, every `every`-th by name, in shards small enough
    that the train, judge and holdout splits each get some."""
    from avatarcam.train.stargan import data as module

    faces = out / "faces"
    faces.mkdir(parents=True)
    for path in sorted((shared_data / "faces" / "utkface").glob("*.jpg"))[::every][:count]:
        (faces / path.name).symlink_to(path)
    monkeypatch.setattr(module, "SHARD_FACES", max(1, count // 2))
    module.build_attribute_cache(faces, out / "cache", size=32, progress=False)
    return out / "cache"
