"""The `avatarcam` command line, called in-process through avatarcam.cli.main([...])."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import TALKING_FRAMES

from avatarcam.avatar import default_avatar_path
from avatarcam.cli import main
from avatarcam.io.sources import read_video


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


def test_run_demo_into_the_null_sink(capsys) -> None:
    argv = ["run", "--source", "demo", "--sink", "null", "--seconds", "2", "--size", "128", "--no-global-hotkeys"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "source: demo motion" in out and "output: none" in out
    sent = int(out.split("sent ")[1].split(" frames")[0])
    assert sent >= 10  # 2 s of a 30 fps driver, even on a slow machine


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


def test_bench_prints_a_table(capsys) -> None:
    assert main(["bench", "--sizes", "128", "--frames", "20", "--live-seconds", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("machine: ")
    rows = [line for line in printed.splitlines() if line.startswith("| ")]
    assert "track ms" in rows[0] and "animate ms" in rows[0]
    assert any(r.startswith("| render 128² |") for r in rows)
    assert any(r.startswith("| live ") for r in rows)


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
