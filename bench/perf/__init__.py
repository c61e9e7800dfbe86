"""What the models cost, measured on this machine (``bench benchmark``).

* :mod:`bench.perf.latency` — per-query latency: embedding a query and searching a gallery;
* :mod:`bench.perf.throughput` — training steps per second against a plain VSE++ step.

Each measures against a reference taken in the same run and reports ratios.
"""
