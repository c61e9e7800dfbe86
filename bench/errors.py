"""The one exception type the CLI turns into a clear message instead of a traceback."""


class BenchError(Exception):
    """A problem with the user's input or environment.

    The message must say what is wrong and how to fix it, in one line; the CLI
    prints it as ``bench: error: <message>`` and exits with status 2.
    """
