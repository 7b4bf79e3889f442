"""Animators: draw the avatar for one Motion. Built by name from `avatarcam.registry.ANIMATORS`.

An animator works in two steps, so the stage chain can run them on two threads: `plan` (the part that needs the
motion and keeps state from frame to frame: geometry, the model of the moment) and `draw` (the pixels, from the
plan alone). Calling it does both."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from avatarcam.types import Avatar, Face, Frame, Motion


class Animator(Protocol):
    name: str
    draws_portrait: bool  # False: it draws the driver's own frame (the face swap), and the portrait only poses

    @property
    def status(self) -> str:
        """A few words for the HUD on what the animator is doing ("" when there is nothing to say)."""
        ...

    def prepare(self, avatar: Avatar) -> None:
        """Per-avatar set-up (meshes, caches, model state); called once per avatar."""

    def plan(self, motion: Motion, driver: Frame | None = None, driver_face: Face | None = None) -> Any:
        """Everything `draw` needs for this frame. `driver` is the camera frame and `driver_face` its tracked face,
        when there are (the warp lends the driver's mouth interior from them; the face swap draws on them)."""

    def draw(self, plan: Any) -> np.ndarray:
        """The avatar image (size×size×3 uint8 RGB) of a plan; must not read what `plan` of a later frame (or
        `prepare` of another avatar) changes."""

    def __call__(self, motion: Motion, driver: Frame | None = None, driver_face: Face | None = None) -> np.ndarray:
        """draw(plan(...))."""

    def close(self) -> None: ...


def draws_portrait(name: str) -> bool:
    """Whether the animator called `name` draws the avatar's portrait (an edit of it is then made once, to the
    portrait) or the driver's frame (an edit is then made every frame)."""
    from avatarcam.registry import ANIMATORS

    return bool(ANIMATORS.factory(name).draws_portrait)
