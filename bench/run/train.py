"""One cell: fit its model on the split's paired set and unpaired pools (selecting on the dev split),
evaluate it on the test split, and write its record (a failure is recorded too)."""

from __future__ import annotations

import dataclasses
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bench.models.config import config_to_dict
from bench.data import Dataset
from bench.data.types import Split
from bench.errors import BenchError
from bench.metrics import evaluate_protocol, ranks
from bench.models import FitContext, PairedData, UnpairedData
from bench.run.provenance import environment
from bench.models.registry import ModelSpec
from bench.run.cell import Cell
from bench.run.folder import record_path, work_dir
from bench.run.record import RunRecord, write_record
from bench.splits import PairingSplit, subsets
from bench.metrics.stats import ranks_payload
from bench.models.training import seed_everything


def test_metrics(model, test: Split, protocols: list[str], ranks_out: dict | None = None) -> dict[str, dict[str, float]]:
    """The metrics of every protocol on the test split; with ``ranks_out``, also the per-query ranks on
    the whole test split (``bench.metrics.stats.ranks_payload``: what a bootstrap over test images needs)."""
    images = model.embed_images(test.features)
    captions = model.embed_captions(test.captions)
    if ranks_out is not None:
        ranks_out.update(ranks_payload(*ranks(images, captions, test.caption_to_image), test.caption_to_image))
    return {p: evaluate_protocol(images, captions, test.caption_to_image, p).to_dict() for p in protocols}


class CellProgress:
    """Turns a model's progress calls into a tqdm bar (or nothing, when quiet)."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.bar = None
        self.label = label
        self.quiet = quiet
        self.epoch_info: dict[str, float] = {}

    def __call__(self, **fields: Any) -> None:
        if self.quiet:
            return
        from tqdm.auto import tqdm

        if "epoch" in fields:
            self.epoch_info = {"epoch": fields["epoch"], "epochs": fields.get("epochs", 0)}
            if "val_rsum" in fields:
                self.epoch_info["val_rsum"] = fields["val_rsum"]
        if "steps" in fields:
            if self.bar is None or self.bar.total != fields["steps"]:
                if self.bar is not None:
                    self.bar.close()
                self.bar = tqdm(total=fields["steps"], desc=self.label, leave=False, dynamic_ncols=True)
            self.bar.n = fields.get("step", 0)
        if self.bar is not None:
            post = {}
            if self.epoch_info:
                post["ep"] = f"{self.epoch_info['epoch']}/{self.epoch_info['epochs']}"
            if "loss" in fields:
                post["loss"] = f"{fields['loss']:.3f}"
            if "val_rsum" in self.epoch_info:
                post["val_rsum"] = f"{self.epoch_info['val_rsum']:.1f}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def data_fields(dataset: Dataset, split: PairingSplit, split_file: Path, paired: PairedData,
                unpaired: UnpairedData) -> dict:
    """A record's ``data``: which data and split file the cell trained on, and how much of each."""
    return {
        "dataset": dataset.name,
        "ids_sha256": dataset.ids_sha256,
        "content_sha256": dataset.content_sha256,
        "source": dataset.source,
        "split_file": str(split_file),
        "split_sha256": split.sha256,
        "paired_images": paired.n_images,
        "paired_captions": paired.n_captions,
        "unpaired_images": unpaired.n_images,
        "unpaired_captions": unpaired.n_captions,
        "unpaired_fraction": split.unpaired_fraction,
        "extra_unpaired": split.extra_unpaired,
        "test_images": dataset.test.n_images,
        "test_captions": dataset.test.n_captions,
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_cell(cell: Cell, spec: ModelSpec, dataset: Dataset, split: PairingSplit, split_file: Path, identity: str,
             out: Path, device: torch.device, quiet: bool) -> dict:
    """Fit one cell (checkpoints in its work folder, keyed by ``identity``), evaluate it on the test
    split and write its record (a failure is recorded too); returns the record's dict."""
    started = time.perf_counter()
    timing: dict[str, float] = {}
    record = RunRecord(cell=cell.describe(), name=cell.name, config=config_to_dict(cell.config),
                       config_hash=cell.config_hash, model_revision=cell.revision, uses_unpaired=spec.uses_unpaired,
                       provenance={**environment(device), "started_at": _now()})
    if cell.tuned_from:
        record.provenance["tuned_profile"] = cell.tuned_from
    progress = CellProgress(cell.name, quiet)
    try:
        t = time.perf_counter()
        paired, unpaired = subsets(dataset, split, cell.pools)
        timing["data_s"] = time.perf_counter() - t
        record.data = data_fields(dataset, split, split_file, paired, unpaired)
        workdir = work_dir(out, cell, identity)
        workdir.mkdir(parents=True, exist_ok=True)
        seed_everything(cell.seed)
        model = spec.factory(cell.config)
        context = FitContext(validation=dataset.dev, workdir=workdir, device=device, seed=cell.seed,
                             progress=progress)
        t = time.perf_counter()
        fit = model.fit(paired, unpaired, context)
        timing["fit_s"] = time.perf_counter() - t
        record.training = dataclasses.asdict(fit)
        record.model = model.describe()
        t = time.perf_counter()
        test_ranks: dict = {}
        by_protocol = test_metrics(model, dataset.test, list(dataset.protocols), test_ranks)
        timing["evaluate_s"] = time.perf_counter() - t
        record.metrics_by_protocol = by_protocol
        record.protocol = next(iter(by_protocol))
        record.metrics = by_protocol[record.protocol]
        record.test_ranks = test_ranks
        record.status = "ok"
    except (BenchError, Exception) as error:  # noqa: BLE001 - a failed cell is recorded, the grid goes on
        record.record_error(error, traceback.format_exc(limit=8))
    finally:
        progress.close()
    timing["total_s"] = time.perf_counter() - started
    record.timing = {k: round(v, 3) for k, v in timing.items()}
    record.provenance["finished_at"] = _now()
    data = record.to_json()
    write_record(record_path(out, cell), data)
    return data
