"""Regression checks in CI: small grids rerun and checked against committed baselines.

Each grid here has a baseline in ``reports/baselines/<name>.json`` made by the same
command with ``bench check --update``. To refresh them after an intended change, run
``python tests/test_regression.py --update`` and commit the new files with the reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench.cli import main

REPO = Path(__file__).resolve().parent.parent
BASELINES = REPO / "reports" / "baselines"

# name -> (needs the real data?, `bench run` arguments without --out)
GRIDS = {
    "ci-synthetic": (False, ["--models", "cca", "--fractions", "100,50,25,10", "--seeds", "0,1,2", "--profile", "cpu"]),
    # the three neural models, short (2 epochs), so that a change to any of them shows up in CI
    "ci-synthetic-neural": (False, ["--models", "vse,jwae,mine", "--fractions", "100,25", "--seeds", "0,1,2",
                                    "--profile", "cpu", "--set", "epochs=2", "--threads", "1"]),
    "ci-flickr8k": (True, ["--dataset", "flickr8k", "--root", "{shared}/flickr8k", "--models", "cca",
                           "--fractions", "100,25", "--seeds", "0,1,2"]),
}


def _run_args(name: str, shared: Path | None, out: Path) -> list[str]:
    _, args = GRIDS[name]
    return ["run", *[a.replace("{shared}", str(shared)) for a in args], "--out", str(out), "--quiet"]


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_grid_matches_committed_baseline(name, tmp_path, request, capsys):
    needs_data, _ = GRIDS[name]
    shared = request.getfixturevalue("shared_data") if needs_data else None
    out = tmp_path / name
    assert main(_run_args(name, shared, out)) == 0
    status = main(["check", str(out), "--against", str(BASELINES / f"{name}.json")])
    assert status == 0, capsys.readouterr().out


def update(shared: Path, names: list[str]) -> None:
    for name in names:
        out = REPO / "runs" / name
        assert main(_run_args(name, shared, out)) == 0
        assert main(["check", str(out), "--against", str(BASELINES / f"{name}.json"), "--update",
                     "--description", f"CI grid {name}: bench {' '.join(_run_args(name, Path('SHARED'), Path('OUT')))}"]) == 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["--update"] or not set(sys.argv[2:]) <= set(GRIDS):
        sys.exit(f"usage: python tests/test_regression.py --update [GRID ...]   (grids: {', '.join(sorted(GRIDS))})")
    update(Path(os.environ.get("BENCH_SHARED_DATA", REPO.parent / "shared" / "data")), sys.argv[2:] or sorted(GRIDS))
