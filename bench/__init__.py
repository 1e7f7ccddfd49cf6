"""srcockpit's benchmarks: `python -m bench [--device cpu|cuda] [--quick] [--json out.json]`.

Every figure is a ratio of two things measured side by side, interleaved, in one invocation (see
bench/common.py); bench/cockpit_bench.py still runs on its own for the cockpit's absolute figures.
"""
