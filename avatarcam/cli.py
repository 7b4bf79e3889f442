"""`avatarcam` command line: run, render, verify, bench, doctor, eval, avatar, train."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

from avatarcam.config import Config, load_config

log = logging.getLogger("avatarcam")


def _config(args: argparse.Namespace, **more: object) -> Config:
    """The settings: defaults, the config file, then the command's flags (and `more`, {"section.key": value})."""
    overrides = {
        "avatar": getattr(args, "avatar", None),
        "avatars_dir": getattr(args, "avatars_dir", None),
        "animator.name": getattr(args, "animator", None),
        "animator.size": getattr(args, "size", None),
        "animator.faceswap.model": getattr(args, "model", None),
        "tracker.backend": "landmarker" if getattr(args, "task_file", None) else None,
        "tracker.task_file": getattr(args, "task_file", None),
        **more,
    }
    return load_config(args.config, overrides)


def _offline(args: argparse.Namespace) -> Config:
    """Offline commands use a cached fine-tune and start none."""
    return _config(args, **{"animator.talking_head.finetune": False})


@contextlib.contextmanager
def _signals_stop() -> Iterator[None]:
    """SIGTERM (`timeout`, a service manager) and SIGHUP (a closed terminal) stop a command as Ctrl+C does, so a
    recording is closed properly (else its mp4 has no index and will not play) and the summary printed. Repeats
    are ignored: they must not cut that closing short."""
    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def stop(signum: int, frame: object) -> None:
        for name in names:
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {name: signal.signal(getattr(signal, name), stop) for name in names}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler if handler is not None else signal.SIG_DFL)


def _run_flags(args: argparse.Namespace) -> dict[str, object]:
    """`run`'s own flags as settings."""
    flags: dict[str, object] = {"source.camera": args.camera, "source.kind": args.source}
    if args.video:
        flags |= {"source.kind": "file", "source.path": args.video}
    if args.out:
        flags |= {"output.path": args.out, "output.sink": args.sink or "file"}
    elif args.sink:
        flags["output.sink"] = args.sink
    if args.no_monitor:
        flags["output.monitor"] = False
    if args.sequential:
        flags["chain.pipelined"] = False
    if args.audio:
        flags["audio.enabled"] = True
    flags |= {"audio.input": args.audio_input, "audio.output": args.audio_output}
    return flags


@_signals_stop()
def cmd_run(args: argparse.Namespace) -> int:
    from avatarcam.audio.engine import running_engine
    from avatarcam.avatar import list_avatars, load_avatar
    from avatarcam.devices import open_monitor, open_sink, open_source
    from avatarcam.hotkeys import Hotkeys
    from avatarcam.io.sinks import RecorderSink
    from avatarcam.io.sources import VideoFileSource
    from avatarcam.pipeline import LivePipeline

    config = _config(args, **_run_flags(args))
    if config.output.sink == "file":  # a recording driven by a file ends with it; looping is for a live camera
        config = replace(config, source=replace(config.source, loop=False))
    paths = list_avatars(config.avatars_dir) if config.avatars_dir else []
    avatar = load_avatar(config.avatar or (paths[0] if paths else None), config.animator.size)
    print(f"avatar: {avatar.name} ({config.animator.name} animator, {avatar.size}²)")
    source, said = open_source(config)
    print(said)
    if isinstance(source, VideoFileSource):  # the output runs on the file's clock: a recording keeps its timing
        config = replace(config, output=replace(config.output, fps=source.fps))
    sink, said = open_sink(config)
    print(said)
    if isinstance(sink, RecorderSink) and isinstance(source, VideoFileSource):
        source.loop = False  # also where `auto` fell back to recording
    monitor, said = open_monitor(config, sink)
    if said:
        print(said)
    hotkeys = Hotkeys(config.hotkeys)
    print(hotkeys.start(config.hotkeys.global_keys and not args.no_global_hotkeys))
    pipeline = LivePipeline(config, source, sink, avatar, paths, hotkeys, monitor)
    if (sound := running_engine()) is not None:
        print(sound.said)
    for stage in pipeline.stages:
        if stage.name in ("watermark", "badge"):  # what the call is told, and how to match a recording to this run
            print(f"{stage.name}: {stage.status}")
    print("running: Ctrl+C (or the quit hotkey) to stop")
    try:
        stats = pipeline.run(max_seconds=args.seconds)
    finally:
        pipeline.close()
        hotkeys.stop()
        source.close()
        sink.close()
        if monitor is not None:
            monitor.close()
    print(
        f"sent {stats.frames} frames at {stats.fps:.1f} fps, latency p50 {stats.latency(50):.0f} ms "
        f"p95 {stats.latency(95):.0f} ms, {pipeline.errors} frame errors"
    )
    if getattr(source, "unreadable", 0):
        print(f"warning: {source.unreadable} frames of {source.name} could not be decoded (a damaged file)")
    return 0


@_signals_stop()
def cmd_render(args: argparse.Namespace) -> int:
    from avatarcam.avatar import load_avatar
    from avatarcam.render import render_video

    config = _offline(args)
    avatar = load_avatar(args.avatar, config.animator.size)
    result = render_video(config, avatar, args.driver, args.out, max_frames=args.frames, progress=not args.quiet)
    print(
        f"wrote {args.out}: {result.frames} frames at {result.fps:.2f} fps, rendered at {result.render_fps:.0f} fps"
        + (f", {result.errors} frames repeated after errors" if result.errors else "")
        + (", stopped before the driver's end" if result.stopped else "")
    )
    return 130 if result.stopped else 0  # what Ctrl+C returns: the render is incomplete


def cmd_bench(args: argparse.Namespace) -> int:
    from avatarcam.bench import format_rows, machine, ratios, run_bench

    config = _config(args)
    rows = run_bench(
        config,
        args.sizes,
        args.frames,
        args.live_seconds,
        args.driver,
        args.with_finetune,
        args.with_edit,
        args.with_audio,
    )
    print(f"machine: {machine()}, animator {config.animator.name}")
    print(format_rows(rows))
    for line in ratios(rows):
        print(line)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from avatarcam.marks.verify import verify

    key = args.key if args.key is not None else _config(args).marks.watermark_key
    verdict = verify(args.file, key, args.window)
    what = "the image" if verdict.window_frames == 1 else f"{len(verdict.windows)} windows of {args.window:g} s"
    if verdict.payload is None:
        best = max(d.sync_z for d in verdict.windows)
        print(f"not found: no watermark of this key in {what} (strongest sync peak {best:.1f} σ)")
        return 1
    where = "" if verdict.window_frames == 1 else f" in {len(verdict.found)} of {what}"
    print(f"found{where}: {verdict.payload}; confidence {verdict.confidence:.4f}")
    return 0


def cmd_watermark_bench(args: argparse.Namespace) -> int:
    from avatarcam.eval.watermark import clips_of, run_watermark_bench

    clips = clips_of(Path(args.clips), args.limit)
    report = run_watermark_bench(_offline(args), clips, args.frames, progress=not args.quiet)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")
        print(f"wrote {args.out}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from avatarcam.doctor import format_checks, run_doctor

    checks = run_doctor()
    print(format_checks(checks))
    return 0 if all(c.ok or c.optional for c in checks) else 1


def cmd_audio_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from avatarcam.eval.voice import evaluate_voice

    folder = Path(args.clips)
    clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm"))
    if not clips:
        print(f"error: no video clips in {folder}")
        return 2
    results = evaluate_voice(clips, progress=not args.quiet)
    print("| clip | frames tracked | correlation | best within ±0.2 s (shift ms) |\n|---|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.clip} | {r.tracked}/{r.frames} | {r.correlation:.2f} | {r.best_correlation:.2f} "
            f"({r.best_shift_ms:+.0f}) |"
        )
    values = np.array([r.correlation for r in results])
    if values.size:
        print(
            f"{len(results)} clips with sound: correlation median {np.nanmedian(values):.2f}, "
            f"mean {np.nanmean(values):.2f}, clips ≥ 0.5: {int(np.sum(values >= 0.5))}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


def cmd_audio_sheet(args: argparse.Namespace) -> int:
    from avatarcam.avatar import save_image
    from avatarcam.eval.contact_sheet import HARD_CASES, SHARED_DATA, expand_portraits
    from avatarcam.eval.voice import voice_sheet

    portraits = expand_portraits(args.portraits) if args.portraits else [SHARED_DATA / p for p in HARD_CASES]
    save_image(args.out, voice_sheet(portraits))
    print(f"wrote {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from avatarcam.eval.runner import run_eval

    config = _config(args)
    report = run_eval(
        config,
        args.clips,
        args.animators,
        args.portraits,
        args.frames,
        args.size,
        args.limit,
        args.out,
        args.showcase,
        args.clip_list,
        args.finetune,
    )
    print(report.markdown())
    if args.out:
        print(f"\nwrote {args.out}/results.md, per_clip.json and side-by-side images")
    return 0


def cmd_sheet(args: argparse.Namespace) -> int:
    from avatarcam.avatar import save_image
    from avatarcam.eval.contact_sheet import HARD_CASES, SHARED_DATA, build_sheet

    config = _offline(args)
    portraits = args.portraits or [SHARED_DATA / case for case in HARD_CASES]
    grid, drivers = build_sheet(config, portraits, args.driver, args.frames, args.tile)
    save_image(args.out, grid)
    for drv in drivers:
        print(f"{drv.name}: " + ", ".join(f"{name} #{index}" for name, index in drv.moments))
    print(f"wrote {args.out} ({grid.shape[1]}×{grid.shape[0]})")
    return 0


def cmd_avatar_check(args: argparse.Namespace) -> int:
    from avatarcam.avatar import load_avatar
    from avatarcam.tracking.geometry import euler_degrees

    avatar = load_avatar(args.portrait, args.size)
    yaw, pitch, roll = euler_degrees(avatar.face.rotation)
    print(
        f"{avatar.name}: face found, {avatar.size}², yaw {yaw:.0f}°, pitch {pitch:.0f}°, roll {roll:.0f}°, "
        f"key {avatar.key}"
    )
    return 0


def cmd_train_canonical(args: argparse.Namespace) -> int:
    from avatarcam.tracking.canonical import write_canonical

    out = Path(args.out)
    count = write_canonical(Path(args.clips), out)
    print(f"wrote {out} from {count} clips")
    return 0


def cmd_train_data_talking_head(args: argparse.Namespace) -> int:
    from avatarcam.train.talking_head.data import DataSettings, build_cache

    settings = DataSettings(frames_per_clip=args.frames, stills=args.max_stills)
    summary = build_cache(args.clips, args.out, args.stills, settings)
    print(
        f"wrote {args.out}: {len(summary['clips'])} clips, {summary['stills']} still faces; "
        f"held out for evaluation: {len(summary['holdout'])} clips (listed in {args.out}/holdout.txt)"
    )
    return 0


def cmd_train_data_attributes(args: argparse.Namespace) -> int:
    from avatarcam.train.stargan.data import DEFAULT_TASK_FILE, build_attribute_cache

    summary = build_attribute_cache(
        args.faces,
        args.out,
        size=args.size,
        limit=args.limit,
        progress=not args.quiet,
        celeba=tuple(args.celeba) if args.celeba else None,
        attributes=args.attributes,
        task_file=args.task_file or DEFAULT_TASK_FILE,
    )
    counts = ", ".join(f"{name} {n}" for name, n in summary["counts"]["all"].items())
    skipped = ", ".join(f"{why.replace('_', ' ')}: {n}" for why, n in summary["skipped"].items() if n) or "none"
    print(
        f"wrote {args.out}: {summary['faces_cached']} faces at {summary['size']}² ({summary['train']} to train on, "
        f"{summary['judge']} for the judge, {summary['holdout_count']} held out); labelled {counts}; "
        f"skipped: {skipped}; smiling labelled by: {summary['labeller']} (details in {args.out}/summary.json)"
    )
    return 0


def cmd_train_talking_head(args: argparse.Namespace) -> int:
    from avatarcam.train.talking_head.meta_train import WEIGHTS, TrainSettings, train

    settings = TrainSettings(steps=args.steps, batch=args.batch, shots=args.shots, threads=args.threads)
    losses = train(args.cache, args.out, settings, progress=not args.quiet)
    if losses:
        print(f"wrote {args.out}/{WEIGHTS}; last losses: " + ", ".join(f"{k} {v:.3f}" for k, v in losses.items()))
    return 0


def cmd_avatar_edit(args: argparse.Namespace) -> int:
    from avatarcam.avatar import read_image, save_image
    from avatarcam.edits.editor import AttributeEditor, parse_edits, portrait_edit

    edits = parse_edits(args.set)
    editor = AttributeEditor(args.precision)
    editor.check(edits)  # before any image work: a wrong name or strength says so at once
    save_image(args.out, portrait_edit(editor, edits)(read_image(args.portrait)))
    print(f"wrote {args.out}: {', '.join(f'{k}={v:g}' for k, v in edits.items())}")
    return 0


def cmd_avatar_edits_eval(args: argparse.Namespace) -> int:
    from avatarcam.train.stargan.data import SHARED
    from avatarcam.train.stargan.evaluate import evaluate_edits

    weights = Path(args.weights) if args.weights else None
    portraits = [Path(p) for p in args.portraits] if args.portraits else [SHARED / "data" / "portraits"]
    report = evaluate_edits(Path(args.cache), portraits, Path(args.out), weights, args.precision)
    print(
        json.dumps(
            {k: v for k, v in report.items() if k != "portraits"}
            | {"portraits": {k: v for k, v in report["portraits"].items() if k != "per_portrait"}},
            indent=1,
        )
    )
    print(f"wrote {args.out}/edits_eval.json and {args.out}/edits_grid.png")
    return 0


def cmd_avatar_add(args: argparse.Namespace) -> int:
    from avatarcam.avatar import load_avatar
    from avatarcam.train.talking_head.data import FRAME_SIZE
    from avatarcam.train.talking_head.finetune import FineTuneSettings, finetune

    avatar = load_avatar(args.portrait, FRAME_SIZE)  # refuses a portrait it cannot use before any training
    settings = FineTuneSettings(steps=args.steps, threads=args.threads)
    result = finetune(avatar, settings, progress=not args.quiet)
    print(
        f"{avatar.name}: fine-tuned in {result.seconds:.0f} s (round-trip L1 {result.l1_before:.4f} → "
        f"{result.l1_after:.4f}); cached in {result.folder}"
    )
    return 0


def cmd_export_talking_head(args: argparse.Namespace) -> int:
    from avatarcam.train.talking_head.export import calibration_feeds, export_all, load_networks
    from avatarcam.train.talking_head.meta_train import WEIGHTS

    checkpoint = _run_checkpoint(args.run, WEIGHTS, "talking-head")
    model, _ = load_networks(checkpoint)
    feeds = calibration_feeds(Path(args.cache), model)
    check = export_all(checkpoint, Path(args.out), feeds, {"steps": args.steps_note} if args.steps_note else {})
    print(
        f"exported to {args.out}; int8 vs fp32 on real inputs: mean {check['mean']:.4f}, p99 {check['p99']:.4f}, "
        f"max {check['max']:.4f}"
    )
    return 0


def cmd_faceswap_extract(args: argparse.Namespace) -> int:
    from avatarcam.train.faceswap.extract import ExtractSettings, extract

    settings = ExtractSettings(size=args.size, every=args.every, max_faces=args.max)
    report = extract(args.source, args.out, settings, progress=not args.quiet)
    print(f"{args.out}: {report.summary()}")
    return 0 if report.kept else 1


def cmd_faceswap_record(args: argparse.Namespace) -> int:
    from avatarcam.train.faceswap.extract import ExtractSettings, extract
    from avatarcam.train.faceswap.record import record

    video = record(args.camera, args.seconds, Path(args.out) / "recording.mp4", progress=not args.quiet)
    report = extract(video, args.out, ExtractSettings(size=args.size), progress=not args.quiet)
    print(f"{args.out}: recorded {video.name}; {report.summary()}")
    return 0 if report.kept else 1


def cmd_faceswap_eval(args: argparse.Namespace) -> int:
    from avatarcam.train.faceswap.evaluate import evaluate_swap

    config = _config(args)
    result = evaluate_swap(config, Path(args.driver), Path(args.b_clip), args.start, args.frames, Path(args.out))
    print(json.dumps(result, indent=1))
    return 0


def _attribute_faces(cache: str, split: str, size: int):
    """A split of the attribute cache as uint8 N×3×size×size faces, their labels and the attribute names."""
    from avatarcam.train.stargan.data import AttributeDataset

    data = AttributeDataset(cache, split)
    return data.faces(size), data.labels, data.attributes


def _run_checkpoint(run: str, name: str, command: str) -> Path:
    """The checkpoint `name` in run folder `run`, or a clear error naming the command that makes it."""
    checkpoint = Path(run) / name
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no {name} in {run}: run `avatarcam train {command}` first")
    return checkpoint


def _report_losses(out: str, losses: dict[str, float]) -> int:
    """Rank 0 says where a training run is and its last losses."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{out}: {', '.join(f'{k} {v:.3f}' for k, v in losses.items()) or 'already trained'}")
    return 0


def cmd_train_stargan(args: argparse.Namespace) -> int:
    from avatarcam.train.stargan.train import preset, train_stargan

    settings = preset(args.preset, steps=args.steps, batch=args.batch, threads=args.threads)
    faces, labels, attributes = _attribute_faces(args.cache, "train", settings.size)
    held, held_labels, _ = _attribute_faces(args.cache, "holdout", settings.size)
    losses = train_stargan(
        faces, labels, attributes, args.out, settings, samples=(held[:6], held_labels[:6]), progress=not args.quiet
    )
    return _report_losses(args.out, losses)


def cmd_export_stargan(args: argparse.Namespace) -> int:
    from avatarcam.train.stargan.export import export_stargan, load_networks

    checkpoint = _run_checkpoint(args.run, "stargan.pt", "stargan")
    *_, size = load_networks(checkpoint)
    faces, labels, _ = _attribute_faces(args.cache, "holdout", size)
    fields = {
        "model": "stargan",
        "data": "../shared/data/faces/utkface (the train split: 7 faces in 10 by a hash of the file name)",
        "licence": UTKFACE_LICENCE,
        "rebuild": REBUILD_STARGAN,
    }
    check = export_stargan(checkpoint, Path(args.out), faces[:64].numpy(), labels[:64].numpy(), fields)
    print(f"exported to {args.out}: {check}")
    return 0


def cmd_train_stylegan(args: argparse.Namespace) -> int:
    from avatarcam.train.stylegan.train import preset, train_stylegan, training_faces

    settings = preset(args.preset, steps=args.steps, batch=args.batch, threads=args.threads)
    faces = training_faces(args.cache, settings.resolution, settings.crop)
    losses = train_stylegan(faces, args.out, settings, progress=not args.quiet)
    return _report_losses(args.out, losses)


def cmd_train_dcgan(args: argparse.Namespace) -> int:
    from avatarcam.identities.generator import IdentityGenerator
    from avatarcam.train.common import start_run
    from avatarcam.train.stylegan.dcgan import train_dcgan
    from avatarcam.train.stylegan.train import training_faces

    # The identity generator's faces, framed and sized as it learned them.
    generator = IdentityGenerator(folder=Path(args.weights) if args.weights else None)
    seconds = args.seconds or generator.train_seconds
    if not seconds or seconds <= 0:
        raise ValueError("give --seconds: a positive compute time (these weights do not say how long they trained)")
    _, _, _, out = start_run(args.out, args.threads, 0)
    size, crop = generator.resolution, generator.crop
    gen = train_dcgan(training_faces(args.cache, size, crop), out, seconds, progress=not args.quiet)
    params = sum(p.numel() for p in gen.parameters())
    print(f"{out}: DCGAN baseline at {size}², {seconds:.0f} s of compute, {params:,} parameters")
    return 0


def cmd_export_stylegan(args: argparse.Namespace) -> int:
    from avatarcam.train.stylegan.export import export_stylegan

    checkpoint = _run_checkpoint(args.run, "stylegan.pt", "stylegan")
    fields = {
        "model": "stylegan",
        "data": "../shared/data/faces/utkface (all but the held-out split: 9 faces in 10 by a hash of the file name)",
        "licence": UTKFACE_LICENCE,
        "rebuild": REBUILD_STYLEGAN,
    }
    entry = export_stylegan(checkpoint, Path(args.out), fields)
    print(f"exported to {args.out}: {entry['resolution']}², {entry['num_ws']} layers of styles")
    return 0


def cmd_identity_eval(args: argparse.Namespace) -> int:
    from avatarcam.train.stargan.data import SHARED
    from avatarcam.train.stylegan.evaluate import evaluate_identities

    driver = Path(args.driver) if args.driver else SHARED / "data" / "driving" / "lp_d14.mp4"
    weights = Path(args.weights) if args.weights else None
    baseline = Path(args.baseline) if args.baseline else None
    report = evaluate_identities(
        Path(args.cache), driver, Path(args.out), args.samples, args.truncation, weights, baseline
    )
    print(json.dumps(report, indent=1))
    print(f"wrote {args.out}/identities_eval.json and {args.out}/mixing.png")
    return 0


UTKFACE_LICENCE = "non-commercial research (UTKFace: non-commercial research)"
REBUILD_STYLEGAN = (
    "avatarcam train data attributes --faces ../shared/data/faces/utkface --out CACHE && "
    "avatarcam train stylegan --cache CACHE --out RUN && avatarcam export stylegan --run RUN"
)


def cmd_identity_new(args: argparse.Namespace) -> int:
    from avatarcam.avatar import save_image
    from avatarcam.identities.generator import IdentityGenerator, as_portrait

    generator = IdentityGenerator()
    face = generator.face(args.seed, args.truncation, args.mix, args.levels)
    save_image(args.out, as_portrait(face, args.size))
    mixed = f", {args.levels} layers from seed {args.mix}" if args.mix is not None else ""
    print(f"wrote {args.out}: identity {args.seed} (ψ {args.truncation:g}{mixed})")
    return 0


REBUILD_STARGAN = (
    "avatarcam train data attributes --faces ../shared/data/faces/utkface --out CACHE && "
    "avatarcam train stargan --cache CACHE --out RUN && avatarcam export stargan --run RUN --cache CACHE"
)


def cmd_train_faceswap(args: argparse.Namespace) -> int:
    from avatarcam.animators.faceswap.store import model_dir
    from avatarcam.train.faceswap.export import export_swap
    from avatarcam.train.faceswap.faceset import FaceSet
    from avatarcam.train.faceswap.train import SwapTrainSettings, train_faceswap

    settings = SwapTrainSettings(size=args.size, steps=args.steps, batch=args.batch, threads=args.threads)
    folder = model_dir(args.name)
    losses = train_faceswap(args.a, args.b, folder, settings, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        check = export_swap(folder, FaceSet(args.a))
        int8 = check.get("int8") if not check.get("int8_dropped") else None
        exported = f"int8 (mean error {int8['mean']:.4f}) and fp32" if int8 else "fp32 (int8 too far from it)"
        trained = ", ".join(f"{k.upper()} {v:.4f}" for k, v in losses.items()) or "already trained"
        print(f"model {args.name} in {folder}: losses {trained}; exported {exported}")
    return 0


def cmd_export_faceswap(args: argparse.Namespace) -> int:
    from avatarcam.animators.faceswap.store import model_dir
    from avatarcam.train.faceswap.export import export_swap
    from avatarcam.train.faceswap.faceset import FaceSet

    folder = model_dir(args.model)
    check = export_swap(folder, FaceSet(args.a) if args.a else None)
    print(f"exported {folder}: {check}")
    return 0


def training_options(p: argparse.ArgumentParser, steps: int | None, batch_help: str, batch: int | None = 8) -> None:
    """What every `train` command takes: total steps (a run resumes up to them), batch, threads, quiet. Steps
    and batch None: the preset's."""
    default = f"default {steps}" if steps is not None else "default: the preset's"
    p.add_argument("--steps", type=int, default=steps, help=f"total steps ({default}; resumes up to them)")
    p.add_argument("--batch", type=int, default=batch, help=batch_help)
    p.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def preset_training_options(p: argparse.ArgumentParser) -> None:
    """A `train` command on the attribute cache with a cpu and a gpu preset (StarGAN, StyleGAN)."""
    p.add_argument("--cache", required=True, help="cache folder from `avatarcam train data attributes`")
    p.add_argument("--out", required=True, help="run folder: checkpoint, sample grids")
    p.add_argument("--preset", choices=["cpu", "gpu"], default="cpu", help="cpu: 64² faces; gpu: 128², wider")
    training_options(p, None, "faces per step (per process; default: the preset's)", batch=None)


def build_parser() -> argparse.ArgumentParser:
    from avatarcam.registry import ANIMATORS

    animator_names = list(ANIMATORS.names())
    parser = argparse.ArgumentParser(
        prog="avatarcam",
        description="Real-time avatar virtual webcam.",
        epilog=f"animators (--animator): {', '.join(animator_names)}; `avatarcam COMMAND --help`: its options",
    )
    parser.add_argument("--config", help="TOML settings file (see README)")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, and the native libraries' own log lines"
    )
    sub = parser.add_subparsers(dest="command")

    def common(p: argparse.ArgumentParser, avatar: bool = True) -> None:
        if avatar:
            p.add_argument("--avatar", help="portrait image (default: the bundled avatar)")
        p.add_argument("--animator", choices=animator_names, help="animator: %(choices)s (default: warp)")
        p.add_argument("--size", type=int, help="avatar size in pixels (square)")
        p.add_argument("--task-file", help="MediaPipe Face Landmarker .task file (blendshapes)")
        p.add_argument("--model", help="face swap model: a name from `train faceswap --name`, or its folder")

    run = sub.add_parser("run", help="live: webcam → avatar → virtual camera (default command)")
    common(run)
    run.add_argument("--avatars-dir", help="folder of portraits for the next/previous hotkeys")
    run.add_argument(
        "--source",
        choices=["auto", "camera", "file", "demo", "audio"],
        help="driver (default: auto); audio: no camera, the voice moves the mouth",
    )
    run.add_argument("--camera", type=int, help="camera index")
    run.add_argument("--video", help="drive from a video file instead of the camera")
    run.add_argument("--sink", choices=["auto", "virtual", "preview", "file", "null"], help="output")
    run.add_argument("--out", help="record the output to this mp4")
    run.add_argument("--seconds", type=float, help="stop after this long")
    run.add_argument("--sequential", action="store_true", help="run the stages in turn on one thread")
    run.add_argument(
        "--audio", action="store_true", help="pass the microphone to the call, delayed to meet the avatar (README)"
    )
    run.add_argument("--audio-input", help="microphone: a device number or part of its name (default: the system's)")
    run.add_argument("--audio-output", help="where the call listens (default: the loopback device found)")
    run.add_argument("--no-global-hotkeys", action="store_true", help="only the preview window's keys")
    run.add_argument(
        "--no-monitor", action="store_true", help="no preview window (with the HUD) beside the virtual camera or file"
    )
    run.set_defaults(func=cmd_run)

    render = sub.add_parser("render", help="offline: animate a portrait with a driver video")
    common(render, avatar=False)
    render.add_argument("--avatar", help="portrait image (default: the bundled avatar; unused by faceswap)")
    render.add_argument("--driver", required=True, help="driver video")
    render.add_argument("--out", required=True, help="output mp4")
    render.add_argument("--frames", type=int, help="only the first N driver frames")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    render.set_defaults(func=cmd_render)

    bench = sub.add_parser("bench", help="speed: per-stage median/p95, fps, live latency")
    common(bench)
    bench.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="render sizes")
    bench.add_argument("--frames", type=int, default=200, help="driver frames per size")
    bench.add_argument("--live-seconds", type=float, default=10.0, help="length of the live run (0: skip)")
    bench.add_argument("--driver", help="driver video (default: demo motion)")
    bench.add_argument(
        "--with-finetune", action="store_true", help="also the live run with a talking-head fine-tune in the background"
    )
    bench.add_argument("--with-edit", metavar="ATTRIBUTE", help="also the live run with this attribute edit on")
    bench.add_argument(
        "--with-audio", action="store_true", help="also the live runs with sound on (a simulated sound card)"
    )
    bench.set_defaults(func=cmd_bench)

    ver = sub.add_parser("verify", help="find avatarcam's invisible watermark in an image or a video")
    ver.add_argument("file", help="image or video (e.g. a recording of the call)")
    ver.add_argument("--key", help="watermark key (default: marks.watermark_key of the settings, the product's own)")
    ver.add_argument("--window", type=float, default=2.0, help="seconds of video read together (default: 2)")
    ver.set_defaults(func=cmd_verify)

    wb = sub.add_parser("watermark-bench", help="watermark: detection after compression, scaling, cropping; PSNR")
    wb.add_argument("--clips", required=True, help="folder of real driver clips (e.g. ../shared/data/driving)")
    wb.add_argument("--limit", type=int, default=8, help="clips, spread over the folder (default: 8)")
    wb.add_argument("--frames", type=int, default=300, help="first N frames of each clip (default: 300)")
    wb.add_argument("--out", help="write the markdown table here too")
    wb.add_argument("--quiet", action="store_true", help="no line per clip")
    wb.set_defaults(func=cmd_watermark_bench)

    doctor = sub.add_parser("doctor", help="check camera, virtual camera, audio, GPU")
    doctor.set_defaults(func=cmd_doctor)

    ev = sub.add_parser("eval", help="quality: self/cross-reenactment metrics on a folder of clips")
    ev.add_argument("--clips", required=True, help="folder of talking-face clips")
    ev.add_argument(
        "--portraits",
        nargs="+",
        help="folder(s) of portraits for cross-reenactment (several: interleaved, clip k drives portrait k mod n)",
    )
    ev.add_argument("--animators", nargs="+", default=["warp"], help="animators to compare")
    ev.add_argument("--frames", type=int, default=100, help="first N frames of each clip")
    ev.add_argument("--size", type=int, default=256, help="evaluation size")
    ev.add_argument("--limit", type=int, help="only the first N clips")
    ev.add_argument(
        "--finetune", action="store_true", help="fine-tune the talking head on each source portrait first (cached)"
    )
    ev.add_argument("--clip-list", help="file listing the clips to evaluate, one file name per line (e.g. holdout.txt)")
    ev.add_argument("--out", help="folder for results.md, per_clip.json and side-by-side images")
    ev.add_argument("--showcase", help="clip name (stem) for the side-by-side images (default: every clip)")
    ev.set_defaults(func=cmd_eval)

    sh = sub.add_parser("sheet", help="contact sheet: the hard moments of driver clips on hard-case portraits")
    sh.add_argument("--portraits", nargs="+", help="portrait files or folders (default: the hard cases in shared data)")
    sh.add_argument("--driver", action="append", required=True, help="driver clip (repeat for several)")
    sh.add_argument("--animator", choices=animator_names, default="warp", help="animator: %(choices)s (default: warp)")
    sh.add_argument("--size", type=int, default=256, help="render size, as eval (default: 256)")
    sh.add_argument("--frames", type=int, default=300, help="moments are picked from the first N driver frames")
    sh.add_argument("--tile", type=int, default=192, help="cell size in pixels")
    sh.add_argument("--out", default="sheet.png", help="output PNG")
    sh.set_defaults(func=cmd_sheet)

    avatar = sub.add_parser("avatar", help="portraits")
    avatar_sub = avatar.add_subparsers(dest="avatar_command", required=True)
    check = avatar_sub.add_parser("check", help="check that a portrait can be animated")
    check.add_argument("portrait")
    check.add_argument("--size", type=int, default=512)
    check.set_defaults(func=cmd_avatar_check)
    add = avatar_sub.add_parser("add", help="fine-tune the talking head on a portrait (cached per portrait)")
    add.add_argument("portrait")
    add.add_argument("--steps", type=int, default=300, help="fine-tuning steps")
    add.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    add.add_argument("--quiet", action="store_true", help="no progress bar")
    add.set_defaults(func=cmd_avatar_add)
    ed = avatar_sub.add_parser("edit", help="attribute edits of a portrait (StarGAN): smile, age, gender")
    ed.add_argument("portrait")
    ed.add_argument("--set", required=True, help="attributes and strengths in [0, 1], e.g. smiling=1,old=0.5")
    ed.add_argument("--out", required=True, help="the edited portrait (PNG or JPEG)")
    ed.add_argument("--precision", choices=["int8", "fp32"], default="int8", help="int8 where shipped (default)")
    ed.set_defaults(func=cmd_avatar_edit)

    ee = avatar_sub.add_parser("edits-eval", help="attribute edits: flips (judged), identity, smile, speed")
    ee.add_argument("--cache", required=True, help="attribute cache (its judge and holdout splits)")
    ee.add_argument(
        "--portraits", nargs="+", help="portrait files or folders to edit (default: ../shared/data/portraits)"
    )
    ee.add_argument("--weights", help="folder with the exported editor (default: the shipped weights)")
    ee.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    ee.add_argument("--out", default="edits_eval", help="folder for the report, the grid and the judge")
    ee.set_defaults(func=cmd_avatar_edits_eval)

    export = sub.add_parser("export", help="export trained networks to ONNX (fp32 + int8) into weights/")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    ex_th = export_sub.add_parser("talking-head", help="talking head: checkpoint, generator fp32/int8, embedder")
    ex_th.add_argument("--run", required=True, help="run folder of `avatarcam train talking-head`")
    ex_th.add_argument("--cache", required=True, help="training cache (real inputs to calibrate int8)")
    ex_th.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "weights"))
    ex_th.add_argument("--steps-note", type=int, help="training steps, recorded in the manifest")
    ex_th.set_defaults(func=cmd_export_talking_head)

    ex_fs = export_sub.add_parser("faceswap", help="face swap: encoder + decoder B (fp32, int8 where it holds)")
    ex_fs.add_argument("--model", required=True, help="model name or folder")
    ex_fs.add_argument("--a", help="A's extracted faces (calibrate int8; without it only fp32 is written)")
    ex_fs.set_defaults(func=cmd_export_faceswap)

    ex_sg = export_sub.add_parser("stargan", help="attribute editor: generator fp32 (+ int8 where it holds)")
    ex_sg.add_argument("--run", required=True, help="run folder of `avatarcam train stargan`")
    ex_sg.add_argument("--cache", required=True, help="attribute cache (held-out faces calibrate and check int8)")
    ex_sg.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "weights"))
    ex_sg.set_defaults(func=cmd_export_stargan)

    ex_sty = export_sub.add_parser("stylegan", help="identity generator: mapping + synthesis (fp32)")
    ex_sty.add_argument("--run", required=True, help="run folder of `avatarcam train stylegan`")
    ex_sty.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "weights"))
    ex_sty.set_defaults(func=cmd_export_stylegan)

    sound = sub.add_parser("audio", help="the voice-driven mouth")
    sound_sub = sound.add_subparsers(dest="audio_command", required=True)
    aev = sound_sub.add_parser("eval", help="voice-driven mouth against the tracked mouth, on clips with sound")
    aev.add_argument("--clips", required=True, help="folder of talking clips (those with sound are used)")
    aev.add_argument("--out", help="also write the figures as JSON")
    aev.add_argument("--quiet", action="store_true")
    aev.set_defaults(func=cmd_audio_eval)
    ash = sound_sub.add_parser("sheet", help="contact sheet: the voice's mouth shapes and idle motion on portraits")
    ash.add_argument("--portraits", nargs="*", help="portraits or folders (default: the hard cases in ../shared)")
    ash.add_argument("--out", required=True, help="PNG to write")
    ash.set_defaults(func=cmd_audio_sheet)

    ident = sub.add_parser("identity", help="new faces that belong to nobody (StyleGAN), as avatar portraits")
    ident_sub = ident.add_subparsers(dest="identity_command", required=True)
    new = ident_sub.add_parser("new", help="write the portrait of identity SEED")
    new.add_argument("--seed", type=int, required=True, help="the identity: the same seed, the same face")
    new.add_argument("--truncation", type=float, default=0.7, help="ψ: 0 the mean face … 1 the widest variety")
    new.add_argument("--mix", type=int, help="a second seed, whose --levels layers replace the first's")
    new.add_argument("--levels", choices=["coarse", "middle", "fine"], default="coarse", help="what --mix takes")
    new.add_argument("--size", type=int, default=512, help="portrait side in pixels")
    new.add_argument("--out", required=True, help="portrait image to write")
    new.set_defaults(func=cmd_identity_new)
    iev = ident_sub.add_parser("eval", help="detection, diversity, novelty, Fréchet distance against a DCGAN")
    iev.add_argument("--cache", required=True, help="attribute cache (training faces, held-out faces)")
    iev.add_argument("--samples", type=int, default=500, help="faces from each generator")
    iev.add_argument("--truncation", type=float, default=0.7, help="ψ of the samples")
    iev.add_argument("--driver", help="clip that animates each accepted sample (default: lp_d14.mp4 in shared data)")
    iev.add_argument("--weights", help="folder with the exported generator (default: the shipped weights)")
    iev.add_argument("--baseline", help="run folder of `avatarcam train dcgan`: its figures are reported beside")
    iev.add_argument("--out", default="identities_eval", help="folder for the report and the mixing grid")
    iev.set_defaults(func=cmd_identity_eval)

    swap = sub.add_parser("faceswap", help="face swap data: extract faces, record from the webcam")
    swap_sub = swap.add_subparsers(dest="faceswap_command", required=True)
    fx = swap_sub.add_parser("extract", help="aligned faces, landmarks and masks of one person")
    fx.add_argument("source", help="a video, an image, or a folder of them")
    fx.add_argument("--out", required=True, help="faces folder")
    fx.add_argument("--size", type=int, default=128, help="crop size (64 or 128 presets train from it)")
    fx.add_argument("--every", type=int, default=1, help="take every n-th video frame")
    fx.add_argument("--max", type=int, default=2000, help="at most this many faces")
    fx.add_argument("--quiet", action="store_true", help="no progress bar")
    fx.set_defaults(func=cmd_faceswap_extract)
    rec = swap_sub.add_parser("record", help="record yourself from the webcam, then extract the faces")
    rec.add_argument("--seconds", type=float, default=60.0)
    rec.add_argument("--camera", type=int, default=0, help="camera index")
    rec.add_argument("--out", default="faces_me", help="faces folder (the recording is kept in it)")
    rec.add_argument("--size", type=int, default=128, help="crop size")
    rec.add_argument("--quiet", action="store_true", help="no progress bar")
    rec.set_defaults(func=cmd_faceswap_record)
    fe = swap_sub.add_parser("eval", help="identity, motion following and flicker of a swap on unseen frames")
    fe.add_argument("--model", required=True, help="model name or folder")
    fe.add_argument("--driver", required=True, help="A's clip")
    fe.add_argument("--start", type=int, default=0, help="first frame of A's clip to swap (after the trained part)")
    fe.add_argument("--frames", type=int, default=150, help="frames to swap")
    fe.add_argument("--b-clip", required=True, help="a clip of B (its mean face embedding is B's identity)")
    fe.add_argument("--out", default="faceswap_eval", help="folder for faceswap.json and faceswap.png")
    fe.set_defaults(func=cmd_faceswap_eval)

    train = sub.add_parser("train", help="build the project's own data files and weights")
    train_sub = train.add_subparsers(dest="train_command", required=True)
    canon = train_sub.add_parser("canonical", help="the canonical neutral face, from clips")
    canon.add_argument("--clips", required=True)
    canon.add_argument("--out", default=str(Path(__file__).parent / "assets" / "canonical_face.npy"))
    canon.set_defaults(func=cmd_train_canonical)
    data = train_sub.add_parser("data", help="training caches (resumable): talking-head, attributes")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    data_th = data_sub.add_parser("talking-head", help="talking-head training cache from clips (+ still faces)")
    data_th.add_argument("--clips", required=True, help="folder of talking-face clips")
    data_th.add_argument("--stills", help="folder of still face crops (synthetic motion adds identities)")
    data_th.add_argument("--out", required=True, help="cache folder")
    data_th.add_argument("--frames", type=int, default=64, help="frames per clip, spread over it")
    data_th.add_argument("--max-stills", type=int, default=400, help="still faces used")
    data_th.set_defaults(func=cmd_train_data_talking_head)
    data_attr = data_sub.add_parser(
        "attributes", help="aligned, labelled faces for the StarGAN attribute edits (UTKFace or CelebA)"
    )
    faces_from = data_attr.add_mutually_exclusive_group(required=True)
    faces_from.add_argument("--faces", help="UTKFace folder (AGE_GENDER_RACE_DATE.jpg.chip.jpg)")
    faces_from.add_argument(
        "--celeba", nargs=2, metavar=("ATTR_FILE", "IMAGES_DIR"), help="CelebA's list_attr_celeba.txt + images"
    )
    data_attr.add_argument("--out", required=True, help="cache folder")
    data_attr.add_argument("--size", type=int, default=128, help="crop size in pixels (default 128)")
    data_attr.add_argument("--limit", type=int, help="at most N faces, spread over the set")
    data_attr.add_argument(
        "--attributes",
        nargs="+",
        help="attributes to label (default: smiling old young female; CelebA: any of its 40 names, or all)",
    )
    data_attr.add_argument(
        "--task-file",
        default=None,
        help="Face Landmarker .task file for landmarks and smile blendshapes "
        "(default: ../shared/models/face_landmarker_v2_with_blendshapes.task; absent: FaceMesh and mouth geometry)",
    )
    data_attr.add_argument("--quiet", action="store_true", help="no progress bar")
    data_attr.set_defaults(func=cmd_train_data_attributes)
    th = train_sub.add_parser("talking-head", help="meta-train the talking head (resumable; torchrun-ready)")
    th.add_argument("--cache", required=True, help="cache folder from `avatarcam train data talking-head`")
    th.add_argument("--out", required=True, help="run folder: checkpoint, sample grids, final weights")
    training_options(th, 12000, "episodes per step (per process)")
    th.add_argument("--shots", type=int, default=2, help="K: frames embedded per episode")
    th.set_defaults(func=cmd_train_talking_head)
    fs = train_sub.add_parser("faceswap", help="shared encoder + decoders A and B (resumable; torchrun-ready)")
    fs.add_argument("--a", required=True, help="faces of A (the person in front of the camera)")
    fs.add_argument("--b", required=True, help="faces of B (the face A will wear)")
    fs.add_argument("--name", required=True, help="model name (or a folder path)")
    fs.add_argument("--size", type=int, default=128, choices=[64, 128], help="preset")
    training_options(fs, 18000, "faces of each person per step (per process)")
    fs.set_defaults(func=cmd_train_faceswap)
    sg = train_sub.add_parser("stargan", help="attribute edits: StarGAN generator + critic (resumable; torchrun-ready)")
    preset_training_options(sg)
    sg.set_defaults(func=cmd_train_stargan)
    sty = train_sub.add_parser("stylegan", help="identities: StyleGAN generator + critic (resumable; torchrun-ready)")
    preset_training_options(sty)
    sty.set_defaults(func=cmd_train_stylegan)
    dc = train_sub.add_parser("dcgan", help="the plain DCGAN the identity generator is measured against (resumable)")
    dc.add_argument("--cache", required=True, help="attribute cache (the identity generator's training faces)")
    dc.add_argument("--out", required=True, help="run folder (a cut-short run resumes)")
    dc.add_argument("--seconds", type=float, help="compute time (default: the identity generator's training time)")
    dc.add_argument("--weights", help="folder with the identity generator it is framed like (default: shipped)")
    dc.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    dc.add_argument("--quiet", action="store_true", help="no progress bar")
    dc.set_defaults(func=cmd_train_dcgan)
    return parser


# Native libraries' own log lines (MediaPipe/absl, TensorFlow Lite, OpenCV, ffmpeg) stay out of the terminal
# unless --verbose: our own messages say what failed, once.
QUIET_NATIVE_ENV = {
    "GLOG_minloglevel": "2",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "OPENCV_LOG_LEVEL": "OFF",
    "OPENCV_FFMPEG_LOGLEVEL": "-8",  # AV_LOG_QUIET: a damaged video is reported by us, not frame by frame
}


def main(argv: list[str] | None = None) -> int:
    early = argparse.ArgumentParser(add_help=False)  # --verbose decides the environment before cv2 is loaded
    early.add_argument("-v", "--verbose", action="store_true")
    if not early.parse_known_args(argv)[0].verbose:
        for name, value in QUIET_NATIVE_ENV.items():
            os.environ.setdefault(name, value)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `avatarcam` is the main job
        args = parser.parse_args([*(argv or sys.argv[1:]), "run"])
    from avatarcam.tracking.facemesh import native_stderr_silenced

    with contextlib.nullcontext() if args.verbose else native_stderr_silenced():
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    from avatarcam.avatar import AvatarError
    from avatarcam.io.sinks import SinkError
    from avatarcam.io.sources import SourceError
    from avatarcam.runtime.weights import WeightsError

    try:
        return args.func(args)
    except (AvatarError, SourceError, SinkError, WeightsError, ValueError, FileNotFoundError, OSError) as exc:
        if args.verbose:
            log.exception("failed")
        message = " ".join(str(exc).split()) if not isinstance(exc, SinkError) else str(exc)
        print(f"avatarcam: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
