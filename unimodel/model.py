"""``mine``: the proposed two-step cycle-consistent model — config, model, registration.

Step 1: one autoencoder per modality into its own embedding space (image: MLPs over the
backbone features; text: a GRU encoder and a teacher-forced GRU decoder, or — with
``text_encoder="minilm"`` — the frozen sentence vector itself as the text embedding).
Step 2: residual MLPs between each embedding space and one shared latent space, trained
with the seven scenarios of the mission (see :mod:`unimodel.objective`), with four WGAN-GP
critics. Retrieval embeds through step 1 and the step-2 encoder, L2-normalised.

Training runs in two stages, each a :func:`bench.training.run_training` call with its own
checkpoint, so an interrupted run resumes in either stage:

1. ``stage1.pt``: the step-1 autoencoders alone, on every image and caption the model sees
   (paired and unpaired), for ``stage1_epochs`` epochs; the kept epoch is the one with the
   lowest dev reconstruction loss (reported to ``run_training`` as ``rsum = −loss``).
2. ``checkpoint.pt``: everything, for ``epochs`` epochs; step 1 is fine-tuned (its
   reconstruction losses stay on, weight ``w_step1``) or frozen (``step1_mode="freeze"``);
   the kept epoch is the one with the best dev rsum. The first ``hinge_warmup_epochs``
   epochs use every violating negative (VSE0) and then only the hardest (VSE++): with the
   GRU text encoder, whose initial states are nearly identical (cosine ~0.94), the
   hardest-negative hinge from scratch collapses every score to one value (loss = 2·margin).

Batching (stage 2): each step draws a paired batch of ``batch_size`` captions with their
images, and — independently — ``batch_size`` unpaired images and ``batch_size`` unpaired
captions. An epoch is ``ceil(max(pool sizes) / batch_size)`` steps whatever the losses
(a paired-only config gets as many updates as the full model); smaller pools are cycled
through fresh permutations drawn at the start of the epoch, so an epoch's batches depend
only on the RNG state at its start (which the checkpoint keeps) and a resumed run ends
exactly where an uninterrupted one does. With ``paired_as_unpaired`` (default) the paired
images and captions are also in the unpaired pools: under the ``overlap`` split policy they
are there already; under ``disjoint`` they are added (matched by id).

Critics: WGAN with gradient penalty (λ = ``gp_weight``; no weight clipping), Adam
(``critic_lr``, betas (0.5, 0.9)), ``critic_steps`` updates per model step on the same
detached batch, then the model step against the updated critics. A critic trains only while
its scenario's weight is non-zero.

Profiles: ``paper`` (the defaults: GPU-sized, latent 1024, GRU text, every scenario on) and
``cpu`` (small and short for the 2-core Flickr8k grid). Measured while choosing ``cpu``
(dev splits only, seed 0, MiniLM text):

* Flickr8k dev, the first cpu profile (two-layer residual maps, latent 256, no stage 1): its
  curve peaked after 1–2 epochs and fell (100 %: 204 then 187 by epoch 12; 10 %: 102 then
  86), and with the paired hinge alone the same network peaked lower (188 / 84): the
  non-linear maps overfit. Paired hinge only, 4 epochs, best dev rsum at 100 % / 10 %: as
  first 188 / 84; no residual blocks 206 / 80; maps that start linear 207 / 91; those with
  latent 512 213 / 85; plus dropout 0.5 227 / 112 (for scale: purely linear maps on
  unstandardised features 231 / 116; ``vse`` cpu 241 / 114 in 12 epochs). With every
  scenario on (the unpaired ones included) and dropout 0.5: 221 / 124; plus one stage-1
  epoch and ``w_step1=1`` 233 / 138; three stage-1 epochs 140 at 10 %; without cyclic
  reconstruction 135 at 10 %; VSE0 throughout instead of hardest negatives after one epoch:
  no change (138). At 10 % the best epoch is the first (235 steps = ten passes over the
  3,000 paired captions), later ones overfit the pairs, so the profile stops after 8 epochs.
* synthetic (2000 train images), 12 epochs, an older cpu profile, dev rsum at 10 % / 100 %
  paired: ``cpu`` profile 534.9 / 573.4 (keeps 93 %), or 527.9 / 571.5 (92 %) with one
  stage-1 epoch and ``w_step1=1``; the same network with only the paired hinge 492.6 / 571.8
  (86 %); ``vse`` cpu 454.0 / 573.8 (79 %); ``jwae`` cpu 454.6 / 573.0 (79 %).
* what mattered at 10 % (synthetic, 4 epochs, from 526.6 with paired recon + auto + cyclic
  + paired hinge): without paired reconstruction ~ −45, without step-2 auto-reconstruction
  −14, without cyclic −8; adding pseudo-pair retrieval −11 (weight 0.1) to −22 (0.5, and
  without detaching the pseudo target worse still); adversarial terms at 0.01 ±0, at 0.05
  unstable (−35, the critics lag and the model overshoots); the step-1 image autoencoder
  −11 to −16 on synthetic features (256-d, no bottleneck) but +17 on Flickr8k dev (1280-d
  EfficientNet features, 10 % paired, 3 epochs: 102.4 → 119.3; 100 % paired 204.3 → 210.3).
* GRU text (synthetic, 10 % paired): the paired-hinge-only network reaches 445.9 in 12 epochs
  (``vse`` gru 162.2: 8 steps an epoch); the full model was below its paired-only reference
  after 4 epochs (376–403 vs 422), the step-1 text autoencoder not helping there either.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from bench.errors import BenchError
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
from bench.nn.decoders import GRUTextDecoder
from bench.nn.encoders import TEXT_ENCODERS, TextPipeline, embed_in_batches
from bench.text import Vocabulary
from bench.training import CHECKPOINT_NAME, optimizer_step, run_training, seed_everything
from unimodel.objective import Batch, Forward, active_critics, needs_paired, needs_unpaired, stage1_losses
from unimodel.parts import STEP1_NAMES, STEP2_NAMES, CRITIC_NAMES, Critic, FeatureDecoder, FeatureEncoder, Parts, ResidualMLP

VOCABULARY_FILE = "vocabulary.json"
STAGE1_CHECKPOINT = "stage1.pt"
STEP1_MODES = ("finetune", "freeze")

# Seconds per Flickr8k epoch (30,000 training captions -> 235 steps at every paired fraction,
# validation included), cpu profile, one torch thread on the otherwise quiet 2-core machine.
CPU_TIMINGS: dict[str, float] = {
    "stage 1 (image autoencoder, 6,000 images)": 3.6,
    "stage 2, minilm (the cpu profile), 100 % or 10 % paired": 47.0,
    "stage 2, minilm, two threads": 31.0,
    "stage 2, gru text encoder, 10 % paired": 136.0,
}


@dataclass(frozen=True)
class UnimodelConfig(ModelConfig):
    text_encoder: str = "gru"  # "gru" (step-1 text autoencoder) or "minilm" (frozen sentence vector = w)
    # step 1
    image_embed_dim: int = 1024  # size of the image-embedding space p
    image_hidden: int = 2048  # width of the image encoder/decoder MLPs
    image_blocks: int = 1  # residual blocks in each
    text_embed_dim: int = 1024  # size of the text-embedding space w (GRU hidden size; gru only)
    word_dim: int = 300
    text_layers: int = 1  # GRU encoder layers
    decoder_hidden: int = 1024  # GRU decoder hidden size
    decoder_layers: int = 2
    word_dropout: float = 0.2  # decoder input words replaced by <unk> (teacher forcing)
    min_count: int = 4  # vocabulary threshold over every training caption the model sees
    # step 2
    latent_dim: int = 1024
    step2_hidden: int = 1024  # width of the residual MLPs E'_v, G'_v, E'_t, G'_t
    step2_blocks: int = 2
    dropout: float = 0.0  # on the hidden activations of every encoder/decoder MLP
    linear_start: bool = False  # every encoder/decoder MLP starts as its linear shortcut
    # critics (WGAN-GP)
    critic_hidden: int = 512
    critic_layers: int = 2
    critic_lr: float = 1e-4
    critic_steps: int = 1  # critic updates per model update
    gp_weight: float = 10.0
    prior_sigma: float = 1.0  # the latent prior is N(0, sigma^2 I)
    # scenario weights (0 switches a scenario off)
    w_step1: float = 1.0  # 1. step-1 reconstruction during stage 2 (fine-tuning only)
    w_auto: float = 1.0  # 1. step-2 embedding auto-reconstruction
    w_cyclic: float = 1.0  # 2. cyclic reconstruction on unpaired data
    w_paired_recon: float = 1.0  # 3. paired reconstruction
    w_latent_adv: float = 0.01  # 4. latent critic: image codes vs text codes
    w_prior_adv: float = 0.01  # 4. prior critic: codes vs N(0, sigma^2 I)
    w_domain_adv: float = 0.01  # 5. domain critics on both embedding spaces
    w_paired_retrieval: float = 1.0  # 6. hinge with hardest negatives on codes of pairs
    w_unpaired_retrieval: float = 0.1  # 7. the same hinge on pseudo-pairs
    margin: float = 0.2
    max_violation: bool = True  # hardest negatives (VSE++) ...
    hinge_warmup_epochs: int = 1  # ... after this many stage-2 epochs with every negative (VSE0)
    pseudo_detach: bool = True  # scenario 7: no gradient through the translation that makes the pseudo item
    paired_as_unpaired: bool = True  # paired items are also in the unpaired pools
    # schedule
    stage1_epochs: int = 5
    stage1_lr: float = 1e-3
    epochs: int = 30
    lr: float = 2e-4
    lr_decay_epoch: int = 15
    lr_decay: float = 0.1
    step1_mode: str = "finetune"  # "finetune" or "freeze" step 1 in stage 2
    step1_lr_scale: float = 1.0  # stage-2 learning rate of step-1 parts, relative to lr
    batch_size: int = 128
    grad_clip: float = 2.0
    eval_batch_size: int = 1024
    progress_every: int = 10

    PROFILES: ClassVar[dict] = {
        "paper": {},
        # Small and short for 2 CPU cores, every choice made on the Flickr8k dev split (seed 0,
        # MiniLM text; the measurements are in the module docstring): frozen MiniLM sentence
        # vectors as the text embedding (as the vse and jwae cpu profiles); single-layer maps
        # that start linear, with dropout 0.5, because the deeper ones overfit 6,000 images
        # within two epochs; three stage-1 epochs of the image autoencoder, whose
        # reconstruction stays on in stage 2; no pseudo-pair retrieval (neutral on Flickr8k
        # dev, -11 on synthetic dev); faint adversarial terms.
        "cpu": {
            "text_encoder": "minilm", "image_embed_dim": 512, "image_hidden": 512, "text_embed_dim": 512,
            "decoder_hidden": 512, "decoder_layers": 1, "latent_dim": 512, "step2_hidden": 512,
            "image_blocks": 0, "step2_blocks": 0, "linear_start": True, "dropout": 0.5,
            "critic_hidden": 256, "stage1_epochs": 3, "w_step1": 1.0, "w_unpaired_retrieval": 0.0,
            "epochs": 8, "lr_decay_epoch": 5,
        },
    }


class _Score:
    """What ``run_training`` needs from a validation result, for stage 1: ``rsum = −dev loss``."""

    def __init__(self, loss: float, parts: dict[str, float]) -> None:
        self.rsum, self._parts = -loss, parts

    def to_dict(self) -> dict[str, float]:
        return {"recon": -self.rsum, **self._parts, "rsum": self.rsum}


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


def _float_tensor(features: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))


class UnimodelModel(RetrievalModel):
    uses_unpaired = True

    def __init__(self, config: UnimodelConfig) -> None:
        super().__init__(config)
        self.parts: Parts | None = None
        self.pipeline: TextPipeline | None = None
        self.device = torch.device("cpu")

    # -- building ---------------------------------------------------------------------------
    def _check_config(self) -> None:
        cfg: UnimodelConfig = self.config
        if cfg.text_encoder not in TEXT_ENCODERS:
            raise BenchError(f"unknown text encoder '{cfg.text_encoder}'; choose one of {', '.join(TEXT_ENCODERS)}")
        if cfg.step1_mode not in STEP1_MODES:
            raise BenchError(f"step1_mode must be one of {', '.join(STEP1_MODES)}, not '{cfg.step1_mode}'")
        if cfg.batch_size < 2:
            raise BenchError("mine needs batch_size >= 2 (a batch of one has no negatives)")

    def build_parts(self, feature_dim: int, vocabulary: Vocabulary | None) -> Parts:
        """The twelve parts for this config (the step-1 text parts are None with minilm)."""
        cfg: UnimodelConfig = self.config
        text_encoder = text_decoder = None
        if cfg.text_encoder == "gru":
            text_encoder = self.pipeline.build_encoder(cfg.text_embed_dim, cfg.word_dim, cfg.text_layers, normalize=True)
            text_decoder = GRUTextDecoder(len(vocabulary), cfg.text_embed_dim, cfg.word_dim, cfg.decoder_hidden,
                                          cfg.decoder_layers, cfg.word_dropout, pad_id=vocabulary.pad_id,
                                          start_id=vocabulary.start_id, unk_id=vocabulary.unk_id)
            text_dim = cfg.text_embed_dim
        else:
            from bench.nn.sentences import DIMENSION

            text_dim = DIMENSION
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

    @staticmethod
    def _save_vocabulary(vocabulary: Vocabulary, workdir) -> None:
        path = workdir / VOCABULARY_FILE
        if path.exists() and any((workdir / name).exists() for name in (CHECKPOINT_NAME, STAGE1_CHECKPOINT)):
            try:
                previous = Vocabulary.load(path)
            except Exception:
                previous = None
            if previous is not None and previous.words != vocabulary.words:
                raise BenchError(f"{workdir} holds a checkpoint trained on other captions (its vocabulary differs); "
                                 "delete the folder or rerun with --force")
        vocabulary.save(path)

    # -- training ----------------------------------------------------------------------------
    def fit(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> FitResult:
        cfg: UnimodelConfig = self.config
        self._check_config()
        if needs_paired(cfg) and paired.n_captions == 0:
            raise BenchError("mine needs paired captions (training without any pairs does not work)")
        seed_everything(context.seed)
        self.device = device = torch.device(context.device)
        workdir = context.workdir
        workdir.mkdir(parents=True, exist_ok=True)

        pools = training_pools(paired, unpaired, cfg.paired_as_unpaired)
        pool_features, pool_captions = pools.features, pools.captions

        # Vocabulary from every training caption the model sees (each caption once).
        vocabulary = None
        if cfg.text_encoder == "gru":
            _, seen_captions = _union(paired.caption_ids, paired.captions, list(unpaired.caption_ids),
                                      list(unpaired.captions))
            vocabulary = Vocabulary.build(seen_captions, cfg.min_count)
            self._save_vocabulary(vocabulary, workdir)
        self.pipeline = pipeline = TextPipeline(cfg.text_encoder, vocabulary, context.cache_dir)

        feature_dim = paired.features.shape[1] if paired.n_images else unpaired.features.shape[1]
        self.parts = parts = self.build_parts(feature_dim, vocabulary)
        seen = pools if cfg.paired_as_unpaired else training_pools(paired, unpaired, True)
        parts.image_encoder.set_statistics(_float_tensor(seen.features))  # every training image seen, once
        parts.to(device)

        paired_features = _float_tensor(paired.features).to(device)
        paired_links = torch.as_tensor(paired.caption_to_image, dtype=torch.long, device=device)
        paired_text = pipeline.prepare(list(paired.captions)) if paired.n_captions else None
        pool_images = _float_tensor(pool_features).to(device)
        pool_text = pipeline.prepare(pool_captions) if pool_captions else None
        validation = context.validation
        val_features = _float_tensor(validation.features).to(device)
        val_text = pipeline.prepare(list(validation.captions))
        n_paired, n_images, n_texts = paired.n_captions, len(pools.image_ids), len(pool_captions)
        text_batch = lambda prepared, idx: prepared.batch(idx, device)  # noqa: E731

        # -- stage 1: step-1 autoencoders on every image and caption ----------------------------
        step1_modules = parts.modules(STEP1_NAMES)
        step1_params = parts.parameters(STEP1_NAMES)
        step1_optimizer = torch.optim.Adam(step1_params, lr=cfg.stage1_lr)
        train_text_ae = parts.text_encoder is not None and n_texts > 0

        def stage1_epoch(epoch: int) -> dict[str, float]:
            steps = math.ceil(max(n_images, n_texts if train_text_ae else 0) / cfg.batch_size)
            image_idx = epoch_batches(n_images, steps, cfg.batch_size) if n_images else None
            text_idx = epoch_batches(n_texts, steps, cfg.batch_size) if train_text_ae else None
            sums: dict[str, float] = defaultdict(float)
            for step in range(steps):
                texts = text_batch(pool_text, text_idx[step]) if train_text_ae else None
                images = pool_images[image_idx[step].to(device)] if n_images else None
                losses = stage1_losses(parts, images, texts)
                total = torch.stack(list(losses.values())).sum()
                optimizer_step(total, step1_optimizer, step1_params, cfg.grad_clip)
                for k, v in losses.items():
                    sums[k] += float(v.detach())
                if (step + 1) % max(1, cfg.progress_every) == 0 or step + 1 == steps:
                    context.progress(stage=1, step=step + 1, steps=steps, loss=float(total.detach()))
            return {k: v / max(steps, 1) for k, v in sums.items()}

        def stage1_validate() -> _Score:
            totals: dict[str, float] = defaultdict(float)
            n = validation.n_images
            for start in range(0, n, cfg.eval_batch_size):
                idx = torch.arange(start, min(n, start + cfg.eval_batch_size))
                texts = None
                losses = stage1_losses(parts, val_features[idx.to(device)], texts)
                for k, v in losses.items():
                    totals[k] += float(v) * len(idx) / n
            if parts.text_encoder is not None:
                m = validation.n_captions
                for start in range(0, m, cfg.eval_batch_size):
                    idx = torch.arange(start, min(m, start + cfg.eval_batch_size))
                    losses = stage1_losses(parts, None, text_batch(val_text, idx))
                    totals["step1_text"] += float(losses["step1_text"]) * len(idx) / m
            return _Score(sum(totals.values()), dict(totals))

        def stage1_progress(**fields) -> None:
            if "val_rsum" in fields:  # the stage-1 "rsum" is minus the dev reconstruction loss
                fields["val_recon"] = -fields.pop("val_rsum")
                fields.pop("best_rsum", None)
            context.progress(stage=1, **fields)

        notes = [
            f"text encoder: {cfg.text_encoder}; step 1 {cfg.step1_mode} in stage 2",
            f"unpaired pools: {n_images} images, {n_texts} captions "
            f"({pools.added_images} paired images and {pools.added_captions} paired captions added)",
        ]
        stage1 = None
        if cfg.stage1_epochs > 0:
            stage1 = run_training(modules=step1_modules, optimizers={"step1": step1_optimizer}, schedulers=None,
                                  n_epochs=cfg.stage1_epochs, train_epoch=stage1_epoch, validate=stage1_validate,
                                  context=dataclasses.replace(context, progress=stage1_progress),
                                  checkpoint_name=STAGE1_CHECKPOINT)
            best = stage1.validation_curve[stage1.best_epoch] if stage1.best_epoch is not None else {}
            notes.append(f"stage 1: {cfg.stage1_epochs} epochs of the step-1 autoencoders; kept epoch "
                         f"{stage1.best_epoch} (dev reconstruction {-best.get('val_rsum', float('nan')):.4f})")

        # -- stage 2: everything ---------------------------------------------------------------
        train_step1 = cfg.step1_mode == "finetune"
        step2_params = parts.parameters(STEP2_NAMES)
        groups = [{"params": step2_params, "lr": cfg.lr}]
        model_params = list(step2_params)
        if train_step1:
            groups.append({"params": step1_params, "lr": cfg.lr * cfg.step1_lr_scale})
            model_params += step1_params
        model_optimizer = torch.optim.Adam(groups, lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(model_optimizer, step_size=max(1, cfg.lr_decay_epoch),
                                                    gamma=cfg.lr_decay)
        critic_names = active_critics(cfg)
        critic_params = parts.parameters(CRITIC_NAMES)
        critic_optimizer = torch.optim.Adam(critic_params, lr=cfg.critic_lr, betas=(0.5, 0.9))
        use_unpaired = needs_unpaired(cfg) and n_images > 0 and n_texts > 0
        use_paired = needs_paired(cfg) and n_paired > 0
        # The epoch length counts every pool even when only pairs are used, so a paired-only
        # config gets as many updates as the full model (a fair reference at small fractions).
        steps = math.ceil(max(n_paired, n_images, n_texts) / cfg.batch_size)

        def stage2_epoch(epoch: int) -> dict[str, float]:
            if not train_step1:
                for name in STEP1_NAMES:
                    if getattr(parts, name) is not None:
                        getattr(parts, name).eval()
            hardest = cfg.max_violation and epoch >= cfg.hinge_warmup_epochs
            paired_idx = epoch_batches(n_paired, steps, cfg.batch_size) if use_paired else None
            image_idx = epoch_batches(n_images, steps, cfg.batch_size) if use_unpaired else None
            text_idx = epoch_batches(n_texts, steps, cfg.batch_size) if use_unpaired else None
            sums: dict[str, float] = defaultdict(float)
            for step in range(steps):
                batch = Batch()
                if use_paired:
                    rows = paired_idx[step]
                    batch.paired_features = paired_features[paired_links[rows.to(device)]]
                    batch.paired_text = text_batch(paired_text, rows)
                if use_unpaired:
                    batch.images = pool_images[image_idx[step].to(device)]
                    batch.texts = text_batch(pool_text, text_idx[step])
                forward = Forward(parts, cfg, batch, train_step1, hardest)
                inputs, critic = forward.critic_inputs(), {}
                for _ in range(cfg.critic_steps if inputs else 0):
                    critic = forward.critic_losses(inputs)
                    optimizer_step(torch.stack([loss for loss, _ in critic.values()]).sum(), critic_optimizer,
                                   critic_params, None)
                for name, (_, distance) in critic.items():
                    sums[f"wdist_{name}"] += float(distance)
                for p in critic_params:
                    p.requires_grad_(False)
                try:
                    losses = forward.model_losses()
                    total = forward.total(losses)
                    optimizer_step(total, model_optimizer, model_params, cfg.grad_clip)
                finally:
                    for p in critic_params:
                        p.requires_grad_(True)
                sums["total"] += float(total.detach())
                for k, v in losses.items():
                    sums[k] += float(v.detach())
                if (step + 1) % max(1, cfg.progress_every) == 0 or step + 1 == steps:
                    context.progress(stage=2, step=step + 1, steps=steps, loss=sums["total"] / (step + 1))
            return {k: v / steps for k, v in sums.items()}

        def stage2_validate():
            from bench.metrics import evaluate

            images = self._embed_features(val_features)
            captions = self._embed_prepared(val_text)
            return evaluate(images, captions, validation.caption_to_image)

        result = run_training(modules=parts.modules(), optimizers={"model": model_optimizer, "critics": critic_optimizer},
                              schedulers={"model": scheduler}, n_epochs=cfg.epochs, train_epoch=stage2_epoch,
                              validate=stage2_validate, context=context)
        if result.resumed_from_epoch is None and stage1 is not None and stage1.resumed_from_epoch is not None:
            notes.append(f"stage 1 resumed after its epoch {stage1.resumed_from_epoch}")
        notes.append(f"stage 2: {steps} steps per epoch; critics trained: {', '.join(critic_names) or 'none'}")
        result.notes.extend(notes)
        return result

    # -- embedding ---------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if self.parts is None or self.pipeline is None:
            raise BenchError("the mine model has not been fitted yet")

    def _embed(self, encode, n: int) -> torch.Tensor:
        return embed_in_batches(encode, n, self.config.eval_batch_size,
                                modules=[module for _, module in self.parts.items()])

    def _embed_features(self, features: torch.Tensor) -> torch.Tensor:
        parts = self.parts
        return self._embed(lambda idx: l2_normalize(parts.image_code(parts.embed_image(features[idx.to(features.device)]))),
                           features.shape[0])

    def _embed_prepared(self, prepared) -> torch.Tensor:
        parts = self.parts
        return self._embed(lambda idx: l2_normalize(parts.text_code(parts.embed_text(prepared.batch(idx, self.device)))),
                           len(prepared))

    def embed_images(self, features: np.ndarray) -> torch.Tensor:
        self._require_fitted()
        return self._embed_features(_float_tensor(features).to(self.device))

    def embed_captions(self, captions: list[str]) -> torch.Tensor:
        self._require_fitted()
        return self._embed_prepared(self.pipeline.prepare(list(captions)))

    def describe(self) -> dict:
        if self.pipeline is None:
            return {}
        out = dict(self.pipeline.describe())
        if self.parts is not None:
            out["parameters"] = {name: sum(p.numel() for p in m.parameters()) for name, m in self.parts.items()}
        out["critics"] = "WGAN-GP"
        return out


register_model(
    ModelSpec(
        name="mine",
        factory=UnimodelModel,
        config_class=UnimodelConfig,
        summary="two-step cycle-consistent model: per-modality autoencoders, then a shared latent space "
                "trained with cyclic, paired, adversarial and retrieval losses (uses unpaired data)",
        aliases=("unimodel",),
        uses_unpaired=True,
    )
)
