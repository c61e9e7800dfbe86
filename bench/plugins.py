"""How extensions come in: models, datasets and evaluation protocols are each an entry-point group.

A package (this one, or a third party's) declares its models under ``bench.models``, its dataset
loaders under ``bench.datasets`` and its protocols under ``bench.protocols`` in its
``pyproject.toml``; a :class:`Registry` reads its group once, on first use, and keeps the objects by
name. Nothing is registered by importing a module, so every extension is found the same way.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterable, TypeVar

T = TypeVar("T")


def entry_point_objects(group: str) -> list[tuple[Any, Any]]:
    """``(entry point, the object it names, loaded)`` for every entry point of ``group``."""
    from importlib.metadata import entry_points  # looked up at call time, so tests can stand in a plugin

    return [(entry, entry.load()) for entry in entry_points(group=group)]


class Registry(Generic[T]):
    """The named objects of one entry-point group, read on first use.

    ``admit(entry_point, loaded_object)`` turns what one entry point names into ``(name, object)``
    pairs (a model class gives one spec, a factory may give several), or raises a
    :class:`~bench.errors.BenchError` saying what the entry point should have named.
    """

    def __init__(self, group: str, admit: Callable[[Any, Any], Iterable[tuple[str, T]]]):
        self.group = group
        self.admit = admit
        self.items: dict[str, T] = {}
        self.loaded = False

    def load(self) -> dict[str, T]:
        """Name -> object, after reading the entry points the first time."""
        if not self.loaded:
            self.loaded = True
            for entry, loaded in entry_point_objects(self.group):
                self.items.update(self.admit(entry, loaded))
        return self.items
