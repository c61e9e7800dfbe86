"""Dataset registry: a name maps to a loader that returns a :class:`Dataset`.

Loaders take the dataset's root folder (``--root`` on the CLI, or the environment
variable ``BENCH_<NAME>_ROOT``) and keyword options of their own. ``synthetic`` needs
no root: it is generated from a seed and is the default everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.data.types import SPLIT_NAMES, Dataset, Split
from bench.errors import BenchError

__all__ = ["Dataset", "Split", "SPLIT_NAMES", "DatasetInfo", "DATASETS", "register_dataset", "load_dataset", "resolve_root"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    loader: Callable[..., Dataset]  # loader(root: Path | None, **options) -> Dataset
    summary: str
    needs_root: bool = True


DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(name: str, summary: str, needs_root: bool = True):
    def decorate(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        DATASETS[name] = DatasetInfo(name=name, loader=loader, summary=summary, needs_root=needs_root)
        return loader

    return decorate


def _ensure_registered() -> None:
    # Importing the modules registers their loaders.
    from bench.data import coco, flickr8k, precomp, synthetic  # noqa: F401


def known_datasets() -> list[str]:
    _ensure_registered()
    return sorted(DATASETS)


def get_dataset_info(name: str) -> DatasetInfo:
    _ensure_registered()
    if name not in DATASETS:
        raise BenchError(f"unknown dataset '{name}'; known datasets: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def resolve_root(name: str, root: str | os.PathLike | None) -> Path | None:
    """The root folder from the argument, else ``BENCH_<NAME>_ROOT``; checked to exist."""
    info = get_dataset_info(name)
    if root is None:
        root = os.environ.get(f"BENCH_{name.upper()}_ROOT")
    if root is None:
        if info.needs_root:
            raise BenchError(
                f"dataset '{name}' needs its folder: pass --root PATH or set BENCH_{name.upper()}_ROOT"
            )
        return None
    path = Path(root).expanduser()
    if not path.is_dir():
        raise BenchError(f"dataset folder not found: {path} (check --root or BENCH_{name.upper()}_ROOT)")
    return path


def load_dataset(name: str, root: str | os.PathLike | None = None, **options) -> Dataset:
    info = get_dataset_info(name)
    return info.loader(resolve_root(name, root), **options)
