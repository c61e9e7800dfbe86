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


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that change the unpaired pools of a split (see bench.splits.PoolSpec)."""
    parser.add_argument("--unpaired-fractions", "--unpaired-fraction", default="100", metavar="PERCENTS",
                        help="share of the unpaired pools to keep, nested like the paired sets, e.g. 0,25,50,100 "
                        "(default 100: all of them)")
    parser.add_argument("--extra-unpaired-captions", action="append", default=[], metavar="KIND:PATH",
                        help="add captions from another source to the unpaired caption pool: coco:FILE (COCO "
                        "caption annotations) or lines:FILE (one caption a line); never used for dev or test")
    parser.add_argument("--extra-unpaired-images", action="append", default=[], metavar="KIND:PATH",
                        help="add image features from another source to the unpaired image pool: npy:FILE "
                        "(one row per image, the dataset's feature size)")


def pools_from_args(args: argparse.Namespace) -> list:
    """One :class:`bench.splits.PoolSpec` per unpaired fraction, each with the extra sources given."""
    from bench.data.extra import load_source
    from bench.splits import PoolSpec, parse_unpaired_fractions

    fractions = parse_unpaired_fractions(args.unpaired_fractions)
    extras = tuple([load_source(text, "captions") for text in args.extra_unpaired_captions]
                   + [load_source(text, "images") for text in args.extra_unpaired_images])
    return [PoolSpec(fraction, extras) for fraction in fractions]
