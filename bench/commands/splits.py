"""``bench splits make`` and ``bench splits verify``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import add_dataset_arguments, add_pool_arguments, load_from_args, pools_from_args
from bench.errors import BenchError
from bench.splits import (
    POLICIES,
    PairingSplit,
    default_splits_dir,
    make_split,
    parse_fractions,
    parse_seeds,
    verify_file,
    write_split,
)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    splits = subparsers.add_parser("splits", help="make and verify the partial-pairing split files")
    sub = splits.add_subparsers(dest="splits_command", metavar="ACTION", required=True)

    make = sub.add_parser("make", help="write one split file per (fraction, seed)")
    add_dataset_arguments(make)
    make.add_argument("--fractions", default="100,50,25,10", help="paired percentages (default 100,50,25,10)")
    make.add_argument("--seeds", "--seed", default="0", help="comma-separated seeds (default 0)")
    make.add_argument("--policy", default="overlap", choices=POLICIES, help="unpaired-pool policy (default overlap)")
    add_pool_arguments(make)
    make.add_argument("--dir", type=Path, default=None, help="splits folder (default: the repo's splits/)")
    make.set_defaults(func=make_command)

    verify = sub.add_parser("verify", help="recompute every split file and fail on any difference")
    add_dataset_arguments(verify, default=None)
    verify.add_argument("--dir", type=Path, default=None, help="splits folder (default: the repo's splits/)")
    verify.set_defaults(func=verify_command)


def make_command(args: argparse.Namespace) -> int:
    dataset = load_from_args(args)
    fractions, seeds = parse_fractions(args.fractions), parse_seeds(args.seeds)
    splits_dir = args.dir or default_splits_dir()
    pool_variants = pools_from_args(args)
    for seed in seeds:
        for fraction in fractions:
            for pools in pool_variants:
                split = make_split(dataset, fraction, seed, args.policy, pools)
                path = write_split(split, splits_dir)
                extras = "".join(f", {e['kept']} extra {e['modality']} ({e['tag']})" for e in split.extra_unpaired)
                print(
                    f"wrote {path}: {len(split.paired_image_ids)} paired images, "
                    f"{len(split.unpaired_image_ids)} unpaired images, "
                    f"captions of {len(split.unpaired_caption_image_ids)} images unpaired{extras}"
                )
    return 0


def verify_command(args: argparse.Namespace) -> int:
    splits_dir = args.dir or default_splits_dir()
    files = sorted(Path(splits_dir).glob("*/*.json"))
    if args.dataset:
        files = [f for f in files if f.parent.name == args.dataset]
    if not files:
        raise BenchError(f"no split files under {splits_dir}" + (f" for dataset '{args.dataset}'" if args.dataset else ""))
    problems: list[str] = []
    datasets = {}
    for path in files:
        name = PairingSplit.from_file(path).dataset
        if name not in datasets:
            datasets[name] = load_from_args(args, name)
        found = verify_file(path, datasets[name])
        problems.extend(found)
        print(f"{'FAIL' if found else 'ok  '} {path}")
    if problems:
        print("\n".join(problems))
        raise BenchError(f"{len(problems)} split file problem(s); the committed splits do not match the data")
    print(f"all {len(files)} split files match their recomputed splits")
    return 0
