"""The shape every neural model shares: :class:`EmbeddingModel`.

A neural model maps image features and captions through trained modules into one space. What
differs between ``vse``, ``jwae`` and ``mine`` is which modules and which losses; what they
share lives here once:

* starting a fit: the seed, the device, the cell folder, the text side fitted on the training
  captions (:meth:`EmbeddingModel.start_fit`);
* validation during training on the dev split (:meth:`EmbeddingModel.validator`), for
  :func:`bench.models.training.run_training`;
* embedding in batches, in eval mode, without gradients, and refusing to embed before a fit.

A subclass implements ``fit`` and two per-batch encoders, :meth:`encode_images` and
:meth:`encode_text`, and says which modules embedding reads (:meth:`embedding_modules`).
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from bench.data.types import Split
from bench.errors import BenchError
from bench.models import FitContext, PairedData, RetrievalModel, UnpairedData
from bench.models.search_space import epochs_for
from bench.nn.text import SentenceVectors, TextSide, TokenizedCaptions, text_side
from bench.models.training import seed_everything


def float_tensor(features: np.ndarray) -> torch.Tensor:
    """Features as a contiguous float32 CPU tensor (no copy when they already are)."""
    return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))


def embed_in_batches(encode: Callable[[torch.Tensor], torch.Tensor], n: int, batch_size: int = 1024,
                     modules: Iterable[nn.Module] = ()) -> torch.Tensor:
    """Run ``encode(indices)`` over ``range(n)`` in order, without gradients, and stack on the CPU.

    ``modules`` are put in eval mode for the pass and each one's own mode is restored after,
    so a model can embed (e.g. for validation) in the middle of training.
    """
    modes = [(module, module.training) for module in modules]
    for module, _ in modes:
        module.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                out.append(encode(torch.arange(start, min(n, start + batch_size))).float().cpu())
    finally:
        for module, mode in modes:
            module.train(mode)
    return torch.cat(out) if out else torch.zeros(0)


class EmbeddingModel(RetrievalModel):
    """Base of the neural models; ``config`` is a :class:`bench.models.config.TrainingConfig`."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.text: TextSide | None = None
        self.device = torch.device("cpu")

    # -- what a subclass provides --------------------------------------------------------------
    @abc.abstractmethod
    def encode_images(self, features: torch.Tensor) -> torch.Tensor:
        """A batch of image features (on the device) -> L2-normalised embeddings."""

    @abc.abstractmethod
    def encode_text(self, inputs: tuple) -> torch.Tensor:
        """A batch of prepared captions (the text side's tuple) -> L2-normalised embeddings."""

    @abc.abstractmethod
    def embedding_modules(self) -> list[nn.Module]:
        """The modules embedding reads; they are in eval mode while it runs. Empty before a fit."""

    # -- for fit -------------------------------------------------------------------------------------
    def schedule(self, paired: PairedData, unpaired: UnpairedData) -> tuple[int, int]:
        """``(fixed, per_epoch)``: the optimizer updates a fit on this data spends outside the
        ``epochs`` loop (e.g. a pre-training stage) and in each of its epochs. `bench tune` turns an
        update budget into epochs with it; a fit reports ``fixed + per_epoch * epochs`` as its updates."""
        raise NotImplementedError(f"{type(self).__name__} does not say how many updates an epoch takes")

    def settle_schedule(self, paired: PairedData, unpaired: UnpairedData, room: int | None = None):
        """Turn a config's ``updates`` into epochs for this data; returns (and sets) ``self.config``.

        With ``updates > 0`` the fit spends at most that many updates (but at least one epoch):
        ``epochs`` becomes what fits after the fixed updates of a pre-training stage, and the lr drop
        keeps its share ``lr_decay_epoch / epochs`` of the run. A pre-training stage
        (``stage1_epochs``) that would leave no room for one epoch within ``room`` updates (default:
        ``updates``) is shortened first. The settled config has ``updates = 0``, so settling twice
        changes nothing. With ``updates == 0`` the config is left as it is."""
        cfg = self.config
        if not cfg.updates:
            return cfg
        room = cfg.updates if room is None else room
        fixed, per_epoch = self.schedule(paired, unpaired)
        stage1_epochs = getattr(cfg, "stage1_epochs", 0)
        if fixed + per_epoch > room and stage1_epochs:
            fitting = max(0, (room - per_epoch) // max(1, fixed // stage1_epochs))
            self.config = dataclasses.replace(cfg, stage1_epochs=min(stage1_epochs, fitting))
            fixed, per_epoch = self.schedule(paired, unpaired)
        epochs = epochs_for(cfg.updates, fixed, per_epoch)
        decay = max(1, round(epochs * cfg.lr_decay_epoch / cfg.epochs))
        self.config = dataclasses.replace(self.config, epochs=epochs, lr_decay_epoch=decay, updates=0)
        return self.config

    def start_fit(self, context: FitContext, training_captions: Iterable[str]) -> Path:
        """Seed, device and cell folder; the text side fitted on ``training_captions`` (each
        caption once: a GRU's vocabulary comes from them). Returns the cell folder."""
        seed_everything(context.seed)
        self.device = torch.device(context.device)
        workdir = Path(context.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.text = text_side(self.config.text_encoder, self.config.min_count)
        self.text.fit(training_captions, workdir)
        return workdir

    def validator(self, validation: Split) -> Callable[[], dict[str, float]]:
        """``validate()`` for :func:`bench.models.training.run_training`: the dev metrics of the model
        as it is (dev captions prepared once)."""
        from bench.metrics import evaluate

        captions = self.text.prepare(list(validation.captions))

        def validate() -> dict[str, float]:
            images = self.embed_images(validation.features)
            return evaluate(images, self.embed_prepared(captions), validation.caption_to_image).to_dict()

        return validate

    # -- embedding ---------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if self.text is None or not self.embedding_modules():
            raise BenchError(f"the {self.name} model has not been fitted yet")

    def embed_images(self, features: np.ndarray) -> torch.Tensor:
        self._require_fitted()
        x = float_tensor(features)
        return embed_in_batches(lambda idx: self.encode_images(x[idx].to(self.device)), x.shape[0],
                                self.config.eval_batch_size, self.embedding_modules())

    def embed_captions(self, captions: list[str]) -> torch.Tensor:
        self._require_fitted()
        return self.embed_prepared(self.text.prepare(list(captions)))

    def embed_prepared(self, prepared: TokenizedCaptions | SentenceVectors) -> torch.Tensor:
        return embed_in_batches(lambda idx: self.encode_text(prepared.batch(idx, self.device)), len(prepared),
                                self.config.eval_batch_size, self.embedding_modules())

    def describe(self) -> dict:
        return dict(self.text.describe()) if self.text is not None else {"text_encoder": self.config.text_encoder}
