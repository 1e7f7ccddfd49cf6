"""Paced replay of a recorded events.jsonl (Dolphie's ReplayManager): the same messages as a live
tail, released at the pace they were written (times `speed`, long gaps squeezed), so the dashboard's
live code path is what a replay exercises. Schema versions other than ours are refused.
"""

from __future__ import annotations

import time

from textual.message import Message

from engine.protocol import SCHEMA_VERSION, AnyEvent, HeaderEvent, RunPaths, UserError, load_events
from tui.messages import TailCaughtUp
from tui.tailer import split_events

MAX_GAP = 2.0  # seconds of replay time at most between two events, whatever the recording says


class Replayer:
    """Same interface as Tailer (poll/follow/caught_up); reads the whole log once, then paces it out."""

    def __init__(self, paths: RunPaths, speed: float = 10.0, max_gap: float = MAX_GAP,
                 clock=time.monotonic) -> None:
        self.paths = paths
        self.run = str(paths.root)
        self.speed = max(speed, 1e-3)
        self.max_gap = max_gap
        self.clock = clock
        self.events: list[AnyEvent] = load_events(paths.events).events
        if self.events and isinstance(self.events[0], HeaderEvent):
            version = self.events[0].schema_version
            if version is not None and version != SCHEMA_VERSION:
                raise UserError(f"{paths.events} was written with schema {version}; this srcockpit reads "
                                f"{SCHEMA_VERSION}", "replay it with the srcockpit version that wrote it")
        self.position = 0
        self.caught_up = False
        self._replay_t = 0.0  # replay clock, in recording seconds since the first event
        self._last_wall: float | None = None
        self._times = self._schedule()

    def _schedule(self) -> list[float]:
        times, replay_t, previous = [], 0.0, None
        for event in self.events:
            if previous is not None:
                replay_t += min(max(0.0, event.t - previous), self.max_gap * self.speed)
            previous = event.t
            times.append(replay_t)
        return times

    def poll(self) -> list[Message]:
        if self.caught_up:
            return []
        wall = self.clock()
        if self._last_wall is not None:
            self._replay_t += (wall - self._last_wall) * self.speed
        self._last_wall = wall
        end = self.position
        while end < len(self.events) and self._times[end] <= self._replay_t:
            end += 1
        batch = self.events[self.position:end]
        self.position = end
        messages = split_events(self.run, batch)
        if self.position >= len(self.events):
            self.caught_up = True
            messages.append(TailCaughtUp(self.run, len(self.events), 0.0))
        return messages

    def seek_end(self) -> list[Message]:
        """Everything left at once (the 'skip to the end' key)."""
        self._replay_t = self._times[-1] if self._times else 0.0
        return self.poll()

    def follow(self, post, cancelled, queue_size=lambda: 0, interval: float = 0.1) -> None:
        while not cancelled() and not self.caught_up:
            for message in self.poll():
                post(message)
            time.sleep(interval)
