"""``vse``: VSE++ (Faghri et al. 2017) on precomputed image features, trained on pairs only.

What it is (the paper and the reference code ``fartashf/vsepp``):

* image side: precomputed CNN features -> one linear layer (Xavier-uniform, zero bias) -> L2 norm;
* text side: word embeddings (300-d, U(-0.1, 0.1)) -> 1-layer GRU -> state at the last real
  token -> L2 norm; vocabulary = words seen >= 4 times in the **paired training captions only**
  (the reference also counted test captions), saved to ``<workdir>/vocabulary.json``;
* similarity: cosine; loss: the bidirectional hinge loss on the batch score matrix, margin 0.2,
  summed over the batch, keeping only the hardest negative per row and column ("max violation",
  VSE++) or every violating negative (``max_violation=false``, VSE0);
* training: every (image, caption) pair is one sample; each epoch visits every paired caption once
  in random minibatches (as in the reference, two captions of the same image may land in one batch
  and then count as each other's negatives). Adam, lr x0.1 after ``lr_decay_epoch`` epochs,
  gradient-norm clip 2; the weights kept are those of the epoch with the best validation rsum
  (dev split, never test). Unpaired data is ignored.

Profiles (``--profile``):

================  ========  =====  ===========================================================
setting           paper     cpu    why the cpu value
================  ========  =====  ===========================================================
embed_size        1024      512    the GRU dominates the cost and grows ~quadratically with its
                                   hidden size: 512 is 3.1x cheaper per step than 1024 (below)
epochs            30        12     the whole Flickr8k fraction grid (100+50+25+10 % = 1.85 x
                                   30K captions per epoch) in ~20 core-minutes instead of ~2.6 h
lr_decay_epoch    15        8      decay after 2/3 of the epochs rather than half-way: with only
                                   12 epochs the slow start (below) needs the larger share
text_encoder      gru       minilm the frozen sentence encoder makes every model's cpu grid cheap and
                                   comparable; ``--text-encoders gru,minilm`` runs both
everything else   as paper         loss (max violation, margin 0.2), Adam lr 2e-4, batch 128,
                                   clip 2, word_dim 300, vocabulary threshold 4
================  ========  =====  ===========================================================

Measured on Flickr8k (30,000 training captions = 235 steps of 128, 1280-d EfficientNet-Lite0
features, 1,000 dev images for validation), one torch thread, on a 2-core machine shared with
other jobs (load 3-6; "cpu-s" is what a free core would take in wall time):

=============  =====================  ==============================================================
profile/text   per training step      one epoch incl. validation and checkpoint
=============  =====================  ==============================================================
paper / gru    0.71 cpu-s             ~172 cpu-s (extrapolated from 35 steps; 330 s wall at load 6)
cpu / gru      0.225 cpu-s            56 cpu-s (measured; 48-110 s wall at load 3-6)
paper / minilm 0.019 cpu-s            5 cpu-s (measured)
cpu / minilm   0.010 cpu-s            4 cpu-s (measured)
=============  =====================  ==============================================================

``minilm`` also encodes every caption once with the frozen sentence model (35,000 train + dev
captions: 122 cpu-s), cached for every later run. With two torch threads on the busy 2-core
machine a cpu/gru step took 2.4x *longer* (1.06 s vs 0.44 s wall): run cells with one thread each.
From scratch, max-violation training starts slowly on Flickr8k: cpu/gru dev rsum 17, 33, 49 after
epochs 1-3 (chance ~10); with ``lr=1e-3`` 17, 50, 92 (not adopted: untested over a full run).

``text_encoder="minilm"`` swaps the GRU for frozen all-MiniLM-L6-v2 sentence vectors plus a
trainable linear projection (see :mod:`bench.nn.encoders`); everything else is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
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
    register_model,
)
from bench.nn.encoders import ImageEncoder, TextPipeline, embed_in_batches
from bench.nn.losses import hinge_ranking_loss
from bench.text import Vocabulary
from bench.training import CHECKPOINT_NAME, minibatches, optimizer_step, run_training, seed_everything

VOCABULARY_FILE = "vocabulary.json"


@dataclass(frozen=True)
class VSEConfig(ModelConfig):
    embed_size: int = 1024  # joint space size = GRU hidden size
    word_dim: int = 300  # word embedding size
    num_layers: int = 1  # GRU layers
    margin: float = 0.2  # hinge margin
    max_violation: bool = True  # VSE++ (hardest negative) or VSE0 (all negatives)
    lr: float = 2e-4  # Adam learning rate
    lr_decay_epoch: int = 15  # lr x lr_decay every this many epochs
    lr_decay: float = 0.1
    epochs: int = 30
    batch_size: int = 128
    grad_clip: float = 2.0  # gradient-norm clip (0 = off)
    text_encoder: str = "gru"  # "gru" (VSE++) or "minilm" (frozen sentence vectors + projection)
    min_count: int = 4  # vocabulary threshold, training captions only
    eval_batch_size: int = 1024  # batch size when embedding (no effect on results)
    progress_every: int = 10  # report in-epoch progress every this many steps

    PROFILES: ClassVar[dict] = {
        "paper": {},
        "cpu": {"embed_size": 512, "epochs": 12, "lr_decay_epoch": 8, "text_encoder": "minilm"},
    }


class VSEModel(RetrievalModel):
    uses_unpaired = False

    def __init__(self, config: VSEConfig) -> None:
        super().__init__(config)
        self.pipeline: TextPipeline | None = None
        self.image_encoder: ImageEncoder | None = None
        self.text_encoder: torch.nn.Module | None = None
        self.device = torch.device("cpu")

    # -- training ------------------------------------------------------------------------
    def fit(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> FitResult:
        cfg: VSEConfig = self.config
        if paired.n_captions == 0:
            raise BenchError("vse needs at least one paired caption to train on")
        if cfg.batch_size < 2:
            raise BenchError("vse needs batch_size >= 2 (a batch of one has no negatives)")
        if cfg.lr_decay_epoch < 1 or cfg.epochs < 1:
            raise BenchError("vse needs epochs >= 1 and lr_decay_epoch >= 1")
        seed_everything(context.seed)
        self.device = device = torch.device(context.device)
        workdir = Path(context.workdir)
        workdir.mkdir(parents=True, exist_ok=True)

        vocabulary = None
        if cfg.text_encoder == "gru":
            vocabulary = Vocabulary.build(paired.captions, cfg.min_count)
            self._save_vocabulary(vocabulary, workdir)
        self.pipeline = pipeline = TextPipeline(cfg.text_encoder, vocabulary, context.cache_dir)
        self.image_encoder = ImageEncoder(paired.features.shape[1], cfg.embed_size).to(device)
        self.text_encoder = pipeline.build_encoder(cfg.embed_size, cfg.word_dim, cfg.num_layers).to(device)
        modules = {"image_encoder": self.image_encoder, "text_encoder": self.text_encoder}
        parameters = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(parameters, lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_epoch, gamma=cfg.lr_decay)

        train_features = torch.from_numpy(np.ascontiguousarray(paired.features, dtype=np.float32)).to(device)
        train_links = torch.as_tensor(paired.caption_to_image, dtype=torch.long, device=device)
        train_text = pipeline.prepare(list(paired.captions))
        validation = context.validation
        val_text = pipeline.prepare(list(validation.captions))
        n, steps = paired.n_captions, math.ceil(paired.n_captions / cfg.batch_size)

        def train_epoch(epoch: int) -> dict[str, float]:
            total, count = 0.0, 0
            for step, batch in enumerate(minibatches(n, cfg.batch_size, shuffle=True), start=1):
                images = self.image_encoder(train_features[train_links[batch.to(device)]])
                captions = self.text_encoder(*train_text.batch(batch, device))
                loss = hinge_ranking_loss(images @ captions.t(), cfg.margin, cfg.max_violation)
                optimizer_step(loss, optimizer, parameters, cfg.grad_clip)
                total, count = total + float(loss.detach()), count + 1
                if step % max(1, cfg.progress_every) == 0 or step == steps:
                    context.progress(step=step, steps=steps, loss=total / count)
            return {"hinge": total / max(count, 1)}

        def validate():
            from bench.metrics import evaluate

            image_emb = self.embed_images(validation.features)
            caption_emb = self._embed_prepared(val_text)
            return evaluate(image_emb, caption_emb, validation.caption_to_image)

        result = run_training(
            modules=modules,
            optimizers={"adam": optimizer},
            schedulers={"step_lr": scheduler},
            n_epochs=cfg.epochs,
            train_epoch=train_epoch,
            validate=validate,
            context=context,
        )
        result.notes.append("unpaired data ignored (VSE++ trains on pairs only)")
        return result

    @staticmethod
    def _save_vocabulary(vocabulary: Vocabulary, workdir: Path) -> None:
        path = workdir / VOCABULARY_FILE
        if path.exists() and (workdir / CHECKPOINT_NAME).exists():
            try:
                previous = Vocabulary.load(path)
            except Exception:  # unreadable: rewritten below; a size mismatch still fails at checkpoint load
                previous = None
            if previous is not None and previous.words != vocabulary.words:
                raise BenchError(
                    f"{workdir} holds a checkpoint trained on other captions (its vocabulary differs); "
                    "delete the folder or rerun with --force"
                )
        vocabulary.save(path)

    # -- embedding -----------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if self.image_encoder is None or self.text_encoder is None or self.pipeline is None:
            raise BenchError("the vse model has not been fitted yet")

    def embed_images(self, features: np.ndarray) -> torch.Tensor:
        self._require_fitted()
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        return embed_in_batches(lambda idx: self.image_encoder(x[idx].to(self.device)), x.shape[0],
                                self.config.eval_batch_size, modules=[self.image_encoder])

    def embed_captions(self, captions: list[str]) -> torch.Tensor:
        self._require_fitted()
        return self._embed_prepared(self.pipeline.prepare(list(captions)))

    def _embed_prepared(self, prepared) -> torch.Tensor:
        return embed_in_batches(lambda idx: self.text_encoder(*prepared.batch(idx, self.device)), len(prepared),
                                self.config.eval_batch_size, modules=[self.text_encoder])

    def describe(self) -> dict:
        if self.pipeline is not None:
            facts = dict(self.pipeline.describe())
        else:
            facts = {"text_encoder": self.config.text_encoder}
        facts["loss"] = "VSE++ max violation" if self.config.max_violation else "VSE0"
        return facts


register_model(
    ModelSpec(
        name="vse",
        factory=VSEModel,
        config_class=VSEConfig,
        summary="VSE++: linear image encoder + GRU text encoder, hardest-negative hinge loss (pairs only)",
        aliases=("vse++", "vsepp"),
        uses_unpaired=False,
    )
)
