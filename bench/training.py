"""The training-loop skeleton every neural model shares.

A model builds its modules and optimizers and hands :func:`run_training` two
callables: ``train_epoch(epoch) -> {loss name: mean value}`` and
``validate() -> {metric name: value}`` (on the dev split), and names the metric that
selects the kept epoch (``score``, default ``rsum``) and whether higher is better. The
skeleton runs the epochs, steps the schedulers, keeps the weights of the epoch with the
best validation score, and after every epoch writes a checkpoint atomically (modules,
optimizers, schedulers, RNG states, the best weights so far and the validation curve, and
the planned number of epochs with each one's wall time, from which ``bench status`` estimates
the time left).
If a checkpoint is there when training starts, it resumes after the last finished epoch
with the RNG state it had, so on CPU a resumed run ends exactly where an uninterrupted
one would. :class:`EpochLog` averages a loop's per-step losses and reports its progress.
"""

from __future__ import annotations

import copy
import math
import random
import time
from pathlib import Path
from collections import defaultdict
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from bench.errors import BenchError
from bench.io import atomic_torch_save
from bench.models import FitContext, FitResult

CHECKPOINT_NAME = "checkpoint.pt"


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the runner records the cell as failed."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def minibatches(n: int, batch_size: int, shuffle: bool = True, drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``; the order comes from torch's global RNG (seeded, checkpointed)."""
    order = torch.randperm(n) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def check_finite(losses: dict[str, float]) -> None:
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
    if bad:
        raise TrainingDiverged(f"loss became non-finite: {bad}")


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, parameters, grad_clip: float | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimizer.step()


class EpochLog:
    """The mean of each loss over the steps of one epoch that produced it, and in-epoch progress.

    ``add(step, values)`` takes step ``step`` (0-based) of ``steps``; every ``every`` steps, and
    at the last, it reports ``loss`` (the running mean of ``total``) with the given ``tags``.
    """

    def __init__(self, progress: Callable[..., None], steps: int, every: int, total: str = "total", **tags) -> None:
        self.progress, self.steps, self.every, self.total, self.tags = progress, steps, max(1, every), total, tags
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.sums[name] += value
            self.counts[name] += 1
        if (step + 1) % self.every == 0 or step + 1 == self.steps:
            self.progress(**self.tags, step=step + 1, steps=self.steps,
                          loss=self.sums[self.total] / self.counts[self.total])

    def means(self) -> dict[str, float]:
        return {name: self.sums[name] / self.counts[name] for name in self.sums}


def run_training(
    *,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] | None,
    n_epochs: int,
    train_epoch: Callable[[int], dict[str, float]],
    validate: Callable[[], dict[str, float]],
    context: FitContext,
    checkpoint_name: str = CHECKPOINT_NAME,
    score: str = "rsum",
    maximize: bool = True,
) -> FitResult:
    """Train for ``n_epochs`` and keep the epoch whose ``validate()[score]`` is best (highest when
    ``maximize``, else lowest); resume from ``checkpoint_name`` in the cell's folder if it exists."""
    schedulers = schedulers or {}
    sign = 1.0 if maximize else -1.0  # compare sign * score, so "best" is always the largest
    path = Path(context.workdir) / checkpoint_name
    result = FitResult()
    start_epoch, best, best_state = 0, -math.inf, None
    epoch_seconds: list[float] = []  # wall time of each epoch (training and validation), for `bench status`

    if path.exists():
        try:
            saved = torch.load(path, map_location=context.device, weights_only=False)
        except Exception as error:  # a torn file can't happen (atomic writes), but a foreign one can
            raise BenchError(f"checkpoint {path} can't be read ({error}); delete it or rerun with --force") from None
        try:
            for group, live in (("modules", modules), ("optimizers", optimizers), ("schedulers", schedulers)):
                for name, obj in live.items():
                    obj.load_state_dict(saved[group][name])
        except (KeyError, RuntimeError, ValueError) as error:
            raise BenchError(
                f"checkpoint {path} was made with other settings ({type(error).__name__}); delete it or rerun with --force"
            ) from None
        _set_rng_state(saved["rng"])
        start_epoch, best, best_state = saved["epoch"] + 1, saved["best_score"], saved["best_state"]
        result.validation_curve = saved["curve"]
        result.best_epoch = saved["best_epoch"]
        result.resumed_from_epoch = saved["epoch"]
        epoch_seconds = list(saved.get("epoch_seconds", []))  # checkpoints from before it have none

    for epoch in range(start_epoch, n_epochs):
        started = time.perf_counter()
        for module in modules.values():
            module.train()
        losses = train_epoch(epoch)
        check_finite(losses)
        for module in modules.values():
            module.eval()
        with torch.no_grad():
            metrics = validate()
        value = float(metrics[score])
        point = {"epoch": epoch, f"val_{score}": value, **{f"loss_{k}": float(v) for k, v in losses.items()}}
        point.update({f"val_{k}": float(v) for k, v in metrics.items() if k != score})
        result.validation_curve.append(point)
        if sign * value > best:
            best, result.best_epoch = sign * value, epoch
            best_state = {name: copy.deepcopy(m.state_dict()) for name, m in modules.items()}
        for scheduler in schedulers.values():
            scheduler.step()
        epoch_seconds.append(time.perf_counter() - started)
        atomic_torch_save(
            path,
            {
                "epoch": epoch,
                "modules": {n: m.state_dict() for n, m in modules.items()},
                "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                "schedulers": {n: s.state_dict() for n, s in schedulers.items()},
                "rng": _rng_state(),
                "best_score": best,
                "best_epoch": result.best_epoch,
                "best_state": best_state,
                "curve": result.validation_curve,
                "epochs": n_epochs,
                "epoch_seconds": epoch_seconds,
            },
        )
        context.progress(epoch=epoch + 1, epochs=n_epochs, **{f"val_{score}": value, f"best_{score}": sign * best},
                         **losses)

    result.epochs_run = n_epochs
    if len(epoch_seconds) == n_epochs:
        result.train_seconds = round(sum(epoch_seconds), 3)
    if best_state is not None:
        for name, module in modules.items():
            module.load_state_dict(best_state[name])
    for module in modules.values():
        module.eval()
    return result
