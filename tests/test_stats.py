"""The bootstrap interval on Δ rsum (bench/stats.py), on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import metrics_from_ranks, random_embeddings, ranks
from bench.stats import RunRanks, bootstrap_delta, ranks_payload


def _run(i2t, t2i_per_image):
    return RunRanks(np.asarray(i2t), [np.asarray(r) for r in t2i_per_image])


def test_rsum_from_kept_ranks_equals_the_metric():
    images, captions, links = random_embeddings(n_images=60, captions_per_image=5, dim=16, seed=3)
    i2t, t2i = ranks(images, captions, links)
    run = RunRanks.from_record({"test_ranks": ranks_payload(i2t, t2i, links)})
    assert run.rsum() == pytest.approx(metrics_from_ranks(i2t, t2i).rsum)


def test_a_row_against_itself_is_exactly_zero():
    rng = np.random.default_rng(0)
    run = _run(rng.integers(0, 30, 50), [rng.integers(0, 30, 5) for _ in range(50)])
    interval = bootstrap_delta([run], [run])
    assert interval["delta"] == interval["low"] == interval["high"] == 0 and not interval["excludes_zero"]


def test_perfect_against_hopeless_is_600_whatever_is_drawn():
    perfect = _run(np.zeros(40, int), [np.zeros(5, int)] * 40)
    hopeless = _run(np.full(40, 99), [np.full(5, 99)] * 40)
    interval = bootstrap_delta([perfect, perfect], [hopeless])
    assert (interval["delta"], interval["low"], interval["high"]) == (600, 600, 600) and interval["excludes_zero"]


def test_it_is_reproducible_and_seeded():
    rng = np.random.default_rng(1)
    a = [_run(rng.integers(0, 20, 80), [rng.integers(0, 20, 5) for _ in range(80)]) for _ in range(3)]
    b = [_run(rng.integers(0, 25, 80), [rng.integers(0, 25, 5) for _ in range(80)]) for _ in range(3)]
    assert bootstrap_delta(a, b) == bootstrap_delta(a, b)
    assert bootstrap_delta(a, b, seed=1) != bootstrap_delta(a, b)


def test_two_equal_models_get_an_interval_that_covers_zero_about_95_percent_of_the_time():
    """Both rows draw their ranks from one distribution: the true Δ is 0, so a 95 % interval should
    exclude 0 in about 5 % of repetitions (checked loosely: between 1 and 12 %)."""
    rng = np.random.default_rng(7)
    excluded, repetitions = 0, 200
    for _ in range(repetitions):
        rows = []
        for _ in range(2):
            rows.append([_run(rng.geometric(0.15, 200) - 1, [rng.geometric(0.12, 5) - 1 for _ in range(200)])])
        excluded += bootstrap_delta(rows[0], rows[1], resamples=400, seed=int(rng.integers(1 << 30)))["excludes_zero"]
    assert 0.01 <= excluded / repetitions <= 0.12
