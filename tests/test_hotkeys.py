import sys
import threading
import types
from typing import ClassVar

import pytest

from avatarcam.config import HotkeyConfig
from avatarcam.hotkeys import ACTIONS, Hotkeys


def test_preview_keys_map_to_actions():
    hotkeys = Hotkeys(HotkeyConfig())
    assert hotkeys.feed_preview_key("n") == "next_avatar"
    assert hotkeys.feed_preview_key("x") is None
    assert hotkeys.feed_preview_key(None) is None
    assert hotkeys.feed_preview_key("q") == "quit"
    assert hotkeys.poll() == ["next_avatar", "quit"]
    assert hotkeys.poll() == []


def test_every_default_action_has_a_preview_key():
    hotkeys = Hotkeys(HotkeyConfig())
    for key in HotkeyConfig().preview_keys.values():
        hotkeys.feed_preview_key(key)
    assert sorted(hotkeys.poll()) == sorted(ACTIONS)


def test_rebound_preview_key():
    config = HotkeyConfig()
    config.preview_keys["mirror"] = "x"
    hotkeys = Hotkeys(config)
    assert hotkeys.feed_preview_key("x") == "mirror"
    assert hotkeys.feed_preview_key("m") is None


def test_unknown_action_is_rejected():
    config = HotkeyConfig()
    config.bindings["explode"] = "<ctrl>+e"
    with pytest.raises(ValueError, match="explode"):
        Hotkeys(config)


def test_keys_from_many_threads_all_arrive():
    hotkeys = Hotkeys(HotkeyConfig())
    threads = [threading.Thread(target=lambda: [hotkeys.feed_preview_key("f") for _ in range(200)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hotkeys.poll() == ["freeze"] * 800


def test_global_keys_off():
    hotkeys = Hotkeys(HotkeyConfig())
    assert "preview-window keys only" in hotkeys.start(global_keys=False)
    hotkeys.stop()


class FakeGlobalHotKeys:
    made: ClassVar[list["FakeGlobalHotKeys"]] = []

    def __init__(self, hotkeys: dict) -> None:
        self.hotkeys = hotkeys
        self.alive = False
        FakeGlobalHotKeys.made.append(self)

    def start(self) -> None:
        self.alive = True

    def join(self, timeout: float | None = None) -> None:
        pass

    def is_alive(self) -> bool:
        return self.alive

    def stop(self) -> None:
        self.alive = False


def fake_pynput(monkeypatch, listener_cls) -> None:
    keyboard = types.ModuleType("pynput.keyboard")
    keyboard.GlobalHotKeys = listener_cls
    pynput = types.ModuleType("pynput")
    pynput.keyboard = keyboard
    monkeypatch.setitem(sys.modules, "pynput", pynput)
    monkeypatch.setitem(sys.modules, "pynput.keyboard", keyboard)


def test_global_hotkeys_feed_the_queue(monkeypatch):
    monkeypatch.setattr(FakeGlobalHotKeys, "made", [])
    fake_pynput(monkeypatch, FakeGlobalHotKeys)
    hotkeys = Hotkeys(HotkeyConfig())
    message = hotkeys.start(global_keys=True)
    assert "<ctrl>+<alt>+n next_avatar" in message
    listener = FakeGlobalHotKeys.made[0]
    assert set(listener.hotkeys) == set(HotkeyConfig().bindings.values())
    listener.hotkeys["<ctrl>+<alt>+r"]()
    listener.hotkeys["<ctrl>+<alt>+q"]()
    assert hotkeys.poll() == ["reset_reference", "quit"]
    hotkeys.stop()
    assert not listener.alive


def test_global_hotkeys_unavailable_is_reported_not_raised(monkeypatch):
    def no_x_server(hotkeys: dict) -> None:
        raise ImportError("this platform is not supported: failed to acquire X connection")

    fake_pynput(monkeypatch, no_x_server)
    hotkeys = Hotkeys(HotkeyConfig())
    message = hotkeys.start(global_keys=True)
    assert "global hotkeys unavailable" in message and "X connection" in message
    assert hotkeys.feed_preview_key("h") == "hud"
    hotkeys.stop()


def test_dead_listener_is_reported(monkeypatch):
    class DiesAtOnce(FakeGlobalHotKeys):
        def start(self) -> None:
            self.alive = False

    fake_pynput(monkeypatch, DiesAtOnce)
    message = Hotkeys(HotkeyConfig()).start(global_keys=True)
    assert "global hotkeys unavailable" in message


def test_real_pynput_never_raises_here():
    hotkeys = Hotkeys(HotkeyConfig())
    message = hotkeys.start(global_keys=True)
    assert message.startswith("hotkeys:")
    hotkeys.stop()
