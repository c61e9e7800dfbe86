"""``bench benchmark metrics``: the fast evaluation against the reference algorithm, in one run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import BenchError
from bench.io import atomic_write_json


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    benchmark = subparsers.add_parser("benchmark", help="performance benchmarks (ratios against a reference, same run)")
    sub = benchmark.add_subparsers(dest="benchmark_command", metavar="WHAT", required=True)
    metrics = sub.add_parser("metrics", help="fast chunked ranking vs per-query argsort (the VSE++ reference algorithm)")
    metrics.add_argument("--images", type=int, default=5000, help="test images (default 5000, 5 captions each)")
    metrics.add_argument("--dim", type=int, default=1024, help="embedding size (default 1024)")
    metrics.add_argument("--repeats", type=int, default=3, help="fast runs; the best counts (default 3)")
    metrics.set_defaults(func=metrics_command)
    latency = sub.add_parser("latency", help="per model: embedding one/128 queries and a top-10 search of 1k/25k items")
    latency.add_argument("--models", default=None, help="comma-separated models (default: every registered one)")
    latency.add_argument("--profile", default="cpu", help="config profile (default cpu)")
    latency.add_argument("--text-encoder", default=None, help="text encoder for models that have one (default: profile's)")
    latency.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    latency.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as one query server core)")
    latency.add_argument("--repeats", type=int, default=20, help="timed calls per measurement; the median counts")
    latency.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    latency.set_defaults(func=latency_command)
    train = sub.add_parser("train", help="training steps/s of each model's loop (paper profile, GRU text) vs a plain "
                           "VSE++ step of the same sizes on the same batches, same run (frozen-text models: vs "
                           "VSE++'s loop on the same sentence vectors)")
    train.add_argument("--models", default=None, help="comma-separated models (default: every registered one that "
                       "trains)")
    train.add_argument("--steps", type=int, default=40, help="timed steps per model (default 40)")
    train.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    train.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    train.set_defaults(func=train_command)


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


def latency_command(args: argparse.Namespace) -> int:
    import torch

    from bench.perf.latency import environment_facts, measure_model, measure_sentence_encoder
    from bench.run.provenance import git_state, resolve_device
    from bench.models.registry import known_models, parse_model_names

    specs = parse_model_names(args.models) if args.models else known_models()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    rows = []
    for spec in specs:
        print(f"measuring {spec.name} ({args.profile} profile, {device})…", file=sys.stderr, flush=True)
        rows.append(measure_model(spec, args.profile, args.text_encoder, device, args.repeats))
    if any(row["text_encoder"] == "minilm" for row in rows):
        rows.append(measure_sentence_encoder(args.repeats))
    result = {"environment": environment_facts(device), "git": git_state(), "repeats": args.repeats, "rows": rows}
    if args.out:
        atomic_write_json(args.out, result)
    print(latency_table(rows))
    if args.out:
        print(f"written to {args.out}; show it beside Recall@K with `bench report RUN --latency {args.out}`")
    return 0


def latency_table(rows: list[dict]) -> str:
    from tabulate import tabulate

    from bench.perf.latency import LATENCY_FIELDS

    headers = ["model", "text", "dim", *LATENCY_FIELDS]
    body = [[r["model"], r["text_encoder"], r["embedding_dim"],
             *(f"{r[k]:.2f}" if k in r else "" for k in LATENCY_FIELDS)] for r in rows]
    return tabulate(body, headers=headers, tablefmt="github")


def train_command(args: argparse.Namespace) -> int:
    import torch
    from tabulate import tabulate

    from bench.run.provenance import resolve_device
    from bench.models.registry import parse_model_names
    from bench.perf.throughput import measure

    if args.steps < 2:
        raise BenchError(f"--steps {args.steps}: give at least 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"timing {args.steps} steps per model on {device} ({torch.get_num_threads()} torch threads)…",
          file=sys.stderr, flush=True)
    from bench.models.registry import known_models

    rows = measure(parse_model_names(args.models) if args.models else known_models(), device, args.steps)
    print(tabulate([[r["model"], r["embed_size"], r["batch_size"], f"{r['model_steps_per_s']:.2f}",
                     f"{r['plain_vse_steps_per_s']:.2f}", f"{r['ratio']:.2f}x"] for r in rows],
                   headers=["model", "size", "batch", "model steps/s", "plain VSE++ steps/s", "ratio"],
                   tablefmt="github"))
    print("ratio: the model's own training steps per second over a plain VSE++ step on the same batches "
          "(1.0 = no overhead; jwae and mine do more work per paired batch by design); for a model that reads "
          "frozen sentence vectors only, over VSE++'s own loop on the same vectors")
    return 0
