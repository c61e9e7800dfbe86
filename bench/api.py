"""The Python API: evaluate a model from a notebook or a script and get the report's table back.

:func:`evaluate` runs the same grid as ``bench run`` (the same cells, split files, records and
resume) through :func:`run_benchmark`, which ``bench run`` itself calls once it has read its
options, and returns a :class:`Results`: the records of the grid's cells, the per-run frame
``bench report`` builds from them and the markdown table it prints.

``model`` is a registered name (``"cca"``), a list of them, or a model of your own: a
:class:`bench.models.RetrievalModel` subclass, or an instance of one, whose config then trains
every cell. A model that is not in the registry is registered for the call only.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from bench.commands.common import parse_fraction_list, parse_seed_list, refuse_repeats
from bench.data import Dataset, load_dataset
from bench.errors import BenchError
from bench.metrics import get_protocol
from bench.models import RetrievalModel
from bench.nn.text import TEXT_SIDES
from bench.run.provenance import resolve_device
from bench.models.registry import MODELS, ModelSpec, get_model_spec, known_models
from bench.report import load_records, records_frame, render, summary_table
from bench.run import Cell, ConfigSource, GridSummary, build_cells, profile_configs, record_path, run_grid
from bench.splits import PoolSpec
from bench.tuning import TUNED_PROFILE, tuned_configs

__all__ = ["Results", "evaluate", "run_benchmark", "check_text_encoders", "check_workers"]


def check_workers(jobs: int | None, threads: int | None) -> None:
    """Refuse a number of worker processes or torch threads below one (None: the default)."""
    if threads is not None and threads < 1:
        raise BenchError(f"--threads {threads}: give a positive number of threads")
    if jobs is not None and jobs < 1:
        raise BenchError(f"--jobs {jobs}: give a positive number of worker processes")


def check_text_encoders(encoders: list[str], specs: list[ModelSpec]) -> list[str]:
    """``encoders``, checked: each is a text encoder one of the models reads (a model's own, such as
    cca's ``tfidf``, or a text side of ``bench.nn.text``), each named once."""
    known = list(TEXT_SIDES) + [e for s in specs for e in s.text_encoders if e not in TEXT_SIDES]
    for encoder in encoders:
        if encoder not in known:
            raise BenchError(f"unknown text encoder '{encoder}'; choose from {', '.join(dict.fromkeys(known))}")
    refuse_repeats(encoders, "text encoder", "--text-encoders")
    return encoders


def run_benchmark(dataset: Dataset, specs: list[ModelSpec], fractions: list[float], seeds: list[int], out: Path, *,
                  device, policy: str = "overlap", profile: str | None = None,
                  text_encoders: list[str] | None = None, overrides: dict[str, dict[str, str]] | None = None,
                  label: str | None = None, pool_variants: list[PoolSpec] | None = None,
                  tuned_dir: Path | None = None, with_controls: bool = False, configs: dict[str, Any] | None = None,
                  extra_protocols: list[str] | None = None, jobs: int | None = None, threads: int | None = None, executor: str = "local",
                  address: str | None = None, force: bool = False, quiet: bool = False,
                  splits_dir: Path | None = None) -> tuple[list[Cell], GridSummary]:
    """Build the grid's cells and run them: the one way ``bench run`` and :func:`evaluate` train.

    ``profile`` None is the dataset's default profile. ``configs`` maps a model name to the config
    that trains every cell of that model (a model given as an instance); its cells are named and
    hashed as usual. ``extra_protocols`` are evaluation protocols (``bench.protocols``) to score the
    test split with after the dataset's own; a cell already finished in ``out`` is not rescored.
    ``jobs`` None is one worker per CPU core (at most one per cell), 1 on a GPU. Returns the cells
    and what became of them.
    """
    check_workers(jobs, threads)
    if extra_protocols:
        for name in extra_protocols:
            get_protocol(name)  # an unknown name is an error before anything trains
        dataset = dataclasses.replace(dataset, protocols=tuple(dict.fromkeys([*dataset.protocols, *extra_protocols])))
    configs = configs or {}
    for spec in specs:
        if spec.name in configs and text_encoders and spec.has_text_choice:
            raise BenchError(f"model {spec.name} is given with a config, which fixes its text encoder; "
                             "leave the text encoders out, or give the model by name or class")
    profile = profile or dataset.default_profile
    source = tuned_configs(dataset.name, tuned_dir) if profile == TUNED_PROFILE else profile_configs(profile)
    cells = build_cells(dataset.name, specs, fractions, seeds, policy, profile, text_encoders, overrides or {}, label,
                        pool_variants, _given_configs(configs, source) if configs else source, with_controls)
    if jobs is None:
        jobs = 1 if device.type == "cuda" else max(1, min(os.cpu_count() or 1, len(cells)))
    if threads is not None and jobs == 1 and executor == "local":
        import torch

        torch.set_num_threads(threads)
    summary = run_grid(cells, {s.name: s for s in specs}, dataset, out, device, force=force, quiet=quiet,
                       splits_dir=splits_dir, jobs=jobs, threads=threads, executor=executor, address=address)
    return cells, summary


def _given_configs(given: dict[str, Any], otherwise: ConfigSource) -> ConfigSource:
    """The config source of a grid where some models come with their config (given as instances): that
    config for every cell of those models (build_cells derives the text encoder a cell names and the
    paired-only twin from it), ``otherwise``'s for the others."""

    def configs(spec: ModelSpec, encoder: str | None, fraction: float, settings: dict[str, str]) -> tuple[Any, None]:
        if spec.name in given:
            return given[spec.name], None
        return otherwise(spec, encoder, fraction, settings)

    return configs


@dataclass
class Results:
    """What :func:`evaluate` ran: the records of its cells (as their files hold them), the cells that
    failed with their one-line errors, and the run folder (None when it was a temporary one)."""

    records: list[dict]
    failed: list[tuple[str, str]] = field(default_factory=list)
    out: Path | None = None

    def to_frame(self) -> pd.DataFrame:
        """One row per run that finished ok: the frame ``bench report`` builds from these records."""
        return records_frame([r for r in self.records if r.get("status") == "ok"])

    def to_markdown(self) -> str:
        """The table ``bench report --format markdown`` prints for these records."""
        return render(summary_table(self.to_frame()), "markdown")


def _resolve_models(model: Any) -> tuple[list[ModelSpec], dict[str, Any], list[ModelSpec]]:
    """The specs of ``model`` (a name, a model class or instance, or a list of those), the configs
    the instances fix, and the specs that are not registered yet (to register for the call)."""
    items = list(model) if isinstance(model, (list, tuple)) else [model]
    if not items:
        raise BenchError("no model given; pass a model name such as 'cca', a model class or an instance")
    known_models()  # load the registry first, so a new class is checked against every registered name
    specs, configs, new = [], {}, []
    for item in items:
        if isinstance(item, str):
            specs.append(get_model_spec(item))
            continue
        model_class = item if isinstance(item, type) else type(item)
        if not issubclass(model_class, RetrievalModel):
            raise BenchError(f"model {item!r} is neither a model name nor a bench.models.RetrievalModel "
                             "subclass or instance")
        spec = _spec_of_class(model_class)
        if spec.name not in MODELS:
            new.append(spec)
        if not isinstance(item, type):
            if not isinstance(item.config, spec.config_class):
                raise BenchError(f"model {spec.name}: its config is a {type(item.config).__name__}, not the "
                                 f"{spec.config_class.__name__} its class declares")
            configs[spec.name] = item.config
        specs.append(spec)
    refuse_repeats([s.name for s in specs], "model", "the models")
    return specs, configs, new


def _spec_of_class(model_class: type) -> ModelSpec:
    """The registered spec of ``model_class``, else a new one; a new class may not take a registered name."""
    for spec in MODELS.values():
        if spec.factory is model_class:
            return spec
    spec = ModelSpec.of(model_class)
    taken = {name: s for s in MODELS.values() for name in (s.name, *s.aliases)}
    for name in (spec.name, *spec.aliases):
        if name in taken:
            other = taken[name].factory
            raise BenchError(f"model name '{name}' of {model_class.__module__}.{model_class.__qualname__} is "
                             f"already registered for {other.__module__}.{other.__qualname__}; give your model "
                             "another name")
    return spec


def _as_list_text(values: Iterable, what: str) -> str:
    """A list of numbers as the comma-separated text ``bench run`` parses (checked the same way)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise BenchError(f"{what}: give a list of numbers, e.g. [100, 25, 10]")
    return ",".join(str(v) for v in values)


def evaluate(model: Any, dataset: str | Dataset = "synthetic", fractions: Iterable[float] = (100, 25, 10),
             seeds: Iterable[int] = (0,), profile: str | None = None, out: str | os.PathLike | None = None,
             root: str | os.PathLike | None = None, text_encoders: list[str] | None = None,
             with_controls: bool = False, jobs: int | None = 1, threads: int | None = None, quiet: bool = True, *,
             policy: str = "overlap", device: str = "auto", splits_dir: str | os.PathLike | None = None,
             extra_protocols: list[str] | None = None, force: bool = False) -> Results:
    """Train and test ``model`` on every paired fraction and seed, as ``bench run`` does, and return
    the :class:`Results`.

    ``dataset`` is a registered name (loaded from ``root`` or ``BENCH_<NAME>_ROOT``) or a loaded
    :class:`~bench.data.Dataset`; ``profile`` None is the dataset's default (``quick`` on the
    synthetic data). ``out`` is the run folder; by default a temporary one, removed once the records
    are read. ``extra_protocols`` adds evaluation protocols (``bench.protocols``) to the dataset's
    own, for each record's ``metrics_by_protocol``. The other arguments are ``bench run``'s options of
    the same names; ``quiet`` prints one line per cell instead of progress bars.
    """
    specs, configs, new = _resolve_models(model)
    fraction_list = parse_fraction_list(_as_list_text(fractions, "fractions"))
    seed_list = parse_seed_list(_as_list_text(seeds, "seeds"))
    encoders = check_text_encoders(list(text_encoders), specs) if text_encoders else None
    check_workers(jobs, threads)
    torch_device = resolve_device(device)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, root)
    for spec in new:  # registered for this call only
        MODELS[spec.name] = spec
    try:
        with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as temporary:
            folder = Path(out) if out is not None else Path(temporary)
            cells, summary = run_benchmark(
                data, specs, fraction_list, seed_list, folder, device=torch_device, policy=policy, profile=profile,
                text_encoders=encoders, with_controls=with_controls, configs=configs,
                extra_protocols=list(extra_protocols) if extra_protocols else None, jobs=jobs, threads=threads,
                quiet=quiet, force=force, splits_dir=Path(splits_dir) if splits_dir is not None else None)
            paths = sorted({record_path(folder, cell) for cell in cells if record_path(folder, cell).is_file()})
            records = load_records(paths, include_failed=True) if paths else []
    finally:
        for spec in new:
            MODELS.pop(spec.name, None)
    for record in records:
        record.pop("_path", None)  # added by the reader; the file may be gone with the temporary folder
    return Results(records=records, failed=list(summary.failed), out=Path(out) if out is not None else None)
