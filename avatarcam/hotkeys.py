"""Hotkeys: system-wide combos (pynput) and single keys in the preview window, both feeding one queue of action
names."""

from __future__ import annotations

import queue
import sys
from typing import Any

from avatarcam.config import HotkeyConfig


class Hotkeys:
    """Collects actions from any thread; the pipeline drains them once per frame with poll()."""

    def __init__(self, config: HotkeyConfig) -> None:
        """One table binds each action to its keys: a single character in the preview window, anything longer
        (a combination such as "<ctrl>+<alt>+n") system-wide. Which stage runs an action is the pipeline's
        business: a new action needs only its binding here."""
        self.actions = tuple(config.bindings)
        self._bindings: dict[str, str] = {}
        self._preview: dict[str, str] = {}
        for action, keys in config.bindings.items():
            for key in keys:
                table = self._preview if len(key) == 1 else self._bindings
                if key in table:
                    raise ValueError(f"hotkey '{key}' is bound to both '{table[key]}' and '{action}'")
                table[key] = action
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
