"""One cell's run record: the typed :class:`RunRecord`, its schema check, and reading records back.

A record is the JSON file ``bench run`` writes per cell under ``<out>/records/`` (documented in
reports/SCHEMA.md, described by ``bench/schemas/record.schema.json``). :class:`RunRecord` holds its
fields; :meth:`RunRecord.to_json` gives the dict that is written, key for key as the runner always
wrote it, and :meth:`RunRecord.from_json` reads one back. The schema rules themselves live in
:mod:`bench.schema` (one implementation; ``bench report`` reads records through the same rules);
:meth:`RunRecord.validate` applies them.

:data:`METRICS` (from :mod:`bench.schema`, the one list) names the headline metrics a record's
``metrics`` holds: the six Recall@K and their sum.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import __version__
from bench.errors import BenchError
from bench.io import atomic_write_json
from bench.run.cell import cell_identity
from bench.schema import validation_errors

SCHEMA_VERSION = 1


@dataclass
class RunRecord:
    """The fields of one record (:attr:`KEYS` gives the order of the written dict). A field left at
    None is absent from the file (a failed cell has no metrics; a record from before ``model_revision`` has none).
    ``extra`` keeps keys this class does not know (from a newer or hand-edited file) as they were."""

    cell: dict | None = None
    name: str | None = None
    config: dict | None = None
    config_hash: str | None = None
    model_revision: int | None = None
    uses_unpaired: bool | None = None
    provenance: dict | None = None
    status: str = "failed"
    schema_version: int = SCHEMA_VERSION
    bench_version: str = __version__
    data: dict | None = None
    training: dict | None = None
    model: dict | None = None
    metrics_by_protocol: dict | None = None
    protocol: str | None = None
    metrics: dict | None = None
    test_ranks: dict | None = None
    error: dict | None = None
    timing: dict | None = None
    extra: dict = field(default_factory=dict)

    # The order of the keys in the written dict (the file itself has them sorted).
    KEYS = ("schema_version", "bench_version", "status", "cell", "name", "config", "config_hash", "model_revision",
            "uses_unpaired", "provenance", "data", "training", "model", "metrics_by_protocol", "protocol", "metrics",
            "test_ranks", "error", "timing")

    def to_json(self) -> dict[str, Any]:
        """The record as the dict written to its file."""
        out = {key: getattr(self, key) for key in self.KEYS if getattr(self, key) is not None}
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunRecord":
        """A record from its dict (as read from a file); unknown keys go to ``extra``. Not checked:
        call :meth:`validate` for that."""
        if not isinstance(data, dict):
            raise BenchError(f"a run record is a JSON object, not {type(data).__name__}")
        known = {key: data[key] for key in cls.KEYS if key in data}
        return cls(**known, extra={key: value for key, value in data.items() if key not in cls.KEYS})

    def validate(self) -> list[str]:
        """Every way this record breaks the record schema, as readable lines (empty when it is valid)."""
        return validation_errors(self.to_json())

    def record_error(self, error: BaseException, traceback_text: str) -> None:
        """Mark the record failed with ``error`` (the grid records a failed cell and goes on)."""
        self.status = "failed"
        self.error = {"type": type(error).__name__, "message": str(error), "traceback": traceback_text}


def write_record(path: Path, record: RunRecord | dict) -> None:
    """Write a record atomically, after checking it against the schema. A record that breaks the
    schema is written as a failure that says how, never as a result."""
    data = record.to_json() if isinstance(record, RunRecord) else record
    problems = validation_errors(data)
    if problems:
        data = {**data, "status": "failed",
                "error": {"type": "SchemaError", "message": "record breaks the schema: " + "; ".join(problems[:5]),
                          "traceback": ""}}
        for key in ("metrics", "metrics_by_protocol", "protocol"):
            data.pop(key, None)
        if validation_errors(data):
            raise BenchError(f"record {path.name} breaks the schema: {'; '.join(problems[:5])}")
    atomic_write_json(path, data)


def read_record(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it can't be read or is not an object. Unchecked: for
    deciding whether a cell is finished (see :func:`record_identity`), not for reporting its numbers
    (``bench.report.read_record`` checks the schema)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def record_identity(record: dict) -> str | None:
    """The identity of the cell a finished record was made for (None when it lacks the fields)."""
    try:
        data = record["data"]
        return cell_identity(record["config_hash"], data["content_sha256"], data["split_sha256"])
    except (KeyError, TypeError):
        return None

