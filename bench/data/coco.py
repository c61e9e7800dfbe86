"""``coco``: MS COCO 2014 captions on the Karpathy split, with precomputed features.

Root layout (each file is also accepted directly in the root)::

    annotations/captions_train2014.json      official caption annotations, read with pycocotools
    annotations/captions_val2014.json
    dataset_coco.json                        Karpathy's split file (images with split, cocoid, filename)
      or karpathy_{train,val,test,restval}_ids.txt   one COCO image id a line
    features/<name>.npy + features/images.txt  row i <-> line i: a COCO file name or image id

Splits: dev = Karpathy "val" (5,000), test = "test" (5,000), train = "train" (82,783),
followed by "restval" (30,504) with ``restval=True`` (the usual 113,287-image training
set). Image order is the order of the split source.

Captions: COCO has 5 captions for most images but 6 or 7 for a few hundred. Every
model here assumes the VSE layout (5 per image), so each image keeps its first 5
captions by annotation id (the lowest ids, a fixed and documented choice) and the
number of captions left out is reported in ``Dataset.messages``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.data import register_dataset
from bench.data.flickr8k import (
    find_feature_file,
    read_feature_table,
    read_text_lines,
    relative_to_root,
    take_feature_rows,
)
from bench.data.types import SPLIT_NAMES, Dataset, Split
from bench.errors import BenchError
from bench.io import sha256_file

ANNOTATION_FILES = ("captions_train2014.json", "captions_val2014.json")
SEARCH_DIRS = ("annotations", ".", "splits")  # where annotation and split files may sit
KARPATHY_FILE = "dataset_coco.json"
KARPATHY_SPLITS = ("train", "val", "test", "restval")
CAPTIONS_PER_IMAGE = 5

_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def _clean_caption(text: str) -> str:
    # A few COCO captions contain a newline or trailing spaces; a caption is one line.
    return _LINE_BREAKS.sub(" ", text).strip()


def _read_annotation_file(annotation_file: Path) -> tuple[dict[int, list[tuple[int, str]]], dict[str, int]]:
    """Captions per image (as :func:`read_coco_captions`) and file name -> image id."""
    from pycocotools.coco import COCO  # imported here: only COCO loading needs it

    annotation_file = Path(annotation_file)
    if not annotation_file.is_file():
        raise BenchError(f"COCO caption annotation file not found: {annotation_file}")
    try:
        # pycocotools prints progress lines to stdout, which would mix into CLI output.
        with contextlib.redirect_stdout(io.StringIO()):
            api = COCO(str(annotation_file))
    except json.JSONDecodeError as exc:
        raise BenchError(f"{annotation_file} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise BenchError(f"{annotation_file} could not be decoded; run with PYTHONUTF8=1") from None
    except (AssertionError, KeyError, TypeError) as exc:
        raise BenchError(f"{annotation_file} is not a COCO annotation file ({type(exc).__name__}: {exc})") from None
    annotations = api.dataset.get("annotations")
    if not annotations:
        raise BenchError(f"{annotation_file} has no 'annotations'; expected a COCO caption file (captions_*.json)")
    if "caption" not in annotations[0]:
        raise BenchError(
            f"{annotation_file} has annotations without 'caption'; use the captions_*.json file, not instances_*.json"
        )

    captions: dict[int, list[tuple[int, str]]] = {}
    # Images listed without any caption are kept with an empty list so callers can tell
    # "image known, no caption" from "unknown image".
    for image_id in sorted(set(api.getImgIds()) | set(api.imgToAnns)):
        anns = api.imgToAnns.get(image_id, [])
        captions[int(image_id)] = sorted((int(ann["id"]), _clean_caption(ann["caption"])) for ann in anns)
    file_names = {img["file_name"]: int(img["id"]) for img in api.dataset.get("images", []) if "file_name" in img}
    return captions, file_names


def read_coco_captions(annotation_file: str | Path) -> dict[int, list[tuple[int, str]]]:
    """COCO image id -> [(annotation id, caption)] sorted by annotation id, via pycocotools.

    Captions are stripped and have line breaks replaced by spaces.
    """
    return _read_annotation_file(Path(annotation_file))[0]


def _find(root: Path, file_name: str) -> Path | None:
    for sub in SEARCH_DIRS:
        if (root / sub / file_name).is_file():
            return root / sub / file_name
    return None


def _read_id_list(path: Path) -> list[int]:
    ids = []
    for line_no, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        if not line.strip().isdigit():
            raise BenchError(f"{path} line {line_no} is not a COCO image id: {line.strip()[:40]!r}")
        ids.append(int(line))
    return ids


def _read_karpathy_split(root: Path, restval: bool) -> tuple[dict[str, list[int]], list[Path]]:
    """Karpathy split name (train/val/test/restval) -> COCO ids in order, and the files read."""
    karpathy_file = _find(root, KARPATHY_FILE)
    if karpathy_file is not None:
        try:
            entries = json.loads(karpathy_file.read_text(encoding="utf-8"))["images"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise BenchError(f"{karpathy_file} is not Karpathy's split file (needs 'images'): {exc}") from None
        ids: dict[str, list[int]] = {name: [] for name in KARPATHY_SPLITS}
        for position, entry in enumerate(entries):
            split = entry.get("split") if isinstance(entry, dict) else None
            if split not in ids or "cocoid" not in entry:
                raise BenchError(
                    f"{karpathy_file} image #{position} needs 'cocoid' and a 'split' in "
                    f"{'/'.join(KARPATHY_SPLITS)} (got split {split!r})"
                )
            ids[split].append(int(entry["cocoid"]))
        return ids, [karpathy_file]

    # The restval list is needed only with restval=True, but read when present so the
    # loader can say how many images were left out.
    lists = {name: _find(root, f"karpathy_{name}_ids.txt") for name in KARPATHY_SPLITS}
    needed = KARPATHY_SPLITS if restval else KARPATHY_SPLITS[:3]
    if all(lists[name] is None for name in needed):
        raise BenchError(
            f"no Karpathy split in {root}: expected {KARPATHY_FILE} or "
            f"karpathy_{{{','.join(needed)}}}_ids.txt (in the root or annotations/)"
        )
    missing = [name for name in needed if lists[name] is None]
    if missing:
        raise BenchError(f"Karpathy split list {root / f'karpathy_{missing[0]}_ids.txt'} not found")
    ids = {name: _read_id_list(path) if path else [] for name, path in lists.items()}
    return ids, [path for path in lists.values() if path is not None]


def _image_ids_of_feature_names(names: list[str], file_names: dict[str, int], names_path: Path) -> dict[int, int]:
    """COCO id -> feature row, from images.txt lines that are ids or file names."""
    row_of: dict[int, int] = {}
    for row, name in enumerate(names):
        if name.isdigit():
            image_id = int(name)
        else:
            base = name.replace("\\", "/").rsplit("/", 1)[-1]  # "val2014/COCO_val2014_...jpg" too
            if base not in file_names:
                raise BenchError(
                    f"{names_path} line {row + 1}: {name!r} is neither a COCO image id nor a file name "
                    "in the caption annotation files"
                )
            image_id = file_names[base]
        if image_id in row_of:
            raise BenchError(f"{names_path} names COCO image {image_id} twice (lines {row_of[image_id] + 1}, {row + 1})")
        row_of[image_id] = row
    return row_of


@dataclass(frozen=True)
class _Sources:
    """What :func:`load_coco` reads from the root before it builds the splits."""

    annotation_files: list[Path]
    karpathy: dict[str, list[int]]  # Karpathy split name -> COCO ids in order
    split_files: list[Path]
    npy_path: Path
    names_path: Path  # the images.txt naming the feature rows
    feature_names: list[str]
    matrix: np.ndarray
    feature_row: dict[int, int]  # COCO id -> feature row
    captions: dict[int, list[tuple[int, str]]]  # COCO id -> [(annotation id, caption)]


@dataclass
class _CaptionTally:
    """The images whose captions are not exactly :data:`CAPTIONS_PER_IMAGE`, counted over the splits."""

    trimmed_images: int = 0
    trimmed_captions: int = 0  # captions left out of the trimmed images
    short: list[int] = field(default_factory=list)  # ids of the images with fewer (all of theirs kept)

    def messages(self) -> list[str]:
        """What the dataset's messages say about these images (nothing when every image has exactly 5)."""
        messages = []
        if self.trimmed_images:
            messages.append(
                f"kept the first {CAPTIONS_PER_IMAGE} captions (lowest annotation ids) of each image: "
                f"left out {self.trimmed_captions} captions of {self.trimmed_images} images that have more"
            )
        if self.short:
            messages.append(
                f"{len(self.short)} images have fewer than {CAPTIONS_PER_IMAGE} captions (kept all), "
                f"e.g. {', '.join(map(str, self.short[:2]))}"
            )
        return messages


def _read_sources(root: Path, features: str | None, restval: bool) -> _Sources:
    """Find and read the annotation files, the Karpathy split and the feature table under ``root``."""
    annotation_files = []
    for file_name in ANNOTATION_FILES:
        path = _find(root, file_name)
        if path is None:
            raise BenchError(f"COCO caption annotation file not found: {root / 'annotations' / file_name}")
        annotation_files.append(path)
    karpathy, split_sources = _read_karpathy_split(root, restval)
    image_folder = next((root / sub for sub in ("images", "train2014", "val2014") if (root / sub).is_dir()), None)
    npy_path = find_feature_file(root, features, image_folder=image_folder)
    feature_names, matrix = read_feature_table(npy_path)

    captions: dict[int, list[tuple[int, str]]] = {}
    file_names: dict[str, int] = {}
    for path in annotation_files:
        file_captions, file_file_names = _read_annotation_file(path)
        captions.update(file_captions)
        file_names.update(file_file_names)
    names_path = npy_path.parent / "images.txt"
    feature_row = _image_ids_of_feature_names(feature_names, file_names, names_path)
    return _Sources(annotation_files, karpathy, split_sources, npy_path, names_path, feature_names, matrix,
                    feature_row, captions)


def _build_split(split_name: str, image_ids: list[int], sources: _Sources, root: Path, tally: _CaptionTally) -> Split:
    """The split of ``image_ids``: their feature rows and the first :data:`CAPTIONS_PER_IMAGE` captions of
    each (counted in ``tally`` when an image has more or fewer). An image listed twice, or without a
    feature row or a caption, is an error."""
    if len(set(image_ids)) != len(image_ids):
        raise BenchError(f"the Karpathy split lists a COCO image twice in {split_name}")
    caption_ids, texts, caption_to_image = [], [], []
    for row, image_id in enumerate(image_ids):
        if image_id not in sources.feature_row:
            raise BenchError(
                f"{split_name} image {image_id} has no row in {relative_to_root(sources.names_path, root)}; "
                f"the features cover {len(sources.feature_names)} images: extract them for every split image"
            )
        image_captions = sources.captions.get(image_id)
        if not image_captions:
            raise BenchError(
                f"{split_name} image {image_id} has no caption in {' or '.join(ANNOTATION_FILES)}"
            )
        if len(image_captions) > CAPTIONS_PER_IMAGE:
            tally.trimmed_images += 1
            tally.trimmed_captions += len(image_captions) - CAPTIONS_PER_IMAGE
        elif len(image_captions) < CAPTIONS_PER_IMAGE:
            tally.short.append(image_id)
        kept = image_captions[:CAPTIONS_PER_IMAGE]
        caption_ids.extend(str(ann_id) for ann_id, _ in kept)
        texts.extend(text for _, text in kept)
        caption_to_image.extend([row] * len(kept))
    return Split(
        name=split_name,
        image_ids=[str(i) for i in image_ids],
        features=take_feature_rows(sources.matrix, [sources.feature_row[i] for i in image_ids], sources.npy_path,
                                   split_name, image_ids),
        caption_ids=caption_ids,
        captions=texts,
        caption_to_image=np.asarray(caption_to_image, dtype=np.int64),
    )


@register_dataset("coco", "MS COCO 2014 captions, Karpathy split (restval=True adds restval to train)")
def load_coco(root: Path, *, features: str | None = None, restval: bool = False) -> Dataset:
    if root is None:
        raise BenchError("dataset 'coco' needs its folder: pass --root PATH or set BENCH_COCO_ROOT")
    root = Path(root)
    sources = _read_sources(root, features, restval)
    karpathy, npy_path = sources.karpathy, sources.npy_path

    members = {"train": karpathy["train"] + (karpathy["restval"] if restval else []),
               "dev": karpathy["val"], "test": karpathy["test"]}
    messages = []
    if restval:
        messages.append(f"train = Karpathy train ({len(karpathy['train'])}) + restval ({len(karpathy['restval'])}) images")
    elif karpathy["restval"]:
        messages.append(f"left out the {len(karpathy['restval'])} Karpathy restval images (restval=True adds them to train)")

    tally = _CaptionTally()
    splits = {split_name: _build_split(split_name, members[split_name], sources, root, tally)
              for split_name in SPLIT_NAMES}
    messages += tally.messages()

    sizes = "/".join(f"{splits[s].n_images:,}" for s in SPLIT_NAMES)
    # COCO reports 1K (the mean over 5 folds) and 5K; a smaller test split only its whole.
    protocols = ("coco1k", "coco5k") if splits["test"].n_images >= 5000 else ("full",)
    return Dataset(
        name="coco",
        protocols=protocols,
        train=splits["train"],
        dev=splits["dev"],
        test=splits["test"],
        description=(
            f"MS COCO 2014, Karpathy split{' with restval' if restval else ''}, {sizes} train/dev/test images, "
            f"{CAPTIONS_PER_IMAGE} captions each, features {npy_path.stem}"
        ),
        source={
            "root": str(root),
            "annotations": {relative_to_root(p, root): sha256_file(p) for p in sources.annotation_files},
            "split_files": {relative_to_root(p, root): sha256_file(p) for p in sources.split_files},
            "restval": restval,
            "features": npy_path.name,
            "features_sha256": sha256_file(npy_path),
            "feature_names_sha256": sha256_file(sources.names_path),
        },
        messages=tuple(messages),
    )
