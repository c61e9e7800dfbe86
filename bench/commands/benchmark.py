"""``bench benchmark metrics``: the fast evaluation against the reference algorithm, in one run."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    benchmark = subparsers.add_parser("benchmark", help="performance benchmarks (ratios against a reference, same run)")
    sub = benchmark.add_subparsers(dest="benchmark_command", metavar="WHAT", required=True)
    metrics = sub.add_parser("metrics", help="fast chunked ranking vs per-query argsort (the VSE++ reference algorithm)")
    metrics.add_argument("--images", type=int, default=5000, help="test images (default 5000, 5 captions each)")
    metrics.add_argument("--dim", type=int, default=1024, help="embedding size (default 1024)")
    metrics.add_argument("--repeats", type=int, default=3, help="fast runs; the best counts (default 3)")
    metrics.set_defaults(func=metrics_command)


def metrics_command(args: argparse.Namespace) -> int:
    from bench.metrics import benchmark_speedup

    print(f"ranking {args.images} images x {args.images * 5} captions at d={args.dim}; "
          "the reference takes a while…", flush=True)
    result = benchmark_speedup(n_images=args.images, dim=args.dim, repeats=args.repeats)
    print(f"reference (per-query argsort loop): {result['reference_s']:.2f} s")
    print(f"fast (chunked products + counting): {result['fast_s']:.2f} s (best of {args.repeats})")
    print(f"speed-up: {result['speedup']:.1f}x; ranks identical: {result['ranks_identical']} "
          f"(torch threads {result['torch_threads']}, load average {result['load_average']})")
    return 0 if result["ranks_identical"] else 1
