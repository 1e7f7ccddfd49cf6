"""`srcockpit`: the command line. Starts fast: nothing here imports torch; handlers import lazily."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import tui.commands
from engine.protocol import UserError

# Command groups listed first in `srcockpit --help`; any other module in tui/commands follows.
PREFERRED_ORDER = ("demo", "train", "attach", "weights", "data", "rank", "report", "export")


def command_modules() -> list[str]:
    found = {info.name for info in pkgutil.iter_modules(tui.commands.__path__)}
    return [name for name in PREFERRED_ORDER if name in found] + sorted(found - set(PREFERRED_ORDER))

DESCRIPTION = """\
Run, watch and steer Real-ESRGAN fine-tuning from the terminal, and carry the result to a
compiled model for Qualcomm QCS8550.

  srcockpit demo                 the whole journey on built-in data (about 4 min on 2 cores)
  srcockpit train OPTIONS.yml    start a detached training run (survives SSH hang-ups)
  srcockpit --no-ui train X.yml  the same in the foreground, rendered as plain lines
  srcockpit status / stop / resume RUN
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srcockpit", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-ui", action="store_true",
                        help="headless: run jobs in the foreground and print their events (for nohup, Slurm)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        importlib.import_module(f"tui.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if args.no_ui:
            parser.print_help()
            return 0
        from tui.app import make_app  # the cockpit on the current folder; Textual loads only here

        app = make_app()
        app.run()
        return int(app.return_code or 0)
    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"srcockpit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("srcockpit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
