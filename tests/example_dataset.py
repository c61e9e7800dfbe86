"""``tsv``: image features in ``{split}.npy`` (one row per image) and captions in ``{split}.tsv``
(one caption a line: the row of its image, a tab, the caption), for train, dev and test."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data import SPLIT_NAMES, Dataset, Split, register_dataset
from bench.errors import BenchError


def load_split(root: Path, name: str) -> Split:
    for path in (root / f"{name}.npy", root / f"{name}.tsv"):
        if not path.is_file():
            raise BenchError(f"dataset 'tsv': {path} is missing")
    features = np.load(root / f"{name}.npy").astype(np.float32)
    lines = [line.split("\t", 1) for line in (root / f"{name}.tsv").read_text(encoding="utf-8").splitlines()]
    if any(len(line) != 2 or not line[0].isdigit() for line in lines):
        raise BenchError(f"dataset 'tsv': each line of {name}.tsv is an image row, a tab and a caption")
    image_ids = [f"{name}-{row}" for row in range(len(features))]  # unique across the splits
    # Split checks the rest: one feature row per image, every image with a caption, rows in range.
    return Split(name=name, image_ids=image_ids, features=features,
                 caption_ids=[f"{name}-c{number}" for number in range(len(lines))],
                 captions=[caption for _, caption in lines],
                 caption_to_image=np.array([int(row) for row, _ in lines], dtype=np.int64))


@register_dataset("tsv", "image features in {split}.npy, captions in {split}.tsv (image row, tab, caption)")
def load_tsv(root: Path) -> Dataset:
    splits = {name: load_split(root, name) for name in SPLIT_NAMES}
    return Dataset(name="tsv", **splits, description=f"features and captions from {root}", source={"root": str(root)})
