"""Arguments several subcommands share: which dataset, where its files are."""

from __future__ import annotations

import argparse

from bench.data import Dataset, load_dataset
from bench.errors import BenchError


def add_dataset_arguments(parser: argparse.ArgumentParser, default: str | None = "synthetic") -> None:
    parser.add_argument("--dataset", default=default, help=f"dataset name (default: {default}); see `bench data list`")
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="dataset folder; NAME=PATH when several datasets are involved (else BENCH_<NAME>_ROOT)",
    )


def root_for(name: str, roots: list[str]) -> str | None:
    """The folder given for dataset ``name`` by ``--root`` (plain PATH applies to any one dataset)."""
    plain = [r for r in roots if "=" not in r]
    named = dict(r.split("=", 1) for r in roots if "=" in r)
    if len(plain) > 1:
        raise BenchError("give --root once, or as NAME=PATH for each dataset")
    return named.get(name, plain[0] if plain else None)


def load_from_args(args: argparse.Namespace, name: str | None = None) -> Dataset:
    name = name or args.dataset
    return load_dataset(name, root_for(name, args.root))
