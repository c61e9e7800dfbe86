"""Evaluation protocols: which images and captions of a test split are scored, and how the numbers
are combined (:func:`evaluate_protocol`).

Protocols are found like models,
through an entry-point group, ``bench.protocols`` (see ``pyproject.toml``): the entry
point's name is the protocol's name (what a dataset's ``protocols`` list), its object a
function ``protocol(images, captions, caption_to_image, **options) -> RetrievalMetrics``
called with checked float32 CPU tensors. The built-in ones: ``full`` scores the whole
split; COCO is reported under ``coco1k``, the mean of 5 folds of 1,000 test images, and
``coco5k``, the 5,000 test images at once. The reference's 5-fold summary printed
``rsum`` of the averaged metrics times 6 (a known bug); here ``rsum`` is always the sum
of the (averaged) six R@K.
"""

from __future__ import annotations

from typing import Callable

import torch

from bench.errors import BenchError
from bench.metrics.ranking import RetrievalMetrics, _prepare, evaluate
from bench.plugins import Registry

ENTRY_POINT_GROUP = "bench.protocols"


def _image_slice(images: torch.Tensor, captions: torch.Tensor, links: torch.Tensor, a: int, b: int):
    """Image rows ``[a, b)`` with the captions that belong to them (in order), links remapped."""
    keep = (links >= a) & (links < b)
    return images[a:b], captions[keep], links[keep] - a


def full_protocol(images: torch.Tensor, captions: torch.Tensor, caption_to_image: torch.Tensor) -> RetrievalMetrics:
    """``full``: the whole split at once (Flickr8k, Flickr30k, ...)."""
    return evaluate(images, captions, caption_to_image)


def _coco_images(images: torch.Tensor, protocol: str, fold_size: int, n_folds: int) -> int:
    """How many test images the COCO protocols read (``fold_size * n_folds``), or a BenchError."""
    if fold_size < 1 or n_folds < 1:
        raise BenchError(f"fold_size and n_folds must be positive, got {fold_size} and {n_folds}")
    needed = fold_size * n_folds
    if images.shape[0] < needed:
        raise BenchError(
            f"protocol '{protocol}' needs at least {needed} test images ({n_folds} folds of {fold_size}) "
            f"but there are {images.shape[0]}; use protocol 'full' for a smaller split"
        )
    return needed


def coco1k_protocol(images: torch.Tensor, captions: torch.Tensor, caption_to_image: torch.Tensor, *,
                    fold_size: int = 1000, n_folds: int = 5) -> RetrievalMetrics:
    """``coco1k``: the first ``n_folds`` blocks of ``fold_size`` consecutive images (5 x 1,000 by
    default), each with its captions, evaluated separately; every number is the mean over the
    folds and ``rsum`` is the sum of the averaged R@K."""
    _coco_images(images, "coco1k", fold_size, n_folds)
    folds = [
        evaluate(*_image_slice(images, captions, caption_to_image, k * fold_size, (k + 1) * fold_size))
        for k in range(n_folds)
    ]
    return RetrievalMetrics.mean(folds)


def coco5k_protocol(images: torch.Tensor, captions: torch.Tensor, caption_to_image: torch.Tensor, *,
                    fold_size: int = 1000, n_folds: int = 5) -> RetrievalMetrics:
    """``coco5k``: the first ``n_folds * fold_size`` images (5,000 by default) at once."""
    needed = _coco_images(images, "coco5k", fold_size, n_folds)
    return evaluate(*_image_slice(images, captions, caption_to_image, 0, needed))


REGISTRY: Registry[Callable[..., RetrievalMetrics]] = Registry(
    ENTRY_POINT_GROUP, lambda entry, protocol: [(entry.name, protocol)])  # the entry point's name is the protocol's


def known_protocols() -> list[str]:
    """The registered protocol names: the default, ``full``, first, then the others by name."""
    return sorted(REGISTRY.load(), key=lambda name: (name != "full", name))


def get_protocol(name: str) -> Callable[..., RetrievalMetrics]:
    protocols = REGISTRY.load()
    if name not in protocols:
        raise BenchError(f"unknown evaluation protocol '{name}'; choose one of {', '.join(known_protocols())}")
    return protocols[name]


def evaluate_protocol(image_emb, caption_emb, caption_to_image, protocol: str = "full", **options) -> RetrievalMetrics:
    """Metrics under a named protocol (see the module docstring); ``options`` go to the protocol
    (``fold_size`` and ``n_folds`` for ``coco1k`` and ``coco5k``)."""
    score = get_protocol(protocol)
    images, captions, links = _prepare(image_emb, caption_emb, caption_to_image)
    metrics = score(images, captions, links, **options)
    if not isinstance(metrics, RetrievalMetrics):
        raise BenchError(f"evaluation protocol '{protocol}' returned {type(metrics).__name__}, not the "
                         "RetrievalMetrics that a record stores")
    return metrics
