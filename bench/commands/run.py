"""``bench models`` and ``bench run``."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

from bench.api import check_text_encoders, check_workers, run_benchmark
from bench.commands.common import (
    add_dataset_arguments,
    add_pool_arguments,
    load_from_args,
    parse_fraction_list,
    parse_run_folder,
    parse_seed_list,
    pools_from_args,
    refuse_repeats,
)
from bench.errors import BenchError
from bench.run.cell import TWIN_LABEL, is_twin_label
from bench.nn.text import TEXT_SIDES
from bench.run.provenance import resolve_device
from bench.models.registry import known_models, parse_model_names
from bench.run import DEFAULT_RUN, EXECUTORS
from bench.splits import POLICIES

# A label is part of every file name of its cells (records, their temporary files, locks, work
# folders); the rest of a name stays well under 150 characters, so 100 keeps every one of them
# inside the usual 255-byte limit on a file name.
MAX_LABEL = 100


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list the registered models")
    models.add_argument("--search-space", action="store_true", help="print what `bench tune` searches for each model")
    models.set_defaults(func=list_models)

    run = subparsers.add_parser(
        "run",
        help="train and evaluate a grid of models × paired fractions × seeds",
        description="Train every (model, fraction, seed) cell and write one JSON record per cell. "
        "Rerunning the same command skips finished cells and resumes interrupted ones.",
    )
    add_dataset_arguments(run)
    run.add_argument("--models", default="vse,jwae,mine",
                     help="comma-separated model names (default vse,jwae,mine); see `bench models`")
    run.add_argument("--fractions", default="100,50,25,10", help="paired percentages (default 100,50,25,10)")
    run.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    run.add_argument("--policy", default="overlap", choices=POLICIES, help="split policy (default overlap)")
    add_pool_arguments(run)
    run.add_argument("--profile", default=None,
                     help="config profile: paper, cpu, quick, or tuned (the `bench tune` result in --tuned-dir "
                     "for each model, text encoder and fraction) (default: the dataset's: quick on the embedded "
                     "synthetic data, cpu on the others)")
    run.add_argument("--tuned-dir", type=Path, default=None,
                     help="with --profile tuned: where the tuned profiles are (default reports/tuning)")
    run.add_argument("--text-encoders", default=None,
                     help=f"comma-separated text encoders to run for models that have one ({', '.join(TEXT_SIDES)}); "
                     "default: the profile's")
    run.add_argument("--with-controls", action="store_true",
                     help="also train each pool-reading model's paired-only twin (its pool-reading terms off, the "
                     "same updates), labelled paired-only; `bench report --unpaired-gain` then shows model minus twin")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="[MODEL.]KEY=VALUE",
                     help="override a config setting, e.g. --set vse.epochs=5 or --set epochs=5 (every model that has it)")
    run.add_argument("--label", default=None,
                     help="name this variant (e.g. an ablation: --label no-cyclic --set mine.w_cyclic=0); "
                     "it becomes part of the cell names and a row of its own in the report")
    run.add_argument("--out", default=str(DEFAULT_RUN), help=f"run folder (default {DEFAULT_RUN})")
    run.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda or cuda:N")
    run.add_argument("--threads", type=int, default=None,
                     help="CPU threads for torch per cell (default: torch's own choice, or the cores split evenly "
                     "between --jobs workers); 1 is fastest when other jobs share the cores")
    run.add_argument("--jobs", type=int, default=None,
                     help="cells trained at once, each in its own worker process (default: one per CPU core, at most "
                     "one per cell; 1 on a GPU; 1 runs in this process with a progress bar per cell)")
    run.add_argument("--executor", default="local", choices=EXECUTORS,
                     help="local (this machine, --jobs workers) or ray (each cell a Ray task; pip install -e '.[ray]')")
    run.add_argument("--address", default=None,
                     help="with --executor ray: the cluster to join (auto, or ray://HOST:PORT); default: start a local one")
    run.add_argument("--splits-dir", type=Path, default=None, help="split files folder (default: the repo's splits/)")
    run.add_argument("--force", action="store_true",
                     help="recompute finished cells; a finished record of another config (or data, or split file) "
                     "under the same name is moved to <out>/superseded/, not deleted")
    run.add_argument("--quiet", action="store_true", help="no progress bars; one line per cell (for CI logs)")
    run.set_defaults(func=run_command)

    status = subparsers.add_parser(
        "status",
        help="which cells of a run folder finished, failed or are under way (epochs, dev rsum so far, time left)",
        description="Read a run folder's records and checkpoints, without disturbing a grid that is running.")
    status.add_argument("run", nargs="?", type=Path, default=DEFAULT_RUN, help=f"run folder (default {DEFAULT_RUN})")
    status.add_argument("--all", action="store_true", help="list finished cells too, not only the count")
    status.set_defaults(func=status_command)


def list_models(args: argparse.Namespace) -> int:
    if getattr(args, "search_space", False):
        from bench.tuning import search_space_lines

        for spec in known_models():
            print("\n".join(search_space_lines(spec)))
        print("updates: optimizer updates per trial, a share of `bench tune --update-cap` (the same cap for every "
              "model), turned into epochs by the model's schedule")
        return 0
    for spec in known_models():
        aliases = f" (also: {', '.join(spec.aliases)})" if spec.aliases else ""
        unpaired = "uses unpaired data" if spec.uses_unpaired else "pairs only"
        print(f"{spec.name:6s} {spec.summary}; {unpaired}{aliases}")
        profiles = ", ".join(spec.config_class.PROFILES)
        print(f"{'':6s} profiles: {profiles}; settings: {', '.join(f.name for f in dataclasses.fields(spec.config_class))}")
        for text, settings in spec.config_class.TEXT_ENCODER_SETTINGS.items():
            chosen = ", ".join(f"{k}={v}" for k, v in settings.items())
            print(f"{'':6s} with {text} text, in every profile unless --set says otherwise: {chosen}")
        for profile, by_text in spec.config_class.PROFILE_TEXT_ENCODER_SETTINGS.items():
            for text, settings in by_text.items():
                chosen = ", ".join(f"{k}={v}" for k, v in settings.items())
                print(f"{'':6s} with {text} text, in the {profile} profile unless --set says otherwise: {chosen}")
    return 0


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {}
    for item in items:
        if "=" not in item:
            raise BenchError(f"--set {item}: expected KEY=VALUE or MODEL.KEY=VALUE")
        key, value = item.split("=", 1)
        model, _, name = key.rpartition(".")
        overrides.setdefault(model or "*", {})[name] = value
    return overrides


def parse_text_encoders(text: str | None, specs: list) -> list[str] | None:
    """``--text-encoders``: names any of the models reads, each once (:func:`bench.api.check_text_encoders`);
    None when not given (each model's profile chooses)."""
    if not text:
        return None
    return check_text_encoders([t.strip() for t in text.split(",") if t.strip()], specs)


def run_command(args: argparse.Namespace) -> int:
    out = parse_run_folder(args.out)
    specs = parse_model_names(args.models)
    refuse_repeats([s.name for s in specs], "model", "--models")  # an alias counts as its model
    fractions, seeds = parse_fraction_list(args.fractions), parse_seed_list(args.seeds)
    text_encoders = parse_text_encoders(args.text_encoders, specs)
    overrides = parse_overrides(args.overrides)
    for name in overrides:
        if name != "*" and name not in {s.name for s in specs}:
            raise BenchError(f"--set names model '{name}', which is not in --models {args.models}")
    for key in overrides.get("*", {}):
        if not any(key in {f.name for f in dataclasses.fields(s.config_class)} for s in specs):
            raise BenchError(f"--set {key}: no model in --models has that setting (see `bench models`)")
    device = resolve_device(args.device)
    check_workers(args.jobs, args.threads)
    dataset = load_from_args(args)
    pool_variants = pools_from_args(args)
    if args.label is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+-]*", args.label):
        raise BenchError(f"--label '{args.label}': use letters, digits, '.', '+' and '-' only")
    if args.label is not None and len(args.label) > MAX_LABEL:
        raise BenchError(f"--label of {len(args.label)} characters: give at most {MAX_LABEL} (it is part of "
                         "every file name of its cells)")
    if args.label is not None and is_twin_label(args.label):
        raise BenchError(f"--label '{args.label}': labels ending in '{TWIN_LABEL}' name the paired-only twins "
                         "that --with-controls runs; choose another label")
    _, summary = run_benchmark(dataset, specs, fractions, seeds, out, device=device, policy=args.policy,
                               profile=args.profile, text_encoders=text_encoders, overrides=overrides,
                               label=args.label, pool_variants=pool_variants, tuned_dir=args.tuned_dir,
                               with_controls=args.with_controls, jobs=args.jobs, threads=args.threads,
                               executor=args.executor, address=args.address, force=args.force, quiet=args.quiet,
                               splits_dir=args.splits_dir)
    print(f"{len(summary.done)} cells trained, {len(summary.skipped)} already done, {len(summary.failed)} failed; "
          f"records in {out / 'records'}")
    if summary.waited:
        print(f"  {len(summary.waited)} of the done cells were trained by another bench run on this folder: "
              f"{', '.join(summary.waited)}")
    if summary.failed:
        for name, message in summary.failed:
            print(f"  failed: {name}: {message}")
        return 1
    return 0


def _minutes_or_hours(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _age(seconds: float | None) -> str:
    return "" if seconds is None else f"{_minutes_or_hours(seconds)} ago"


def _epochs(done: int | None, planned: int | None) -> str:
    if done is None:
        return ""
    return f"{done} of {planned}" if planned is not None else f"{done}"


def _time_left(seconds: float | None) -> str:
    """The time left, at the pace of the latest epochs: blank when unknown (older checkpoints)."""
    return "" if seconds is None else f"about {_minutes_or_hours(seconds)}"


def status_command(args: argparse.Namespace) -> int:
    from collections import Counter

    from tabulate import tabulate

    from bench.run.status import run_status

    if not (args.run / "records").is_dir() and not (args.run / "work").is_dir():
        raise BenchError(f"{args.run} is not a run folder (it has neither records/ nor work/); "
                         "give the --out folder of a `bench run`")
    rows = run_status(args.run)
    shown = [r for r in rows if args.all or r.state != "finished"]
    number = lambda value: "" if value is None else f"{value:.1f}"  # noqa: E731
    table = [{"cell": r.name, "state": r.state, "epochs done": _epochs(r.epochs_done, r.epochs_planned),
              "best dev rsum": number(r.best_dev_rsum) + (f" (epoch {r.best_epoch})" if r.best_epoch is not None else ""),
              "last dev rsum": number(r.last_dev_rsum), "checkpoint written": _age(r.checkpoint_age_s),
              "time left": _time_left(r.time_left_s), "test rsum": number(r.test_rsum)} for r in shown]
    if table:
        print(tabulate(table, headers="keys", tablefmt="github", disable_numparse=True))
    counts = Counter(r.state for r in rows)
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no cells yet", f"in {args.run}")
    return 0
