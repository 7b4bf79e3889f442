"""Sound devices by name: the microphone, and the loopback device the call hears as its microphone.

A call app cannot take sound from a program directly; it listens to a microphone. A loopback device is a pair:
what is played into its one end comes out of the other as a microphone. On Linux that is a PulseAudio/PipeWire
null sink (its "monitor" is the microphone); on Windows VB-Cable ("CABLE Input" → "CABLE Output"); on macOS
BlackHole. PortAudio on Linux sees only the sound server's one device ("pulse"/"pipewire"), so a null sink is
reached through that device with PULSE_SINK naming the sink.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

LOOPBACK_NAMES = ("avatarcam", "cable input", "blackhole", "loopback", "null")
SERVER_DEVICES = ("pulse", "pipewire")  # PortAudio's ALSA names of the Linux sound servers
SINK_NAME = "avatarcam"


class AudioUnavailable(RuntimeError):
    """No sound here (no PortAudio, no device, a device that would not open): the video runs on without it."""


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    inputs: int
    outputs: int
    rate: float


def list_devices(backend: Any) -> list[Device]:
    try:
        found = backend.query_devices()
    except Exception as exc:  # PortAudio errors are its own type; any failure means the same: no devices
        raise AudioUnavailable(f"sound devices could not be listed: {exc}") from None
    return [
        Device(
            int(d.get("index", i)),
            str(d["name"]),
            int(d["max_input_channels"]),
            int(d["max_output_channels"]),
            float(d["default_samplerate"]),
        )
        for i, d in enumerate(found)
    ]


def pick_input(devices: list[Device], wanted: str, default: int | None) -> Device:
    """The microphone `wanted` names (a number or part of a name); "" the system default, else the first."""
    inputs = [d for d in devices if d.inputs > 0]
    if not inputs:
        raise AudioUnavailable("no microphone found")
    return _pick(inputs, wanted, default, "microphone")


def pick_output(devices: list[Device], wanted: str, server_sinks: list[str]) -> tuple[Device, str]:
    """The device the delayed voice is played into, and the sound-server sink to route it to ("" for none).
    `wanted`: a number or part of a name; "auto" a loopback device, never the speakers (the voice would echo)."""
    outputs = [d for d in devices if d.outputs > 0]
    if wanted != "auto":
        device = _pick(outputs, wanted, None, "output device") if outputs else None
        if device is not None:
            return device, ""
    server = next((d for d in outputs if d.name.lower() in SERVER_DEVICES), None)
    name = SINK_NAME if wanted == "auto" else wanted
    if server is not None and name in server_sinks:
        return server, name
    if wanted == "auto":
        for loopback in LOOPBACK_NAMES:
            for device in outputs:
                if loopback in device.name.lower():
                    return device, ""
    raise AudioUnavailable(f"no loopback device for the call's microphone. {loopback_hint()}")


def _pick(devices: list[Device], wanted: str, default: int | None, what: str) -> Device:
    if wanted.strip().isdigit():
        match = [d for d in devices if d.index == int(wanted)]
    elif wanted:
        match = [d for d in devices if wanted.lower() in d.name.lower()]
    else:
        match = [d for d in devices if d.index == default] or devices
    if not match:
        names = "; ".join(f"{d.index}: {d.name}" for d in devices)
        raise AudioUnavailable(f"no {what} matches '{wanted}' (there are: {names})")
    return match[0]


def server_sinks() -> list[str]:
    """The Linux sound server's sink names (`pactl list short sinks`), empty elsewhere or without pactl."""
    if not sys.platform.startswith("linux") or shutil.which("pactl") is None:
        return []
    try:
        listing = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split("\t")[1] for line in listing.stdout.splitlines() if line.count("\t") >= 1]


def loopback_hint(platform: str | None = None) -> str:
    """How to add the loopback device on this OS, and what the call should use as its microphone."""
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return (
            f"Add one with `pactl load-module module-null-sink sink_name={SINK_NAME} "
            f"sink_properties=device.description={SINK_NAME}` (PulseAudio or PipeWire), then pick "
            f"'Monitor of {SINK_NAME}' as the call's microphone."
        )
    if platform == "win32":
        return "Install VB-Cable (vb-audio.com/Cable), then pick 'CABLE Output' as the call's microphone."
    if platform == "darwin":
        return "Install BlackHole (existential.audio/blackhole), then pick 'BlackHole 2ch' as the call's microphone."
    return "Add a loopback sound device and pick its other end as the call's microphone."
