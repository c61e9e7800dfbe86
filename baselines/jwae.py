"""``jwae``: Joint Wasserstein Autoencoders (Mahajan et al. 2019), common-latent variant, no SCAN.

What it is (facts from the paper and the authors' code ``visinf/jwae``; written anew here):

* **encoders** into an ``embed_size`` latent as in VSE++: a linear layer on the image features,
  and the text side's encoder (GRU, or a projection of frozen MiniLM vectors). Retrieval uses
  the cosine of the codes.
* **decoders** back from the code: image = MLP ``d -> 1024 -> 1024 -> feature_dim`` with an L1
  reconstruction; text = a 2-layer GRU language model (teacher forcing, word dropout 0.2) trained
  by negative log-likelihood, or with MiniLM an MLP back to the sentence vector (squared error).
* **prior**: a WAE-GAN critic, MLP ``d -> 256 -> 1``, tells samples of the prior from the codes of
  both modalities; the encoders learn to fool it. The critic steps on every ``disc_every``-th
  global step (3) with its own Adam (lr 5e-5, betas (0.5, 0.999)), before that step's encoder
  update, on detached codes.
* **alignment**: the VSE++ hinge (max violation, margin 0.2) on the paired rows of each step only.

Loss of one step (weights as in the authors' code; a weight of 0 switches its term off)::

    ranking_weight * hinge(paired)                            # summed over the paired batch
  + image_rec_weight * mean_i sum_k |x_ik - x^_ik|              # 0.05 x L1 per image
  + text_rec_weight * mean_j NLL(caption_j | code_j)            # 0.005 x NLL per caption (gru)
    (minilm: sentence_rec_weight * mean_j ||v_j - v^_j||^2)
  + adversarial_weight * (mean_i -log D(c_i) + mean_j -log D(c_j))   # 0.01, images + captions

Departures from the authors' code (deliberate): the text decoder's targets are the *next*
tokens (theirs scored each input token at its own position), dropped words become ``<unk>``
(theirs ``<pad>``), the critic's gradients are zeroed before each of its updates and the encoder
loss doesn't reach it (theirs accumulated), the critic schedule counts global steps (theirs
restarted every epoch), and the critic compares codes with prior samples on a common scale:

* ``prior_space="sphere"`` (default): the code is ``sqrt(d) * h / |h|`` and the prior samples are
  N(0, I) projected to the same radius, where N(0, I) concentrates anyway; the prior then acts on
  the directions that cosine retrieval uses, for the GRU's bounded states as for linear codes.
* ``prior_space="raw"``: ``h`` itself is matched to N(0, I) and normalised only for retrieval.

Batching: every step draws a paired batch and, from cycling samplers whose order is a function of
``(seed, pool, pass)`` and the global step (so a resumed run draws what an uninterrupted one
would), an unpaired image batch and an unpaired caption batch of ``unpaired_batch_size``.
Unpaired rows feed the reconstruction and prior terms, never the ranking loss. An epoch is one
pass over the paired captions (``epoch_over="paired"``, the same ranking updates as VSE++) or
over the largest pool (``"longest"``). The GRU vocabulary comes from every distinct training
caption the model reads, paired and unpaired; nothing from dev or test.

The reasoning behind these choices at length, the profiles and the step costs:
``reports/notes/jwae.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from baselines.vse import CPU_PROFILE, VSEConfig
from bench.models.config import TrainingConfig
from bench.errors import BenchError
from bench.models.search_space import LogUniform
from bench.models import FitContext, FitResult, PairedData, UnpairedData
from bench.models.neural import EmbeddingModel, float_tensor
from bench.nn import l2_normalize, losses
from bench.nn.decoders import (
    LatentCritic,
    MLPDecoder,
    critic_loss,
    fooling_loss,
    l1_reconstruction,
    sample_prior,
    squared_reconstruction,
)
from bench.nn.encoders import ImageEncoder
from bench.nn.text import TEXT_SIDES
from bench.models.training import EpochLog, check_finite, minibatches, optimizer_step, run_training

PRIOR_SPACES = ("sphere", "raw")
EPOCH_MODES = ("paired", "longest")


@dataclass(frozen=True)
class JWAEConfig(TrainingConfig):
    # encoders
    embed_size: int = 1024  # latent size (= GRU encoder hidden size)
    num_layers: int = 1  # encoder GRU layers
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
    # batching
    unpaired_batch_size: int = 128  # unpaired images and unpaired captions per step (each)
    epoch_over: str = "paired"  # "paired" (one pass over paired captions) or "longest" (largest pool)

    PROFILES: ClassVar[dict] = {
        "paper": {},
        # vse's cpu schedule, with decoders the size of the latent (the text decoder dominates a step)
        "cpu": {**CPU_PROFILE, "image_decoder_hidden": (512, 512), "decoder_word_dim": 256, "decoder_hidden": 256,
                "sentence_decoder_hidden": 512},
    }
    # quick (the default on the embedded synthetic data): the cpu profile for half the epochs,
    # counted in epochs of that small data
    PROFILES["quick"] = {**PROFILES["cpu"], "updates": 0, "epochs": 6, "lr_decay_epoch": 4}
    # vse's space plus the loss weights around their defaults (text_rec_weight acts with gru text,
    # sentence_rec_weight with minilm; the other one is inert in a study)
    SEARCH_SPACE: ClassVar[dict] = {**VSEConfig.SEARCH_SPACE, "image_rec_weight": LogUniform(0.005, 0.5),
                                    "text_rec_weight": LogUniform(5e-4, 0.05),
                                    "sentence_rec_weight": LogUniform(0.05, 5.0),
                                    "adversarial_weight": LogUniform(1e-3, 0.1)}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prior_space not in PRIOR_SPACES:
            raise BenchError(f"jwae: prior_space must be one of {', '.join(PRIOR_SPACES)}, not '{self.prior_space}'")
        if self.epoch_over not in EPOCH_MODES:
            raise BenchError(f"jwae: epoch_over must be one of {', '.join(EPOCH_MODES)}, not '{self.epoch_over}'")
        if self.disc_every < 1:
            raise BenchError("jwae: disc_every must be >= 1")

    def text_reconstruction(self, reads_words: bool) -> tuple[str, float]:
        """The text reconstruction term's name and weight: NLL of words, or the sentence vector's error."""
        return ("text_rec", self.text_rec_weight) if reads_words else ("sentence_rec", self.sentence_rec_weight)


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


class JWAEModel(EmbeddingModel):
    name = "jwae"
    summary = "JWAE: VSE++ encoders + decoders + WAE-GAN shared prior; unpaired data feeds reconstruction and prior"
    aliases = ("wae",)
    config_class = JWAEConfig
    uses_unpaired = True

    def __init__(self, config: JWAEConfig) -> None:
        super().__init__(config)
        self.modules: dict[str, nn.Module] = {}

    @classmethod
    def paired_only_twin(cls, config: JWAEConfig) -> JWAEConfig:
        """JWAE with its reconstruction and prior terms off: no unpaired batch is drawn, and the ranking
        loss on the pairs trains the same encoders for the same number of updates (an epoch is a pass
        over the paired captions under ``epoch_over="paired"``, the setting of every profile)."""
        return dataclasses.replace(config, image_rec_weight=0.0, text_rec_weight=0.0, sentence_rec_weight=0.0,
                                   adversarial_weight=0.0)

    # -- setup ------------------------------------------------------------------------------
    def setup(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> None:
        """Text side, data tensors, modules, optimizers and samplers (everything but the loop)."""
        cfg: JWAEConfig = self.config
        if paired.n_captions == 0:
            raise BenchError("jwae needs at least one paired caption (the ranking loss aligns the modalities)")
        distinct = dict(zip(paired.caption_ids, paired.captions))
        distinct.update(zip(unpaired.caption_ids, unpaired.captions))
        self.start_fit(context, distinct.values())
        device = self.device

        # One store per modality: paired rows first, then the unpaired pool.
        self.n_paired_images, self.n_paired_captions = paired.n_images, paired.n_captions
        self.n_unpaired_images, self.n_unpaired_captions = unpaired.n_images, unpaired.n_captions
        feature_dim = paired.features.shape[1]
        features = np.concatenate([np.asarray(paired.features, dtype=np.float32),
                                   np.asarray(unpaired.features, dtype=np.float32).reshape(-1, feature_dim)])
        self.features = float_tensor(features).to(device)
        self.links = torch.as_tensor(paired.caption_to_image, dtype=torch.long)
        self.captions = self.text.prepare(list(paired.captions) + list(unpaired.captions))

        d = cfg.embed_size
        self.text_term = cfg.text_reconstruction(self.text.reads_words)
        decoder_hidden = cfg.decoder_hidden if self.text.reads_words else cfg.sentence_decoder_hidden
        self.modules = {  # built in this order, so the seeded initial weights don't move
            "image_encoder": ImageEncoder(feature_dim, d, normalize=False),
            "text_encoder": self.text.encoder(d, cfg.word_dim, cfg.num_layers, normalize=False,
                                              word_dropout=cfg.encoder_word_dropout),
            "image_decoder": MLPDecoder(d, tuple(cfg.image_decoder_hidden), feature_dim),
            "text_decoder": self.text.decoder(d, decoder_hidden, cfg.decoder_word_dim, cfg.decoder_layers,
                                              cfg.word_dropout),
            "critic": LatentCritic(d, cfg.disc_hidden),
        }
        for module in self.modules.values():
            module.to(device)
        self.trainable = [p for name, m in self.modules.items() if name != "critic"
                          for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.trainable, lr=cfg.lr)
        self.critic_optimizer = torch.optim.Adam(self.modules["critic"].parameters(), lr=cfg.disc_lr,
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
        _, text_weight = cfg.text_reconstruction(self.text.reads_words)
        return any(w > 0 for w in (cfg.image_rec_weight, text_weight, cfg.adversarial_weight))

    # -- the code and one training step ----------------------------------------------------------
    def code(self, h: torch.Tensor) -> torch.Tensor:
        """The code the decoders and the critic read (see ``prior_space``); retrieval uses its direction."""
        if self.config.prior_space == "sphere":
            return l2_normalize(h) * math.sqrt(h.shape[1])
        return h

    def _text_reconstruction(self, code: torch.Tensor, inputs: tuple) -> torch.Tensor:
        decoder = self.modules["text_decoder"]
        if self.text.reads_words:
            return decoder.nll(code, *inputs).mean()
        return squared_reconstruction(decoder(code), inputs[0])

    def train_step(self, global_step: int, paired_rows: torch.Tensor, unpaired_images: torch.Tensor,
                   unpaired_captions: torch.Tensor) -> dict[str, float]:
        """One update: paired caption rows (into the paired set), unpaired pool rows. Returns the terms."""
        cfg: JWAEConfig = self.config
        m, device = self.modules, self.device
        n_pairs = len(paired_rows)
        image_rows = torch.cat([self.links[paired_rows], self.n_paired_images + unpaired_images])
        caption_rows = torch.cat([paired_rows, self.n_paired_captions + unpaired_captions])
        images = self.features[image_rows.to(device)]
        text_inputs = self.captions.batch(caption_rows, device)
        h_image = m["image_encoder"](images)
        h_text = m["text_encoder"](*text_inputs)
        c_image, c_text = self.code(h_image), self.code(h_text)

        terms: dict[str, torch.Tensor] = {}
        if cfg.ranking_weight:
            scores = l2_normalize(h_image[:n_pairs]) @ l2_normalize(h_text[:n_pairs]).t()
            terms["ranking"] = cfg.ranking_weight * losses.hinge_ranking_loss(scores, cfg.margin, cfg.max_violation)
        if cfg.image_rec_weight:
            terms["image_rec"] = cfg.image_rec_weight * l1_reconstruction(m["image_decoder"](c_image), images)
        text_name, text_weight = self.text_term
        if text_weight:
            terms[text_name] = text_weight * self._text_reconstruction(c_text, text_inputs)
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
        cfg: JWAEConfig = self.settle_schedule(paired, unpaired)
        self.setup(paired, unpaired, context)
        steps = self.steps_per_epoch

        def train_epoch(epoch: int) -> dict[str, float]:
            if cfg.epoch_over == "paired":
                batches = minibatches(self.n_paired_captions, cfg.batch_size, shuffle=True)
            else:
                batches = (self.paired_sampler.batch(epoch * steps + s) for s in range(steps))
            log = EpochLog(context.progress, steps, cfg.progress_every)
            for step, paired_rows in enumerate(batches):
                g = epoch * steps + step
                log.add(step, self.train_step(g, paired_rows, self.image_sampler.batch(g),
                                              self.caption_sampler.batch(g)))
            return log.means()

        result = run_training(modules=self.modules,
                              optimizers={"adam": self.optimizer, "critic_adam": self.critic_optimizer},
                              schedulers={"step_lr": self.scheduler}, n_epochs=cfg.epochs, train_epoch=train_epoch,
                              validate=self.validator(context.validation), context=context)
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
        result.updates = steps * result.epochs_run
        return result

    def schedule(self, paired: PairedData, unpaired: UnpairedData) -> tuple[int, int]:
        cfg: JWAEConfig = self.config
        if cfg.epoch_over == "paired":
            return 0, math.ceil(paired.n_captions / cfg.batch_size)
        pass_steps = [math.ceil(n / b) for n, b in ((paired.n_captions, cfg.batch_size),
                                                     (unpaired.n_images, cfg.unpaired_batch_size),
                                                     (unpaired.n_captions, cfg.unpaired_batch_size)) if n and b]
        return 0, max(pass_steps)

    # -- embedding -------------------------------------------------------------------------------
    def encode_images(self, features: torch.Tensor) -> torch.Tensor:
        return l2_normalize(self.modules["image_encoder"](features))

    def encode_text(self, inputs: tuple) -> torch.Tensor:
        return l2_normalize(self.modules["text_encoder"](*inputs))

    def embedding_modules(self) -> list[nn.Module]:
        return [self.modules[name] for name in ("image_encoder", "text_encoder") if name in self.modules]

    def describe(self) -> dict:
        cfg: JWAEConfig = self.config
        reads_words = TEXT_SIDES[cfg.text_encoder].reads_words
        return {
            **super().describe(),
            "weights": {"ranking": cfg.ranking_weight, "image_rec": cfg.image_rec_weight,
                        **dict([cfg.text_reconstruction(reads_words)]), "adversarial": cfg.adversarial_weight},
            "text_reconstruction": (f"GRU decoder NLL (teacher forcing, word dropout {cfg.word_dropout:g})"
                                    if reads_words else "MLP to the frozen sentence vector, squared error"),
            "prior": "WAE-GAN, N(0, I) " + ("projected onto radius sqrt(d)" if cfg.prior_space == "sphere"
                                            else "on the raw codes"),
            "prior_space": cfg.prior_space,
            "critic_every": cfg.disc_every,
            "epoch_over": cfg.epoch_over,
            "unpaired_batch_size": cfg.unpaired_batch_size,
        }
