"""``mine``: the proposed two-step cycle-consistent model.

Step 1: one autoencoder per modality into its own embedding space (image: MLPs over the
backbone features; text: the text side's GRU encoder and a teacher-forced GRU decoder, or, with
frozen MiniLM vectors, the sentence vector itself as the text embedding). Step 2: maps between
each embedding space and one shared latent space, trained with the seven scenarios of the
mission (:mod:`unimodel.objective`) and four WGAN-GP critics. Retrieval embeds through step 1
and the step-2 encoder, L2-normalised. The parts are in :mod:`unimodel.parts`, the settings in
:mod:`unimodel.config`.

``fit`` runs three named stages, each stage a :func:`bench.models.training.run_training` call with its
own checkpoint, so an interrupted run resumes in either:

1. :meth:`UnimodelModel.prepare`: pools, text side, parts, tensors.
2. :meth:`UnimodelModel.train_stage1` (``stage1.pt``): the step-1 autoencoders alone, on every
   image and caption the model sees, for ``stage1_epochs``; the kept epoch has the lowest dev
   reconstruction loss.
3. :meth:`UnimodelModel.train_stage2` (``checkpoint.pt``): everything, for ``epochs``; step 1 is
   fine-tuned by every loss (its reconstruction stays on, weight ``w_step1``), only by its
   reconstruction and the paired hinge (``step1_mode="retrieval"``), or frozen; the kept epoch has the
   best dev rsum. The first ``hinge_warmup_epochs`` use every violating negative (VSE0), then only
   the hardest: from scratch, the GRU's near-identical initial states (cosine ~0.94) make the
   hardest-negative hinge collapse every score to one value. With ``hinge_warmup_passes`` the
   warm-up lasts that many passes over the paired captions instead (:func:`hinge_warmup_for`), so
   it grows with the paired fraction.

Batching (stage 2): each step draws a paired batch of ``batch_size`` captions with their images
and, independently, ``batch_size`` unpaired images and ``batch_size`` unpaired captions. An epoch
is ``ceil(max(pool sizes) / batch_size)`` steps whatever the losses, so a paired-only config gets
as many updates as the full model; smaller pools cycle through fresh permutations drawn at the
start of the epoch, so an epoch depends only on the RNG state at its start (checkpointed). With
``paired_as_unpaired`` the paired items are in the unpaired pools too (already so under the
``overlap`` policy; added, matched by id, under ``disjoint``).

Critics: WGAN with gradient penalty (``gp_weight``), Adam (``critic_lr``, betas (0.5, 0.9)),
``critic_steps`` updates per model step on the same detached batch, then the model step against
the updated critics. A critic trains only while its scenario's weight is non-zero.

How the ``cpu`` profile was chosen, and step costs: ``reports/notes/mine.md``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from bench.errors import BenchError
from bench.models import FitContext, FitResult, PairedData, UnpairedData
from bench.models.neural import EmbeddingModel, float_tensor
from bench.nn import l2_normalize
from bench.nn.text import SentenceVectors, TokenizedCaptions, text_side
from bench.models.training import EpochLog, optimizer_step, run_training
from unimodel.config import UnimodelConfig
from unimodel.objective import (UNPAIRED_WEIGHTS, Batch, Forward, active_critics, needs_paired, needs_unpaired,
                                stage1_losses)
from unimodel.parts import CRITIC_NAMES, STEP1_NAMES, STEP2_NAMES, Critic, FeatureDecoder, FeatureEncoder, Parts, ResidualMLP

STAGE1_CHECKPOINT = "stage1.pt"


def _union(ids_a: list[str], items_a: list, ids_b: list[str], items_b: list) -> tuple[list[str], list]:
    """``b`` followed by the items of ``a`` whose ids aren't in ``b``."""
    seen = set(ids_b)
    extra = [i for i, item_id in enumerate(ids_a) if item_id not in seen]
    return list(ids_b) + [ids_a[i] for i in extra], list(items_b) + [items_a[i] for i in extra]


@dataclass(frozen=True, eq=False)
class Pools:
    """The unpaired image and caption pools the model trains on."""

    image_ids: list[str]
    features: np.ndarray
    caption_ids: list[str]
    captions: list[str]
    added_images: int  # paired images added because they weren't in the unpaired pool
    added_captions: int


def training_pools(paired: PairedData, unpaired: UnpairedData, paired_as_unpaired: bool = True) -> Pools:
    """The unpaired pools, with every paired image and caption added (matched by id) when
    ``paired_as_unpaired``: a no-op under the ``overlap`` policy, whose pools hold every
    training item already; under ``disjoint`` it adds the paired items."""
    dim = paired.features.shape[1] if paired.features.ndim == 2 else unpaired.features.shape[1]
    image_ids, features = list(unpaired.image_ids), np.asarray(unpaired.features, dtype=np.float32).reshape(-1, dim)
    caption_ids, captions = list(unpaired.caption_ids), list(unpaired.captions)
    if not paired_as_unpaired:
        return Pools(image_ids, features, caption_ids, captions, 0, 0)
    known = set(image_ids)
    extra = [i for i, image_id in enumerate(paired.image_ids) if image_id not in known]
    image_ids += [paired.image_ids[i] for i in extra]
    features = np.concatenate([features, np.asarray(paired.features, dtype=np.float32)[extra].reshape(-1, dim)])
    n_captions = len(caption_ids)
    caption_ids, captions = _union(paired.caption_ids, paired.captions, caption_ids, captions)
    return Pools(image_ids, features, caption_ids, captions, len(extra), len(caption_ids) - n_captions)


def epoch_batches(n: int, steps: int, batch_size: int) -> torch.Tensor:
    """``(steps, b)`` indices into ``range(n)``, ``b = min(batch_size, n)``: fresh permutations
    concatenated, so a pool smaller than the epoch is cycled and no batch repeats an item
    unless the pool is smaller than the batch."""
    b = min(batch_size, n)
    need = steps * b
    order = torch.cat([torch.randperm(n) for _ in range(math.ceil(need / n))])[:need]
    return order.view(steps, b)


def hinge_warmup_for(cfg: UnimodelConfig, n_paired: int, steps: int) -> int:
    """Stage-2 epochs of the VSE0 warm-up: ``hinge_warmup_epochs``, or with ``hinge_warmup_passes``
    enough whole epochs of ``steps`` paired batches to pass over the ``n_paired`` captions that many
    times, whichever is longer. The hardest-negative hinge needs embeddings spread by the warm-up
    first; one epoch passes over the pairs of 25 % four times but over those of 100 % only once."""
    if cfg.hinge_warmup_passes <= 0 or n_paired == 0:
        return cfg.hinge_warmup_epochs
    passes_per_epoch = steps * min(cfg.batch_size, n_paired) / n_paired
    # rounded first, so that a whole number of epochs off by float error is not rounded up to the next
    return max(cfg.hinge_warmup_epochs, math.ceil(round(cfg.hinge_warmup_passes / passes_per_epoch, 6)))


@dataclass(eq=False)
class TrainingData:
    """What both stages read, on the device: the paired set and the unpaired pools."""

    pools: Pools
    paired_features: torch.Tensor
    paired_links: torch.Tensor  # caption row -> image row of paired_features
    paired_text: TokenizedCaptions | SentenceVectors | None
    pool_images: torch.Tensor
    pool_text: TokenizedCaptions | SentenceVectors | None

    @property
    def n_paired(self) -> int:
        return len(self.paired_links)

    @property
    def n_images(self) -> int:
        return len(self.pools.image_ids)

    @property
    def n_texts(self) -> int:
        return len(self.pools.captions)


class UnimodelModel(EmbeddingModel):
    name = "mine"
    summary = ("two-step cycle-consistent model: per-modality autoencoders, then a shared latent space "
               "trained with cyclic, paired, adversarial and retrieval losses (uses unpaired data)")
    aliases = ("unimodel",)
    config_class = UnimodelConfig
    uses_unpaired = True

    def __init__(self, config: UnimodelConfig) -> None:
        super().__init__(config)
        self.parts: Parts | None = None

    @classmethod
    def paired_only_twin(cls, config: UnimodelConfig) -> UnimodelConfig:
        """The paired-only control: every scenario whose losses read the unpaired pools off (the
        weights tagged ``unpaired`` in :mod:`unimodel.config`) and no stage 1, whose autoencoders
        train on the pools; paired reconstruction and paired retrieval stay. Stage 2 keeps its
        epochs, each as long as the model's (a pass over the largest pool), so the twin trains the
        model's stage-2 updates; stage 1's few epochs are not added to it, and records count both."""
        return dataclasses.replace(config, stage1_epochs=0, **{name: 0.0 for name in UNPAIRED_WEIGHTS})

    # -- building ---------------------------------------------------------------------------
    def build_parts(self, feature_dim: int) -> Parts:
        """The twelve parts for this config (the step-1 text parts are None with frozen sentence vectors)."""
        cfg: UnimodelConfig = self.config
        text_encoder = text_decoder = None
        text_dim = self.text.vector_dim
        if self.text.reads_words:
            text_encoder = self.text.encoder(cfg.text_embed_dim, cfg.word_dim, cfg.text_layers, normalize=True,
                                             word_dropout=cfg.encoder_word_dropout)
            text_decoder = self.text.decoder(cfg.text_embed_dim, cfg.decoder_hidden, cfg.word_dim, cfg.decoder_layers,
                                             cfg.word_dropout)
            text_dim = cfg.text_embed_dim
        image_dim, latent, hidden, blocks = cfg.image_embed_dim, cfg.latent_dim, cfg.step2_hidden, cfg.step2_blocks
        mlp = dict(dropout=cfg.dropout, linear_start=cfg.linear_start)
        return Parts(
            image_encoder=FeatureEncoder(feature_dim, image_dim, cfg.image_hidden, cfg.image_blocks, **mlp),
            image_decoder=FeatureDecoder(image_dim, feature_dim, cfg.image_hidden, cfg.image_blocks, **mlp),
            text_encoder=text_encoder,
            text_decoder=text_decoder,
            image_emb_encoder=ResidualMLP(image_dim, latent, hidden, blocks, **mlp),
            image_emb_decoder=ResidualMLP(latent, image_dim, hidden, blocks, normalize=True, **mlp),
            text_emb_encoder=ResidualMLP(text_dim, latent, hidden, blocks, **mlp),
            text_emb_decoder=ResidualMLP(latent, text_dim, hidden, blocks, normalize=True, **mlp),
            image_emb_critic=Critic(image_dim, cfg.critic_hidden, cfg.critic_layers),
            text_emb_critic=Critic(text_dim, cfg.critic_hidden, cfg.critic_layers),
            latent_critic=Critic(latent, cfg.critic_hidden, cfg.critic_layers),
            prior_critic=Critic(latent, cfg.critic_hidden, cfg.critic_layers),
        )

    # -- training ----------------------------------------------------------------------------
    def fit(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> FitResult:
        cfg: UnimodelConfig = self.settle_schedule(paired, unpaired)
        if needs_paired(cfg) and paired.n_captions == 0:
            raise BenchError("mine needs paired captions (training without any pairs does not work)")
        data = self.prepare(paired, unpaired, context)
        notes = [
            f"text encoder: {cfg.text_encoder}; step 1 {cfg.step1_mode} in stage 2",
            f"unpaired pools: {data.n_images} images, {data.n_texts} captions "
            f"({data.pools.added_images} paired images and {data.pools.added_captions} paired captions added)",
        ]
        stage1 = None
        if cfg.stage1_epochs > 0:
            stage1 = self.train_stage1(data, context)
            best = stage1.validation_curve[stage1.best_epoch] if stage1.best_epoch is not None else {}
            notes.append(f"stage 1: {cfg.stage1_epochs} epochs of the step-1 autoencoders; kept epoch "
                         f"{stage1.best_epoch} (dev reconstruction {best.get('val_recon', float('nan')):.4f})")
        result = self.train_stage2(data, context)
        if stage1 is not None:  # the time of both stages, or None if either is unknown
            known = stage1.train_seconds is not None and result.train_seconds is not None
            result.train_seconds = round(stage1.train_seconds + result.train_seconds, 3) if known else None
        if result.resumed_from_epoch is None and stage1 is not None and stage1.resumed_from_epoch is not None:
            notes.append(f"stage 1 resumed after its epoch {stage1.resumed_from_epoch}")
        critics = ", ".join(active_critics(cfg)) or "none"
        steps = self._stage2_steps(data)
        notes.append(f"stage 2: {steps} steps per epoch; critics trained: {critics}")
        if cfg.hinge_warmup_passes > 0 and cfg.max_violation:  # without hardest negatives there is no warm-up
            notes.append(f"VSE0 warm-up: {hinge_warmup_for(cfg, data.n_paired, steps)} stage-2 epochs "
                         f"(at least {cfg.hinge_warmup_passes:g} passes over the {data.n_paired} paired captions)")
        result.notes.extend(notes)
        fixed, per_epoch = self.schedule(paired, unpaired)
        result.updates = fixed + per_epoch * result.epochs_run
        return result

    def schedule(self, paired: PairedData, unpaired: UnpairedData) -> tuple[int, int]:
        """Stage 1's updates (fixed) and stage 2's per epoch, as :meth:`train_stage1` and
        :meth:`_stage2_steps` count them on these pools."""
        cfg: UnimodelConfig = self.config
        pools = training_pools(paired, unpaired, cfg.paired_as_unpaired)
        n_images, n_texts = len(pools.image_ids), len(pools.captions)
        stage1_texts = n_texts if text_side(cfg.text_encoder).reads_words else 0
        stage1 = math.ceil(max(n_images, stage1_texts) / cfg.batch_size) * cfg.stage1_epochs
        return stage1, math.ceil(max(paired.n_captions, n_images, n_texts) / cfg.batch_size)

    def prepare(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> TrainingData:
        """Seed, text side (its vocabulary from every caption the model trains on, each once), the
        parts (image standardisation from every training image seen, once) and the tensors.

        A config with every unpaired scenario off (a paired-only control) trains on no unpaired
        caption, so its vocabulary comes from the paired captions alone, as ``vse``'s does: a word
        seen only in unpaired captions would otherwise keep its random, never-trained embedding and
        read as noise at test time instead of ``<unk>`` (how often, and what it cost the control:
        ``reports/flickr8k-gru/control-all-caption-vocabulary``)."""
        cfg: UnimodelConfig = self.config
        pools = training_pools(paired, unpaired, cfg.paired_as_unpaired)
        seen_captions = list(paired.captions)
        if needs_unpaired(cfg):
            _, seen_captions = _union(paired.caption_ids, paired.captions, list(unpaired.caption_ids),
                                      list(unpaired.captions))
        self.start_fit(context, seen_captions)
        feature_dim = paired.features.shape[1] if paired.n_images else unpaired.features.shape[1]
        self.parts = self.build_parts(feature_dim)
        if cfg.standardize_features:  # else the encoder's mean 0 and std 1 leave the features as they are
            seen = pools if cfg.paired_as_unpaired else training_pools(paired, unpaired, True)
            self.parts.image_encoder.set_statistics(float_tensor(seen.features))
        self.parts.to(self.device)
        return TrainingData(
            pools=pools,
            paired_features=float_tensor(paired.features).to(self.device),
            paired_links=torch.as_tensor(paired.caption_to_image, dtype=torch.long, device=self.device),
            paired_text=self.text.prepare(list(paired.captions)) if paired.n_captions else None,
            pool_images=float_tensor(pools.features).to(self.device),
            pool_text=self.text.prepare(pools.captions) if pools.captions else None,
        )

    def train_stage1(self, data: TrainingData, context: FitContext) -> FitResult:
        """The step-1 autoencoders alone, kept at their lowest dev reconstruction loss."""
        cfg, parts, device = self.config, self.parts, self.device
        params = parts.parameters(STEP1_NAMES)
        optimizer = torch.optim.Adam(params, lr=cfg.stage1_lr)
        train_text = parts.text_encoder is not None and data.n_texts > 0
        steps = math.ceil(max(data.n_images, data.n_texts if train_text else 0) / cfg.batch_size)
        progress = partial(context.progress, stage=1)
        dev_captions = self.text.prepare(list(context.validation.captions)) if parts.text_encoder is not None else None

        def train_epoch(epoch: int) -> dict[str, float]:
            image_idx = epoch_batches(data.n_images, steps, cfg.batch_size) if data.n_images else None
            text_idx = epoch_batches(data.n_texts, steps, cfg.batch_size) if train_text else None
            log = EpochLog(progress, steps, cfg.progress_every)
            for step in range(steps):
                texts = data.pool_text.batch(text_idx[step], device) if train_text else None
                images = data.pool_images[image_idx[step].to(device)] if data.n_images else None
                losses = stage1_losses(parts, images, texts)
                total = torch.stack(list(losses.values())).sum()
                optimizer_step(total, optimizer, params, cfg.grad_clip)
                log.add(step, {**{k: float(v.detach()) for k, v in losses.items()}, "total": float(total.detach())})
            return log.means()

        return run_training(modules=parts.modules(STEP1_NAMES), optimizers={"step1": optimizer}, schedulers=None,
                            n_epochs=cfg.stage1_epochs, train_epoch=train_epoch,
                            validate=partial(self._stage1_dev_loss, context.validation, dev_captions),
                            context=dataclasses.replace(context, progress=progress),
                            checkpoint_name=STAGE1_CHECKPOINT, score="recon", maximize=False)

    def _stage1_dev_loss(self, validation, captions) -> dict[str, float]:
        """Dev reconstruction loss of the step-1 autoencoders: ``recon`` and its parts (``captions``:
        the dev captions prepared once, or None without a step-1 text autoencoder)."""
        cfg, parts, device = self.config, self.parts, self.device
        totals: dict[str, float] = {}
        features = float_tensor(validation.features).to(device)
        for start in range(0, validation.n_images, cfg.eval_batch_size):
            idx = torch.arange(start, min(validation.n_images, start + cfg.eval_batch_size))
            for k, v in stage1_losses(parts, features[idx.to(device)], None).items():
                totals[k] = totals.get(k, 0.0) + float(v) * len(idx) / validation.n_images
        if captions is not None:
            m = validation.n_captions
            for start in range(0, m, cfg.eval_batch_size):
                idx = torch.arange(start, min(m, start + cfg.eval_batch_size))
                loss = stage1_losses(parts, None, captions.batch(idx, device))["step1_text"]
                totals["step1_text"] = totals.get("step1_text", 0.0) + float(loss) * len(idx) / m
        return {"recon": sum(totals.values()), **totals}

    def _stage2_steps(self, data: TrainingData) -> int:
        # Every pool counts even when only pairs are used, so a paired-only config gets as many
        # updates as the full model (a fair reference at small fractions).
        return math.ceil(max(data.n_paired, data.n_images, data.n_texts) / self.config.batch_size)

    def train_stage2(self, data: TrainingData, context: FitContext) -> FitResult:
        """Everything, with step 1 trained as ``step1_mode`` says, kept at the best dev rsum."""
        cfg, parts = self.config, self.parts
        train_step1 = cfg.step1_mode != "freeze"
        step2_params = parts.parameters(STEP2_NAMES)
        groups, model_params = [{"params": step2_params, "lr": cfg.lr}], list(step2_params)
        if train_step1:
            step1_params = parts.parameters(STEP1_NAMES)
            groups.append({"params": step1_params, "lr": cfg.lr * cfg.step1_lr_scale})
            model_params += step1_params
        model_optimizer = torch.optim.Adam(groups, lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(model_optimizer, step_size=cfg.lr_decay_epoch, gamma=cfg.lr_decay)
        critic_params = parts.parameters(CRITIC_NAMES)
        critic_optimizer = torch.optim.Adam(critic_params, lr=cfg.critic_lr, betas=(0.5, 0.9))
        use_unpaired = needs_unpaired(cfg) and data.n_images > 0 and data.n_texts > 0
        use_paired = needs_paired(cfg) and data.n_paired > 0
        steps = self._stage2_steps(data)
        warmup_epochs = hinge_warmup_for(cfg, data.n_paired, steps)

        def train_epoch(epoch: int) -> dict[str, float]:
            if not train_step1:
                for _, module in parts.items(STEP1_NAMES):
                    module.eval()
            hardest = cfg.max_violation and epoch >= warmup_epochs
            paired_idx = epoch_batches(data.n_paired, steps, cfg.batch_size) if use_paired else None
            image_idx = epoch_batches(data.n_images, steps, cfg.batch_size) if use_unpaired else None
            text_idx = epoch_batches(data.n_texts, steps, cfg.batch_size) if use_unpaired else None
            log = EpochLog(context.progress, steps, cfg.progress_every, stage=2)
            for step in range(steps):
                batch = Batch()
                if use_paired:
                    rows = paired_idx[step]
                    batch.paired_features = data.paired_features[data.paired_links[rows.to(self.device)]]
                    batch.paired_text = data.paired_text.batch(rows, self.device)
                if use_unpaired:
                    batch.images = data.pool_images[image_idx[step].to(self.device)]
                    batch.texts = data.pool_text.batch(text_idx[step], self.device)
                forward = Forward(parts, cfg, batch, train_step1, hardest)
                log.add(step, self._stage2_step(forward, model_optimizer, model_params, critic_optimizer,
                                                critic_params))
            return log.means()

        return run_training(modules=parts.modules(), optimizers={"model": model_optimizer, "critics": critic_optimizer},
                            schedulers={"model": scheduler}, n_epochs=cfg.epochs, train_epoch=train_epoch,
                            validate=self.validator(context.validation), context=context)

    def _stage2_step(self, forward: Forward, model_optimizer, model_params, critic_optimizer,
                     critic_params) -> dict[str, float]:
        """The critics' updates, then the model's against the updated critics. Returns the values to log."""
        cfg = self.config
        inputs, critic = forward.critic_inputs(), {}
        for _ in range(cfg.critic_steps if inputs else 0):
            critic = forward.critic_losses(inputs)
            optimizer_step(torch.stack([loss for loss, _ in critic.values()]).sum(), critic_optimizer,
                           critic_params, None)
        values = {f"wdist_{name}": float(distance) for name, (_, distance) in critic.items()}
        for p in critic_params:
            p.requires_grad_(False)
        try:
            losses = forward.model_losses()
            total = forward.total(losses)
            optimizer_step(total, model_optimizer, model_params, cfg.grad_clip)
        finally:
            for p in critic_params:
                p.requires_grad_(True)
        values["total"] = float(total.detach())
        values.update({k: float(v.detach()) for k, v in losses.items()})
        return values

    # -- embedding ---------------------------------------------------------------------------------
    def encode_images(self, features: torch.Tensor) -> torch.Tensor:
        return l2_normalize(self.parts.image_code(self.parts.embed_image(features)))

    def encode_text(self, inputs: tuple) -> torch.Tensor:
        return l2_normalize(self.parts.text_code(self.parts.embed_text(inputs)))

    def embedding_modules(self) -> list[nn.Module]:
        return [module for _, module in self.parts.items()] if self.parts is not None else []

    def describe(self) -> dict:
        if self.text is None:
            return {}
        out = super().describe()
        if self.parts is not None:
            out["parameters"] = {name: sum(p.numel() for p in m.parameters()) for name, m in self.parts.items()}
        out["critics"] = "WGAN-GP"
        return out
