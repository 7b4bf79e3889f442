"""Offline rendering: the live stages over a driver video, exactly one output frame per driver frame."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from avatarcam.config import Config
from avatarcam.io.sources import SourceError, VideoFileSource
from avatarcam.stages import FrameStages, StageTimes
from avatarcam.types import Avatar, Frame


@dataclass
class RenderResult:
    frames: int
    fps: float  # the driver's frame rate, which the output keeps
    seconds: float
    errors: int
    times: StageTimes
    stopped: bool = False  # interrupted (Ctrl+C, SIGTERM, SIGHUP): the file is whole but ends early

    @property
    def render_fps(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def animate_frames(stages: FrameStages, frames: Iterator[Frame]) -> Iterator[np.ndarray]:
    """One avatar image per driver frame (a failed frame repeats the last good output)."""
    for frame in frames:
        yield stages(frame)


def video_frames(path: str | Path, max_frames: int | None = None) -> tuple[Iterator[Frame], VideoFileSource]:
    source = VideoFileSource(path, loop=False, realtime=False)

    def frames() -> Iterator[Frame]:
        served = 0
        try:
            while max_frames is None or served < max_frames:
                frame = source.read()
                if frame is None:
                    return
                served += 1
                yield frame
        finally:
            source.close()

    return frames(), source


def render_video(
    config: Config,
    avatar: Avatar,
    driver: str | Path,
    out: str | Path,
    max_frames: int | None = None,
    progress: bool = True,
) -> RenderResult:
    frames, source = video_frames(driver, max_frames)
    total = source.frame_count or None
    if max_frames is not None and total is not None:
        total = min(total, max_frames)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    size = avatar.size
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), source.fps, (size, size))
    if not writer.isOpened():
        raise OSError(f"cannot write video {out}")
    stages = FrameStages(config, avatar)
    count = 0
    stopped = False
    start = time.perf_counter()
    try:
        for image in tqdm(
            animate_frames(stages, frames), total=total, desc="render", unit="frame", disable=not progress
        ):
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            count += 1
    except KeyboardInterrupt:
        stopped = True  # the writer is still released below: what was rendered stays playable
    finally:
        writer.release()
        stages.close()
    if source.unreadable:
        # One output frame per driver frame is the contract: a render with frames missing is not one.
        out.unlink(missing_ok=True)
        raise SourceError(
            f"the driver {source.path.name} is damaged: {source.unreadable} of its {source.frame_count} frames "
            f"cannot be decoded (the first is frame {count + 1}); repair or re-encode it"
        )
    return RenderResult(count, source.fps, time.perf_counter() - start, stages.errors, stages.times, stopped)
