"""Arguments several subcommands share: which dataset, where its files are, which fractions and seeds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable

from bench.data import Dataset, load_dataset
from bench.errors import BenchError

# numpy's legacy seeding (``np.random.seed``) takes 32-bit seeds; a larger one fails deep inside a run.
MAX_SEED = 2**32 - 1


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
    from bench.splits import PoolSpec, format_fraction, parse_unpaired_fractions

    fractions = parse_unpaired_fractions(args.unpaired_fractions)
    refuse_repeats(fractions, "unpaired fraction", "--unpaired-fractions", format_fraction)
    extras = tuple([load_source(text, "captions") for text in args.extra_unpaired_captions]
                   + [load_source(text, "images") for text in args.extra_unpaired_images])
    return [PoolSpec(fraction, extras) for fraction in fractions]


def refuse_repeats(values: Iterable, what: str, option: str, show=str) -> None:
    """Refuse a list that names one value twice (``--fractions 50,50``, or ``100.0,100``): a repeat
    would make the same grid cell twice, and the second copy would only find the first one's record."""
    seen = set()
    for value in values:
        if value in seen:
            raise BenchError(f"{what} {show(value)} is given twice in {option}; give each once")
        seen.add(value)


def parse_fraction_list(text: str) -> list[float]:
    """``--fractions``: paired percentages in (0, 100], each once."""
    from bench.splits import format_fraction, parse_fractions

    fractions = parse_fractions(text)
    refuse_repeats(fractions, "fraction", "--fractions", format_fraction)
    return fractions


def parse_seed_list(text: str) -> list[int]:
    """``--seeds``: integers in [0, 2**32 - 1] (what every seeded library accepts), each once."""
    from bench.splits import parse_seeds

    seeds = parse_seeds(text)
    for seed in seeds:
        if not 0 <= seed <= MAX_SEED:
            raise BenchError(f"seed {seed} is outside [0, {MAX_SEED}]; give seeds such as 0,1,2")
    refuse_repeats(seeds, "seed", "--seeds")
    return seeds


def parse_run_folder(text: str) -> Path:
    """``--out``: a run folder. An empty one (an unset shell variable, say) would be the current
    folder, and records/ and work/ would land in it, so it is refused."""
    if not text.strip():
        raise BenchError("--out is empty; give the run folder, e.g. --out runs/NAME")
    return Path(text)
