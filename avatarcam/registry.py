"""Registries: the sources, sinks, animators and stages avatarcam can build, by name.

All four have the same shape: a name maps to "module:factory", imported only when that name is built (a camera
run never loads the face swap; the live path never loads training code). Sources, sinks and stages are built
from the whole `Config`, animators from its `animator` section. A new stage is one file plus one line in
`STAGES`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any


class Registry:
    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self.entries: dict[str, str | Callable[..., Any]] = dict(entries)  # name → "module:attribute" or factory
        self._loaded: dict[str, Callable[..., Any]] = {}

    def names(self) -> tuple[str, ...]:
        return tuple(self.entries)

    def add(self, name: str, factory: str | Callable[..., Any]) -> None:
        """Registers a factory (or its "module:attribute" path) under `name`; a plug-in's way in."""
        self.entries[name] = factory
        self._loaded.pop(name, None)

    def factory(self, name: str) -> Callable[..., Any]:
        if name not in self.entries:
            raise ValueError(f"unknown {self.kind} '{name}' (valid: {', '.join(self.entries)})")
        if name not in self._loaded:
            entry = self.entries[name]
            if isinstance(entry, str):
                module, attribute = entry.split(":")
                entry = functools.reduce(getattr, attribute.split("."), importlib.import_module(module))
            self._loaded[name] = entry
        return self._loaded[name]

    def create(self, name: str, *args: Any) -> Any:
        return self.factory(name)(*args)


SOURCES = Registry(
    "source",
    {
        "camera": "avatarcam.io.sources:CameraSource.from_config",
        "file": "avatarcam.io.sources:VideoFileSource.from_config",
        "demo": "avatarcam.demo:DemoSource.from_config",
        "audio": "avatarcam.io.sources:NoCameraSource.from_config",
    },
)
SINKS = Registry(
    "sink",
    {
        "virtual": "avatarcam.io.sinks:VirtualCameraSink.from_config",
        "preview": "avatarcam.io.sinks:PreviewSink.from_config",
        "file": "avatarcam.io.sinks:RecorderSink.from_config",
        "null": "avatarcam.io.sinks:NullSink.from_config",
    },
)
ANIMATORS = Registry(
    "animator",
    {
        "warp": "avatarcam.animators.warp:WarpAnimator",
        "talking-head": "avatarcam.animators.talking_head.animator:TalkingHeadAnimator",
        "faceswap": "avatarcam.animators.faceswap.animator:FaceSwapAnimator",
    },
)
STAGES = Registry(
    "stage",
    {
        "track": "avatarcam.stages.track:TrackStage",
        "retarget": "avatarcam.stages.retarget:RetargetStage",
        "animate": "avatarcam.stages.animate:AnimateStage",
        "draw": "avatarcam.stages.draw:DrawStage",
        "edit": "avatarcam.stages.edit:EditStage",
        "compose": "avatarcam.stages.compose:ComposeStage",
        "mirror": "avatarcam.stages.mirror:MirrorStage",
        "voice": "avatarcam.stages.voice:VoiceStage",
        "audio": "avatarcam.stages.audio:AudioStage",
        "watermark": "avatarcam.stages.watermark:WatermarkStage",
        "badge": "avatarcam.stages.badge:BadgeStage",
    },
)

_BY_KIND = {registry.kind: registry for registry in (SOURCES, SINKS, ANIMATORS, STAGES)}


def by_kind(kind: str) -> Registry:
    return _BY_KIND[kind]
