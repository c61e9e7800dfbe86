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
one would. Run folders travel between people, so a checkpoint is data, never code: it is read
with :func:`bench.io.load_checkpoint` (tensors and plain values only; the RNG states are stored
in that form too), and one that can't be read or does not fit this training (truncated, crafted,
of other shapes, written by a harness that stored numpy arrays) is discarded with a one-line
notice on stderr, and the cell trains from epoch 0. :class:`EpochLog` averages a loop's per-step
losses and reports its progress.
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

from bench.errors import BenchError, notice
from bench.io import atomic_torch_save, error_summary, is_int_or_float, json_type, load_checkpoint
from bench.models import FitContext, FitResult

CHECKPOINT_NAME = "checkpoint.pt"


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the runner records the cell as failed."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _rng_state() -> dict:
    """The Python, numpy and torch RNG states as plain values and tensors: what a checkpoint may hold
    (see :func:`bench.io.load_checkpoint`). numpy's own form is an array, which would need unpickling."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    """Restore what :func:`_rng_state` saved; a malformed state raises (TypeError, ValueError, ...)."""
    python, numpy_state = state["python"], state["numpy"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    keys = numpy_state["keys"]
    if not isinstance(keys, torch.Tensor):
        raise TypeError(f"numpy RNG keys are {type(keys).__name__}, not a tensor")
    np.random.set_state((numpy_state["kind"], keys.cpu().numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())


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


# What every checkpoint written by run_training holds ("epochs" and "epoch_seconds" came later: optional).
_CHECKPOINT_KEYS = ("epoch", "modules", "optimizers", "schedulers", "rng", "best_score", "best_epoch", "best_state",
                    "curve")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same_layout(state: object, reference: dict) -> bool:
    """``state`` is a state dict with the names of ``reference``, and a tensor of the same shape
    wherever ``reference`` has a tensor."""
    if not isinstance(state, dict) or set(state) != set(reference):
        return False
    return all(isinstance(state[key], torch.Tensor) and state[key].shape == value.shape
               for key, value in reference.items() if isinstance(value, torch.Tensor))


def _checkpoint_problem(saved: dict, modules: dict[str, nn.Module], optimizers: dict, schedulers: dict,
                        n_epochs: int) -> str | None:
    """Why ``saved`` is not a checkpoint of this training (None when it is one): checked before any of
    it is applied, so a foreign or doctored file can't leave half of its weights in the model, and can't
    put a malformed curve into the record."""
    missing = [key for key in _CHECKPOINT_KEYS if key not in saved]
    if missing:
        return f"it lacks {', '.join(missing)}"
    epoch = saved["epoch"]
    if not _is_int(epoch) or not 0 <= epoch < n_epochs:
        return f"its epoch {epoch!r} is not one of this run's {n_epochs} epochs"
    for group, live in (("modules", modules), ("optimizers", optimizers), ("schedulers", schedulers)):
        held = saved[group]
        if not isinstance(held, dict) or set(held) != set(live):
            names = sorted(map(str, held)) if isinstance(held, dict) else json_type(held)
            return f"its {group} are {names}, not this model's {sorted(live)}"
    references = {name: module.state_dict() for name, module in modules.items()}
    for name, reference in references.items():
        if not _same_layout(saved["modules"][name], reference):
            return f"its module {name!r} has other parameters or shapes (another fraction, size or vocabulary?)"
    best_state = saved["best_state"]
    if best_state is not None and not (isinstance(best_state, dict) and set(best_state) == set(modules) and all(
            _same_layout(best_state[name], reference) for name, reference in references.items())):
        return "its best epoch's weights do not fit this model"
    if not is_int_or_float(saved["best_score"]):
        return f"its best score is {json_type(saved['best_score'])}, not a number"
    if saved["best_epoch"] is not None and not (_is_int(saved["best_epoch"]) and 0 <= saved["best_epoch"] <= epoch):
        return f"its best epoch {saved['best_epoch']!r} is not one of its {epoch + 1} epochs"
    curve = saved["curve"]
    points_ok = isinstance(curve, list) and len(curve) == epoch + 1 and all(
        isinstance(point, dict) and _is_int(point.get("epoch"))
        and all(isinstance(key, str) and is_int_or_float(value) for key, value in point.items()) for point in curve)
    if not points_ok:
        return f"its validation curve is not {epoch + 1} points of numbers"
    seconds = saved.get("epoch_seconds", [])
    if not (isinstance(seconds, list) and len(seconds) <= epoch + 1 and all(is_int_or_float(s) for s in seconds)):
        return "its epoch times are not a list of numbers"
    return None


def _resume(path: Path, device: torch.device, modules: dict[str, nn.Module], optimizers: dict, schedulers: dict,
            n_epochs: int) -> dict | None:
    """Load the checkpoint at ``path`` into the modules, optimizers, schedulers and RNGs, and return it;
    or, when it can't be read or does not fit (truncated, foreign, doctored, another fraction's), print
    a one-line notice, leave everything exactly as it was, and return None: the cell then trains from
    epoch 0 as if no checkpoint were there, and the next epoch's checkpoint replaces the file."""
    try:
        saved = load_checkpoint(path, device)
    except BenchError as error:
        return _discard(str(error))
    problem = _checkpoint_problem(saved, modules, optimizers, schedulers, n_epochs)
    if problem is not None:
        return _discard(f"checkpoint {path} does not fit this cell: {problem}")
    # What the live objects hold now, to put back if applying fails halfway (a module's load_state_dict
    # copies the tensors that fit before it raises on one that does not).
    groups = (("modules", modules), ("optimizers", optimizers), ("schedulers", schedulers))
    before = {group: {name: copy.deepcopy(obj.state_dict()) for name, obj in live.items()} for group, live in groups}
    rng_before = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        for group, live in groups:
            for name, obj in live.items():
                obj.load_state_dict(saved[group][name])
        _set_rng_state(saved["rng"])
    except Exception as error:  # untrusted content: whatever it makes fail means it does not fit
        for group, live in groups:
            for name, obj in live.items():
                obj.load_state_dict(before[group][name])
        random.setstate(rng_before[0])
        np.random.set_state(rng_before[1])
        torch.set_rng_state(rng_before[2])
        return _discard(f"checkpoint {path} does not fit this cell: {error_summary(error)}")
    return saved


def _discard(reason: str) -> None:
    """Say on stderr, in one line, that a checkpoint is not used and why."""
    notice(f"{reason}; discarded, the cell trains from epoch 0")


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

    saved = _resume(path, context.device, modules, optimizers, schedulers, n_epochs) if path.exists() else None
    if saved is not None:
        start_epoch, best, best_state = saved["epoch"] + 1, saved["best_score"], saved["best_state"]
        result.validation_curve = saved["curve"]
        result.best_epoch = saved["best_epoch"]
        result.resumed_from_epoch = saved["epoch"]
        epoch_seconds = list(saved.get("epoch_seconds", []))  # checkpoints from before it have none

    for epoch in range(start_epoch, n_epochs):
        started = time.perf_counter()
        losses, metrics = _train_and_validate(epoch, modules, train_epoch, validate)
        value = float(metrics[score])
        result.validation_curve.append(_curve_point(epoch, score, value, losses, metrics))
        if sign * value > best:
            best, result.best_epoch = sign * value, epoch
            best_state = {name: copy.deepcopy(m.state_dict()) for name, m in modules.items()}
        for scheduler in schedulers.values():
            scheduler.step()
        epoch_seconds.append(time.perf_counter() - started)
        _save_checkpoint(path, epoch, modules, optimizers, schedulers, best, best_state, result, n_epochs,
                         epoch_seconds)
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


def _train_and_validate(epoch: int, modules: dict[str, nn.Module], train_epoch: Callable[[int], dict[str, float]],
                        validate: Callable[[], dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """One epoch: train (modules in train mode; a non-finite loss raises :class:`TrainingDiverged`), then
    validate on the dev split (eval mode, no gradients). Returns the epoch's losses and dev metrics."""
    for module in modules.values():
        module.train()
    losses = train_epoch(epoch)
    check_finite(losses)
    for module in modules.values():
        module.eval()
    with torch.no_grad():
        metrics = validate()
    return losses, metrics


def _curve_point(epoch: int, score: str, value: float, losses: dict[str, float],
                 metrics: dict[str, float]) -> dict:
    """The validation curve's point for ``epoch``: the selecting score, the losses, the other dev metrics."""
    point = {"epoch": epoch, f"val_{score}": value, **{f"loss_{k}": float(v) for k, v in losses.items()}}
    point.update({f"val_{k}": float(v) for k, v in metrics.items() if k != score})
    return point


def _save_checkpoint(path: Path, epoch: int, modules: dict[str, nn.Module], optimizers: dict, schedulers: dict,
                     best: float, best_state: dict | None, result: FitResult, n_epochs: int,
                     epoch_seconds: list[float]) -> None:
    """Write, atomically, everything a resumed run needs after ``epoch`` (see :func:`_checkpoint_problem`
    for what a resume checks): the live state, the RNG states, the best epoch so far, the curve, and the
    planned epochs with each finished one's wall time."""
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
