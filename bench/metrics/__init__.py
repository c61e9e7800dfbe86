"""Scoring retrieval: Recall@K and ranks, the evaluation protocols, and intervals on differences.

* :mod:`bench.metrics.ranking` — ranks and Recall@K of one score matrix (the VSE++ protocol, ties
  ranked pessimistically), and the reference ``argsort`` loop it is tested and timed against;
* :mod:`bench.metrics.protocols` — which test images a protocol scores (``full``, ``coco1k``,
  ``coco5k``, or a plugin's), found through the ``bench.protocols`` entry points;
* :mod:`bench.metrics.stats` — the paired bootstrap over test images and seeds behind every interval.

The names of the first two are importable from ``bench.metrics`` itself.
"""

from __future__ import annotations

from bench.metrics.protocols import (
    coco1k_protocol,
    coco5k_protocol,
    evaluate_protocol,
    full_protocol,
    get_protocol,
    known_protocols,
)
from bench.metrics.ranking import (
    RetrievalMetrics,
    benchmark_speedup,
    evaluate,
    metrics_from_ranks,
    random_embeddings,
    rank_i2t,
    rank_t2i,
    ranks,
    reference_ranks,
)

__all__ = [
    "RetrievalMetrics", "benchmark_speedup", "coco1k_protocol", "coco5k_protocol", "evaluate", "evaluate_protocol",
    "full_protocol", "get_protocol", "known_protocols", "metrics_from_ranks", "random_embeddings", "rank_i2t",
    "rank_t2i", "ranks", "reference_ranks",
]
