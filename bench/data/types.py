"""The one object model every dataset is loaded into.

A :class:`Dataset` has three :class:`Split` s (``train``, ``dev``, ``test``). A split
holds one feature row per image, the captions as text, and for every caption the row
of its image. Images and captions keep the ids of their source (Flickr8k file names,
COCO numeric ids, ...) so split files can name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from bench.errors import BenchError
from bench.io import sha256_lines

SPLIT_NAMES = ("train", "dev", "test")


@dataclass(frozen=True, eq=False)
class Split:
    name: str
    image_ids: list[str]
    features: np.ndarray  # (n_images, feature_dim) float32
    caption_ids: list[str]
    captions: list[str]
    caption_to_image: np.ndarray  # (n_captions,) int64, row in ``features``

    def __post_init__(self) -> None:
        n_images, n_captions = len(self.image_ids), len(self.caption_ids)
        if self.features.ndim != 2 or self.features.shape[0] != n_images:
            raise BenchError(
                f"split '{self.name}': {n_images} image ids but features of shape "
                f"{tuple(self.features.shape)}; the feature matrix needs one row per image"
            )
        if len(self.captions) != n_captions or len(self.caption_to_image) != n_captions:
            raise BenchError(
                f"split '{self.name}': {n_captions} caption ids, {len(self.captions)} captions "
                f"and {len(self.caption_to_image)} caption->image links; they must agree"
            )
        if n_captions and (self.caption_to_image.min() < 0 or self.caption_to_image.max() >= n_images):
            raise BenchError(f"split '{self.name}': a caption points at an image that is not in the split")
        per_image = np.bincount(self.caption_to_image, minlength=n_images)
        if n_images and per_image.min() < 1:
            missing = self.image_ids[int(np.argmin(per_image))]
            raise BenchError(f"split '{self.name}': image {missing} has no caption; every image needs at least one")
        if len(set(self.image_ids)) != n_images or len(set(self.caption_ids)) != n_captions:
            raise BenchError(f"split '{self.name}': image ids and caption ids must be unique")

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_captions(self) -> int:
        return len(self.caption_ids)

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @cached_property
    def image_index(self) -> dict[str, int]:
        return {image_id: row for row, image_id in enumerate(self.image_ids)}

    @cached_property
    def caption_index(self) -> dict[str, int]:
        return {caption_id: row for row, caption_id in enumerate(self.caption_ids)}

    def captions_per_image(self) -> np.ndarray:
        return np.bincount(self.caption_to_image, minlength=self.n_images)

    def is_vse_layout(self, per_image: int = 5) -> bool:
        """True when captions ``k*i .. k*i+k-1`` belong to image ``i`` (the VSE++ layout)."""
        expected = np.repeat(np.arange(self.n_images), per_image)
        return self.n_captions == per_image * self.n_images and bool(np.array_equal(self.caption_to_image, expected))

    def subset(self, image_rows: np.ndarray, name: str | None = None) -> "Split":
        """The images at ``image_rows`` (in that order) with all their captions, in caption order."""
        image_rows = np.asarray(image_rows, dtype=np.int64)
        new_row = np.full(self.n_images, -1, dtype=np.int64)
        new_row[image_rows] = np.arange(len(image_rows))
        keep = np.flatnonzero(new_row[self.caption_to_image] >= 0)
        # Order captions by their new image row, stable within an image.
        keep = keep[np.argsort(new_row[self.caption_to_image[keep]], kind="stable")]
        return Split(
            name=name or self.name,
            image_ids=[self.image_ids[r] for r in image_rows],
            features=self.features[image_rows],
            caption_ids=[self.caption_ids[c] for c in keep],
            captions=[self.captions[c] for c in keep],
            caption_to_image=new_row[self.caption_to_image[keep]],
        )


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    train: Split
    dev: Split
    test: Split
    description: str = ""
    source: dict = field(default_factory=dict)  # where it came from: root, feature file, checksums
    messages: tuple[str, ...] = ()  # what the loader dropped or repaired, for the user to read
    protocols: tuple[str, ...] = ("full",)  # evaluation protocols of bench.metrics its test split is reported with
    default_profile: str = "cpu"  # the config profile `bench run` uses when none is given

    def __post_init__(self) -> None:
        dims = {s.feature_dim for s in self.splits()}
        if len(dims) != 1:
            raise BenchError(f"dataset '{self.name}': the splits have different feature sizes {sorted(dims)}")
        seen: dict[str, str] = {}
        for split in self.splits():
            for image_id in split.image_ids:
                if image_id in seen:
                    raise BenchError(
                        f"dataset '{self.name}': image {image_id} is in both '{seen[image_id]}' and '{split.name}'"
                    )
                seen[image_id] = split.name

    def splits(self) -> tuple[Split, Split, Split]:
        return (self.train, self.dev, self.test)

    def split(self, name: str) -> Split:
        if name not in SPLIT_NAMES:
            raise BenchError(f"unknown split '{name}'; choose one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    @property
    def feature_dim(self) -> int:
        return self.train.feature_dim

    @cached_property
    def ids_sha256(self) -> str:
        """SHA-256 of every split's image ids and caption ids, in order.

        Split files store it, so a split made for one dataset can't be applied to another.
        """
        lines: list[str] = []
        for split in self.splits():
            lines.append(f"[{split.name} images]")
            lines.extend(split.image_ids)
            lines.append(f"[{split.name} captions]")
            lines.extend(f"{cid}\t{split.image_ids[row]}" for cid, row in zip(split.caption_ids, split.caption_to_image))
        return sha256_lines(lines)

    @cached_property
    def content_sha256(self) -> str:
        """SHA-256 of ids, caption texts and feature bytes: changes whenever the data does."""
        import hashlib

        digest = hashlib.sha256(self.ids_sha256.encode())
        for split in self.splits():
            digest.update(np.ascontiguousarray(split.features, dtype=np.float32).tobytes())
            for caption in split.captions:
                digest.update(caption.encode("utf-8"))
                digest.update(b"\n")
        return digest.hexdigest()
