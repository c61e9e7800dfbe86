"""Dataset registry: a name maps to a loader that returns a :class:`Dataset`.

Loaders take the dataset's root folder (``--root`` on the CLI, or the environment
variable ``BENCH_<NAME>_ROOT``) and keyword options of their own. ``synthetic`` needs
no root: it is generated from a seed and is the default everywhere.

Datasets are found like models, through an entry-point group, ``bench.datasets`` (see
``pyproject.toml``): each entry point names a loader that :func:`register_dataset` has
declared (its name, summary and whether it needs a root), so a dataset in another package is
registered the same way as the built-in ones.

The modules: :mod:`~bench.data.types` (``Dataset``, ``Split``), one loader per dataset
(:mod:`~bench.data.synthetic`, :mod:`~bench.data.flickr8k`, :mod:`~bench.data.coco`,
:mod:`~bench.data.precomp`), :mod:`~bench.data.extra` (unpaired items from outside a dataset) and
:mod:`~bench.data.vocabulary` (the one tokenizer and vocabulary of the models that read words).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.data.types import SPLIT_NAMES, Dataset, Split
from bench.errors import BenchError
from bench.plugins import Registry

__all__ = ["Dataset", "Split", "SPLIT_NAMES", "DatasetInfo", "REGISTRY", "register_dataset", "load_dataset", "resolve_root",
           "known_datasets", "get_dataset_info"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    loader: Callable[..., Dataset]  # loader(root: Path | None, **options) -> Dataset
    summary: str
    needs_root: bool = True


ENTRY_POINT_GROUP = "bench.datasets"


def register_dataset(name: str, summary: str, needs_root: bool = True):
    """Declare a loader's registry entry: the decorated loader carries its :class:`DatasetInfo` as
    ``loader.dataset_info``, which the ``bench.datasets`` entry point naming the loader registers.
    Importing the module registers nothing by itself, so every dataset comes in one way."""

    def decorate(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        loader.dataset_info = DatasetInfo(name=name, loader=loader, summary=summary, needs_root=needs_root)
        return loader

    return decorate


def _dataset_of(entry, loaded) -> list[tuple[str, DatasetInfo]]:
    info = getattr(loaded, "dataset_info", None)
    if not isinstance(info, DatasetInfo):
        raise BenchError(f"entry point '{entry.name} = {entry.value}' of {ENTRY_POINT_GROUP} names no "
                         "loader declared with @register_dataset")
    return [(info.name, info)]


REGISTRY: Registry[DatasetInfo] = Registry(ENTRY_POINT_GROUP, _dataset_of)  # name -> dataset


def known_datasets() -> list[str]:
    return sorted(REGISTRY.load())


def get_dataset_info(name: str) -> DatasetInfo:
    datasets = REGISTRY.load()
    if name not in datasets:
        raise BenchError(f"unknown dataset '{name}'; known datasets: {', '.join(sorted(datasets))}")
    return datasets[name]


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
