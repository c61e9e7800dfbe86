"""Tuned files: their schema, and the one validating reader `bench run --profile tuned` goes through."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.io import read_json_file, schema_problems, sha256_file
from bench.models.registry import ModelSpec
from bench.run.cell import cell_text_encoder
from bench.models.search_space import describe_space
from bench.splits import format_fraction
from bench.tuning.study import DEFAULT_TUNED_DIR


def config_from_dict(config_class: type, values: dict) -> Any:
    """A config from its JSON form: lists back to tuples where the field is a tuple, and a whole
    float (``64.0``) back to an int where the field is an int. ``values`` must have passed
    :func:`config_schema` (as every tuned file does in :func:`read_tuned_file`)."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise BenchError(f"{config_class.__name__} has no setting(s) {', '.join(unknown)}")
    defaults = config_class()
    converted = {}
    for key, value in values.items():
        default = getattr(defaults, key)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif type(default) is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        converted[key] = value
    return config_class(**converted)


# The JSON types of config fields, by the type of the field's default (as `--set` converts them).
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def config_schema(config_class: type) -> dict:
    """A JSON schema of ``config_class``'s settings in a tuned file: each setting of its default's
    type (a number where the default is a float; a list where it is a tuple). Unknown settings and
    ranges are not here: :func:`config_from_dict` refuses the first, making the config checks the
    others (:func:`bench.models.config.check_ranges`)."""
    properties = {}
    for field in dataclasses.fields(config_class):
        default = field.default
        if type(default) in _JSON_TYPES:
            properties[field.name] = {"type": _JSON_TYPES[type(default)]}
        elif isinstance(default, tuple):
            item = _JSON_TYPES.get(type(default[0])) if default else None
            properties[field.name] = {"type": "array", **({"items": {"type": item}} if item else {})}
        else:  # a type JSON can't hold (a plugin's own): the config's constructor judges it
            properties[field.name] = {}
    return {"type": "object", "properties": properties}


# What `bench run --profile tuned` reads from a tuned file (the rest is a record for people): checked
# by bench.io.schema_problems, where a number is finite. A file lacking `text_encoder` is for a model without one,
# one lacking `model_revision` was written before revisions existed (revision 0).
TUNED_FILE_SCHEMA = {
    "type": "object",
    "required": ["model", "fraction", "config", "budget"],
    "properties": {
        "model": {"type": "string"},
        "text_encoder": {"type": ["string", "null"]},
        "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
        "model_revision": {"type": "integer", "minimum": 0},
        "config": {"type": "object"},
        "budget": {"type": "object", "required": ["trials_spent", "update_cap", "wall_s"],
                   "properties": {"trials_spent": {"type": "integer", "minimum": 0},
                                  "update_cap": {"type": "integer", "minimum": 1},
                                  "wall_s": {"type": "number", "minimum": 0}}},
    },
}


def read_tuned_file(path: Path, spec: ModelSpec, text_encoder: str | None, remedy: str) -> tuple[dict, Any] | None:
    """The tuned file at ``path`` and the config it holds for ``spec``, or None when the file is for
    another model or text encoder. Tuned files travel between people, so nothing in one is trusted:
    a file that is not what `bench tune` writes (a field missing or of the wrong type, a setting the
    model does not have or of the wrong type, a value out of range) is one :class:`BenchError` that
    names the file and the reason, never a traceback or a failed cell."""

    data = read_json_file(path, "tuned profile", remedy)
    problems = schema_problems(data, TUNED_FILE_SCHEMA)
    if problems:
        raise BenchError(f"tuned profile {path} is not a `bench tune` file: it {problems[0]}; {remedy}")
    if data["model"] != spec.name or data.get("text_encoder") != text_encoder:
        return None
    problems = schema_problems(data["config"], config_schema(spec.config_class))
    if problems:
        raise BenchError(f"tuned profile {path} has a config that {spec.name} can't use: it {problems[0]}; {remedy}")
    try:
        config = config_from_dict(spec.config_class, data["config"])
    except BenchError as error:  # an unknown setting, a value out of range: the message names it, this the file
        raise BenchError(f"tuned profile {path}: {error}; {remedy}") from None
    except (TypeError, ValueError) as error:  # a plugin's config refusing a value in its own way
        raise BenchError(f"tuned profile {path} holds a config {spec.name} refuses ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}); {remedy}") from None
    return data, config


def tuned_config(spec: ModelSpec, dataset: str, text_encoder: str | None, fraction: float,
                 tuned_dir: Path | None = None, overrides: dict[str, str] | None = None) -> tuple[Any, dict]:
    """The tuned config for this cell and where it came from. A fraction without its own file takes
    the nearest tuned fraction's (the record says which); none at all is a clear error, and so is a
    malformed file among this model's (:func:`read_tuned_file`)."""
    from bench.models.config import apply_overrides

    def tune_command(at: float) -> str:
        text = f" --text-encoders {text_encoder}" if text_encoder else ""
        return f"`bench tune --dataset {dataset} --models {spec.name}{text} --fractions {format_fraction(at)}`"

    tuned_dir = Path(tuned_dir or DEFAULT_TUNED_DIR)
    pattern = f"{spec.name}_{text_encoder}_p*.json" if text_encoder else f"{spec.name}_p*.json"
    remedy = f"fix or remove it, or write it anew with {tune_command(fraction)}"
    found = {}
    for path in sorted((tuned_dir / dataset).glob(pattern)):
        read = read_tuned_file(path, spec, text_encoder, remedy)
        if read is not None:
            data, config = read
            found[float(data["fraction"])] = (path, data, config)
    if not found:
        raise BenchError(f"no tuned profile for {spec.name}{f' ({text_encoder})' if text_encoder else ''} on "
                         f"{dataset} in {tuned_dir / dataset}; make one with {tune_command(fraction)}")
    nearest = min(found, key=lambda f: (abs(f - fraction), f))
    path, data, config = found[nearest]
    # Settings tuned for older behaviour are not this model's tuned settings: a raised revision
    # starts a new study (StudySpec.name), so its profile must come from that study too. Files
    # written before revisions existed are revision 0.
    tuned_revision = int(data.get("model_revision", 0))
    if tuned_revision != spec.revision:
        raise BenchError(f"{path} was tuned for {spec.name} revision {tuned_revision}, but {spec.name} is now at "
                         f"revision {spec.revision}; retune with {tune_command(nearest)}, or run another profile")
    config = apply_overrides(config, overrides or {})
    source = {"file": str(path), "sha256": sha256_file(path), "tuned_fraction": nearest,
              "trials_spent": data["budget"]["trials_spent"], "update_cap": data["budget"]["update_cap"],
              "tuning_wall_s": data["budget"]["wall_s"], "model_revision": tuned_revision}
    return config, source


def tuned_configs(dataset: str, tuned_dir: Path | None = None):
    """The config source of ``--profile tuned`` for :func:`bench.run.build_cells`: each cell's config
    is the tuned one for its model, text encoder (the model's default when none is asked for) and
    fraction (:func:`tuned_config`), with the command line's settings applied over it."""
    def configs(spec: ModelSpec, encoder: str | None, fraction: float, settings: dict[str, str]) -> tuple[Any, dict]:
        text = cell_text_encoder(spec, encoder or spec.default_text_encoder("cpu"))
        return tuned_config(spec, dataset, text, fraction, tuned_dir,
                            {k: v for k, v in settings.items() if k != "text_encoder"})

    return configs


def search_space_lines(spec: ModelSpec) -> list[str]:
    space = getattr(spec.config_class, "SEARCH_SPACE", {})
    if not space:
        return [f"{spec.name}: no search space"]
    return [f"{spec.name}.{name}: {text}" for name, text in describe_space(space)]

