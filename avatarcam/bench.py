"""Speed benchmarks: per-stage median/p95, offline throughput, and live capture→send latency."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import numpy as np

from avatarcam.avatar import load_avatar
from avatarcam.config import Config
from avatarcam.io.demo import default_demo
from avatarcam.io.sinks import NullSink
from avatarcam.io.sources import Source, VideoFileSource
from avatarcam.pipeline import LivePipeline
from avatarcam.render import animate_frames, video_frames
from avatarcam.stages import FrameStages
from avatarcam.types import Frame


@dataclass
class BenchRow:
    what: str
    stages: dict[str, tuple[float, float]]  # stage → (median ms, p95 ms)
    fps: float
    latency: tuple[float, float] | None = None  # live capture→send (p50, p95) ms


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:  # Linux names the model only here
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def _demo_frames(count: int) -> list[Frame]:
    demo = default_demo(realtime=False)
    return [demo.read() for _ in range(count)]


def bench_offline(config: Config, size: int, frames: list[Frame]) -> BenchRow:
    config.animator.size = size
    stages = FrameStages(config, load_avatar(config.avatar or None, size))
    for _ in animate_frames(stages, iter(frames[:10])):  # warm-up: first calls allocate
        pass
    stages.times.samples.clear()
    start = time.perf_counter()
    for _ in animate_frames(stages, iter(frames)):
        pass
    fps = len(frames) / (time.perf_counter() - start)
    stages.close()
    return BenchRow(f"render {size}²", stages.times.summary(), fps)


def bench_live(config: Config, seconds: float, driver: str | None) -> BenchRow:
    source: Source
    if driver:
        source = VideoFileSource(driver, loop=True, realtime=True)
    else:
        source = default_demo(fps=config.output.fps)
    stages = FrameStages(config, load_avatar(config.avatar or None, config.animator.size))
    pipeline = LivePipeline(config, source, NullSink(), stages)
    stats = pipeline.run(max_seconds=seconds)
    pipeline.close()
    source.close()
    stages.close()
    lat = np.asarray(stats.latencies_ms)[15:]  # skip start-up
    return BenchRow(
        f"live {config.animator.size}² → {config.output.width}×{config.output.height}",
        stages.times.summary(),
        stats.fps,
        (float(np.percentile(lat, 50)), float(np.percentile(lat, 95))),
    )


def run_bench(config: Config, sizes: list[int], frames: int, live_seconds: float, driver: str | None) -> list[BenchRow]:
    # A background fine-tune would share the cores with the frames being timed; its result runs at the same speed.
    config.animator.finetune = False
    if driver:
        iterator, _ = video_frames(driver, frames)
        driver_frames = list(iterator)
    else:
        driver_frames = _demo_frames(frames)
    rows = [bench_offline(config, size, driver_frames) for size in sizes]
    if live_seconds > 0:
        rows.append(bench_live(config, live_seconds, driver))
    return rows


def format_rows(rows: list[BenchRow]) -> str:
    stages = sorted({s for r in rows for s in r.stages}, key=["track", "retarget", "animate"].index)
    head = "| run | " + " | ".join(f"{s} ms (p50 / p95)" for s in stages) + " | fps | capture→send ms (p50 / p95) |"
    lines = [head, "|" + "---|" * (len(stages) + 3)]
    for r in rows:
        cells = [f"{r.stages[s][0]:.1f} / {r.stages[s][1]:.1f}" if s in r.stages else "" for s in stages]
        lat = f"{r.latency[0]:.1f} / {r.latency[1]:.1f}" if r.latency else "–"
        lines.append(f"| {r.what} | " + " | ".join(cells) + f" | {r.fps:.0f} | {lat} |")
    return "\n".join(lines)
