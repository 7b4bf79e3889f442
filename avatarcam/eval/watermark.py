"""The watermark's benchmark: real driver clips rendered by avatarcam, marked, put through a call's compression
and other changes with real ffmpeg, and read back window by window; unmarked renders of the same clips count
the false positives."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from avatarcam.avatar import load_avatar
from avatarcam.config import Config
from avatarcam.io.sources import VideoFileSource, read_video
from avatarcam.marks.payload import Payload
from avatarcam.marks.watermark import Watermark
from avatarcam.render import animate_frames, video_frames
from avatarcam.stages import Packet
from avatarcam.stages.chain import Chain, build_stages
from avatarcam.types import Frame

# The attacks of the issue: ffmpeg output options, and the container they are written to. Scaling and cropping
# are re-encoded near-losslessly (H.264 at CRF 18): the change itself is what they test.
ATTACKS: dict[str, tuple[list[str], str]] = {
    "none": (["-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p"], "mp4"),
    "H.264 500 kbit/s 640×480": (["-c:v", "libx264", "-b:v", "500k", "-s", "640x480", "-pix_fmt", "yuv420p"], "mp4"),
    "scaled 0.5×": (["-vf", "scale=trunc(iw/4)*2:trunc(ih/4)*2", "-c:v", "libx264", "-crf", "18"], "mp4"),
    "cropped 10%": (["-vf", "crop=trunc(iw*0.45)*2:trunc(ih*0.45)*2", "-c:v", "libx264", "-crf", "18"], "mp4"),
    "VP8 300 kbit/s": (["-c:v", "libvpx", "-b:v", "300k"], "webm"),
}
FALSE_POSITIVE_ATTACKS = ("none", "H.264 500 kbit/s 640×480")


def ffmpeg_attack(frames: list[np.ndarray], fps: float, attack: str) -> list[np.ndarray]:
    """`frames` (RGB) encoded by ffmpeg as `attack` says, and decoded again."""
    options, container = ATTACKS[attack]
    height, width = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"attacked.{container}"
        command = ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
        command += ["-r", f"{fps:g}", "-i", "-", *options, "-an", str(out)]
        subprocess.run(command, input=b"".join(f.tobytes() for f in frames), check=True, capture_output=True)
        return read_video(out)[0]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.PSNR(a, b))


@dataclass
class ClipResult:
    name: str
    windows: int
    found: dict[str, int] = field(default_factory=dict)  # attack → windows found with the right payload
    bit_errors: dict[str, int] = field(default_factory=dict)  # attack → wrong bits in the payloads found
    false_positives: dict[str, int] = field(default_factory=dict)  # attack → unmarked windows "found"
    psnr: list[float] = field(default_factory=list)  # per frame, marked vs unmarked
    embed_ms: list[float] = field(default_factory=list)
    detect_ms: list[float] = field(default_factory=list)  # per window


def _bits(payload: Payload) -> int:
    return payload.product << 24 | payload.version << 16 | payload.session


def render_clip(config: Config, clip: Path, frames: int) -> tuple[list[np.ndarray], float]:
    """The avatar animated by `clip`, unmarked (the chain without its watermark and badge)."""
    avatar = load_avatar(config.avatar or None, config.animator.size)
    size = avatar.size
    config = replace(config, output=replace(config.output, width=size, height=size))
    names = [n for n in config.chain.stages if n not in ("watermark", "badge")]
    chain = Chain(build_stages(config, names))
    driver, source = video_frames(clip, frames)
    try:
        return [image.copy() for image in animate_frames(chain, avatar, driver)], source.fps
    finally:
        chain.close()


def bench_clip(config: Config, clip: Path, frames: int, seconds: float = 2.0) -> ClipResult:
    plain, fps = render_clip(config, clip, frames)
    window = round(seconds * fps)
    stages = build_stages(config, ["watermark", "badge"])
    mark, badge = stages
    result = ClipResult(clip.stem, len(plain) // window)
    marked = []
    for index, image in enumerate(plain):
        packet = Packet(Frame(image, 0, index), None, image=image)  # type: ignore[arg-type]
        start = time.perf_counter()
        mark(packet)
        result.embed_ms.append((time.perf_counter() - start) * 1e3)
        assert packet.image is not None
        result.psnr.append(psnr(image, packet.image))
        badge(packet)
        marked.append(packet.image)
    codec = Watermark(config.marks.watermark_key)
    expected = mark.payload  # type: ignore[attr-defined]
    for attack in ATTACKS:
        received = ffmpeg_attack(marked, fps, attack)
        found = errors = 0
        for w in range(result.windows):
            start = time.perf_counter()
            detection = codec.detect(received[w * window : (w + 1) * window])
            result.detect_ms.append((time.perf_counter() - start) * 1e3)
            if detection.payload is not None:
                wrong = bin(_bits(detection.payload) ^ _bits(expected)).count("1")
                found += wrong == 0
                errors += wrong
        result.found[attack], result.bit_errors[attack] = found, errors
    for attack in FALSE_POSITIVE_ATTACKS:
        received = ffmpeg_attack(plain, fps, attack)
        windows = [received[w * window : (w + 1) * window] for w in range(result.windows)]
        result.false_positives[attack] = sum(codec.detect(w).found for w in windows)
    return result


def markdown(results: list[ClipResult], frames: int) -> str:
    windows = sum(r.windows for r in results)
    lines = [
        f"{len(results)} clips, the first {frames} frames of each, {windows} windows of 2 s per condition",
        "",
        "| condition | windows found | payload bit errors |",
        "|---|---|---|",
    ]
    for attack in ATTACKS:
        found = sum(r.found[attack] for r in results)
        errors = sum(r.bit_errors[attack] for r in results)
        lines.append(f"| marked, {attack} | {found}/{windows} ({100 * found / max(windows, 1):.1f}%) | {errors} |")
    for attack in FALSE_POSITIVE_ATTACKS:
        fp = sum(r.false_positives[attack] for r in results)
        lines.append(f"| unmarked, {attack} (false positives) | {fp}/{windows} | – |")
    all_psnr = np.array([p for r in results for p in r.psnr])
    embed = np.array([m for r in results for m in r.embed_ms])
    detect = np.array([m for r in results for m in r.detect_ms])
    lines += [
        "",
        f"PSNR marked vs unmarked: mean {all_psnr.mean():.1f} dB, lowest frame {all_psnr.min():.1f} dB; "
        f"embedding {np.median(embed):.2f} ms per frame (median, p95 {np.percentile(embed, 95):.2f}); "
        f"reading a 2-second window {np.median(detect):.0f} ms (median)",
    ]
    return "\n".join(lines)


def clips_of(folder: Path, limit: int, seconds: float = 4.0) -> list[Path]:
    """Up to `limit` clips of `folder` at least `seconds` long (two windows), spread over it by name."""
    clips = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".mp4", ".mov", ".avi", ".mkv", ".webm"):
            continue
        with VideoFileSource(path, loop=False) as source:
            if source.frame_count >= seconds * source.fps:
                clips.append(path)
    if not clips:
        raise FileNotFoundError(f"no video clips of {seconds:g} s or more in {folder}")
    return clips[:: max(1, len(clips) // limit)][:limit]


def run_watermark_bench(config: Config, clips: list[Path], frames: int, progress: bool = True) -> str:
    if shutil.which("ffmpeg") is None:
        raise FileNotFoundError("the watermark benchmark needs ffmpeg on the PATH (its attacks are ffmpeg's)")
    results = []
    for clip in clips:
        results.append(bench_clip(config, clip, frames))
        if progress:  # one JSON line a clip: a long run stopped early still has its numbers
            print(json.dumps(asdict(results[-1])), flush=True)
    return markdown(results, frames)
