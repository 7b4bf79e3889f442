"""Hotkeys: system-wide combos (pynput) and single keys in the preview window, both feeding one action queue."""

from __future__ import annotations

import queue
import sys
from typing import Any

from avatarcam.config import HotkeyConfig

ACTIONS = (
    "next_avatar",
    "previous_avatar",
    "reset_reference",
    "passthrough",
    "freeze",
    "hud",
    "mirror",
    "quit",
)


class Hotkeys:
    """Collects actions from any thread; the pipeline drains them once per frame with poll()."""

    def __init__(self, config: HotkeyConfig) -> None:
        for action in (*config.bindings, *config.preview_keys):
            if action not in ACTIONS:
                raise ValueError(f"unknown hotkey action '{action}' (known: {', '.join(ACTIONS)})")
        self._bindings = {combo: action for action, combo in config.bindings.items() if combo}
        self._preview = {key: action for action, key in config.preview_keys.items() if key}
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._listener: Any = None

    def start(self, global_keys: bool) -> str:
        """Start listening system-wide if asked and possible; returns a line saying which keys work."""
        if not global_keys:
            return "hotkeys: preview-window keys only (global hotkeys off)"
        try:
            from pynput import keyboard

            listener = keyboard.GlobalHotKeys(
                {combo: (lambda action=action: self._queue.put(action)) for combo, action in self._bindings.items()}
            )
            listener.start()
            # The listener thread dies at once when it cannot reach the input system (no X server, no permission).
            listener.join(0.1)
            if not listener.is_alive():
                raise RuntimeError("the keyboard listener stopped right after starting")
        except Exception as exc:  # noqa: BLE001 - pynput raises backend-specific errors, even on import
            # pynput's messages run long (advice included); the first sentence says what failed.
            reason = " ".join(str(exc).split()).split(" Try ")[0][:120] or type(exc).__name__
            return f"hotkeys: global hotkeys unavailable ({reason}); preview-window keys only"
        self._listener = listener
        combos = ", ".join(f"{combo} {action}" for combo, action in self._bindings.items())
        note = " (macOS: allow your terminal under Privacy → Input Monitoring)" if sys.platform == "darwin" else ""
        return f"hotkeys: {combos}{note}"

    def feed_preview_key(self, ch: str | None) -> str | None:
        """Queue the action bound to a key pressed in the preview window; returns it (None if unbound)."""
        action = self._preview.get(ch) if ch else None
        if action:
            self._queue.put(action)
        return action

    def poll(self) -> list[str]:
        """Drain queued action names, oldest first."""
        actions = []
        while True:
            try:
                actions.append(self._queue.get_nowait())
            except queue.Empty:
                return actions

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
