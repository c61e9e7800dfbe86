"""``jwae``: Joint Wasserstein Autoencoders (Mahajan et al. 2019), common-latent variant, no SCAN.

What it is (facts from the paper and the authors' code ``visinf/jwae``; written anew here):

* **encoders** into a ``embed_size`` latent as in VSE++: image = one linear layer on the
  precomputed features; text = word embeddings + GRU (``text_encoder="gru"``) or frozen
  all-MiniLM-L6-v2 sentence vectors + a linear projection (``"minilm"``), both from
  :mod:`bench.nn.encoders`. Similarity = cosine of the L2-normalised codes.
* **decoders** back from the code: image = MLP ``d -> 1024 -> 1024 -> feature_dim`` with an L1
  reconstruction of the features; text = a 2-layer GRU language model with teacher forcing and
  word dropout 0.2, trained by negative log-likelihood (:mod:`bench.nn.decoders`).
* **prior**: a WAE-GAN critic, MLP ``d -> 256 -> 1`` (LeakyReLU), tells samples of the prior
  from the codes of both modalities; the encoders learn to fool it. The critic is updated on
  every ``disc_every``-th step (3) with its own Adam (lr 5e-5, betas (0.5, 0.999)), before that
  step's encoder update, from codes detached from the encoders.
* **alignment**: :func:`bench.nn.losses.hinge_ranking_loss` (VSE++ max violation, margin 0.2) on
  the paired rows of each step only.

Loss of one step (weights as in the authors' code; a weight of 0 switches its term off)::

    ranking_weight * hinge(paired)                            # summed over the paired batch
  + image_rec_weight * mean_i sum_k |x_ik - x^_ik|              # 0.05 x L1 per image
  + text_rec_weight * mean_j NLL(caption_j | code_j)            # 0.005 x NLL per caption (gru)
    (minilm: sentence_rec_weight * mean_j ||v_j - v^_j||^2)
  + adversarial_weight * (mean_i -log D(c_i) + mean_j -log D(c_j))   # 0.01, images + captions

Departures from the authors' code (deliberate): the text decoder's targets are the *next*
tokens (their NLL scores each input token at its own position, unshifted), dropped words
become ``<unk>`` (theirs became ``<pad>``), the critic's gradients are zeroed before each of
its updates and the encoder loss doesn't reach it (theirs accumulated across steps), the
critic schedule counts global steps (theirs restarted ``i % 3`` every epoch), and the critic
compares codes with prior samples on a common scale (below).

Design decisions
----------------
**Where the prior is matched** (``prior_space``). The authors feed the critic L2-normalised
codes and compare them with N(0, I) samples, whose norm is about sqrt(d) = 32: the critic wins
by the norm alone. Two coherent fixes are implemented:

``"sphere"`` (default)
    the code is ``c = sqrt(d) * h / |h|`` (``h`` = encoder output) and the prior samples are
    ``sqrt(d) * e / |e|`` with ``e ~ N(0, I)``: N(0, I) with its radius fixed where it
    concentrates anyway in high dimension. Its directions are uniform on the sphere, which is
    exactly the geometry the ranking loss and cosine retrieval see, so the prior term acts on
    what retrieval uses (a uniformity pressure, cf. hyperspherical VAEs). It treats the GRU,
    whose state is tanh-bounded in (-1, 1)^d and could never match N(0, 1) marginals, the same
    as the linear encoders, and it keeps the authors' choice of decoding from the normalised code.
``"raw"``
    the unnormalised ``h`` is matched to N(0, I), decoded from, and normalised only for
    ranking/retrieval. Closer to a textbook WAE, but with the gru encoder the critic can
    separate the bounded GRU states from Gaussian samples and pushes the GRU toward saturation.

In both cases the decoders and the critic read the same code ``c`` (the WAE's decoder reads the
latent whose aggregate distribution is matched to the prior), and retrieval uses ``c / |c|``.

**Semi-supervised batching.** Every step draws a paired batch (``batch_size`` captions with
their images), an unpaired image batch and an unpaired caption batch (``unpaired_batch_size``
each, equal to ``batch_size`` by default, so a step sees paired and unpaired data 1:1). Paired
rows feed every term; unpaired rows feed only the reconstruction and prior terms, never the
ranking loss. The unpaired pools are read by their own shuffled cycling samplers whose
permutation for each pass is derived from ``(seed, pool, pass)`` and whose position is the
global step, so resuming from a checkpoint continues them exactly. An empty pool (``disjoint``
at 100 %) just contributes no rows. ``epoch_over`` chooses what an epoch is:

``"paired"`` (default)
    one pass over the paired captions, the same as VSE++. Both models then make the same
    number of ranking updates on the same pairs under the same lr schedule, so a difference at
    a given fraction comes from the unpaired terms, not from extra optimisation of the pairs;
    and an epoch costs in proportion to the pairs, as for VSE++. The price: at 10 % paired
    (3,000 Flickr8k captions, 24 steps) a 12-epoch run draws 36,864 unpaired captions and as many
    unpaired images: ~1.2 passes over the 30,000 captions, ~6 over the 6,000 images.
``"longest"``
    one pass over the largest of the three pools (paired captions cycling too), so every
    unpaired item is seen once per epoch whatever the fraction. At 10 % this repeats the pairs
    ~10 times per epoch and costs as much as 100 % does.

**Text reconstruction with minilm.** The minilm text input is a frozen 384-d unit sentence
vector, not words, so the text decoder is an MLP ``d -> sentence_decoder_hidden -> 384``
reconstructing that vector, with the summed squared error weighted by ``sentence_rec_weight =
0.5``. The target is a unit vector, so a decoder that predicts ~0 pays ~1 (0.5 weighted) and a
useful one a few tenths: the scale of 0.005 x NLL of a ~13-token caption (0.37-0.42 weighted
in the first steps on Flickr8k, measured, and falling as it trains). Squared error rather than L1
because the vector's information is in its direction across all 384 entries, not in sparse ones.
(The untrained MLP reading a radius-sqrt(d) code overshoots for the first few dozen steps.)

**Vocabulary** (gru): words seen >= ``min_count`` times among the distinct training captions the
model trains on (paired and unpaired, counted once per caption id even when a caption is in both
sets), saved to ``<workdir>/vocabulary.json``. Nothing from the dev or test split.

**Reproducible schedules.** The global step is ``epoch * steps_per_epoch + step`` (fixed by the
data sizes), so the every-3rd-step critic schedule and the unpaired samplers resume exactly;
batch order, word dropout and prior samples come from torch's global RNG, which
:func:`bench.training.run_training` checkpoints.

Profiles
--------
===================================  =============  ========  =========================================
setting                              paper          cpu       why the cpu value
===================================  =============  ========  =========================================
embed_size (latent, GRU encoder)     1024           512       as VSE++'s cpu profile (same encoders)
epochs / lr_decay_epoch              30 / 15        12 / 8    as VSE++'s cpu profile (comparable runs)
image_decoder_hidden                 1024, 1024     512, 512  decoder the size of the latent
decoder_word_dim / decoder_hidden    1024 / 2048    256 / 256 the text decoder dominates a step (~3k-word
                                                              softmax, 2 layers): hidden 512 cost ~2.0
                                                              CPU-s/step, 256 ~1.05; without it ~0.6,
                                                              and the VSE++ part alone ~0.3
decoder_layers / word_dropout        2 / 0.2        2 / 0.2   kept
sentence_decoder_hidden (minilm)     1024           512
text_encoder                         gru            minilm    a gru grid costs ~1.5 CPU-hours on 2 cores;
                                                              ``--text-encoders gru`` runs it anyway
weights, margin, lr, batch, clip,    as the         same
critic (256 hidden, lr 5e-5, 1/3)    authors
===================================  =============  ========  =========================================

Measured epoch times on the 2 shared development cores: see ``CPU_TIMINGS``. A gru step costs
about 3.5x a VSE++ step (twice the encoder rows, plus the decoders); minilm steps are ~20x cheaper
than gru ones. Run with **one torch thread** on the shared machine (``OMP_NUM_THREADS=1``): with two
threads and other jobs on the cores, a step took 4.5x longer (9.1 s instead of 2.0 s wall).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

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
from bench.nn import losses
from bench.nn.decoders import (
    GRUTextDecoder,
    LatentCritic,
    MLPDecoder,
    critic_loss,
    fooling_loss,
    l1_reconstruction,
    sample_prior,
    squared_reconstruction,
)
from bench.nn.encoders import ImageEncoder, TextPipeline, embed_in_batches
from bench.text import Vocabulary
from bench.training import CHECKPOINT_NAME, check_finite, minibatches, optimizer_step, run_training, seed_everything

VOCABULARY_FILE = "vocabulary.json"
PRIOR_SPACES = ("sphere", "raw")
EPOCH_MODES = ("paired", "longest")

# CPU-seconds per Flickr8k epoch, cpu profile, overlap policy (unpaired = all 6,000 train images and
# 30,000 captions), one torch thread, training steps + validation on the 1,000 dev images. Per-step
# cost averaged over 12-24 steps and multiplied by the steps per epoch (235 at 100 %, 24 at 10 %).
# Wall time on the shared 2 cores was about twice these (load ~6); uncontended it is about these.
# minilm excludes the one-off MiniLM encoding of the 40,000 Flickr8k captions (~200 CPU-s, cached).
CPU_TIMINGS: dict[str, float] = {
    "gru, 100 % paired": 248.0,  # 1.05 CPU-s/step; measured wall 2.0 s/step -> ~8 min/epoch
    "gru, 10 % paired": 26.4,  # 1.02 CPU-s/step; measured wall for the whole epoch 54 s
    "minilm, 100 % paired": 14.1,  # 0.059 CPU-s/step; wall ~28 s/epoch
    "minilm, 10 % paired": 1.6,  # wall ~3 s/epoch
}


@dataclass(frozen=True)
class JWAEConfig(ModelConfig):
    # encoders
    text_encoder: str = "gru"  # "gru" (word embeddings + GRU) or "minilm" (frozen sentence vectors + projection)
    embed_size: int = 1024  # latent size (= GRU encoder hidden size)
    word_dim: int = 300  # encoder word embedding size
    num_layers: int = 1  # encoder GRU layers
    min_count: int = 4  # vocabulary threshold (training captions only)
    # decoders
    image_decoder_hidden: tuple = (1024, 1024)  # image MLP hidden sizes: d -> 1024 -> 1024 -> features
    decoder_word_dim: int = 1024  # text decoder word embedding size (and code projection size)
    decoder_hidden: int = 2048  # text decoder GRU hidden size
    decoder_layers: int = 2
    word_dropout: float = 0.2
    sentence_decoder_hidden: int = 1024  # minilm: MLP d -> this -> 384
    # prior and critic
    prior_space: str = "sphere"  # "sphere" or "raw": which code meets the prior (see the docstring)
    disc_hidden: int = 256
    disc_every: int = 3  # critic update on every n-th global step (0, n, 2n, ...)
    disc_lr: float = 5e-5
    disc_beta1: float = 0.5
    disc_beta2: float = 0.999
    # loss weights (0 switches a term off)
    ranking_weight: float = 1.0
    image_rec_weight: float = 0.05  # x per-image summed L1
    text_rec_weight: float = 0.005  # x per-caption summed NLL (gru)
    sentence_rec_weight: float = 0.5  # x per-caption summed squared error of the sentence vector (minilm)
    adversarial_weight: float = 0.01  # x (image + caption) non-saturating critic loss
    margin: float = 0.2
    max_violation: bool = True
    # optimisation and batching
    lr: float = 2e-4
    lr_decay_epoch: int = 15
    lr_decay: float = 0.1
    epochs: int = 30
    batch_size: int = 128  # paired captions per step
    unpaired_batch_size: int = 128  # unpaired images and unpaired captions per step (each)
    epoch_over: str = "paired"  # "paired" (one pass over paired captions) or "longest" (largest pool)
    grad_clip: float = 2.0
    eval_batch_size: int = 1024
    progress_every: int = 10

    PROFILES: ClassVar[dict] = {
        "paper": {},
        "cpu": {
            "text_encoder": "minilm",
            "embed_size": 512,
            "epochs": 12,
            "lr_decay_epoch": 8,
            "image_decoder_hidden": (512, 512),
            "decoder_word_dim": 256,
            "decoder_hidden": 256,
            "sentence_decoder_hidden": 512,
        },
    }

    def weights(self) -> dict[str, float]:
        text = ("text_rec", self.text_rec_weight) if self.text_encoder == "gru" else ("sentence_rec",
                                                                                     self.sentence_rec_weight)
        return {"ranking": self.ranking_weight, "image_rec": self.image_rec_weight, text[0]: text[1],
                "adversarial": self.adversarial_weight}


class CyclingSampler:
    """Index batches cycling through ``range(n)`` in a fresh shuffled order on every pass.

    The order of pass ``k`` comes from a generator seeded by ``(seed, salt, k)`` and batch ``g``
    starts at position ``g * batch_size`` of the endless concatenation of passes, so a batch is
    a pure function of the step: no state to checkpoint, and a resumed run draws what an
    uninterrupted one would. Batches hold ``min(batch_size, n)`` distinct indices; ``n = 0`` or
    ``batch_size = 0`` gives empty batches.
    """

    def __init__(self, n: int, batch_size: int, seed: int, salt: str) -> None:
        self.n, self.batch_size, self.seed, self.salt = n, min(batch_size, n), seed, salt
        self._cache: dict[int, torch.Tensor] = {}

    def _order(self, k: int) -> torch.Tensor:
        if k not in self._cache:
            digest = hashlib.sha256(f"{self.seed}:{self.salt}:{k}".encode()).digest()
            generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
            if len(self._cache) > 4:
                self._cache.pop(min(self._cache))
            self._cache[k] = torch.randperm(self.n, generator=generator)
        return self._cache[k]

    def batch(self, step: int) -> torch.Tensor:
        if self.batch_size == 0:  # an empty pool, or unpaired batches switched off
            return torch.zeros(0, dtype=torch.long)
        parts, offset, need = [], step * self.batch_size, self.batch_size
        while need:
            k, position = divmod(offset, self.n)
            take = min(need, self.n - position)
            parts.append(self._order(k)[position : position + take])
            offset, need = offset + take, need - take
        return torch.cat(parts)

    def steps_per_pass(self) -> int:
        return math.ceil(self.n / self.batch_size) if self.n else 0


class JWAEModel(RetrievalModel):
    uses_unpaired = True

    def __init__(self, config: JWAEConfig) -> None:
        super().__init__(config)
        self.pipeline: TextPipeline | None = None
        self.modules: dict[str, nn.Module] = {}
        self.device = torch.device("cpu")

    # -- setup ------------------------------------------------------------------------------
    def _check_config(self) -> None:
        cfg: JWAEConfig = self.config
        if cfg.text_encoder not in ("gru", "minilm"):
            raise BenchError(f"jwae: unknown text_encoder '{cfg.text_encoder}'; choose gru or minilm")
        if cfg.prior_space not in PRIOR_SPACES:
            raise BenchError(f"jwae: prior_space must be one of {', '.join(PRIOR_SPACES)}, not '{cfg.prior_space}'")
        if cfg.epoch_over not in EPOCH_MODES:
            raise BenchError(f"jwae: epoch_over must be one of {', '.join(EPOCH_MODES)}, not '{cfg.epoch_over}'")
        if cfg.batch_size < 2:
            raise BenchError("jwae needs batch_size >= 2 (a batch of one has no negatives)")
        if cfg.disc_every < 1:
            raise BenchError("jwae: disc_every must be >= 1")

    def setup(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> None:
        """Vocabulary, text tensors, modules, optimizers and samplers (everything but the loop)."""
        cfg: JWAEConfig = self.config
        self._check_config()
        if paired.n_captions == 0:
            raise BenchError("jwae needs at least one paired caption (the ranking loss aligns the modalities)")
        seed_everything(context.seed)
        self.device = device = torch.device(context.device)
        workdir = context.workdir
        workdir.mkdir(parents=True, exist_ok=True)

        vocabulary = None
        if cfg.text_encoder == "gru":
            distinct = dict(zip(paired.caption_ids, paired.captions))
            distinct.update(zip(unpaired.caption_ids, unpaired.captions))
            vocabulary = Vocabulary.build(distinct.values(), cfg.min_count)
            self._save_vocabulary(vocabulary, workdir)
        self.pipeline = pipeline = TextPipeline(cfg.text_encoder, vocabulary, context.cache_dir)

        # One store per modality: paired rows first, then the unpaired pool.
        self.n_paired_images, self.n_paired_captions = paired.n_images, paired.n_captions
        self.n_unpaired_images, self.n_unpaired_captions = unpaired.n_images, unpaired.n_captions
        feature_dim = paired.features.shape[1]
        features = np.concatenate([np.asarray(paired.features, dtype=np.float32),
                                   np.asarray(unpaired.features, dtype=np.float32).reshape(-1, feature_dim)])
        self.features = torch.from_numpy(np.ascontiguousarray(features)).to(device)
        self.links = torch.as_tensor(paired.caption_to_image, dtype=torch.long)
        self.text = pipeline.prepare(list(paired.captions) + list(unpaired.captions))

        d = cfg.embed_size
        image_encoder = ImageEncoder(feature_dim, d, normalize=False)
        text_encoder = pipeline.build_encoder(d, cfg.word_dim, cfg.num_layers, normalize=False)
        image_decoder = MLPDecoder(d, tuple(cfg.image_decoder_hidden), feature_dim)
        if cfg.text_encoder == "gru":
            text_decoder = GRUTextDecoder(len(vocabulary), d, cfg.decoder_word_dim, cfg.decoder_hidden,
                                          cfg.decoder_layers, cfg.word_dropout, vocabulary.pad_id,
                                          vocabulary.start_id, vocabulary.unk_id)
        else:
            from bench.nn.sentences import DIMENSION

            text_decoder = MLPDecoder(d, (cfg.sentence_decoder_hidden,), DIMENSION)
        critic = LatentCritic(d, cfg.disc_hidden)
        self.modules = {"image_encoder": image_encoder, "text_encoder": text_encoder,
                        "image_decoder": image_decoder, "text_decoder": text_decoder, "critic": critic}
        for module in self.modules.values():
            module.to(device)
        self.trainable = [p for name, m in self.modules.items() if name != "critic"
                           for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.trainable, lr=cfg.lr)
        self.critic_optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.disc_lr,
                                                 betas=(cfg.disc_beta1, cfg.disc_beta2))
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=cfg.lr_decay_epoch,
                                                         gamma=cfg.lr_decay)

        unpaired_bs = cfg.unpaired_batch_size if self._uses_unpaired_terms() else 0
        self.image_sampler = CyclingSampler(self.n_unpaired_images, unpaired_bs, context.seed, "unpaired-images")
        self.caption_sampler = CyclingSampler(self.n_unpaired_captions, unpaired_bs, context.seed,
                                              "unpaired-captions")
        self.paired_sampler = CyclingSampler(self.n_paired_captions, cfg.batch_size, context.seed, "paired")
        if cfg.epoch_over == "paired":
            self.steps_per_epoch = math.ceil(self.n_paired_captions / cfg.batch_size)
        else:
            self.steps_per_epoch = max(self.paired_sampler.steps_per_pass(), self.image_sampler.steps_per_pass(),
                                       self.caption_sampler.steps_per_pass())

    def _uses_unpaired_terms(self) -> bool:
        cfg: JWAEConfig = self.config
        text_weight = cfg.text_rec_weight if cfg.text_encoder == "gru" else cfg.sentence_rec_weight
        return any(w > 0 for w in (cfg.image_rec_weight, text_weight, cfg.adversarial_weight))

    @staticmethod
    def _save_vocabulary(vocabulary: Vocabulary, workdir) -> None:
        path = workdir / VOCABULARY_FILE
        if path.exists() and (workdir / CHECKPOINT_NAME).exists():
            try:
                previous = Vocabulary.load(path)
            except Exception:
                previous = None
            if previous is not None and previous.words != vocabulary.words:
                raise BenchError(f"{workdir} holds a checkpoint trained on other captions (its vocabulary "
                                 "differs); delete the folder or rerun with --force")
        vocabulary.save(path)

    # -- the code and one training step ----------------------------------------------------------
    def code(self, h: torch.Tensor) -> torch.Tensor:
        """The code the decoders and the critic read (see ``prior_space``); retrieval uses its direction."""
        if self.config.prior_space == "sphere":
            return l2_normalize(h) * math.sqrt(h.shape[1])
        return h

    def train_step(self, global_step: int, paired_rows: torch.Tensor, unpaired_images: torch.Tensor,
                   unpaired_captions: torch.Tensor) -> dict[str, float]:
        """One update: paired caption rows (into the paired set), unpaired pool rows. Returns the terms."""
        cfg: JWAEConfig = self.config
        m, device = self.modules, self.device
        n_pairs = len(paired_rows)
        image_rows = torch.cat([self.links[paired_rows], self.n_paired_images + unpaired_images])
        caption_rows = torch.cat([paired_rows, self.n_paired_captions + unpaired_captions])
        images = self.features[image_rows.to(device)]
        text_inputs = self.text.batch(caption_rows, device)
        h_image = m["image_encoder"](images)
        h_text = m["text_encoder"](*text_inputs)
        c_image, c_text = self.code(h_image), self.code(h_text)

        terms: dict[str, torch.Tensor] = {}
        if cfg.ranking_weight:
            scores = l2_normalize(h_image[:n_pairs]) @ l2_normalize(h_text[:n_pairs]).t()
            terms["ranking"] = cfg.ranking_weight * losses.hinge_ranking_loss(scores, cfg.margin, cfg.max_violation)
        if cfg.image_rec_weight:
            terms["image_rec"] = cfg.image_rec_weight * l1_reconstruction(m["image_decoder"](c_image), images)
        if cfg.text_encoder == "gru" and cfg.text_rec_weight:
            terms["text_rec"] = cfg.text_rec_weight * m["text_decoder"].nll(c_text, *text_inputs).mean()
        if cfg.text_encoder == "minilm" and cfg.sentence_rec_weight:
            terms["sentence_rec"] = cfg.sentence_rec_weight * squared_reconstruction(m["text_decoder"](c_text),
                                                                                     text_inputs[0])
        out: dict[str, float] = {}
        if cfg.adversarial_weight:
            critic = m["critic"]
            codes = torch.cat([c_image, c_text])
            if global_step % cfg.disc_every == 0:
                prior = sample_prior(codes.shape[0], codes.shape[1], cfg.prior_space == "sphere", device)
                d_loss = critic_loss(critic, prior, codes.detach())
                optimizer_step(d_loss, self.critic_optimizer, list(critic.parameters()), None)
                out["critic"] = float(d_loss.detach())
            critic.requires_grad_(False)
            try:
                terms["adversarial"] = cfg.adversarial_weight * (fooling_loss(critic, c_image)
                                                                 + fooling_loss(critic, c_text))
            finally:
                critic.requires_grad_(True)
        if not terms:
            raise BenchError("jwae: every loss weight is 0; nothing to train")
        total = sum(terms.values())
        optimizer_step(total, self.optimizer, self.trainable, cfg.grad_clip)
        out.update({name: float(value.detach()) for name, value in terms.items()})
        out["total"] = float(total.detach())
        check_finite(out)
        return out

    # -- training ------------------------------------------------------------------------------
    def fit(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> FitResult:
        cfg: JWAEConfig = self.config
        self.setup(paired, unpaired, context)
        steps = self.steps_per_epoch
        validation = context.validation
        val_text = self.pipeline.prepare(list(validation.captions))

        def train_epoch(epoch: int) -> dict[str, float]:
            sums: dict[str, float] = {}
            counts: dict[str, int] = {}
            if cfg.epoch_over == "paired":
                batches = minibatches(self.n_paired_captions, cfg.batch_size, shuffle=True)
            else:
                batches = (self.paired_sampler.batch(epoch * steps + s) for s in range(steps))
            for step, paired_rows in enumerate(batches):
                g = epoch * steps + step
                values = self.train_step(g, paired_rows, self.image_sampler.batch(g), self.caption_sampler.batch(g))
                for name, value in values.items():
                    sums[name] = sums.get(name, 0.0) + value
                    counts[name] = counts.get(name, 0) + 1
                if (step + 1) % max(1, cfg.progress_every) == 0 or step + 1 == steps:
                    context.progress(step=step + 1, steps=steps, loss=sums["total"] / counts["total"])
            return {name: sums[name] / counts[name] for name in sums}

        def validate():
            from bench.metrics import evaluate

            return evaluate(self.embed_images(validation.features), self._embed_prepared(val_text),
                            validation.caption_to_image)

        result = run_training(
            modules=self.modules,
            optimizers={"adam": self.optimizer, "critic_adam": self.critic_optimizer},
            schedulers={"step_lr": self.scheduler},
            n_epochs=cfg.epochs,
            train_epoch=train_epoch,
            validate=validate,
            context=context,
        )
        pools = f"unpaired pools: {self.n_unpaired_images} images, {self.n_unpaired_captions} captions"
        if not self._uses_unpaired_terms():
            pools += " (unused: every reconstruction and prior weight is 0)"
        elif not self.n_unpaired_images or not self.n_unpaired_captions:
            pools += " (an empty pool contributes no rows)"
        result.notes.append(pools)
        over = "the paired captions" if cfg.epoch_over == "paired" else "the largest pool"
        result.notes.append(f"epoch = one pass over {over}: {steps} steps of "
                            f"{cfg.batch_size} paired + {self.image_sampler.batch_size} unpaired images + "
                            f"{self.caption_sampler.batch_size} unpaired captions")
        return result

    # -- embedding -------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self.modules or self.pipeline is None:
            raise BenchError("the jwae model has not been fitted yet")

    def _embed(self, module: nn.Module, encode, n: int) -> torch.Tensor:
        return embed_in_batches(lambda idx: l2_normalize(encode(idx)), n, self.config.eval_batch_size,
                                modules=[module])

    def embed_images(self, features: np.ndarray) -> torch.Tensor:
        self._require_fitted()
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        encoder = self.modules["image_encoder"]
        return self._embed(encoder, lambda idx: encoder(x[idx].to(self.device)), x.shape[0])

    def embed_captions(self, captions: list[str]) -> torch.Tensor:
        self._require_fitted()
        return self._embed_prepared(self.pipeline.prepare(list(captions)))

    def _embed_prepared(self, prepared) -> torch.Tensor:
        encoder = self.modules["text_encoder"]
        return self._embed(encoder, lambda idx: encoder(*prepared.batch(idx, self.device)), len(prepared))

    def describe(self) -> dict:
        cfg: JWAEConfig = self.config
        facts = dict(self.pipeline.describe()) if self.pipeline is not None else {"text_encoder": cfg.text_encoder}
        facts.update({
            "weights": cfg.weights(),
            "text_reconstruction": ("GRU decoder NLL (teacher forcing, word dropout "
                                    f"{cfg.word_dropout:g})" if cfg.text_encoder == "gru"
                                    else "MLP to the frozen sentence vector, squared error"),
            "prior": "WAE-GAN, N(0, I) " + ("projected onto radius sqrt(d)" if cfg.prior_space == "sphere"
                                            else "on the raw codes"),
            "prior_space": cfg.prior_space,
            "critic_every": cfg.disc_every,
            "epoch_over": cfg.epoch_over,
            "unpaired_batch_size": cfg.unpaired_batch_size,
        })
        return facts


register_model(
    ModelSpec(
        name="jwae",
        factory=JWAEModel,
        config_class=JWAEConfig,
        summary="JWAE: VSE++ encoders + decoders + WAE-GAN shared prior; unpaired data feeds reconstruction and prior",
        aliases=("wae",),
        uses_unpaired=True,
    )
)
