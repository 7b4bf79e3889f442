"""How well the voice-driven mouth follows a real talker: on clips with sound, the mouth opening the voice gives at
each frame's time against the opening the tracker measures on the speaker's own face (Pearson correlation, at no
shift: the product looks up the voice at the frame's capture time; the best shift within ±0.2 s is reported
beside it, as clips' own sound is not always in sync)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avatarcam.audio.vad import load_voice_activity
from avatarcam.audio.voice import VoiceAnalyzer
from avatarcam.config import TrackerConfig
from avatarcam.io.sources import VideoFileSource
from avatarcam.motion.retarget import mouth_gap
from avatarcam.tracking.geometry import canonical_shape
from avatarcam.tracking.tracker import Tracker

RATE = 16000
BLOCK = 160  # 10 ms, as the live engine's blocks
MAX_SHIFT_SECONDS = 0.2


@dataclass(frozen=True)
class VoiceClipResult:
    clip: str
    frames: int
    tracked: int
    correlation: float  # at no shift
    best_correlation: float
    best_shift_ms: float  # positive: the voice's opening leads the tracked one


def read_sound(path: Path, rate: int = RATE) -> np.ndarray | None:
    """The clip's sound, mono float32 at `rate` (None when it has none); needs ffmpeg."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("the voice evaluation decodes the clips' sound with ffmpeg: `apt install ffmpeg`")
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"]
    decoded = subprocess.run(command, capture_output=True, check=False)
    if decoded.returncode != 0 or not decoded.stdout:
        return None
    return np.frombuffer(decoded.stdout, np.float32)


def voice_track(sound: np.ndarray, rate: int = RATE, vad: str = "silero") -> tuple[np.ndarray, np.ndarray]:
    """The voice-driven opening every 10 ms, as the live engine makes it: (times in seconds, openings)."""
    analyzer = VoiceAnalyzer(rate, load_voice_activity(vad))
    shapes = []
    for start in range(0, len(sound) - BLOCK + 1, BLOCK):
        analyzer.feed(sound[start : start + BLOCK], (start + BLOCK) / rate)
        if analyzer.latest is not None:
            shapes.append(analyzer.latest)
    return np.array([s.time for s in shapes]), np.array([s.opening for s in shapes])


def opening_at(track: tuple[np.ndarray, np.ndarray], times: np.ndarray) -> np.ndarray:
    """The newest opening at or before each of `times` (what a frame captured then is drawn with)."""
    shape_times, openings = track
    return openings[np.clip(np.searchsorted(shape_times, times, side="right") - 1, 0, len(openings) - 1)]


def tracked_openings(path: Path) -> tuple[np.ndarray, float]:
    """The speaker's inner-lip gap per frame (iod units; NaN where no face was found) and the frame rate."""
    tracker = Tracker(TrackerConfig())
    gaps = []
    with VideoFileSource(path, loop=False) as source:
        while (frame := source.read()) is not None:
            face = tracker(frame)
            if face is None:
                gaps.append(np.nan)
                continue
            shape = canonical_shape(face)
            gaps.append(mouth_gap(shape))
        fps = source.fps
    tracker.close()
    return np.asarray(gaps), fps


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 10 or np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def evaluate_clip(path: Path) -> VoiceClipResult | None:
    """None for a clip without sound."""
    sound = read_sound(path)
    if sound is None or len(sound) < RATE // 2:
        return None
    gaps, fps = tracked_openings(path)
    times = np.arange(len(gaps)) / fps
    found = np.isfinite(gaps) & (times < len(sound) / RATE)
    shifts = np.arange(-MAX_SHIFT_SECONDS, MAX_SHIFT_SECONDS + 1e-9, 0.01)
    track = voice_track(sound)
    by_shift = [_correlation(opening_at(track, times[found] + shift), gaps[found]) for shift in shifts]
    best = int(np.nanargmax(by_shift)) if np.isfinite(by_shift).any() else len(shifts) // 2
    return VoiceClipResult(
        path.name,
        len(gaps),
        int(found.sum()),
        by_shift[len(shifts) // 2],
        by_shift[best],
        float(shifts[best] * 1000),
    )


def evaluate_voice(clips: list[Path], progress: bool = True) -> list[VoiceClipResult]:
    results = []
    for clip in tqdm(clips, desc="voice", unit="clip", disable=not progress):
        result = evaluate_clip(clip)
        if result is not None:
            results.append(result)
    return results


# The voice's shapes on a portrait at rest: (label, opening, round, wide, time). Times pick the idle motion's
# blink and the sway's far point.
SHEET_SHAPES = (
    ("rest", 0.0, 0.0, 0.0, 1.0),
    ("open", 1.0, 0.0, 0.0, 1.0),
    ("round (o)", 0.5, 1.0, 0.0, 1.0),
    ("wide (i)", 0.4, 0.0, 1.0, 1.0),
    ("blink", 0.3, 0.0, 0.0, 3.7 + 0.09),
    ("sway", 0.6, 0.0, 0.0, 7.1 / 4),
)


def voice_sheet(portraits: list[Path], tile: int = 192) -> np.ndarray:
    """A grid: a row per portrait, a column per voice shape, drawn by the warp animator as the voice stage would
    (weight 1: the face untracked)."""
    from avatarcam.animators.warp import WarpAnimator
    from avatarcam.avatar import load_avatar
    from avatarcam.config import AnimatorConfig
    from avatarcam.eval.sidebyside import label_strip
    from avatarcam.motion.voice import with_voice
    from avatarcam.types import Motion

    rows = [np.hstack([label_strip(name, tile) for name, *_ in SHEET_SHAPES])]
    for path in portraits:
        avatar = load_avatar(path, tile)
        warp = WarpAnimator(AnimatorConfig(size=tile))
        warp.prepare(avatar)
        face, shape = avatar.face, canonical_shape(avatar.face)
        rest = Motion(face.landmarks.copy(), face.rotation, tracked=False)
        cells = [warp(with_voice(rest, shape, o, r, w, t, 1.0)) for _, o, r, w, t in SHEET_SHAPES]
        warp.close()
        rows.append(np.hstack(cells))
    return np.vstack(rows)
