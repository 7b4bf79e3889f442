"""The `avatarcam` command line, called in-process through avatarcam.cli.main([...]), and as a process where
signals and the terminal's stderr matter."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import TALKING_FRAMES, write_mp4

from avatarcam import render as render_module
from avatarcam.avatar import default_avatar_path
from avatarcam.cli import main
from avatarcam.io.sources import read_video
from avatarcam.registry import ANIMATORS
from avatarcam.stages import Packet
from avatarcam.stages.chain import Chain
from avatarcam.types import Frame

NATIVE_LOG_MARKS = ("W0000", "I0000", "E0000", "[h264", "[mpeg4", "[mov,", "INFO: Created TensorFlow")


def cli_process(*argv: str) -> subprocess.Popen:
    """`avatarcam ARGV` as its own process, as a user starts it (stdout and stderr piped, unbuffered)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    cmd = [sys.executable, "-m", "avatarcam.cli", *argv]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    with cli_process(*argv) as process:
        out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("avatarcam: error: ")
    return lines[0]


@pytest.fixture
def blank_portrait(tmp_path: Path) -> Path:
    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), np.full((200, 200, 3), 200, np.uint8))
    return path


def test_render_writes_one_square_frame_per_driver_frame(talking_video: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out" / "render.mp4"
    argv = ["render", "--avatar", str(default_avatar_path()), "--driver", str(talking_video), "--out", str(out)]
    assert main([*argv, "--size", "128", "--quiet"]) == 0
    frames, fps = read_video(out)
    assert len(frames) == TALKING_FRAMES
    assert all(f.shape == (128, 128, 3) for f in frames)
    assert fps == pytest.approx(30.0)
    assert np.abs(frames[0].astype(np.int16) - frames[-1]).mean() > 1.0  # the avatar moves
    assert f"wrote {out}: {TALKING_FRAMES} frames" in capsys.readouterr().out


def test_render_first_frames_only(talking_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "short.mp4"
    argv = ["render", "--avatar", str(default_avatar_path()), "--driver", str(talking_video), "--out", str(out)]
    assert main([*argv, "--size", "96", "--frames", "7", "--quiet"]) == 0
    frames, _ = read_video(out)
    assert len(frames) == 7 and frames[0].shape == (96, 96, 3)


def test_render_with_a_faceless_portrait_fails_with_one_line(
    blank_portrait: Path, talking_video: Path, tmp_path: Path, capsys
) -> None:
    argv = ["render", "--avatar", str(blank_portrait), "--driver", str(talking_video), "--out", str(tmp_path / "o.mp4")]
    assert main([*argv, "--quiet"]) != 0
    line = one_error_line(capsys.readouterr().err)
    assert "no face found in wall" in line
    assert not (tmp_path / "o.mp4").exists()


def test_render_with_a_missing_driver_fails_with_one_line(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nowhere.mp4"
    argv = [
        "render",
        "--avatar",
        str(default_avatar_path()),
        "--driver",
        str(missing),
        "--out",
        str(tmp_path / "o.mp4"),
    ]
    assert main([*argv, "--size", "96", "--quiet"]) != 0
    line = one_error_line(capsys.readouterr().err)
    assert "nowhere.mp4" in line


def test_render_with_a_driver_that_is_not_a_video(tmp_path: Path, capsys) -> None:
    text = tmp_path / "driver.mp4"
    text.write_text("not a video")
    argv = ["render", "--avatar", str(default_avatar_path()), "--driver", str(text), "--out", str(tmp_path / "o.mp4")]
    assert main([*argv, "--size", "96", "--quiet"]) != 0
    assert "driver.mp4" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("mode", ["pipelined", "sequential"])
def test_run_demo_into_the_null_sink(mode: str, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import avatarcam.pipeline as pipeline_module

    made: list[pipeline_module.LivePipeline] = []

    class Recorded(pipeline_module.LivePipeline):
        def __init__(self, *args, **kw) -> None:
            super().__init__(*args, **kw)
            made.append(self)

    monkeypatch.setattr(pipeline_module, "LivePipeline", Recorded)
    argv = ["run", "--source", "demo", "--sink", "null", "--seconds", "2", "--size", "128", "--no-global-hotkeys"]
    assert main(argv + (["--sequential"] if mode == "sequential" else [])) == 0
    out = capsys.readouterr().out
    assert "source: demo motion" in out and "output: none" in out
    sent = int(out.split("sent ")[1].split(" frames")[0])
    assert sent >= 10  # 2 s of a 30 fps driver, even on a slow machine
    assert out.rstrip().endswith(", 0 frame errors")
    assert [p.pipelined for p in made] == [mode == "pipelined"]  # pipelined unless --sequential


def test_run_a_video_into_a_file(talking_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "live.mp4"
    argv = ["run", "--video", str(talking_video), "--out", str(out), "--seconds", "2", "--size", "128"]
    assert main([*argv, "--no-global-hotkeys"]) == 0
    frames, _ = read_video(out)
    assert len(frames) >= 10 and frames[0].shape == (540, 960, 3)  # the default output size


def test_run_with_a_missing_video_fails_with_one_line(tmp_path: Path, capsys) -> None:
    argv = ["run", "--video", str(tmp_path / "gone.mp4"), "--sink", "null", "--seconds", "1", "--size", "96"]
    assert main([*argv, "--no-global-hotkeys"]) != 0
    assert "gone.mp4" in one_error_line(capsys.readouterr().err)


def test_eval_prints_static_and_warp_rows(talking_video: Path, tmp_path: Path, capsys) -> None:
    clips = talking_video.parent
    out = tmp_path / "report"
    assert main(["eval", "--clips", str(clips), "--frames", "15", "--size", "128", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| method |")
    assert any(r.startswith("| static |") for r in rows) and any(r.startswith("| warp |") for r in rows)
    assert (out / "results.md").is_file() and (out / "per_clip.json").is_file()
    assert (out / "self_talking.png").is_file()


def test_eval_on_a_missing_folder_fails_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["eval", "--clips", str(tmp_path / "none")]) != 0
    assert "clip folder not found" in one_error_line(capsys.readouterr().err)


def test_bench_prints_a_table_and_what_pipelining_gains() -> None:
    """Run as a process: the table, then a line per comparison (pipelined vs sequential chain and live loop)."""
    with cli_process("bench", "--sizes", "128", "--frames", "20", "--live-seconds", "1") as process:
        printed, err = process.communicate(timeout=120)  # about 10 s
    assert process.returncode == 0, err
    assert printed.startswith("machine: ")
    rows = [line for line in printed.splitlines() if line.startswith("| ")]
    assert "track ms" in rows[0] and "animate ms" in rows[0]
    assert any(r.startswith("| render 128² |") for r in rows)
    for what in ("chain", "live"):
        for mode in ("sequential", "pipelined"):
            assert any(re.match(rf"\| {what} \d+² → 960×540, {mode} \|", r) for r in rows), (what, mode)
    assert re.search(r"^pipelined throughput: \d+\.\d\d× the sequential chain's$", printed, re.MULTILINE)
    live = [r for r in rows if r.startswith("| live ")]
    if all(not r.endswith("| – |") for r in live):  # both live runs sent enough frames for a latency
        assert re.search(r"^live p95 latency, pipelined − sequential: [+-]\d+\.\d ms$", printed, re.MULTILINE)


def test_doctor_runs(capsys) -> None:
    assert main(["doctor"]) in (0, 1)
    assert "camera" in capsys.readouterr().out


def test_avatar_check(blank_portrait: Path, capsys) -> None:
    assert main(["avatar", "check", str(default_avatar_path()), "--size", "256"]) == 0
    assert "default_avatar: face found, 256²" in capsys.readouterr().out
    assert main(["avatar", "check", str(blank_portrait)]) != 0
    assert "no face found" in one_error_line(capsys.readouterr().err)


def test_bad_config_file_fails_with_one_line(tmp_path: Path, capsys) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[animator]\nsizee = 3\n")
    argv = ["--config", str(config), "render", "--avatar", "x.png", "--driver", "y.mp4", "--out", "z.mp4"]
    assert main(argv) != 0
    assert "unknown setting 'animator.sizee'" in one_error_line(capsys.readouterr().err)


def test_help_lists_the_animators(capsys) -> None:
    names = ANIMATORS.names()
    assert {"warp", "talking-head", "faceswap"} <= set(names)
    for argv in (["--help"], ["run", "--help"], ["render", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
        printed = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        assert ", ".join(names) in printed, argv
        if argv == ["run", "--help"]:
            assert "--sequential" in printed
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "--with-finetune" in capsys.readouterr().out


def test_sigterm_stops_a_recording_cleanly(tmp_path: Path) -> None:
    """`timeout`, a service manager or a closed terminal (SIGTERM, SIGHUP) stop `run` as Ctrl+C does: the mp4 is
    finished (it plays) and the summary is printed."""
    out = tmp_path / "rec.mp4"
    argv = ["run", "--source", "demo", "--out", str(out), "--size", "128", "--no-global-hotkeys", "--no-monitor"]
    with cli_process(*argv, "--seconds", "120") as process:
        assert process.stdout is not None
        for line in process.stdout:  # start-up (model loading) takes a while on a busy machine
            if line.startswith("running:"):
                break
        time.sleep(2.0)
        process.send_signal(signal.SIGTERM)
        rest, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "sent " in rest and " frames at " in rest, rest
    capture = cv2.VideoCapture(str(out))
    assert capture.isOpened()
    ok, image = capture.read()
    assert ok and image.shape == (540, 960, 3)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) >= 10
    capture.release()


def test_sigterm_stops_a_render_with_a_playable_file_and_a_summary(
    talking_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    class TerminatedAfterFive(Chain):
        """The render's stage chain, with a SIGTERM arriving while it draws the sixth frame."""

        calls = 0

        def __call__(self, packet: Packet) -> Packet:
            TerminatedAfterFive.calls += 1
            if TerminatedAfterFive.calls == 6:
                os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or a service manager would
            return super().__call__(packet)

    monkeypatch.setattr(render_module, "Chain", TerminatedAfterFive)
    out = tmp_path / "cut.mp4"
    argv = ["render", "--avatar", str(default_avatar_path()), "--driver", str(talking_video), "--out", str(out)]
    assert main([*argv, "--size", "96", "--quiet"]) == 130
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    printed = capsys.readouterr().out
    assert f"wrote {out}: " in printed and "stopped before the driver's end" in printed
    frames, _ = read_video(out)
    assert 5 <= len(frames) < TALKING_FRAMES


def test_run_a_video_into_a_file_plays_it_once_at_its_own_fps(demo_frames: list[Frame], tmp_path: Path) -> None:
    """Recording from a file: the file's frame rate (not the output's 30), and it ends with the file; looping
    is for a live virtual camera only."""
    driver = write_mp4(tmp_path / "pal.mp4", [f.image for f in demo_frames], fps=25.0)
    out = tmp_path / "rec.mp4"
    argv = ["run", "--video", str(driver), "--out", str(out), "--seconds", "30", "--size", "96"]
    start = time.monotonic()
    assert main([*argv, "--no-global-hotkeys", "--no-monitor"]) == 0
    assert time.monotonic() - start < 20  # it stopped at the end of the file, not after --seconds
    frames, fps = read_video(out)
    assert fps == pytest.approx(25.0)
    assert abs(len(frames) - TALKING_FRAMES) <= 1  # as long as the driver: 1.6 s


def damaged(video: Path, path: Path) -> Path:
    """`video` with a stretch of its middle zeroed: the container still lists every frame, some cannot be decoded."""
    data = bytearray(video.read_bytes())
    lo, hi = int(len(data) * 0.40), int(len(data) * 0.55)
    data[lo:hi] = bytes(hi - lo)
    path.write_bytes(bytes(data))
    return path


def test_render_of_a_damaged_driver_fails_with_one_line_and_no_native_logs(talking_video: Path, tmp_path: Path) -> None:
    broken = damaged(talking_video, tmp_path / "broken.mp4")
    decoded, _ = read_video(broken)
    assert len(decoded) < TALKING_FRAMES  # what the user hit: frames silently missing
    out = tmp_path / "o.mp4"
    done = run_cli("render", "--driver", str(broken), "--out", str(out), "--size", "96", "--quiet")
    assert done.returncode != 0
    line = one_error_line(done.stderr)
    assert "broken.mp4 is damaged" in line and f"of its {TALKING_FRAMES} frames cannot be decoded" in line
    assert not out.exists()  # not a render of that driver: nothing is left to mistake for one

    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(talking_video.read_bytes()[: talking_video.stat().st_size // 2])
    done = run_cli("render", "--driver", str(truncated), "--out", str(out), "--size", "96", "--quiet")
    assert done.returncode != 0 and "truncated.mp4" in one_error_line(done.stderr)


def test_a_clean_render_prints_no_native_log_lines(talking_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    argv = ["render", "--driver", str(talking_video), "--out", str(out), "--size", "96", "--quiet"]
    done = run_cli(*argv)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""  # MediaPipe warns on the first non-square frame: not here
    assert f"{TALKING_FRAMES} frames" in done.stdout
    loud = run_cli("--verbose", *argv)  # --verbose lets the native lines through
    assert any(mark in loud.stderr for mark in NATIVE_LOG_MARKS), loud.stderr[-2000:]
