"""The committed results are what the README says they are: every record under ``reports/**/records``
validates against the record schema and was made from a clean commit, so each number traces to code
that is in the history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.schema import validation_errors

REPO = Path(__file__).resolve().parents[1]
RECORDS = sorted(REPO.glob("reports/**/records/*.json"))


def test_there_are_committed_records():
    assert len(RECORDS) > 100


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_committed_record_is_valid_and_clean(path):
    record = json.loads(path.read_text())
    assert validation_errors(record) == []
    git = record["provenance"]["git"]
    assert git["dirty"] is False, f"{path.name} was made from a dirty tree"
    assert len(git["commit"]) == 40
