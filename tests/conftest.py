"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests train tiny models: one intra-op thread is several times faster than two
    fighting over shared cores, and it keeps float reductions in one order."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pins_for(platforms: dict):
    """``(key, pins)`` of this machine's numeric platform in ``platforms`` (``bench.run.provenance.
    numeric_platform``: torch's capability and numpy's BLAS core), else ``(key, None)``. Pins from before
    the BLAS core was part of the key are keyed by torch's capability alone; they hold where OpenBLAS
    runs the core it detects, not where ``OPENBLAS_CORETYPE`` tells it to use another one (an AVX-512
    machine told to run Haswell kernels sums numpy's products as an AVX2 machine does)."""
    from bench.run.provenance import cpu_capability, numeric_platform

    key = numeric_platform()
    if key in platforms:
        return key, platforms[key]
    if not os.environ.get("OPENBLAS_CORETYPE") and cpu_capability() in platforms:
        return key, platforms[cpu_capability()]
    return key, None


def skip_unpinned(platform: str, what: str, how: str):
    """Skip a bit-exact check on a numeric platform (``bench.run.provenance.cpu_capability``) that has no
    pins yet, saying how to add them."""
    pytest.skip(f"{what} has no pins for this numeric platform ({platform}); bit-exact results differ "
                f"between CPU kernels. Add them on this machine with `{how}` after checking the code is unchanged")


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


@pytest.fixture(scope="session")
def small_synthetic():
    """A small synthetic dataset (fast to train on) and split files for it in a temporary folder."""
    from bench.data.synthetic import generate

    return generate(seed=0, n_train=240, n_dev=60, n_test=60, feature_dim=64, preset="easy")


@pytest.fixture()
def small_splits(tmp_path, small_synthetic):
    """Split files for ``small_synthetic`` at 100/50/25/10 %, seeds 0 and 1, both policies."""
    from bench.splits import make_split, write_split

    folder = tmp_path / "splits"
    for policy in ("overlap", "disjoint"):
        for seed in (0, 1):
            for fraction in (100, 50, 25, 10):
                write_split(make_split(small_synthetic, fraction, seed, policy), folder)
    return folder


@pytest.fixture()
def cache_dir(tmp_path_factory, monkeypatch):
    """Keep the sentence-embedding cache out of the user's home during tests, shared across tests."""
    folder = tmp_path_factory.getbasetemp() / "bench-cache"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(folder))
    return folder


def fake_sentence_vectors(captions, cache_dir=None, **_):
    """A stand-in for MiniLM: a normalised sum of per-word random vectors (deterministic)."""
    import hashlib

    import numpy as np

    from bench.nn.sentences import DIMENSION

    out = np.zeros((len(captions), DIMENSION), dtype=np.float32)
    for row, caption in enumerate(captions):
        for word in caption.lower().split():
            seed = int.from_bytes(hashlib.sha1(word.encode()).digest()[:4], "little")
            out[row] += np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)


@pytest.fixture()
def fake_minilm(monkeypatch):
    """MiniLM replaced by :func:`fake_sentence_vectors`, so text-encoder tests need no model load."""
    import bench.nn.sentences as sentences

    monkeypatch.setattr(sentences, "encode_sentences", fake_sentence_vectors)
