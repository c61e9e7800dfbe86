"""The one exception type the CLI turns into a clear message instead of a traceback, and the one way
to say something the user should know without stopping: :func:`notice`."""

import sys


class BenchError(Exception):
    """A problem with the user's input or environment.

    The message must say what is wrong and how to fix it, in one line; the CLI
    prints it as ``bench: error: <message>`` and exits with status 2.
    """


def notice(text: str) -> None:
    """One line on stderr, ``notice: <text>``: a setting adjusted, a file discarded, a case left out."""
    print(f"notice: {text}", file=sys.stderr, flush=True)
