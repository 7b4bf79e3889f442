"""Stages in groups, each group on its own thread, joined by small queues: frame t+1 is tracked while frame t is
drawn. Each thread keeps frames in order; live, a full queue drops its oldest frame (the newest is what a call
should see), and a render or benchmark loses none."""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Sequence

from avatarcam.stages import Packet, Stage
from avatarcam.stages.chain import Chain, StageTimes
from avatarcam.types import Avatar

END = object()  # the source has ended: passed down the line after the last packet


def split(stages: Sequence[Stage], after: Sequence[str]) -> list[list[Stage]]:
    """The stages cut into groups after each stage named in `after` (names not in the list are ignored)."""
    groups: list[list[Stage]] = [[]]
    for stage in stages:
        groups[-1].append(stage)
        if stage.name in after:
            groups.append([])
    return [group for group in groups if group]


class PipelinedChain:
    def __init__(self, stages: Sequence[Stage], split_after: Sequence[str], lossless: bool = False, depth: int = 1):
        self.chains = [Chain(group) for group in split(stages, split_after)]
        self.lossless = lossless
        self.dropped = 0  # packets dropped by full queues (live only)
        self._queues: list[queue.Queue] = [queue.Queue(maxsize=depth) for _ in range(len(self.chains) + 1)]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"stages-{i}", daemon=True)
            for i in range(len(self.chains))
        ]

    def prepare(self, avatar: Avatar) -> None:
        """Prepares every stage now (else each group prepares before its first packet), then starts the threads."""
        for chain in self.chains:
            chain.prepare(avatar)
        self.start()

    def start(self) -> None:
        for thread in self._threads:
            if not thread.is_alive() and thread.ident is None:
                thread.start()

    @property
    def times(self) -> StageTimes:
        merged = StageTimes()
        for chain in self.chains:
            merged.samples.update(chain.times.samples)
        return merged

    @property
    def errors(self) -> Counter[str]:
        return sum((chain.errors for chain in self.chains), Counter())

    def put(self, packet: Packet) -> None:
        self._put(self._queues[0], packet)

    def end(self) -> None:
        """No more packets: `get` returns END once the last one is out."""
        self._put_surely(self._queues[0], END)

    def get(self, timeout: float) -> Packet | object | None:
        """The next finished packet (END after the last), or None if none came within `timeout` seconds."""
        try:
            return self._queues[-1].get(timeout=timeout)
        except queue.Empty:
            return None

    def _work(self, index: int) -> None:
        chain, inbox, outbox = self.chains[index], self._queues[index], self._queues[index + 1]
        while not self._stop.is_set():
            try:
                item = inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is END:
                self._put_surely(outbox, END)
                return
            self._put(outbox, chain(item))

    def _put(self, box: queue.Queue, item: object) -> None:
        if self.lossless:
            self._put_surely(box, item)
            return
        while True:
            try:
                box.put_nowait(item)
                return
            except queue.Full:
                try:
                    oldest = box.get_nowait()
                except queue.Empty:
                    continue
                self.dropped += 1
                if oldest is END:  # the end is never dropped: the newcomer is
                    box.put_nowait(END)
                    return

    def _put_surely(self, box: queue.Queue, item: object) -> None:
        while not self._stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=2.0)
        for chain in self.chains:
            chain.close()
