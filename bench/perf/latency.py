"""Retrieval latency per model: embedding a query, and searching a gallery for its top 10.

What a deployed retriever pays per query, measured on this machine in one run:

* ``image_ms_b1`` / ``image_ms_b128``: embedding 1 or 128 images (from backbone features);
* ``caption_ms_b1`` / ``caption_ms_b128``: embedding 1 or 128 captions through the model's own
  text path, from its prepared input (token ids, or the frozen MiniLM sentence vector). MiniLM's
  own cost is measured once as a row of its own (``minilm sentence encoder``), since it is the
  same for every model that reads it;
* ``search_ms_1k`` / ``search_ms_25k``: scoring one query embedding against a gallery of 1,000 or
  25,000 embeddings of the model's size and taking the top 10 (an exact search: matrix product
  and ``topk``).

Each model is fitted for one short epoch on a small synthetic set first (latency depends on the
architecture, not on the weights). Times are medians over ``repeats`` calls after one warm-up
call, in milliseconds.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench.errors import BenchError
from bench.io import read_json_file, schema_problems

LATENCY_FIELDS = ("image_ms_b1", "image_ms_b128", "caption_ms_b1", "caption_ms_b128", "search_ms_1k",
                  "search_ms_25k")
# What `bench report --latency` accepts: the file `bench benchmark latency --out` writes (checked by
# bench.io.schema_problems, where a number is finite). Only the fields the report reads are described.
LATENCY_FILE_SCHEMA = {
    "type": "object",
    "required": ["rows"],
    "properties": {
        "environment": {"type": ["object", "null"],
                        "properties": {"device": {"type": "string"}, "torch_threads": {"type": "integer", "minimum": 1}}},
        "rows": {"type": "array", "items": {
            "type": "object",
            "required": ["model"],
            "properties": {"model": {"type": "string"}, "text_encoder": {"type": ["string", "null"]},
                           **{field: {"type": "number", "minimum": 0} for field in LATENCY_FIELDS}}}},
    },
}
# Settings that make the throw-away fit short, where a model has them.
SHORT_FIT = {"epochs": "1", "stage1_epochs": "1", "lr_decay_epoch": "1"}


def median_ms(call: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    call()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _fitted(spec, profile: str, text_encoder: str | None, device: torch.device, workdir: Path):
    from bench.data.synthetic import generate
    from bench.models import FitContext
    from bench.splits import make_split, subsets

    names = {f for f in spec.config_class.__dataclass_fields__}
    overrides = {k: v for k, v in SHORT_FIT.items() if k in names}
    if text_encoder and "text_encoder" in names:
        overrides["text_encoder"] = text_encoder
    config = spec.config_class.for_profile(profile, overrides)
    dataset = generate(seed=0, n_train=200, n_dev=20, n_test=20)
    paired, unpaired = subsets(dataset, make_split(dataset, 100, 0, "overlap"))
    model = spec.factory(config)
    model.fit(paired, unpaired, FitContext(validation=dataset.dev, workdir=workdir, device=device, seed=0))
    return model, dataset, config


def measure_model(spec, profile: str, text_encoder: str | None, device: torch.device, repeats: int = 20) -> dict:
    """One model's latencies (ms) and the facts needed to read them."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as folder:
        model, dataset, _ = _fitted(spec, profile, text_encoder, device, Path(folder))
    features = np.repeat(dataset.test.features, 7, axis=0)[:128]
    captions = (list(dataset.test.captions) * 2)[:128]
    if getattr(model, "text", None) is not None:  # a neural model: time its own path from token ids / vectors
        one, many = model.text.prepare(captions[:1]), model.text.prepare(captions)
        embed_one, embed_many = (lambda: model.embed_prepared(one)), (lambda: model.embed_prepared(many))
    else:
        embed_one, embed_many = (lambda: model.embed_captions(captions[:1])), (lambda: model.embed_captions(captions))
    dim = int(model.embed_images(features[:1]).shape[1])
    out = {
        "model": spec.name,
        "text_encoder": model.describe().get("text_encoder"),
        "profile": profile,
        "embedding_dim": dim,
        "image_ms_b1": median_ms(lambda: model.embed_images(features[:1]), repeats, sync),
        "image_ms_b128": median_ms(lambda: model.embed_images(features), repeats, sync),
        "caption_ms_b1": median_ms(embed_one, repeats, sync),
        "caption_ms_b128": median_ms(embed_many, repeats, sync),
    }
    generator = torch.Generator().manual_seed(0)
    for size, key in ((1000, "search_ms_1k"), (25000, "search_ms_25k")):
        gallery = torch.nn.functional.normalize(torch.randn(size, dim, generator=generator), dim=1).to(device)
        query = gallery[:1].clone()
        out[key] = median_ms(lambda: torch.topk(query @ gallery.T, 10, dim=1), repeats, sync)
    return out


def measure_sentence_encoder(repeats: int = 20) -> dict:
    """The frozen MiniLM encoder's own cost per caption batch (shared by every minilm model)."""
    from bench.nn import sentences

    encoder = sentences._load_encoder()
    captions = [f"a dog number {i} runs on the beach" for i in range(128)]
    encode = lambda batch: encoder.encode(batch, batch_size=128, convert_to_numpy=True)  # noqa: E731
    return {"model": "minilm sentence encoder", "text_encoder": "minilm", "profile": "-",
            "embedding_dim": sentences.DIMENSION,
            "caption_ms_b1": median_ms(lambda: encode(captions[:1]), repeats),
            "caption_ms_b128": median_ms(lambda: encode(captions), repeats)}


def read_latency_file(path: Path) -> dict:
    """A `bench benchmark latency --out` file, checked against :data:`LATENCY_FILE_SCHEMA`; anything
    else (another JSON shape, a NaN time) is one :class:`~bench.errors.BenchError` naming the path."""

    data = read_json_file(path, "latency file")
    problems = schema_problems(data, LATENCY_FILE_SCHEMA)
    if problems:
        raise BenchError(f"latency file {path} is not a `bench benchmark latency --out` file: {problems[0]}")
    return data  # type: ignore[return-value]


def environment_facts(device: torch.device) -> dict:
    return {"device": str(device), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor() or platform.machine()}
