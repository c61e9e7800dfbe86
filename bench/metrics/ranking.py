"""Recall@K, median and mean rank for image-caption retrieval (the VSE++ protocol).

Both directions are scored on one image-caption score matrix ``S = images @ captions.T``
(dot products; embeddings are expected to be L2-normalised already and are NOT
renormalised here):

* **i2t** (caption retrieval, one query per image): the rank of image ``i`` is the best
  (smallest) 0-based position of any of its own captions in the list of all captions
  sorted by descending score.
* **t2i** (image retrieval, one query per caption): the rank of caption ``j`` is the
  0-based position of its image in the list of all images sorted by descending score.

``R@K`` is 100 x the fraction of queries with rank < K, ``medr = floor(median) + 1`` and
``meanr = mean + 1`` (the +1 turns 0-based ranks into the 1-based ones papers report),
and ``rsum`` is the sum of the six R@K.

**Ties are ranked pessimistically.** A rank counts the *other* items that score at least
as high as the query's own best match::

    i2t rank_i = #{captions j not of image i : S[i, j] >= max over own captions j' of S[i, j']}
    t2i rank_j = #{images k != image(j)     : S[k, j] >= S[image(j), j]}

Without exact ties this is exactly the position the reference ``argsort`` gives; with
ties the reference's answer depends on how ``argsort`` happened to order equal scores,
which can turn a degenerate model into a perfect one. Here constant embeddings (every
score equal) rank behind every other item: R@1 = 0 in both directions, never 100.

The fast path (:func:`ranks`) computes the score matrix a chunk of image rows at a time
(so 5,000 x 25,000 never needs the full 500 MB matrix) and gets both directions from the
same pass by counting instead of sorting. :func:`reference_ranks` is the per-query
``argsort`` loop of the VSE++ ``evaluation.py``, kept as the test oracle and the speed
baseline that :func:`benchmark_speedup` compares against.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, fields
from typing import Iterable

import numpy as np
import torch

from bench.errors import BenchError


@dataclass(frozen=True)
class RetrievalMetrics:
    """The ten numbers of one evaluation; R@K in percent, medr/meanr 1-based."""

    i2t_r1: float
    i2t_r5: float
    i2t_r10: float
    i2t_medr: float
    i2t_meanr: float
    t2i_r1: float
    t2i_r5: float
    t2i_r10: float
    t2i_medr: float
    t2i_meanr: float

    @property
    def rsum(self) -> float:
        return self.i2t_r1 + self.i2t_r5 + self.i2t_r10 + self.t2i_r1 + self.t2i_r5 + self.t2i_r10

    def to_dict(self) -> dict[str, float]:
        out = {name: float(value) for name, value in asdict(self).items()}
        out["rsum"] = float(self.rsum)
        return out

    @classmethod
    def mean(cls, items: Iterable["RetrievalMetrics"]) -> "RetrievalMetrics":
        """Field-wise mean (every field, medr and meanr included, averaged as floats)."""
        items = list(items)
        if not items:
            raise BenchError("cannot average an empty list of retrieval metrics")
        return cls(**{f.name: float(np.mean([getattr(m, f.name) for m in items])) for f in fields(cls)})


# --------------------------------------------------------------------------- inputs


def _as_float_tensor(x, what: str) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.to(device="cpu", dtype=torch.float32)
    if t.ndim != 2:
        raise BenchError(f"{what} must be a 2-D matrix (one row per item), got shape {tuple(t.shape)}")
    return t.contiguous()


def _prepare(image_emb, caption_emb, caption_to_image) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Convert to float32 CPU tensors and int64 caption->image links, or raise BenchError."""
    images = _as_float_tensor(image_emb, "image embeddings")
    captions = _as_float_tensor(caption_emb, "caption embeddings")
    n_images, n_captions = images.shape[0], captions.shape[0]
    if images.shape[1] != captions.shape[1]:
        raise BenchError(
            f"image embeddings have dimension {images.shape[1]} but caption embeddings have "
            f"{captions.shape[1]}; both must live in the same joint space"
        )
    if n_images == 0 or n_captions == 0:
        raise BenchError(f"nothing to evaluate: {n_images} images and {n_captions} captions")
    links = caption_to_image.detach().cpu() if isinstance(caption_to_image, torch.Tensor) else torch.as_tensor(
        np.asarray(caption_to_image)
    )
    if links.dtype.is_floating_point or links.dtype.is_complex or links.dtype == torch.bool:
        raise BenchError(f"caption_to_image must hold integer image rows, got dtype {links.dtype}")
    links = links.to(torch.int64).reshape(-1) if links.ndim <= 1 else links
    if links.ndim != 1 or links.numel() != n_captions:
        raise BenchError(
            f"caption_to_image has {links.numel()} entries (shape {tuple(links.shape)}) but there are "
            f"{n_captions} caption embeddings; give the image row of every caption"
        )
    if int(links.min()) < 0 or int(links.max()) >= n_images:
        raise BenchError(
            f"caption_to_image points outside the {n_images} image rows "
            f"(min {int(links.min())}, max {int(links.max())})"
        )
    per_image = torch.bincount(links, minlength=n_images)
    if int(per_image.min()) < 1:
        missing = int(torch.argmin(per_image))
        raise BenchError(f"image row {missing} has no caption; every image needs at least one to be ranked")
    # A NaN would make every comparison false and silently give rank 0 (a perfect score).
    # One sum per matrix is non-finite if any entry is (or, only for absurdly large
    # values, if the sum overflows; the exact check then decides).
    if not (torch.isfinite(images.sum()) and torch.isfinite(captions.sum())) and not (
        torch.isfinite(images).all() and torch.isfinite(captions).all()
    ):
        raise BenchError("the embeddings contain NaN or infinite values; check the model's output")
    return images, captions, links


# --------------------------------------------------------------------------- fast ranks


@torch.no_grad()
def ranks(image_emb, caption_emb, caption_to_image, *, chunk_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based i2t ranks ``(n_images,)`` and t2i ranks ``(n_captions,)`` from one pass.

    Ties are counted pessimistically (see the module docstring). The score matrix is
    computed ``chunk_size`` image rows at a time, so peak memory is about
    ``chunk_size x n_captions`` floats (100 MB for 1,000 x 25,000).
    """
    if int(chunk_size) < 1:
        raise BenchError(f"chunk_size must be at least 1, got {chunk_size}")
    chunk_size = int(chunk_size)
    images, captions, links = _prepare(image_emb, caption_emb, caption_to_image)
    n_images, n_captions = images.shape[0], captions.shape[0]

    # t2i needs every caption's own score before the first chunk is counted, so it is
    # computed up front, row-wise (O(n_captions x d), cheap next to the matrix product),
    # in slices so no n_captions x d copy of the image rows is made at once. It may differ
    # from the matrix product's value in the last bit; that only matters for scores within
    # float32 rounding of each other, where no float32 implementation (the reference's
    # included) has a meaningful order anyway.
    target = torch.empty(n_captions, dtype=torch.float32)
    for start in range(0, n_captions, 8192):
        stop = min(start + 8192, n_captions)
        target[start:stop] = (images[links[start:stop]] * captions[start:stop]).sum(dim=1)

    # Captions grouped by image, so the captions of image rows [a, b) are one slice.
    by_image = torch.argsort(links, stable=True)
    first = torch.zeros(n_images + 1, dtype=torch.int64)
    first[1:] = torch.cumsum(torch.bincount(links, minlength=n_images), dim=0)

    i2t = torch.empty(n_images, dtype=torch.int64)
    t2i = torch.zeros(n_captions, dtype=torch.int32)
    for a in range(0, n_images, chunk_size):
        b = min(a + chunk_size, n_images)
        scores = images[a:b] @ captions.T  # (b - a, n_captions)
        own_cols = by_image[first[a] : first[b]]
        own_rows = links[own_cols] - a

        # i2t: the best own-caption score of each image, taken from this same matrix so
        # the comparison below is between numbers computed the same way.
        best_own = torch.full((b - a,), -math.inf).scatter_reduce_(
            0, own_rows, scores[own_rows, own_cols], reduce="amax"
        )
        # Own pairs must not count against themselves in either direction; -inf is
        # never >= a finite threshold.
        scores[own_rows, own_cols] = -math.inf
        # (int32 sums: counts never exceed n_captions, and they measured faster than int64.)
        i2t[a:b] = (scores >= best_own[:, None]).sum(dim=1, dtype=torch.int32)
        # t2i: how many images of this chunk (other than its own) beat or tie each caption.
        t2i += (scores >= target[None, :]).sum(dim=0, dtype=torch.int32)
    return i2t, t2i.to(torch.int64)


def rank_i2t(image_emb, caption_emb, caption_to_image, *, chunk_size: int = 1000) -> torch.Tensor:
    """0-based caption-retrieval rank of every image, shape ``(n_images,)``."""
    return ranks(image_emb, caption_emb, caption_to_image, chunk_size=chunk_size)[0]


def rank_t2i(image_emb, caption_emb, caption_to_image, *, chunk_size: int = 1000) -> torch.Tensor:
    """0-based image-retrieval rank of every caption, shape ``(n_captions,)``."""
    return ranks(image_emb, caption_emb, caption_to_image, chunk_size=chunk_size)[1]


# --------------------------------------------------------------------------- metrics


def _summary(rank: np.ndarray) -> tuple[float, float, float, float, float]:
    rank = np.asarray(rank, dtype=np.float64).reshape(-1)
    if rank.size == 0:
        raise BenchError("no ranks to summarise")
    recall = [100.0 * float(np.mean(rank < k)) for k in (1, 5, 10)]
    medr = float(np.floor(np.median(rank)) + 1)
    meanr = float(rank.mean() + 1)
    return recall[0], recall[1], recall[2], medr, meanr


def metrics_from_ranks(i2t_ranks, t2i_ranks) -> RetrievalMetrics:
    """R@1/5/10 (percent), medr and meanr of both directions from 0-based ranks."""
    to_np = lambda r: r.detach().cpu().numpy() if isinstance(r, torch.Tensor) else np.asarray(r)  # noqa: E731
    i = _summary(to_np(i2t_ranks))
    t = _summary(to_np(t2i_ranks))
    return RetrievalMetrics(*i, *t)


def evaluate(image_emb, caption_emb, caption_to_image, *, chunk_size: int = 1000) -> RetrievalMetrics:
    """All metrics of one image set against its captions (the "full" protocol)."""
    return metrics_from_ranks(*ranks(image_emb, caption_emb, caption_to_image, chunk_size=chunk_size))


# --------------------------------------------------------------------------- reference


def reference_ranks(image_emb, caption_emb, captions_per_image: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The VSE++ ``evaluation.py`` ALGORITHM: one ``argsort`` per query in a Python loop.

    VSE layout only: captions ``k*i .. k*i+k-1`` belong to image ``i``. Returns 0-based
    ``(i2t, t2i)`` ranks as int64 arrays. Ties go wherever ``argsort`` puts them, so only
    tie-free inputs are guaranteed to match :func:`ranks`. Deliberately slow: it is the
    baseline of :func:`benchmark_speedup` and an oracle for the tests.
    """
    images = image_emb.detach().cpu().numpy() if isinstance(image_emb, torch.Tensor) else np.asarray(image_emb)
    captions = caption_emb.detach().cpu().numpy() if isinstance(caption_emb, torch.Tensor) else np.asarray(caption_emb)
    images = images.astype(np.float32, copy=False)
    captions = captions.astype(np.float32, copy=False)
    k = int(captions_per_image)
    n_images = images.shape[0]
    if captions.shape[0] != k * n_images or images.shape[1] != captions.shape[1]:
        raise BenchError(
            f"reference_ranks needs the VSE layout ({k} captions per image, same dimension); got "
            f"images {images.shape} and captions {captions.shape}"
        )

    i2t = np.zeros(n_images, dtype=np.int64)
    for i in range(n_images):
        scores = np.dot(images[i], captions.T)
        order = np.argsort(scores)[::-1]
        # Best position among the image's own captions.
        i2t[i] = min(np.where(order == j)[0][0] for j in range(k * i, k * i + k))

    t2i = np.zeros(k * n_images, dtype=np.int64)
    for i in range(n_images):
        scores = np.dot(captions[k * i : k * i + k], images.T)  # (k, n_images)
        for q in range(k):
            order = np.argsort(scores[q])[::-1]
            t2i[k * i + q] = np.where(order == i)[0][0]
    return i2t, t2i


def random_embeddings(
    n_images: int, captions_per_image: int = 5, dim: int = 1024, seed: int = 0, signal: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded L2-normalised float32 embeddings in the VSE layout, for tests and benchmarks.

    Each caption is its image's direction times ``signal`` plus an independent random
    unit vector, renormalised, so ranks spread from 0 upwards (as with a real, imperfect
    model) instead of all being 0 or all being uniform.
    """
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_images, dim), dtype=np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    noise = rng.standard_normal((n_images * captions_per_image, dim), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    captions = noise + np.float32(signal) * np.repeat(images, captions_per_image, axis=0)
    captions /= np.linalg.norm(captions, axis=1, keepdims=True)
    caption_to_image = np.repeat(np.arange(n_images, dtype=np.int64), captions_per_image)
    return images, captions, caption_to_image


def benchmark_speedup(
    n_images: int = 5000, captions_per_image: int = 5, dim: int = 1024, seed: int = 0, *, repeats: int = 3
) -> dict:
    """Time :func:`reference_ranks` (once) against :func:`ranks` (best of ``repeats``).

    Returns the timings, the speed-up, whether both give identical ranks, and the number
    of ranks that differ (float rounding of near-ties is the only expected cause). The
    load average is included because on shared cores it moves timings several-fold.
    """
    images, captions, links = random_embeddings(n_images, captions_per_image, dim, seed)
    ranks(images, captions, links)  # warm-up: first-touch allocations and BLAS start-up

    start = time.perf_counter()
    ref_i2t, ref_t2i = reference_ranks(images, captions, captions_per_image)
    reference_s = time.perf_counter() - start

    fast_runs = []
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        fast_i2t, fast_t2i = ranks(images, captions, links)
        fast_runs.append(time.perf_counter() - start)
    fast_s = min(fast_runs)

    i2t_diff = int(np.count_nonzero(fast_i2t.numpy() != ref_i2t))
    t2i_diff = int(np.count_nonzero(fast_t2i.numpy() != ref_t2i))
    return {
        "n_images": n_images,
        "n_captions": n_images * captions_per_image,
        "dim": dim,
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "reference_s": reference_s,
        "fast_s": fast_s,
        "fast_runs_s": fast_runs,
        "speedup": reference_s / fast_s,
        "ranks_identical": i2t_diff == 0 and t2i_diff == 0,
        "i2t_rank_mismatches": i2t_diff,
        "t2i_rank_mismatches": t2i_diff,
        "metrics": metrics_from_ranks(fast_i2t, fast_t2i).to_dict(),
        "reference_metrics": metrics_from_ranks(ref_i2t, ref_t2i).to_dict(),
    }
