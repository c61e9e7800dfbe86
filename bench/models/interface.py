"""The one interface every retrieval model implements, and the data it is given.

A model is trained with :meth:`RetrievalModel.fit` on a :class:`PairedData` subset
(images, captions and the links between them) and an :class:`UnpairedData` subset
(images alone and captions alone, with no links), selecting its checkpoint on the
validation split; then :meth:`embed_images` / :meth:`embed_captions` map inputs into
the shared space as L2-normalised float32 CPU tensors, batched, in eval mode, without
gradients. A model class declares its registry entry (``name``, ``summary``,
``aliases``, ``config_class``, ``uses_unpaired``) as class attributes; see
:mod:`bench.models.registry`. The neural models share one more level,
:class:`bench.models.neural.EmbeddingModel`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from bench.data.types import Split


# -- data handed to a model ----------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PairedData:
    """Training images with their captions; ``caption_to_image[j]`` is caption j's image row."""

    image_ids: list[str]
    features: np.ndarray  # (n_images, feature_dim) float32
    caption_ids: list[str]
    captions: list[str]
    caption_to_image: np.ndarray  # (n_captions,) int64

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_captions(self) -> int:
        return len(self.captions)


@dataclass(frozen=True, eq=False)
class UnpairedData:
    """Images alone and captions alone. There is deliberately no caption->image map."""

    image_ids: list[str]
    features: np.ndarray  # (n_images, feature_dim) float32
    caption_ids: list[str]
    captions: list[str]

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_captions(self) -> int:
        return len(self.captions)


ProgressCallback = Callable[..., None]  # progress(**fields): epoch, step, steps, loss, val_rsum, ...


def _no_progress(**_: Any) -> None:
    return None


@dataclass
class FitContext:
    """Everything a model's ``fit`` needs besides the data."""

    validation: Split  # the dev split: model selection happens here, never on test
    workdir: Path  # this cell's folder for checkpoints and the vocabulary
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    progress: ProgressCallback = _no_progress


@dataclass
class FitResult:
    epochs_run: int = 0
    best_epoch: int | None = None
    validation_curve: list[dict[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "unpaired data ignored"
    resumed_from_epoch: int | None = None
    updates: int | None = None  # optimizer updates of the model's weights (not of critics), when it counts them
    # wall seconds of every epoch behind this result (training and validation), summed over every leg of
    # a resumed run, where the record's `timing` holds the last leg only; None when some epoch's time is
    # unknown (a checkpoint from before epoch times were kept) or the model has no epochs
    train_seconds: float | None = None


class RetrievalModel(abc.ABC):
    """Base class of every model. Subclasses declare their registry entry and implement three methods."""

    name: ClassVar[str]  # on the command line
    summary: ClassVar[str]  # one line for `bench models`
    aliases: ClassVar[tuple[str, ...]] = ()
    config_class: ClassVar[type]  # a frozen dataclass with ModelConfig's profiles
    uses_unpaired: ClassVar[bool] = False
    # Raise by one with a change that makes some existing config train differently (a bug fix that
    # adds no config field). It joins the config hash, so earlier records and checkpoints of the model
    # are no longer taken as finished or resumed; 0 leaves hashes as they were before revisions existed.
    revision: ClassVar[int] = 0

    def __init__(self, config: Any) -> None:
        self.config = config

    @abc.abstractmethod
    def fit(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> FitResult: ...

    @abc.abstractmethod
    def embed_images(self, features: np.ndarray) -> torch.Tensor: ...

    @abc.abstractmethod
    def embed_captions(self, captions: list[str]) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]:
        """Extra facts for the result record (e.g. which text encoder ran)."""
        return {}

    @classmethod
    def paired_only_twin(cls, config: Any) -> Any | None:
        """The config of this model's paired-only twin: the same config with every term that reads the
        unpaired pools switched off, and the same number of optimizer updates. Model minus twin is the
        model's unpaired gain (`bench report --unpaired-gain`). None for a model that ignores the pools."""
        return None
