"""ssvision's benchmark suite (a source checkout only; not part of the installed package).

Run a benchmark from the repository root as a module, ``python -m benchmarks.<name> ...``;
:mod:`benchmarks.harness` holds what the scripts share (runs, seeds, result rows), and
``python -m benchmarks.report`` writes ``BENCHMARKS.md`` from ``benchmarks/results/``.
"""
