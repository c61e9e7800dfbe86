"""The committed results are what the README says they are: every record under ``reports/**/records``
validates against the record schema and was made from a clean commit, so each number traces to code
that is in the history; and each README table line that quotes a test rsum with its commit matches one
of those records."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from bench.run.record import validation_errors

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


def _report_table_rows():
    """Each line of a README table under reports/ that quotes a test rsum and the commit of this
    repository it came from: (README, line number, header, cells). Lines whose commit is not ours (the
    VSE++ reference code's) are left out."""
    import re

    rows = []
    for readme in sorted(REPO.glob("reports/**/README.md")):
        header = None
        for number, line in enumerate(readme.read_text().splitlines(), 1):
            if not line.startswith("|"):
                header = None
                continue
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif not set("".join(cells)) <= set("-: ") and "test rsum" in header and "commit" in header:
                commit = dict(zip(header, cells))["commit"].strip("*` ")
                if re.fullmatch(r"[0-9a-f]{7,40}", commit):
                    rows.append((readme, number, header, cells))
    return rows


TABLE_ROWS = _report_table_rows()


@functools.cache
def _runs_of_report(report: str) -> list[tuple[str, float, int | None, float | None]]:
    """(commit, test rsum, epoch kept, its dev rsum) of every committed record of one report folder,
    its sub-folders included, read as `bench report` reads them; once for all the README lines that
    quote them."""
    from bench.report import load_records, records_frame

    frame = records_frame(load_records(sorted((REPO / "reports" / report).glob("**/records/*.json"))))
    return [(run["commit"], run["rsum"], run["best_epoch"], dict(run["_curve"]).get(run["best_epoch"]))
            for _, run in frame.iterrows()]


def test_report_tables_quote_numbers():
    assert len(TABLE_ROWS) > 30


@pytest.mark.parametrize("readme,number,header,cells", TABLE_ROWS,
                         ids=[f"{r.parent.relative_to(REPO / 'reports')}:{n}" for r, n, _, _ in TABLE_ROWS])
def test_a_number_quoted_with_its_commit_is_a_committed_record(readme, number, header, cells):
    """A README line that gives a test rsum (and a best dev rsum and epoch) with the commit it came from
    matches a committed record of that report (its folder or a sibling's): nothing is typed in that no
    record holds."""
    import re

    row = dict(zip(header, cells))
    commit = row["commit"].strip("*` ")

    def numbers(text):
        return [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text.replace("*", "").replace(",", ""))]

    test = numbers(row["test rsum"])[0]
    dev = epoch = None
    for name, cell in row.items():
        if name == "dev rsum":
            dev = numbers(cell)[0]
        elif name == "best dev epoch":
            epoch = numbers(cell)[0]
        elif name.startswith("best dev") and "(" in cell and re.match(r"\**\d", cell):
            dev, epoch = numbers(cell)[:2]
    report = readme.relative_to(REPO / "reports").parts[0]
    candidates = [run for run in _runs_of_report(report) if run[0].startswith(commit)]
    for _, rsum, kept, kept_dev in candidates:
        if abs(rsum - test) <= 0.051 and (epoch is None or kept == epoch) and \
                (dev is None or (kept_dev is not None and abs(kept_dev - dev) <= 0.051)):
            return
    found = [(round(rsum, 1), kept, None if kept_dev is None else round(kept_dev, 1))
             for _, rsum, kept, kept_dev in candidates]
    pytest.fail(f"{readme.relative_to(REPO)}:{number} quotes test {test}, dev {dev}, epoch {epoch} at {commit}; "
                f"the records of {report} at that commit have (test, epoch, dev) {found}")
