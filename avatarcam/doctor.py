"""`avatarcam doctor`: checks the camera, virtual camera, audio, accelerators, models and display, with fixes."""

from __future__ import annotations

import glob
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from avatarcam.audio.devices import AudioUnavailable, list_devices, loopback_hint, pick_output, server_sinks
from avatarcam.audio.engine import load_backend
from avatarcam.io.sinks import virtual_camera_hint

GPU_FIX = "pip install avatarcam[gpu]"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    optional: bool = False  # avatarcam runs without it (shown as – rather than ✗)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def check_camera() -> Check:
    import cv2

    fix = "plug in a webcam, close other apps using it, and allow camera access"
    if sys.platform.startswith("linux"):
        fix += "; on Linux add yourself to the `video` group (`sudo usermod -aG video $USER`, then log in again)"
    cap = cv2.VideoCapture(0)
    try:
        if not cap.isOpened():
            return Check("camera 0", False, "cannot open camera 0 (demo motion will be used)", fix)
        ok, frame = cap.read()
        if not ok or frame is None:
            return Check("camera 0", False, "camera 0 opens but gives no frame", fix)
        return Check("camera 0", True, f"{frame.shape[1]}x{frame.shape[0]} frames")
    finally:
        cap.release()


def _loopback_state() -> str:
    devices = sorted(glob.glob("/dev/video*"))
    try:
        with open("/proc/modules") as fh:
            loaded = any(line.split(" ", 1)[0] == "v4l2loopback" for line in fh)
    except OSError:
        loaded = False
    listed = ", ".join(devices) if devices else "none"
    return f"/dev/video*: {listed}; v4l2loopback {'loaded' if loaded else 'not loaded'}"


def check_virtual_camera() -> Check:
    import pyvirtualcam

    extra = f" ({_loopback_state()})" if sys.platform.startswith("linux") else ""
    try:
        with pyvirtualcam.Camera(640, 480, 30, fmt=pyvirtualcam.PixelFormat.RGB) as camera:
            device = camera.device
    except Exception as exc:  # noqa: BLE001 - pyvirtualcam reports every backend failure as a bare Exception
        return Check("virtual camera", False, f"cannot open one: {_one_line(exc)}{extra}", virtual_camera_hint())
    return Check("virtual camera", True, f"{device}{extra}")


def check_audio() -> Check:
    """The microphones and outputs PortAudio sees, and whether the call's loopback device is there."""
    try:
        devices = list_devices(load_backend())
    except AudioUnavailable as exc:
        return Check("audio", False, str(exc), "grant microphone access; " + loopback_hint(), optional=True)
    inputs = [f"{d.index}: {d.name}" for d in devices if d.inputs > 0]
    outputs = [f"{d.index}: {d.name}" for d in devices if d.outputs > 0]
    listing = f"inputs [{'; '.join(inputs) or 'none'}], outputs [{'; '.join(outputs) or 'none'}]"
    if not inputs:
        return Check("audio", False, f"no microphone found ({listing})", "plug one in, grant access", optional=True)
    try:
        device, sink = pick_output(devices, "auto", server_sinks())
    except AudioUnavailable:
        return Check("audio", False, f"no loopback device for --audio ({listing})", loopback_hint(), optional=True)
    return Check("audio", True, f"{listing}; --audio plays into '{sink or device.name}'", optional=True)


def check_onnxruntime() -> Check:
    try:
        import onnxruntime
    except ImportError:
        return Check("ONNX Runtime", False, "not installed", GPU_FIX, optional=True)
    providers = onnxruntime.get_available_providers()
    gpu = [p for p in providers if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")]
    detail = f"{onnxruntime.__version__}: {', '.join(providers)}"
    if not gpu:
        return Check("ONNX Runtime", False, f"{detail} (no CUDA/TensorRT: CPU only)", GPU_FIX, optional=True)
    return Check("ONNX Runtime", True, detail, optional=True)


def check_torch() -> Check:
    try:
        torch = importlib.import_module("torch")  # heavy; only the doctor and GPU animators import it
    except ImportError:
        return Check("PyTorch CUDA", False, "torch not installed", GPU_FIX, optional=True)
    if not torch.cuda.is_available():
        return Check("PyTorch CUDA", False, f"torch {torch.__version__}: CUDA not available", GPU_FIX, optional=True)
    return Check("PyTorch CUDA", True, f"torch {torch.__version__}: {torch.cuda.get_device_name(0)}", optional=True)


def check_facemesh() -> Check:
    fix = "reinstall MediaPipe: `pip install --force-reinstall mediapipe`"
    try:
        import mediapipe as mp

        mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
        mesh.close()
    except Exception as exc:  # noqa: BLE001 - missing wheel files surface as assorted errors
        return Check("MediaPipe FaceMesh", False, _one_line(exc), fix)
    return Check("MediaPipe FaceMesh", True, f"mediapipe {mp.__version__}, bundled model loads")


def check_weights() -> Check:
    """The shipped talking-head weights against their manifest (sha256, ONNX input shapes)."""
    from avatarcam.runtime.weights import WeightsError, weights_dir
    from avatarcam.train.talking_head.export import verify_shipped

    fix = "restore weights/ from the repository (git checkout -- weights), or rebuild: see weights/MODEL_CARD.md"
    try:
        paths = verify_shipped()
    except WeightsError as exc:
        return Check("talking-head weights", False, _one_line(exc), fix)
    size = sum(p.stat().st_size for p in paths) / 1e6
    return Check(
        "talking-head weights", True, f"{len(paths)} files, {size:.1f} MB, match {weights_dir()}/manifest.json"
    )


def check_display() -> Check:
    import cv2

    gui = next(
        (
            line.split(":", 1)[1].strip()
            for line in cv2.getBuildInformation().splitlines()
            if line.strip().startswith("GUI:")
        ),
        "unknown",
    )
    if gui == "NONE":
        return Check(
            "preview display",
            False,
            "OpenCV built without GUI (headless)",
            "pip install opencv-contrib-python (not the -headless build)",
            optional=True,
        )
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return Check(
            "preview display",
            False,
            "DISPLAY and WAYLAND_DISPLAY are unset: no preview or monitor window, so no HUD",
            "run from a desktop session (the virtual camera and --sink file work without one)",
            optional=True,
        )
    return Check("preview display", True, f"OpenCV GUI: {gui}", optional=True)


def run_doctor() -> list[Check]:
    """Run every check; a check that crashes is reported as failed, never raised."""
    checks: list[Callable[[], Check]] = [
        check_camera,
        check_virtual_camera,
        check_audio,
        check_onnxruntime,
        check_torch,
        check_facemesh,
        check_weights,
        check_display,
    ]
    results = []
    for check in checks:
        try:
            results.append(check())
        except Exception as exc:  # noqa: BLE001 - the doctor must report, never crash
            name = check.__name__.removeprefix("check_").replace("_", " ")
            results.append(Check(name, False, f"check crashed: {_one_line(exc)}"))
    return results


def format_checks(checks: list[Check]) -> str:
    """A table: mark, name, detail, and the fix under anything that failed."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        mark = "✓" if c.ok else ("–" if c.optional else "✗")
        lines.append(f"{mark} {c.name.ljust(width)}  {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"  {' ' * width}  fix: {c.fix}")
    return "\n".join(lines)
