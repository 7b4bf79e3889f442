"""Animators: draw the avatar for one Motion. Built by name from `avatarcam.registry.ANIMATORS`."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from avatarcam.types import Avatar, Face, Frame, Motion


class Animator(Protocol):
    name: str

    @property
    def status(self) -> str:
        """A few words for the HUD on what the animator is doing ("" when there is nothing to say)."""
        ...

    def prepare(self, avatar: Avatar) -> None:
        """Per-avatar set-up (meshes, caches, model state); called once per avatar."""

    def __call__(self, motion: Motion, driver: Frame | None = None, driver_face: Face | None = None) -> np.ndarray:
        """The avatar image (size×size×3 uint8 RGB) doing `motion`. `driver` is the camera frame and
        `driver_face` its tracked face, when there are (the warp lends the driver's mouth interior from them;
        the face swap draws on them)."""

    def close(self) -> None: ...
