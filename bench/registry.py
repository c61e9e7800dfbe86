"""The registry of models: a name on the command line -> the class that trains it.

Every model, built-in or third-party, is registered the same way: through the entry-point
group ``bench.models`` (see ``pyproject.toml``). An entry point names a
:class:`~bench.models.RetrievalModel` subclass, whose class attributes (``name``,
``summary``, ``aliases``, ``config_class``, ``uses_unpaired``, ``revision``) make its :class:`ModelSpec`;
it may also name a zero-argument callable returning a spec or a list of specs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from bench.errors import BenchError

ENTRY_POINT_GROUP = "bench.models"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    factory: Callable[[Any], Any]  # factory(config) -> RetrievalModel
    config_class: type
    summary: str
    aliases: tuple[str, ...] = ()
    uses_unpaired: bool = False
    revision: int = 0  # behaviour revision, part of the config hash (see RetrievalModel.revision)

    @classmethod
    def of(cls, model_class: type) -> "ModelSpec":
        """The spec a model class declares through its class attributes."""
        return cls(name=model_class.name, factory=model_class, config_class=model_class.config_class,
                   summary=model_class.summary, aliases=tuple(model_class.aliases),
                   uses_unpaired=model_class.uses_unpaired, revision=model_class.revision)


MODELS: dict[str, ModelSpec] = {}
_loaded = False


def register_model(spec_or_class: ModelSpec | type) -> ModelSpec:
    spec = spec_or_class if isinstance(spec_or_class, ModelSpec) else ModelSpec.of(spec_or_class)
    MODELS[spec.name] = spec
    return spec


def _load_registry() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        if isinstance(loaded, type):
            register_model(loaded)
            continue
        specs = loaded()
        for spec in specs if isinstance(specs, (list, tuple)) else [specs]:
            register_model(spec)


def known_models() -> list[ModelSpec]:
    _load_registry()
    return [MODELS[name] for name in sorted(MODELS)]


def get_model_spec(name: str) -> ModelSpec:
    _load_registry()
    wanted = name.strip().lower()
    for spec in MODELS.values():
        if wanted == spec.name or wanted in spec.aliases:
            return spec
    raise BenchError(f"unknown model '{name}'; known models: {', '.join(sorted(MODELS))} (see `bench models`)")


def parse_model_names(text: str) -> list[ModelSpec]:
    specs = [get_model_spec(part) for part in text.split(",") if part.strip()]
    if not specs:
        raise BenchError("no model named; pass --models, e.g. --models vse,jwae,mine")
    return specs
