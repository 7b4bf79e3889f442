"""Landmark detectors: MediaPipe's bundled FaceMesh (default) and the Tasks Face Landmarker (.task file)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np


class LandmarkDetector(Protocol):
    """Finds the main face in an RGB image: 478×3 pixel landmarks (+ blendshapes when the model has them)."""

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, float] | None] | None: ...

    def close(self) -> None: ...


def _python_stderr_is_fd2() -> bool:
    """Whether Python's sys.stderr writes to fd 2, where native code writes: not under pytest's capture or an
    IDE's, nor inside native_stderr_silenced (fd 2 is silenced already)."""
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def _fd2_to_devnull() -> Iterator[None]:
    """Points file descriptor 2, where native code writes, at /dev/null, and back afterwards."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silences what native code writes to stderr (MediaPipe's start-up chatter), without touching Python's."""
    if not _python_stderr_is_fd2():
        yield
        return
    sys.stderr.flush()
    with _fd2_to_devnull():
        yield


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Points fd 2 at /dev/null while a command runs and moves Python's sys.stderr to a copy of the real one.

    MediaPipe (absl `W0000 …` lines), TensorFlow Lite and ffmpeg log from native code, on any thread, at any time
    (the first non-square frame, a damaged video): only redirecting the descriptor catches them all. Our own
    messages, warnings, progress bars and tracebacks go through sys.stderr and still show."""
    if not _python_stderr_is_fd2():
        yield
        return
    sys.stderr.flush()
    python_stderr = sys.stderr
    # The copy stays open afterwards: a logging handler made meanwhile keeps writing to it.
    sys.stderr = open(os.dup(2), "w", buffering=1, encoding=python_stderr.encoding, errors="backslashreplace")
    try:
        with _fd2_to_devnull():
            yield
    finally:
        sys.stderr.flush()
        sys.stderr = python_stderr


def largest_face(faces: list[np.ndarray]) -> np.ndarray:
    """The landmarks with the largest bounding box: the main person where several are in view."""
    return max(faces, key=lambda lm: np.ptp(lm[:, 0]) * np.ptp(lm[:, 1]))


def _to_pixels(points, width: int, height: int) -> np.ndarray:
    return np.array([(p.x * width, p.y * height, p.z * width) for p in points], dtype=np.float32)


class FaceMeshDetector:
    """MediaPipe FaceMesh with irises (model inside the mediapipe wheel: nothing to download)."""

    def __init__(self, static: bool = False, max_faces: int = 1, min_confidence: float = 0.5) -> None:
        import mediapipe as mp

        with quiet_native_stderr():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static,
                max_num_faces=max_faces,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
            )
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))  # the first call logs its own warnings
        self.faces_found = 0  # faces in the last image (to tell the user when there are several)

    def all_faces(self, image: np.ndarray) -> list[np.ndarray]:
        """Every face found (up to max_faces), 478×3 pixel landmarks each."""
        h, w = image.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(image))
        found = result.multi_face_landmarks or []
        self.faces_found = len(found)
        return [_to_pixels(f.landmark, w, h) for f in found]

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, None] | None:
        faces = self.all_faces(image)
        return (largest_face(faces), None) if faces else None

    def close(self) -> None:
        self._mesh.close()


class LandmarkerDetector:
    """MediaPipe Tasks Face Landmarker from a user-supplied .task bundle: same 478 points plus 52 blendshapes."""

    def __init__(self, task_file: str, max_faces: int = 1, min_confidence: float = 0.5) -> None:
        path = Path(task_file)
        if not path.is_file():
            raise FileNotFoundError(
                f"Face Landmarker model not found: {task_file} (download face_landmarker.task from MediaPipe's "
                "model page, or use tracker.backend = 'facemesh', which needs no file)"
            )
        from mediapipe.tasks.python import BaseOptions
        from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions, RunningMode

        options = FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=path.read_bytes()),
            running_mode=RunningMode.IMAGE,
            num_faces=max_faces,
            min_face_detection_confidence=min_confidence,
            output_face_blendshapes=True,
        )
        self._landmarker = FaceLandmarker.create_from_options(options)
        self.faces_found = 0

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, float] | None] | None:
        import mediapipe as mp

        h, w = image.shape[:2]
        result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
        self.faces_found = len(result.face_landmarks)
        if not result.face_landmarks:
            return None
        faces = [_to_pixels(f, w, h) for f in result.face_landmarks]
        best = max(range(len(faces)), key=lambda i: np.ptp(faces[i][:, 0]) * np.ptp(faces[i][:, 1]))
        shapes = None
        if result.face_blendshapes:
            shapes = {c.category_name: float(c.score) for c in result.face_blendshapes[best]}
        return faces[best], shapes

    def close(self) -> None:
        self._landmarker.close()


def make_detector(backend: str, task_file: str = "", static: bool = False, min_confidence: float = 0.5):
    if backend == "facemesh":
        return FaceMeshDetector(static=static, max_faces=1, min_confidence=min_confidence)
    if backend == "landmarker":
        return LandmarkerDetector(task_file, max_faces=1, min_confidence=min_confidence)
    raise ValueError(f"unknown tracker backend '{backend}' (choose facemesh or landmarker)")
