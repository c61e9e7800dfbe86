"""``linear``: one linear map per modality into a shared space, the VSE++ hinge, pairs only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.models.config import TrainingConfig
from bench.models.neural import EmbeddingModel, float_tensor
from bench.nn.encoders import ImageEncoder
from bench.nn.losses import hinge_ranking_loss
from bench.models.training import EpochLog, minibatches, optimizer_step, run_training


@dataclass(frozen=True)
class LinearConfig(TrainingConfig):
    embed_size: int = 256  # joint space size

    PROFILES = {"paper": {}, "cpu": {"text_encoder": "minilm", "epochs": 5}}


class LinearModel(EmbeddingModel):
    name, summary, config_class = "linear", "one linear map per modality, VSE++ hinge (pairs only)", LinearConfig
    image_encoder = text_encoder = None

    def fit(self, paired, unpaired, context):
        cfg = self.config
        self.start_fit(context, paired.captions)  # seed, device, cell folder, text side (vocabulary)
        self.image_encoder = ImageEncoder(paired.features.shape[1], cfg.embed_size).to(self.device)
        self.text_encoder = self.text.encoder(cfg.embed_size, cfg.word_dim).to(self.device)
        modules = {"image_encoder": self.image_encoder, "text_encoder": self.text_encoder}
        parameters = [p for m in modules.values() for p in m.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=cfg.lr)
        features, captions = float_tensor(paired.features).to(self.device), self.text.prepare(paired.captions)
        links, steps = torch.as_tensor(paired.caption_to_image), math.ceil(paired.n_captions / cfg.batch_size)

        def train_epoch(epoch: int) -> dict[str, float]:
            log = EpochLog(context.progress, steps, cfg.progress_every, total="hinge")
            for step, rows in enumerate(minibatches(paired.n_captions, cfg.batch_size)):
                images = self.image_encoder(features[links[rows].to(self.device)])
                scores = images @ self.text_encoder(*captions.batch(rows, self.device)).t()
                loss = hinge_ranking_loss(scores, cfg.margin, cfg.max_violation)
                optimizer_step(loss, optimizer, parameters, cfg.grad_clip)
                log.add(step, {"hinge": float(loss.detach())})
            return log.means()

        return run_training(modules=modules, optimizers={"adam": optimizer}, schedulers=None, n_epochs=cfg.epochs,
                            train_epoch=train_epoch, validate=self.validator(context.validation), context=context)

    def encode_images(self, features):
        return self.image_encoder(features)

    def encode_text(self, inputs):
        return self.text_encoder(*inputs)

    def embedding_modules(self):
        return [m for m in (self.image_encoder, self.text_encoder) if m is not None]
