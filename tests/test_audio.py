"""Sound: the delayed voice (exact, ramped, no drift), the voice-driven mouth on real synthesized speech, the
hand-over between voice and tracking, and sound devices that are missing or go away. No sound device is used:
a simulated card stands at the `sounddevice` seam, on a simulated clock."""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, resample_poly, sosfilt

from avatarcam.audio.delay import DelayLine
from avatarcam.audio.devices import AudioUnavailable, Device, loopback_hint, pick_output
from avatarcam.audio.engine import AudioEngine, use_backend
from avatarcam.audio.simulated import SimulatedSoundCard, voiced_syllables
from avatarcam.audio.vad import load_voice_activity
from avatarcam.audio.voice import VoiceAnalyzer
from avatarcam.avatar import load_avatar
from avatarcam.config import AudioConfig, Config, load_config
from avatarcam.motion.retarget import mouth_gap
from avatarcam.stages import Packet
from avatarcam.stages.voice import VoiceStage
from avatarcam.tracking.geometry import canonical_shape, to_canonical
from avatarcam.types import Frame, Motion

RATE = 48000


def speech(text: str, folder: Path) -> np.ndarray:
    """`text` spoken by espeak-ng, at RATE, with half a second of quiet either side."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (`apt install espeak-ng`)")
    path = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path)) as fh:
        rate = fh.getframerate()
        samples = np.frombuffer(fh.readframes(fh.getnframes()), np.int16).astype(np.float32) / 32768
    quiet = np.zeros(RATE // 2, np.float32)
    return np.concatenate([quiet, resample_poly(samples, RATE, rate).astype(np.float32), quiet])


def engine_on(card: SimulatedSoundCard, passthrough: bool = True, **settings) -> AudioEngine:
    engine = AudioEngine(AudioConfig(vad="energy", **settings), passthrough, card, card.clock, watchdog=False)
    engine.start()
    return engine


def delay_at(card: SimulatedSoundCard, play_time: float, span: float = 0.05) -> float:
    """The delay (seconds) between the microphone and what was played at `play_time`, by cross-correlation: the
    shift of the microphone's signal (on its own, drifting clock) that best matches `span` seconds of output."""
    start, played = card.played_signal()
    first = int((play_time - start) * RATE)
    out = played[first : first + int(span * RATE)]
    mic_open = next(s for s in card.streams if s.kind == "input").opened_at
    lags = np.arange(0.0, 0.4, 1.0 / RATE)
    captured = play_time - lags - mic_open + card.latency
    starts = np.round(captured * RATE * (1.0 + card.drift)).astype(int)
    valid = starts >= 0
    scores = [
        float(out @ card.microphone[j : j + len(out)]) if ok else -np.inf for j, ok in zip(starts, valid, strict=True)
    ]
    return float(lags[int(np.argmax(scores))])


def run_with_latency(card: SimulatedSoundCard, engine: AudioEngine, seconds: float, latency) -> None:
    """The video's side: 30 frames a second, each with capture→send latency `latency(t)`."""
    for _ in range(int(seconds * 30)):
        engine.video_latency(latency(card.now))
        card.advance(1 / 30)


def test_the_voice_is_delayed_exactly_as_asked():
    card = SimulatedSoundCard(np.random.default_rng(0).standard_normal(RATE * 6).astype(np.float32) * 0.05)
    engine = engine_on(card)
    run_with_latency(card, engine, 5.0, lambda t: 0.140)
    for t in (2.0, 3.5, 4.5):
        assert delay_at(card, t) == pytest.approx(0.140, abs=0.005)
    engine.close()


def test_a_latency_change_is_followed_within_two_seconds_without_a_click():
    # Smooth sound (noise under 800 Hz): a jump in it, a click, would stand far out of its own sample-to-sample steps.
    noise = np.random.default_rng(2).standard_normal(RATE * 8)
    tone = sosfilt(butter(6, 800, fs=RATE, output="sos"), noise).astype(np.float32)
    tone *= 0.3 / np.abs(tone).max()
    card = SimulatedSoundCard(tone)
    engine = engine_on(card)
    run_with_latency(card, engine, 7.0, lambda now: 0.100 if now < 3.0 else 0.180)
    assert delay_at(card, 2.5) == pytest.approx(0.100, abs=0.005)
    assert delay_at(card, 5.0) == pytest.approx(0.180, abs=0.005)  # followed within 2 s
    start, played = card.played_signal()
    settled = played[int((1.0 - start) * RATE) :]
    # No click: the output never moves faster, sample to sample, than the input itself does.
    assert np.abs(np.diff(settled)).max() <= 1.05 * np.abs(np.diff(tone)).max()
    assert engine.delay.moves >= 1
    engine.close()


def test_no_drift_over_ten_simulated_minutes():
    noise = np.random.default_rng(1).standard_normal(RATE * 610).astype(np.float32) * 0.05
    card = SimulatedSoundCard(noise, drift=200e-6)  # the microphone's clock 200 ppm fast: 120 ms in ten minutes
    engine = engine_on(card)
    run_with_latency(card, engine, 605.0, lambda t: 0.150)
    errors = [abs(delay_at(card, t, span=0.02) - 0.150) for t in range(30, 601, 60)]
    assert max(errors) <= 0.005, errors
    assert engine.delay.moves >= 10  # the drift was corrected, many times, in small steps
    engine.close()


def test_the_delay_line_plays_silence_before_any_sound_and_keeps_within_its_buffer():
    line = DelayLine(RATE, max_seconds=0.5)
    assert not line.read(480, 0.0).any()
    line.set_delay(5.0)
    assert line.delay == 0.5  # clamped to what the buffer holds


def test_voice_opening_follows_the_speech_envelope(tmp_path):
    voice = speech("Hello everyone, thanks for joining the call. The avatar follows my voice now.", tmp_path)
    analyzer = VoiceAnalyzer(RATE, load_voice_activity("silero"))
    shapes = []
    for k in range(len(voice) // 480):
        analyzer.feed(voice[k * 480 : (k + 1) * 480], (k + 1) * 480 / RATE)
        shapes.append(analyzer.latest)
    opening = np.array([s.opening for s in shapes])
    ends = np.array([int(s.time * RATE) for s in shapes])
    envelope = np.array([np.sqrt(np.mean(voice[max(0, e - 960) : e] ** 2)) for e in ends])
    assert np.corrcoef(opening, envelope)[0, 1] >= 0.7
    assert opening[: RATE // 2 // 480 - 5].max() < 0.05  # the quiet before the speech opens nothing
    assert opening.max() > 0.6


def test_devices_missing_say_how_to_add_a_loopback():
    mic = Device(0, "mic", 1, 0, 48000)
    speakers = Device(1, "speakers", 0, 2, 48000)
    with pytest.raises(AudioUnavailable, match="module-null-sink|VB-Cable|BlackHole"):
        pick_output([mic, speakers], "auto", [])  # never the speakers: the voice would echo
    pulse = Device(2, "pulse", 32, 32, 48000)
    assert pick_output([mic, speakers, pulse], "auto", ["avatarcam"]) == (pulse, "avatarcam")
    assert "VB-Cable" in loopback_hint("win32") and "BlackHole" in loopback_hint("darwin")


def test_no_sound_device_says_so_once_and_the_engine_waits():
    card = SimulatedSoundCard()
    card.unplug()
    engine = engine_on(card)
    assert "no microphone" in engine.problem and engine.status.startswith("audio: no microphone")
    engine.close()


def test_a_device_unplugged_mid_call_is_retried(tmp_path):
    card = SimulatedSoundCard(voiced_syllables(20.0))
    engine = engine_on(card)
    card.advance(2.0)
    engine.check()
    assert engine.problem == ""
    card.unplug()
    card.advance(2.0)
    engine.check()
    assert "lost" in engine.status
    card.plug_in()
    card.advance(2.5)
    engine.check()
    assert engine.problem == ""
    heard = card.heard
    card.advance(1.0)
    assert card.heard > heard  # the microphone is heard again
    engine.close()


def voice_stage(card: SimulatedSoundCard, avatar) -> VoiceStage:
    config = replace(Config(), audio=AudioConfig(vad="energy", blend_seconds=0.3))
    stage = VoiceStage(config)  # a run without --audio opens no engine: the test gives it one on the card
    assert stage.engine is None
    stage.engine = engine_on(card, passthrough=False)
    stage.prepare(avatar)
    return stage


def test_face_lost_the_voice_moves_the_mouth_then_tracking_takes_back(tmp_path):
    default_avatar = load_avatar(None, 256)
    card = SimulatedSoundCard(voiced_syllables(6.0))
    stage = voice_stage(card, default_avatar)
    face = default_avatar.face
    rest = Motion(face.landmarks.copy(), face.rotation, tracked=True)
    shape = canonical_shape(face)

    def gap(motion: Motion) -> float:
        canon = to_canonical(motion.landmarks.astype(np.float64), face.scale, motion.rotation, face.translation)
        return mouth_gap(canon) - mouth_gap(shape)

    def step(tracked: bool) -> Motion:
        card.advance(1 / 30)
        packet = Packet(Frame(default_avatar.image, int(card.now * 1e9)), default_avatar)
        packet.motion = Motion(rest.landmarks.copy(), rest.rotation, tracked)
        stage(packet)
        assert packet.motion is not None
        return packet.motion

    tracked = [step(True) for _ in range(30)]
    assert all(np.array_equal(m.landmarks, rest.landmarks) for m in tracked)  # tracking alone drives the face
    lost = [gap(step(False)) for _ in range(120)]
    assert max(lost) > 0.05 and np.std(lost) > 0.01  # the mouth opens and closes with the syllables
    back = [step(True) for _ in range(15)]  # half a second
    assert np.array_equal(back[-1].landmarks, rest.landmarks)  # blended back to tracking within 0.3 s
    assert np.abs(back[0].landmarks - rest.landmarks).max() > 0  # but not at once
    stage.close()


def test_run_with_audio_and_no_sound_device_runs_the_video(monkeypatch, capsys):
    from avatarcam import cli
    from avatarcam.audio import engine

    def no_portaudio():
        raise AudioUnavailable("PortAudio is missing (no library)")

    monkeypatch.setattr(engine, "load_backend", no_portaudio)
    code = cli.main(["run", "--source", "demo", "--sink", "null", "--seconds", "2", "--audio", "--no-global-hotkeys"])
    out = capsys.readouterr()
    assert code == 0
    said = [line for line in (out.out + out.err).splitlines() if line.startswith("audio:")]
    assert said == ["audio: PortAudio is missing (no library); the video runs on without it"]
    assert "sent" in out.out and " 0 frames" not in out.out


def test_voice_only_run_on_a_simulated_card(capsys):
    from avatarcam import cli

    card = SimulatedSoundCard(voiced_syllables(10.0))
    card.run_in_real_time()
    try:
        with use_backend(card):
            code = cli.main(["run", "--source", "audio", "--sink", "null", "--seconds", "2", "--no-global-hotkeys"])
    finally:
        card.stop()
    out = capsys.readouterr()
    assert code == 0
    assert "audio: microphone 'simulated microphone'" in out.out + out.err
    assert not card.played  # without --audio the voice drives the mouth but is not passed on


def test_audio_settings_load():
    config = load_config(None, {"audio.enabled": True, "audio.offset_ms": 40})
    assert config.audio.enabled and config.audio.offset_ms == 40.0
    stages = config.chain.stages
    assert stages.index("retarget") < stages.index("voice") < stages.index("animate")  # it changes the motion
    assert stages[-3:] == ("audio", "watermark", "badge")  # the latency is measured as late as the marks allow


def test_doctor_lists_the_sound_devices_and_the_loopback(monkeypatch):
    from avatarcam import doctor

    card = SimulatedSoundCard()
    monkeypatch.setattr(doctor, "load_backend", lambda: card)
    check = doctor.check_audio()
    assert check.ok and "0: simulated microphone" in check.detail
    assert "plays into 'avatarcam (simulated loopback)'" in check.detail
    card.unplug()
    check = doctor.check_audio()
    assert not check.ok and "no microphone" in check.detail


def test_voice_evaluation_on_a_real_clip_with_sound(shared_data):
    from avatarcam.eval.voice import evaluate_clip

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    result = evaluate_clip(shared_data / "driving" / "vrt_1.mp4")
    assert result is not None and result.tracked == result.frames
    assert result.correlation > 0.3  # one of the clips where voice and face agree (README: most do not)
    assert evaluate_clip(shared_data / "driving" / "dfl_Obama_speaking.mp4") is None  # no sound track


def test_a_delay_shorter_than_the_blocks_would_leave_gaps_so_it_is_never_asked():
    noise = np.random.default_rng(3).standard_normal(RATE * 3).astype(np.float32) * 0.05
    card = SimulatedSoundCard(noise)
    engine = engine_on(card)
    run_with_latency(card, engine, 2.5, lambda t: 0.001)  # a video latency no sound path could meet
    assert engine.delay.delay == pytest.approx(0.025)  # two 10 ms blocks and the margin
    start, played = card.played_signal()
    settled = played[int((1.0 - start) * RATE) :]
    windows = settled[: len(settled) // 480 * 480].reshape(-1, 480)
    assert (np.abs(windows).max(axis=1) > 0).all()  # no block of silence: no dropout
    engine.close()
