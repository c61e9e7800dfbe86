"""``bench run``: train every cell of a grid not finished yet and write one record each.

For each cell the grid takes the committed split file (its id hash checked against the data), and
an executor (:mod:`bench.run.executors`) trains the cell (:func:`bench.run.train.run_cell`) under
its lock. A finished record with the same identity is skipped on a rerun; a cell killed
mid-training resumes from the checkpoint its model wrote after its last finished epoch
(``<out>/work/<cell>/``). A failing cell is recorded with its error and the grid goes on.

A record's file name is its cell name, which does not hold the config: a finished record of
another identity (config, model revision, data or split file) under the same name is never
replaced silently. The run stops before training and asks for ``--label`` (keep both) or
``--force``, which moves the earlier record to ``<out>/superseded/`` and trains.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.models.config import config_to_dict
from bench.data import Dataset
from bench.errors import BenchError
from bench.io import to_json
from bench.nn.text import TEXT_SIDES, text_side
from bench.models.registry import ModelSpec
from bench.run.cell import Cell, cell_identity
from bench.run.executors import CellJob, make_executor
from bench.run.folder import existing_record, is_finished, prepare_run_folder, record_path, superseded_path
from bench.run.record import record_identity
from bench.splits import load_split


def config_differences(record: dict, cell: Cell, content_sha256: str, split_sha256: str) -> str:
    """How a finished record's cell differs from ``cell`` on this data and split file (the settings
    whose values differ, a raised model revision, changed data or split file), in a few words for a
    one-line message."""
    recorded = record.get("config") if isinstance(record.get("config"), dict) else {}
    current = json.loads(to_json(config_to_dict(cell.config)))  # as a record holds it (lists, not tuples)
    absent = object()
    show = lambda value: "absent" if value is absent else json.dumps(value)  # noqa: E731
    keys = sorted(k for k in recorded.keys() | current.keys() if recorded.get(k, absent) != current.get(k, absent))
    parts = [f"{cell.model}.{k} {show(recorded.get(k, absent))} -> {show(current.get(k, absent))}" for k in keys[:4]]
    if len(keys) > 4:
        parts.append(f"{len(keys) - 4} more setting(s)")
    if record.get("model_revision", 0) != cell.revision:
        parts.append(f"model revision {record.get('model_revision', 0)} -> {cell.revision}, a fix that changed what "
                     "the model trains: pass --force to retrain")
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    if data.get("content_sha256") != content_sha256:
        parts.append("the dataset's content changed")
    if data.get("split_sha256") != split_sha256:
        parts.append("the split file changed")
    return "; ".join(parts) or "another config hash"


def check_replaced_records(cells: list[Cell], identities: dict[str, str], dataset: Dataset, splits: dict,
                           out: Path, force: bool) -> None:
    """Refuse (before any training) to replace a finished record of another identity under a cell's
    name; with ``force``, move each such record to ``<out>/superseded/`` (a rename: atomic) and say so.
    Failed records are replaced as before: they hold no result to lose."""
    clashes = []
    for cell in cells:
        record = existing_record(out, cell, quiet=False)
        if record is not None and record.get("status") == "ok" and record_identity(record) != identities[cell.name]:
            clashes.append((cell, record))
    if not clashes:
        return
    if not force:
        cell, record = clashes[0]
        how = config_differences(record, cell, dataset.content_sha256, splits[cell.split_key][0].sha256)
        others = f" ({len(clashes) - 1} more cell(s) alike)" if len(clashes) > 1 else ""
        raise BenchError(f"{cell.name} already has a finished record in {out / 'records'}, made differently ({how})"
                         f"{others}; pass --label NAME to keep both, or --force to replace it (the earlier record "
                         f"moves to {out / 'superseded'}/)")
    for cell, record in clashes:
        path = record_path(out, cell)
        target = superseded_path(out, path, record)
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
        except OSError as error:
            raise BenchError(f"can't move {path} to {target} ({error.strerror or error}); pass another --out") from None
        print(f"{cell.name}: its earlier finished record (another config, data or split file) moved to {target}")


@dataclass
class GridSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    waited: list[str] = field(default_factory=list)  # cells another process held; waited for, then skipped


def _splits_and_identities(cells: list[Cell], dataset: Dataset, splits_dir: Path | None) -> tuple[dict, dict]:
    """Each cell's split file (loaded once per split; a missing or mismatched one fails here, before
    any training) and each cell's identity, by name."""
    splits = {}
    for cell in cells:
        if cell.split_key not in splits:
            splits[cell.split_key] = load_split(dataset, cell.fraction, cell.seed, cell.policy, splits_dir, cell.pools)
    identities = {}
    for cell in cells:
        if cell.name in identities:  # the command line refuses repeats; this catches any other way in
            raise BenchError(f"cell {cell.name} is in the grid twice; give each model, fraction and seed once")
        split_sha256 = splits[cell.split_key][0].sha256
        identities[cell.name] = cell_identity(cell.config_hash, dataset.content_sha256, split_sha256)
    return splits, identities


def run_grid(cells: list[Cell], specs: dict[str, ModelSpec], dataset: Dataset, out: Path, device: torch.device,
             force: bool = False, quiet: bool = False, splits_dir: Path | None = None, jobs: int = 1,
             threads: int | None = None, executor: str = "local", address: str | None = None) -> GridSummary:
    """Run every cell not finished yet, on ``jobs`` local worker processes or as Ray tasks.

    Each cell is trained under a lock in ``out/locks``, so several ``bench run`` processes (or
    machines sharing the folder) never train the same cell: a cell another process holds is put
    off to the end of the grid, then waited for and skipped when it finished there. A finished
    record of another identity under a cell's name stops the run before any training, unless
    ``force`` (see :func:`check_replaced_records`).
    """
    if not cells:
        raise BenchError("the grid is empty: no model, fraction or seed to run")
    prepare_run_folder(out)
    splits, identities = _splits_and_identities(cells, dataset, splits_dir)
    check_replaced_records(cells, identities, dataset, splits, out, force)
    summary = GridSummary()
    pending = []
    for cell in cells:
        split, split_file = splits[cell.split_key]
        identity = identities[cell.name]
        if not force and is_finished(out, cell, identity):
            summary.skipped.append(cell.name)
            continue
        pending.append(CellJob(cell, specs[cell.model], split, split_file, identity, out, str(device), force))
    warm_text_sides([job.cell for job in pending], dataset, progress=not quiet)
    say = print if quiet else _tqdm_write
    with make_executor(executor, jobs=jobs, threads=threads, address=address, device=device) as pool:
        for outcome in pool.run(pending, dataset, quiet=quiet, total=len(cells), already=len(summary.skipped)):
            if outcome.status == "ok":
                summary.done.append(outcome.name)
            elif outcome.status == "failed":
                summary.failed.append((outcome.name, outcome.message))
            elif outcome.status == "waited":
                summary.waited.append(outcome.name)
                summary.skipped.append(outcome.name)
            elif outcome.status == "skipped":
                summary.skipped.append(outcome.name)
            # "deferred": locked by another run; the executor comes back to it, so it isn't counted yet
            say(outcome.line)
    return summary


def warm_text_sides(cells: list[Cell], dataset: Dataset, progress: bool = False) -> None:
    """Work every cell would repeat, done once before the workers start: encoding every caption with
    a frozen sentence encoder fills its cache, so parallel workers don't each encode them again. A
    model's own text reading that is no text side of ``bench.nn.text`` (``cca``'s ``tfidf``) has
    nothing to warm."""
    for name in sorted({getattr(c.config, "text_encoder", None) for c in cells} & set(TEXT_SIDES)):
        extra = {id(s): s for c in cells for s in c.pools.extras if s.modality == "captions"}
        captions = [c for split in dataset.splits() for c in split.captions]
        text_side(name).warm(captions + [c for source in extra.values() for c in source.captions], progress)


def _tqdm_write(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line)
