"""The sound devices at work: the microphone feeds the voice analyser and the delay line; the output plays the
delay line into the loopback device the call listens to. PortAudio runs both callbacks on its own threads, so the
video loop only hands over its latency (`video_latency`) and reads the voice's shapes.

The delay asked of the line is the video's capture→send latency (the median of the last second of frames, so one
slow frame moves nothing), plus the user's offset (the camera's and the call's own delays, which no program can
measure). A watchdog notices a device that went away (no callbacks, or a stream that stopped) and reopens both
every few seconds; the video never waits for it.

`load_backend` is the seam to the `sounddevice` module: the tests put a simulated one there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from avatarcam.audio.delay import DelayLine
from avatarcam.audio.devices import AudioUnavailable, list_devices, pick_input, pick_output, server_sinks
from avatarcam.audio.vad import level_db, load_voice_activity
from avatarcam.audio.voice import VoiceAnalyzer
from avatarcam.config import AudioConfig, Config

log = logging.getLogger(__name__)

LATENCY_FRAMES = 30  # the video latency is the median of this many frames (a second at 30 fps)
SILENT_SECONDS = 1.5  # a stream that has not called back for this long is gone
RETRY_SECONDS = 2.0
WATCH_SECONDS = 0.5
MARGIN_SECONDS = 0.005  # the shortest delay's margin over two blocks (callback timing jitter)


def load_backend() -> Any:
    """The `sounddevice` module, or AudioUnavailable saying why not (PortAudio missing, most often)."""
    try:
        import sounddevice
    except OSError as exc:  # the module raises this on import when the PortAudio library is missing
        raise AudioUnavailable(f"PortAudio is missing ({exc}): `sudo apt install libportaudio2` on Linux") from None
    return sounddevice


class AudioEngine:
    def __init__(
        self,
        config: AudioConfig,
        passthrough: bool,
        backend: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        watchdog: bool = True,
    ) -> None:
        """`passthrough`: play the delayed voice to the call (else the microphone only drives the mouth)."""
        self.config = config
        self.passthrough = passthrough
        self.clock = clock
        self.rate = config.sample_rate
        self.block = max(16, round(config.block_ms * self.rate / 1000))
        self.voice = VoiceAnalyzer(self.rate, load_voice_activity(config.vad))
        self.delay = DelayLine(self.rate, config.max_delay_ms / 1000, config.fade_ms / 1000)
        self.offset = config.offset_ms / 1000
        self.level = -100.0  # input level, dB of full scale
        self.problem = ""  # why there is no sound now ("" while it runs)
        self.described = ""  # what was opened
        self.said = ""  # the line `start` returned
        self._latencies: deque[float] = deque(maxlen=LATENCY_FRAMES)
        self._backend = backend
        self._streams: list[Any] = []
        self._last_input = self._last_output = 0.0
        self._next_try = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="audio-watchdog", daemon=True) if watchdog else None

    # Starting and stopping --------------------------------------------------------------------------------
    def start(self) -> str:
        """Opens the devices; returns a line saying what it opened, or why there is no sound (then it retries in
        the background: a microphone plugged in later is picked up)."""
        try:
            if self._backend is None:
                self._backend = load_backend()
        except AudioUnavailable as exc:  # no PortAudio: nothing to retry
            self.problem = str(exc)
            return f"audio: {self.problem}; the video runs on without it"
        try:
            self._open()
        except AudioUnavailable as exc:
            self.problem = str(exc)
        if self._watchdog is not None:
            self._watchdog.start()
        if self.problem:
            return f"audio: {self.problem}; the video runs on without it (`avatarcam doctor` lists the devices)"
        return f"audio: {self.described}"

    def _open(self) -> None:
        with self._lock:
            self._close_streams()
            backend = self._backend
            devices = list_devices(backend)
            default_input = _default_device(backend, 0)
            mic = pick_input(devices, self.config.input, default_input)
            opened = [self._stream(backend.InputStream, mic.index, self._on_input)]
            described = f"microphone '{mic.name}'"
            if self.passthrough:
                out, sink = pick_output(devices, self.config.output, server_sinks())
                if sink:
                    os.environ["PULSE_SINK"] = sink  # the sound server routes this program's output there
                try:
                    opened.append(self._stream(backend.OutputStream, out.index, self._on_output))
                except AudioUnavailable:
                    opened[0].close()
                    raise
                described += f" → '{sink or out.name}', delayed to meet the video"
            now = self.clock()
            self._last_input = self._last_output = now
            self._streams = opened
            self.problem, self.described = "", described

    def _stream(self, kind: Callable[..., Any], device: int, callback: Callable[..., None]) -> Any:
        try:
            stream = kind(
                device=device,
                samplerate=self.rate,
                blocksize=self.block,
                channels=1,
                dtype="float32",
                latency="low",
                callback=callback,
            )
            stream.start()
        except Exception as exc:  # PortAudioError, or a device that vanished between listing and opening
            raise AudioUnavailable(f"sound device {device} would not open: {' '.join(str(exc).split())}") from None
        return stream

    def _close_streams(self) -> None:
        for stream in self._streams:
            try:
                stream.close()
            except Exception:  # a device already gone cannot be closed cleanly; it is dropped all the same
                log.debug("closing a sound stream failed", exc_info=True)
        self._streams = []

    def close(self) -> None:
        self._stop.set()
        if self._watchdog is not None and self._watchdog.is_alive():
            self._watchdog.join(timeout=2.0)
        with self._lock:
            self._close_streams()

    # The watchdog -----------------------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            self.check()

    def check(self) -> None:
        """Reopens the devices when one went away (no callbacks for a while, or a stream that stopped), at most
        every RETRY_SECONDS."""
        now = self.clock()
        if not self.problem:
            quiet = now - self._last_input > SILENT_SECONDS or (
                self.passthrough and now - self._last_output > SILENT_SECONDS
            )
            stopped = any(not getattr(stream, "active", True) for stream in self._streams)
            if not (quiet or stopped):
                return
            self.problem = "sound device lost: retrying"
            log.warning("audio: the sound device stopped; the video runs on, retrying every %.0f s", RETRY_SECONDS)
            with self._lock:
                self._close_streams()
            self._next_try = now
        if now < self._next_try:
            return
        self._next_try = now + RETRY_SECONDS
        try:
            self._rescan()
            self._open()
            log.warning("audio: back (%s)", self.described)
        except AudioUnavailable as exc:
            log.debug("audio: still unavailable: %s", exc)

    def _rescan(self) -> None:
        """PortAudio lists the devices it found when it started: a device plugged in since appears only after it
        starts again (no stream is open here)."""
        terminate, initialize = getattr(self._backend, "_terminate", None), getattr(self._backend, "_initialize", None)
        if terminate is not None and initialize is not None:
            with self._lock:
                terminate()
                initialize()

    # The callbacks (PortAudio's threads) ------------------------------------------------------------------
    def _on_input(self, indata: np.ndarray, frames: int, times: Any, status: Any) -> None:
        now = self.clock()
        self._last_input = now
        mono = indata[:, 0] if indata.ndim == 2 else indata
        start = _on_our_clock(getattr(times, "inputBufferAdcTime", 0.0), times, now, now - frames / self.rate)
        end = start + frames / self.rate
        self.level = level_db(mono)
        self.voice.feed(mono, end)
        if self.passthrough:
            self.delay.write(mono, end)

    def _on_output(self, outdata: np.ndarray, frames: int, times: Any, status: Any) -> None:
        now = self.clock()
        self._last_output = now
        play = _on_our_clock(getattr(times, "outputBufferDacTime", 0.0), times, now, now)
        outdata[:] = self.delay.read(frames, play).reshape(-1, 1)

    # The video's side -------------------------------------------------------------------------------------
    def video_latency(self, seconds: float) -> None:
        """One frame's capture→send latency: the delay follows the median of the last second of them."""
        self._latencies.append(seconds)
        self._ask_delay()

    def nudge(self, seconds: float) -> float:
        """Moves the user's offset (a hotkey); returns the new offset."""
        self.offset += seconds
        if self._latencies:
            self._ask_delay()
        return self.offset

    def _ask_delay(self) -> None:
        # Never shorter than two blocks and a margin: the output would ask for sound not yet captured (a gap).
        shortest = 2 * self.block / self.rate + MARGIN_SECONDS
        self.delay.set_delay(max(float(np.median(self._latencies)) + self.offset, shortest))

    @property
    def status(self) -> str:
        """The HUD line: the delay and the input level, or what is wrong."""
        if self.problem:
            return f"audio: {self.problem}"
        bars = "|" * int(np.clip((self.level + 60) / 6, 0, 10))
        delay = ""
        if self.passthrough:
            delay = f"delay {self.delay.delay * 1000:.0f} ms (offset {self.offset * 1000:+.0f})  "
        return f"audio: {delay}input {self.level:.0f} dB {bars}"


def _default_device(backend: Any, which: int) -> int | None:
    try:
        value = backend.default.device[which]
    except (AttributeError, IndexError, TypeError):
        return None
    return int(value) if value is not None and int(value) >= 0 else None


def _on_our_clock(stream_time: float, times: Any, now: float, fallback: float) -> float:
    """A PortAudio stream time on our monotonic clock (its `currentTime` is `now` on ours); where the host gives
    no times (0), the fallback."""
    current = getattr(times, "currentTime", 0.0)
    if not stream_time or not current:
        return fallback
    return now + (stream_time - current)


class _Shared:
    """The run's one engine (one microphone), shared by the stages that use it: the first opens it, the last
    to let go closes it."""

    lock = threading.Lock()
    engine: AudioEngine | None = None
    users = 0
    backend: Any = None  # None: the sounddevice module; `use_backend` puts a simulated card here


@contextmanager
def use_backend(backend: Any) -> Iterator[None]:
    """Runs opened meanwhile use `backend` (a simulated card: the benchmark and the tests) for their sound."""
    before, _Shared.backend = _Shared.backend, backend
    try:
        yield
    finally:
        _Shared.backend = before


def wants_audio(config: Config) -> bool:
    """A run opens the microphone only when asked: `--audio`, or a voice-only source."""
    return config.audio.enabled or config.source.kind == "audio"


def acquire_engine(config: Config) -> AudioEngine | None:
    """The run's engine, started on first use (None when the run has no sound)."""
    if not wants_audio(config):
        return None
    with _Shared.lock:
        if _Shared.engine is None:
            engine = AudioEngine(config.audio, passthrough=config.audio.enabled, backend=_Shared.backend)
            engine.said = engine.start()
            log.debug("%s", engine.said)
            _Shared.engine = engine
        _Shared.users += 1
        return _Shared.engine


def running_engine() -> AudioEngine | None:
    """The run's engine, if it has one: for the line saying what it opened."""
    return _Shared.engine


def release_engine(engine: AudioEngine | None) -> None:
    if engine is None:
        return
    with _Shared.lock:
        _Shared.users -= 1
        if _Shared.users <= 0 and _Shared.engine is engine:
            engine.close()
            _Shared.engine, _Shared.users = None, 0
