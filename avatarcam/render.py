"""Offline rendering: the live stage chain over a driver video, exactly one output frame per driver frame."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avatarcam.config import Config
from avatarcam.io.sinks import RecorderSink, SinkError
from avatarcam.io.sources import SourceError, VideoFileSource
from avatarcam.stages import Packet
from avatarcam.stages.chain import Chain, StageTimes, build_stages
from avatarcam.stages.sink import SinkStage
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


def animate_frames(chain: Chain, avatar: Avatar, frames: Iterable[Frame]) -> Iterator[np.ndarray]:
    """One picture per driver frame through `chain` (a failed frame repeats the last good picture)."""
    for frame in frames:
        image = chain(Packet(frame, avatar)).image
        assert image is not None
        yield image


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
    """The configured stage chain over a driver video into an mp4 of the avatar's size, through the recorder
    sink the live runs use."""
    frames, source = video_frames(driver, max_frames)
    total = source.frame_count or None
    if max_frames is not None and total is not None:
        total = min(total, max_frames)
    size = avatar.size
    config = replace(config, output=replace(config.output, width=size, height=size))  # the square, composed
    try:
        recorder = RecorderSink(out, source.fps, size, size)
    except SinkError as exc:
        source.close()
        raise OSError(exc.reason) from None
    chain = Chain(build_stages(config))
    sink = SinkStage([recorder])
    count = 0
    stopped = False
    start = time.perf_counter()
    try:
        for frame in tqdm(frames, total=total, desc="render", unit="frame", disable=not progress):
            sink(chain(Packet(frame, avatar)))
            count += 1
    except KeyboardInterrupt:
        stopped = True  # the recorder is still closed below: what was rendered stays playable
    finally:
        recorder.close()
        chain.close()
    if source.unreadable:
        # One output frame per driver frame is the contract: a render with frames missing is not one.
        recorder.path.unlink(missing_ok=True)
        raise SourceError(
            f"the driver {source.path.name} is damaged: {source.unreadable} of its {source.frame_count} frames "
            f"cannot be decoded (the first is frame {count + 1}); repair or re-encode it"
        )
    errors = sum(chain.errors.values())
    return RenderResult(count, source.fps, time.perf_counter() - start, errors, chain.times, stopped)
