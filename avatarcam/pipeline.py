"""The live frame loop: camera frames → the stage chain → the sink stage, with hotkeys and statistics.

Pipelined (the default), a feeder thread hands each new camera frame to the stages, which run in groups on
their own threads (see `stages.pipelined`); this thread sends the finished frames and runs the hotkeys.
Sequential, this thread does it all in turn. Hotkeys name actions, and whichever stage offers an action runs it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatarcam.animators import draws_portrait
from avatarcam.avatar import AvatarPreparation
from avatarcam.config import Config
from avatarcam.edits.editor import AttributeEditor
from avatarcam.hotkeys import Hotkeys
from avatarcam.identities.generator import IdentityGenerator
from avatarcam.io.sinks import Sink
from avatarcam.io.sources import Source
from avatarcam.stages import CAMERA_LOST, Action, Packet, Stage
from avatarcam.stages.chain import Chain, StageTimes, build_stages, find_stage
from avatarcam.stages.pipelined import END, PipelinedChain
from avatarcam.stages.sink import SinkStage
from avatarcam.switcher import AvatarSwitcher
from avatarcam.types import Avatar, Frame, now_ns

log = logging.getLogger(__name__)
MESSAGE_SECONDS = 4.0


@dataclass
class LiveStats:
    frames: int = 0
    repeats: int = 0  # frames re-sent while the camera was lost
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=1000))
    send_times: deque = field(default_factory=lambda: deque(maxlen=60))

    @property
    def fps(self) -> float:
        if len(self.send_times) < 2:
            return 0.0
        return (len(self.send_times) - 1) / max(self.send_times[-1] - self.send_times[0], 1e-9)

    def latency(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0


class LivePipeline:
    def __init__(
        self,
        config: Config,
        source: Source,
        sink: Sink,
        avatar: Avatar,
        avatar_paths: list[Path] | None = None,
        hotkeys: Hotkeys | None = None,
        monitor: Sink | None = None,
        stages: list[Stage] | None = None,
    ) -> None:
        """`monitor`: a window only the user sees beside a `sink` the call sees; the HUD goes there. `stages`:
        the chain (default: `config.chain.stages` from the registry); the pipeline closes them."""
        self.config = config
        self.source, self.hotkeys = source, hotkeys
        self.stages = stages if stages is not None else build_stages(config)
        edits = config.edits
        self.switcher = AvatarSwitcher(
            avatar,
            avatar_paths or [],
            AvatarPreparation(config.animator.size),
            edits.attributes,
            lambda: AttributeEditor(edits.precision, edits.threads),
            draws_portrait(config.animator.name),
            identities=lambda: IdentityGenerator(threads=1),
            keep_folder=Path(config.avatars_dir) if config.avatars_dir else None,
        )
        self.output = SinkStage([w for w in (sink, monitor) if w is not None], config.output.hud, self._hud_lines)
        self.actions = self._collect_actions()  # before any thread starts: a clash refuses the pipeline cleanly
        self.runner: Chain | PipelinedChain
        if config.chain.pipelined:
            self.runner = PipelinedChain(self.stages, config.chain.split_after)
        else:
            self.runner = Chain(self.stages)
        self.runner.prepare(avatar)
        self.stats = LiveStats()
        self._message, self._message_until = "", 0.0
        self._running = True
        self._finished = False
        self._feeder: threading.Thread | None = None
        self._closed = False

    def _collect_actions(self) -> dict[str, Action]:
        offered: dict[str, Action] = {"quit": self.quit}
        for owner in (*self.stages, self.switcher, self.output):
            for name, action in owner.actions.items():
                if name in offered:
                    raise ValueError(f"two stages offer the hotkey action '{name}'")
                offered[name] = action
        if self.hotkeys is not None:
            unknown = sorted(set(self.hotkeys.actions) - set(offered))
            if unknown:
                log.warning("hotkeys bound to actions nothing offers: %s (offered: %s)", unknown, sorted(offered))
        return offered

    @property
    def pipelined(self) -> bool:
        return isinstance(self.runner, PipelinedChain)

    @property
    def times(self) -> StageTimes:
        return self.runner.times

    @property
    def errors(self) -> int:
        return sum(self.runner.errors.values())

    def stage(self, name: str) -> Stage:
        return find_stage((*self.stages, self.output), name)

    def _say(self, text: str | None) -> None:
        """A one-line notice in the HUD, shown for a few seconds."""
        if text:
            self._message, self._message_until = text, time.monotonic() + MESSAGE_SECONDS

    @property
    def message(self) -> str:
        return self._message if time.monotonic() < self._message_until else ""

    # Hotkey actions -----------------------------------------------------------------------------------------
    def trigger(self, action: str) -> None:
        """Runs the named action, wherever it lives."""
        if action in self.actions:
            self._say(self.actions[action]())

    def quit(self) -> None:
        self._running = False

    def _hud_lines(self, packet: Packet) -> list[str]:
        s = self.stats
        lines = [
            f"{s.fps:4.1f} fps  latency p50 {s.latency(50):.0f} ms  p95 {s.latency(95):.0f} ms",
            f"avatar: {self.switcher.avatar.name}  errors: {self.errors}",
        ]
        lines += [f"{stage.name}: {stage.status}" for stage in self.stages if stage.status]
        lines += [text for text in (self.switcher.status, self.message) if text]
        return lines + packet.notices

    # The loop -----------------------------------------------------------------------------------------------
    def step(self) -> bool:
        """One frame (or one wait for a frame); False when the loop should end."""
        if self.hotkeys:
            for key in self.output.poll_keys():
                self.hotkeys.feed_preview_key(key)
            for action in self.hotkeys.poll():
                self.trigger(action)
        self._say(self.switcher.poll())
        if not self._running or self.output.closed:
            return False
        packet = self._next_packet()
        if packet is None:
            return not self._finished
        self._send(packet)
        return True

    def _next_packet(self) -> Packet | None:
        """The next finished packet; None while there is none yet or after the source's end."""
        if isinstance(self.runner, Chain):
            item = self._from_source()
            if item is END:
                self._finished = True
                return None
            return self.runner(item)
        if self._feeder is None:
            self._feeder = threading.Thread(target=self._feed, name="feeder", daemon=True)
            self._feeder.start()
        item = self.runner.get(timeout=0.5)
        if item is END:
            self._finished = True
        return item if isinstance(item, Packet) else None

    def _feed(self) -> None:
        """Pipelined: each camera frame (or stand-in) into the stages, with the avatar of the moment."""
        assert isinstance(self.runner, PipelinedChain)
        while self._running:
            item = self._from_source()
            if item is END:
                self.runner.end()
                return
            self.runner.put(item)

    def _from_source(self) -> Packet:
        """The next camera frame as a packet, END after a file's last frame, and while the camera is away a
        stand-in at most once per output frame: a packet with no camera frame, whose motion stages are skipped
        (the last picture stands in) while the image stages all run, which keeps the virtual camera alive."""
        started = time.monotonic()
        frame = self.source.read(timeout=0.5)
        if frame is not None:
            return Packet(frame, self.switcher.avatar)
        if getattr(self.source, "finished", False):
            return END  # type: ignore[return-value]
        time.sleep(max(0.0, started + 1.0 / self.config.output.fps - time.monotonic()))
        avatar = self.switcher.avatar
        return Packet(Frame(avatar.image, now_ns(), -1), avatar, notices=["camera lost: retrying…"], failed=CAMERA_LOST)

    def _send(self, packet: Packet) -> None:
        self.output(packet)
        if packet.failed == CAMERA_LOST:
            self.stats.repeats += 1
            return
        self.stats.frames += 1
        self.stats.send_times.append(time.monotonic())
        self.stats.latencies_ms.append((now_ns() - packet.frame.timestamp_ns) / 1e6)

    def run(self, max_frames: int | None = None, max_seconds: float | None = None) -> LiveStats:
        start = time.monotonic()
        try:
            while self.step():
                if max_frames is not None and self.stats.frames >= max_frames:
                    break
                if max_seconds is not None and time.monotonic() - start >= max_seconds:
                    break
        except KeyboardInterrupt:
            log.info("stopped by the user")
        return self.stats

    def close(self) -> None:
        """Stops the feeder, the stage threads and the avatar loader, and closes the stages; the source and the
        sinks belong to the caller."""
        if self._closed:
            return
        self._closed = True
        self._running = False
        if self._feeder is not None:
            self._feeder.join(timeout=2.0)
        self.switcher.close()
        self.runner.close()
