"""One widget per file, each with its own DEFAULT_CSS; tui/cockpit.tcss only places them.

Dashboard widgets share one method, `show(state, now)`: redraw from a tui.state.RunState.
"""
