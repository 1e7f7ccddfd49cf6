"""Every Message the cockpit's workers post, in one file (Toolong's habit).

State-only messages (RunStatus, SystemSample) define can_replace, so a burst leaves only the newest in
the queue; batches (IterBatch, ValResults, AlertsRaised, LogLines, Checkpointed) are never replaced, or
points would vanish from the charts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from engine.protocol import (
    AlertEvent,
    AnyEvent,
    CheckpointEvent,
    HeaderEvent,
    RunEvent,
    StatusEvent,
    SystemEvent,
    ValEvent,
)
from tui.state import IterColumns, RunState


@dataclass
class RunMessage(Message):
    """Base: `run` is the run folder the message is about (a screen ignores other runs')."""

    run: str


@dataclass
class RunInfo(RunMessage):
    """A header or run event (resolved options, total_iter, device...)."""

    event: HeaderEvent | RunEvent


@dataclass
class RunStatus(RunMessage):
    """The newest status event; only the latest matters."""

    status: str
    event: StatusEvent

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunStatus) and message.run == self.run


@dataclass
class IterBatch(RunMessage):
    """Loss, lr and speed points, as columns. Never replaced."""

    columns: IterColumns


@dataclass
class SystemSample(RunMessage):
    """The newest system event (GPUs, host CPU/RAM)."""

    event: SystemEvent

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SystemSample) and message.run == self.run


@dataclass
class ValResults(RunMessage):
    events: list[ValEvent]


@dataclass
class Checkpointed(RunMessage):
    event: CheckpointEvent
    count: int = 1


@dataclass
class AlertsRaised(RunMessage):
    events: list[AlertEvent]
    replayed: bool = False  # True while catching up on history: no pop-up for each old alert


@dataclass
class LogLines(RunMessage):
    """Log events and engine.log lines: (time, level, message)."""

    lines: list[tuple[float, str, str]]


@dataclass
class OtherEvents(RunMessage):
    """progress, result and unknown events, in order."""

    events: list[AnyEvent]


@dataclass
class Backlog(RunMessage):
    """The log's history folded into a state in the tailer's thread (one message, drawn once), with its
    last log lines; a TailCaughtUp follows."""

    state: RunState
    lines: list[tuple[float, str, str]]


@dataclass
class TailCaughtUp(RunMessage):
    """The tailer has read the whole log once: the replay of history is over."""

    events: int
    seconds: float


@dataclass
class CommandDone(Message):
    """The engine's answer to a control command (or why there was none)."""

    cmd: str
    reply: dict[str, Any] = field(default_factory=dict)
    error: str = ""
