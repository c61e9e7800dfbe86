"""One tokenizer and one vocabulary for every model that reads words.

Tokens are lower-cased word tokens (runs of letters, digits and apostrophes); punctuation is
dropped (the VSE++ reference kept it as tokens, which on Flickr8k slowed its GRU's start, see
``reports/flickr8k-paper``). The
vocabulary keeps words seen at least ``min_count`` times **in the training captions
only** (the VSE++ reference counted test captions too, which leaks test words), plus
the four special tokens ``<pad>`` = 0, ``<start>``, ``<end>``, ``<unk>``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from bench.errors import BenchError
from bench.io import atomic_write_json

_TOKEN = re.compile(r"[a-z0-9']+")
PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
VOCABULARY_FILE = "vocabulary.json"  # the name a model saves its vocabulary under, in its cell folder


def tokenize(caption: str) -> list[str]:
    return _TOKEN.findall(caption.lower())


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]  # index -> word; the specials first, then words by frequency
    min_count: int = 4

    def __post_init__(self) -> None:
        if self.words[: len(SPECIALS)] != SPECIALS:
            raise BenchError("a vocabulary must start with <pad>, <start>, <end>, <unk>")
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def build(cls, training_captions: Iterable[str], min_count: int = 4) -> "Vocabulary":
        counts = Counter(token for caption in training_captions for token in tokenize(caption))
        # Frequency order, ties broken alphabetically, so the same captions give the same ids.
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls(words=SPECIALS + tuple(kept), min_count=min_count)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def start_id(self) -> int:
        return self._index[START]

    @property
    def end_id(self) -> int:
        return self._index[END]

    @property
    def unk_id(self) -> int:
        return self._index[UNK]

    def encode(self, caption: str, add_start_end: bool = True) -> list[int]:
        ids = [self._index.get(token, self.unk_id) for token in tokenize(caption)]
        return [self.start_id, *ids, self.end_id] if add_start_end else ids

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[i] for i in ids if self.words[i] not in SPECIALS)

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, {"min_count": self.min_count, "words": list(self.words)})

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise BenchError(f"vocabulary file not found: {path}") from None
        return cls(words=tuple(data["words"]), min_count=int(data["min_count"]))
