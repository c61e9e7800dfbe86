"""Benchmark harness for cross-modal retrieval under partial pairing."""

__version__ = "0.1.0"
