"""Atomic file writes, checksums, and checking the JSON files people hand the harness.

Every file the harness writes goes through :func:`atomic_write_bytes`: the data is
written to a temporary file in the same folder, flushed to disk and renamed over the
target, so a killed run leaves either the old file or the new one, never half of one.

Every JSON file it reads from elsewhere (a run record, a tuned file, a latency file) is checked
against its JSON Schema by :func:`schema_problems`, which adds what JSON Schema cannot say: a
``number`` is a finite number. JSON has no NaN or Infinity, but Python's json module writes and
reads them as bare tokens, and jsonschema's ``number`` accepts them, so a NaN metric would pass as
a result. Here every ``number`` of a schema refuses them, and every file's problems are worded alike.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from bench.errors import BenchError

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


def load_checkpoint(path: str | os.PathLike, device: Any = "cpu") -> dict:
    """The dict in the checkpoint at ``path``, read without running any code the file may hold.

    A checkpoint sits in a run folder, and run folders travel between people, so its bytes are not
    trusted: it is read with ``torch.load(weights_only=True)``, which rebuilds only tensors and plain
    Python values (dicts, lists, tuples, numbers, strings, None) and refuses any other pickled object
    instead of constructing it (a crafted object could run code as it is built). Every checkpoint this
    harness writes is made of those types alone. A file that can't be read this way (truncated, not a
    torch file, holding other objects, or not a dict) is a :class:`~bench.errors.BenchError` whose
    one-line message names the path and the reason; what the dict holds is for the caller to check.
    """
    import re
    import warnings

    import torch


    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the reason below says it all
            warnings.simplefilter("ignore")
            saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # any failure to read means the same thing: no usable checkpoint
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        if refused:
            reason = (f"it holds a Python object ({refused.group(1)}) that a checkpoint may not hold; it was not "
                      "loaded, as building it could run code")
        else:
            reason = error_summary(error)
            if isinstance(error, EOFError) or "PytorchStreamReader" in reason or "load key" in reason:
                reason = f"it is truncated or not a torch file ({reason})"
        raise BenchError(f"checkpoint {path} can't be read safely: {reason}") from None
    if not isinstance(saved, dict):
        raise BenchError(f"checkpoint {path} holds {json_type(saved)}, not a checkpoint's dict of states")
    return saved


def error_summary(error: BaseException) -> str:
    """An exception as a short line: its type and the first sentence of its message (torch's and
    other libraries' messages can run to several lines of advice)."""
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), "").split(". ")[0]
    return f"{type(error).__name__}: {first[:160]}" if first else type(error).__name__


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


def is_int_or_float(value: object) -> bool:
    """An int or a float (NaN and infinities included, unlike :func:`is_number`), not a
    bool (which Python counts as an int, and JSON does not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_type(value: object) -> str:
    """How a parsed JSON value is named in an error message ("a list", "null", ...)."""
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


# How a schema's type names read in a message.
TYPE_NAMES = {"object": "an object", "array": "a list", "string": "a string", "number": "a finite number",
              "integer": "an integer", "boolean": "a boolean", "null": "null"}
# The item schema of long lists of ranks (a record's ``test_ranks``: thousands per record), which the
# validator checks on a fast path.
RANK = {"type": "integer", "minimum": 0}


def is_number(value: object) -> bool:
    """Whether ``value`` is a finite int or float (not a bool, not NaN, not ±Infinity): a JSON number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)  # (an int of any size is finite; isfinite would overflow)


@lru_cache(maxsize=1)
def _validator_class():
    """Draft 2020-12 with ``number`` meaning a finite number, and a fast path for long rank lists."""
    import jsonschema
    from jsonschema import validators

    base = jsonschema.Draft202012Validator
    standard_items = base.VALIDATORS["items"]

    def items(validator, item_schema, instance, schema):
        # A record holds thousands of test ranks; validating each through jsonschema takes ~30 ms a
        # record. A list whose items are all plain ints >= 0 has no error to report, so skip the walk;
        # any other list goes the standard way, which words its errors.
        if (item_schema == RANK and "prefixItems" not in schema and isinstance(instance, list)
                and all(type(rank) is int and rank >= 0 for rank in instance)):
            return
        yield from standard_items(validator, item_schema, instance, schema)

    checker = base.TYPE_CHECKER.redefine("number", lambda _checker, value: is_number(value))
    return validators.extend(base, {"items": items}, type_checker=checker)


@lru_cache(maxsize=8)
def _validator(schema_text: str):
    return _validator_class()(json.loads(schema_text))


def _describe(value: object) -> str:
    """A value as a message names it: its JSON type, or NaN / Infinity, which JSON does not have."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return json_type(value)


def _one_line(text: str, limit: int = 160) -> str:
    """``text`` on one line (keys and values from a file may hold line breaks), cut to ``limit``."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _readable(error) -> str:
    """One jsonschema error as a short line: ``has 'cell.fraction' a string; expected a finite number``."""
    where = ".".join(map(str, error.absolute_path))
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        expected = " or ".join(TYPE_NAMES.get(name, name) for name in wanted)
        if not where:
            return f"holds {_describe(error.instance)}; expected {expected}"
        return _one_line(f"has '{where}' {_describe(error.instance)}; expected {expected}")
    if error.validator == "required" and isinstance(error.instance, dict):
        prefix = f"{where}." if where else ""
        missing = [name for name in error.validator_value if name not in error.instance]
        return _one_line("lacks " + ", ".join(f"'{prefix}{name}'" for name in missing))
    return _one_line(f"has '{where}' that breaks the schema: {error.message}" if where else error.message)


def schema_problems(instance: object, schema: dict) -> list[str]:
    """Every way ``instance`` breaks ``schema`` (``number`` meaning a finite number), as readable
    lines, shallowest first (empty when it is valid)."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    # shallowest in the instance first, then in the schema (a missing field before a rule of a branch)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), len(e.schema_path)))
    return list(dict.fromkeys(_readable(e) for e in errors))
