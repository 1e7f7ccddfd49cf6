"""One run's dashboard: header, losses, validation, throughput, GPU/host, alerts, log.

A thread worker (tui.tailer.Tailer, or tui.replay.Replayer) posts messages; the handlers fold them into
a RunState and mark it dirty; a timer redraws at most every `refresh_s`. The history already in a log
comes folded in the tailer's thread, as one Backlog (a 200k-iteration log: one message, one draw).
Control keys go through tui.control_client in a thread worker and report the engine's answer with notify.
"""

from __future__ import annotations

import contextlib
from collections import deque
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import get_current_worker

from engine.mitigations import Suggestion, suggest
from engine.protocol import FAILED, FINISHED, PAUSED, RUNNING, STARTING, STOPPED, AlertEvent, RunPaths, UserError
from tui.messages import (
    AlertsRaised,
    Backlog,
    Checkpointed,
    CommandDone,
    IterBatch,
    LogLines,
    OtherEvents,
    RunInfo,
    RunStatus,
    SystemSample,
    TailCaughtUp,
    ValResults,
)
from tui.screens.dialogs import KEYS_DASHBOARD, ConfirmScreen, HelpScreen
from tui.state import RunState
from tui.widgets.alerts import AlertsPanel
from tui.widgets.charts import loss_chart_data
from tui.widgets.engine_lost import EngineLost
from tui.widgets.gpu_panel import GpuPanel
from tui.widgets.line_chart import LineChart
from tui.widgets.log_panel import LogPanel
from tui.widgets.run_header import RunHeader
from tui.widgets.sizes import SizeClasses
from tui.widgets.throughput import ThroughputPanel
from tui.widgets.val_panel import ValPanel

SMOOTHING_STEPS = (0.0, 0.6, 0.9, 0.99)
LIVENESS_S = 2.0


class DashboardScreen(SizeClasses, Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "stop"),
        Binding("p", "pause", "pause"),
        Binding("r", "resume", "resume"),
        Binding("c", "checkpoint", "checkpoint"),
        Binding("v", "validate", "validate"),
        Binding("d", "detach", "detach"),
        Binding("m", "smoothing", "smoothing", show=False),
        Binding("M", "val_metric", "chart the next metric", show=False),
        Binding("C", "compare_stages", "compare with earlier stages", show=False),
        Binding("a", "mitigate", "mitigate alert", show=False),  # in the help screen; the footer is full at 80 columns
        Binding("i", "images", "images", show=False),
        Binding("w", "tool('subset')", "subset wizard", show=False),
        Binding("T", "tool('transfer')", "weight transfer", show=False),
        Binding("k", "tool('ranking')", "rank checkpoints", show=False),
        Binding("x", "tool('export')", "export", show=False),
        Binding("escape", "back", "runs", show=False),
        Binding("q", "quit_run", "quit"),
        Binding("t", "app.cycle_theme", "theme"),
        Binding("question_mark", "help", "help", key_display="?"),
    ]

    lost: reactive[bool] = reactive(False)

    def __init__(self, paths: RunPaths, replay_speed: float | None = None) -> None:
        super().__init__(name=f"run:{paths.root.name}")
        self.paths = paths
        self.run_key = str(paths.root)
        self.replay_speed = replay_speed
        self.state = RunState(paths.root.name)
        self.caught_up = False
        self.replay_seconds: float | None = None
        self.engine_lines: deque[str] = deque(maxlen=20)
        self._dirty = True
        self._system_dirty = self._iters_dirty = False
        self._ticked = 0.0
        self._smoothing = SMOOTHING_STEPS[1]
        self.commands_sent: list[str] = []

    # ----------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield RunHeader(id="run-header")
        yield EngineLost(id="engine-lost")
        with VerticalScroll(id="dash-body"):  # scrolls only in the one-column layout of a narrow terminal
            with Horizontal(id="dash-main"):
                with Vertical(id="dash-left"):
                    with Horizontal(id="loss-row"):
                        yield LineChart("generator losses", id="loss-g")
                        yield LineChart("discriminator losses", id="loss-d")
                    yield ValPanel(id="val-panel")
                with Vertical(id="dash-right"):
                    yield ThroughputPanel(id="throughput")
                    yield GpuPanel(id="gpu-panel")
                    yield AlertsPanel(id="alerts")
            yield LogPanel(id="log")
        yield Footer()

    def on_mount(self) -> None:
        config = getattr(self.app, "config", None)
        if config is not None:
            self._smoothing = config.smoothing
        refresh = getattr(config, "refresh_s", 0.5)
        self.set_interval(refresh, self.redraw_if_dirty, name="redraw")
        self.set_interval(LIVENESS_S, self.check_engine, name="liveness")
        self.query_one(RunHeader).reading = not self.replay_speed
        self.start_source()

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "tail")

    # ----------------------------------------------------------------- source
    def start_source(self) -> None:
        self.run_worker(self._follow, thread=True, group="tail", name=f"tail {self.paths.root.name}",
                        exclusive=True, exit_on_error=False)

    def _follow(self) -> None:
        worker = get_current_worker()
        cancelled, queued = (lambda: worker.is_cancelled), (lambda: self.message_queue_size)
        if self.replay_speed:
            from tui.replay import Replayer

            Replayer(self.paths, speed=self.replay_speed).follow(self.post_message, cancelled, queued)
        else:
            from tui.tailer import Tailer

            Tailer(self.paths).follow(self.post_message, cancelled, queued, backlog=RunState(self.paths.root.name))

    def _mine(self, message) -> bool:
        return message.run == self.run_key

    @on(Backlog)
    def _backlog(self, message: Backlog) -> None:
        if self._mine(message):
            self.state = message.state
            self._dirty = True
            self._logs(LogLines(message.run, message.lines))

    @on(RunInfo)
    def _run_info(self, message: RunInfo) -> None:
        if self._mine(message):
            self.state.apply(message.event)
            self._dirty = True

    @on(IterBatch)
    def _iters(self, message: IterBatch) -> None:
        if self._mine(message):
            self.state.apply_iters(message.columns)
            self._iters_dirty = True

    @on(RunStatus)
    def _status(self, message: RunStatus) -> None:
        if not self._mine(message):
            return
        before = self.state.status
        self.state.apply(message.event)
        self._dirty = True
        if self.caught_up and before != message.status:
            severity = "error" if message.status == FAILED else "information"
            self.notify(f"{self.state.name}: {before or '?'} → {message.status}", severity=severity)
            if message.status != FAILED:
                self.lost = False
            self.check_engine()

    @on(SystemSample)
    def _system(self, message: SystemSample) -> None:
        if self._mine(message):
            self.state.apply(message.event)
            self._system_dirty = True  # only the GPU/host panel shows it: no need to redraw the charts

    @on(ValResults)
    def _vals(self, message: ValResults) -> None:
        if self._mine(message):
            for event in message.events:
                self.state.apply(event)
            self._dirty = True

    @on(Checkpointed)
    def _checkpoint(self, message: Checkpointed) -> None:
        if not self._mine(message):
            return
        self.state.apply(message.event)
        self.state.checkpoints += message.count - 1
        self._dirty = True
        if self.caught_up:
            self.notify(f"checkpoint saved at iteration {message.event.iter:,}")

    @on(AlertsRaised)
    def _alerts(self, message: AlertsRaised) -> None:
        if not self._mine(message):
            return
        for event in message.events:
            self.state.apply(event)
            if self.caught_up and not message.replayed:
                severity = "error" if event.level == "error" else "warning"
                self.notify(event.message, title=event.code,
                            severity=severity, timeout=8)
                self.app.bell()
        self._dirty = True

    @on(LogLines)
    def _logs(self, message: LogLines) -> None:
        if not self._mine(message):
            return
        for line in message.lines:
            if line[1] == "engine":
                self.engine_lines.append(line[2])
            else:
                self.state.logs.append(line)
        self.query_one(LogPanel).add_lines(message.lines)

    @on(OtherEvents)
    def _other(self, message: OtherEvents) -> None:
        if self._mine(message):
            self.state.apply_all(message.events)
            self._dirty = True

    @on(TailCaughtUp)
    def _caught_up(self, message: TailCaughtUp) -> None:
        if not self._mine(message):
            return
        self.caught_up = True
        self.query_one(RunHeader).reading = False
        self.replay_seconds = message.seconds
        self.check_engine()
        self.redraw()

    # ----------------------------------------------------------------- drawing
    def redraw_if_dirty(self) -> None:
        if self._dirty:
            self.redraw()
            return
        now = self.app.clock()
        if self._system_dirty:
            self._system_dirty = False
            self.query_one(GpuPanel).show(self.state, now)
        if self._iters_dirty:
            self._draw_points(now)
        elif self.state.live and int(now) != int(self._ticked):  # only the clock moves: elapsed and ETA, each second
            self._ticked = now
            self.query_one(RunHeader).show(self.state, now, self.lost)

    def redraw(self) -> None:
        self._dirty = self._system_dirty = False
        now = self.app.clock()
        state = self.state
        self._draw_points(now)
        self.query_one(EngineLost).show(state, self.lost, list(self.engine_lines))
        self.query_one(ValPanel).show(state, now)
        self.query_one(GpuPanel).show(state, now)
        self.query_one(AlertsPanel).show(state, now)

    def _draw_points(self, now: float) -> None:
        """What new iterations change: the header, the loss charts and the throughput panel (each other
        panel redraws on its own events, so a live run's every iter event does not re-lay the whole screen)."""
        self._iters_dirty, self._ticked = False, now
        state, smoothing = self.state, self._smoothing
        self.query_one(RunHeader).show(state, now, self.lost)
        generator = self.query_one("#loss-g", LineChart)
        generator.data = loss_chart_data(state, state.generator_losses(), smoothing)
        self.query_one("#loss-d", LineChart).data = loss_chart_data(state, state.discriminator_losses(), smoothing)
        title = f"generator losses · smoothing {smoothing:g}"
        if generator.border_title != title:  # setting it repaints the chart's frame, even to the same title
            generator.border_title = title
        self.query_one(ThroughputPanel).show(state, now)

    def check_engine(self) -> None:
        """A live status with no engine behind it (or a failed one) means the engine is lost."""
        if not self.caught_up or self.replay_speed:
            return
        from tui.runs import engine_alive

        lost = self.state.live and not engine_alive(self.paths, self.state.status)
        if lost != self.lost:
            self.lost = lost
            self._dirty = True
            if lost:
                self.notify("the engine is gone; r resumes from the newest training state",
                            title="engine lost", severity="error", timeout=10)

    # ----------------------------------------------------------------- control
    @work(thread=True, group="control", exit_on_error=False)
    def send(self, cmd: str) -> None:
        from tui.control_client import send_command

        self.commands_sent.append(cmd)
        try:
            reply = send_command(self.paths, cmd)
        except UserError as error:
            self.post_message(CommandDone(cmd, {}, str(error)))
            return
        except (OSError, ValueError) as error:
            self.post_message(CommandDone(cmd, {}, f"{type(error).__name__}: {error}"))
            return
        self.post_message(CommandDone(cmd, reply, "" if reply.get("ok") else str(reply.get("error", "refused"))))

    @on(CommandDone)
    def _command_done(self, message: CommandDone) -> None:
        if message.error:
            self.notify(message.error, title=f"{message.cmd}: not done", severity="error", timeout=8)
        else:
            what = {"stop": "stopping after this iteration; a resumable state is saved",
                    "pause": "pausing after this iteration", "resume": "resuming",
                    "save": "a checkpoint will be saved after this iteration",
                    "validate": "validating after this iteration", "ping": "the engine answers"}
            self.notify(what.get(message.cmd, "done"), title=f"{message.cmd}: accepted")
        if getattr(self, "_exit_after", None) == message.cmd:
            self.app.exit(message=f"stopped {self.state.name}" if not message.error else message.error)

    def _needs_live(self, verb: str) -> bool:
        if self.state.live and not self.lost:
            return True
        status = "lost" if self.lost else (self.state.status or "not started")
        self.notify(f"the run is {status}: nothing to {verb}", severity="warning")
        return False

    def action_stop(self) -> None:
        if not self._needs_live("stop"):
            return

        def answer(choice: str | None) -> None:
            if choice == "stop":
                self.send("stop")

        self.app.push_screen(ConfirmScreen(
            f"Stop {self.state.name} at iteration {self.state.iter:,}?\n"
            "The engine finishes the iteration and saves a resumable state (r resumes it).",
            [("stop", "Stop the run", "error"), ("no", "Keep training", "primary")]), answer)

    def action_pause(self) -> None:
        if self.state.status == PAUSED:
            self.notify("already paused: r resumes", severity="warning")
        elif self._needs_live("pause"):
            self.send("pause")

    def action_checkpoint(self) -> None:
        if self._needs_live("checkpoint"):
            self.send("save")

    def action_validate(self) -> None:
        if self._needs_live("validate"):
            self.send("validate")

    def action_resume(self) -> None:
        status = self.state.status
        if status == PAUSED and not self.lost:
            self.send("resume")
        elif status in (RUNNING, STARTING) and not self.lost:
            self.notify("the run is already running", severity="warning")
        elif status == FINISHED:
            self.notify("the run has finished: nothing to resume", severity="warning")
        else:
            self.restart()

    @work(thread=True, group="control", exit_on_error=False)
    def restart(self) -> None:
        """A stopped, failed or lost run: a new engine from the newest valid training state."""
        self.app.call_from_thread(self.notify, f"resuming {self.state.name}…")
        try:
            from tui import launcher

            launcher.resume_run(self.paths)
        except UserError as error:
            self.app.call_from_thread(self.notify, str(error), title="resume: not done", severity="error",
                                      timeout=10)
            return
        except Exception as error:  # the launcher's trouble must not kill the cockpit
            self.app.call_from_thread(self.notify, f"{type(error).__name__}: {error}", title="resume failed",
                                      severity="error", timeout=10)
            return
        self.app.call_from_thread(self._restarted)

    def _restarted(self) -> None:
        self.lost = False
        self._dirty = True
        self.notify(f"{self.state.name}: a new engine is starting", title="resume: accepted")

    def action_mitigate(self) -> None:
        """The newest alert's mitigation (engine.mitigations), asked first, then sent as a set command."""
        if self._needs_live("mitigate"):
            self.offer_mitigation(list(self.state.alerts))

    @work(thread=True, group="control", exit_on_error=False)
    def offer_mitigation(self, alerts: list[AlertEvent]) -> None:
        from tui.control_client import send_command

        try:  # the engine's own current values: the suggestion scales what the run uses now
            settings = send_command(self.paths, "ping").get("settings") or {}
        except (UserError, OSError, ValueError) as error:
            self.app.call_from_thread(self.notify, str(error), title="mitigate: not done", severity="error")
            return
        offer = next((s for a in reversed(alerts) if (s := suggest(a.code, a.message, settings))), None)
        self.app.call_from_thread(self._confirm_mitigation, offer)

    def _confirm_mitigation(self, offer: Suggestion | None) -> None:
        if offer is None:
            self.notify("no alert with a mitigation this run can take", severity="warning")
            return

        def answer(choice: str | None) -> None:
            if choice:
                self.send(offer.setting.command)

        self.app.push_screen(ConfirmScreen(f"{offer.question} [y/n]"), answer)

    def action_detach(self) -> None:
        from tui.runs import attach_hint

        message = f"detached from {self.state.name}; training goes on. `{attach_hint(self.paths)}` comes back."
        self.app.detached = message
        self.app.exit(message=message)

    def action_quit_run(self) -> None:
        if not (self.state.live and not self.lost and self.state.status != STOPPED):
            self.app.exit()
            return

        def answer(choice: str | None) -> None:
            if choice == "leave":
                self.action_detach()
            elif choice == "stop":
                self._exit_after = "stop"
                self.send("stop")

        self.app.push_screen(ConfirmScreen(
            f"{self.state.name} is {self.state.status}. Stop it too?",
            [("stop", "Stop it and quit", "error"), ("leave", "Quit, training goes on", "primary"),
             ("cancel", "Cancel", "default")]), answer)

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def action_smoothing(self) -> None:
        steps = SMOOTHING_STEPS
        index = min(range(len(steps)), key=lambda k: abs(steps[k] - self._smoothing))
        self._smoothing = steps[(index + 1) % len(steps)]
        self.notify(f"loss smoothing {self._smoothing:g}")
        self.redraw()

    def action_val_metric(self) -> None:
        metric = self.query_one(ValPanel).next_metric(self.state)
        self.notify(f"validation chart: {metric}")
        self.redraw()

    def action_compare_stages(self) -> None:
        from tui.compare import earlier_stages
        from tui.screens.compare import CompareScreen

        stages = earlier_stages(self.paths, self.state)
        if not stages:
            self.notify("this run starts from no earlier run's checkpoint: the run list compares any runs "
                        "(space marks, c compares)", severity="warning")
            return
        self.app.push_screen(CompareScreen([*stages, self.paths]))

    def action_images(self) -> None:
        from tui.screens.images import ImagesScreen, ValImages  # pulls in PIL and textual-image: only on i

        catalog = ValImages.from_run(self.paths.root, self.state, Path(getattr(self.app, "root", None) or Path.cwd()))
        if not catalog.names:
            self.notify("no validation images yet (basicsr saves them with val.save_img: true)", severity="warning")
            return
        self.app.push_screen(ImagesScreen(catalog))

    def action_tool(self, kind: str) -> None:
        self.app.open_tool(kind, self.paths)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(KEYS_DASHBOARD, f"keys: {self.state.name}"))

    def on_screen_resume(self) -> None:
        # the first resume can come before compose has made the panels: nothing to redraw yet
        with contextlib.suppress(NoMatches):
            self.redraw()
