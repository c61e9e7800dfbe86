"""The ``<out>.manifest.json`` beside a feature file: what made the features, and whether a rerun can
skip the work. It is written last, so it marks a finished run."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.features.backbones import Backbone
from bench.io import sha256_bytes, sha256_file, sha256_lines

IMAGES_FILE = "images.txt"
MANIFEST_FORMAT = 1


@dataclass
class Manifest:
    """The ``<out>.manifest.json`` beside a feature file."""

    backbone: str
    weights: dict[str, Any]
    preprocessing: dict[str, Any]
    feature_dim: int
    dtype: str
    n_images: int
    features_file: str
    features_sha256: str
    images_file: str
    images_sha256: str
    image_dir: str
    device: str
    torch_version: str
    torchvision_version: str
    numpy_version: str
    bench_version: str
    created: str
    format: int = MANIFEST_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in names})


def manifest_path(out_path: str | os.PathLike) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".manifest.json")


def _up_to_date(out_path: Path, backbone: Backbone, dtype: str, names: list[str]) -> Manifest | None:
    """The existing manifest if it describes exactly this run and its files are intact."""
    path = manifest_path(out_path)
    images_path = out_path.parent / IMAGES_FILE
    if not (path.is_file() and out_path.is_file() and images_path.is_file()):
        return None
    try:
        manifest = Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, OSError):
        return None
    if (
        manifest.format != MANIFEST_FORMAT
        or manifest.backbone != backbone.name
        or manifest.preprocessing != backbone.preprocessing.to_dict()
        or manifest.dtype != dtype
        or manifest.n_images != len(names)
        or manifest.images_sha256 != sha256_lines(names)
        or sha256_file(images_path) != manifest.images_sha256
        or sha256_file(out_path) != manifest.features_sha256
    ):
        return None
    return manifest


def _check_images_file_free(out_path: Path, images_text: str) -> None:
    """Refuse to overwrite an ``images.txt`` that another feature file in the folder relies on."""
    images_path = out_path.parent / IMAGES_FILE
    if not images_path.is_file():
        return
    current = sha256_file(images_path)
    if current == sha256_bytes(images_text.encode("utf-8")):
        return
    for other in sorted(out_path.parent.glob("*.manifest.json")):
        if other == manifest_path(out_path):
            continue
        try:
            data = json.loads(other.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        if data.get("images_file") == IMAGES_FILE and data.get("images_sha256") == current:
            raise BenchError(
                f"{images_path} lists the rows of {out_path.parent / data.get('features_file', '?')} and other images "
                f"would replace it; write these features to another folder"
            )
