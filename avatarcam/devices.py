"""Which source and sinks a run opens: the one the config names (from the registries), or with `auto` the best
one this machine has, falling back and saying why (no camera: demo motion; no virtual camera: a preview window,
else a recording)."""

from __future__ import annotations

from avatarcam.config import Config
from avatarcam.io.sinks import PreviewSink, Sink, SinkError
from avatarcam.io.sources import Source, SourceError
from avatarcam.registry import SINKS, SOURCES

SAID = {
    "virtual": "output: {name}",
    "preview": "output: preview window",
    "file": "output: recording to {path}",
    "null": "output: none (frames discarded)",
}


def open_source(config: Config) -> tuple[Source, str]:
    """The source the config asks for, and a line saying what was opened (or fallen back to, and why)."""
    kind, src = config.source.kind, config.source
    if kind == "auto":
        try:
            source, kind = SOURCES.create("camera", config), "camera"
        except SourceError as exc:
            return SOURCES.create("demo", config), f"no camera found ({exc}): using demo motion"
    else:
        source = SOURCES.create(kind, config)
    if kind == "file":
        return source, f"source: {src.path} ({source.fps:.0f} fps, {'looping' if src.loop else 'once'})"
    if kind == "camera":
        return source, f"source: camera {src.camera} ({source.fps:.0f} fps)"
    return source, f"source: {source.name}"


def open_sink(config: Config) -> tuple[Sink, str]:
    """The sink the config asks for, and a line saying what was opened (or fallen back to, and why)."""
    kind, path = config.output.sink, config.output.path
    if kind != "auto":
        sink = SINKS.create(kind, config)
        return sink, SAID.get(kind, "output: {name}").format(name=sink.name, path=path)
    try:
        camera = SINKS.create("virtual", config)
        return camera, f"output: {camera.name}"
    except SinkError as exc:
        no_camera, hint = exc.reason, exc.hint
    try:
        return SINKS.create("preview", config), f"{no_camera}: showing a preview window instead.\n{hint}"
    except SinkError as exc:
        no_preview = exc.reason
    return SINKS.create("file", config), f"{no_camera}; {no_preview}: recording to {path} instead.\n{hint}"


def open_monitor(config: Config, sink: Sink) -> tuple[Sink | None, str]:
    """A preview window beside a sink the user cannot see (virtual camera, recording), to carry the HUD and take
    keys; None where the config turns it off or no window can be shown. Also says what it did."""
    out = config.output
    if sink.private or not out.monitor:
        return None, ""
    try:
        return PreviewSink("avatarcam (monitor)", out.width, out.height), "monitor: a preview window with the HUD"
    except SinkError as exc:
        return None, f"no monitor window ({exc.reason}); the HUD is off, the output is unchanged"
