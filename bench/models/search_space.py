"""What `bench tune` may change in a model's config, declared next to the config (``SEARCH_SPACE``).

A search space maps a config field to a distribution. One key is not a field: ``updates``
(:data:`UPDATES`), the optimizer updates a trial trains for, given as a share of the study's
update cap (every model of a study has the same cap, so none gets more training than another).
The tuner turns it into ``epochs`` (and ``lr_decay_epoch`` at the profile's share of them) with
the model's own :meth:`~bench.models.neural.EmbeddingModel.schedule`.

This module imports nothing heavy; the distributions ask an Optuna trial for their values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

UPDATES = "updates"


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=True)

    def describe(self) -> str:
        return f"log-uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high)

    def describe(self) -> str:
        return f"uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high)

    def describe(self) -> str:
        return f"integer {self.low}..{self.high}"


@dataclass(frozen=True)
class Choice:
    options: tuple

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.options))

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.options))


@dataclass(frozen=True)
class ShareOfCap:
    """A share of the study's update cap, log-uniform in ``[low, 1]``."""

    low: float = 0.1

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, 1.0, log=True)

    def describe(self) -> str:
        return f"log-uniform [{self.low:g}, 1] x the update cap"


def epochs_for(updates: float, fixed: int, per_epoch: int) -> int:
    """Epochs that spend at most ``updates`` updates (at least one epoch)."""
    return max(1, math.floor((updates - fixed) / max(1, per_epoch)))


def describe_space(space: dict) -> list[tuple[str, str]]:
    return [(name, distribution.describe()) for name, distribution in space.items()]
