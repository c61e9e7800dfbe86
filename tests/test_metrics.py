"""Retrieval metrics: the fast chunked ranks against slow, obviously correct oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.metrics import (
    RetrievalMetrics,
    evaluate,
    evaluate_protocol,
    metrics_from_ranks,
    random_embeddings,
    rank_i2t,
    rank_t2i,
    ranks,
    reference_ranks,
)


# --------------------------------------------------------------------------- oracles


def loop_ranks(images: np.ndarray, captions: np.ndarray, caption_to_image: np.ndarray) -> tuple[list, list]:
    """The tie rule written out literally, with Python loops and Python floats.

    i2t rank of image i: captions of OTHER images scoring >= i's best own-caption score.
    t2i rank of caption j: OTHER images scoring >= the score of j's own image.
    """
    n_images, n_captions = len(images), len(captions)
    img = images.tolist()
    cap = captions.tolist()
    owner = [int(x) for x in caption_to_image]
    score = [[sum(a * b for a, b in zip(img[i], cap[j])) for j in range(n_captions)] for i in range(n_images)]

    i2t = []
    for i in range(n_images):
        best = max(score[i][j] for j in range(n_captions) if owner[j] == i)
        i2t.append(sum(1 for j in range(n_captions) if owner[j] != i and score[i][j] >= best))
    t2i = []
    for j in range(n_captions):
        own = score[owner[j]][j]
        t2i.append(sum(1 for k in range(n_images) if k != owner[j] and score[k][j] >= own))
    return i2t, t2i


def loop_metrics(i2t: list, t2i: list) -> dict:
    def summary(r):
        r = sorted(r)
        n = len(r)
        median = r[n // 2] if n % 2 else (r[n // 2 - 1] + r[n // 2]) / 2
        return [100 * sum(x < k for x in r) / n for k in (1, 5, 10)] + [math.floor(median) + 1, sum(r) / n + 1]

    names = ["r1", "r5", "r10", "medr", "meanr"]
    out = {f"i2t_{k}": v for k, v in zip(names, summary(i2t))}
    out.update({f"t2i_{k}": v for k, v in zip(names, summary(t2i))})
    return out


def variable_split(n_images: int, dim: int, seed: int, max_per_image: int = 7, integer: bool = False):
    """Random embeddings, 1..max_per_image captions per image (1 and max always present), shuffled captions."""
    rng = np.random.default_rng(seed)
    per_image = rng.integers(1, max_per_image + 1, size=n_images)
    per_image[0], per_image[-1] = 1, max_per_image
    links = np.repeat(np.arange(n_images), per_image)
    rng.shuffle(links)
    if integer:
        # Small integers: every dot product is exact in float32 and float64, and equal
        # scores are common, so the tie rule is compared exactly.
        images = rng.integers(-2, 3, size=(n_images, dim)).astype(np.float32)
        captions = rng.integers(-2, 3, size=(len(links), dim)).astype(np.float32)
    else:
        images = rng.standard_normal((n_images, dim)).astype(np.float32)
        images /= np.linalg.norm(images, axis=1, keepdims=True)
        captions = rng.standard_normal((len(links), dim)).astype(np.float32) + images[links]
        captions /= np.linalg.norm(captions, axis=1, keepdims=True)
    return images, captions, links


# --------------------------------------------------------------------------- against the oracles


@pytest.mark.parametrize("n_images,dim,seed", [(1, 4, 0), (2, 3, 1), (9, 8, 2), (25, 16, 3), (40, 6, 4)])
def test_ranks_match_loop_oracle_on_random_embeddings(n_images, dim, seed):
    images, captions, links = variable_split(n_images, dim, seed)
    i2t, t2i = ranks(images, captions, links, chunk_size=4)
    expected_i2t, expected_t2i = loop_ranks(images, captions, links)
    assert i2t.tolist() == expected_i2t
    assert t2i.tolist() == expected_t2i
    expected = loop_metrics(expected_i2t, expected_t2i)
    expected["rsum"] = sum(expected[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    assert evaluate(images, captions, links, chunk_size=7).to_dict() == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranks_match_loop_oracle_with_many_exact_ties(seed):
    images, captions, links = variable_split(20, 3, seed, integer=True)
    i2t, t2i = ranks(images, captions, links, chunk_size=6)
    expected_i2t, expected_t2i = loop_ranks(images, captions, links)
    assert i2t.tolist() == expected_i2t
    assert t2i.tolist() == expected_t2i


def test_ranks_match_reference_algorithm_in_vse_layout():
    images, captions, links = random_embeddings(60, 5, 32, seed=7, signal=0.3)
    ref_i2t, ref_t2i = reference_ranks(images, captions, 5)
    i2t, t2i = ranks(images, captions, links, chunk_size=16)
    np.testing.assert_array_equal(i2t.numpy(), ref_i2t)
    np.testing.assert_array_equal(t2i.numpy(), ref_t2i)
    # The ranks spread out, so the comparison is not trivially all zeros.
    assert 0 < (ref_t2i == 0).mean() < 1
    assert metrics_from_ranks(ref_i2t, ref_t2i) == evaluate(images, captions, links)


def test_reference_ranks_accepts_other_caption_counts_and_tensors():
    images, captions, links = random_embeddings(12, 3, 8, seed=3)
    ref = reference_ranks(torch.from_numpy(images), torch.from_numpy(captions), captions_per_image=3)
    fast = ranks(images, captions, links)
    np.testing.assert_array_equal(ref[0], fast[0].numpy())
    np.testing.assert_array_equal(ref[1], fast[1].numpy())
    with pytest.raises(BenchError, match="VSE layout"):
        reference_ranks(images, captions, captions_per_image=5)


# --------------------------------------------------------------------------- hand-computed


def test_tiny_example_by_hand():
    # Scores (rows images, columns captions):
    #   image 0: [1.0, 0.0, 0.6, 0.8]   own captions 0, 1
    #   image 1: [0.0, 1.0, 0.8, 0.6]   own captions 2, 3
    images = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    captions = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]], dtype=np.float32)
    links = np.array([0, 0, 1, 1])
    i2t, t2i = ranks(images, captions, links)
    # image 0: best own 1.0, nothing else reaches it -> 0. image 1: best own 0.8, caption 1
    # (1.0) beats it -> 1.
    assert i2t.tolist() == [0, 1]
    # caption 0: 1.0 vs 0.0 -> 0; caption 1: own 0.0 vs 1.0 -> 1; caption 2: own 0.8 vs 0.6
    # -> 0; caption 3: own 0.6 vs 0.8 -> 1.
    assert t2i.tolist() == [0, 1, 0, 1]
    m = evaluate(images, captions, links)
    assert (m.i2t_r1, m.i2t_r5, m.i2t_r10, m.i2t_medr, m.i2t_meanr) == (50.0, 100.0, 100.0, 1.0, 1.5)
    assert (m.t2i_r1, m.t2i_r5, m.t2i_r10, m.t2i_medr, m.t2i_meanr) == (50.0, 100.0, 100.0, 1.0, 1.5)
    assert m.rsum == 500.0


def test_medr_and_meanr_formulas():
    # i2t: median of [0, 1, 2, 3] is 1.5 -> floor + 1 = 2; mean 1.5 -> 2.5.
    # t2i: median of [0, 4, 9, 10, 20] is 9 -> 10; mean 8.6 -> 9.6.
    m = metrics_from_ranks(np.array([3, 0, 2, 1]), torch.tensor([20, 0, 9, 4, 10]))
    assert (m.i2t_r1, m.i2t_r5, m.i2t_r10) == (25.0, 100.0, 100.0)
    assert (m.i2t_medr, m.i2t_meanr) == (2.0, 2.5)
    assert (m.t2i_r1, m.t2i_r5, m.t2i_r10) == (20.0, 40.0, 60.0)
    assert m.t2i_medr == 10.0
    assert m.t2i_meanr == pytest.approx(9.6)
    assert m.rsum == pytest.approx(25 + 100 + 100 + 20 + 40 + 60)


# --------------------------------------------------------------------------- ties and chunks


def test_constant_embeddings_rank_pessimistically():
    images = np.ones((4, 3), dtype=np.float32) / np.sqrt(3)
    captions = np.ones((10, 3), dtype=np.float32) / np.sqrt(3)
    links = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 3])
    i2t, t2i = ranks(images, captions, links)
    # Every score is equal, so each query ranks behind every other item.
    assert i2t.tolist() == [10 - n for n in (2, 3, 2, 3)]
    assert t2i.tolist() == [3] * 10
    m = evaluate(images, captions, links)
    assert m.i2t_r1 == 0.0 and m.t2i_r1 == 0.0
    assert m.rsum < 600


@pytest.mark.parametrize("chunk_size", [1, 3, 10_000])
def test_chunk_size_does_not_change_ranks(chunk_size):
    images, captions, links = variable_split(17, 12, seed=11)
    base = ranks(images, captions, links, chunk_size=5)
    got = ranks(images, captions, links, chunk_size=chunk_size)
    assert torch.equal(got[0], base[0]) and torch.equal(got[1], base[1])


def test_single_direction_helpers_and_input_types():
    images, captions, links = variable_split(8, 5, seed=5)
    i2t, t2i = ranks(images, captions, links)
    assert i2t.dtype == torch.int64 and t2i.dtype == torch.int64
    assert i2t.shape == (8,) and t2i.shape == (len(links),)
    assert torch.equal(rank_i2t(images, captions, links), i2t)
    assert torch.equal(rank_t2i(images, captions, links), t2i)
    # Torch float64 tensors that require grad, and a torch link tensor, give the same answer.
    as_torch = ranks(
        torch.from_numpy(images).double().requires_grad_(), torch.from_numpy(captions), torch.from_numpy(links)
    )
    assert torch.equal(as_torch[0], i2t) and torch.equal(as_torch[1], t2i)


def test_metrics_dataclass_helpers():
    a = RetrievalMetrics(10, 20, 30, 4, 5.5, 1, 2, 3, 6, 7.5)
    b = RetrievalMetrics(20, 40, 50, 3, 4.5, 3, 4, 5, 7, 8.5)
    assert a.rsum == 66
    d = a.to_dict()
    assert list(d)[-1] == "rsum" and d["rsum"] == 66 and d["i2t_medr"] == 4 and len(d) == 11
    m = RetrievalMetrics.mean([a, b])
    assert m == RetrievalMetrics(15, 30, 40, 3.5, 5.0, 2, 3, 4, 6.5, 8.0)
    with pytest.raises(BenchError):
        RetrievalMetrics.mean([])


# --------------------------------------------------------------------------- protocols


def _fold(images, captions, links, a, b):
    keep = (links >= a) & (links < b)
    return images[a:b], captions[keep], links[keep] - a


def test_coco1k_is_mean_of_folds_and_coco5k_is_first_block():
    images, captions, links = variable_split(40, 6, seed=9)  # 35 used, 5 extra images
    folds = [evaluate(*_fold(images, captions, links, 7 * k, 7 * k + 7)) for k in range(5)]
    got = evaluate_protocol(images, captions, links, "coco1k", fold_size=7, n_folds=5)
    for name, value in got.to_dict().items():
        if name != "rsum":
            assert value == pytest.approx(np.mean([getattr(f, name) for f in folds]))
    # rsum is the sum of the averaged R@K (not x6, the reference's printing bug).
    assert got.rsum == pytest.approx(np.mean([f.rsum for f in folds]))
    coco5k = evaluate_protocol(images, captions, links, "coco5k", fold_size=7, n_folds=5)
    assert coco5k == evaluate(*_fold(images, captions, links, 0, 35))
    assert evaluate_protocol(images, captions, links) == evaluate(images, captions, links)


def test_coco_protocols_at_real_size():
    # 5,000 images (one caption each, tiny dimension so it stays fast): the default
    # folds are 5 x 1,000 and coco5k is the whole set.
    images, captions, links = random_embeddings(5000, 1, 8, seed=1, signal=1.0)
    full = evaluate(images, captions, links)
    assert evaluate_protocol(images, captions, links, "coco5k") == full
    folds = [evaluate(*_fold(images, captions, links, 1000 * k, 1000 * k + 1000)) for k in range(5)]
    assert evaluate_protocol(images, captions, links, "coco1k") == RetrievalMetrics.mean(folds)
    # Smaller galleries are easier: 1k recall is at least the 5k recall here.
    assert RetrievalMetrics.mean(folds).t2i_r1 >= full.t2i_r1


def test_protocol_errors():
    images, captions, links = variable_split(30, 4, seed=2)
    with pytest.raises(BenchError, match="full, coco1k, coco5k"):
        evaluate_protocol(images, captions, links, "coco10k")
    with pytest.raises(BenchError, match="5000"):
        evaluate_protocol(images, captions, links, "coco1k")
    with pytest.raises(BenchError, match="5000"):
        evaluate_protocol(images, captions, links, "coco5k")


# --------------------------------------------------------------------------- input validation


def test_input_errors():
    images, captions, links = variable_split(6, 4, seed=4)
    with pytest.raises(BenchError, match="dimension"):
        ranks(images, captions[:, :3], links)
    with pytest.raises(BenchError, match="caption_to_image has"):
        ranks(images, captions, links[:-1])
    with pytest.raises(BenchError, match="no caption"):
        ranks(np.vstack([images, images[:1]]), captions, links)
    with pytest.raises(BenchError, match="outside"):
        ranks(images, captions, np.where(links == 0, 6, links))
    with pytest.raises(BenchError, match="integer"):
        ranks(images, captions, links.astype(np.float64))
    with pytest.raises(BenchError, match="2-D"):
        ranks(images[0], captions, links)
    bad = images.copy()
    bad[2, 1] = np.nan
    with pytest.raises(BenchError, match="NaN"):
        evaluate(bad, captions, links)
    bad = captions.copy()
    bad[0, 0] = -np.inf
    with pytest.raises(BenchError, match="infinite"):
        ranks(images, bad, links)
    with pytest.raises(BenchError, match="chunk_size"):
        ranks(images, captions, links, chunk_size=0)
