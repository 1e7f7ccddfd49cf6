"""JobProgress: any engine job's log as a status line, a progress bar, its last output and its results.

It follows job_folder/cockpit/events.jsonl with the cockpit's Tailer (a thread worker, as the dashboard
does) from the start of the log, so a screen opened again, or a cockpit started again, redraws a job
from its history and goes on following it. The screen around it hears JobProgress.Result for each
result event as it lands, and JobProgress.Ended once: finished, failed (with the error) or lost (the
process is gone without a final status).

JobScreen is the frame the job screens share: a form validated in place, a job started detached
(tui.jobs.start_job runs engine.job_runner), escape leaves while the job goes on, and on return the
newest running job of the screen's kind is shown again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ProgressBar, Static
from textual.worker import get_current_worker

from engine.data.journal import RESUMED
from engine.protocol import FAILED, FINISHED, STOPPED, ProgressEvent, ResultEvent, RunPaths
from engine.units import duration
from tui.messages import LogLines, OtherEvents, RunInfo, RunStatus, TailCaughtUp
from tui.state import overall_progress
from tui.tailer import Tailer
from tui.widgets.sizes import SizeClasses

LIVENESS_S = 1.0
START_GRACE_S = 20.0  # a job with no engine.json yet is "starting" this long


@dataclass
class Pace:
    """A job's ETA from its progress events' own times, so a history replayed later reads as it did live.

    The rate counts from the first event of this run's work in the current counter (a step of a job of
    several, or a phase whose count starts again): an image a killed earlier run had finished (a "resumed: "
    message) is not work of this run, and would make it look fast.
    """

    key: tuple[int, int, int] = (0, 0, 0)
    start_t: float = 0.0
    start_done: int = -1
    last_done: int = 0

    def eta(self, event: ProgressEvent) -> float | None:
        key = (event.step, event.steps, event.total)
        restart = key != self.key or event.done < self.last_done or self.start_done < 0
        self.last_done = event.done
        if event.message.startswith(RESUMED):
            self.key, self.start_done = key, -1
            return None
        if restart:
            self.key, self.start_t, self.start_done = key, event.t, event.done
            return None
        if event.total <= 0 or event.done <= self.start_done or event.t <= self.start_t:
            return None
        rate = (event.done - self.start_done) / (event.t - self.start_t)
        return max(0.0, event.total - event.done) / rate


class JobProgress(Widget):
    DEFAULT_CSS = """
    JobProgress { height: auto; padding: 0 1; border: round $primary 40%; }
    JobProgress.-idle { display: none; }
    JobProgress #job-title { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    JobProgress ProgressBar { height: 1; margin: 0 0; }
    JobProgress #job-message { height: 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    JobProgress #job-error { height: auto; color: $error; }
    JobProgress #job-output { height: auto; max-height: 8; color: $text-muted; }
    JobProgress .-blank { display: none; }
    JobProgress.-finished { border: round $success; }
    JobProgress.-failed, JobProgress.-lost { border: round $error; }
    """

    status: reactive[str] = reactive("idle")

    @dataclass
    class Result(Message):
        folder: Path
        event: ResultEvent

    @dataclass
    class Ended(Message):
        folder: Path
        status: str
        error: str = ""
        results: list[ResultEvent] = field(default_factory=list)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="-idle")
        self.folder: Path | None = None
        self.process: Any = None
        self.results: list[ResultEvent] = []
        self.error = ""
        self.output: list[str] = []
        self.started_at = 0.0
        self.kind = ""
        self.caught_up = False
        self._ended = False
        self.pace = Pace()

    def compose(self) -> ComposeResult:
        yield Static(id="job-title")
        yield ProgressBar(total=None, show_eta=False, id="job-bar")
        yield Static(id="job-message")
        yield Static(id="job-error", classes="-blank")
        yield Static(id="job-output", classes="-blank")

    def on_mount(self) -> None:
        self.set_interval(LIVENESS_S, self.check_alive, name="job-liveness")

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "job-tail")

    # ---------------------------------------------------------------- follow
    def follow(self, folder: Path, process: Any = None, kind: str = "") -> None:
        """Show this job folder's log from its start, and follow it."""
        self.workers.cancel_group(self, "job-tail")
        self.folder, self.process, self.kind = Path(folder), process, kind
        self.results, self.error, self.output, self._ended, self.caught_up = [], "", [], False, False
        self.pace = Pace()
        self.started_at = time.monotonic()
        self._set("#job-error", "")
        self._set("#job-output", "")
        self.query_one("#job-message", Static).update("starting…")
        self.query_one(ProgressBar).update(total=None, progress=0)
        self.status = "starting"
        self.run_worker(self._follow, thread=True, group="job-tail", exclusive=True, exit_on_error=False,
                        name=f"job tail {self.folder.name}")

    def _follow(self) -> None:
        worker = get_current_worker()
        Tailer(RunPaths(self.folder)).follow(self.post_message, lambda: worker.is_cancelled,
                                             lambda: self.message_queue_size, interval=0.2)

    def _mine(self, message: Any) -> bool:
        return self.folder is not None and message.run == str(self.folder)

    @on(RunInfo)
    def _info(self, message: RunInfo) -> None:
        message.stop()

    @on(TailCaughtUp)
    def _caught_up(self, message: TailCaughtUp) -> None:
        message.stop()
        if self._mine(message):
            self.caught_up = True

    @on(RunStatus)
    def _status(self, message: RunStatus) -> None:
        message.stop()
        if not self._mine(message):
            return
        event = message.event
        self.kind = event.job or self.kind
        if message.status == FAILED:
            self.error = event.error or "failed"
            text = Text(self.error, style="bold")
            if event.hint:
                text.append(f"\nhint: {event.hint}", style="")
            self._set("#job-error", text)
        self.status = message.status or self.status
        if message.status in (FINISHED, FAILED, STOPPED):
            self._end(message.status)

    @on(OtherEvents)
    def _events(self, message: OtherEvents) -> None:
        message.stop()
        if not self._mine(message):
            return
        for event in message.events:
            if isinstance(event, ProgressEvent):
                bar = self.query_one(ProgressBar)
                done, total = overall_progress(event)
                if total > 0:
                    bar.update(total=total, progress=done)
                step = f"[{event.step}/{event.steps}] " if event.steps else ""
                eta = self.pace.eta(event)
                when = f"  ·  {'step ' if event.steps else ''}eta {duration(eta)}" if eta is not None else ""
                self.query_one("#job-message", Static).update(Text(step + event.message + when))
            elif isinstance(event, ResultEvent):
                self.results.append(event)
                self.post_message(self.Result(self.folder, event))

    @on(LogLines)
    def _lines(self, message: LogLines) -> None:
        message.stop()
        if not self._mine(message):
            return
        self.output = (self.output + [line for _, _, line in message.lines])[-6:]
        if self.status in (FAILED, "lost"):
            self._show_output()

    def _set(self, selector: str, content: Text | str) -> None:
        widget = self.query_one(selector, Static)
        widget.update(content)
        widget.set_class(not str(content), "-blank")

    def _show_output(self) -> None:
        self._set("#job-output", Text("\n".join(self.output)))

    def _end(self, status: str) -> None:
        if self._ended:
            return
        self._ended = True
        bar = self.query_one(ProgressBar)
        if status == FINISHED:
            bar.update(total=bar.total or 1, progress=bar.total or 1)
            self.query_one("#job-message", Static).update("done")
        elif self.output:
            self._show_output()
        self.post_message(self.Ended(self.folder, status, self.error, list(self.results)))

    def check_alive(self) -> None:
        """A job whose process is gone without a final status is lost (killed); say so once."""
        if self.folder is None or self._ended or self.status in (FINISHED, FAILED, STOPPED, "idle"):
            return
        if self.process is not None:
            alive = self.process.poll() is None
        else:
            from tui.jobs import job_alive

            alive = job_alive(self.folder) or time.monotonic() - self.started_at < START_GRACE_S
        if alive:
            return
        from tui.jobs import log_tail, read_job

        state = read_job(self.folder)  # the tailer may not have posted the final status yet
        if state.final:
            return
        self.error = "the job's process ended without a final status (killed?)"
        self.output = log_tail(self.folder, 6)
        self._set("#job-error", Text(self.error, style="bold"))
        self.status = "lost"
        self._end("lost")

    def watch_status(self, old: str, new: str) -> None:
        self.set_class(new == "idle", "-idle")
        for name in ("finished", "failed", "lost"):
            self.set_class(new == name, f"-{name}")
        title = Text()
        title.append(f"{self.kind or 'job'} ", style="bold")
        title.append(new, style={"finished": "green", "failed": "red", "lost": "red"}.get(new, "yellow"))
        if self.folder is not None:
            title.append(f"  {self.folder}", style="dim")
        self.query_one("#job-title", Static).update(title)

    @property
    def running(self) -> bool:
        return self.status in ("starting", "running")


class JobScreen(SizeClasses, Screen):
    """A form, a job, its progress and results. Subclasses: KIND, form widgets, validate(), action_start()."""

    KIND: ClassVar[str] = "job"
    TITLE_TEXT: ClassVar[str] = ""
    DEFAULT_CSS = """
    JobScreen { layout: vertical; }
    JobScreen #screen-title { height: auto; padding: 0 2; background: $panel; }
    JobScreen #form { height: auto; padding: 0 1; }
    JobScreen .row { height: auto; }
    JobScreen .field { width: 1fr; height: auto; padding: 0 1 0 0; }
    JobScreen .field Label { color: $text-muted; }
    JobScreen Input.-invalid { border: tall $error; }
    JobScreen #problems { height: auto; color: $error; padding: 0 2; }
    JobScreen #problems.-empty { display: none; }
    JobScreen #body { height: 1fr; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "start", "run", priority=True),
        Binding("escape", "back", "back (job goes on)"),
    ]

    def __init__(self, root: Path, *, name: str | None = None) -> None:
        super().__init__(name=name or self.KIND)
        self.root = Path(root)
        self.job_folder: Path | None = None

    def compose_title(self) -> ComposeResult:
        title = Text(self.TITLE_TEXT, style="bold")
        title.append("  —  ctrl+r runs · escape goes back (the job goes on)", style="dim")
        yield Static(title, id="screen-title")

    def problems_widget(self) -> Static:
        return Static(id="problems", classes="-empty")

    def show_problems(self, problems: list[tuple[str | None, str]]) -> bool:
        """Mark the named inputs invalid and list the messages in place; True when there are none."""
        widget = self.query_one("#problems", Static)
        bad = {name for name, _ in problems if name}
        for node in self.query(".validated"):
            node.set_class(node.id in bad, "-invalid")
        widget.set_class(not problems, "-empty")
        widget.update(Text("\n".join(f"• {text}" for _, text in problems)))
        return not problems

    def resolve(self, text: str) -> Path:
        path = Path(text.strip()).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def progress(self) -> JobProgress:
        return self.query_one(JobProgress)

    def reattach(self) -> None:
        """Show the job this screen kind started last here, or the newest one still running."""
        from tui.jobs import running_job, started_here

        folder = self.find_job() or running_job(self.root, self.KIND) or started_here(self.root, self.KIND)
        if folder is not None and (RunPaths(folder).events.exists() or folder == started_here(self.root, self.KIND)):
            self.job_folder = folder
            self.progress.follow(folder, kind=self.KIND)

    def find_job(self) -> Path | None:
        return None

    def launch(self, params: dict[str, Any], *, folder: Path | None = None, kind: str | None = None) -> None:
        """Start the engine's job function of this kind (engine.job_runner) with params, and follow it."""
        from tui.jobs import start_job

        kind = kind or self.KIND
        try:
            job = start_job(self.root, kind, params, folder=folder)
        except OSError as error:
            self.show_problems([(None, f"could not start the job: {error}")])
            return
        self.job_folder = job.folder
        self.progress.follow(job.folder, job.process, kind=kind)
        self.notify(f"{kind} job started: {job.folder.name} (escape leaves it running)", timeout=4)

    def action_back(self) -> None:
        self.app.pop_screen()

    @on(JobProgress.Ended)
    def _ended(self, message: JobProgress.Ended) -> None:
        kind = self.progress.kind or self.KIND
        if message.status == FINISHED:
            self.notify(f"{kind} job finished", timeout=3)
        else:
            self.notify(message.error or message.status, title=f"{kind} job {message.status}", severity="error",
                        timeout=8)
