"""``cca``: regularised linear CCA between image features and TF-IDF bag-of-words captions.

A classic closed-form baseline, fitted on the paired subset only (every caption with its
image's features). Images are standardised; captions are L2-normalised TF-IDF vectors
over the training vocabulary. With ridge terms ``reg`` on both covariances, the
canonical directions come from the SVD of ``Cxx^-1/2 Cxy Cyy^-1/2``; embeddings are the
top ``dim`` canonical variates scaled by ``correlation ** power`` and L2-normalised
(scaling by the correlations, as in Gong et al. 2014, weighs reliable directions more).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from bench.models import (
    FitContext,
    FitResult,
    ModelConfig,
    ModelSpec,
    PairedData,
    RetrievalModel,
    UnpairedData,
    l2_normalize,
    register_model,
)
from bench.text import Vocabulary, tokenize


@dataclass(frozen=True)
class CCAConfig(ModelConfig):
    dim: int = 256  # canonical dimensions kept
    reg: float = 0.1  # ridge added to both covariance diagonals (relative to their mean variance)
    power: float = 4.0  # canonical variates scaled by correlation ** power
    min_count: int = 4  # vocabulary threshold for the bag of words

    PROFILES: ClassVar[dict] = {"paper": {}, "cpu": {}}


def _inverse_sqrt(cov: np.ndarray, reg: float) -> np.ndarray:
    cov = cov + reg * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    values, vectors = np.linalg.eigh(cov)
    return (vectors / np.sqrt(np.clip(values, 1e-12, None))) @ vectors.T


class CCAModel(RetrievalModel):
    uses_unpaired = False

    def fit(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> FitResult:
        cfg: CCAConfig = self.config
        self.vocabulary = Vocabulary.build(paired.captions, cfg.min_count)
        self.vocabulary.save(context.workdir / "vocabulary.json")
        counts = self._counts(paired.captions)
        document_frequency = (counts > 0).sum(0)
        self.idf = np.log((1 + counts.shape[0]) / (1 + document_frequency)) + 1.0
        text = self._tfidf(counts)
        images = paired.features[paired.caption_to_image].astype(np.float64)
        self.image_mean, self.image_std = images.mean(0), images.std(0) + 1e-6
        images = (images - self.image_mean) / self.image_std
        self.text_mean = text.mean(0)
        x, y = images, text - self.text_mean
        n = x.shape[0]
        wx, wy = _inverse_sqrt(x.T @ x / n, cfg.reg), _inverse_sqrt(y.T @ y / n, cfg.reg)
        u, correlations, vt = np.linalg.svd(wx @ (x.T @ y / n) @ wy)
        k = min(cfg.dim, len(correlations))
        scale = correlations[:k] ** cfg.power
        self.image_projection = (wx @ u[:, :k]) * scale
        self.text_projection = (wy @ vt[:k].T) * scale
        context.progress(epoch=1, epochs=1)
        return FitResult(
            epochs_run=1,
            best_epoch=0,
            notes=[
                "unpaired data ignored (closed form on pairs)",
                f"top canonical correlations: {', '.join(f'{c:.3f}' for c in correlations[:3])}",
            ],
        )

    def _counts(self, captions: list[str]) -> np.ndarray:
        counts = np.zeros((len(captions), len(self.vocabulary)), dtype=np.float64)
        for row, caption in enumerate(captions):
            for token in self.vocabulary.encode(caption, add_start_end=False):
                counts[row, token] += 1
        counts[:, : self.vocabulary.unk_id + 1] = 0  # specials carry no content
        return counts

    def _tfidf(self, counts: np.ndarray) -> np.ndarray:
        weighted = counts * self.idf
        return weighted / np.maximum(np.linalg.norm(weighted, axis=1, keepdims=True), 1e-12)

    def embed_images(self, features: np.ndarray) -> torch.Tensor:
        x = (np.asarray(features, dtype=np.float64) - self.image_mean) / self.image_std
        return l2_normalize(torch.from_numpy(x @ self.image_projection).float())

    def embed_captions(self, captions: list[str]) -> torch.Tensor:
        y = self._tfidf(self._counts(captions)) - self.text_mean
        return l2_normalize(torch.from_numpy(y @ self.text_projection).float())

    def describe(self) -> dict:
        return {"text_encoder": "tfidf", "vocabulary_size": len(self.vocabulary)}


register_model(
    ModelSpec(
        name="cca",
        factory=CCAModel,
        config_class=CCAConfig,
        summary="linear CCA between image features and TF-IDF captions (closed form, pairs only)",
        aliases=("linear-cca",),
        uses_unpaired=False,
    )
)
