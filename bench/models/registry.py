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
from bench.plugins import Registry

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
    # The text encoders the model can read, when its config has a `text_encoder` field (else empty).
    # The one place every command asks "does this model have a text choice, and which".
    text_encoders: tuple[str, ...] = ()
    # The encoder a cell of the model gets without --text-encoders and that leaves the cell's name as it
    # was before the model had a choice (cca's own bag of words); None: every encoder is named.
    unnamed_text_encoder: str | None = None

    @classmethod
    def of(cls, model_class: type) -> "ModelSpec":
        """The spec a model class declares through its class attributes. A model whose config has a
        ``text_encoder`` field reads every text side of :mod:`bench.nn.text` unless the class narrows
        them with ``text_encoders``."""
        return cls(name=model_class.name, factory=model_class, config_class=model_class.config_class,
                   summary=model_class.summary, aliases=tuple(model_class.aliases),
                   uses_unpaired=model_class.uses_unpaired, revision=model_class.revision,
                   text_encoders=_text_encoders_of(model_class),
                   unnamed_text_encoder=getattr(model_class, "unnamed_text_encoder", None))

    @property
    def has_text_choice(self) -> bool:
        return bool(self.text_encoders)

    def default_text_encoder(self, profile: str) -> str | None:
        """The text encoder the model's ``profile`` chooses (None without a choice)."""
        if not self.has_text_choice:
            return None
        return self.config_class.for_profile(profile).text_encoder

    def paired_only_twin(self, config: Any) -> Any | None:
        """The config of the model's paired-only twin (see RetrievalModel.paired_only_twin), or None."""
        twin = getattr(self.factory, "paired_only_twin", None)
        return twin(config) if twin is not None else None


def _text_encoders_of(model_class: type) -> tuple[str, ...]:
    import dataclasses

    declared = getattr(model_class, "text_encoders", None)
    if declared:
        return tuple(declared)
    if "text_encoder" not in {f.name for f in dataclasses.fields(model_class.config_class)}:
        return ()
    from bench.nn.text import TEXT_SIDES

    return tuple(TEXT_SIDES)


def _specs_of(entry: Any, loaded: Any) -> list[tuple[str, ModelSpec]]:
    """A model class gives its own spec; a callable gives a spec or a list of specs."""
    if isinstance(loaded, type):
        specs = [ModelSpec.of(loaded)]
    else:
        made = loaded()
        specs = list(made) if isinstance(made, (list, tuple)) else [made]
    return [(spec.name, spec) for spec in specs]


REGISTRY: Registry[ModelSpec] = Registry(ENTRY_POINT_GROUP, _specs_of)
MODELS = REGISTRY.items  # name -> spec: the registry's own dict (never rebound), which register_model adds to


def register_model(spec_or_class: ModelSpec | type) -> ModelSpec:
    spec = spec_or_class if isinstance(spec_or_class, ModelSpec) else ModelSpec.of(spec_or_class)
    MODELS[spec.name] = spec
    return spec


def known_models() -> list[ModelSpec]:
    REGISTRY.load()
    return [MODELS[name] for name in sorted(MODELS)]


def get_model_spec(name: str) -> ModelSpec:
    REGISTRY.load()
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
