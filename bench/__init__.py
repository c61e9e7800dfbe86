"""Benchmark harness for cross-modal retrieval under partial pairing.

``bench.evaluate(model, dataset="synthetic", fractions=[100, 25, 10], seeds=[0])`` runs the grid
of ``bench run`` from Python and returns its results (see :mod:`bench.api`).
"""

__version__ = "0.1.0"

__all__ = ["Results", "__version__", "evaluate"]


def __getattr__(name: str):
    # `evaluate` and `Results` load on first use: importing bench (the CLI does, for its version)
    # must not pull in torch, pandas and the runner.
    if name in ("evaluate", "Results"):
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute '{name}'")
