"""Which training images are paired, and what the unpaired pools hold: split files and cell names.

* :mod:`bench.splits.pairing` — the split files (made from a seed, written, loaded, verified) and the
  paired and unpaired subsets of a dataset they select;
* :mod:`bench.splits.names` — fractions, seeds and pool options as the command line gives them, and
  the file names built from them (it imports nothing of the harness, so any module can name a cell).

Every name is importable from ``bench.splits`` itself.
"""

from __future__ import annotations

from bench.splits.names import (
    format_fraction,
    parse_fraction,
    parse_fractions,
    parse_seeds,
    parse_unpaired_fractions,
    pools_suffixes,
    split_filename,
)
from bench.splits.pairing import (
    FORMAT_VERSION,
    POLICIES,
    PairingSplit,
    PoolSpec,
    check_no_leakage,
    check_parameters,
    compare_with_recomputed,
    default_splits_dir,
    describe_extra,
    kept_extra_rows,
    load_split,
    make_command,
    make_split,
    naming_file,
    split_path,
    subsets,
    verify_file,
    write_split,
)

__all__ = [
    "FORMAT_VERSION", "POLICIES", "PairingSplit", "PoolSpec", "check_no_leakage", "check_parameters",
    "compare_with_recomputed", "default_splits_dir", "describe_extra", "format_fraction", "kept_extra_rows",
    "load_split", "make_command", "make_split", "naming_file", "parse_fraction", "parse_fractions", "parse_seeds",
    "parse_unpaired_fractions", "pools_suffixes", "split_filename", "split_path", "subsets", "verify_file",
    "write_split",
]
