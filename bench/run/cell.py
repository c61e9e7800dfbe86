"""A grid cell and its identity: what one trained model of a grid is, and what makes it reusable.

A cell is (dataset, model, text encoder, policy, fraction, seed, resolved config). Its name, which
names its record file, does not hold the config; its config hash does, and its identity adds the data
bytes and the split file (:func:`cell_identity`): a finished record is reused only for the same
identity. :func:`build_cells` expands a grid (models x text encoders x fractions x seeds x pools) into
cells.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

from bench.models.config import hashed_config
from bench.errors import BenchError
from bench.io import to_json
from bench.models.registry import ModelSpec
from bench.splits import PoolSpec, format_fraction, pools_suffixes

# A model's paired-only twin (see RetrievalModel.paired_only_twin and bench.report.gain) runs as a cell
# of its own, labelled "paired-only" after the model cell's own label, if any.
TWIN_LABEL = "paired-only"  # the label of a twin cell: "paired-only", or "<model's label>+paired-only"
TWIN_SEPARATOR = "+"


def twin_label(label: str | None) -> str:
    """The label a twin cell gets, from the label of the model cell it belongs to."""
    return f"{label}{TWIN_SEPARATOR}{TWIN_LABEL}" if label else TWIN_LABEL


def is_twin_label(label: str | None) -> bool:
    return bool(label) and (label == TWIN_LABEL or label.endswith(TWIN_SEPARATOR + TWIN_LABEL))


def base_label(label: str) -> str:
    """The label of the model cell a twin label belongs to ('' for none)."""
    return "" if label == TWIN_LABEL else label[: -len(TWIN_SEPARATOR + TWIN_LABEL)]


# Where a cell's config comes from, when not from the profile: (spec, the requested text encoder or None,
# fraction, the settings from the command line) -> (config, the file it came from or None). `bench run
# --profile tuned` passes one that reads `bench tune`'s files.
ConfigSource = Callable[[ModelSpec, "str | None", float, "dict[str, str]"], "tuple[Any, dict | None]"]


@dataclass(frozen=True)
class Cell:
    dataset: str
    model: str
    fraction: float
    seed: int
    policy: str
    profile: str
    text_encoder: str | None  # None for models without a choice of text encoder
    config: Any = field(compare=False)
    label: str | None = None  # names a variant (e.g. an ablation) so its records don't replace the base model's
    pools: PoolSpec = field(default_factory=PoolSpec, compare=False)  # share of the unpaired pools, extra sources
    tuned_from: dict | None = field(default=None, compare=False)  # --profile tuned: the file the config came from
    revision: int = field(default=0, compare=False)  # the model's behaviour revision (RetrievalModel.revision)
    twin_of: str | None = None  # a paired-only twin (bench.report.gain): the name of the model cell it belongs to

    @property
    def config_hash(self) -> str:
        payload = {"model": self.model, "profile": self.profile, "config": hashed_config(self.config)}
        if self.revision:  # left out at 0, so hashes from before revisions existed stay valid
            payload["revision"] = self.revision
        return hashlib.sha256(to_json(payload).encode()).hexdigest()

    @property
    def name(self) -> str:
        encoder = f"-{self.text_encoder}" if self.text_encoder else ""
        label = f"-{self.label}" if self.label else ""
        extras, share = pools_suffixes(self.pools.unpaired_fraction, self.pools.tags)
        return (f"{self.dataset}_{self.model}{encoder}{label}_{self.profile}_{self.policy}{extras}"
                f"_p{format_fraction(self.fraction)}{share}_seed{self.seed}")

    @property
    def split_key(self) -> tuple:
        return (self.fraction, self.seed, self.policy, self.pools.key())

    def describe(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "fraction": self.fraction, "seed": self.seed,
                "policy": self.policy, "profile": self.profile, "text_encoder": self.text_encoder,
                "label": self.label, "unpaired_fraction": self.pools.unpaired_fraction,
                "extra_sources": list(self.pools.tags), **({"twin_of": self.twin_of} if self.twin_of else {})}


def cell_identity(config_hash: str, content_sha256: str, split_sha256: str) -> str:
    """What makes a finished cell reusable: the same config, the same data bytes and the same split
    file. Changed data (a dropped image, an edited caption) means another identity and a recompute."""
    return hashlib.sha256(f"{config_hash}:{content_sha256}:{split_sha256}".encode()).hexdigest()


def profile_configs(profile: str) -> ConfigSource:
    """The configs of a named profile of each model's config class, with the command line's settings."""
    return lambda spec, encoder, fraction, settings: (spec.config_class.for_profile(profile, settings), None)


def build_cells(dataset: str, specs: list[ModelSpec], fractions: list[float], seeds: list[int], policy: str,
                profile: str, text_encoders: list[str] | None, overrides: dict[str, dict[str, str]],
                label: str | None = None, pool_variants: list[PoolSpec] | None = None,
                configs: ConfigSource | None = None, with_controls: bool = False) -> list[Cell]:
    """The grid's cells. A model that ignores unpaired data gets only the plain pools of each split
    (any other variant would train the very same model again). Each cell's config is the profile's
    (``configs`` replaces that: ``--profile tuned`` reads the `bench tune` result for its model, text
    encoder and fraction). With ``with_controls``, each cell of a model that reads the pools is
    followed by its paired-only twin (:mod:`bench.report.gain`): the twin's config, labelled
    ``paired-only``, on the same split and seed."""
    configs = configs or profile_configs(profile)
    cells = []
    pool_variants = pool_variants or [PoolSpec()]
    for spec in specs:
        variants = pool_variants if spec.uses_unpaired else [PoolSpec()]
        names = {f.name for f in dataclasses.fields(spec.config_class)}
        # Overrides without a model prefix ("*") apply only where the model has that setting.
        model_overrides = {k: v for k, v in overrides.get("*", {}).items() if k in names}
        model_overrides.update(overrides.get(spec.name, {}))
        for encoder in encoders_for(spec, text_encoders):
            settings = dict(model_overrides)
            if encoder is not None:
                settings["text_encoder"] = encoder
            by_fraction = {fraction: configs(spec, encoder, fraction, settings) for fraction in fractions}
            for seed in seeds:
                for fraction in fractions:
                    config, tuned = by_fraction[fraction]
                    chosen = cell_text_encoder(spec, getattr(config, "text_encoder", None))
                    twin = spec.paired_only_twin(config) if with_controls else None
                    for pools in variants:
                        cell = Cell(dataset, spec.name, fraction, seed, policy, profile, chosen, config, label,
                                    pools, tuned, spec.revision)
                        cells.append(cell)
                        if twin is not None:
                            cells.append(dataclasses.replace(cell, config=twin, label=twin_label(label),
                                                             twin_of=cell.name))
    return cells


def encoders_for(spec: ModelSpec, requested: list[str] | None) -> list[str | None]:
    """The text encoders a model's cells run with: None (the profile's choice) when none is requested
    or the model has no choice; else the requested ones the model reads. A model that reads none of
    them is one clear error, not a silently empty row."""
    if not requested or not spec.has_text_choice:
        return [None]
    chosen = [encoder for encoder in requested if encoder in spec.text_encoders]
    if not chosen:
        raise BenchError(f"{spec.name} reads the text encoders {', '.join(spec.text_encoders)}, not "
                         f"{', '.join(requested)}; run it with --text-encoders {spec.text_encoders[0]}")
    return list(chosen)


def cell_text_encoder(spec: ModelSpec, encoder: str | None) -> str | None:
    """The text encoder a cell is named by: None for a model without a choice, and for the model's own
    unnamed one (cca's bag of words), so those cells keep the names they had before the choice existed."""
    if not spec.has_text_choice or encoder == spec.unnamed_text_encoder:
        return None
    return encoder
