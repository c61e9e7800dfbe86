"""``bench features extract`` and ``bench features backbones``: the command line of :mod:`bench.features`."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.features.backbones import BACKBONES
from bench.features.extraction import extract_features


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    features = subparsers.add_parser("features", help="extract image features with a pretrained backbone")
    sub = features.add_subparsers(dest="features_command", metavar="ACTION", required=True)

    extract = sub.add_parser(
        "extract",
        help="encode a folder of images into FILE.npy (+ images.txt and FILE.npy.manifest.json)",
        description="Encode every .jpg/.jpeg/.png in a folder (sorted by name) into FILE.npy, one row per image; "
        "images.txt beside it lists the rows, FILE.npy.manifest.json records how they were made. "
        "A rerun with a matching manifest is skipped.",
    )
    extract.add_argument("--images", type=Path, required=True, metavar="DIR", help="folder of images")
    extract.add_argument("--out", type=Path, required=True, metavar="FILE.npy", help="feature file to write")
    extract.add_argument(
        "--backbone", default="efficientnet_lite0", choices=list(BACKBONES), help="image encoder (default efficientnet_lite0)"
    )
    extract.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per forward pass (default 32)")
    extract.add_argument(
        "--device", default="auto", help="auto (default: cuda if available), cpu, cuda or cuda:N"
    )
    extract.add_argument("--float32", action="store_true", help="store float32 instead of float16")
    extract.add_argument("--force", action="store_true", help="recompute even if the manifest matches")
    extract.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    extract.set_defaults(func=extract_command)

    backbones = sub.add_parser("backbones", help="list the available backbones")
    backbones.set_defaults(func=backbones_command)


def extract_command(args: argparse.Namespace) -> int:
    extract_features(
        args.images,
        args.out,
        backbone=args.backbone,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
        dtype="float32" if args.float32 else "float16",
        force=args.force,
    )
    return 0


def backbones_command(args: argparse.Namespace) -> int:
    for spec in BACKBONES.values():
        prep = spec.preprocessing
        if prep.center_crop is None:
            steps = f"resize {prep.resize[0]}x{prep.resize[1]} {prep.interpolation}"  # type: ignore[index]
        else:
            steps = f"resize shorter side {prep.resize} {prep.interpolation}, centre crop {prep.center_crop}"
        print(f"{spec.name}\t{spec.feature_dim}-d\t{spec.weights}\t{steps}, /255, ImageNet mean/std")
    return 0
