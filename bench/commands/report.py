"""``bench report`` and ``bench check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import BenchError
from bench.report.gain import gain_table, plot_gain, render_gain
from bench.io import atomic_write_text
from bench.report import (
    FORMATS,
    check_plot_path,
    left_out_note,
    load_latency,
    load_records,
    load_reference,
    plot,
    plot_pools,
    plot_curves,
    varies_pools,
    records_frame,
    render,
    select_rows,
    summary_table,
)

from bench.run import DEFAULT_RUN
from bench.io import is_number


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="the Recall@K table (and plot) of one or more runs")
    report.add_argument("runs", nargs="*", type=Path, help=f"run folders or record files (default {DEFAULT_RUN})")
    report.add_argument("--format", default="markdown", choices=FORMATS, help="output format (default markdown)")
    report.add_argument("--reference", type=Path, default=None,
                        help="CSV of reference numbers to add as labelled rows: columns model, fraction, "
                             "i2t_r1 … t2i_r10 and an optional label naming the source (e.g. reports/published/coco.csv)")
    report.add_argument("--compare", default=None, metavar="ROW",
                        help="also print ROW (e.g. mine) against the best other row at each fraction, "
                             "in rsum and retention")
    report.add_argument("--against", action="append", default=None, metavar="ROW",
                        help="with --compare: compare with this row instead of the best other one; repeat it "
                             "for several (one line per row and fraction)")
    report.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="also draw R@K and rsum vs fraction")
    report.add_argument("--curves", type=Path, default=None, metavar="FILE.png",
                        help="also draw each run's dev rsum per epoch, against optimizer updates, one panel per "
                             "paired fraction (the dot marks the epoch kept)")
    report.add_argument("--only", action="append", default=None, metavar="ROW",
                        help="show only this row in the table and the plots (repeat it for several); named as "
                             "--compare names a row. Nothing is saved into the run folder then")
    report.add_argument("--per-run", action="store_true",
                        help="also print one line per run: its seed, updates, the epoch kept and its dev rsum, "
                             "the test rsum and the commit it came from")
    report.add_argument("--unpaired-gain", action="store_true",
                        help="also print, per model and fraction, rsum minus the paired-only twin's (runs made "
                             "with `bench run --with-controls`) with a 95 %% bootstrap interval; with a plot, also "
                             "draw the gain beside it (PLOT-gain.png)")
    report.add_argument("--output", "-o", type=Path, default=None, help="write the table to this file instead of stdout")
    report.add_argument("--latency", type=Path, default=None, metavar="FILE.json",
                        help="add per-query latency columns from `bench benchmark latency --out FILE.json`")
    report.add_argument("--no-save", dest="save", action="store_false",
                        help="for one run folder, don't also save report.<format> and plot.png into it")
    report.set_defaults(func=report_command)

    check = subparsers.add_parser("check", help="fail when a run's metrics fall below a stored baseline")
    check.add_argument("runs", nargs="+", type=Path, help="run folders or record files")
    check.add_argument("--against", type=Path, required=True, help="baseline JSON, e.g. reports/baselines/NAME.json")
    check.add_argument("--update", action="store_true", help="write the baseline from these runs instead of checking")
    check.add_argument("--k", type=float, default=3.0, help="with --update: tolerance = k × seed std (default 3)")
    check.add_argument("--floor", type=float, default=1.0, help="with --update: smallest tolerance in points (default 1)")
    check.add_argument("--description", default="", help="with --update: what this baseline is")
    check.set_defaults(func=check_command)


def check_output_file(path: Path, option: str) -> None:
    """Refuse, before any work, an output path that cannot become a file: a folder, or one under a file."""
    if path.is_dir():
        raise BenchError(f"{option} {path} is a folder; give the path of a file (in it or elsewhere)")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise BenchError(f"{option} {path}: {blocking} is a file, not a folder")


def write_output(path: Path, write, option: str) -> None:
    """Call ``write()``; an OSError (read-only folder, full disk) becomes one clear line."""
    try:
        write()
    except OSError as error:
        raise BenchError(f"{option} {path}: cannot write it ({error.strerror or error})") from None


SUFFIXES = {"markdown": "md", "github": "md", "latex": "tex", "csv": "csv", "json": "json", "html": "html"}


def report_command(args: argparse.Namespace) -> int:
    runs = args.runs or [DEFAULT_RUN]
    # One run folder and no other destination: the table and the plot are also kept beside its records;
    # never a table cut down with --only, which would pass for the folder's whole report.
    saved = args.save and not args.only and args.output is None and len(runs) == 1 and runs[0].is_dir()
    saved_table = runs[0] / f"report.{SUFFIXES[args.format]}" if saved else None
    if saved and args.plot is None:
        args.plot = runs[0] / "plot.png"
    for path, option in ((args.output, "--output"), (args.plot, "--plot"), (args.curves, "--curves")):
        if path is not None:
            check_output_file(path, option)
    for path, option in ((args.plot, "--plot"), (args.curves, "--curves")):
        if path:
            check_plot_path(path, option)
    left_out: list[dict] = []
    invalid: list[str] = []  # files that are not valid records: left out, each named with its problem
    records = load_records(runs, left_out=left_out, invalid=invalid)
    if not records:
        notes = ([left_out_note(left_out)] if left_out else []) + invalid_notes(invalid)
        note = f" ({'; '.join(notes)})" if notes else ""
        raise BenchError(f"no finished records found in {', '.join(map(str, runs))}{note}; run `bench run` first "
                         "(or check the folder)")
    for line in invalid_notes(invalid):  # now, so that an error further on does not hide them
        print(f"bench: warning: {line}", file=sys.stderr)
    frame = records_frame(records)
    if args.only:
        frame = select_rows(frame, args.only)
    table = summary_table(frame)
    reference = load_reference(args.reference) if args.reference else None
    latency = load_latency(args.latency) if args.latency else None
    text = render(table, args.format, reference, args.compare, latency, frame, args.against, args.per_run)
    gains = gain_table(table, frame) if args.unpaired_gain else None
    if gains is not None:
        text += render_gain(gains, args.format)
    if saved_table is not None:
        write_output(saved_table, lambda: atomic_write_text(saved_table, text), "report")
    if args.output:
        write_output(args.output, lambda: atomic_write_text(args.output, text), "--output")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    if args.plot:
        if varies_pools(table) and reference is None:
            write_output(args.plot, lambda: plot_pools(table, args.plot), "--plot")
        else:
            write_output(args.plot, lambda: plot(table, args.plot, reference), "--plot")
    if args.plot and gains is not None and "_gain" in gains:
        gain_path = args.plot.with_name(f"{args.plot.stem}-gain{args.plot.suffix}")
        write_output(gain_path, lambda: plot_gain(gains, gain_path), "--plot")
        print(f"wrote {gain_path}", file=sys.stderr if not args.output else sys.stdout)
    if args.curves:
        write_output(args.curves, lambda: plot_curves(frame, args.curves), "--curves")
        print(f"wrote {args.curves}", file=sys.stderr if not args.output else sys.stdout)
    if saved_table is not None:
        print(f"\nreport: {saved_table}   plot: {args.plot}")
    elif args.plot:
        print(f"wrote {args.plot}", file=sys.stderr if not args.output else sys.stdout)
    if left_out:
        sys.stdout.flush()
        print(f"bench: note: {left_out_note(left_out)}", file=sys.stderr)
    return 0


def invalid_notes(invalid: list[str]) -> list[str]:
    """One line per file the report left out because it is not a valid record (what `load_records` said)."""
    return [f"{reason}; left out of the table" for reason in invalid]


def check_command(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench.report.check import compare, load_baseline, make_baseline, write_baseline

    if args.update:
        for option, value in (("--k", args.k), ("--floor", args.floor)):
            # a negative tolerance fails every run, NaN or Infinity passes every run: no check either way
            if not is_number(value) or value < 0:
                raise BenchError(f"{option} must be a finite number >= 0 (got {value:g}): it sets the tolerances")
        check_output_file(args.against, "--against")
        baseline = make_baseline(args.runs, k=args.k, floor=args.floor, description=args.description)
        write_output(args.against, lambda: write_baseline(args.against, baseline), "--against")
        print(f"wrote {args.against}: {len(baseline['cells'])} cells, tolerances {baseline['tolerances']}")
        return 0
    baseline = load_baseline(args.against)
    rows, failures = compare(args.runs, baseline)
    if not baseline["cells"]:
        raise BenchError(f"baseline {args.against} has no cells")
    # On failure show what went wrong; otherwise one line per cell (its rsum).
    shown = rows[rows["status"] != "ok"] if failures else rows[rows["metric"] == "rsum"]
    print(tabulate(shown, headers="keys", tablefmt="github", showindex=False, floatfmt=".2f"))
    if failures:
        print(f"\n{len(failures)} problem(s) against {args.against}:")
        for failure in failures:
            print(f"  {failure}")
        return 1
    print(f"\nall {len(baseline['cells'])} cells within tolerance of {args.against}")
    return 0
