"""Model configuration: typed dataclasses, named profiles, and ``--set KEY=VALUE`` overrides.

Every model's config is a frozen dataclass whose defaults are the model's published
(``paper``) settings; ``PROFILES`` maps other profile names to field overrides of those
defaults. :class:`TrainingConfig` holds the fields every neural model shares (text side,
hinge loss, optimiser schedule, batching), declared once.

Every config checks the ranges of its numbers when it is made (so ``--set cca.dim=0`` is
refused when it is parsed, not trained): a field's bound is its ``bound`` metadata (see
:func:`bounded`), else the first of :data:`NAME_RULES` its name matches; a field that matches
neither, and every string and boolean, is not range-checked.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from bench.errors import BenchError, notice


@dataclass(frozen=True)
class Bound:
    """An allowed range ``low <= value`` / ``low < value`` and ``value < high`` / ``value <= high``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: value > low; False: value >= low
    high_open: bool = False  # True: value < high; False: value <= high
    why: str = ""  # appended to the message

    def allows(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        if self.high is not None and not (value < self.high if self.high_open else value <= self.high):
            return False
        return True

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "finite"


AT_LEAST_ONE = Bound(low=1)
NON_NEGATIVE = Bound(low=0)
POSITIVE = Bound(low=0, low_open=True)
PROBABILITY = Bound(low=0, high=1, high_open=True)  # a rate that must leave something: [0, 1)


def bounded(default: Any, bound: Bound | None, **kwargs: Any) -> Any:
    """A dataclass field with an explicit range (``None``: not range-checked, whatever its name)."""
    return dataclasses.field(default=default, metadata={"bound": bound}, **kwargs)


def added_later(default: Any, bound: Bound | None = None) -> Any:
    """A field added after results were recorded: at its default it is left out of the config hash
    (:func:`hashed_config`), so a cell recorded before the field existed keeps its identity and a
    rerun of the same command resumes or skips it instead of retraining; any other value is hashed
    like every field. ``bound`` as in :func:`bounded` (``None``: the name rules apply)."""
    metadata = {"hash_omits_default": True}
    if bound is not None:
        metadata["bound"] = bound
    return dataclasses.field(default=default, metadata=metadata)


def _named(*names: str, prefixes: tuple[str, ...] = (), suffixes: tuple[str, ...] = ()) -> Callable[[str], bool]:
    return lambda name: name in names or name.startswith(prefixes) or name.endswith(suffixes)


# The bound of a field without ``bound`` metadata: the first rule whose names match. The order matters
# (``stage1_lr`` is a learning rate, ``stage1_epochs`` an optional count, ``latent_dim`` a size).
NAME_RULES: list[tuple[str, Callable[[str], bool], Bound]] = [
    ("learning rates (lr, *_lr)", _named("lr", suffixes=("_lr",)), POSITIVE),
    ("dropout probabilities (dropout, *_dropout)", _named("dropout", suffixes=("_dropout",)), PROBABILITY),
    ("Adam betas (*beta1, *beta2)", _named(suffixes=("beta1", "beta2")), PROBABILITY),
    ("loss weights (w_*, *_weight; 0 switches a term off)", _named(prefixes=("w_",), suffixes=("_weight",)),
     NON_NEGATIVE),
    ("standard deviations (*_sigma)", _named(suffixes=("_sigma",)), POSITIVE),
    ("relative scales (*_scale)", _named(suffixes=("_scale",)), NON_NEGATIVE),
    ("counts that may be 0 (*_epochs, *_blocks)", _named(suffixes=("_epochs", "_blocks")), NON_NEGATIVE),
    ("sizes and counts (dim, size, epochs, min_count, *_dim, *_size, *_hidden, *_layers, *_steps, *_every)",
     _named("dim", "size", "epochs", "min_count",
            suffixes=("_dim", "_size", "_hidden", "_layers", "_steps", "_every")), AT_LEAST_ONE),
    ("margins, ridge terms and powers (margin, reg, power)", _named("margin", "reg", "power"), NON_NEGATIVE),
]


def field_bound(field: dataclasses.Field) -> Bound | None:
    """The range a config field must lie in, or None when it is not checked."""
    if "bound" in field.metadata:
        return field.metadata["bound"]
    return next((bound for _, matches, bound in NAME_RULES if matches(field.name)), None)


def _model_name(config_class: type) -> str:
    """The registered name of the model whose config this is (``cca``, ``mine``), for messages."""
    try:
        from bench.models.registry import known_models

        for spec in known_models():
            if spec.config_class is config_class:
                return spec.name
    except Exception:  # noqa: BLE001 - only a nicer name for a message; fall back to the class name
        pass
    name = config_class.__name__
    return (name[: -len("Config")] if name.endswith("Config") and name != "Config" else name).lower()


def check_ranges(config: Any) -> None:
    """Raise a :class:`BenchError` naming the first numeric field outside its range (see :func:`field_bound`)."""
    for field in dataclasses.fields(config):
        bound = field_bound(field)
        if bound is None:
            continue
        value = getattr(config, field.name)
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            if not bound.allows(item):
                several = isinstance(value, (tuple, list))
                shown = ",".join(map(str, value)) if several else value
                why = f": {bound.why}" if bound.why else ""
                raise BenchError(f"{'every item of ' if several else ''}{_model_name(type(config))}.{field.name} "
                                 f"must be {bound.describe()} (got {shown}){why}")


QUICK_PROFILE, CPU_PROFILE = "quick", "cpu"
_NOTICES_GIVEN: set[str] = set()


def _notice_once(text: str) -> None:
    """Print a notice on stderr, once per process (configs are made once per cell and fraction)."""
    if text not in _NOTICES_GIVEN:
        _NOTICES_GIVEN.add(text)
        notice(text)


class ModelConfig:
    """Mixin for model config dataclasses.

    ``PROFILES`` maps a profile name (``paper``, ``cpu``, ...) to field overrides of the
    dataclass defaults; the defaults themselves are the ``paper`` settings. Making a config
    checks the ranges of its numbers (:func:`check_ranges`); a subclass with a ``__post_init__``
    of its own calls ``super().__post_init__()``.
    """

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "cpu": {}}
    # Settings that follow from the text encoder a config ends up with (its profile's, or the one
    # the overrides choose), in every profile: text encoder -> field overrides. --set still wins.
    TEXT_ENCODER_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {}
    # The same for one profile only, applied after TEXT_ENCODER_SETTINGS: profile -> text encoder ->
    # field overrides (a schedule in updates belongs to the cpu profile, not to the epoch-counting ones).
    PROFILE_TEXT_ENCODER_SETTINGS: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}

    def __post_init__(self) -> None:
        check_ranges(self)

    @classmethod
    def for_profile(cls, profile: str, overrides: dict[str, str] | None = None):
        if profile == QUICK_PROFILE and profile not in cls.PROFILES and CPU_PROFILE in cls.PROFILES:
            # `quick` is the synthetic data's default; a model that only says how to train on a CPU
            # (e.g. a plugin written from CONTRIBUTING.md) runs that setting there rather than failing
            _notice_once(f"{_model_name(cls)} has no '{QUICK_PROFILE}' profile; using its '{CPU_PROFILE}' profile")
            profile = CPU_PROFILE
        if profile not in cls.PROFILES:
            raise BenchError(f"unknown profile '{profile}' for {cls.__name__}; choose one of {', '.join(cls.PROFILES)}")
        overrides = overrides or {}
        settings = dict(cls.PROFILES[profile])
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        text = overrides.get("text_encoder", settings.get("text_encoder", defaults.get("text_encoder")))
        settings.update(cls.TEXT_ENCODER_SETTINGS.get(text, {}))
        settings.update(cls.PROFILE_TEXT_ENCODER_SETTINGS.get(profile, {}).get(text, {}))
        config = cls(**settings)  # type: ignore[call-arg]
        return apply_overrides(config, overrides)


# The update cap of the cpu profiles that train a text side with the hinge from the first update
# (vse, jwae, and mine with GRU text): 12 epochs of Flickr8k's 30,000 training captions in batches
# of 128, the same at every paired fraction. One number, so those rows get the same budget.
CPU_UPDATE_CAP = 2820


@dataclass(frozen=True)
class TrainingConfig(ModelConfig):
    """The settings every neural model shares; a model's config adds its own fields after these."""

    text_encoder: str = "gru"  # a text side of bench.nn.text: "gru" (learnt from words) or "minilm" (frozen)
    word_dim: int = bounded(300, AT_LEAST_ONE)  # word embedding size (gru)
    min_count: int = bounded(4, AT_LEAST_ONE)  # vocabulary threshold, over the training captions the model sees (gru)
    # in training, each word the GRU text encoder reads becomes <unk> with this probability (gru; 0 = off,
    # as in VSE++): a regulariser for a GRU that learns its words from a few thousand pairs
    encoder_word_dropout: float = bounded(0.0, PROBABILITY)
    margin: float = bounded(0.2, NON_NEGATIVE)  # hinge margin
    max_violation: bool = True  # hardest negatives (VSE++) or every violating negative (VSE0)
    lr: float = bounded(2e-4, POSITIVE)  # Adam learning rate
    lr_decay_epoch: int = bounded(15, AT_LEAST_ONE)  # lr x lr_decay every this many epochs
    lr_decay: float = bounded(0.1, POSITIVE)
    epochs: int = bounded(30, AT_LEAST_ONE)
    # > 0: train for this many optimizer updates whatever the size of the training data. The fit
    # turns them into epochs on the data at hand (the model's `schedule` says what an epoch costs)
    # and keeps the lr drop at the same share of the run as lr_decay_epoch / epochs. This is what
    # the cpu profiles use, so that 10 % paired is not trained on a tenth of the updates of 100 %.
    # 0: `epochs` counts as given (the paper profiles, for fidelity to the reference). Setting
    # `epochs` by hand (--set epochs=N) without `updates` sets this to 0: the run trains N epochs.
    updates: int = bounded(0, NON_NEGATIVE)
    batch_size: int = bounded(128, Bound(low=2, why="a batch of one has no negatives"))  # paired captions per step
    grad_clip: float = bounded(2.0, NON_NEGATIVE)  # gradient-norm clip (0 = off)
    eval_batch_size: int = bounded(1024, AT_LEAST_ONE)  # batch size when embedding (no effect on results)
    progress_every: int = bounded(10, AT_LEAST_ONE)  # report in-epoch progress every this many steps

    def __post_init__(self) -> None:
        from bench.nn.text import TEXT_SIDES

        if self.text_encoder not in TEXT_SIDES:
            raise BenchError(f"unknown text_encoder '{self.text_encoder}'; choose one of {', '.join(TEXT_SIDES)}")
        super().__post_init__()  # ranges, including batch_size >= 2, epochs and lr_decay_epoch >= 1


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
    if "epochs" in changes and "updates" not in changes and "updates" in fields:
        # epochs asked for by hand are what the run trains for, even on a profile that counts updates
        changes["updates"] = 0
    return dataclasses.replace(config, **changes)


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def hashed_config(config: Any) -> dict[str, Any]:
    """What a cell's config hash covers: every field, except :func:`added_later` fields at their default."""
    out = config_to_dict(config)
    for f in dataclasses.fields(config):
        if f.metadata.get("hash_omits_default") and getattr(config, f.name) == f.default:
            del out[f.name]
    return out
