"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_root() -> Path:
    """The real datasets: ``$BENCH_SHARED_DATA``, else ``../shared/data`` beside the repo."""
    env = os.environ.get("BENCH_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real data; tests using it carry ``@pytest.mark.shared_data``.

    Missing data skips the test on a developer machine but fails it in CI (``CI=true``),
    where a silently skipped real-data test would hide a broken setup.
    """
    root = shared_data_root()
    if not root.is_dir():
        message = f"real data not found at {root} (set BENCH_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root
