"""How split cells are named: the paired fractions, unpaired fractions and seeds as the command line
gives them, and the split file names built from them.

It needs nothing of the harness but :class:`BenchError`, so any module (the commands, the run
cells, the split files) can name a cell through it without an import cycle.
"""

from __future__ import annotations

from bench.errors import BenchError


def parse_fraction(text: str | float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BenchError(f"paired fraction '{text}' is not a number; give percentages such as 100,50,25,10") from None
    if not 0 < value <= 100:
        raise BenchError(f"paired fraction {value:g} is outside (0, 100]; give percentages such as 100,50,25,10")
    return value


def parse_fractions(text: str) -> list[float]:
    fractions = [parse_fraction(part) for part in text.split(",") if part.strip()]
    if not fractions:
        raise BenchError(f"no paired fraction in '{text}'; give percentages such as 100,50,25,10")
    return fractions


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BenchError(f"seeds '{text}' must be integers separated by commas, e.g. 0,1,2") from None
    if not seeds:
        raise BenchError(f"no seed in '{text}'; give integers separated by commas, e.g. 0,1,2")
    return seeds


def parse_unpaired_fractions(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BenchError(f"unpaired fractions '{text}' must be percentages, e.g. 0,25,50,100") from None
    if not values or any(not 0 <= v <= 100 for v in values):
        raise BenchError(f"unpaired fractions '{text}' must be percentages in [0, 100], e.g. 0,25,50,100")
    return values


def format_fraction(fraction: float) -> str:
    return f"{fraction:g}"


def pools_suffixes(unpaired_fraction: float = 100.0, extra_tags: tuple[str, ...] = ()) -> tuple[str, str]:
    """The name parts of a pools variant: ``+coco-text`` after the policy, ``_u25`` after the fraction."""
    share = "" if unpaired_fraction == 100 else f"_u{format_fraction(unpaired_fraction)}"
    return "".join(f"+{tag}" for tag in extra_tags), share


def split_filename(dataset: str, policy: str, fraction: float, seed: int, unpaired_fraction: float = 100.0,
                   extra_tags: tuple[str, ...] = ()) -> str:
    extras, share = pools_suffixes(unpaired_fraction, extra_tags)
    return f"{dataset}_{policy}{extras}_p{format_fraction(fraction)}{share}_seed{seed}.json"
