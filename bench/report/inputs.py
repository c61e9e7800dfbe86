"""Reference numbers and latency from files: ``bench report --reference`` and ``--latency``.

Published numbers come from a CSV and are labelled as such, so they are never mistaken for our
runs; the CSV is checked cell by cell, since it is typed by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype

from bench.errors import BenchError
from bench.report.records import METRICS, RECALLS
from bench.io import is_number

# Latency columns shown beside Recall@K (`bench report --latency`): one query, and one search.
LATENCY_COLUMNS = {"caption_ms_b1": "caption ms", "image_ms_b1": "image ms", "search_ms_25k": "top-10 of 25k ms"}


def load_latency(path: Path) -> dict:
    """A `bench benchmark latency --out` file: ``{"rows": {(model, text encoder): row}, "notes": [...]}``."""
    from bench.perf.latency import read_latency_file

    data = read_latency_file(path)
    rows = data["rows"]
    environment = data.get("environment") or {}
    notes = [f"latency: median ms per call on {environment.get('device', '?')} with "
             f"{environment.get('torch_threads', '?')} torch thread(s), from {path} (`bench benchmark latency`)."]
    notes += [f"caption ms starts at the sentence vector; MiniLM itself adds {r['caption_ms_b1']:.1f} ms per caption."
              for r in rows if r["model"] == "minilm sentence encoder" and is_number(r.get("caption_ms_b1"))]
    return {"rows": {(r["model"], r.get("text_encoder")): r for r in rows}, "notes": notes}


def reference_problem(reference: pd.DataFrame) -> str | None:
    """What makes a reference table unusable, or None: a row without a model name, a fraction that is
    not a number in (0, 100], or a metric that is neither empty (not published) nor a finite number
    in range (R@K in percent, rsum up to 600). Rows are counted from 1 after the header."""
    for row, model in enumerate(reference["model"], start=1):
        if pd.isna(model) or not str(model).strip():
            return f"has no model name in row {row}"
    columns = [("fraction", 100, False)] + [(m, 600 if m == "rsum" else 100, True) for m in METRICS
                                            if m in reference.columns]
    for column, high, may_be_empty in columns:
        values = reference[column]
        # pandas reads a column whose cells are all numbers as numbers, one whose cells are all true/false
        # as booleans, and any other as text, whose cells that are no number become NaN here
        numbers = values.map(lambda _: np.nan) if is_bool_dtype(values) else pd.to_numeric(values, errors="coerce")
        for row, (value, number) in enumerate(zip(values, numbers.astype(float)), start=1):
            if pd.isna(value) and may_be_empty:
                continue
            low_ok = number > 0 if column == "fraction" else number >= 0
            if not (is_number(number) and low_ok and number <= high):
                bounds = "in (0, 100]" if column == "fraction" else f"in [0, {high}], or an empty cell"
                return f"has {column} {str(value)!r} in row {row}; expected a number {bounds}"
    return None


def load_reference(path: Path) -> pd.DataFrame:
    if path.is_dir():
        raise BenchError(f"reference file {path} is a folder, not a CSV file")
    try:
        reference = pd.read_csv(path)
    except FileNotFoundError:
        raise BenchError(f"reference file not found: {path}") from None
    except UnicodeDecodeError:
        raise BenchError(f"reference file {path} is not UTF-8 CSV text (binary data?)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise BenchError(f"reference file {path} is not a CSV table ({str(error).strip()})") from None
    except OSError as error:
        raise BenchError(f"cannot read reference file {path}: {error.strerror or error}") from None
    missing = {"model", "fraction"} - set(reference.columns)
    if missing:
        raise BenchError(f"reference file {path} lacks columns {sorted(missing)}")
    problem = reference_problem(reference)
    if problem:
        raise BenchError(f"reference file {path} {problem}")
    for column in ["fraction"] + [m for m in METRICS if m in reference.columns]:
        # a number pandas left as text (" 25", say) as a number; a column of numbers stays as it is
        reference[column] = pd.to_numeric(reference[column])
    for m in RECALLS:
        if m not in reference.columns:
            reference[m] = np.nan
    if "rsum" not in reference.columns:
        reference["rsum"] = reference[RECALLS].sum(axis=1, min_count=len(RECALLS))
    # how its rows are named in tables and plots, e.g. "published, COCO 1K"; the file says what it holds
    reference["label"] = reference["label"].fillna("reference") if "label" in reference.columns else "reference"
    # and which data its numbers are on (the Dataset column of a table that mixes datasets)
    reference["dataset"] = reference["dataset"].fillna("–") if "dataset" in reference.columns else "–"
    return reference
