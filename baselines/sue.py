"""``sue``: Spectral Universal Embedding (Yacobi, Ben-Ari, Talmon and Shaham, "Learning Shared
Representations from Unpaired Data", NeurIPS 2025), on frozen image features and frozen MiniLM
sentence vectors.

The three stages of the paper, as built here:

1. **Spectral embedding per modality, from all of its training items** (the paired ones and the
   unpaired pool, each item once): a k-nearest-neighbour graph on cosine distances with the
   self-tuning Gaussian kernel ``exp(-d_ij^2 / (s_i s_j))`` (``s_i``: the distance to the
   ``scale_neighbour``-th neighbour, Zelnik-Manor and Perona), symmetrised by the larger weight;
   the top ``spectral_dim`` non-trivial eigenvectors of the normalised affinity
   ``D^-1/2 W D^-1/2`` (``scipy.sparse.linalg.eigsh``, a dense solver below 2,000 items) give
   the random-walk eigenvectors ``psi = D^-1/2 v`` (each scaled to unit variance). An item's
   coordinates are one random-walk step, ``sum_j p(x, j) psi_j`` over the kernel weights to its
   k neighbours among the training items, normalised: for a training item this is close to its
   diffusion coordinates ``lambda * psi`` (equal on the graph before symmetrisation), and for a
   dev or test item, with its own scale, it is the **Nyström extension** (the out-of-sample
   map). Training and new items thus get their coordinates from one formula.
2. **CCA on the pairs** between the two spectral embeddings (the ridge CCA of the ``cca`` row,
   :func:`baselines.cca.fit_canonical_maps`), every paired caption one sample with its image.
3. **Refinement**: one residual MLP per modality on the canonical variates (the last layer
   starts at zero, so training starts at the CCA solution), trained with the squared MMD
   (Gaussian kernels, median-scaled bandwidths) between unpaired image and unpaired caption
   batches in the common space, plus the VSE++ hinge on paired batches that keeps the pairs
   aligned; the epoch kept is the best on dev, as for every neural model.

Simplified from the paper, and why: the paper learns the spectral embeddings with SpectralNet
(a network, which is also its out-of-sample map); here they are exact eigenvectors of a sparse
kNN graph with a Nyström extension, which is closed form, deterministic and a few seconds on
Flickr8k's 6,000 images and 30,000 captions. The paper refines one modality towards the other;
here both sides get a small residual head, and the pair term is the hinge the other rows use.
The graph, the eigenvectors and the CCA are fixed before training; only the heads train.

Paired-only twin (:meth:`SUEModel.paired_only_twin`, ``use_pools=false``): the spectral
embeddings come from the paired items alone and the MMD term is off; the heads train on the
pairs for the same number of updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import torch
from scipy import sparse
from scipy.sparse.linalg import eigsh
from torch import nn

from baselines.cca import FROZEN_TEXT_SIDES, CanonicalMaps, check_text_encoder, fit_canonical_maps, notice, \
    possible_dimensions
from baselines.heads import PoolHeadsModel
from baselines.jwae import CyclingSampler
from bench.models.config import AT_LEAST_ONE, CPU_UPDATE_CAP, NON_NEGATIVE, POSITIVE, TrainingConfig, bounded
from bench.data.types import Split
from bench.errors import BenchError
from bench.models import FitContext, FitResult, PairedData, UnpairedData
from bench.models.neural import embed_in_batches
from bench.nn import l2_normalize
from bench.nn.transport import mmd2
from bench.models.search_space import UPDATES, Choice, IntRange, LogUniform, ShareOfCap, Uniform

DENSE_BELOW = 2000  # items: below this the eigenproblem is solved densely (exact, and fast enough)


@dataclass(frozen=True)
class CommonSpace:
    """Ridge CCA between two views of the pairs, ready to map either view: ``(x - image_mean) @
    image_projection`` and ``(y - text_mean) @ text_projection`` (``sue`` on spectral coordinates,
    ``otalign``'s teacher on the features and sentence vectors)."""

    image_mean: np.ndarray
    maps: CanonicalMaps

    @classmethod
    def fit(cls, images: np.ndarray, caption_to_image: np.ndarray, text: np.ndarray, reg: float, dim: int,
            power: float) -> "CommonSpace":
        """``images`` (n_images, dx) and ``text`` (n_captions, dy), every caption one sample with its image."""
        images = np.asarray(images, dtype=np.float64)
        weights = np.bincount(caption_to_image, minlength=images.shape[0]).astype(np.float64)
        image_mean = weights @ images / weights.sum()
        maps = fit_canonical_maps(images - image_mean, weights, caption_to_image, np.asarray(text, dtype=np.float64),
                                  reg, dim, power)
        return cls(image_mean, maps)

    @property
    def dim(self) -> int:
        return self.maps.image_projection.shape[1]

    @property
    def correlations(self) -> np.ndarray:
        return self.maps.correlations

    def images(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.image_mean) @ self.maps.image_projection

    def text(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=np.float64) - self.maps.text_mean) @ self.maps.text_projection


@dataclass(frozen=True)
class SUEConfig(TrainingConfig):
    text_encoder: str = "minilm"  # frozen sentence vectors only (gru is refused)
    # stage 1: spectral embeddings
    # (spectral_dim, cca_reg and cca_power: the best of a small grid of the CCA stage on Flickr8k dev at
    # 10 % paired; 128 eigenvectors gave +10 dev rsum over 64)
    spectral_dim: int = 128  # non-trivial eigenvectors kept per modality
    neighbours: int = bounded(15, AT_LEAST_ONE)  # k of the kNN graph
    scale_neighbour: int = bounded(7, AT_LEAST_ONE)  # the neighbour whose distance is an item's kernel scale
    # stage 2: CCA on the pairs
    cca_dim: int = 128  # canonical dimensions = size of the common space
    cca_reg: float = bounded(1.0, NON_NEGATIVE)  # ridge on both covariances, relative to their mean variance
    cca_power: float = bounded(1.0, NON_NEGATIVE)  # variates scaled by correlation ** this (0: plain CCA)
    # stage 3: refinement heads
    head_hidden: int = 256  # residual MLP hidden size
    mmd_weight: float = 1.0  # MMD between unpaired image and caption batches (0 switches it off)
    pair_weight: float = 1.0  # VSE++ hinge on the paired batch
    unpaired_batch_size: int = 256  # unpaired images and captions per step (each)
    epoch_steps: int = bounded(100, AT_LEAST_ONE)  # updates per epoch (validation and checkpoint after each)
    use_pools: bool = True  # False: the paired-only twin (spectral embeddings of the pairs, no MMD)
    lr: float = bounded(1e-3, POSITIVE)
    epochs: int = bounded(30, AT_LEAST_ONE)
    lr_decay_epoch: int = bounded(20, AT_LEAST_ONE)

    PROFILES: ClassVar[dict] = {
        "paper": {},
        # Flickr8k on one CPU thread, a 10 % cell in under 3 minutes (the two eigenproblems take about a
        # minute): half the update cap of the cpu rows (the heads start at the closed-form CCA, and dev
        # peaked within the first 500 updates), in epochs of 100 updates
        "cpu": {"updates": CPU_UPDATE_CAP // 2, "epochs": 14, "lr_decay_epoch": 10},
        # the embedded synthetic data: a small graph and a short run
        "quick": {"spectral_dim": 16, "cca_dim": 8, "cca_reg": 0.1, "cca_power": 0.0, "neighbours": 10,
                  "head_hidden": 64, "epochs": 6,
                  "lr_decay_epoch": 4, "epoch_steps": 25, "unpaired_batch_size": 128},
    }
    SEARCH_SPACE: ClassVar[dict] = {
        "spectral_dim": Choice((64, 128, 192)), "neighbours": IntRange(5, 30), "cca_dim": Choice((32, 64, 128)),
        "cca_reg": LogUniform(1e-3, 10.0), "cca_power": Uniform(0.0, 4.0), "mmd_weight": LogUniform(0.03, 30.0),
        "lr": LogUniform(1e-4, 1e-2), "margin": Uniform(0.05, 0.4), UPDATES: ShareOfCap(0.1),
    }

    def __post_init__(self) -> None:
        check_text_encoder("sue", self.text_encoder, FROZEN_TEXT_SIDES)
        super().__post_init__()


# -- stage 1: spectral embedding with a Nyström extension --------------------------------------------
def _unit_rows(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return l2_normalize(torch.as_tensor(np.asarray(x, dtype=np.float32)))


def nearest(queries: torch.Tensor, base: torch.Tensor, k: int, skip_self: bool = False,
            chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``base`` to each query (unit rows, so squared distance = 2 - 2 cos):
    ``(squared distances, indices)``, nearest first. ``skip_self`` drops each query's own row
    (queries are ``base`` itself)."""
    distances, indices = [], []
    for start in range(0, queries.shape[0], chunk):
        similarity = queries[start:start + chunk] @ base.t()
        if skip_self:
            rows = torch.arange(similarity.shape[0])
            similarity[rows, rows + start] = -math.inf
        top, where = similarity.topk(k, dim=1)
        distances.append((2.0 - 2.0 * top).clamp_min(0.0))
        indices.append(where)
    return torch.cat(distances), torch.cat(indices)


class SpectralEmbedding:
    """Diffusion coordinates of a kNN graph on the training items, and their Nyström extension."""

    def __init__(self, points: np.ndarray, dim: int, neighbours: int, scale_neighbour: int, seed: int) -> None:
        self.points = _unit_rows(points)
        n = self.points.shape[0]
        self.k = min(neighbours, n - 1)
        self.scale_at = min(scale_neighbour, self.k)
        distances, indices = nearest(self.points, self.points, self.k, skip_self=True)
        self.scale = distances[:, self.scale_at - 1].sqrt().clamp_min(1e-6)  # (n,)
        weights = torch.exp(-distances / (self.scale[:, None] * self.scale[indices]))
        rows = np.repeat(np.arange(n), self.k)
        graph = sparse.csr_matrix((weights.double().numpy().ravel(), (rows, indices.numpy().ravel())), shape=(n, n))
        graph = graph.maximum(graph.T).tocsr()  # symmetric: an edge if either end counts the other as a neighbour
        degree = np.asarray(graph.sum(axis=1)).ravel()
        inv_sqrt = sparse.diags(1.0 / np.sqrt(degree))
        normalised = inv_sqrt @ graph @ inv_sqrt
        self.dim = dim
        if n < DENSE_BELOW:
            values, vectors = np.linalg.eigh(normalised.toarray())
            values, vectors = values[::-1][: dim + 1], vectors[:, ::-1][:, : dim + 1]
        else:
            start = np.random.default_rng(seed).standard_normal(n)  # ARPACK's start vector, seeded
            values, vectors = eigsh(normalised, k=dim + 1, which="LA", v0=start)
            order = np.argsort(-values)
            values, vectors = values[order], vectors[:, order]
        vectors = vectors * np.where(vectors[np.abs(vectors).argmax(0), np.arange(vectors.shape[1])] < 0, -1.0, 1.0)
        # drop the trivial eigenvector (constant in random-walk form); the rest in random-walk form
        self.eigenvalues = values[1:]
        self.psi = torch.from_numpy(vectors[:, 1:] / np.sqrt(degree)[:, None]).float()
        # unit-variance coordinates: the eigenvectors' own scale (~1/sqrt(n)) carries no information
        self.psi = self.psi / self.psi.std(dim=0, keepdim=True).clamp_min(1e-12)
        self.train_coordinates = self.extend_unit(self.points, training=True)

    def extend_unit(self, queries: torch.Tensor, training: bool = False) -> torch.Tensor:
        """``sum_j p(x, j) psi_j`` for unit rows ``queries``: the random-walk step to the training
        items, with each query's own kernel scale (for a training item: its own row's weights)."""
        distances, indices = nearest(queries, self.points, self.k, skip_self=training)
        scale = distances[:, self.scale_at - 1].sqrt().clamp_min(1e-6)
        weights = torch.exp(-distances / (scale[:, None] * self.scale[indices]))
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-30)
        return torch.einsum("nk,nkd->nd", weights, self.psi[indices])

    def extend(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.extend_unit(l2_normalize(torch.as_tensor(features, dtype=torch.float32)))


class ResidualHead(nn.Module):
    """``x + W2 relu(W1 x)`` then L2 norm; ``W2`` starts at zero, so the head starts as the identity."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.inner[2].weight)
        nn.init.zeros_(self.inner[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2_normalize(x + self.inner(x))


def distinct_rows(ids: list[str], extra_ids: list[str]) -> tuple[list[int], list[int]]:
    """Rows of ``ids`` and then of ``extra_ids`` that keep each id once (first seen wins): under the
    ``overlap`` policy every paired item is in its unpaired pool too, and a graph holds an item once."""
    seen: set[str] = set()
    first, second = [], []
    for rows, source in ((first, ids), (second, extra_ids)):
        for row, item in enumerate(source):
            if item not in seen:
                seen.add(item)
                rows.append(row)
    return first, second


class SUEModel(PoolHeadsModel):
    name = "sue"
    summary = ("SUE: per-modality spectral embeddings of all training items, CCA on the pairs, "
               "MMD-refined heads on the unpaired pools (frozen text)")
    config_class = SUEConfig
    uses_unpaired = True
    text_encoders = ("minilm",)

    def __init__(self, config: SUEConfig) -> None:
        super().__init__(config)
        self.image_spectral: SpectralEmbedding | None = None
        self.text_spectral: SpectralEmbedding | None = None
        self.cca: CommonSpace | None = None

    # -- the fixed front: spectral coordinates, then canonical variates ----------------------------------
    def _front(self, spectral: SpectralEmbedding, cca: Callable[[np.ndarray], np.ndarray],
               inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(cca(spectral.extend(inputs).double().numpy())).float()

    def front_images(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self._front(self.image_spectral, self.cca.images, features)

    def front_text(self, vectors: torch.Tensor) -> torch.Tensor:
        return self._front(self.text_spectral, self.cca.text, vectors)

    def fit(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> FitResult:
        cfg: SUEConfig = self.settle_schedule(paired, unpaired)
        if paired.n_images < 3:
            raise BenchError(f"sue needs at least 3 paired images for its CCA (got {paired.n_images})")
        notes: list[str] = []
        pools = cfg.use_pools and unpaired.n_images > 0 and unpaired.n_captions > 0
        image_rows, pool_image_rows = distinct_rows(paired.image_ids, unpaired.image_ids if pools else [])
        caption_rows, pool_caption_rows = distinct_rows(paired.caption_ids, unpaired.caption_ids if pools else [])
        captions = [paired.captions[r] for r in caption_rows] + [unpaired.captions[r] for r in pool_caption_rows]
        self.start_fit(context, captions)

        # stage 1: one graph per modality over every training item it may read
        image_points = np.concatenate([paired.features[image_rows],
                                       unpaired.features[pool_image_rows].reshape(-1, paired.features.shape[1])])
        text_points = self.text.prepare(captions).vectors.numpy()
        room = min(image_points.shape[0], text_points.shape[0]) - 2
        spectral_dim = cfg.spectral_dim
        if spectral_dim > room:
            spectral_dim = max(1, room)
            notice("sue", f"spectral_dim {cfg.spectral_dim} > what {image_points.shape[0]} images and "
                                f"{text_points.shape[0]} captions hold; using {spectral_dim}", notes)
        self.image_spectral = SpectralEmbedding(image_points, spectral_dim, cfg.neighbours, cfg.scale_neighbour,
                                                context.seed)
        self.text_spectral = SpectralEmbedding(text_points, spectral_dim, cfg.neighbours, cfg.scale_neighbour,
                                               context.seed + 1)

        # stage 2: CCA between the two spectral embeddings, every paired caption one sample with its image
        image_coordinates = self.image_spectral.train_coordinates  # paired images first, in image_rows order
        text_coordinates = self.text_spectral.train_coordinates
        image_slot = np.empty(paired.n_images, dtype=np.int64)  # paired image row -> its graph row
        position = {item: slot for slot, item in enumerate(paired.image_ids[r] for r in image_rows)}
        for row, item in enumerate(paired.image_ids):
            image_slot[row] = position[item]
        caption_position = {item: slot for slot, item in enumerate(paired.caption_ids[r] for r in caption_rows)}
        caption_slot = np.array([caption_position[c] for c in paired.caption_ids], dtype=np.int64)
        paired_images = image_coordinates[image_slot].double().numpy()
        paired_text = text_coordinates[caption_slot].double().numpy()
        cca_dim = cfg.cca_dim
        most = max(1, possible_dimensions(spectral_dim, spectral_dim, paired.n_images))
        if cca_dim > most:
            cca_dim = most
            notice("sue", f"cca_dim {cfg.cca_dim} > what {paired.n_images} paired images and "
                                f"{spectral_dim} eigenvectors hold; using {cca_dim}", notes)
        self.cca = CommonSpace.fit(paired_images, paired.caption_to_image, paired_text, cfg.cca_reg, cca_dim,
                                   cfg.cca_power)

        # the common-space inputs of the heads (fixed during training)
        device = self.device
        common_images = torch.from_numpy(self.cca.images(image_coordinates.double().numpy())).float().to(device)
        common_text = torch.from_numpy(self.cca.text(text_coordinates.double().numpy())).float().to(device)
        pair_images = common_images[torch.from_numpy(image_slot[paired.caption_to_image])]
        pair_text = common_text[torch.from_numpy(caption_slot)]
        # the unpaired pools in graph rows (under overlap a pool item may be a paired one, seen first)
        pool_image_index = self._pool_slots(unpaired.image_ids, paired.image_ids, image_rows, pool_image_rows) \
            if pools else torch.zeros(0, dtype=torch.long)
        pool_text_index = self._pool_slots(unpaired.caption_ids, paired.caption_ids, caption_rows, pool_caption_rows) \
            if pools else torch.zeros(0, dtype=torch.long)

        # stage 3: residual heads, MMD on the pools + hinge on the pairs
        dim = common_images.shape[1]
        self.image_head = ResidualHead(dim, cfg.head_hidden).to(device)
        self.text_head = ResidualHead(dim, cfg.head_hidden).to(device)
        use_mmd = pools and cfg.mmd_weight > 0
        unpaired_bs = cfg.unpaired_batch_size if use_mmd else 0
        image_sampler = CyclingSampler(len(pool_image_index), unpaired_bs, context.seed, "sue-unpaired-images")
        text_sampler = CyclingSampler(len(pool_text_index), unpaired_bs, context.seed, "sue-unpaired-captions")
        pair_sampler = CyclingSampler(paired.n_captions, cfg.batch_size, context.seed, "sue-paired")
        if cfg.pair_weight == 0 and not use_mmd:
            raise BenchError("sue: the pair and MMD weights are both 0 (or there is no pool); nothing to train")

        def pair_scores(g: int) -> torch.Tensor:
            rows = pair_sampler.batch(g).to(device)
            return self.image_head(pair_images[rows]) @ self.text_head(pair_text[rows]).t()

        def pool_mmd(g: int) -> torch.Tensor:
            images = self.image_head(common_images[pool_image_index[image_sampler.batch(g)].to(device)])
            texts = self.text_head(common_text[pool_text_index[text_sampler.batch(g)].to(device)])
            return cfg.mmd_weight * mmd2(images, texts)

        result = self.train_heads(context, pair_scores, ("mmd", pool_mmd) if use_mmd else None)
        result.notes.extend(notes)
        source = (f"spectral embeddings of {image_points.shape[0]} images and {text_points.shape[0]} captions "
                  f"({'paired and pooled' if pools else 'paired only'}), {spectral_dim} eigenvectors each; "
                  f"Nyström extension for dev/test")
        result.notes.append(source)
        result.notes.append(f"CCA on {paired.n_captions} pairs: {cca_dim} dims, top correlations "
                            + ", ".join(f"{c:.3f}" for c in self.cca.correlations[:3]))
        if not use_mmd:
            result.notes.append("no MMD term (" + ("paired-only twin" if not cfg.use_pools else
                                                   "an empty pool or mmd_weight 0") + ")")
        return result

    @staticmethod
    def _pool_slots(pool_ids: list[str], paired_ids: list[str], paired_rows: list[int],
                    pool_rows: list[int]) -> torch.Tensor:
        """Graph rows of every pool item: paired items are the graph's first rows, new pool items follow."""
        slot = {paired_ids[r]: i for i, r in enumerate(paired_rows)}
        slot.update({pool_ids[r]: len(paired_rows) + i for i, r in enumerate(pool_rows)})
        return torch.tensor([slot[item] for item in pool_ids], dtype=torch.long)

    # -- validation and embedding ----------------------------------------------------------------------
    def validator(self, validation: Split) -> Callable[[], dict[str, float]]:
        """Dev metrics of the heads as they are; the dev items' fixed front (Nyström + CCA) is computed once."""
        from bench.metrics import evaluate

        images = self.front_images(validation.features).to(self.device)
        texts = self.front_text(self.text.prepare(list(validation.captions)).vectors).to(self.device)
        size = self.config.eval_batch_size

        def validate() -> dict[str, float]:
            image_emb = embed_in_batches(lambda idx: self.image_head(images[idx]), images.shape[0], size,
                                         self.embedding_modules())
            text_emb = embed_in_batches(lambda idx: self.text_head(texts[idx]), texts.shape[0], size,
                                        self.embedding_modules())
            return evaluate(image_emb, text_emb, validation.caption_to_image).to_dict()

        return validate

    def encode_images(self, features: torch.Tensor) -> torch.Tensor:
        return self.image_head(self.front_images(features.cpu()).to(self.device))

    def encode_text(self, inputs: tuple) -> torch.Tensor:
        return self.text_head(self.front_text(inputs[0].cpu()).to(self.device))

    def describe(self) -> dict:
        cfg: SUEConfig = self.config
        return {**super().describe(), "use_pools": cfg.use_pools,
                "spectral": f"kNN graph (k={cfg.neighbours}, self-tuning scale), eigsh, Nyström extension",
                "refinement": "residual heads, MMD on unpaired batches + VSE++ hinge on pairs"}
