"""The Recall@K report, published reference rows, plots, and `bench check` regressions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.report import load_records, load_reference, records_frame, render, summary_table

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def run_dir(small_synthetic, small_splits, tmp_path):
    import torch

    from bench.models.registry import get_model_spec
    from bench.run import build_cells, run_grid

    spec = get_model_spec("cca")
    cells = build_cells("synthetic", [spec], [100, 50, 10], [0, 1], "overlap", "cpu", None, {})
    run_grid(cells, {"cca": spec}, small_synthetic, tmp_path / "run", torch.device("cpu"), quiet=True,
             splits_dir=small_splits)
    return tmp_path / "run"


def test_table_has_means_over_seeds_and_retention(run_dir):
    table = summary_table(records_frame(load_records([run_dir])))
    assert list(table["fraction"]) == [100, 50, 10]
    assert (table["seeds"] == 2).all()
    full = table.loc[table["fraction"] == 100, "rsum"].item()
    ten = table.loc[table["fraction"] == 10]
    assert ten["retention"].item() == pytest.approx(ten["rsum"].item() / full)
    text = render(table, "markdown")
    assert "±" in text  # several seeds show their spread


@pytest.mark.parametrize("fmt", ["markdown", "github", "latex", "csv", "json", "html"])
def test_every_format_renders(run_dir, fmt):
    table = summary_table(records_frame(load_records([run_dir])))
    text = render(table, fmt, load_reference(REPO / "reports" / "published" / "coco.csv"))
    assert "cca" in text
    assert "published, COCO 1K" in text


def test_published_rows_only_when_asked(run_dir, capsys):
    assert main(["report", str(run_dir), "--no-save"]) == 0  # (the saved-file line would name this test's folder)
    assert "published" not in capsys.readouterr().out
    assert main(["report", str(run_dir), "--reference", str(REPO / "reports/published/coco.csv")]) == 0
    out = capsys.readouterr().out
    assert "mine (published, COCO 1K)" in out and "64.6" in out


def test_reference_rows_are_named_by_their_file(run_dir, tmp_path):
    """A reference file names its source in its `label` column (a reference-code run is not a published
    COCO number); without one its rows are plain "reference" rows."""
    header = "model,fraction,i2t_r1,i2t_r5,i2t_r10,t2i_r1,t2i_r5,t2i_r10"
    labelled, plain = tmp_path / "labelled.csv", tmp_path / "plain.csv"
    labelled.write_text(f"{header},label\nVSE++,25,4.7,19.1,28.4,5.4,17.6,26.5,reference code run\n")
    plain.write_text(f"{header}\nVSE++,25,4.7,19.1,28.4,5.4,17.6,26.5\n")
    table = summary_table(records_frame(load_records([run_dir])))
    text = render(table, "markdown", load_reference(labelled))
    assert "VSE++ (reference code run)" in text and "COCO" not in text
    assert "VSE++ (reference)" in render(table, "markdown", load_reference(plain))



def test_reference_rows_say_their_dataset_in_a_table_of_several(run_dir, tmp_path):
    import pandas as pd

    from bench.report import display_table

    header = "model,fraction,i2t_r1,i2t_r5,i2t_r10,t2i_r1,t2i_r5,t2i_r10"
    with_dataset, without = tmp_path / "with.csv", tmp_path / "without.csv"
    with_dataset.write_text(f"{header},label,dataset\nVSE++,25,4.7,19.1,28.4,5.4,17.6,26.5,ours,flickr8k\n")
    without.write_text(f"{header}\nVSE++,25,4.7,19.1,28.4,5.4,17.6,26.5\n")
    table = summary_table(records_frame(load_records([run_dir])))
    mixed = pd.concat([table, table.assign(dataset="other")], ignore_index=True)
    shown = display_table(mixed, load_reference(with_dataset))
    assert shown.iloc[-1]["Dataset"] == "flickr8k" and shown.iloc[-1]["Model"] == "VSE++ (ours)"
    assert display_table(mixed, load_reference(without)).iloc[-1]["Dataset"] == "–"

def test_plot_is_written(run_dir, tmp_path):
    target = tmp_path / "plot.png"
    assert main(["report", str(run_dir), "--plot", str(target), "-o", str(tmp_path / "t.md")]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_passes_on_its_own_baseline_and_fails_on_a_lowered_metric(run_dir, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    assert main(["check", str(run_dir), "--against", str(baseline), "--update"]) == 0
    stored = json.loads(baseline.read_text())
    assert stored["tolerances"]["rsum"] >= 3.0 and len(stored["cells"]) == 6
    assert main(["check", str(run_dir), "--against", str(baseline)]) == 0

    record_path = run_dir / "records" / "synthetic_cca_cpu_overlap_p50_seed1.json"
    record = json.loads(record_path.read_text())
    record["metrics"]["t2i_r5"] -= stored["tolerances"]["t2i_r5"] + 0.5
    record_path.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["check", str(run_dir), "--against", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "synthetic_cca_cpu_overlap_p50_seed1: t2i_r5" in out

    record_path.unlink()
    assert main(["check", str(run_dir), "--against", str(baseline)]) == 1
    assert "missing" in capsys.readouterr().out


def _frame(rsums: dict[tuple[str, str], dict[int, float]]):
    import pandas as pd

    from bench.report import METRICS

    rows = []
    for (model, label), by_fraction in rsums.items():
        for fraction, rsum in by_fraction.items():
            row = dict(dataset="d", model=model, label=label, text_encoder="minilm", profile="cpu", policy="overlap",
                       fraction=fraction, seed=0, **{m: 0.0 for m in METRICS})
            row["rsum"] = rsum
            rows.append(row)
    return pd.DataFrame(rows)


def test_compare_picks_the_best_other_row_in_rsum_and_in_retention_separately():
    from bench.report import comparison_table

    table = summary_table(_frame({
        ("mine", ""): {100: 200.0, 10: 120.0},
        ("mine", "no-x"): {100: 300.0, 10: 10.0},
        ("vse", ""): {100: 250.0, 10: 125.0},  # best rsum at 10 %, retention 0.5
        ("cca", ""): {100: 100.0, 10: 70.0},  # best retention at 10 %: 0.7
    }))
    out = comparison_table(table, "mine").set_index("Paired %")
    assert out.loc["10", "best other (rsum)"] == "vse (minilm)" and out.loc["10", "Δ rsum"] == "-5.0"
    assert out.loc["10", "best other (retention)"] == "cca (minilm)"
    assert out.loc["10", "Δ retention"] == f"{120 / 200 - 0.7:+.3f}"
    assert out.loc["100", "best other (rsum)"] == "mine (minilm) [no-x]" and out.loc["100", "Δ retention"] == ""
    # a labelled row can be compared by its full name; an ambiguous or unknown name is one clear error
    assert comparison_table(table, "mine (minilm) [no-x]").set_index("Paired %").loc["10", "Δ rsum"] == "-115.0"
    with pytest.raises(BenchError, match="matches no row"):
        comparison_table(table, "jwae")


def test_against_compares_with_each_named_row_in_turn():
    from bench.report import comparison_table

    table = summary_table(_frame({
        ("mine", ""): {100: 200.0, 10: 120.0},
        ("mine", "control"): {10: 100.0},
        ("vse", ""): {100: 250.0, 10: 125.0},
        ("cca", ""): {100: 100.0, 10: 70.0},
    }))
    out = comparison_table(table, "mine", against=["mine (minilm) [control]", "cca"])
    lines = [(r["Paired %"], r["against"], r["Δ rsum"]) for _, r in out.iterrows()]
    # the best other row (vse) is left out; a fraction without a named row has no line for it
    assert lines == [("100", "cca (minilm)", "+100.0"), ("10", "mine (minilm) [control]", "+20.0"),
                     ("10", "cca (minilm)", "+50.0")]
    assert out.set_index("against").loc["cca (minilm)"].iloc[-1]["Δ retention"] == f"{120 / 200 - 0.7:+.3f}"
    with pytest.raises(BenchError, match="is the compared row itself"):
        comparison_table(table, "mine", against=["mine"])
    with pytest.raises(BenchError, match="--against 'jwae' matches no row"):
        comparison_table(table, "mine", against=["jwae"])


def test_report_compare_option_prints_the_second_table(run_dir, capsys):
    assert main(["report", str(run_dir), "--compare", "cca"]) == 2  # one model only: nothing to compare with
    assert "no fraction has both" in capsys.readouterr().err


def test_one_run_folder_keeps_its_table_and_plot_and_says_where(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == f"report: {run_dir / 'report.md'}   plot: {run_dir / 'plot.png'}"
    assert "| cca" in (run_dir / "report.md").read_text()
    assert (run_dir / "plot.png").read_bytes()[:4] == b"\x89PNG"
    (run_dir / "report.md").unlink()
    assert main(["report", str(run_dir), "--no-save"]) == 0
    assert not (run_dir / "report.md").exists() and "report:" not in capsys.readouterr().out


def test_latency_columns_come_from_a_benchmark_file(run_dir, tmp_path, capsys):
    latency = tmp_path / "latency.json"
    latency.write_text(json.dumps({"environment": {"device": "cpu", "torch_threads": 1}, "rows": [
        {"model": "cca", "text_encoder": "tfidf", "caption_ms_b1": 0.66, "image_ms_b1": 0.04, "search_ms_25k": 1.25},
        {"model": "minilm sentence encoder", "text_encoder": "minilm", "caption_ms_b1": 19.9}]}))
    assert main(["report", str(run_dir), "--no-save", "--latency", str(latency)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| Model"))
    assert "caption ms" in header and "top-10 of 25k ms" in header
    assert "| 0.66" in out and "1.25" in out and "MiniLM itself adds 19.9 ms" in out
    latency.write_text("[]")
    assert main(["report", str(run_dir), "--no-save", "--latency", str(latency)]) == 2


def test_benchmark_latency_measures_every_column(tmp_path, capsys):
    out = tmp_path / "latency.json"
    assert main(["benchmark", "latency", "--models", "cca,vse", "--profile", "paper", "--repeats", "2",
                 "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["cca", "vse"]
    from bench.perf.latency import LATENCY_FIELDS

    assert all(r[k] > 0 for r in rows for k in LATENCY_FIELDS)


def test_compare_gives_a_bootstrap_interval_from_the_records_test_ranks(small_synthetic, small_splits, tmp_path,
                                                                       capsys):
    import torch

    from bench.models.registry import get_model_spec
    from bench.run import build_cells, run_grid

    spec = get_model_spec("cca")
    cells = build_cells("synthetic", [spec], [50, 10], [0, 1], "overlap", "cpu", None, {})
    cells += build_cells("synthetic", [spec], [50, 10], [0, 1], "overlap", "cpu", None, {"cca": {"dim": "8"}},
                         label="small")
    run_grid(cells, {"cca": spec}, small_synthetic, tmp_path / "run", torch.device("cpu"), quiet=True,
             splits_dir=small_splits)
    assert main(["report", str(tmp_path / "run"), "--compare", "cca", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "Δ rsum 95 % CI" in out and "paired percentile bootstrap" in out
    assert main(["report", str(tmp_path / "run"), "--compare", "cca", "--against", "cca (tfidf) [small]",
                 "--no-save"]) == 0
    assert "| against" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "run"), "--against", "cca", "--no-save"]) == 2
    assert "give the compared row with --compare" in capsys.readouterr().err
    # the interval brackets the point difference
    frame = records_frame(load_records([tmp_path / "run"]))
    from bench.report import comparison_table

    compared = comparison_table(summary_table(frame), "cca", frame).iloc[0]
    low, high = (float(x) for x in compared["Δ rsum 95 % CI"].strip("[]").split(","))
    assert low <= float(compared["Δ rsum"]) <= high


def test_curves_put_runs_on_an_updates_axis_and_mark_the_epoch_kept(tmp_path):
    """Epochs of different sizes line up by updates; an old record without an update count falls back
    to epochs; the dot sits on the best epoch."""
    import pandas as pd

    from bench.report import curve_points, plot_curves

    frame = pd.DataFrame([
        {"dataset": "d", "model": "vse", "label": "", "text_encoder": "gru", "profile": "cpu", "policy": "overlap",
         "fraction": 25.0, "seed": 0, "updates": 300, "epochs_run": 3, "best_epoch": 1,
         "_curve": [(0, 10.0), (1, 30.0), (2, 20.0)]},
        {"dataset": "d", "model": "mine", "label": "x", "text_encoder": "gru", "profile": "cpu", "policy": "overlap",
         "fraction": 25.0, "seed": 0, "updates": float("nan"), "epochs_run": 2, "best_epoch": 1,
         "_curve": [(0, 5.0), (1, 6.0)]},
        {"dataset": "d", "model": "cca", "label": "", "text_encoder": "-", "profile": "cpu", "policy": "overlap",
         "fraction": 25.0, "seed": 0, "updates": float("nan"), "epochs_run": float("nan"),
         "best_epoch": float("nan"), "_curve": []},
    ])
    assert curve_points(frame.iloc[0]) == ([100.0, 200.0, 300.0], [10.0, 30.0, 20.0], 1, True)
    assert curve_points(frame.iloc[1]) == ([0.0, 1.0], [5.0, 6.0], 1, False)
    target = plot_curves(frame, tmp_path / "curves.png")  # the run without a curve (cca) is left out
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curves_of_runs_without_training_is_a_clear_error(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), "--no-save", "--curves", str(tmp_path / "c.png")]) != 0
    assert "none of these records has a validation curve" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()


def test_only_keeps_the_runs_of_the_named_rows():
    """--only picks rows as --compare does: a full name, or the leading part of an unlabelled row."""
    import pandas as pd

    from bench.report import select_rows

    def run(model, label, seed):
        return {"dataset": "d", "model": model, "label": label, "text_encoder": "gru", "profile": "cpu",
                "policy": "overlap", "extras": "", "fraction": 25.0, "seed": seed}

    frame = pd.DataFrame([run("vse", "", 0), run("vse", "", 1), run("mine", "a", 0), run("mine", "b", 0)])
    kept = select_rows(frame, ["vse", "mine (gru) [b]"])
    assert list(zip(kept["model"], kept["label"], kept["seed"])) == [("vse", "", 0), ("vse", "", 1), ("mine", "b", 0)]
    with pytest.raises(BenchError, match=r"--only 'mine' matches no row; the rows are: vse \(gru\), mine \(gru\) \[a\]"):
        select_rows(frame, ["mine"])


def test_report_only_prints_the_named_rows_and_saves_nothing_into_the_folder(tmp_path, capsys):
    import shutil

    records = REPO / "reports" / "flickr8k-gru" / "records"
    run = tmp_path / "run"
    run.mkdir()
    for name in ("vse-gru_cpu_overlap_p25_seed0", "jwae-gru_cpu_overlap_p25_seed0"):
        shutil.copy(records / f"flickr8k_{name}.json", run)
    assert main(["report", str(run), "--only", "jwae", "--curves", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "| jwae" in out and "| vse" not in out
    assert (tmp_path / "c.png").exists()
    assert sorted(p.suffix for p in run.iterdir()) == [".json", ".json"]  # no report.md, no plot.png


def test_per_run_table_traces_each_run_to_its_seed_epoch_and_commit():
    """One line per run: the dev rsum is the one at the epoch kept (not the curve's last point), a dirty
    tree is marked, and an older record without updates or provenance still gets a line."""
    import pandas as pd

    from bench.report import per_run_table

    def run(seed, best, curve, commit, dirty, updates):
        return {"dataset": "d", "model": "vse", "label": "", "text_encoder": "gru", "profile": "cpu",
                "policy": "overlap", "extras": "", "fraction": 25.0, "seed": seed, "rsum": 100.0 + seed,
                "best_epoch": best, "_curve": curve, "commit": commit, "dirty": dirty, "updates": updates}

    frame = pd.DataFrame([run(1, 0, [(0, 90.0), (1, 80.0)], "abcdef0123", True, 100),
                          run(0, 1, [(0, 50.0), (1, 60.0), (2, 55.0)], "0123456789", False, 150),
                          run(2, float("nan"), [], None, None, float("nan"))])
    table = per_run_table(frame)
    assert list(table["seed"]) == ["0", "1", "2"]
    assert list(table["dev rsum"]) == ["60.0", "90.0", ""]
    assert list(table["epoch kept"]) == ["1", "0", ""]
    assert list(table["commit"]) == ["0123456", "abcdef0+dirty", "?"]
    assert list(table["updates"]) == ["150", "100", ""]
    assert list(table["test rsum"]) == ["100.0", "101.0", "102.0"]


def test_report_per_run_lists_the_committed_runs(capsys):
    records = REPO / "reports" / "flickr8k-gru" / "records"
    assert main(["report", str(records / "flickr8k_jwae-gru_cpu_overlap_p25_seed0.json"), "--per-run"]) == 0
    out = capsys.readouterr().out
    assert "| jwae (gru) | 25         | 0      | 2773      | 46           | 114.5      | 109.5       | 1149754  |" in out
    assert main(["report", str(records / "flickr8k_jwae-gru_cpu_overlap_p25_seed0.json"), "--per-run",
                 "--format", "json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert runs == [{"Row": "jwae (gru)", "Paired %": "25", "seed": "0", "updates": "2773", "epoch kept": "46",
                     "dev rsum": "114.5", "test rsum": "109.5", "commit": "1149754"}]


def test_training_time_counts_every_leg_of_a_resumed_run_and_marks_a_last_leg_only_time():
    """`train s per run` reads the record's summed epoch times; a resumed run from before they were kept
    has only its last leg's time, which the table marks as a lower bound."""
    import copy

    from bench.report import budget_table

    record = json.loads((REPO / "reports" / "flickr8k-paper" / "records"
                         / "flickr8k_vse-gru_paper_overlap_p100_seed0.json").read_text())
    assert record["training"]["resumed_from_epoch"] is not None and "train_seconds" not in record["training"]
    last_leg_only = budget_table(records_frame([record]))
    assert list(last_leg_only["train s per run"]) == [f"≥ {record['timing']['fit_s']:.0f}"]

    counted = copy.deepcopy(record)
    counted["training"]["train_seconds"] = 7200.4
    assert list(budget_table(records_frame([counted]))["train s per run"]) == ["7200"]
