"""``cca``: regularised linear CCA between image features and a fixed text representation.

A classic closed-form baseline, fitted on the paired subset only (every caption with its
image's features). Images are standardised. Captions are read one of two ways
(``text_encoder``):

``tfidf`` (the default, and the only reading before the field existed)
    L2-normalised TF-IDF vectors over the training vocabulary (words seen ``min_count`` times).
``minilm``
    the frozen all-MiniLM-L6-v2 sentence vectors the neural models read on their MiniLM track
    (:mod:`bench.nn.sentences`), centred like the TF-IDF vectors. This is the closed-form floor
    of that track, and the "linear teacher" that few-pair methods such as SUE and SOTAlign start from.

Both readings go through the same linear algebra (:func:`fit_canonical_maps`): with ridge terms
``reg`` on both covariances (shrinkage towards a scaled identity), the canonical directions come
from the SVD of ``Cxx^-1/2 Cxy Cyy^-1/2``; embeddings are the top ``dim`` canonical variates
scaled by ``correlation ** power`` and L2-normalised (scaling by the correlations, as in Gong et
al. 2014, weighs reliable directions more). A text encoder that learns its words in training
(``gru``) is refused when the config is made: a closed form needs a fixed text representation.

The pairs bound what can be fitted: ``n`` paired images give at most ``n - 1`` canonical
directions (the image side is centred over them), and neither side has more than its own
dimensions. A larger ``dim`` is clamped, with a printed notice and a note in the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from scipy import sparse

from bench.models.config import Bound, ModelConfig, added_later, bounded
from bench import errors
from bench.errors import BenchError
from bench.models import FitContext, FitResult, PairedData, RetrievalModel, UnpairedData
from bench.nn import l2_normalize
from bench.nn.text import TEXT_SIDES, text_side
from bench.models.search_space import Choice, LogUniform, Uniform
from bench.data.vocabulary import SPECIALS, VOCABULARY_FILE, Vocabulary

TFIDF = "tfidf"
# The text sides of bench.nn.text that hand over fixed vectors (not a word model learnt in training).
FROZEN_TEXT_SIDES = tuple(name for name, side in TEXT_SIDES.items() if not side.reads_words)
TEXT_ENCODERS = (TFIDF, *FROZEN_TEXT_SIDES)


def check_text_encoder(model: str, value: str, allowed: tuple[str, ...]) -> None:
    """Refuse, in one line, a text encoder a model without a trained text side cannot read."""
    if value in allowed:
        return
    if value in TEXT_SIDES:  # a side that learns its words: nothing here would train it
        raise BenchError(f"{model} needs a fixed text representation, and text_encoder '{value}' is learnt in "
                         f"training, which {model} does not do; choose {' or '.join(allowed)}")
    raise BenchError(f"unknown text_encoder '{value}' for {model}; choose {' or '.join(allowed)}")


def notice(model: str, text: str, notes: list[str]) -> None:
    """A setting the data cannot hold, adjusted: said on stderr now and kept in the record's notes."""
    errors.notice(f"{model}: {text}")
    notes.append(text)


@dataclass(frozen=True)
class CCAConfig(ModelConfig):
    dim: int = 256  # canonical dimensions kept
    reg: float = 0.1  # ridge added to both covariance diagonals (relative to their mean variance)
    # canonical variates scaled by correlation ** power; past 16 every direction but the strongest
    # underflows towards 0 (the tuned range is 0..8)
    power: float = bounded(4.0, Bound(low=0, high=16, why="correlation ** power weighs the directions"))
    min_count: int = 4  # vocabulary threshold for the bag of words (tfidf)
    # "tfidf" (bag of words) or a frozen sentence encoder of bench.nn.text ("minilm"); added after the
    # first records, so cells at "tfidf" keep their config hash
    text_encoder: str = added_later(TFIDF)

    PROFILES: ClassVar[dict] = {"paper": {}, "cpu": {}, "quick": {}}
    # closed form: no updates to budget. reg reaches 100 (where the whitening is almost the identity
    # and CCA becomes PLS): the first Flickr8k studies, with 1.0 as the top, chose 0.91 at both fractions.
    SEARCH_SPACE: ClassVar[dict] = {"dim": Choice((64, 128, 256, 512, 1024)), "reg": LogUniform(1e-3, 100.0),
                                    "power": Uniform(0.0, 8.0)}

    def __post_init__(self) -> None:
        check_text_encoder("cca", self.text_encoder, TEXT_ENCODERS)
        super().__post_init__()


def _inverse_sqrt(cov: np.ndarray, reg: float) -> np.ndarray:
    cov = cov + reg * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    values, vectors = np.linalg.eigh(cov)
    return (vectors / np.sqrt(np.clip(values, 1e-12, None))) @ vectors.T


@dataclass(frozen=True)
class CanonicalMaps:
    image_projection: np.ndarray  # (image dims, k): standardised features -> scaled canonical variates
    text_projection: np.ndarray  # (text dims, k): text vectors -> the same space
    text_mean: np.ndarray  # subtracted from text vectors (through text_projection) when embedding
    correlations: np.ndarray  # every canonical correlation, largest first


def fit_canonical_maps(x: np.ndarray, weights: np.ndarray, caption_to_image: np.ndarray, text, reg: float, dim: int,
                       power: float) -> CanonicalMaps:
    """Ridge-regularised CCA between images and captions, every caption one sample.

    ``x``: (n_images, dx) image features, centred under ``weights`` (each image's caption count);
    ``text``: (n_captions, dy) caption vectors, a scipy sparse matrix or a dense array;
    ``caption_to_image``: caption row -> image row. The image side only needs per-image weights,
    which keeps the covariances cheap on 30K captions. Keeps the top ``dim`` directions (``dim``
    must not exceed the dimensions the data holds; see :func:`possible_dimensions`).
    """
    n = weights.sum()
    text_mean = np.asarray(text.mean(axis=0)).ravel()
    cov_xx = (x * weights[:, None]).T @ x / n
    second_moment = text.T @ text
    if sparse.issparse(second_moment):
        second_moment = second_moment.toarray()
    cov_yy = second_moment / n - np.outer(text_mean, text_mean)
    # x is centred under the caption weights, so the text mean drops out of Cxy.
    cov_xy = np.asarray((text.T @ x[caption_to_image]).T) / n
    wx, wy = _inverse_sqrt(cov_xx, reg), _inverse_sqrt(cov_yy, reg)
    u, correlations, vt = np.linalg.svd(wx @ cov_xy @ wy, full_matrices=False)
    k = min(dim, len(correlations))
    scale = correlations[:k] ** power
    return CanonicalMaps(image_projection=(wx @ u[:, :k]) * scale, text_projection=(wy @ vt[:k].T) * scale,
                         text_mean=text_mean, correlations=correlations)


def possible_dimensions(image_dims: int, text_dims: int, n_images: int) -> int:
    """How many canonical directions the pairs can carry: the image side, centred over ``n_images``
    images (with each image's captions), spans at most ``n_images - 1`` of them."""
    return max(0, min(image_dims, text_dims, n_images - 1))


class CCAModel(RetrievalModel):
    name = "cca"
    summary = "linear CCA between image features and TF-IDF or frozen MiniLM captions (closed form, pairs only)"
    aliases = ("linear-cca",)
    config_class = CCAConfig
    uses_unpaired = False
    # the text encoders cca reads, and the one a cell gets (and is named without) when none is asked for
    text_encoders: ClassVar[tuple[str, ...]] = TEXT_ENCODERS
    unnamed_text_encoder: ClassVar[str] = TFIDF

    vocabulary: Vocabulary | None = None

    def fit(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> FitResult:
        cfg: CCAConfig = self.config
        if paired.n_images < 2:
            raise BenchError(f"cca needs at least 2 paired images to correlate anything (got {paired.n_images})")
        text = self._fit_text(paired.captions, context)
        if abs(text).sum() == 0:
            raise BenchError(f"cca has no text to correlate: every text vector of the {paired.n_captions} paired "
                             f"captions is zero ({self._text_name()})")
        weights = np.bincount(paired.caption_to_image, minlength=paired.n_images).astype(np.float64)
        images = paired.features.astype(np.float64)
        n = weights.sum()
        self.image_mean = weights @ images / n
        self.image_std = np.sqrt(weights @ (images - self.image_mean) ** 2 / n) + 1e-6
        x = (images - self.image_mean) / self.image_std

        notes = ["unpaired data ignored (closed form on pairs)"]
        text_dims = text.shape[1] - (len(SPECIALS) if cfg.text_encoder == TFIDF else 0)  # specials: no column used
        possible = possible_dimensions(x.shape[1], text_dims, paired.n_images)
        dim = cfg.dim
        if dim > possible:
            dim = possible
            notice("cca", f"dim {cfg.dim} clamped to {possible}: {paired.n_images} paired images, {x.shape[1]} image "
                          f"and {text_dims} text dimensions carry at most min(images - 1, image dims, text dims) "
                          "canonical directions", notes)
        maps = fit_canonical_maps(x, weights, paired.caption_to_image, text, cfg.reg, dim, cfg.power)
        if not (maps.correlations[0] > 1e-6 and np.isfinite(maps.image_projection).all()
                and np.isfinite(maps.text_projection).all()):
            raise BenchError(f"cca found no correlation between the {paired.n_images} paired images and their "
                             f"captions (top canonical correlation {maps.correlations[0]:.3g})")
        self.image_projection, self.text_projection, self.text_mean = (maps.image_projection, maps.text_projection,
                                                                       maps.text_mean)
        context.progress(epoch=1, epochs=1)
        notes.append(f"top canonical correlations: {', '.join(f'{c:.3f}' for c in maps.correlations[:3])}")
        return FitResult(epochs_run=1, best_epoch=0, notes=notes)

    # -- the text representation ------------------------------------------------------------
    def _fit_text(self, captions: list[str], context: FitContext):
        """The training captions as a text matrix, after learning what the reading needs (vocabulary, idf)."""
        cfg: CCAConfig = self.config
        if cfg.text_encoder != TFIDF:
            return self._text_matrix(captions)
        self.vocabulary = Vocabulary.build(captions, cfg.min_count)
        if len(self.vocabulary) <= len(SPECIALS):
            raise BenchError(f"cca's bag of words is empty: no word occurs {cfg.min_count} times in the "
                             f"{len(captions)} paired captions; lower cca.min_count")
        self.vocabulary.save(context.workdir / VOCABULARY_FILE)
        counts = self._counts(captions)
        document_frequency = np.asarray((counts > 0).sum(0)).ravel()
        self.idf = np.log((1 + counts.shape[0]) / (1 + document_frequency)) + 1.0
        return self._tfidf(counts)  # sparse (n_captions, vocabulary)

    def _text_matrix(self, captions: list[str]):
        """(n, dims) text vectors: sparse TF-IDF, or dense float64 frozen sentence vectors."""
        if self.config.text_encoder == TFIDF:
            return self._tfidf(self._counts(captions))
        return text_side(self.config.text_encoder).prepare(captions).vectors.numpy().astype(np.float64)

    def _text_name(self) -> str:
        if self.config.text_encoder == TFIDF:
            return f"tfidf, min_count {self.config.min_count}"
        return self.config.text_encoder

    def _counts(self, captions: list[str]):
        rows, cols = [], []
        for row, caption in enumerate(captions):
            for token in self.vocabulary.encode(caption, add_start_end=False):
                if token > self.vocabulary.unk_id:  # specials carry no content
                    rows.append(row)
                    cols.append(token)
        data = np.ones(len(rows), dtype=np.float64)
        return sparse.csr_matrix((data, (rows, cols)), shape=(len(captions), len(self.vocabulary)))

    def _tfidf(self, counts):
        weighted = counts.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        return sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ weighted

    # -- embedding --------------------------------------------------------------------------
    def embed_images(self, features: np.ndarray) -> torch.Tensor:
        x = (np.asarray(features, dtype=np.float64) - self.image_mean) / self.image_std
        return l2_normalize(torch.from_numpy(x @ self.image_projection).float())

    def embed_captions(self, captions: list[str]) -> torch.Tensor:
        y = self._text_matrix(captions) @ self.text_projection - self.text_mean @ self.text_projection
        return l2_normalize(torch.from_numpy(np.asarray(y)).float())

    def describe(self) -> dict:
        if self.config.text_encoder == TFIDF:
            return {"text_encoder": TFIDF, "vocabulary_size": len(self.vocabulary)}
        return text_side(self.config.text_encoder).describe()
