"""``bench data list`` and ``bench data info NAME``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import add_dataset_arguments, load_from_args
from bench.data import get_dataset_info, known_datasets


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="list datasets and describe one")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the registered datasets")
    listing.set_defaults(func=list_datasets)
    info = sub.add_parser("info", help="counts, sizes and checksums of a dataset")
    info.add_argument("name", help="dataset name")
    add_dataset_arguments(info, default=None)
    info.set_defaults(func=dataset_info)
    export = sub.add_parser(
        "export-precomp",
        help="write a dataset in the VSE++/SCAN precomp format, the training split cut to a split file's pairs",
        description="Writes {train,dev,test}_ims.npy, _caps.txt and _ids.txt so a reference implementation "
        "(e.g. VSE++ with --data_name precomp) trains on exactly the paired images of one split file.",
    )
    add_dataset_arguments(export)
    export.add_argument("--fraction", default="100", help="paired percentage of the split file to use (default 100)")
    export.add_argument("--seed", type=int, default=0, help="seed of the split file (default 0)")
    export.add_argument("--policy", default="overlap", help="policy of the split file (default overlap)")
    export.add_argument("--out", type=Path, required=True, help="folder to write")
    export.set_defaults(func=export_command)


def list_datasets(args: argparse.Namespace) -> int:
    for name in known_datasets():
        print(f"{name:12s} {get_dataset_info(name).summary}")
    return 0


def describe(dataset) -> list[str]:
    lines = [f"dataset: {dataset.name}" + (f" — {dataset.description}" if dataset.description else "")]
    lines.append(f"feature dim: {dataset.feature_dim}")
    for split in dataset.splits():
        per_image = split.captions_per_image()
        spread = f"{per_image.min()}" if per_image.min() == per_image.max() else f"{per_image.min()}–{per_image.max()}"
        layout = "VSE layout (5 in order)" if split.is_vse_layout() else "general layout"
        lines.append(
            f"{split.name:5s}: {split.n_images:6d} images, {split.n_captions:6d} captions, "
            f"{spread} captions per image, {layout}"
        )
    lines.append(f"ids sha256: {dataset.ids_sha256}")
    lines.append(f"content sha256: {dataset.content_sha256}")
    for key, value in sorted(dataset.source.items()):
        lines.append(f"source {key}: {value}")
    lines.extend(f"note: {message}" for message in dataset.messages)
    return lines


def dataset_info(args: argparse.Namespace) -> int:
    dataset = load_from_args(args, args.name)
    print("\n".join(describe(dataset)))
    return 0


def export_command(args: argparse.Namespace) -> int:
    from bench.data.precomp import export_precomp
    from bench.splits import load_split, parse_fraction

    dataset = load_from_args(args)
    split, split_file = load_split(dataset, parse_fraction(args.fraction), args.seed, args.policy)
    written = export_precomp(dataset, args.out, image_ids={"train": split.paired_image_ids})
    print(f"wrote {len(written)} files to {args.out} (train = the {len(split.paired_image_ids)} paired images of {split_file})")
    return 0
