import sys
import threading
import types
from typing import ClassVar

import pytest

from avatarcam.config import HotkeyConfig, load_config
from avatarcam.hotkeys import Hotkeys

# What the default bindings offer: each is an action some part of the live pipeline runs (see test_pipeline).
DEFAULT_ACTIONS = (
    "next_avatar",
    "previous_avatar",
    "reset_reference",
    "passthrough",
    "freeze",
    "hud",
    "mirror",
    "badge",
    "quit",
    "edit_smiling",
    "edit_old",
    "edit_young",
    "edit_female",
    "new_identity",
    "keep_identity",
    "audio_later",
    "audio_earlier",
)


def test_preview_keys_map_to_actions():
    hotkeys = Hotkeys(HotkeyConfig())
    assert hotkeys.feed_preview_key("n") == "next_avatar"
    assert hotkeys.feed_preview_key("x") is None
    assert hotkeys.feed_preview_key(None) is None
    assert hotkeys.feed_preview_key("q") == "quit"
    assert hotkeys.poll() == ["next_avatar", "quit"]
    assert hotkeys.poll() == []


def test_every_default_action_has_a_preview_key_and_a_global_combo():
    bindings = HotkeyConfig().bindings
    hotkeys = Hotkeys(HotkeyConfig())
    assert hotkeys.actions == tuple(bindings) and sorted(hotkeys.actions) == sorted(DEFAULT_ACTIONS)
    for action, keys in bindings.items():
        assert sum(len(key) == 1 for key in keys) == 1, action  # one preview-window key
        assert any(key.startswith("<") and "+" in key for key in keys), action  # and a system-wide combination
        for key in keys:
            if len(key) == 1:
                hotkeys.feed_preview_key(key)
    assert sorted(hotkeys.poll()) == sorted(DEFAULT_ACTIONS)


def test_rebound_preview_key():
    config = HotkeyConfig(bindings={**HotkeyConfig().bindings, "mirror": ("x", "<ctrl>+<alt>+x")})
    hotkeys = Hotkeys(config)
    assert hotkeys.feed_preview_key("x") == "mirror"
    assert hotkeys.feed_preview_key("m") is None
    assert hotkeys.feed_preview_key("n") == "next_avatar"  # the other bindings stay
    assert hotkeys.poll() == ["mirror", "next_avatar"]


def test_rebound_key_from_a_config_file(tmp_path):
    """A config file rebinds one action (a single key given as a string) and keeps the other defaults."""
    path = tmp_path / "keys.toml"
    path.write_text('[hotkeys.bindings]\nmirror = "x"\nstamp = ["s", "<ctrl>+<alt>+s"]\n')
    config = load_config(path).hotkeys
    assert config.bindings["mirror"] == ("x",) and config.bindings["stamp"] == ("s", "<ctrl>+<alt>+s")
    assert config.bindings["quit"] == HotkeyConfig().bindings["quit"]
    hotkeys = Hotkeys(config)
    assert hotkeys.feed_preview_key("x") == "mirror" and hotkeys.feed_preview_key("m") is None
    assert hotkeys.feed_preview_key("s") == "stamp"  # any action name: whichever stage offers it runs it
    assert "stamp" in hotkeys.actions


def test_any_action_name_can_be_bound():
    """Hotkeys do not know the actions: a stage's new action needs only its binding (the pipeline runs it, and
    warns about names nothing offers; see test_pipeline)."""
    hotkeys = Hotkeys(HotkeyConfig(bindings={"explode": ("e", "<ctrl>+e")}))
    assert hotkeys.actions == ("explode",)
    assert hotkeys.feed_preview_key("e") == "explode"
    assert hotkeys.feed_preview_key("q") is None  # only what the table binds
    assert hotkeys.poll() == ["explode"]


@pytest.mark.parametrize("key", ["m", "<ctrl>+<alt>+m"])
def test_a_key_bound_twice_is_rejected(key):
    bindings = {**HotkeyConfig().bindings, "explode": (key,)}
    with pytest.raises(ValueError, match=r"hotkey '.*' is bound to both 'mirror' and 'explode'"):
        Hotkeys(HotkeyConfig(bindings=bindings))


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
    combos = {key for keys in HotkeyConfig().bindings.values() for key in keys if len(key) > 1}
    assert set(listener.hotkeys) == combos and len(combos) == len(DEFAULT_ACTIONS)  # no preview key goes global
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
