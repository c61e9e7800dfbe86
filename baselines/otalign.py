"""``otalign``: a linear teacher fitted on the pairs, then alignment heads trained on unpaired image and
caption batches with entropic optimal transport as the signal. The semi-supervised alignment of
frozen encoders of SOTAlign (Roschmann, Krzakala, Mazelet, Bouniot and Akata, "SOTAlign:
Semi-Supervised Alignment of Unimodal Vision and Language Models via Optimal Transport", 2026),
in the family of S-CLIP (Mo et al., NeurIPS 2023, pseudo-pairs for unpaired items by OT).

What it is, as built here:

1. **Teacher**: ridge CCA between the (centred) image features and the frozen MiniLM sentence
   vectors of the pairs, every paired caption one sample with its image (the ``cca`` row's
   :func:`baselines.cca.fit_canonical_maps`, there on standardised features). Its cosine
   similarities are the teacher's scores.
2. **Heads**, one per modality: a linear layer initialised at the teacher's projection, then a
   residual MLP whose last layer starts at zero, then L2 norm; so training starts at the teacher.
3. **Training signal** on every step (SOTAlign's stage 2): an unpaired image batch and an unpaired
   caption batch, the entropic OT plans (uniform marginals, log-domain Sinkhorn) of the heads'
   cosine scores (``student_epsilon``) and of the teacher's (``teacher_epsilon``), and
   ``KL(P_teacher || P_student)`` (the KLOT divergence; its gradient comes from the envelope
   theorem, :func:`bench.nn.transport.plan_kl`), plus the VSE++ hinge on a paired batch. The
   epoch kept is the best on dev.

Simplified, and why: SOTAlign's teacher and its heads are fitted with their own contrastive
objectives and its heads are larger; here the teacher is the closed-form ridge CCA (the ``cca``
row's method on the same vectors, so the two rows are comparable) and the pair term is the
hinge every other row uses. S-CLIP's pseudo-labels and its keyword-level partial labels are not
built: the OT signal here is the plan divergence alone.

Paired-only twin (:meth:`OTAlignModel.paired_only_twin`, ``use_pools=false``): no OT term and
no unpaired batch; the heads train from the same teacher on the pairs for the same updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from baselines.cca import FROZEN_TEXT_SIDES, check_text_encoder, notice, possible_dimensions
from baselines.heads import PoolHeadsModel
from baselines.jwae import CyclingSampler
from baselines.sue import CommonSpace
from bench.models.config import AT_LEAST_ONE, CPU_UPDATE_CAP, NON_NEGATIVE, POSITIVE, TrainingConfig, bounded
from bench.errors import BenchError
from bench.models import FitContext, FitResult, PairedData, UnpairedData
from bench.models.neural import float_tensor
from bench.nn import l2_normalize
from bench.nn.transport import plan_kl
from bench.models.search_space import UPDATES, Choice, LogUniform, ShareOfCap, Uniform


@dataclass(frozen=True)
class OTAlignConfig(TrainingConfig):
    text_encoder: str = "minilm"  # frozen sentence vectors only (gru is refused)
    # the linear teacher
    # (dim, reg and power: the best of a small grid on Flickr8k dev at 10 % paired, MiniLM)
    cca_dim: int = 128  # canonical dimensions = size of the common space
    cca_reg: float = bounded(10.0, NON_NEGATIVE)  # ridge on both covariances, relative to their mean variance
    cca_power: float = bounded(0.5, NON_NEGATIVE)  # teacher variates scaled by correlation ** this
    # the heads
    head_hidden: int = 512  # residual MLP hidden size
    # the OT signal
    ot_weight: float = 1.0  # KL between the teacher's and the heads' plans on unpaired batches (0: off)
    pair_weight: float = 1.0  # VSE++ hinge on the paired batch
    student_epsilon: float = bounded(0.05, POSITIVE)  # entropic regularisation of the heads' plan (cosine scores)
    teacher_epsilon: float = bounded(0.005, POSITIVE)  # ... of the teacher's plan (sharper)
    sinkhorn_iterations: int = bounded(100, AT_LEAST_ONE)
    unpaired_batch_size: int = 256  # unpaired images and captions per step (each)
    epoch_steps: int = bounded(100, AT_LEAST_ONE)  # updates per epoch (validation and checkpoint after each)
    use_pools: bool = True  # False: the paired-only twin (no OT term)
    lr: float = bounded(1e-4, POSITIVE)
    epochs: int = bounded(30, AT_LEAST_ONE)
    lr_decay_epoch: int = bounded(20, AT_LEAST_ONE)

    PROFILES: ClassVar[dict] = {
        "paper": {},
        # Flickr8k on one CPU thread, a 10 % cell in under 3 minutes: half the update cap of the cpu rows
        # (the heads start at the closed-form teacher), in epochs of 100 updates; OT on batches of 128
        # with 20 Sinkhorn iterations (the plans are most of a step's cost)
        "cpu": {"updates": CPU_UPDATE_CAP // 2, "epochs": 14, "lr_decay_epoch": 10, "lr": 3e-4,
                "unpaired_batch_size": 128, "sinkhorn_iterations": 20, "teacher_epsilon": 0.01},
        # the embedded synthetic data: a small space and a short run
        "quick": {"cca_dim": 16, "head_hidden": 64, "epochs": 6, "lr_decay_epoch": 4, "epoch_steps": 25,
                  "unpaired_batch_size": 128, "lr": 1e-3, "sinkhorn_iterations": 20, "teacher_epsilon": 0.01},
    }
    SEARCH_SPACE: ClassVar[dict] = {
        "cca_dim": Choice((64, 128, 256, 512)), "cca_reg": LogUniform(1e-3, 10.0), "cca_power": Uniform(0.0, 4.0),
        "ot_weight": LogUniform(0.03, 30.0), "student_epsilon": LogUniform(0.01, 0.2),
        "teacher_epsilon": LogUniform(0.002, 0.05), "lr": LogUniform(1e-5, 1e-3), "margin": Uniform(0.05, 0.4),
        UPDATES: ShareOfCap(0.1),
    }

    def __post_init__(self) -> None:
        check_text_encoder("otalign", self.text_encoder, FROZEN_TEXT_SIDES)
        super().__post_init__()


class TeacherHead(nn.Module):
    """A linear map initialised at the teacher's projection, a residual MLP starting at zero, L2 norm."""

    def __init__(self, mean: np.ndarray, projection: np.ndarray, hidden: int) -> None:
        super().__init__()
        dim_in, dim = projection.shape
        self.linear = nn.Linear(dim_in, dim)
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(projection.T.copy()).float())
            self.linear.bias.copy_(torch.from_numpy(-(mean @ projection)).float())
        self.inner = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.inner[2].weight)
        nn.init.zeros_(self.inner[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)
        return l2_normalize(h + self.inner(h))


class OTAlignModel(PoolHeadsModel):
    name = "otalign"
    summary = ("linear CCA teacher on the pairs; heads trained with the KL between Sinkhorn plans of unpaired "
               "batches (SOTAlign-style, frozen text)")
    aliases = ("sotalign",)
    config_class = OTAlignConfig
    uses_unpaired = True
    text_encoders = ("minilm",)
    teacher: CommonSpace | None = None

    def fit(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> FitResult:
        cfg: OTAlignConfig = self.settle_schedule(paired, unpaired)
        if paired.n_images < 2:
            raise BenchError(f"otalign needs at least 2 paired images for its teacher (got {paired.n_images})")
        notes: list[str] = []
        pools = cfg.use_pools and cfg.ot_weight > 0 and unpaired.n_images > 0 and unpaired.n_captions > 0
        self.start_fit(context, list(paired.captions) + (list(unpaired.captions) if pools else []))
        device = self.device

        # the teacher: ridge CCA on the pairs, every paired caption one sample with its image
        paired_text = self.text.prepare(list(paired.captions)).vectors
        dim = cfg.cca_dim
        most = max(1, possible_dimensions(paired.features.shape[1], paired_text.shape[1], paired.n_images))
        if dim > most:
            dim = most
            notice("otalign", f"cca_dim {cfg.cca_dim} > what {paired.n_images} paired images hold; "
                                    f"using {dim}", notes)
        self.teacher = CommonSpace.fit(paired.features, paired.caption_to_image, paired_text.numpy(), cfg.cca_reg,
                                       dim, cfg.cca_power)

        # heads that start at the teacher
        maps = self.teacher.maps
        self.image_head = TeacherHead(self.teacher.image_mean, maps.image_projection, cfg.head_hidden).to(device)
        self.text_head = TeacherHead(maps.text_mean, maps.text_projection, cfg.head_hidden).to(device)

        pair_features = float_tensor(paired.features).to(device)
        links = torch.as_tensor(paired.caption_to_image, dtype=torch.long, device=device)
        pair_text = paired_text.to(device)
        if pools:  # the pools as the heads read them, and the teacher's embedding of them (fixed)
            pool_features = float_tensor(unpaired.features).to(device)
            pool_text = self.text.prepare(list(unpaired.captions)).vectors.to(device)
            teacher_images = l2_normalize(torch.from_numpy(self.teacher.images(unpaired.features)).float()).to(device)
            teacher_text = l2_normalize(torch.from_numpy(
                self.teacher.text(pool_text.double().cpu().numpy())).float()).to(device)
        unpaired_bs = cfg.unpaired_batch_size if pools else 0
        image_sampler = CyclingSampler(unpaired.n_images, unpaired_bs, context.seed, "otalign-unpaired-images")
        text_sampler = CyclingSampler(unpaired.n_captions, unpaired_bs, context.seed, "otalign-unpaired-captions")
        pair_sampler = CyclingSampler(paired.n_captions, cfg.batch_size, context.seed, "otalign-paired")
        if cfg.pair_weight == 0 and not pools:
            raise BenchError("otalign: the pair and OT weights are both 0 (or there is no pool); nothing to train")

        def pair_scores(g: int) -> torch.Tensor:
            rows = pair_sampler.batch(g).to(device)
            return self.image_head(pair_features[links[rows]]) @ self.text_head(pair_text[rows]).t()

        def plan_divergence(g: int) -> torch.Tensor:
            images, texts = image_sampler.batch(g).to(device), text_sampler.batch(g).to(device)
            student = self.image_head(pool_features[images]) @ self.text_head(pool_text[texts]).t()
            teacher = teacher_images[images] @ teacher_text[texts].t()
            return cfg.ot_weight * plan_kl(student, teacher, cfg.student_epsilon, cfg.teacher_epsilon,
                                           cfg.sinkhorn_iterations)

        result = self.train_heads(context, pair_scores, ("ot", plan_divergence) if pools else None)
        result.notes.extend(notes)
        result.notes.append(f"teacher: ridge CCA on {paired.n_captions} pairs, {dim} dims, top correlations "
                            + ", ".join(f"{c:.3f}" for c in self.teacher.correlations[:3]))
        if pools:
            result.notes.append(f"OT term on unpaired batches of {image_sampler.batch_size} images x "
                                f"{text_sampler.batch_size} captions from pools of {unpaired.n_images} / "
                                f"{unpaired.n_captions}")
        else:
            result.notes.append("no OT term (" + ("paired-only twin" if not cfg.use_pools else
                                                  "an empty pool or ot_weight 0") + ")")
        return result

    def encode_images(self, features: torch.Tensor) -> torch.Tensor:
        return self.image_head(features)

    def encode_text(self, inputs: tuple) -> torch.Tensor:
        return self.text_head(*inputs)

    def describe(self) -> dict:
        cfg: OTAlignConfig = self.config
        return {**super().describe(), "use_pools": cfg.use_pools,
                "teacher": "ridge CCA on the pairs", "signal": "KL(P_teacher || P_heads), Sinkhorn plans of "
                                                              "unpaired batches, + VSE++ hinge on pairs"}
