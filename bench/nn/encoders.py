"""Encoders into a shared space: the VSE++ linear encoder and GRU text encoder.

Which text encoder a model uses, and what it reads, is its text side's business
(:mod:`bench.nn.text`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from bench.nn import l2_normalize
from bench.data.vocabulary import SPECIALS, UNK


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


# The name that says which side it encodes.
ImageEncoder = LinearEncoder


class GRUTextEncoder(nn.Module):
    """Word embeddings -> GRU over packed sequences -> state at the last real token -> optional L2 norm.

    With ``word_dropout > 0``, in training mode each word is read as ``unk_id`` with that probability
    (the ids below ``first_word_id``, padding and the start/end/unk marks, are kept), so that a GRU
    learnt from a few thousand pairs cannot lean on single rare words. Off (0) by default, as in VSE++.
    """

    def __init__(self, vocab_size: int, word_dim: int, embed_size: int, num_layers: int = 1,
                 normalize: bool = True, word_dropout: float = 0.0, unk_id: int = SPECIALS.index(UNK),
                 first_word_id: int = len(SPECIALS)) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True)
        self.normalize = normalize
        self.word_dropout, self.unk_id, self.first_word_id = word_dropout, unk_id, first_word_id
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.training and self.word_dropout > 0:
            dropped = (torch.rand(tokens.shape, device=tokens.device) < self.word_dropout)
            tokens = tokens.masked_fill(dropped & (tokens >= self.first_word_id), self.unk_id)
        packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, hidden = self.rnn(packed)  # hidden[-1][b] is the top layer's state at b's last real token
        out = hidden[-1]
        return l2_normalize(out) if self.normalize else out
