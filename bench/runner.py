"""``bench run``: train every (model, fraction, seed) cell of a grid and write one record each.

A cell is (dataset, model, text encoder, policy, fraction, seed, resolved config). For each
cell the runner takes the committed split file (its id hash checked against the data),
builds the paired and unpaired subsets, fits the model (selecting on the dev split),
embeds the test split, computes the VSE++ metrics and writes one JSON record atomically
under ``<out>/records/``. A finished record with the same config hash is skipped on a
rerun; a cell killed mid-training resumes from the checkpoint its model wrote after its
last finished epoch (``<out>/work/<cell>/``). A failing cell is recorded with its error
and the grid goes on.

A record's file name is its cell name, which does not hold the config: a finished record of
another identity (config, model revision, data or split file) under the same name is never
replaced silently. The run stops before training and asks for ``--label`` (keep both) or
``--force``, which moves the earlier record to ``<out>/superseded/`` and trains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
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
from bench.config import config_to_dict, hashed_config
from bench.models import FitContext, PairedData, UnpairedData
from bench.registry import ModelSpec
from bench.provenance import environment
from bench.splits import PairingSplit, PoolSpec, format_fraction, kept_extra_rows, load_split, pools_suffixes
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
    pools: PoolSpec = field(default_factory=PoolSpec, compare=False)  # share of the unpaired pools, extra sources
    tuned_from: dict | None = field(default=None, compare=False)  # --profile tuned: the file the config came from
    revision: int = field(default=0, compare=False)  # the model's behaviour revision (RetrievalModel.revision)
    twin_of: str | None = None  # a paired-only twin (bench.gain): the name of the model cell it belongs to

    @property
    def config_hash(self) -> str:
        payload = {"model": self.model, "profile": self.profile, "config": hashed_config(self.config)}
        if self.revision:  # left out at 0, so hashes from before revisions existed stay valid
            payload["revision"] = self.revision
        return hashlib.sha256(to_json(payload).encode()).hexdigest()

    @property
    def name(self) -> str:
        encoder = f"-{self.text_encoder}" if self.text_encoder else ""
        label = f"-{self.label}" if self.label else ""
        extras, share = pools_suffixes(self.pools.unpaired_fraction, self.pools.tags)
        return (f"{self.dataset}_{self.model}{encoder}{label}_{self.profile}_{self.policy}{extras}"
                f"_p{format_fraction(self.fraction)}{share}_seed{self.seed}")

    @property
    def split_key(self) -> tuple:
        return (self.fraction, self.seed, self.policy, self.pools.key())

    def describe(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "fraction": self.fraction, "seed": self.seed,
                "policy": self.policy, "profile": self.profile, "text_encoder": self.text_encoder,
                "label": self.label, "unpaired_fraction": self.pools.unpaired_fraction,
                "extra_sources": list(self.pools.tags), **({"twin_of": self.twin_of} if self.twin_of else {})}


def build_cells(dataset: str, specs: list[ModelSpec], fractions: list[float], seeds: list[int], policy: str,
                profile: str, text_encoders: list[str] | None, overrides: dict[str, dict[str, str]],
                label: str | None = None, pool_variants: list[PoolSpec] | None = None,
                tuned_dir: Path | None = None, with_controls: bool = False) -> list[Cell]:
    """The grid's cells. A model that ignores unpaired data gets only the plain pools of each split
    (any other variant would train the very same model again). With ``profile == "tuned"`` each
    cell's config is the `bench tune` result for its model, text encoder and fraction. With
    ``with_controls``, each cell of a model that reads the pools is followed by its paired-only twin
    (:mod:`bench.gain`): the twin's config, labelled ``paired-only``, on the same split and seed."""
    from bench.gain import twin_label
    from bench.tuning import TUNED_PROFILE, tuned_config

    cells = []
    pool_variants = pool_variants or [PoolSpec()]
    for spec in specs:
        variants = pool_variants if spec.uses_unpaired else [PoolSpec()]
        names = {f.name for f in dataclasses.fields(spec.config_class)}
        # Overrides without a model prefix ("*") apply only where the model has that setting.
        model_overrides = {k: v for k, v in overrides.get("*", {}).items() if k in names}
        model_overrides.update(overrides.get(spec.name, {}))
        for encoder in encoders_for(spec, text_encoders):
            settings = dict(model_overrides)
            if encoder is not None:
                settings["text_encoder"] = encoder
            configs = {}  # fraction -> (config, the tuned file it came from)
            for fraction in fractions:
                if profile == TUNED_PROFILE:
                    text = cell_text_encoder(spec, encoder or spec.default_text_encoder("cpu"))
                    configs[fraction] = tuned_config(spec, dataset, text, fraction, tuned_dir,
                                                     {k: v for k, v in settings.items() if k != "text_encoder"})
                else:
                    configs[fraction] = (spec.config_class.for_profile(profile, settings), None)
            for seed in seeds:
                for fraction in fractions:
                    config, tuned = configs[fraction]
                    chosen = cell_text_encoder(spec, getattr(config, "text_encoder", None))
                    twin = spec.paired_only_twin(config) if with_controls else None
                    for pools in variants:
                        cell = Cell(dataset, spec.name, fraction, seed, policy, profile, chosen, config, label,
                                    pools, tuned, spec.revision)
                        cells.append(cell)
                        if twin is not None:
                            cells.append(dataclasses.replace(cell, config=twin, label=twin_label(label),
                                                             twin_of=cell.name))
    return cells


def encoders_for(spec: ModelSpec, requested: list[str] | None) -> list[str | None]:
    """The text encoders a model's cells run with: None (the profile's choice) when none is requested
    or the model has no choice; else the requested ones the model reads. A model that reads none of
    them is one clear error, not a silently empty row."""
    if not requested or not spec.has_text_choice:
        return [None]
    chosen = [encoder for encoder in requested if encoder in spec.text_encoders]
    if not chosen:
        raise BenchError(f"{spec.name} reads the text encoders {', '.join(spec.text_encoders)}, not "
                         f"{', '.join(requested)}; run it with --text-encoders {spec.text_encoders[0]}")
    return list(chosen)


def cell_text_encoder(spec: ModelSpec, encoder: str | None) -> str | None:
    """The text encoder a cell is named by: None for a model without a choice, and for the model's own
    unnamed one (cca's bag of words), so those cells keep the names they had before the choice existed."""
    if not spec.has_text_choice or encoder == spec.unnamed_text_encoder:
        return None
    return encoder


def subsets(dataset: Dataset, split: PairingSplit, pools: PoolSpec = PoolSpec()) -> tuple[PairedData, UnpairedData]:
    """The paired set and unpaired pools a split names, with the kept items of ``pools.extras`` added
    after the dataset's own (the split's checksums of them are checked by ``load_split``)."""
    train = dataset.train
    paired_rows = np.array([train.image_index[i] for i in split.paired_image_ids], dtype=np.int64)
    paired = train.subset(paired_rows, name="paired")
    unpaired_image_rows = np.array([train.image_index[i] for i in split.unpaired_image_ids], dtype=np.int64)
    caption_source = np.zeros(train.n_images, dtype=bool)
    caption_source[[train.image_index[i] for i in split.unpaired_caption_image_ids]] = True
    caption_rows = np.flatnonzero(caption_source[train.caption_to_image])
    image_ids = [train.image_ids[r] for r in unpaired_image_rows]
    features = [train.features[unpaired_image_rows].astype(np.float32, copy=False)]
    caption_ids = [train.caption_ids[r] for r in caption_rows]
    captions = [train.captions[r] for r in caption_rows]
    for source in pools.extras:
        rows = kept_extra_rows(source, split.seed, split.unpaired_fraction)
        if source.modality == "captions":
            caption_ids += [source.ids[r] for r in rows]
            captions += [source.captions[r] for r in rows]
        else:
            image_ids += [source.ids[r] for r in rows]
            features.append(source.features[rows])
    return (
        PairedData(paired.image_ids, paired.features, paired.caption_ids, paired.captions, paired.caption_to_image),
        UnpairedData(image_ids=image_ids, features=np.concatenate(features).reshape(-1, train.feature_dim),
                     caption_ids=caption_ids, captions=captions),
    )


def test_metrics(model, test: Split, protocols: list[str], ranks_out: dict | None = None) -> dict[str, dict[str, float]]:
    """The metrics of every protocol on the test split; with ``ranks_out``, also the per-query ranks on
    the whole test split (``bench.stats.ranks_payload``: what a bootstrap over test images needs)."""
    images = model.embed_images(test.features)
    captions = model.embed_captions(test.captions)
    if ranks_out is not None:
        from bench.metrics import ranks
        from bench.stats import ranks_payload

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


def record_path(out: Path, cell: Cell) -> Path:
    return out / "records" / f"{cell.name}.json"


def cell_identity(config_hash: str, content_sha256: str, split_sha256: str) -> str:
    """What makes a finished cell reusable: the same config, the same data bytes and the same split
    file. Changed data (a dropped image, an edited caption) means another identity and a recompute."""
    return hashlib.sha256(f"{config_hash}:{content_sha256}:{split_sha256}".encode()).hexdigest()


def record_identity(record: dict) -> str | None:
    """The identity of the cell a finished record was made for (None when it lacks the fields)."""
    try:
        data = record["data"]
        return cell_identity(record["config_hash"], data["content_sha256"], data["split_sha256"])
    except (KeyError, TypeError):
        return None


def work_dir(out: Path, cell: Cell, identity: str) -> Path:
    """Checkpoints and vocabulary of one cell; keyed by its identity, so neither a changed config nor
    changed data ever resumes a stale checkpoint."""
    return out / "work" / f"{cell.name}-{identity[:12]}"


def parse_work_dir(folder: Path) -> tuple[str, str]:
    """The cell name and identity prefix a :func:`work_dir` folder was named from."""
    name, _, identity = folder.name.rpartition("-")
    return name, identity


def read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def is_finished(out: Path, cell: Cell, identity: str) -> bool:
    record = read_record(record_path(out, cell))
    return bool(record) and record.get("status") == "ok" and record_identity(record) == identity


def prepare_run_folder(out: Path) -> None:
    """Create ``out/records``, ``out/locks`` and ``out/work`` and check each can be written, with a
    clear error (before any training) for a folder that is a file, a read-only one, or a read-only
    filesystem: the records, the cells' locks and their checkpoints are all written there."""
    folders = (out / "records", out / "locks", out / "work")
    for folder in (out, *folders):
        if folder.exists() and not folder.is_dir():
            raise BenchError(f"run folder {out}: {folder} is a file, not a folder; pass another --out")
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # A probe of its own (not a fixed name): several runs may start on one folder at once.
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
                pass
        except OSError as error:
            raise BenchError(f"run folder {out} can't be written ({error.strerror or error}): no file can be made in "
                             f"{folder}; pass another --out") from None


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


def superseded_path(out: Path, path: Path, record: dict) -> Path:
    """Where ``--force`` keeps a replaced record: ``<out>/superseded/<name>.<config hash[:12]>.json``
    (with ``.2``, ``.3``... when that one is already kept, so nothing kept there is ever replaced)."""
    config_hash = record.get("config_hash")
    stem = f"{path.stem}.{config_hash[:12] if isinstance(config_hash, str) else 'unknown'}"
    target, n = out / "superseded" / f"{stem}.json", 2
    while target.exists():
        target, n = out / "superseded" / f"{stem}.{n}.json", n + 1
    return target


def check_replaced_records(cells: list[Cell], identities: dict[str, str], dataset: Dataset, splits: dict,
                           out: Path, force: bool) -> None:
    """Refuse (before any training) to replace a finished record of another identity under a cell's
    name; with ``force``, move each such record to ``<out>/superseded/`` (a rename: atomic) and say so.
    Failed records are replaced as before: they hold no result to lose."""
    clashes = []
    for cell in cells:
        record = read_record(record_path(out, cell))
        if record and record.get("status") == "ok" and record_identity(record) != identities[cell.name]:
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


def run_cell(cell: Cell, spec: ModelSpec, dataset: Dataset, split: PairingSplit, split_file: Path, identity: str,
             out: Path, device: torch.device, quiet: bool) -> dict:
    """Fit one cell (checkpoints in its work folder, keyed by ``identity``), evaluate it on the test
    split and write its record (a failure is recorded too)."""
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
        "model_revision": cell.revision,
        "uses_unpaired": spec.uses_unpaired,
        "provenance": {**environment(device), "started_at": started_at},
    }
    if cell.tuned_from:
        record["provenance"]["tuned_profile"] = cell.tuned_from
    progress = CellProgress(cell.name, quiet)
    try:
        t = time.perf_counter()
        paired, unpaired = subsets(dataset, split, cell.pools)
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
            "unpaired_fraction": split.unpaired_fraction,
            "extra_unpaired": split.extra_unpaired,
            "test_images": dataset.test.n_images,
            "test_captions": dataset.test.n_captions,
        }
        workdir = work_dir(out, cell, identity)
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
        test_ranks: dict = {}
        by_protocol = test_metrics(model, dataset.test, list(dataset.protocols), test_ranks)
        timing["evaluate_s"] = time.perf_counter() - t
        record["metrics_by_protocol"] = by_protocol
        record["protocol"] = next(iter(by_protocol))
        record["metrics"] = by_protocol[record["protocol"]]
        record["test_ranks"] = test_ranks
        record["status"] = "ok"
    except (BenchError, Exception) as error:  # noqa: BLE001 - a failed cell is recorded, the grid goes on
        record["error"] = {"type": type(error).__name__, "message": str(error),
                           "traceback": traceback.format_exc(limit=8)}
    finally:
        progress.close()
    timing["total_s"] = time.perf_counter() - started
    record["timing"] = {k: round(v, 3) for k, v in timing.items()}
    record["provenance"]["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_record(record_path(out, cell), record)
    return record


def write_record(path: Path, record: dict) -> None:
    """Write a record atomically, after checking it against the schema. A record that breaks the
    schema is written as a failure that says how, never as a result."""
    from bench.schema import validation_errors

    problems = validation_errors(record)
    if problems:
        record = {**record, "status": "failed",
                  "error": {"type": "SchemaError", "message": "record breaks the schema: " + "; ".join(problems[:5]),
                            "traceback": ""}}
        for key in ("metrics", "metrics_by_protocol", "protocol"):
            record.pop(key, None)
        if validation_errors(record):
            raise BenchError(f"record {path.name} breaks the schema: {'; '.join(problems[:5])}")
    atomic_write_json(path, record)


@dataclass
class GridSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    waited: list[str] = field(default_factory=list)  # cells another process held; waited for, then skipped


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
    from bench.executors import CellJob, make_executor

    if not cells:
        raise BenchError("the grid is empty: no model, fraction or seed to run")
    prepare_run_folder(out)
    # Fail fast on a missing or mismatched split file, before any training.
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
    from bench.nn.text import TEXT_SIDES, text_side

    for name in sorted({getattr(c.config, "text_encoder", None) for c in cells} & set(TEXT_SIDES)):
        extra = {id(s): s for c in cells for s in c.pools.extras if s.modality == "captions"}
        captions = [c for split in dataset.splits() for c in split.captions]
        text_side(name).warm(captions + [c for source in extra.values() for c in source.captions], progress)


def _tqdm_write(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line)
