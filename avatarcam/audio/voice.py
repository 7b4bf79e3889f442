"""The voice as mouth shapes: how open, how round, how wide, every 10 ms, stamped with the capture time.

Opening follows the speech envelope: the level of each 20 ms window placed between the tracked noise floor and
the recent peak (squared), gated by voice activity (breath and fan noise move no lips), then smoothed with a fast
attack and a slower release, as lips open fast and close a little slower. Shape comes from the spectral centroid:
back rounded vowels (o, u) have their energy low, spread front vowels (i, e) high. The video asks for the shape at
a frame's capture time, so the mouth is in step with the frame it is drawn on.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from avatarcam.audio.vad import CHUNK, VAD_RATE, VoiceActivity, level_db

HOP_SECONDS = 0.01
WINDOW_SECONDS = 0.02
HISTORY_SECONDS = 3.0
FLOOR_MARGIN_DB = 6.0  # sound this little above the noise floor opens nothing
QUIETEST_DB = -65.0
# The level's place between floor and peak (a dB scale) is squared: the jaw follows the sound's amplitude more than
# its loudness (espeak-ng speech: envelope correlation 0.71–0.78 linear, 0.78–0.85 squared).
OPENING_CURVE = 2.0
MIN_RANGE_DB = 18.0  # the floor-to-peak range never narrows below this (one quiet word is not a shout)
OPEN_ATTACK, OPEN_RELEASE = 0.015, 0.06  # seconds: time constants of the opening's smoothing
SPEECH_ATTACK, SPEECH_RELEASE = 0.03, 0.25  # of the voice-activity gate
CENTROID_BAND = (200.0, 4000.0)  # Hz
ROUND_BELOW, WIDE_ABOVE, SHAPE_SPAN = 1300.0, 1700.0, 600.0  # Hz: centroid → round and wide amounts


@dataclass(frozen=True)
class VoiceShape:
    time: float  # capture time (seconds, monotonic clock) of the end of the sound it describes
    opening: float  # 0 closed .. 1 wide open
    round: float  # 0..1: lips pushed forward and narrowed (o, u)
    wide: float  # 0..1: lips spread (i, e)
    speech: float  # smoothed voice-activity probability
    level_db: float  # input level, dB of full scale


def _smooth(previous: float, target: float, attack: float, release: float) -> float:
    tau = attack if target > previous else release
    return previous + (1.0 - np.exp(-HOP_SECONDS / tau)) * (target - previous)


class VoiceAnalyzer:
    """Fed the microphone's blocks (mono, at `rate`) with their capture times; keeps the last seconds of shapes."""

    def __init__(self, rate: int, activity: VoiceActivity) -> None:
        self.rate = rate
        self.activity = activity
        self.hop = max(1, round(HOP_SECONDS * rate))
        self.window = max(self.hop, round(WINDOW_SECONDS * rate))
        self._pending = np.zeros(0, np.float32)  # samples not yet in a hop
        self._recent = np.zeros(self.window, np.float32)  # the last window, for levels and spectra
        self._vad_input = np.zeros(0, np.float32)  # resampled to 16 kHz, not yet a chunk
        self._vad_phase = 0.0  # where the next 16 kHz sample falls, in input samples from the next block's start
        self._speech_target = 0.0
        self._floor: float | None = None
        self._peak = -100.0
        self._opening = self._speech = self._round = self._wide = 0.0
        self._frequencies = np.fft.rfftfreq(self.window, 1.0 / rate)
        self._band = (self._frequencies >= CENTROID_BAND[0]) & (self._frequencies <= CENTROID_BAND[1])
        self._taper = np.hanning(self.window).astype(np.float32)
        self._shapes: deque[VoiceShape] = deque(maxlen=round(HISTORY_SECONDS / HOP_SECONDS))
        self._times: deque[float] = deque(maxlen=round(HISTORY_SECONDS / HOP_SECONDS))
        self._lock = threading.Lock()

    def feed(self, block: np.ndarray, end_time: float) -> None:
        block = np.asarray(block, np.float32).ravel()
        self._feed_activity(block)
        samples = np.concatenate([self._pending, block])
        hops = len(samples) // self.hop
        for i in range(hops):
            hop = samples[i * self.hop : (i + 1) * self.hop]
            self._recent = np.concatenate([self._recent, hop])[-self.window :]
            left = len(samples) - (i + 1) * self.hop
            self._add(self._analyse(), end_time - left / self.rate)
        self._pending = samples[hops * self.hop :]

    def _feed_activity(self, block: np.ndarray) -> None:
        """Resamples to 16 kHz (linear: the detector needs the envelope of speech, not its fine detail) and runs
        the detector on each whole chunk."""
        step = self.rate / VAD_RATE
        positions = np.arange(self._vad_phase, len(block) - 1e-9, step)
        self._vad_phase = (positions[-1] + step - len(block)) if len(positions) else self._vad_phase - len(block)
        resampled = np.interp(positions, np.arange(len(block)), block).astype(np.float32)
        self._vad_input = np.concatenate([self._vad_input, resampled])
        while len(self._vad_input) >= CHUNK:
            self._speech_target = self.activity(self._vad_input[:CHUNK])
            self._vad_input = self._vad_input[CHUNK:]

    def _analyse(self) -> tuple[float, float, float, float, float]:
        level = level_db(self._recent)
        quietest = max(level, QUIETEST_DB)  # a real microphone is never this quiet: digital silence sets no floor
        if self._floor is None:
            self._floor = quietest
        self._floor += (0.2 if quietest < self._floor else 0.001) * (quietest - self._floor)
        self._peak = max(level, self._peak - 0.05)  # the peak decays 5 dB a second
        low = self._floor + FLOOR_MARGIN_DB
        target = float(np.clip((level - low) / max(self._peak - low, MIN_RANGE_DB), 0.0, 1.0)) ** OPENING_CURVE
        self._speech = _smooth(self._speech, self._speech_target, SPEECH_ATTACK, SPEECH_RELEASE)
        gate = float(np.clip(2.0 * self._speech - 0.5, 0.0, 1.0))
        self._opening = _smooth(self._opening, target * gate, OPEN_ATTACK, OPEN_RELEASE)
        power = np.abs(np.fft.rfft(self._recent * self._taper))[self._band] ** 2
        if power.sum() > 1e-12:
            centroid = float((self._frequencies[self._band] * power).sum() / power.sum())
            self._round = _smooth(self._round, gate * np.clip((ROUND_BELOW - centroid) / SHAPE_SPAN, 0, 1), 0.03, 0.1)
            self._wide = _smooth(self._wide, gate * np.clip((centroid - WIDE_ABOVE) / SHAPE_SPAN, 0, 1), 0.03, 0.1)
        return self._opening, self._round, self._wide, self._speech, level

    def _add(self, values: tuple[float, float, float, float, float], time: float) -> None:
        with self._lock:
            self._shapes.append(VoiceShape(time, *values))
            self._times.append(time)

    def at(self, time: float) -> VoiceShape | None:
        """The shape of the sound captured at `time` (the newest before it; None before any sound)."""
        with self._lock:
            if not self._shapes:
                return None
            index = bisect.bisect_right(self._times, time) - 1
            return self._shapes[max(index, 0)]

    @property
    def latest(self) -> VoiceShape | None:
        with self._lock:
            return self._shapes[-1] if self._shapes else None
