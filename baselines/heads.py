"""What ``sue`` and ``otalign`` share: two heads on fixed inputs, trained on the pairs and the pools.

Both models first fix a front (``sue``: spectral coordinates and CCA; ``otalign``: a ridge-CCA
teacher), then train one head per modality. Every update adds the VSE++ hinge on a paired batch
and, unless the model is its paired-only twin (``use_pools=False``), a term on unpaired batches
(``sue``: MMD; ``otalign``: the KL between Sinkhorn plans). An epoch is a fixed number of updates
(``epoch_steps``), so the twin trains exactly as many updates as its model.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import nn

from bench.models import FitContext, FitResult, PairedData, UnpairedData
from bench.models.neural import EmbeddingModel
from bench.nn.losses import hinge_ranking_loss
from bench.models.training import EpochLog, optimizer_step, run_training

# A term of the loss on unpaired batches: its name in the logs and the weighted loss of update g.
PoolTerm = tuple[str, Callable[[int], torch.Tensor]]


class PoolHeadsModel(EmbeddingModel):
    """Base of ``sue`` and ``otalign``; the config has ``epoch_steps``, ``use_pools``, ``pair_weight``
    and the shared training settings. A subclass builds ``image_head`` and ``text_head`` in its fit and
    calls :meth:`train_heads`."""

    image_head: nn.Module | None = None
    text_head: nn.Module | None = None

    @classmethod
    def paired_only_twin(cls, config: Any) -> Any:
        """The same config with the term on the pools off (and, for ``sue``, spectral embeddings of the
        paired items only); the same heads and updates."""
        return dataclasses.replace(config, use_pools=False)

    def schedule(self, paired: PairedData, unpaired: UnpairedData) -> tuple[int, int]:
        return 0, self.config.epoch_steps

    def train_heads(self, context: FitContext, pair_scores: Callable[[int], torch.Tensor],
                    pool_term: PoolTerm | None) -> FitResult:
        """Train both heads for ``epochs`` epochs of ``epoch_steps`` updates, keeping the best dev epoch.
        ``pair_scores(g)`` is the score matrix of update g's paired batch; ``pool_term`` (None: no pool
        term) gives update g's weighted loss on unpaired batches."""
        cfg = self.config
        modules = {"image_head": self.image_head, "text_head": self.text_head}
        parameters = [p for m in modules.values() for p in m.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_epoch, gamma=cfg.lr_decay)
        steps = cfg.epoch_steps

        def train_epoch(epoch: int) -> dict[str, float]:
            log = EpochLog(context.progress, steps, cfg.progress_every)
            for step in range(steps):
                g = epoch * steps + step
                terms: dict[str, torch.Tensor] = {}
                if cfg.pair_weight:
                    terms["hinge"] = cfg.pair_weight * hinge_ranking_loss(pair_scores(g), cfg.margin,
                                                                          cfg.max_violation)
                if pool_term is not None:
                    terms[pool_term[0]] = pool_term[1](g)
                total = sum(terms.values())
                optimizer_step(total, optimizer, parameters, cfg.grad_clip)
                log.add(step, {"total": float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()}})
            return log.means()

        result = run_training(modules=modules, optimizers={"adam": optimizer}, schedulers={"step_lr": scheduler},
                              n_epochs=cfg.epochs, train_epoch=train_epoch,
                              validate=self.validator(context.validation), context=context)
        result.updates = steps * result.epochs_run
        return result

    def embedding_modules(self) -> list[nn.Module]:
        return [m for m in (self.image_head, self.text_head) if m is not None]
