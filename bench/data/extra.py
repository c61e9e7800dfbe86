"""Unpaired items from outside the dataset: captions or image features collected separately.

A source is given as ``KIND:PATH`` on the command line (``--extra-unpaired-captions
coco:PATH``). Caption kinds:

``coco``
    a COCO caption annotation file (``annotations`` with ``id`` and ``caption``); caption ids
    become ``coco:<annotation id>``.
``lines``
    a UTF-8 text file, one caption a line (blank lines skipped); ids ``lines:<line number>``.

Image kinds:

``npy``
    a ``.npy`` feature matrix, one row per image, of the dataset's feature size (the same
    extractor, or the rows mean nothing to the model); ids ``npy:<row>``.

An extra source only ever joins the unpaired pools of the training split. Because a source
could hold the dataset's own held-out items (COCO's test captions given as extra text for a
COCO run, say), :func:`check_not_held_out` refuses one that shares any caption text or feature
row with the dev or test split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.types import Dataset
from bench.errors import BenchError
from bench.io import sha256_file, sha256_lines

CAPTION_KINDS = ("coco", "lines")
IMAGE_KINDS = ("npy",)
MODALITIES = ("captions", "images")


@dataclass(frozen=True, eq=False)
class ExtraSource:
    """The items of one extra source, in file order."""

    kind: str  # coco, text or npy
    modality: str  # captions or images
    path: str  # as the user gave it
    file_sha256: str
    ids: list[str]
    captions: list[str] | None = None  # for caption sources
    features: np.ndarray | None = None  # (n, feature_dim) float32, for image sources

    @property
    def tag(self) -> str:
        """How rows and file names show the source: ``coco-text`` or ``npy-images``."""
        return f"{self.kind}-{'text' if self.modality == 'captions' else 'images'}"

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.path}"

    def __len__(self) -> int:
        return len(self.ids)


def parse_source(text: str, modality: str) -> tuple[str, str]:
    """``KIND:PATH`` -> (kind, path), with a clear error for an unknown kind."""
    kinds = CAPTION_KINDS if modality == "captions" else IMAGE_KINDS
    kind, sep, path = text.partition(":")
    if not sep or not path or kind not in kinds:
        raise BenchError(f"extra unpaired {modality} '{text}': give KIND:PATH with KIND one of {', '.join(kinds)} "
                         f"(e.g. {kinds[0]}:PATH)")
    return kind, path


def load_source(text: str, modality: str) -> ExtraSource:
    """Read an extra source given as ``KIND:PATH``; refuse a missing file or one with no items."""
    kind, path = parse_source(text, modality)
    file = Path(path)
    if not file.is_file():
        what = "a folder" if file.is_dir() else "not found"
        raise BenchError(f"extra unpaired {modality} file {path} is {what}; give the path of a {kind} file")
    checksum = sha256_file(file)
    if kind == "coco":
        from bench.data.coco import read_coco_captions

        by_image = read_coco_captions(file)
        pairs = sorted((ann_id, caption) for anns in by_image.values() for ann_id, caption in anns)
        ids, captions = [f"coco:{ann_id}" for ann_id, _ in pairs], [c for _, c in pairs]
        source = ExtraSource(kind, modality, path, checksum, ids, captions=captions)
    elif kind == "lines":
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise BenchError(f"extra unpaired captions file {path} is not UTF-8 text") from None
        kept = [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
        source = ExtraSource(kind, modality, path, checksum, [f"lines:{n}" for n, _ in kept],
                             captions=[c for _, c in kept])
    else:
        try:
            features = np.load(file, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise BenchError(f"extra unpaired images file {path} is not a .npy array ({error})") from None
        if features.ndim != 2 or not np.issubdtype(features.dtype, np.number):
            raise BenchError(f"extra unpaired images file {path} holds a {features.dtype} array of shape "
                             f"{features.shape}; expected a numeric (images, feature size) matrix")
        with np.errstate(over="ignore", invalid="ignore"):  # a value float32 can't hold is refused just below
            features = np.ascontiguousarray(features, dtype=np.float32)
        ids = [f"npy:{row}" for row in range(len(features))]
        # A NaN or inf row would only surface as a diverged training, far from its cause. Checked
        # as float32, what the models read: a finite float64 value too large for it becomes inf.
        if not np.isfinite(features).all():
            from bench.data.flickr8k import non_finite_message

            raise BenchError(non_finite_message(features, f"extra unpaired images file {path}", "extra", ids))
        source = ExtraSource(kind, modality, path, checksum, ids, features=features)
    if not len(source):
        raise BenchError(f"extra unpaired {modality} file {path} holds no {modality}; nothing to add")
    return source


def check_not_held_out(source: ExtraSource, dataset: Dataset) -> None:
    """Refuse a source that shares items with the dataset's dev or test split (or doesn't fit its features)."""
    if source.modality == "captions":
        held_out = {c.strip().lower() for split in (dataset.dev, dataset.test) for c in split.captions}
        shared = [c for c in source.captions if c.strip().lower() in held_out]
        if shared:
            raise BenchError(
                f"extra unpaired captions {source.path}: {len(shared)} of its captions are dev or test captions of "
                f"'{dataset.name}' (e.g. {shared[0][:60]!r}); held-out data must never train")
        return
    if source.features.shape[1] != dataset.feature_dim:
        raise BenchError(f"extra unpaired images {source.path} have {source.features.shape[1]}-d features; "
                         f"'{dataset.name}' has {dataset.feature_dim}-d ones (use the same extractor)")
    held_out = {_row_key(row) for split in (dataset.dev, dataset.test) for row in split.features}
    shared = sum(_row_key(row) in held_out for row in source.features)
    if shared:
        raise BenchError(f"extra unpaired images {source.path}: {shared} rows equal dev or test images of "
                         f"'{dataset.name}'; held-out data must never train")


def _row_key(row: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(row, dtype=np.float32).tobytes()).digest()


def ids_sha256(ids: list[str]) -> str:
    return sha256_lines(ids)
