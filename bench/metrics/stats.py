"""Confidence intervals on a difference in rsum: a paired bootstrap over test images, with seeds.

A record keeps the test ranks of its run (``test_ranks``): for every test image its caption
retrieval rank, and the image retrieval ranks of its captions. rsum is a mean over images (i2t)
plus a mean over captions (t2i), so it can be recomputed for any multiset of test images.

:func:`bootstrap_delta` draws, ``resamples`` times and from one seeded generator:

1. test images with replacement, each with all its captions; the *same* draw is applied to both
   rows (the comparison is paired: both models answered the same queries);
2. the runs (seeds) with replacement, so the spread between training seeds is part of the
   interval. When both rows ran on the same split files (one run per split on each side, as a grid
   with the same seeds gives), the runs are drawn as pairs: one draw of splits, applied to both rows.
   A split that is harder for every model then moves both sides together instead of widening the
   interval, and a row against itself is exactly 0. Otherwise each row's runs are drawn
   independently.

Each draw gives Δ = mean rsum of the first row's drawn runs − the same for the other row, on the
drawn images. The interval is the 2.5th and 97.5th percentile of Δ (percentile bootstrap). The
ranks stay those computed against the full test gallery; only which queries count changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.errors import BenchError

KS = (1, 5, 10)


@dataclass(frozen=True)
class RunRanks:
    """One run's test ranks: ``i2t[i]`` of image i, ``t2i[i]`` the ranks of image i's captions."""

    i2t: np.ndarray  # (n_images,) int
    t2i: list[np.ndarray]  # per image, its captions' ranks
    split: str | None = None  # checksum of the run's split file: runs on one split pair up across rows

    @classmethod
    def from_record(cls, record: dict) -> "RunRanks | None":
        ranks = record.get("test_ranks")
        if not isinstance(ranks, dict):
            return None
        split = (record.get("data") or {}).get("split_sha256")
        return cls(np.asarray(ranks["i2t"], dtype=np.int64), [np.asarray(r, dtype=np.int64) for r in ranks["t2i"]],
                   split)

    def per_image(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per image: i2t hits summed over K (0-3), t2i hits of its captions summed over K, its caption count."""
        image_hits = sum((self.i2t < k).astype(np.float64) for k in KS)
        caption_hits = np.array([sum(float((r < k).sum()) for k in KS) for r in self.t2i])
        counts = np.array([len(r) for r in self.t2i], dtype=np.float64)
        return image_hits, caption_hits, counts

    def rsum(self) -> float:
        image_hits, caption_hits, counts = self.per_image()
        return 100.0 * (image_hits.mean() + caption_hits.sum() / counts.sum())


def ranks_payload(i2t: np.ndarray, t2i: np.ndarray, caption_to_image: np.ndarray) -> dict:
    """The ``test_ranks`` field of a record, from 0-based ranks and the caption -> image links."""
    i2t, t2i, links = (np.asarray(a, dtype=np.int64) for a in (i2t, t2i, caption_to_image))
    by_image: list[list[int]] = [[] for _ in range(len(i2t))]
    for caption, image in enumerate(links):
        by_image[image].append(int(t2i[caption]))
    return {"protocol": "full", "i2t": i2t.tolist(), "t2i": by_image}


def _resampled_rsums(runs: list[RunRanks], weights: np.ndarray) -> np.ndarray:
    """rsum of every run under every image weighting: (resamples, runs)."""
    out = np.empty((weights.shape[0], len(runs)))
    n = weights.shape[1]
    for j, run in enumerate(runs):
        image_hits, caption_hits, counts = run.per_image()
        if len(image_hits) != n:
            raise BenchError(f"runs scored on different test sets ({len(image_hits)} vs {n} images)")
        out[:, j] = 100.0 * (weights @ image_hits / n + (weights @ caption_hits) / (weights @ counts))
    return out


def split_pairing(first: list[RunRanks], second: list[RunRanks]) -> tuple[np.ndarray, np.ndarray] | None:
    """When each row has exactly one run on each of the same splits: for every split (in sorted order),
    the index of its run in ``first`` and in ``second``. Otherwise None."""
    index_a = {run.split: i for i, run in enumerate(first)}
    index_b = {run.split: i for i, run in enumerate(second)}
    for index, runs in ((index_a, first), (index_b, second)):
        if None in index or len(index) != len(runs):
            return None
    if index_a.keys() != index_b.keys():
        return None
    splits = sorted(index_a)
    return np.array([index_a[s] for s in splits]), np.array([index_b[s] for s in splits])


def bootstrap_delta(first: list[RunRanks], second: list[RunRanks], resamples: int = 1000, seed: int = 0,
                    level: float = 0.95) -> dict:
    """Δ rsum (first − second, means over runs) and its percentile-bootstrap interval (see the module)."""
    if not first or not second:
        raise BenchError("a bootstrap needs at least one run with test ranks on each side")
    n = len(first[0].i2t)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, n, size=(resamples, n))
    weights = np.zeros((resamples, n))
    np.add.at(weights, (np.repeat(np.arange(resamples), n), images.ravel()), 1.0)
    a, b = _resampled_rsums(first, weights), _resampled_rsums(second, weights)
    pairing = split_pairing(first, second)
    if pairing is not None:  # one draw of splits for both rows
        pick = rng.integers(0, len(pairing[0]), size=(resamples, len(pairing[0])))
        pick_a, pick_b = pairing[0][pick], pairing[1][pick]
    else:
        pick_a = rng.integers(0, len(first), size=(resamples, len(first)))
        pick_b = rng.integers(0, len(second), size=(resamples, len(second)))
    rows = np.arange(resamples)[:, None]
    deltas = a[rows, pick_a].mean(axis=1) - b[rows, pick_b].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(deltas, [tail, 100.0 - tail])
    point = float(np.mean([r.rsum() for r in first]) - np.mean([r.rsum() for r in second]))
    return {"delta": point, "low": float(low), "high": float(high), "excludes_zero": bool(low > 0 or high < 0),
            "resamples": resamples, "runs": (len(first), len(second)), "paired_splits": pairing is not None}
