"""`avatarcam` command line: run, render, bench, doctor, eval, avatar, train."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from avatarcam.config import Config, load_config

log = logging.getLogger("avatarcam")


def _config(args: argparse.Namespace) -> Config:
    overrides = {
        "avatar": getattr(args, "avatar", None),
        "avatars_dir": getattr(args, "avatars_dir", None),
        "animator.name": getattr(args, "animator", None),
        "animator.size": getattr(args, "size", None),
        "tracker.backend": "landmarker" if getattr(args, "task_file", None) else None,
        "tracker.task_file": getattr(args, "task_file", None),
    }
    return load_config(args.config, overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from avatarcam.avatar import list_avatars, load_avatar
    from avatarcam.hotkeys import Hotkeys
    from avatarcam.io.demo import default_demo
    from avatarcam.io.sinks import open_sink
    from avatarcam.io.sources import open_source
    from avatarcam.pipeline import LivePipeline
    from avatarcam.stages import FrameStages

    config = _config(args)
    src = config.source
    if args.video:
        src.kind, src.path = "file", args.video
    elif args.source:
        src.kind = args.source
    if args.camera is not None:
        src.camera = args.camera
    out = config.output
    if args.out:
        out.path = args.out
        out.sink = args.sink or "file"
    elif args.sink:
        out.sink = args.sink

    paths = list_avatars(config.avatars_dir) if config.avatars_dir else []
    avatar = load_avatar(config.avatar or (paths[0] if paths else None), config.animator.size)
    print(f"avatar: {avatar.name} ({config.animator.name} animator, {avatar.size}²)")
    source, said = open_source(src, lambda: default_demo(src.width, src.height, src.fps))
    print(said)
    sink, said = open_sink(out)
    print(said)
    hotkeys = Hotkeys(config.hotkeys)
    print(hotkeys.start(config.hotkeys.global_keys and not args.no_global_hotkeys))
    stages = FrameStages(config, avatar)
    pipeline = LivePipeline(config, source, sink, stages, paths, hotkeys)
    print("running: Ctrl+C (or the quit hotkey) to stop")
    try:
        stats = pipeline.run(max_seconds=args.seconds)
    finally:
        pipeline.close()
        hotkeys.stop()
        source.close()
        sink.close()
        stages.close()
    print(
        f"sent {stats.frames} frames at {stats.fps:.1f} fps, latency p50 {stats.latency(50):.0f} ms "
        f"p95 {stats.latency(95):.0f} ms, {stages.errors} frame errors"
    )
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from avatarcam.avatar import load_avatar
    from avatarcam.render import render_video

    config = _config(args)
    avatar = load_avatar(args.avatar, config.animator.size)
    result = render_video(config, avatar, args.driver, args.out, max_frames=args.frames, progress=not args.quiet)
    print(
        f"wrote {args.out}: {result.frames} frames at {result.fps:.2f} fps, rendered at {result.render_fps:.0f} fps"
        + (f", {result.errors} frames repeated after errors" if result.errors else "")
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from avatarcam.bench import format_rows, machine, run_bench

    config = _config(args)
    rows = run_bench(config, args.sizes, args.frames, args.live_seconds, args.driver)
    print(f"machine: {machine()}, animator {config.animator.name}")
    print(format_rows(rows))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from avatarcam.doctor import format_checks, run_doctor

    checks = run_doctor()
    print(format_checks(checks))
    return 0 if all(c.ok or c.optional for c in checks) else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from avatarcam.eval.runner import run_eval

    config = _config(args)
    report = run_eval(
        config, args.clips, args.animators, args.portraits, args.frames, args.size, args.limit, args.out, args.showcase
    )
    print(report.markdown())
    if args.out:
        print(f"\nwrote {args.out}/results.md, per_clip.json and side-by-side images")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatarcam", description="Real-time avatar virtual webcam.")
    parser.add_argument("--config", help="TOML settings file (see README)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command")

    def common(p: argparse.ArgumentParser, avatar: bool = True) -> None:
        if avatar:
            p.add_argument("--avatar", help="portrait image (default: the bundled avatar)")
        p.add_argument("--animator", help="animator name (default: warp)")
        p.add_argument("--size", type=int, help="avatar size in pixels (square)")
        p.add_argument("--task-file", help="MediaPipe Face Landmarker .task file (blendshapes)")

    run = sub.add_parser("run", help="live: webcam → avatar → virtual camera (default command)")
    common(run)
    run.add_argument("--avatars-dir", help="folder of portraits for the next/previous hotkeys")
    run.add_argument("--source", choices=["auto", "camera", "file", "demo"], help="driver (default: auto)")
    run.add_argument("--camera", type=int, help="camera index")
    run.add_argument("--video", help="drive from a video file instead of the camera")
    run.add_argument("--sink", choices=["auto", "virtual", "preview", "file", "null"], help="output")
    run.add_argument("--out", help="record the output to this mp4")
    run.add_argument("--seconds", type=float, help="stop after this long")
    run.add_argument("--no-global-hotkeys", action="store_true", help="only the preview window's keys")
    run.set_defaults(func=cmd_run)

    render = sub.add_parser("render", help="offline: animate a portrait with a driver video")
    common(render, avatar=False)
    render.add_argument("--avatar", required=True, help="portrait image")
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
    bench.set_defaults(func=cmd_bench)

    doctor = sub.add_parser("doctor", help="check camera, virtual camera, audio, GPU")
    doctor.set_defaults(func=cmd_doctor)

    ev = sub.add_parser("eval", help="quality: self/cross-reenactment metrics on a folder of clips")
    ev.add_argument("--clips", required=True, help="folder of talking-face clips")
    ev.add_argument("--portraits", help="folder of portraits for cross-reenactment")
    ev.add_argument("--animators", nargs="+", default=["warp"], help="animators to compare")
    ev.add_argument("--frames", type=int, default=100, help="first N frames of each clip")
    ev.add_argument("--size", type=int, default=256, help="evaluation size")
    ev.add_argument("--limit", type=int, help="only the first N clips")
    ev.add_argument("--out", help="folder for results.md, per_clip.json and side-by-side images")
    ev.add_argument("--showcase", help="clip name (stem) for the side-by-side images (default: every clip)")
    ev.set_defaults(func=cmd_eval)

    avatar = sub.add_parser("avatar", help="portraits")
    avatar_sub = avatar.add_subparsers(dest="avatar_command", required=True)
    check = avatar_sub.add_parser("check", help="check that a portrait can be animated")
    check.add_argument("portrait")
    check.add_argument("--size", type=int, default=512)
    check.set_defaults(func=cmd_avatar_check)

    train = sub.add_parser("train", help="build the project's own data files and weights")
    train_sub = train.add_subparsers(dest="train_command", required=True)
    canon = train_sub.add_parser("canonical", help="the canonical neutral face, from clips")
    canon.add_argument("--clips", required=True)
    canon.add_argument("--out", default=str(Path(__file__).parent / "assets" / "canonical_face.npy"))
    canon.set_defaults(func=cmd_train_canonical)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging: warnings only
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")  # our own messages say what failed, once
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if args.command is None:  # plain `avatarcam` is the main job
        args = parser.parse_args([*(argv or sys.argv[1:]), "run"])
    from avatarcam.avatar import AvatarError
    from avatarcam.io.sinks import SinkError
    from avatarcam.io.sources import SourceError

    try:
        return args.func(args)
    except (AvatarError, SourceError, SinkError, ValueError, FileNotFoundError, OSError) as exc:
        if args.verbose:
            log.exception("failed")
        message = " ".join(str(exc).split()) if not isinstance(exc, SinkError) else str(exc)
        print(f"avatarcam: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
