"""``bench run``: train every (model, fraction, seed) cell of a grid and write one record each.

A cell is (dataset, model, text encoder, policy, fraction, seed, resolved config). For each
cell the runner takes the committed split file (its id hash checked against the data),
builds the paired and unpaired subsets, fits the model (selecting on the dev split),
embeds the test split, computes the VSE++ metrics and writes one JSON record atomically
under ``<out>/records/``. A finished record with the same config hash is skipped on a
rerun; a cell killed mid-training resumes from the checkpoint its model wrote after its
last finished epoch (``<out>/work/<cell>/``). A failing cell is recorded with its error
and the grid goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import __version__
from bench.data import Dataset
from bench.data.types import Split
from bench.errors import BenchError
from bench.io import atomic_write_json, to_json
from bench.metrics import evaluate_protocol
from bench.config import config_to_dict
from bench.models import FitContext, PairedData, UnpairedData
from bench.registry import ModelSpec
from bench.provenance import environment
from bench.splits import PairingSplit, format_fraction, load_split
from bench.training import seed_everything

SCHEMA_VERSION = 1
DEFAULT_RUN = Path("runs") / "default"  # what `bench run` writes and `bench report` reads without a folder


@dataclass(frozen=True)
class Cell:
    dataset: str
    model: str
    fraction: float
    seed: int
    policy: str
    profile: str
    text_encoder: str | None  # None for models without a choice of text encoder
    config: Any = field(compare=False)
    label: str | None = None  # names a variant (e.g. an ablation) so its records don't replace the base model's

    @property
    def config_hash(self) -> str:
        payload = {"model": self.model, "profile": self.profile, "config": config_to_dict(self.config)}
        return hashlib.sha256(to_json(payload).encode()).hexdigest()

    @property
    def name(self) -> str:
        encoder = f"-{self.text_encoder}" if self.text_encoder else ""
        label = f"-{self.label}" if self.label else ""
        return (f"{self.dataset}_{self.model}{encoder}{label}_{self.profile}_{self.policy}"
                f"_p{format_fraction(self.fraction)}_seed{self.seed}")

    def describe(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "fraction": self.fraction, "seed": self.seed,
                "policy": self.policy, "profile": self.profile, "text_encoder": self.text_encoder,
                "label": self.label}


def build_cells(dataset: str, specs: list[ModelSpec], fractions: list[float], seeds: list[int], policy: str,
                profile: str, text_encoders: list[str] | None, overrides: dict[str, dict[str, str]],
                label: str | None = None) -> list[Cell]:
    cells = []
    for spec in specs:
        names = {f.name for f in dataclasses.fields(spec.config_class)}
        has_text_choice = "text_encoder" in names
        # Overrides without a model prefix ("*") apply only where the model has that setting.
        model_overrides = {k: v for k, v in overrides.get("*", {}).items() if k in names}
        model_overrides.update(overrides.get(spec.name, {}))
        encoders: list[str | None] = list(text_encoders) if (text_encoders and has_text_choice) else [None]
        for encoder in encoders:
            settings = dict(model_overrides)
            if encoder is not None:
                settings["text_encoder"] = encoder
            config = spec.config_class.for_profile(profile, settings)
            chosen = getattr(config, "text_encoder", None) if has_text_choice else None
            for seed in seeds:
                for fraction in fractions:
                    cells.append(Cell(dataset, spec.name, fraction, seed, policy, profile, chosen, config, label))
    return cells


def subsets(dataset: Dataset, split: PairingSplit) -> tuple[PairedData, UnpairedData]:
    train = dataset.train
    paired_rows = np.array([train.image_index[i] for i in split.paired_image_ids], dtype=np.int64)
    paired = train.subset(paired_rows, name="paired")
    unpaired_image_rows = np.array([train.image_index[i] for i in split.unpaired_image_ids], dtype=np.int64)
    caption_source = np.zeros(train.n_images, dtype=bool)
    caption_source[[train.image_index[i] for i in split.unpaired_caption_image_ids]] = True
    caption_rows = np.flatnonzero(caption_source[train.caption_to_image])
    return (
        PairedData(paired.image_ids, paired.features, paired.caption_ids, paired.captions, paired.caption_to_image),
        UnpairedData(
            image_ids=[train.image_ids[r] for r in unpaired_image_rows],
            features=train.features[unpaired_image_rows] if len(unpaired_image_rows) else
            np.zeros((0, train.feature_dim), dtype=np.float32),
            caption_ids=[train.caption_ids[r] for r in caption_rows],
            captions=[train.captions[r] for r in caption_rows],
        ),
    )


def test_metrics(model, test: Split, protocols: list[str]) -> dict[str, dict[str, float]]:
    images = model.embed_images(test.features)
    captions = model.embed_captions(test.captions)
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


def record_path(out: Path, cell: Cell) -> Path:
    return out / "records" / f"{cell.name}.json"


def work_dir(out: Path, cell: Cell) -> Path:
    """Checkpoints and vocabulary of one cell; keyed by the config hash so a changed config never resumes a stale one."""
    return out / "work" / f"{cell.name}-{cell.config_hash[:12]}"


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def run_cell(cell: Cell, spec: ModelSpec, dataset: Dataset, out: Path, device: torch.device, quiet: bool,
             splits_dir: Path | None) -> dict:
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    timing: dict[str, float] = {}
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "bench_version": __version__,
        "status": "failed",
        "cell": cell.describe(),
        "name": cell.name,
        "config": config_to_dict(cell.config),
        "config_hash": cell.config_hash,
        "uses_unpaired": spec.uses_unpaired,
        "provenance": {**environment(device), "started_at": started_at},
    }
    progress = CellProgress(cell.name, quiet)
    try:
        t = time.perf_counter()
        split, split_file = load_split(dataset, cell.fraction, cell.seed, cell.policy, splits_dir)
        paired, unpaired = subsets(dataset, split)
        timing["data_s"] = time.perf_counter() - t
        record["data"] = {
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
            "test_images": dataset.test.n_images,
            "test_captions": dataset.test.n_captions,
        }
        workdir = work_dir(out, cell)
        workdir.mkdir(parents=True, exist_ok=True)
        seed_everything(cell.seed)
        model = spec.factory(cell.config)
        context = FitContext(validation=dataset.dev, workdir=workdir, device=device, seed=cell.seed,
                             progress=progress)
        t = time.perf_counter()
        fit = model.fit(paired, unpaired, context)
        timing["fit_s"] = time.perf_counter() - t
        record["training"] = dataclasses.asdict(fit)
        record["model"] = model.describe()
        t = time.perf_counter()
        by_protocol = test_metrics(model, dataset.test, list(dataset.protocols))
        timing["evaluate_s"] = time.perf_counter() - t
        record["metrics_by_protocol"] = by_protocol
        record["protocol"] = next(iter(by_protocol))
        record["metrics"] = by_protocol[record["protocol"]]
        record["status"] = "ok"
    except (BenchError, Exception) as error:  # noqa: BLE001 - a failed cell is recorded, the grid goes on
        record["error"] = {"type": type(error).__name__, "message": str(error),
                           "traceback": traceback.format_exc(limit=8)}
    finally:
        progress.close()
    timing["total_s"] = time.perf_counter() - started
    record["timing"] = {k: round(v, 3) for k, v in timing.items()}
    record["provenance"]["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(record_path(out, cell), record)
    return record


@dataclass
class GridSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def run_grid(cells: list[Cell], specs: dict[str, ModelSpec], dataset: Dataset, out: Path, device: torch.device,
             force: bool = False, quiet: bool = False, splits_dir: Path | None = None) -> GridSummary:
    from tqdm.auto import tqdm

    out.mkdir(parents=True, exist_ok=True)
    # Fail fast on a missing or mismatched split file, before any training.
    for key in sorted({(c.fraction, c.seed, c.policy) for c in cells}):
        load_split(dataset, *key, splits_dir=splits_dir)
    summary = GridSummary()
    overall = tqdm(cells, desc="grid", unit="cell", disable=quiet, dynamic_ncols=True)
    for cell in overall:
        overall.set_postfix_str(cell.name, refresh=True)
        existing = read_record(record_path(out, cell))
        if not force and existing and existing.get("status") == "ok" and existing.get("config_hash") == cell.config_hash:
            summary.skipped.append(cell.name)
            continue
        if force:
            for stale in work_dir(out, cell).glob("*.pt"):
                stale.unlink()
        record = run_cell(cell, specs[cell.model], dataset, out, device, quiet, splits_dir)
        if record["status"] == "ok":
            summary.done.append(cell.name)
            line = (f"{cell.name}: rsum {record['metrics']['rsum']:.1f} "
                    f"(i2t R@1 {record['metrics']['i2t_r1']:.1f}, t2i R@1 {record['metrics']['t2i_r1']:.1f}) "
                    f"in {record['timing']['total_s']:.0f}s")
        else:
            summary.failed.append((cell.name, record["error"]["message"]))
            line = f"{cell.name}: FAILED: {record['error']['type']}: {record['error']['message']}"
        (tqdm.write if not quiet else print)(line)
    overall.close()
    return summary
