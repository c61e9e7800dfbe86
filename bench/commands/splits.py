"""``bench splits make`` and ``bench splits verify``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import (
    add_dataset_arguments,
    add_pool_arguments,
    load_from_args,
    parse_fraction_list,
    parse_seed_list,
    pools_from_args,
)
from bench.errors import BenchError
from bench.splits import (
    POLICIES,
    PairingSplit,
    default_splits_dir,
    make_split,
    naming_file,
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
    fractions, seeds = parse_fraction_list(args.fractions), parse_seed_list(args.seeds)
    splits_dir = args.dir or default_splits_dir()
    # Checked before any split is computed: a file in the folder's place would fail at the first write.
    for folder in (splits_dir, splits_dir / dataset.name):
        if folder.exists() and not folder.is_dir():
            raise BenchError(f"splits folder {folder} is a file, not a folder; pass another --dir")
    pool_variants = pools_from_args(args)
    for seed in seeds:
        for fraction in fractions:
            for pools in pool_variants:
                split = make_split(dataset, fraction, seed, args.policy, pools)
                try:
                    path = write_split(split, splits_dir)
                except OSError as error:  # a read-only folder, a full disk, a file on the way
                    raise BenchError(f"can't write the split file {split.filename} under {splits_dir} "
                                     f"({error.strerror or error}); pass another --dir") from None
                extras = "".join(f", {e['kept']} extra {e['modality']} ({e['tag']})" for e in split.extra_unpaired)
                print(
                    f"wrote {path}: {len(split.paired_image_ids)} paired images, "
                    f"{len(split.unpaired_image_ids)} unpaired images, "
                    f"captions of {len(split.unpaired_caption_image_ids)} images unpaired{extras}"
                )
    return 0


def verify_command(args: argparse.Namespace) -> int:
    """Check every split file (not only up to the first bad one): one line per file, ``ok`` or
    ``FAIL`` with the path and the reason (one line per reason), and exit 2 when any is bad."""
    splits_dir = args.dir or default_splits_dir()
    files = sorted(Path(splits_dir).glob("*/*.json"))
    if args.dataset:
        files = [f for f in files if f.parent.name == args.dataset]
    if not files:
        raise BenchError(f"no split files under {splits_dir}" + (f" for dataset '{args.dataset}'" if args.dataset else ""))
    problems: list[str] = []
    bad_files = 0
    datasets: dict[str, object] = {}  # name -> the loaded Dataset, or the BenchError that loading it gave
    for path in files:
        try:
            name = PairingSplit.from_file(path).dataset
            if name not in datasets:
                try:
                    datasets[name] = load_from_args(args, name)
                except BenchError as error:
                    datasets[name] = error  # tried once; each file of that dataset says why it is not checked
            if isinstance(datasets[name], BenchError):
                raise BenchError(f"{path}: not checked: {datasets[name]}")
            found = verify_file(path, datasets[name])
        except BenchError as error:  # verify_file says what it finds; these are the file or dataset unreadable
            found = [naming_file(path, str(error))]
        problems.extend(found)
        bad_files += bool(found)
        print("\n".join(f"FAIL {problem}" for problem in found) if found else f"ok   {path}")
    if len(problems) == 1:
        raise BenchError(problems[0])
    if problems:
        raise BenchError(f"{len(problems)} split file problem(s) in {bad_files} of {len(files)} files (listed above); "
                         "the splits do not match the data")
    print(f"all {len(files)} split files match their recomputed splits")
    return 0
