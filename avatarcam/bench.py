"""Speed benchmarks: per-stage median/p95, offline throughput, the stage chain run in sequence and pipelined over
the same frames, live capture→send latency in both modes, and the live loop with a background fine-tune or with
an attribute edit on."""

from __future__ import annotations

import os
import platform
import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from avatarcam.animators import draws_portrait
from avatarcam.animators.talking_head.animator import FINETUNE_JOB
from avatarcam.audio.engine import use_backend
from avatarcam.audio.simulated import SimulatedSoundCard, voiced_syllables
from avatarcam.avatar import default_avatar_path, load_avatar
from avatarcam.config import ChainConfig, Config
from avatarcam.demo import default_demo
from avatarcam.edits.editor import AttributeEditor
from avatarcam.io.sinks import NullSink
from avatarcam.io.sources import NoCameraSource, Source, VideoFileSource
from avatarcam.pipeline import LivePipeline
from avatarcam.render import animate_frames, video_frames
from avatarcam.runtime.background import BackgroundJob
from avatarcam.stages import Packet
from avatarcam.stages.chain import Chain, StageTimes, build_stages, motion_chain
from avatarcam.stages.pipelined import PipelinedChain
from avatarcam.switcher import with_edits
from avatarcam.types import Avatar, Frame


@dataclass
class BenchRow:
    what: str
    stages: dict[str, tuple[float, float]]  # stage → (median ms, p95 ms)
    fps: float
    latency: tuple[float, float] | None = None  # live capture→send (p50, p95) ms
    key: str = ""  # which comparison it belongs to: chain-/live- sequential | pipelined, live-finetune


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


def _sized(config: Config, size: int) -> Config:
    return replace(config, animator=replace(config.animator, size=size))


def bench_offline(config: Config, size: int, frames: list[Frame]) -> BenchRow:
    """Track → retarget → animate, one frame after another, as fast as they go."""
    config = _sized(config, size)
    avatar = load_avatar(config.avatar or None, size)
    chain = motion_chain(config)
    for _ in animate_frames(chain, avatar, frames[:10]):  # warm-up: first calls allocate
        pass
    chain.times.samples.clear()
    start = time.perf_counter()
    for _ in animate_frames(chain, avatar, frames):
        pass
    fps = len(frames) / (time.perf_counter() - start)
    chain.close()
    return BenchRow(f"render {size}²", chain.times.summary(), fps)


def bench_throughput(config: Config, frames: list[Frame], pipelined: bool) -> BenchRow:
    """The whole chain (compose included) over `frames`, losing none: in sequence, or pipelined."""
    avatar = load_avatar(config.avatar or None, config.animator.size)
    stages = build_stages(config)
    runner: Chain | PipelinedChain = (
        PipelinedChain(stages, config.chain.split_after, lossless=True) if pipelined else Chain(stages)
    )
    runner.prepare(avatar)
    _through(runner, avatar, frames[:10])  # warm-up
    times_before = {k: len(v) for k, v in runner.times.samples.items()}
    start = time.perf_counter()
    _through(runner, avatar, frames)
    fps = len(frames) / (time.perf_counter() - start)
    times = StageTimes({k: v[times_before.get(k, 0) :] for k, v in runner.times.samples.items()})
    runner.close()
    mode = "pipelined" if pipelined else "sequential"
    out = config.output
    what = f"chain {config.animator.size}² → {out.width}×{out.height}, {mode}"
    return BenchRow(what, times.summary(), fps, key=f"chain-{mode}")


def _through(runner: Chain | PipelinedChain, avatar: Avatar, frames: list[Frame]) -> None:
    """Every frame through the runner and out again (a lossless pipelined runner gives back each one)."""
    if isinstance(runner, Chain):
        for frame in frames:
            runner(Packet(frame, avatar))
        return
    feeder = threading.Thread(target=lambda: [runner.put(Packet(frame, avatar)) for frame in frames], daemon=True)
    feeder.start()
    for _ in frames:
        if runner.get(timeout=30.0) is None:
            raise RuntimeError("the pipelined stages stopped handing frames back")
    feeder.join(timeout=5.0)


def bench_live(
    config: Config,
    seconds: float,
    driver: str | None,
    source: Source | None = None,
    avatar: Avatar | None = None,
    key: str = "",
    label: str = "",
) -> BenchRow:
    """The live loop for `seconds` on the driver video (default: demo motion), or on `source`."""
    if source is None:
        source = VideoFileSource(driver, loop=True, realtime=True) if driver else default_demo(fps=config.output.fps)
    avatar = avatar or load_avatar(config.avatar or None, config.animator.size)
    pipeline = LivePipeline(config, source, NullSink(), avatar)
    stats = pipeline.run(max_seconds=seconds)
    pipeline.close()
    source.close()
    lat = np.asarray(stats.latencies_ms)[15:]  # skip start-up
    mode = "pipelined" if config.chain.pipelined else "sequential"
    out = config.output
    what = f"live {config.animator.size}² → {out.width}×{out.height}, {mode}" + (f", {label}" if label else "")
    return BenchRow(
        what,
        pipeline.times.summary(),
        stats.fps,
        (float(np.percentile(lat, 50)), float(np.percentile(lat, 95))) if lat.size else None,
        key or f"live-{mode}",
    )


def bench_with_edit(config: Config, seconds: float, driver: str | None, edit: str) -> BenchRow:
    """The live loop on the avatar with attribute `edit` on, as a hotkey leaves it: the portrait edited once (the
    warp, the talking head), or every frame by the edit stage (the face swap)."""
    neutral = load_avatar(config.avatar or None, config.animator.size)
    editor = AttributeEditor(config.edits.precision, config.edits.threads)
    avatar = with_edits(neutral, config.animator.size, editor, {edit: 1.0}, draws_portrait(config.animator.name))
    return bench_live(config, seconds, driver, avatar=avatar, key="live-edit", label=f"edit {edit}")


def bench_with_audio(config: Config, seconds: float, driver: str | None, voice_only: bool) -> BenchRow:
    """The live loop with sound on (a simulated card: a voice-like microphone, a loopback output), the voice
    passed through delayed; `voice_only`: no camera, the voice drives the mouth on every frame."""
    config = replace(config, audio=replace(config.audio, enabled=True))
    card = SimulatedSoundCard(voiced_syllables(seconds + 10.0))
    card.run_in_real_time()
    try:
        with use_backend(card):
            if not voice_only:
                return bench_live(config, seconds, driver, key="live-audio", label="audio on")
            config = replace(config, source=replace(config.source, kind="audio"))
            return bench_live(
                config,
                seconds,
                None,
                NoCameraSource(config.output.fps),
                key="live-voice",
                label="no camera, the voice drives the mouth",
            )
    finally:
        card.stop()


def bench_with_finetune(config: Config, seconds: float, driver: str | None) -> BenchRow:
    """The live loop while a talking-head fine-tune runs as the background job a new portrait starts."""
    avatar = config.avatar or str(default_avatar_path())
    job = BackgroundJob(FINETUNE_JOB, [avatar, "--steps", "100000"])
    try:
        time.sleep(3.0)  # past its start-up, into training
        return bench_live(config, seconds, driver, key="live-finetune", label="fine-tune running")
    finally:
        job.kill()


def run_bench(
    config: Config,
    sizes: list[int],
    frames: int,
    live_seconds: float,
    driver: str | None,
    background: bool = False,
    edit: str | None = None,
    audio: bool = False,
) -> list[BenchRow]:
    # The animator's own background fine-tune stays off: the fine-tune row starts one on purpose.
    talking_head = replace(config.animator.talking_head, finetune=False)
    config = replace(config, animator=replace(config.animator, talking_head=talking_head))
    if driver:
        iterator, _ = video_frames(driver, frames)
        driver_frames = list(iterator)
    else:
        driver_frames = _demo_frames(frames)
    rows = [bench_offline(config, size, driver_frames) for size in sizes]
    rows += [bench_throughput(config, driver_frames, pipelined) for pipelined in (False, True)]
    if live_seconds > 0:
        for pipelined in (False, True):
            mode = replace(config, chain=replace(config.chain, pipelined=pipelined))
            rows.append(bench_live(mode, live_seconds, driver))
        if background:
            rows.append(bench_with_finetune(config, live_seconds, driver))
        if edit:
            rows.append(bench_with_edit(config, live_seconds, driver, edit))
        if audio:
            rows += [bench_with_audio(config, live_seconds, driver, voice_only) for voice_only in (False, True)]
    return rows


def format_rows(rows: list[BenchRow]) -> str:
    order = list(ChainConfig().stages)  # the frame path's own order
    stages = sorted({s for r in rows for s in r.stages}, key=lambda s: order.index(s) if s in order else len(order))
    head = "| run | " + " | ".join(f"{s} ms (p50 / p95)" for s in stages) + " | fps | capture→send ms (p50 / p95) |"
    lines = [head, "|" + "---|" * (len(stages) + 3)]
    for r in rows:
        cells = [f"{r.stages[s][0]:.1f} / {r.stages[s][1]:.1f}" if s in r.stages else "" for s in stages]
        lat = f"{r.latency[0]:.1f} / {r.latency[1]:.1f}" if r.latency else "–"
        lines.append(f"| {r.what} | " + " | ".join(cells) + f" | {r.fps:.0f} | {lat} |")
    return "\n".join(lines)


def ratios(rows: list[BenchRow]) -> list[str]:
    """Pipelined over sequential (throughput, and live p95 latency), and the live fps kept under a fine-tune."""
    by = {r.key: r for r in rows if r.key}
    said = []
    seq, pipe = by.get("chain-sequential"), by.get("chain-pipelined")
    if seq and pipe:
        said.append(f"pipelined throughput: {pipe.fps / seq.fps:.2f}× the sequential chain's")
    live_seq, live_pipe = by.get("live-sequential"), by.get("live-pipelined")
    if live_seq and live_pipe and live_seq.latency and live_pipe.latency:
        said.append(f"live p95 latency, pipelined − sequential: {live_pipe.latency[1] - live_seq.latency[1]:+.1f} ms")
    tuned = by.get("live-finetune")
    if tuned and live_pipe:
        said.append(f"live fps with a background fine-tune: {tuned.fps / live_pipe.fps:.0%} of without")
    edited = by.get("live-edit")
    if edited and live_pipe:
        said.append(f"live fps with an attribute edit on: {edited.fps / live_pipe.fps:.0%} of without")
    for key in ("live-audio", "live-voice"):
        row = by.get(key)
        if row:
            cost = sum(row.stages.get(s, (0.0, 0.0))[0] for s in ("voice", "audio"))
            worst = sum(row.stages.get(s, (0.0, 0.0))[1] for s in ("voice", "audio"))
            said.append(f"{row.what}: the voice and audio stages cost {cost:.3f} ms a frame (p95 {worst:.3f})")
    return said
