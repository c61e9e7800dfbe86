"""Validate run records against ``bench/schemas/record.schema.json`` (documented in reports/SCHEMA.md).

Records travel between people (a run folder copied from a colleague or a CI job), so the harness
trusts none it reads: ``bench report`` and ``bench check`` read each one through
:func:`record_problem`, and ``bench run`` checks each one it writes with :func:`validation_errors`.
The schema is the one description of a record; this module adds only what JSON Schema cannot say:

* a ``number`` is a finite number. JSON has no NaN or Infinity, but Python's json module writes
  and reads them as bare tokens, and jsonschema's ``number`` accepts them, so a NaN metric would
  pass as a result. Here every ``number`` of a schema refuses them.
* ``test_ranks`` holds one caption-retrieval rank and one list of image-retrieval ranks per test
  image, each rank below the size of the gallery it ranks in: the lengths must agree
  (:func:`ranks_problems`).

:func:`schema_problems` applies the same rules to any other JSON a person may hand the harness
(a latency file, ...), so that every such file is checked, and its problems worded, alike.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from bench.io import json_type

# The headline metrics a record's ``metrics`` holds and the tables show, in their order: Recall@1/5/10
# in both directions, then rsum (their sum). The one list: the run record, the report and `bench check`
# read it from here (a list, so that pandas takes it as columns).
METRICS = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"]

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "record.schema.json"

# How a schema's type names read in a message.
TYPE_NAMES = {"object": "an object", "array": "a list", "string": "a string", "number": "a finite number",
              "integer": "an integer", "boolean": "a boolean", "null": "null"}
# The item schema of the long rank lists in ``test_ranks`` (thousands of items per record).
RANK = {"type": "integer", "minimum": 0}


@lru_cache(maxsize=1)
def record_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def is_number(value: object) -> bool:
    """Whether ``value`` is a finite int or float (not a bool, not NaN, not ±Infinity): a JSON number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)  # (an int of any size is finite; isfinite would overflow)


@lru_cache(maxsize=1)
def _validator_class():
    """Draft 2020-12 with ``number`` meaning a finite number, and a fast path for long rank lists."""
    import jsonschema
    from jsonschema import validators

    base = jsonschema.Draft202012Validator
    standard_items = base.VALIDATORS["items"]

    def items(validator, item_schema, instance, schema):
        # A record holds thousands of test ranks; validating each through jsonschema takes ~30 ms a
        # record. A list whose items are all plain ints >= 0 has no error to report, so skip the walk;
        # any other list goes the standard way, which words its errors.
        if (item_schema == RANK and "prefixItems" not in schema and isinstance(instance, list)
                and all(type(rank) is int and rank >= 0 for rank in instance)):
            return
        yield from standard_items(validator, item_schema, instance, schema)

    checker = base.TYPE_CHECKER.redefine("number", lambda _checker, value: is_number(value))
    return validators.extend(base, {"items": items}, type_checker=checker)


@lru_cache(maxsize=8)
def _validator(schema_text: str):
    return _validator_class()(json.loads(schema_text))


def _describe(value: object) -> str:
    """A value as a message names it: its JSON type, or NaN / Infinity, which JSON does not have."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return json_type(value)


def _one_line(text: str, limit: int = 160) -> str:
    """``text`` on one line (keys and values from a file may hold line breaks), cut to ``limit``."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _readable(error) -> str:
    """One jsonschema error as a short line: ``has 'cell.fraction' a string; expected a finite number``."""
    where = ".".join(map(str, error.absolute_path))
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        expected = " or ".join(TYPE_NAMES.get(name, name) for name in wanted)
        if not where:
            return f"holds {_describe(error.instance)}; expected {expected}"
        return _one_line(f"has '{where}' {_describe(error.instance)}; expected {expected}")
    if error.validator == "required" and isinstance(error.instance, dict):
        prefix = f"{where}." if where else ""
        missing = [name for name in error.validator_value if name not in error.instance]
        return _one_line("lacks " + ", ".join(f"'{prefix}{name}'" for name in missing))
    return _one_line(f"has '{where}' that breaks the schema: {error.message}" if where else error.message)


def schema_problems(instance: object, schema: dict) -> list[str]:
    """Every way ``instance`` breaks ``schema`` (``number`` meaning a finite number), as readable
    lines, shallowest first (empty when it is valid)."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    # shallowest in the instance first, then in the schema (a missing field before a rule of a branch)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), len(e.schema_path)))
    return list(dict.fromkeys(_readable(e) for e in errors))


def ranks_problems(record: object) -> list[str]:
    """What the schema cannot say about ``test_ranks``: one i2t rank and one t2i list per test image,
    every i2t rank below the number of test captions and every t2i rank below the number of images."""
    ranks = record.get("test_ranks") if isinstance(record, dict) else None
    if not isinstance(ranks, dict) or not isinstance(ranks.get("i2t"), list) or not isinstance(ranks.get("t2i"), list):
        return []  # absent, or already a schema error
    i2t, t2i = ranks["i2t"], ranks["t2i"]
    if len(i2t) != len(t2i):
        return [f"has 'test_ranks' with {len(i2t)} i2t ranks but {len(t2i)} t2i lists; expected one of each per "
                "test image"]
    if not all(isinstance(image_ranks, list) for image_ranks in t2i):
        return []  # a schema error
    captions = sum(len(image_ranks) for image_ranks in t2i)
    if any(is_number(rank) and rank >= captions for rank in i2t):
        return [f"has an i2t rank of at least {captions}, the number of test captions in 'test_ranks'"]
    if any(is_number(rank) and rank >= len(i2t) for image_ranks in t2i for rank in image_ranks):
        return [f"has a t2i rank of at least {len(i2t)}, the number of test images in 'test_ranks'"]
    return []


def validation_errors(record: object) -> list[str]:
    """Every way ``record`` breaks the record schema, as readable lines (empty when it is valid)."""
    return schema_problems(record, record_schema()) + ranks_problems(record)


def record_problem(record: object) -> str | None:
    """The first way ``record`` breaks the schema, in one line (with how many more there are), or None."""
    problems = validation_errors(record)
    if not problems:
        return None
    return problems[0] + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else "")
