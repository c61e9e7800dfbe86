"""``precomp``: the VSE++ / SCAN "precomputed" format, and an exporter into it.

A precomp folder holds, for each split::

    {split}_ims.npy    (n_images, d) features, row i = image i
    {split}_caps.txt   one caption a line; captions k*i .. k*i+k-1 belong to image i
    {split}_ids.txt    optional: one image id a line (written by :func:`export_precomp`)

Split files: ``train``; ``dev`` (else ``val``); ``test`` (else ``testall``, SCAN's
5-fold COCO 5K test set, used only when there is no ``test``).

Variants seen in the wild, handled here and reported in ``Dataset.messages``:

* one feature row per *caption* (each image repeated k times; VSE++'s loader calls
  this ``im_div``): detected by rows == captions and reduced to every k-th row;
* region features of shape (n, regions, d) (SCAN's bottom-up features): averaged over
  the regions into one vector per image, since every model here takes a global vector.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from bench.data import register_dataset
from bench.data.flickr8k import non_finite_message, read_text_lines
from bench.data.types import SPLIT_NAMES, Dataset, Split
from bench.errors import BenchError
from bench.io import atomic_write_bytes, sha256_file

# File stems tried for each split, in order.
SPLIT_STEMS = {"train": ("train",), "dev": ("dev", "val"), "test": ("test", "testall")}

# Everything str.splitlines() breaks on: a caption file must hold one caption a line
# for any reader (binary-mode readers split on "\n", text-mode ones on "\r" too).
_LINE_BREAKS = re.compile(r"[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")

_REPEAT_CHECK_IMAGES = 1000  # images checked for identical repeated rows (a sample on big sets)
_POOL_CHUNK = 1024  # images averaged at a time, so region features need not fit in memory


def _split_stem(root: Path, split_name: str, messages: list[str]) -> str:
    for stem in SPLIT_STEMS[split_name]:
        if (root / f"{stem}_ims.npy").is_file() or (root / f"{stem}_caps.txt").is_file():
            if stem != split_name:
                messages.append(f"{split_name} split read from {stem}_ims.npy / {stem}_caps.txt")
            return stem
    names = " or ".join(f"{stem}_ims.npy" for stem in SPLIT_STEMS[split_name])
    raise BenchError(f"precomp {split_name} split not found in {root}: expected {names} with the matching _caps.txt")


def _load_features(path: Path, messages: list[str]) -> np.ndarray:
    try:
        features = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise BenchError(f"cannot read feature file {path}: {exc}") from None
    if not np.issubdtype(features.dtype, np.number):
        raise BenchError(f"{path} holds {features.dtype} values; expected numeric features")
    if features.ndim == 3:
        messages.append(
            f"{path.name}: averaged the {features.shape[1]} region vectors of each image into one "
            f"(region features of shape {tuple(features.shape)})"
        )
        return features  # pooled after de-duplication, which may skip most rows
    if features.ndim != 2:
        raise BenchError(f"{path} has shape {features.shape}; expected (n_images, feature_dim)")
    return features


def _to_float32(features: np.ndarray) -> np.ndarray:
    if features.ndim == 2:
        return np.asarray(features, dtype=np.float32)
    pooled = np.empty((features.shape[0], features.shape[2]), dtype=np.float32)
    for start in range(0, features.shape[0], _POOL_CHUNK):
        chunk = np.asarray(features[start : start + _POOL_CHUNK], dtype=np.float32)
        pooled[start : start + _POOL_CHUNK] = chunk.mean(axis=1)
    return pooled


def _load_split(root: Path, split_name: str, k: int, messages: list[str], source: dict) -> Split:
    stem = _split_stem(root, split_name, messages)
    ims_path, caps_path, ids_path = (root / f"{stem}_{part}" for part in ("ims.npy", "caps.txt", "ids.txt"))
    for path in (ims_path, caps_path):
        if not path.is_file():
            raise BenchError(f"precomp file not found: {path}")
    features = _load_features(ims_path, messages)
    captions = [line.strip() for line in read_text_lines(caps_path)]
    n_rows, n_captions = features.shape[0], len(captions)

    if n_rows * k == n_captions:
        n_images = n_rows
    elif k > 1 and n_rows == n_captions:
        # One row per caption: keep every k-th row, after checking the rows really repeat.
        n_images = n_rows // k
        if n_rows % k:
            raise BenchError(f"{caps_path} has {n_captions} captions, not a multiple of {k} captions per image")
        sample = np.unique(np.linspace(0, n_images - 1, min(n_images, _REPEAT_CHECK_IMAGES)).astype(np.int64))
        for image in sample:
            group = np.asarray(features[image * k : (image + 1) * k])
            if not (group == group[0]).all():
                raise BenchError(
                    f"{ims_path} has one row per caption ({n_rows}) but rows {image * k}..{image * k + k - 1} "
                    f"differ; expected each image's row repeated {k} times"
                )
        features = features[::k]
        messages.append(f"{ims_path.name}: each image's row was repeated {k} times (one per caption); kept every {k}th row")
    else:
        raise BenchError(
            f"{ims_path} has {n_rows} rows but {caps_path.name} has {n_captions} captions; expected "
            f"{k} captions per image ({n_rows * k} lines) or one row per caption (set captions_per_image)"
        )

    if ids_path.is_file():
        image_ids = [line.strip() for line in read_text_lines(ids_path)]
        if k > 1 and n_images and len(image_ids) == n_images * k:
            # An ids file with one line per caption (each id repeated k times): keep every k-th.
            if all(len(set(image_ids[i * k : (i + 1) * k])) == 1 for i in range(n_images)):
                image_ids = image_ids[::k]
                messages.append(f"{ids_path.name}: each id was repeated {k} times (one per caption); kept every {k}th")
        if len(image_ids) != n_images:
            raise BenchError(f"{ids_path} has {len(image_ids)} ids but {ims_path.name} has {n_images} images")
        if "" in image_ids:
            raise BenchError(f"{ids_path} line {image_ids.index('') + 1} is empty; every image needs an id")
        if len(set(image_ids)) != len(image_ids):
            raise BenchError(f"{ids_path} lists an image id twice; ids must be unique")
    else:
        image_ids = [f"{split_name}-{i:06d}" for i in range(n_images)]

    features = _to_float32(features)
    if features.size and not np.isfinite(features).all():
        # Row i of ``features`` is image i here (repeated rows were already collapsed).
        raise BenchError(non_finite_message(features, f"{ims_path}", split_name, image_ids))
    source[split_name] = {
        "ims": ims_path.name,
        "ims_sha256": sha256_file(ims_path),
        "caps": caps_path.name,
        "caps_sha256": sha256_file(caps_path),
        **({"ids": ids_path.name, "ids_sha256": sha256_file(ids_path)} if ids_path.is_file() else {}),
    }
    return Split(
        name=split_name,
        image_ids=image_ids,
        features=features,
        caption_ids=[f"{image_id}#{j}" for image_id in image_ids for j in range(k)],
        captions=captions,
        caption_to_image=np.repeat(np.arange(n_images, dtype=np.int64), k),
    )


@register_dataset("precomp", "VSE++/SCAN precomputed features: {split}_ims.npy + {split}_caps.txt")
def load_precomp(root: Path, *, captions_per_image: int = 5) -> Dataset:
    if root is None:
        raise BenchError("dataset 'precomp' needs its folder: pass --root PATH or set BENCH_PRECOMP_ROOT")
    root = Path(root)
    if captions_per_image < 1:
        raise BenchError(f"captions_per_image must be at least 1, not {captions_per_image}")
    messages: list[str] = []
    files: dict = {}
    splits = {name: _load_split(root, name, captions_per_image, messages, files) for name in SPLIT_NAMES}
    sizes = "/".join(f"{splits[s].n_images:,}" for s in SPLIT_NAMES)
    return Dataset(
        name="precomp",
        train=splits["train"],
        dev=splits["dev"],
        test=splits["test"],
        description=f"precomputed features from {root.name}: {sizes} train/dev/test images, "
        f"{captions_per_image} captions each",
        source={"root": str(root), "captions_per_image": captions_per_image, "files": files},
        messages=tuple(messages),
    )


def export_precomp(
    dataset: Dataset,
    out_dir: Path,
    splits=("train", "dev", "test"),
    *,
    image_ids: dict[str, list[str]] | None = None,
    captions_per_image: int = 5,
) -> list[Path]:
    """Write ``splits`` of ``dataset`` in the precomp format; returns the files written.

    ``image_ids`` maps a split name to a subset of its image ids, in the order to write
    them (e.g. the paired part of a partial-pairing training set). Each file is written
    atomically; ``{split}_ids.txt`` keeps the ids so :func:`load_precomp` restores them.
    """
    out_dir = Path(out_dir)
    image_ids = image_ids or {}
    unknown = sorted(set(image_ids) - set(splits))
    if unknown:
        raise BenchError(f"image_ids names split(s) {', '.join(unknown)} that are not exported ({', '.join(splits)})")
    written: list[Path] = []
    for split_name in splits:
        split = dataset.split(split_name)
        if split_name in image_ids:
            wanted = list(image_ids[split_name])
            if len(set(wanted)) != len(wanted):
                raise BenchError(f"image_ids for '{split_name}' lists an image twice")
            missing = [i for i in wanted if i not in split.image_index]
            if missing:
                raise BenchError(
                    f"image_ids for '{split_name}': {len(missing)} ids are not in that split of "
                    f"'{dataset.name}', e.g. {missing[0]}"
                )
            split = split.subset(np.array([split.image_index[i] for i in wanted], dtype=np.int64))
        if not split.is_vse_layout(captions_per_image):
            raise BenchError(
                f"cannot export split '{split_name}' of '{dataset.name}' as precomp: it needs exactly "
                f"{captions_per_image} captions per image stored image by image (the VSE layout)"
            )
        bad_id = next((i for i in split.image_ids if _LINE_BREAKS.search(i)), None)
        if bad_id is not None:
            raise BenchError(f"image id {bad_id!r} contains a line break and cannot be written one per line")

        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(split.features, dtype=np.float32), allow_pickle=False)
        captions = [_LINE_BREAKS.sub(" ", caption).strip() for caption in split.captions]
        written.append(atomic_write_bytes(out_dir / f"{split_name}_ims.npy", buffer.getvalue()))
        written.append(atomic_write_bytes(out_dir / f"{split_name}_caps.txt", _lines_bytes(captions)))
        written.append(atomic_write_bytes(out_dir / f"{split_name}_ids.txt", _lines_bytes(split.image_ids)))
    return written


def _lines_bytes(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")
