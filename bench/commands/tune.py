"""``bench tune``: tune models on the dev split with one budget for all (see :mod:`bench.tuning`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.commands.common import add_dataset_arguments, load_from_args
from bench.errors import BenchError
from bench.nn.text import TEXT_SIDES
from bench.run.provenance import resolve_device
from bench.models.registry import parse_model_names
from bench.run import cell_text_encoder, encoders_for
from bench.splits import parse_fractions
from bench.tuning import DEFAULT_TUNED_DIR, StudySpec, check_storage, tune


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="tune models on the dev split, the same number of trials and update cap for each (Optuna)",
        description="One Optuna study per model, text encoder and paired fraction: TPE sampling, median pruning "
        "on the dev rsum of each epoch, storage in a database (a SQLite file in --out unless --storage), so a "
        "stopped run resumes. Each best configuration is written to --tuned-dir for `bench run --profile tuned`.",
    )
    add_dataset_arguments(parser)
    parser.add_argument("--models", default="vse,jwae,mine", help="models to tune (default vse,jwae,mine)")
    parser.add_argument("--fractions", default="25,10", help="paired percentages, one study each (default 25,10)")
    parser.add_argument("--trials", type=int, default=20, help="trials per study, the same for every model (default 20)")
    parser.add_argument("--update-cap", type=int, default=2000,
                        help="most optimizer updates a trial may train for, the same for every model (default 2000)")
    parser.add_argument("--profile", default="cpu", help="profile the searched settings start from (default cpu)")
    parser.add_argument("--text-encoders", default=None,
                        help=f"text encoders to tune for models that have one ({', '.join(TEXT_SIDES)}); "
                        "default: the profile's")
    parser.add_argument("--seed", type=int, default=0, help="split seed and sampler seed (default 0)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL (default: sqlite:///OUT/studies.db); e.g. postgresql://user:pw@host/db "
                        "for workers on several machines (then give them one shared --out for the locks)")
    parser.add_argument("--out", type=Path, default=Path("runs") / "tune", help="folder for the study database, "
                        "locks and trial checkpoints (default runs/tune)")
    parser.add_argument("--tuned-dir", type=Path, default=DEFAULT_TUNED_DIR,
                        help=f"where the tuned profiles go (default {DEFAULT_TUNED_DIR})")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes sharing the studies (default: one per CPU core; 1 on a GPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--splits-dir", type=Path, default=None, help="split files folder (default: the repo's splits/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=tune_command)


def tune_command(args: argparse.Namespace) -> int:
    specs = parse_model_names(args.models)
    fractions = parse_fractions(args.fractions)
    for name, value in (("--trials", args.trials), ("--update-cap", args.update_cap)):
        if value < 1:
            raise BenchError(f"{name} {value}: give a positive number")
    if args.jobs is not None and args.jobs < 1:
        raise BenchError(f"--jobs {args.jobs}: give a positive number of worker processes")
    text_encoders = [t.strip() for t in args.text_encoders.split(",")] if args.text_encoders else None
    known = list(TEXT_SIDES) + [e for s in specs for e in s.text_encoders if e not in TEXT_SIDES]
    for encoder in text_encoders or []:
        if encoder not in known:
            raise BenchError(f"unknown text encoder '{encoder}'; choose from {', '.join(dict.fromkeys(known))}")
    if args.storage is not None:  # a URL that can't work is one line now, not after the data is read
        check_storage(args.storage)
    device = resolve_device(args.device)
    dataset = load_from_args(args)
    studies = []
    for spec in specs:
        if not getattr(spec.config_class, "SEARCH_SPACE", None):
            raise BenchError(f"model '{spec.name}' declares no search space, so it can't be tuned")
        for encoder in encoders_for(spec, text_encoders):
            # named as `bench run` names its cells: no encoder for a model's unnamed one (cca's bag of
            # words), whose studies and tuned files keep the names they had before it had a choice
            named = cell_text_encoder(spec, encoder or spec.default_text_encoder(args.profile))
            for fraction in fractions:
                studies.append(StudySpec(dataset.name, spec.name, named, fraction, args.profile, args.trials,
                                         args.update_cap, args.seed, spec.revision))
    jobs = args.jobs or (1 if device.type == "cuda" else max(1, min(os.cpu_count() or 1, args.trials)))
    if args.threads is not None and jobs == 1:
        import torch

        torch.set_num_threads(args.threads)
    written = tune(studies, {s.name: s for s in specs}, dataset, args.out, args.storage, args.tuned_dir, jobs,
                   args.threads, str(device), args.quiet, args.splits_dir)
    for path in written:
        print(f"wrote {path}")
    return 0
