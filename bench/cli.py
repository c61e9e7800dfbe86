"""The ``bench`` command.

Each area of the harness adds its own subcommands through a ``add_commands(subparsers)``
function (see ``COMMAND_MODULES``); a subcommand stores its handler as ``func`` and
returns an exit status. :class:`BenchError` becomes one clear line and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bench import __version__
from bench.errors import BenchError

# Modules that contribute subcommands, in the order ``bench --help`` lists them.
COMMAND_MODULES = [
    "bench.commands.data",
    "bench.commands.splits",
    "bench.commands.features",
    "bench.commands.run",
    "bench.commands.tune",
    "bench.commands.report",
    "bench.commands.benchmark",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Cross-modal retrieval under partial pairing: datasets, split files, training runs and Recall@K reports.",
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; finished work is saved and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
