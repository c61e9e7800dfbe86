"""The one interface every retrieval model implements, and the registry of models.

A model is trained with :meth:`RetrievalModel.fit` on a :class:`PairedData` subset
(images, captions and the links between them) and an :class:`UnpairedData` subset
(images alone and captions alone, with no links), selecting its checkpoint on the
validation split; then :meth:`embed_images` / :meth:`embed_captions` map inputs into
the shared space as L2-normalised float32 CPU tensors, batched, in eval mode, without
gradients.

Registry: ``MODELS`` maps a name to a :class:`ModelSpec` (factory, typed config class,
one-line summary, aliases). Other packages add models through the entry-point group
``bench.models``: each entry point names a zero-argument callable returning a
:class:`ModelSpec` (or a list of them).
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from bench.data.types import Split
from bench.errors import BenchError

ENTRY_POINT_GROUP = "bench.models"


# -- data handed to a model ----------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PairedData:
    """Training images with their captions; ``caption_to_image[j]`` is caption j's image row."""

    image_ids: list[str]
    features: np.ndarray  # (n_images, feature_dim) float32
    caption_ids: list[str]
    captions: list[str]
    caption_to_image: np.ndarray  # (n_captions,) int64

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_captions(self) -> int:
        return len(self.captions)


@dataclass(frozen=True, eq=False)
class UnpairedData:
    """Images alone and captions alone. There is deliberately no caption->image map."""

    image_ids: list[str]
    features: np.ndarray  # (n_images, feature_dim) float32
    caption_ids: list[str]
    captions: list[str]

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_captions(self) -> int:
        return len(self.captions)


ProgressCallback = Callable[..., None]  # progress(**fields): epoch, step, steps, loss, val_rsum, ...


def _no_progress(**_: Any) -> None:
    return None


@dataclass
class FitContext:
    """Everything a model's ``fit`` needs besides the data."""

    validation: Split  # the dev split: model selection happens here, never on test
    workdir: Path  # this cell's folder for checkpoints and the vocabulary
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    progress: ProgressCallback = _no_progress
    dataset_name: str = ""
    cache_dir: Path | None = None  # for frozen-encoder outputs shared across runs


@dataclass
class FitResult:
    epochs_run: int = 0
    best_epoch: int | None = None
    validation_curve: list[dict[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "unpaired data ignored"
    resumed_from_epoch: int | None = None


class RetrievalModel(abc.ABC):
    """Base class of every model. Subclasses set ``uses_unpaired`` and implement three methods."""

    uses_unpaired: ClassVar[bool] = False

    def __init__(self, config: Any) -> None:
        self.config = config

    @abc.abstractmethod
    def fit(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> FitResult: ...

    @abc.abstractmethod
    def embed_images(self, features: np.ndarray) -> torch.Tensor: ...

    @abc.abstractmethod
    def embed_captions(self, captions: list[str]) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]:
        """Extra facts for the result record (e.g. which text encoder ran)."""
        return {}


# -- configs and profiles ------------------------------------------------------------
class ModelConfig:
    """Mixin for model config dataclasses.

    ``PROFILES`` maps a profile name (``paper``, ``cpu``, ...) to field overrides of the
    dataclass defaults; the defaults themselves are the ``paper`` settings.
    """

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "cpu": {}}

    @classmethod
    def for_profile(cls, profile: str, overrides: dict[str, str] | None = None):
        if profile not in cls.PROFILES:
            raise BenchError(f"unknown profile '{profile}' for {cls.__name__}; choose one of {', '.join(cls.PROFILES)}")
        config = cls(**cls.PROFILES[profile])  # type: ignore[call-arg]
        return apply_overrides(config, overrides or {})


def _convert(value: str, current: Any, name: str) -> Any:
    try:
        if isinstance(current, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, tuple):
            item = current[0] if current else ""
            return tuple(_convert(v, item, name) for v in value.split(",") if v)
        return value
    except ValueError:
        raise BenchError(f"config value '{value}' for {name} is not a {type(current).__name__}") from None


def apply_overrides(config: Any, overrides: dict[str, str]):
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise BenchError(f"{type(config).__name__} has no setting '{key}'; settings: {', '.join(sorted(fields))}")
        changes[key] = _convert(value, getattr(config, key), key)
    return dataclasses.replace(config, **changes)


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


# -- registry -------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    name: str
    factory: Callable[[Any], RetrievalModel]  # factory(config) -> model
    config_class: type
    summary: str
    aliases: tuple[str, ...] = ()
    uses_unpaired: bool = False


MODELS: dict[str, ModelSpec] = {}
_BUILTIN_MODULES = ("baselines.cca", "baselines.vse", "baselines.jwae", "unimodel.model")
_loaded = False


def register_model(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


def _load_registry() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    from importlib.metadata import entry_points

    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:  # a real import error inside the module
                raise
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        specs = entry.load()()
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


# -- helpers every model uses -------------------------------------------------------------
def l2_normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)
