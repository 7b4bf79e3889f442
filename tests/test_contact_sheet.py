"""`avatarcam sheet`: moment picking from landmark signals, and the grid on the generated talking video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarcam.avatar import default_avatar_path, read_image, square_crop
from avatarcam.cli import main
from avatarcam.config import AnimatorConfig, Config
from avatarcam.eval.contact_sheet import GAP, build_sheet, pick_moments
from avatarcam.io.sources import read_video

TILE = 64
LABEL = 24  # sidebyside's label strip


def _signals(mouth: float, eyes: float, yaw: float, brows: float = 0.5, width: float = 1.0) -> dict[str, float]:
    return {"mouth": mouth, "eyes": eyes, "yaw": yaw, "pitch": 0.0, "brows": brows, "width": width}


def test_pick_moments_from_signals() -> None:
    signals = [
        None,  # no face: never picked, not even as the first frame
        _signals(0.1, 0.30, 0.0),
        _signals(0.5, 0.30, 0.2),
        _signals(0.2, 0.05, -0.4, brows=0.7),
        _signals(0.5, 0.30, 0.6, width=1.4),  # as wide open as frame 2: the earlier frame wins
        None,
        _signals(0.1, 0.28, -0.1),
    ]
    assert pick_moments(signals) == [
        ("first", 1),
        ("mouth open", 2),
        ("brows up", 3),
        ("grimace", 4),
        ("turn left", 3),
        ("turn right", 4),
        ("eyes shut", 3),
    ]
    with pytest.raises(ValueError, match="no face"):
        pick_moments([None, None])


def test_sheet_grid_and_moments(tmp_path: Path, talking_video: Path) -> None:
    grey = tmp_path / "grey.png"
    gray = cv2.cvtColor(cv2.cvtColor(read_image(default_avatar_path()), cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2BGR)
    cv2.imwrite(str(grey), gray)
    missing = tmp_path / "missing.png"  # left out, with a warning
    config = Config(animator=AnimatorConfig(size=128))
    grid, drivers = build_sheet(config, [default_avatar_path(), grey, missing], [talking_video], frames=30, tile=TILE)
    (drv,) = drivers
    assert [name for name, _ in drv.moments] == [
        "first",
        "mouth open",
        "brows up",
        "grimace",
        "turn left",
        "turn right",
        "eyes shut",
    ]
    assert all(0 <= index < 30 for _, index in drv.moments)
    # A header row (two label strips) and two portrait rows (one strip each); the portrait column and 7 moments.
    assert grid.shape == (2 * LABEL + TILE + 2 * (LABEL + TILE), 8 * (TILE + GAP), 3)
    # The header shows the driver's own frame at each moment.
    frames, _ = read_video(talking_video, max_frames=30)
    for column, (_, index) in enumerate(drv.moments, start=1):
        x = column * (TILE + GAP)
        cell = grid[2 * LABEL : 2 * LABEL + TILE, x : x + TILE].astype(int)
        assert np.abs(cell - square_crop(frames[index], TILE)).mean() < 1.0
    # The greyscale portrait's row starts with the portrait itself, still grey.
    y = 2 * LABEL + TILE + LABEL + TILE + LABEL
    still = grid[y : y + TILE, :TILE].astype(int)
    assert np.abs(still[..., 0] - still[..., 2]).max() <= 2
    again, _ = build_sheet(config, [grey], [talking_video], frames=30, tile=TILE)
    assert np.array_equal(again, np.vstack([grid[: 2 * LABEL + TILE], grid[y - LABEL :]])), "deterministic"


def test_sheet_command_writes_png(tmp_path: Path, talking_video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sheet.png"
    args = ["sheet", "--portraits", str(default_avatar_path()), "--driver", str(talking_video)]
    assert main([*args, "--frames", "10", "--tile", str(TILE), "--size", "128", "--out", str(out)]) == 0
    assert cv2.imread(str(out)).shape == (2 * LABEL + TILE + LABEL + TILE, 8 * (TILE + GAP), 3)
    assert "talking: first #" in capsys.readouterr().out
