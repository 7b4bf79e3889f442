"""Animators: draw the avatar for one Motion. Chosen by name from a registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from avatarcam.config import AnimatorConfig
from avatarcam.types import Avatar, Motion


class Animator(Protocol):
    name: str
    status: str  # a few words for the HUD on what the animator is doing ("" when there is nothing to say)

    def prepare(self, avatar: Avatar) -> None:
        """Per-avatar set-up (meshes, caches, model state); called once per avatar, and on a hotkey."""

    def __call__(self, motion: Motion) -> np.ndarray:
        """The avatar image (size×size×3 uint8 RGB) doing `motion`."""

    def close(self) -> None: ...


_REGISTRY: dict[str, Callable[[AnimatorConfig], Animator]] = {}


def register(name: str) -> Callable:
    def wrap(factory: Callable[[AnimatorConfig], Animator]) -> Callable[[AnimatorConfig], Animator]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def available() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def create(config: AnimatorConfig) -> Animator:
    _load_builtins()
    if config.name not in _REGISTRY:
        raise ValueError(f"unknown animator '{config.name}' (available: {', '.join(available())})")
    return _REGISTRY[config.name](config)


def _load_builtins() -> None:
    from avatarcam.animators import faceswap, talking_head, warp  # noqa: F401  (they register themselves)
