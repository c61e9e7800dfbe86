"""``flickr8k``: the Flickr8k benchmark (Hodosh, Young, Hockenmaier 2013) with precomputed features.

Root layout (the files may also sit directly in the root, or in the official
``Flickr8k_text/`` folder; every place is searched)::

    captions/Flickr8k.token.txt              IMAGE.jpg#N<TAB>caption
    captions/Flickr_8k.{train,dev,test}Images.txt
    features/<name>.npy                      (n_images, d), row i <-> line i of images.txt
    features/images.txt
    images/                                  JPEGs, only needed to extract features

The split lists decide which images are used and in which order; captions of an image
are ordered by their ``#N``. Common copies of Flickr8k carry junk: caption keys such as
``2258277193_586949ec62.jpg.1`` and split-list names such as ``e667626_18933d713e.jpg``
that are not Flickr8k images. Those are dropped and counted in ``Dataset.messages``;
anything that looks like a real Flickr8k image but is incomplete is an error instead,
because silently losing real test images would change the benchmark.

The feature helpers here (:func:`find_feature_file`, :func:`read_feature_table`) are
shared with the COCO loader, which uses the same ``features/`` layout.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from bench.data import register_dataset
from bench.data.types import SPLIT_NAMES, Dataset, Split
from bench.errors import BenchError
from bench.io import sha256_file

TOKEN_FILE = "Flickr8k.token.txt"
SPLIT_FILES = {name: f"Flickr_8k.{name}Images.txt" for name in SPLIT_NAMES}
TEXT_DIRS = ("captions", ".", "Flickr8k_text")  # searched in this order
DEFAULT_FEATURES = "efficientnet_lite0.npy"

# A Flickr8k file name is "<flickr photo id>_<secret>.jpg". The extra names in some
# copies of the split lists start with "e" (some are .png), so they never match.
FLICKR_NAME = re.compile(r"^\d+_[0-9a-f]+\.jpg$")


# --------------------------------------------------------------------------- helpers


def relative_to_root(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (for messages and Dataset.source)."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _find_text_file(root: Path, file_name: str, what: str) -> Path:
    candidates = [root / sub / file_name for sub in TEXT_DIRS]
    for path in candidates:
        if path.is_file():
            return path
    raise BenchError(
        f"{what} not found: expected {candidates[0]} (or {file_name} directly in {root}); "
        "check the dataset folder"
    )


def read_text_lines(path: Path) -> list[str]:
    """The file's lines without line endings. Only "\\n" ends a line (and the "\\r" of a "\\r\\n"
    ending is dropped): captions may hold other characters that ``str.splitlines`` would treat as
    breaks, a lone "\\r" among them, and line numbers in messages must be the file's. The bytes
    are decoded directly, since text mode would turn a lone "\\r" into a line break."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    return lines


def _image_folder(root: Path) -> Path | None:
    for sub in ("images", "Flicker8k_Dataset", "Flickr8k_Dataset"):
        folder = root / sub
        if folder.is_dir() and any(folder.iterdir()):
            return folder
    return None


def find_feature_file(root: Path, features: str | None, *, image_folder: Path | None = None) -> Path:
    """The ``.npy`` feature file: ``features`` (a name in ``features/``, with or without
    ``.npy``, or an absolute path), else the only ``.npy`` there, else ``efficientnet_lite0.npy``.

    With no feature file but an image folder, the error says how to extract one.
    """
    feature_dirs = [root / "features", root]
    wanted = None
    if features is not None:
        wanted = features if features.endswith(".npy") else features + ".npy"
        if Path(wanted).is_absolute():
            if Path(wanted).is_file():
                return Path(wanted)
            raise BenchError(f"feature file not found: {wanted}")
        for folder in feature_dirs:
            if (folder / wanted).is_file():
                return folder / wanted

    available = sorted({p.name for folder in feature_dirs if folder.is_dir() for p in folder.glob("*.npy")})
    out_name = wanted or DEFAULT_FEATURES
    if wanted is not None or not available:
        if image_folder is not None:
            raise BenchError(
                f"no feature file {root / 'features' / out_name}; build it from the images with "
                f"`bench features extract --images {image_folder} --out {root / 'features' / out_name}`, "
                "then load again"
            )
        if wanted is not None:
            listed = ", ".join(available) if available else "none"
            raise BenchError(f"feature file {root / 'features' / wanted} not found (available: {listed})")
        raise BenchError(
            f"no features in {root / 'features'}: expected <name>.npy with images.txt beside it "
            f"(or images under {root / 'images'} to extract them from)"
        )

    if len(available) == 1 or DEFAULT_FEATURES in available:
        name = available[0] if len(available) == 1 else DEFAULT_FEATURES
        for folder in feature_dirs:
            if (folder / name).is_file():
                return folder / name
    raise BenchError(
        f"several feature files in {root / 'features'} ({', '.join(available)}); choose one with features=NAME"
    )


def read_feature_table(npy_path: Path) -> tuple[list[str], np.ndarray]:
    """The names in ``images.txt`` beside ``npy_path`` and the feature matrix (as stored,
    not yet converted: callers take their rows first, which is cheaper)."""
    names_path = npy_path.parent / "images.txt"
    if not names_path.is_file():
        raise BenchError(f"{names_path} not found: it names the image of each row of {npy_path.name}, one a line")
    names = [line.strip() for line in read_text_lines(names_path)]
    if "" in names:
        raise BenchError(f"{names_path} line {names.index('') + 1} is empty; every line must name one image")
    if len(set(names)) != len(names):
        seen: set[str] = set()
        duplicate = next(n for n in names if n in seen or seen.add(n))
        raise BenchError(f"{names_path} lists {duplicate} twice; each image needs exactly one feature row")
    try:
        # mmap: only the rows a split uses are read into memory.
        matrix = np.load(npy_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise BenchError(f"cannot read feature file {npy_path}: {exc}") from None
    if matrix.ndim != 2:
        raise BenchError(f"{npy_path} has shape {matrix.shape}; expected (n_images, feature_dim)")
    if not np.issubdtype(matrix.dtype, np.floating):
        raise BenchError(f"{npy_path} holds {matrix.dtype} values; expected floating-point features")
    if matrix.shape[0] != len(names):
        raise BenchError(
            f"{npy_path} has {matrix.shape[0]} rows but {names_path} names {len(names)} images; "
            "row i must belong to line i, so the two files were made separately: rebuild the features"
        )
    return names, matrix


def take_feature_rows(matrix: np.ndarray, rows: list[int], npy_path: Path, split_name: str,
                      image_ids: list | None = None) -> np.ndarray:
    """``matrix[rows]`` as float32 (float16 on disk), checked to be finite; ``image_ids[i]`` names
    the image of ``rows[i]`` in the message about a non-finite row."""
    features = np.asarray(matrix[np.asarray(rows, dtype=np.int64)], dtype=np.float32)
    if features.size and not np.isfinite(features).all():
        raise BenchError(non_finite_message(features, f"{npy_path}", split_name, image_ids, rows))
    return features


def non_finite_message(features: np.ndarray, where: str, split_name: str, image_ids: list | None,
                       rows: list[int] | None = None) -> str:
    """Which images of ``features`` have a NaN or infinite value: the first by its id (and file row), and how many."""
    bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    first = int(bad[0])
    name = f"image {image_ids[first]}" if image_ids is not None else f"image #{first}"
    row = f" (row {int(rows[first])} of the file)" if rows is not None else ""
    values = features[first]
    kinds = " and ".join(k for k, hit in (("NaN", np.isnan(values).any()), ("inf", np.isinf(values).any())) if hit)
    more = f"; {len(bad) - 1} more {split_name} image(s) too" if len(bad) > 1 else ""
    return f"{where}: the features of {split_name} {name}{row} contain {kinds}{more}; recompute them"


def _examples(names, limit: int = 2) -> str:
    return ", ".join(list(names)[:limit])


# ---------------------------------------------------------------------------- loader


def _read_token_file(path: Path) -> dict[str, list[tuple[int, str, int]]]:
    """image name -> [(caption number, caption, line number)] in file order, for every key.

    Repeated keys are kept here: the junk entries of real copies repeat some (e.g.
    ``e58368365_03ed3e5bdf.jpg#1``), and junk is dropped later, so only a repeat for an
    image that is actually used is an error.
    """
    captions: dict[str, list[tuple[int, str, int]]] = {}
    for line_no, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        name, hash_sign, number = key.strip().rpartition("#")
        if not tab or not hash_sign or not number.isdigit():
            raise BenchError(f"{path} line {line_no} is not 'IMAGE.jpg#N<TAB>caption': {line[:60]!r}")
        captions.setdefault(name, []).append((int(number), caption.strip(), line_no))
    return captions


def _split_image_ids(split_name: str, split_file: Path, root: Path, feature_row: dict[str, int], n_features: int,
                     npy_path: Path, captions: dict[str, list[tuple[int, str, int]]], token_file: Path,
                     dropped: list[str]) -> list[str]:
    """The images of one split list, in its order. A name that is not a Flickr8k image is appended
    to ``dropped``; a real image listed twice, or without a feature row or a caption, is an error."""
    image_ids: list[str] = []
    seen: set[str] = set()
    for line_no, line in enumerate(read_text_lines(split_file), start=1):
        name = line.strip()  # some copies have trailing spaces
        if not name:
            continue
        if name in seen:
            raise BenchError(f"{split_file} line {line_no}: {name} is listed twice")
        seen.add(name)
        if name not in feature_row:
            if not FLICKR_NAME.match(name):
                dropped.append(name)  # an extra name, not a Flickr8k image
                continue
            raise BenchError(
                f"{split_name} image {name} ({relative_to_root(split_file, root)} line {line_no}) has no row in "
                f"{relative_to_root(npy_path.parent / 'images.txt', root)}; the features cover only "
                f"{n_features} images: extract them for every image"
            )
        if not captions.get(name):
            raise BenchError(f"{split_name} image {name} has no caption in {relative_to_root(token_file, root)}")
        image_ids.append(name)
    return image_ids


def _split_captions(image_ids: list[str], captions: dict[str, list[tuple[int, str, int]]], token_file: Path,
                    root: Path, not_five: list[str]) -> tuple[list[str], list[str], list[int]]:
    """The caption ids, texts and image rows of a split's images, each image's captions by their
    ``#N``. An image without 5 captions is appended to ``not_five`` (kept); a repeated ``#N`` is an
    error."""
    caption_ids, texts, caption_to_image = [], [], []
    for row, name in enumerate(image_ids):
        entries = sorted(captions[name])  # by caption number #N
        numbers = [n for n, _, _ in entries]
        if len(set(numbers)) != len(numbers):
            repeated = next(n for n in numbers if numbers.count(n) > 1)
            lines = [str(line_no) for n, _, line_no in entries if n == repeated]
            raise BenchError(
                f"{relative_to_root(token_file, root)} has caption {name}#{repeated} twice (lines {', '.join(lines)})"
            )
        if len(numbers) != 5:
            not_five.append(name)
        caption_ids.extend(f"{name}#{n}" for n in numbers)
        texts.extend(text for _, text, _ in entries)
        caption_to_image.extend([row] * len(numbers))
    return caption_ids, texts, caption_to_image


@register_dataset("flickr8k", "Flickr8k: 8,091 Flickr photos with 5 captions each, split 6,000/1,000/1,000")
def load_flickr8k(root: Path, *, features: str | None = None) -> Dataset:
    if root is None:
        raise BenchError("dataset 'flickr8k' needs its folder: pass --root PATH or set BENCH_FLICKR8K_ROOT")
    root = Path(root)
    token_file = _find_text_file(root, TOKEN_FILE, "Flickr8k caption file")
    split_files = {name: _find_text_file(root, file, f"Flickr8k {name} split list") for name, file in SPLIT_FILES.items()}
    npy_path = find_feature_file(root, features, image_folder=_image_folder(root))
    feature_names, matrix = read_feature_table(npy_path)
    feature_row = {name: row for row, name in enumerate(feature_names)}
    captions = _read_token_file(token_file)
    messages: list[str] = []

    # Caption keys without a feature row are not Flickr8k images (images.txt lists all of them).
    junk = [name for name in captions if name not in feature_row]
    if junk:
        n_lines = sum(len(captions[name]) for name in junk)
        messages.append(
            f"dropped {n_lines} caption lines of {len(junk)} names that are not Flickr8k images "
            f"(no row in {relative_to_root(npy_path.parent / 'images.txt', root)}), e.g. {_examples(junk)}"
        )

    splits: dict[str, Split] = {}
    dropped: dict[str, list[str]] = {}
    not_five: list[str] = []
    for split_name, split_file in split_files.items():
        dropped[split_name] = []
        image_ids = _split_image_ids(split_name, split_file, root, feature_row, len(feature_names), npy_path,
                                     captions, token_file, dropped[split_name])
        caption_ids, texts, caption_to_image = _split_captions(image_ids, captions, token_file, root, not_five)
        splits[split_name] = Split(
            name=split_name,
            image_ids=image_ids,
            features=take_feature_rows(matrix, [feature_row[n] for n in image_ids], npy_path, split_name, image_ids),
            caption_ids=caption_ids,
            captions=texts,
            caption_to_image=np.asarray(caption_to_image, dtype=np.int64),
        )

    if any(dropped.values()):
        all_dropped = [n for names in dropped.values() for n in names]
        counts = "/".join(str(len(dropped[s])) for s in SPLIT_NAMES)
        messages.append(
            f"dropped {counts} names from the train/dev/test lists that are not Flickr8k images "
            f"(no feature row), e.g. {_examples(all_dropped)}"
        )
    if not_five:
        messages.append(f"{len(not_five)} images have other than 5 captions (kept all), e.g. {_examples(not_five)}")
    used = sum(s.n_images for s in splits.values())
    if used < len(feature_names):
        messages.append(f"{len(feature_names) - used} of the {len(feature_names)} images are in no split list (unused)")

    sizes = "/".join(f"{splits[s].n_images:,}" for s in SPLIT_NAMES)
    return Dataset(
        name="flickr8k",
        train=splits["train"],
        dev=splits["dev"],
        test=splits["test"],
        description=f"Flickr8k (Hodosh et al. 2013), {sizes} train/dev/test images, features {npy_path.stem}",
        source={
            "root": str(root),
            "token_file": relative_to_root(token_file, root),
            "token_sha256": sha256_file(token_file),
            "split_files": {s: relative_to_root(p, root) for s, p in split_files.items()},
            "split_sha256": {s: sha256_file(p) for s, p in split_files.items()},
            "features": npy_path.name,
            "features_sha256": sha256_file(npy_path),
            "feature_names_sha256": sha256_file(npy_path.parent / "images.txt"),
        },
        messages=tuple(messages),
    )
