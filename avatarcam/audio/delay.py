"""A delay line between two sound clocks: the microphone writes, the output reads, `delay` seconds later.

The microphone and the output are separate devices, each with its own clock, so counting samples would drift
(100 ppm is 60 ms in ten minutes). Instead every block carries its time on one clock: a written block the capture
time of its end, a read block the time its first sample will play. Each read measures how far its position is from
the sample captured `delay` before that play time; the median of those errors over a quarter second is the
position's error (callback timing jitters by milliseconds, the median does not). When it passes `tolerance` the
read position moves, crossfading (raised cosine, `fade` seconds) from the old position to the new: a change of the
requested delay and the clocks' slow drift are both corrected this way, with no jump in the signal.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

MEDIAN_SECONDS = 0.25


class DelayLine:
    def __init__(
        self,
        rate: int,
        max_seconds: float = 2.0,
        fade_seconds: float = 0.05,
        tolerance_seconds: float = 0.002,
    ) -> None:
        self.rate = rate
        self.capacity = 1 << int(np.ceil(np.log2(max_seconds * rate + 4 * rate * MEDIAN_SECONDS)))
        self.max_delay = max_seconds
        self.fade = max(1, round(fade_seconds * rate))
        self.tolerance = tolerance_seconds * rate  # samples
        self.delay = 0.0  # seconds
        self._buffer = np.zeros(self.capacity, np.float32)
        self._written = 0  # samples written so far
        self._written_end = 0.0  # capture time just after the last written sample
        self._read: float | None = None  # position of the next sample to read (samples; None before the first)
        self._fade_from: float | None = None  # the old position, while a crossfade runs
        self._faded = 0
        self._errors: deque[float] = deque()
        self.moves = 0  # read position moves (crossfades) so far
        self._lock = threading.Lock()

    def set_delay(self, seconds: float) -> None:
        self.delay = float(np.clip(seconds, 0.0, self.max_delay))

    def write(self, block: np.ndarray, end_time: float) -> None:
        """Mono samples from the microphone; `end_time`: the capture time just after the last of them."""
        block = np.asarray(block, np.float32).ravel()[-self.capacity :]
        with self._lock:
            start = self._written % self.capacity
            first = min(len(block), self.capacity - start)
            self._buffer[start : start + first] = block[:first]
            self._buffer[: len(block) - first] = block[first:]
            self._written += len(block)
            self._written_end = end_time

    def read(self, frames: int, play_time: float) -> np.ndarray:
        """`frames` samples for the output, whose first plays at `play_time` (silence before any were written)."""
        with self._lock:
            if self._written == 0:
                return np.zeros(frames, np.float32)
            wanted = self._written - (self._written_end - (play_time - self.delay)) * self.rate
            if self._read is None:
                self._read = float(round(wanted))
            self._track_error(self._read - wanted, frames)
            out = self._samples(self._read, frames)
            if self._fade_from is not None:
                out = self._crossfade(out, frames)
            self._read += frames
            return out

    def _track_error(self, error: float, frames: int) -> None:
        self._errors.append(error)
        while len(self._errors) > max(3, round(MEDIAN_SECONDS * self.rate / frames)):
            self._errors.popleft()
        if self._fade_from is not None or len(self._errors) < 3:
            return
        median = float(np.median(self._errors))
        if abs(median) > self.tolerance:
            assert self._read is not None
            self._fade_from, self._faded = self._read, 0
            self._read -= round(median)
            self._errors = deque(e - round(median) for e in self._errors)
            self.moves += 1

    def _crossfade(self, new: np.ndarray, frames: int) -> np.ndarray:
        assert self._fade_from is not None
        old = self._samples(self._fade_from, frames)
        step = np.arange(self._faded, self._faded + frames) / self.fade
        weight = 0.5 - 0.5 * np.cos(np.pi * np.clip(step, 0.0, 1.0))
        self._faded += frames
        self._fade_from += frames
        if self._faded >= self.fade:
            self._fade_from = None
        return (old * (1.0 - weight) + new * weight).astype(np.float32)

    def _samples(self, position: float, frames: int) -> np.ndarray:
        """Samples from `position` on; silence where none were written (before the start or not yet)."""
        index = np.arange(int(position), int(position) + frames)
        valid = (index >= max(0, self._written - self.capacity)) & (index < self._written)
        out = np.zeros(frames, np.float32)
        out[valid] = self._buffer[index[valid] % self.capacity]
        return out

    @property
    def measured_delay(self) -> float:
        """The delay the read position keeps now (seconds): the requested one less its remaining error (a position
        ahead of the wanted sample plays it sooner)."""
        with self._lock:
            if not self._errors:
                return self.delay
            return self.delay - float(np.median(self._errors)) / self.rate
