"""Validate run records against ``bench/schemas/record.schema.json`` (documented in reports/SCHEMA.md)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "record.schema.json"


@lru_cache(maxsize=1)
def record_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def validation_errors(record: dict) -> list[str]:
    """Every way ``record`` breaks the schema, as readable lines (empty when it is valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(record_schema())
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(record)]
