"""A simulated sound card with the `sounddevice` module's shape, for the tests and the benchmark (CI has no sound
device): a microphone that "hears" a given recording, a loopback output that records what it is played, each on
its own clock (the microphone's may run `drift` fast, as two real devices' crystals do), and a plug to pull.

Time is simulated: `advance(seconds)` calls every stream back in the order real devices would, with PortAudio's
time stamps. `run_in_real_time()` does the same against the monotonic clock on a thread, for live runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np


class SimulatedPortAudioError(Exception):
    pass


class _Stream:
    def __init__(
        self,
        card: SimulatedSoundCard,
        kind: str,
        device: int,
        samplerate: float,
        blocksize: int,
        callback: Callable[..., None],
        **_: Any,
    ) -> None:
        if card.unplugged or device not in card.devices_of(kind):
            raise SimulatedPortAudioError(f"Error opening {kind} stream: device {device} unavailable")
        self.card, self.kind, self.device = card, kind, device
        self.samplerate, self.blocksize, self.callback = float(samplerate), int(blocksize), callback
        self.latency = card.latency
        self.active = False
        self.calls = 0  # callbacks made so far

    def start(self) -> None:
        self.active = True
        self.opened_at = self.card.now
        self.card.streams.append(self)

    def stop(self) -> None:
        self.active = False

    def close(self) -> None:
        self.active = False
        if self in self.card.streams:
            self.card.streams.remove(self)

    def next_call(self) -> float:
        """When this stream calls back next, on the card's clock: an input once its block has been captured (on
        the microphone's clock, `drift` fast), an output as its block is due."""
        rate = self.samplerate * (1.0 + self.card.drift) if self.kind == "input" else self.samplerate
        blocks = self.calls + 1 if self.kind == "input" else self.calls
        return self.opened_at + blocks * self.blocksize / rate


class SimulatedSoundCard:
    """Devices 0 "simulated microphone", 1 "avatarcam (simulated loopback)", 2 "simulated speakers"."""

    PortAudioError = SimulatedPortAudioError

    def __init__(
        self, microphone: np.ndarray | None = None, rate: int = 48000, drift: float = 0.0, latency: float = 0.01
    ) -> None:
        self.microphone = np.zeros(0, np.float32) if microphone is None else np.asarray(microphone, np.float32)
        self.rate, self.drift, self.latency = rate, drift, latency
        self.now = 0.0
        self.streams: list[_Stream] = []
        self.unplugged = False
        self.played: list[tuple[float, np.ndarray]] = []  # (play time of the first sample, samples)
        self.heard = 0  # microphone samples delivered so far
        self.default = SimpleNamespace(device=(0, 2))
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.RLock()

    # The sounddevice module's surface -----------------------------------------------------------------------
    def query_devices(self) -> list[dict[str, Any]]:
        if self.unplugged:
            return []
        names = [("simulated microphone", 1, 0), ("avatarcam (simulated loopback)", 0, 2), ("simulated speakers", 0, 2)]
        return [
            {"index": i, "name": n, "max_input_channels": a, "max_output_channels": b, "default_samplerate": self.rate}
            for i, (n, a, b) in enumerate(names)
        ]

    def devices_of(self, kind: str) -> list[int]:
        key = "max_input_channels" if kind == "input" else "max_output_channels"
        return [d["index"] for d in self.query_devices() if d[key] > 0]

    def InputStream(self, **kw: Any) -> _Stream:  # noqa: N802 - sounddevice's name
        return _Stream(self, "input", **kw)

    def OutputStream(self, **kw: Any) -> _Stream:  # noqa: N802 - sounddevice's name
        return _Stream(self, "output", **kw)

    # Simulation ---------------------------------------------------------------------------------------------
    def clock(self) -> float:
        return self.now

    def unplug(self) -> None:
        """The devices vanish: their streams stop calling back and go inactive; nothing opens until `plug_in`."""
        with self._lock:
            self.unplugged = True
            for stream in self.streams:
                stream.active = False

    def plug_in(self) -> None:
        self.unplugged = False

    def advance(self, seconds: float) -> None:
        """Runs the simulated clock `seconds` on, calling each stream back when it is due, in time order."""
        self.advance_to(self.now + seconds)

    def advance_to(self, until: float) -> None:
        with self._lock:
            while True:
                live = [s for s in self.streams if s.active]
                if not live:
                    break
                stream = min(live, key=_Stream.next_call)
                due = stream.next_call()
                if due > until:
                    break
                self.now = due
                self._call(stream)
            self.now = max(self.now, until)

    def _call(self, stream: _Stream) -> None:
        frames = stream.blocksize
        stream.calls += 1
        if stream.kind == "input":
            block = self.microphone[self.heard : self.heard + frames]
            block = np.pad(block, (0, frames - len(block)))
            self.heard += frames
            times = SimpleNamespace(
                currentTime=self.now,
                inputBufferAdcTime=self.now - frames / stream.samplerate - stream.latency,
                outputBufferDacTime=0.0,
            )
            stream.callback(block.reshape(-1, 1).copy(), frames, times, None)
        else:
            out = np.zeros((frames, 1), np.float32)
            times = SimpleNamespace(
                currentTime=self.now, inputBufferAdcTime=0.0, outputBufferDacTime=self.now + stream.latency
            )
            stream.callback(out, frames, times, None)
            self.played.append((self.now + stream.latency, out[:, 0].copy()))

    def run_in_real_time(self) -> None:
        """Calls the streams back against the monotonic clock on a thread, as a real card would."""
        self.now = time.monotonic()
        self._thread = threading.Thread(target=self._real_time, name="simulated-sound", daemon=True)
        self._thread.start()

    def _real_time(self) -> None:
        while not self._stop.wait(0.002):
            self.advance_to(time.monotonic())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def played_signal(self) -> tuple[float, np.ndarray]:
        """Everything played, joined: the play time of its first sample and the samples."""
        if not self.played:
            return self.now, np.zeros(0, np.float32)
        return self.played[0][0], np.concatenate([samples for _, samples in self.played])


def voiced_syllables(seconds: float, rate: int = 48000, seed: int = 0) -> np.ndarray:
    """A voice-like test sound: a 120 Hz buzz through two moving formants, in syllables of 0.15–0.35 s with
    pauses between, at speaking level. For the benchmark where no speech synthesizer is installed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    buzz = np.sign(np.sin(2 * np.pi * 120 * t)) * 0.5 + 0.5 * np.sin(2 * np.pi * 240 * t)
    envelope = np.zeros_like(t)
    start = 0.2
    while start < seconds:
        length = rng.uniform(0.15, 0.35)
        on = (t >= start) & (t < start + length)
        envelope[on] = np.sin(np.pi * (t[on] - start) / length)
        start += length + rng.uniform(0.05, 0.4)
    formant = np.sin(2 * np.pi * 700 * t) * np.sin(2 * np.pi * 1.3 * t) + 0.5 * np.sin(2 * np.pi * 1800 * t)
    return (0.1 * envelope * buzz * (0.6 + 0.4 * formant)).astype(np.float32)
