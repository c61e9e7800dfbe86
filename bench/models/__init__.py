"""Models: the interface every model implements, the shared neural skeleton, configs and the registry.

* :mod:`bench.models.interface` — :class:`RetrievalModel` and the data it is fitted on
  (:class:`PairedData`, :class:`UnpairedData`, :class:`FitContext`, :class:`FitResult`);
* :mod:`bench.models.neural` — :class:`~bench.models.neural.EmbeddingModel`, what every neural model shares;
* :mod:`bench.models.training` — the training-loop skeleton (checkpoints, selection on dev, resuming);
* :mod:`bench.models.config` — typed config dataclasses, named profiles, ``--set`` overrides;
* :mod:`bench.models.search_space` — what ``bench tune`` may change in a config;
* :mod:`bench.models.registry` — model names -> specs, from the ``bench.models`` entry points.

The interface's names are importable from ``bench.models`` itself; the others from their modules.
"""

from __future__ import annotations

from bench.models.interface import FitContext, FitResult, PairedData, RetrievalModel, UnpairedData

__all__ = ["FitContext", "FitResult", "PairedData", "RetrievalModel", "UnpairedData"]
