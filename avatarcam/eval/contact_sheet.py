"""`avatarcam sheet`: the hard moments of driver clips on a set of hard portraits, as one PNG grid.

Rows are portraits (the portrait itself first), columns the moments picked from each driver's tracked landmarks
(first frame, mouth widest open, brows highest, widest grimace, head turned furthest each way, eyes most shut);
the top row shows the driver at each moment. Every avatar frame comes out of the same stages as `avatarcam render`,
run over the clip in order up to the moment, so filters and references are as in a real run. Deterministic: run it
at two commits to compare.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarcam.avatar import AvatarError, list_avatars, load_avatar, square_crop
from avatarcam.config import Config
from avatarcam.eval.metrics import motion_signals
from avatarcam.eval.sidebyside import label_strip
from avatarcam.render import animate_frames, video_frames
from avatarcam.stages.chain import motion_chain
from avatarcam.tracking.tracker import Tracker
from avatarcam.types import Avatar

log = logging.getLogger(__name__)

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
# The default rows, under SHARED_DATA: a clean colour portrait, then the cases that broke before.
HARD_CASES = (
    "portraits/lia_taylor.png",  # colour, frontal: the reference row
    "portraits/lia_monroe.png",  # greyscale: must stay grey, mouth included
    "portraits/tpsmm_source.png",  # grinning, teeth showing
    "portraits_lowq/0500.png",  # low quality, wide grin
    "portraits_lowq/0717.png",  # glasses, grin
    "portraits_lowq/Solvay_conference_1927_0018.png",  # beard, old photo
    "portraits_lowq/0763.png",  # low resolution, blurred
    "portraits_lowq/0444.png",  # head turned 25°
)
TILE = 192
GAP = 2  # black pixels between columns


def pick_moments(signals: Sequence[dict[str, float] | None]) -> list[tuple[str, int]]:
    """(moment, frame index) from per-frame sheet_signals (None: no face): the first frame with a face, the mouth
    widest open, the brows highest, the widest grimace, the head turned furthest to the image's left (lowest yaw)
    and right (highest), the eyes least open. Ties go to the earliest frame."""
    found = {i: s for i, s in enumerate(signals) if s is not None}
    if not found:
        raise ValueError("no face tracked in the driver's frames")

    def extreme(key: str, sign: float) -> int:
        return max(found, key=lambda i: sign * found[i][key])  # max keeps the first of equal frames

    return [
        ("first", min(found)),
        ("mouth open", extreme("mouth", 1.0)),
        ("brows up", extreme("brows", 1.0)),
        ("grimace", extreme("width", 1.0)),
        ("turn left", extreme("yaw", -1.0)),
        ("turn right", extreme("yaw", 1.0)),
        ("eyes shut", extreme("eyes", -1.0)),
    ]


def sheet_signals(lm: np.ndarray) -> dict[str, float]:
    """motion_signals, plus the two an expressive driver breaks a face with, in inter-ocular distances: how high
    the brows stand over the upper lids, and how wide the mouth is from corner to corner (a grin or a grimace)."""
    signals = motion_signals(lm)
    iod = float(np.linalg.norm(lm[33] - lm[263]))
    brows = (np.linalg.norm(lm[105] - lm[159]) + np.linalg.norm(lm[334] - lm[386])) / 2.0
    return {**signals, "brows": float(brows) / iod, "width": float(np.linalg.norm(lm[61] - lm[291])) / iod}


@dataclass
class DriverMoments:
    name: str
    path: Path
    moments: list[tuple[str, int]]
    tiles: list[np.ndarray]  # the driver's frame at each moment, tile²


def track_driver(config: Config, path: Path, frames: int, tile: int) -> DriverMoments:
    """Tracks the first `frames` frames with the render path's tracker and picks the moments."""
    stream, _ = video_frames(path, frames)
    tracker = Tracker(config.tracker)
    signals: list[dict[str, float] | None] = []
    thumbs: list[np.ndarray] = []  # every frame small: the moments are only known at the end
    try:
        for frame in stream:
            face = tracker(frame)
            signals.append(sheet_signals(face.xy) if face is not None else None)
            thumbs.append(square_crop(frame.image, tile))
    finally:
        tracker.close()
    moments = pick_moments(signals)
    return DriverMoments(path.stem, path, moments, [thumbs[i] for _, i in moments])


def render_moments(config: Config, avatar: Avatar, driver: DriverMoments, tile: int) -> list[np.ndarray]:
    """The avatar at each of the driver's moments, rendering the clip in order up to the last of them."""
    wanted = {i for _, i in driver.moments}
    stream, _ = video_frames(driver.path, max(wanted) + 1)
    chain = motion_chain(config)
    picked: dict[int, np.ndarray] = {}
    try:
        for index, image in enumerate(animate_frames(chain, avatar, stream)):
            if index in wanted:
                picked[index] = square_crop(image, tile)
    finally:
        chain.close()
    return [picked[i] for _, i in driver.moments]


def _cell(labels: Sequence[str], image: np.ndarray | None, tile: int) -> np.ndarray:
    """Label strip(s) over a tile (black when there is no image), with a gap on its right."""
    body = np.zeros((tile, tile, 3), np.uint8) if image is None else image
    cell = np.vstack([*(label_strip(text, tile) for text in labels), body])
    return np.pad(cell, ((0, 0), (0, GAP), (0, 0)))


def expand_portraits(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders as their sorted images."""
    out: list[Path] = []
    for path in map(Path, paths):
        out.extend(list_avatars(path) if path.is_dir() else [path])
    return out


def build_sheet(
    config: Config, portraits: Sequence[str | Path], drivers: Sequence[str | Path], frames: int = 300, tile: int = TILE
) -> tuple[np.ndarray, list[DriverMoments]]:
    """The RGB grid and the moments each driver gave. Portraits that cannot be animated are left out (logged)."""
    tracked = [track_driver(config, Path(d), frames, tile) for d in drivers]
    header = [_cell(["driver", "portrait"], None, tile)]
    for drv in tracked:
        header += [_cell([drv.name, f"{m} #{i}"], t, tile) for (m, i), t in zip(drv.moments, drv.tiles, strict=True)]
    rows = [np.hstack(header)]
    for path in expand_portraits(portraits):
        try:
            avatar = load_avatar(path, config.animator.size)
        except AvatarError as exc:
            log.warning("sheet: %s left out: %s", path, exc)
            continue
        outputs = [frame for drv in tracked for frame in render_moments(config, avatar, drv, tile)]
        still = square_crop(avatar.image, tile)
        row = [_cell([path.stem], still, tile), *(_cell([""], out, tile) for out in outputs)]
        rows.append(np.hstack(row))
    return np.vstack(rows), tracked
