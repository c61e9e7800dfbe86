"""Training throughput: optimizer steps per second of each model's own training loop, against a
plain VSE++ step of the same sizes written out here, both measured in one run.

The plain step is what a minimal VSE++ implementation does per batch: a linear image encoder, word
embeddings and a GRU over packed sequences, L2 norms, the score matrix, the max-violation hinge
loss summed over the batch, backward, gradient clipping and an Adam step. It reads exactly the
batches (features, token ids) the model's loop reads, with the model's vocabulary size and sizes.

A model's steps are timed from its own progress reports (``progress_every=1``): the time between
the report of step ``warmup`` and that of the last step of one epoch of its main training stage
(stage 2 for ``mine``), so validation, checkpointing and data preparation are not counted. The
ratio is model steps/s over plain steps/s: 1.0 means the harness adds nothing to a bare step.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from bench.errors import notice


class PlainVSE(nn.Module):
    """The minimal VSE++ pair of encoders (no harness code)."""

    def __init__(self, feature_dim: int, vocab_size: int, word_dim: int, embed_size: int) -> None:
        super().__init__()
        self.image = nn.Linear(feature_dim, embed_size)
        self.words = nn.Embedding(vocab_size, word_dim)
        self.gru = nn.GRU(word_dim, embed_size, batch_first=True)

    def forward(self, features, tokens, lengths):
        images = nn.functional.normalize(self.image(features), dim=1)
        packed = pack_padded_sequence(self.words(tokens), lengths, batch_first=True, enforce_sorted=False)
        captions = nn.functional.normalize(self.gru(packed)[1][-1], dim=1)
        return images, captions


def plain_step_rate(batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], feature_dim: int,
                    vocab_size: int, word_dim: int, embed_size: int, margin: float, device: torch.device,
                    warmup: int = 3) -> float:
    """Steps per second of the plain VSE++ step over ``batches`` (features, tokens, lengths)."""
    torch.manual_seed(0)
    model = PlainVSE(feature_dim, vocab_size, word_dim, embed_size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    started = None
    for step, (features, tokens, lengths) in enumerate(batches):
        if step == warmup:
            sync()
            started = time.perf_counter()
        images, captions = model(features.to(device), tokens.to(device), lengths)
        scores = images @ captions.t()
        diagonal = scores.diag()
        mask = torch.eye(len(scores), dtype=torch.bool, device=device)
        cost_c = (margin + scores - diagonal[:, None]).clamp(min=0).masked_fill(mask, 0)
        cost_i = (margin + scores - diagonal[None, :]).clamp(min=0).masked_fill(mask, 0)
        loss = cost_c.max(1)[0].sum() + cost_i.max(0)[0].sum()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        optimizer.step()
    sync()
    return (len(batches) - warmup) / (time.perf_counter() - started)


def model_step_rate(spec, profile: str, text_encoder: str | None, device: torch.device, steps: int,
                    warmup: int = 3) -> tuple[float, object, object]:
    """Steps per second of one epoch of ``spec``'s own loop on synthetic data sized for ``steps`` paired
    steps, and the fitted model and its paired data (for the plain step's batches)."""
    from bench.data.synthetic import generate
    from bench.models import FitContext
    from bench.splits import make_split, subsets

    names = set(spec.config_class.__dataclass_fields__)
    overrides = {"epochs": "1", "lr_decay_epoch": "1", "progress_every": "1"}
    if "stage1_epochs" in names:
        overrides["stage1_epochs"] = "0"
    if text_encoder:
        overrides["text_encoder"] = text_encoder
    config = spec.config_class.for_profile(profile, overrides)
    n_images = math.ceil((steps + warmup) * config.batch_size / 5)
    dataset = generate(seed=0, n_train=n_images, n_dev=50, n_test=10)
    paired, unpaired = subsets(dataset, make_split(dataset, 100, 0, "overlap"))
    times: dict[int, float] = {}

    def progress(**fields) -> None:
        if "step" in fields and fields.get("stage", 2) == 2 and "epoch" not in fields:
            times[fields["step"]] = time.perf_counter()

    model = spec.factory(config)
    with tempfile.TemporaryDirectory() as folder:
        model.fit(paired, unpaired, FitContext(validation=dataset.dev, workdir=Path(folder), device=device,
                                               seed=0, progress=progress))
    last = max(times)
    return (last - warmup) / (times[last] - times[warmup]), model, paired


def measure(models: list, device: torch.device, steps: int = 40) -> list[dict]:
    """A row per model: its steps/s, the plain VSE++ step's on the same batches, and the ratio. A model
    that reads only frozen sentence vectors (no GRU) is timed against VSE++'s own loop on the same
    vectors instead (:func:`frozen_text_row`); a model without training steps (closed form,
    training-free) is left out with a notice."""
    from bench.models.neural import EmbeddingModel

    rows = []
    for spec in models:
        if not (isinstance(spec.factory, type) and issubclass(spec.factory, EmbeddingModel)):
            notice(f"{spec.name} has no training steps (closed form or training-free); left out")
            continue
        if "gru" not in spec.text_encoders:
            rows.append(frozen_text_row(spec, device, steps))
            continue
        rate, model, paired = model_step_rate(spec, "paper", "gru", device, steps)
        config = model.config
        tokens = model.text.prepare(list(paired.captions))
        generator = torch.Generator().manual_seed(0)
        order = torch.randperm(paired.n_captions, generator=generator)
        batches = []
        for start in range(0, min(len(order), (steps + 3) * config.batch_size), config.batch_size):
            rows_ = order[start:start + config.batch_size]
            features = torch.as_tensor(paired.features[paired.caption_to_image[rows_.numpy()]], dtype=torch.float32)
            token_batch, lengths = tokens.batch(rows_)
            batches.append((features, token_batch, lengths))
        size = getattr(config, "embed_size", None) or getattr(config, "latent_dim")
        plain = plain_step_rate(batches, paired.features.shape[1], len(model.text.vocabulary), config.word_dim, size,
                                config.margin, device)
        rows.append({"model": spec.name, "profile": "paper", "text_encoder": "gru", "batch_size": config.batch_size,
                     "embed_size": size, "model_steps_per_s": rate, "plain_vse_steps_per_s": plain,
                     "ratio": rate / plain})
    return rows


def frozen_text_row(spec, device: torch.device, steps: int) -> dict:
    """Steps/s of a frozen-text model's own loop (paper profile, its first text encoder) against VSE++'s
    loop on the same sentence vectors, both measured in this run: the reference that model replaces."""
    from bench.models.registry import get_model_spec

    encoder = spec.text_encoders[0]
    rate, model, _ = model_step_rate(spec, "paper", encoder, device, steps)
    reference, _, _ = model_step_rate(get_model_spec("vse"), "paper", encoder, device, steps)
    config = model.config
    size = getattr(config, "embed_size", None) or getattr(config, "latent_dim", None) or getattr(config, "cca_dim", 0)
    return {"model": spec.name, "profile": "paper", "text_encoder": encoder, "batch_size": config.batch_size,
            "embed_size": size, "model_steps_per_s": rate, "plain_vse_steps_per_s": reference,
            "ratio": rate / reference}
