from avatarcam import doctor
from avatarcam.doctor import Check, format_checks, run_doctor


def test_run_doctor_returns_every_check_and_never_raises():
    checks = run_doctor()
    names = [c.name for c in checks]
    assert names == [
        "camera 0",
        "virtual camera",
        "audio",
        "ONNX Runtime",
        "PyTorch CUDA",
        "MediaPipe FaceMesh",
        "talking-head weights",
        "preview display",
    ]
    assert all(isinstance(c.ok, bool) and c.detail for c in checks)
    assert all(c.fix for c in checks if not c.ok)
    # The bundled FaceMesh model ships with the mediapipe wheel.
    assert next(c for c in checks if c.name == "MediaPipe FaceMesh").ok
    assert next(c for c in checks if c.name == "talking-head weights").ok  # shipped in weights/


def test_a_crashing_check_is_reported_as_failed(monkeypatch):
    def explode() -> Check:
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(doctor, "check_camera", explode)
    checks = run_doctor()
    crashed = checks[0]
    assert not crashed.ok and "driver exploded" in crashed.detail
    assert len(checks) == 8


def test_missing_virtual_camera_gives_the_fix(monkeypatch):
    import pyvirtualcam.camera

    class NoDevice:
        def __init__(self, **kw) -> None:
            raise RuntimeError("no loopback device")

    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {"v4l2loopback": NoDevice})
    monkeypatch.setattr("platform.system", lambda: "Linux")
    check = doctor.check_virtual_camera()
    assert not check.ok and "no loopback device" in check.detail
    assert "modprobe v4l2loopback" in check.fix


def test_format_checks_marks_and_fixes():
    text = format_checks(
        [
            Check("camera 0", True, "640x480 frames"),
            Check("virtual camera", False, "none", "sudo modprobe v4l2loopback"),
            Check("PyTorch CUDA", False, "not installed", "pip install avatarcam[gpu]", optional=True),
        ]
    )
    lines = text.splitlines()
    assert lines[0].startswith("✓ camera 0") and "640x480" in lines[0]
    assert lines[1].startswith("✗ virtual camera")
    assert lines[2].strip() == "fix: sudo modprobe v4l2loopback"
    assert lines[3].startswith("– PyTorch CUDA")
    assert "pip install avatarcam[gpu]" in lines[4]


def test_corrupt_weights_are_named_with_the_fix(tmp_path, monkeypatch):
    (tmp_path / "manifest.json").write_text("{not json")
    monkeypatch.setenv("AVATARCAM_WEIGHTS", str(tmp_path))
    check = doctor.check_weights()
    assert not check.ok and "manifest.json is not valid JSON" in check.detail
    assert "MODEL_CARD.md" in check.fix
