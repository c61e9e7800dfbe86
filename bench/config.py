"""Model configuration: typed dataclasses, named profiles, and ``--set KEY=VALUE`` overrides.

Every model's config is a frozen dataclass whose defaults are the model's published
(``paper``) settings; ``PROFILES`` maps other profile names to field overrides of those
defaults. :class:`TrainingConfig` holds the fields every neural model shares (text side,
hinge loss, optimiser schedule, batching), declared once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from bench.errors import BenchError


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


@dataclass(frozen=True)
class TrainingConfig(ModelConfig):
    """The settings every neural model shares; a model's config adds its own fields after these."""

    text_encoder: str = "gru"  # a text side of bench.nn.text: "gru" (learnt from words) or "minilm" (frozen)
    word_dim: int = 300  # word embedding size (gru)
    min_count: int = 4  # vocabulary threshold, over the training captions the model sees (gru)
    margin: float = 0.2  # hinge margin
    max_violation: bool = True  # hardest negatives (VSE++) or every violating negative (VSE0)
    lr: float = 2e-4  # Adam learning rate
    lr_decay_epoch: int = 15  # lr x lr_decay every this many epochs
    lr_decay: float = 0.1
    epochs: int = 30
    batch_size: int = 128  # paired captions per step
    grad_clip: float = 2.0  # gradient-norm clip (0 = off)
    eval_batch_size: int = 1024  # batch size when embedding (no effect on results)
    progress_every: int = 10  # report in-epoch progress every this many steps

    def __post_init__(self) -> None:
        from bench.nn.text import TEXT_SIDES

        if self.text_encoder not in TEXT_SIDES:
            raise BenchError(f"unknown text_encoder '{self.text_encoder}'; choose one of {', '.join(TEXT_SIDES)}")
        if self.batch_size < 2:
            raise BenchError("batch_size must be >= 2 (a batch of one has no negatives)")
        if self.epochs < 1 or self.lr_decay_epoch < 1:
            raise BenchError("epochs and lr_decay_epoch must be >= 1")


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
