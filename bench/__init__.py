"""Benchmarks: this project against the common alternatives, measured in the same run.

`make bench` runs every suite and writes `bench/results/<suite>.json`; `make bench-smoke` runs
them with tiny counts (CI checks that the harness works, never the figures). The method,
the machine and the results are in docs/performance.md.
"""
