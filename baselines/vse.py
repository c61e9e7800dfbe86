"""``vse``: VSE++ (Faghri et al. 2017) on precomputed image features, trained on pairs only.

What it is (the paper and the reference code ``fartashf/vsepp``):

* image side: precomputed CNN features -> one linear layer (Xavier-uniform, zero bias) -> L2 norm;
* text side: word embeddings (300-d, U(-0.1, 0.1)) -> 1-layer GRU -> state at the last real
  token -> L2 norm; vocabulary = words seen >= 4 times in the **paired training captions only**
  (the reference also counted test captions);
* similarity: cosine; loss: the bidirectional hinge loss on the batch score matrix, margin 0.2,
  summed over the batch, keeping only the hardest negative per row and column ("max violation",
  VSE++) or every violating negative (``max_violation=false``, VSE0);
* training: every (image, caption) pair is one sample; each epoch visits every paired caption once
  in random minibatches (as in the reference, two captions of the same image may land in one batch
  and then count as each other's negatives). Adam, lr x0.1 after ``lr_decay_epoch`` epochs,
  gradient-norm clip 2; the weights kept are those of the epoch with the best validation rsum
  (dev split, never test). Unpaired data is ignored.

Profiles (``--profile``): ``paper`` is the reference setting. ``cpu`` (:data:`CPU_PROFILE`, which
``jwae`` extends) halves the joint space to 512 (the GRU's cost grows about quadratically with
it), trains for a fixed 2,820 updates at every paired fraction (12 epochs of the full training
captions) with the drop after 8/12 of them (the slow hardest-negative start needs the larger
share), and reads frozen MiniLM sentence vectors through a trainable linear projection instead
of the GRU, so that a Flickr8k grid fits on 2 cores; ``--text-encoders gru,minilm`` runs both.
Step costs and the measurements behind these choices: ``reports/notes/vse.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from bench.models.config import CPU_UPDATE_CAP, TrainingConfig
from bench.models.search_space import UPDATES, Choice, LogUniform, ShareOfCap, Uniform
from bench.errors import BenchError
from bench.models import FitContext, FitResult, PairedData, UnpairedData
from bench.models.neural import EmbeddingModel, float_tensor
from bench.nn.encoders import ImageEncoder
from bench.nn.losses import hinge_ranking_loss
from bench.models.training import EpochLog, minibatches, optimizer_step, run_training

# The cpu schedule of the VSE++-shaped models (vse, and jwae on top of it): the same joint
# space, schedule and text side, so their rows differ by their losses only. The schedule is a
# number of updates, the same at every paired fraction: 2,820 is 12 epochs of Flickr8k's 30,000
# training captions in batches of 128, with the lr drop at 8/12 of the run. Counting epochs
# instead gave 10 % paired a tenth of the updates (288), too few for a GRU to learn its words.
CPU_PROFILE = {"embed_size": 512, "updates": CPU_UPDATE_CAP, "epochs": 12, "lr_decay_epoch": 8,
               "text_encoder": "minilm"}
# quick (the embedded synthetic data): the cpu settings, counted in epochs of that small data
QUICK_PROFILE = {**CPU_PROFILE, "updates": 0}


@dataclass(frozen=True)
class VSEConfig(TrainingConfig):
    embed_size: int = 1024  # joint space size = GRU hidden size
    num_layers: int = 1  # GRU layers

    # quick: the default on the embedded synthetic data, where the cpu schedule is already short
    PROFILES: ClassVar[dict] = {"paper": {}, "cpu": CPU_PROFILE, "quick": QUICK_PROFILE}
    # What `bench tune` searches (bench.models.search_space); jwae extends it. The model has no dropout
    # and no weight decay to tune.
    SEARCH_SPACE: ClassVar[dict] = {"lr": LogUniform(5e-5, 2e-3), "embed_size": Choice((256, 512, 1024)),
                                    "margin": Uniform(0.05, 0.4), UPDATES: ShareOfCap(0.1)}


class VSEModel(EmbeddingModel):
    name = "vse"
    summary = "VSE++: linear image encoder + GRU text encoder, hardest-negative hinge loss (pairs only)"
    aliases = ("vse++", "vsepp")
    config_class = VSEConfig
    uses_unpaired = False

    def __init__(self, config: VSEConfig) -> None:
        super().__init__(config)
        self.image_encoder: ImageEncoder | None = None
        self.text_encoder: torch.nn.Module | None = None

    def fit(self, paired: PairedData, unpaired: UnpairedData, context: FitContext) -> FitResult:
        cfg: VSEConfig = self.settle_schedule(paired, unpaired)
        if paired.n_captions == 0:
            raise BenchError("vse needs at least one paired caption to train on")
        self.start_fit(context, paired.captions)
        device = self.device
        self.image_encoder = ImageEncoder(paired.features.shape[1], cfg.embed_size).to(device)
        self.text_encoder = self.text.encoder(cfg.embed_size, cfg.word_dim, cfg.num_layers,
                                              word_dropout=cfg.encoder_word_dropout).to(device)
        modules = {"image_encoder": self.image_encoder, "text_encoder": self.text_encoder}
        parameters = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(parameters, lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay_epoch, gamma=cfg.lr_decay)

        features = float_tensor(paired.features).to(device)
        links = torch.as_tensor(paired.caption_to_image, dtype=torch.long, device=device)
        text = self.text.prepare(list(paired.captions))
        n, steps = paired.n_captions, math.ceil(paired.n_captions / cfg.batch_size)

        def train_epoch(epoch: int) -> dict[str, float]:
            log = EpochLog(context.progress, steps, cfg.progress_every, total="hinge")
            for step, batch in enumerate(minibatches(n, cfg.batch_size, shuffle=True)):
                images = self.image_encoder(features[links[batch.to(device)]])
                captions = self.text_encoder(*text.batch(batch, device))
                loss = hinge_ranking_loss(images @ captions.t(), cfg.margin, cfg.max_violation)
                optimizer_step(loss, optimizer, parameters, cfg.grad_clip)
                log.add(step, {"hinge": float(loss.detach())})
            return log.means()

        result = run_training(modules=modules, optimizers={"adam": optimizer}, schedulers={"step_lr": scheduler},
                              n_epochs=cfg.epochs, train_epoch=train_epoch,
                              validate=self.validator(context.validation), context=context)
        result.notes.append("unpaired data ignored (VSE++ trains on pairs only)")
        result.updates = steps * result.epochs_run
        return result

    def schedule(self, paired: PairedData, unpaired: UnpairedData) -> tuple[int, int]:
        return 0, math.ceil(paired.n_captions / self.config.batch_size)

    def encode_images(self, features: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(features)

    def encode_text(self, inputs: tuple) -> torch.Tensor:
        return self.text_encoder(*inputs)

    def embedding_modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.image_encoder, self.text_encoder) if m is not None]

    def describe(self) -> dict:
        return {**super().describe(), "loss": "VSE++ max violation" if self.config.max_violation else "VSE0"}
