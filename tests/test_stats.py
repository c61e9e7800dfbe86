"""The bootstrap interval on Δ rsum (bench/metrics/stats.py), on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import metrics_from_ranks, random_embeddings, ranks
from bench.metrics.stats import RunRanks, bootstrap_delta, ranks_payload


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


def _runs_by_split(rank_by_split: dict[str, int]) -> list[RunRanks]:
    """One run per split in which every query has the same rank (0: a hit at every K; 5: at K=10 only)."""
    return [RunRanks(np.full(50, rank, dtype=np.int64), [np.full(5, rank, dtype=np.int64)] * 50, split)
            for split, rank in rank_by_split.items()]


def test_runs_on_the_same_splits_are_drawn_as_pairs():
    """Split "hard" costs both rows 400 rsum; the first row is 200 better on each split. Drawn as
    pairs, every resample sees Δ = +200; drawn independently, a resample can set the first row's hard
    split against the second row's easy one (Δ = −200)."""
    first = _runs_by_split({"easy": 0, "hard": 5})  # rsum 600 and 200
    second = _runs_by_split({"easy": 1, "hard": 20})  # rsum 400 and 0
    paired = bootstrap_delta(first, second)
    assert paired["paired_splits"] and paired["delta"] == paired["low"] == paired["high"] == 200
    unsplit = [RunRanks(r.i2t, r.t2i) for r in second]  # the same runs, splits unknown
    independent = bootstrap_delta(first, unsplit)
    assert not independent["paired_splits"] and independent["low"] < 0


def test_a_row_against_itself_over_several_splits_is_exactly_zero():
    rng = np.random.default_rng(3)
    runs = [RunRanks(rng.integers(0, 30, 50), [rng.integers(0, 30, 5) for _ in range(50)], f"split{k}")
            for k in range(3)]
    interval = bootstrap_delta(runs, list(reversed(runs)))
    assert interval["paired_splits"] and interval["delta"] == interval["low"] == interval["high"] == 0


def test_rows_on_different_splits_are_drawn_independently():
    rng = np.random.default_rng(4)
    make = lambda split: RunRanks(rng.integers(0, 30, 50), [rng.integers(0, 30, 5) for _ in range(50)], split)  # noqa: E731
    assert not bootstrap_delta([make("a"), make("b")], [make("a"), make("c")])["paired_splits"]
    assert not bootstrap_delta([make("a"), make("a")], [make("a"), make("a")])["paired_splits"]
