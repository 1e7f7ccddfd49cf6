"""Per GPU: memory (allocated / reserved / peak of total, and the run's own share from NVML's process list),
utilisation, temperature, power; the run's processes' CPU and RSS and the host's RAM below. Thresholds as
nvitop: util 10/75 %, memory 10/80 % = light/moderate/heavy, drawn in $success/$warning/$error.
No GPU ([] in the system event) says so plainly."""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.widgets import Static

from engine.protocol import SystemEvent
from tui.state import RunState, as_float
from tui.widgets.run_header import bar
from tui.widgets.text_update import update_text

GiB = 1 << 30


def load_color(theme, percent: float, low: float, high: float) -> str:
    if not math.isfinite(percent):
        return theme.foreground or "white"
    if percent < low:
        return theme.success
    return theme.warning if percent < high else theme.error


def gib(value: Any) -> str:
    v = as_float(value)
    return f"{v / GiB:.1f}" if math.isfinite(v) else "-"


class GpuPanel(Static):
    DEFAULT_CSS = """
    GpuPanel {
        height: auto;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    def on_mount(self) -> None:
        self.border_title = "gpu · host"

    def show(self, state: RunState, now: float) -> None:
        theme = self.app.current_theme
        text = Text(no_wrap=True, overflow="ellipsis")
        width = max(8, min(20, self.content_size.width - 28))
        if not state.system_seen:
            text.append("waiting for the first system sample…", style="dim")
        elif not state.gpus:
            text.append("CPU only: no GPU", style=f"bold {theme.warning}")
            device = state.run.device
            if device:
                text.append(f"  (device {device})", style="dim")
        for index in sorted(state.gpus):
            gpu = state.gpus[index].sample
            total = as_float(gpu.get("mem_total"))
            used = as_float(gpu.get("mem_used", gpu.get("mem_reserved")))
            mem_pct = 100 * used / total if total and total > 0 and math.isfinite(used) else math.nan
            util = as_float(gpu.get("util"))
            text.append(f"GPU{index} ", style="bold")
            text.append(f"{gpu.get('name', '')}\n", style="dim")
            text.append(" mem  ", style="dim")
            text.append(bar(mem_pct / 100, width), style=load_color(theme, mem_pct, 10, 80))
            text.append(f" {gib(used)}/{gib(total)} GiB\n")
            text.append("      alloc ", style="dim")
            text.append(gib(gpu.get("mem_alloc")))
            text.append(" reserved ", style="dim")
            text.append(gib(gpu.get("mem_reserved")))
            text.append(" peak ", style="dim")
            text.append(gib(gpu.get("mem_peak")))
            own = as_float(gpu.get("proc_mem"))
            if math.isfinite(own):  # NVML's per-process list: what this run's processes hold on the device
                text.append("  this run ", style="dim")
                text.append(f"{gib(own)} GiB", style="bold")
            text.append("\n")
            text.append(" util ", style="dim")
            text.append(bar(util / 100, width), style=load_color(theme, util, 10, 75))
            text.append(f" {util:.0f}%\n" if math.isfinite(util) else " -\n")
            temp, power, limit = as_float(gpu.get("temp")), as_float(gpu.get("power")), as_float(
                gpu.get("power_limit"))
            text.append(" temp ", style="dim")
            text.append(f"{temp:.0f}°C" if math.isfinite(temp) else "-",
                        style=load_color(theme, temp, 60, 83))
            text.append("  power ", style="dim")
            text.append(f"{power:.0f}" if math.isfinite(power) else "-")
            text.append(f"/{limit:.0f} W\n" if math.isfinite(limit) else " W\n")
        system = state.system
        if system is not None:
            if not text.plain.endswith("\n"):
                text.append("\n")
            self._process_line(text, system)
            used, total = float(system.ram_used), float(system.ram_total)
            text.append("\nhost ram ", style="dim")  # its own line: with the units the three figures need 45 columns
            pct = 100 * used / total if total and total > 0 else math.nan
            text.append(f"{gib(used)}/{gib(total)} GiB", style=load_color(theme, pct, 10, 80))
        update_text(self, text)

    @staticmethod
    def _process_line(text: Text, system: SystemEvent) -> None:
        """The run's own processes (the engine and its data workers) first, as nvitop shows a process: CPU % of
        one core and resident memory; older logs without them show the host's CPU, labelled so."""
        if system.procs:
            cpu, rss = system.proc_cpu_percent, system.proc_rss
            text.append("engine ", style="bold")
            text.append(f"{system.procs} proc{'s' if system.procs > 1 else ''} ", style="dim")
        else:
            cpu, rss = system.cpu_percent, system.rss
            text.append("host ", style="bold")
        text.append("cpu ", style="dim")
        text.append(f"{cpu:.0f}%" if math.isfinite(cpu) else "-", style="bold")
        text.append("  rss ", style="dim")
        text.append(f"{gib(rss)} GiB")
