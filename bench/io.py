"""Atomic file writes and checksums.

Every file the harness writes goes through :func:`atomic_write_bytes`: the data is
written to a temporary file in the same folder, flushed to disk and renamed over the
target, so a killed run leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any) -> str:
    """Stable JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj))


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` through a temporary file, for checkpoints."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_lines(lines: Iterable[str]) -> str:
    """SHA-256 of the lines joined with newlines (each line followed by one newline)."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json_file(path: str | os.PathLike, what: str, remedy: str = "") -> object:
    """The parsed JSON of ``path``; a folder, a missing or unreadable file, binary bytes or bad JSON
    is a :class:`~bench.errors.BenchError` naming ``what`` and the path (and ``remedy``, if given)."""
    from bench.errors import BenchError

    path, tail = Path(path), f"; {remedy}" if remedy else ""
    if path.is_dir():
        raise BenchError(f"{what} {path} is a folder, not a JSON file{tail}")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BenchError(f"{what} not found: {path}{tail}") from None
    except UnicodeDecodeError:
        raise BenchError(f"{what} {path} is not UTF-8 JSON text (binary data?){tail}") from None
    except OSError as error:
        raise BenchError(f"cannot read {what} {path}: {error.strerror or error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BenchError(f"{what} {path} is not valid JSON ({error}){tail}") from None


def json_type(value: object) -> str:
    """How a parsed JSON value is named in an error message ("a list", "null", ...)."""
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)
