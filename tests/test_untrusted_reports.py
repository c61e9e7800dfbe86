"""Records, reference tables, latency files and baselines from elsewhere (issues 39 and 40).

A run folder travels between people, so `bench report` trusts no file in it: each record goes
through the record schema (bench/run/record.py), and one that breaks it, NaN and Infinity metrics
included, is left out of the table with a one-line warning that names it; the report shows the
others. `bench check` refuses such a record, and NaN or Infinity in a baseline, outright: a
regression check must be able to fail. Every test here feeds the CLI (``bench.cli.main``, in
process) a file that used to end in a traceback or in a number that was never there.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from bench.cli import main
from bench.run.record import validation_errors

REPO = Path(__file__).resolve().parent.parent
# Four finished records that keep their test ranks (so --compare bootstraps) and a validation curve
# (so --per-run has an epoch kept): cca, jwae, mine and vse, tuned, 25 % paired, split seed 0.
SOURCES = sorted((REPO / "reports" / "flickr8k-tuned" / "records").glob("*_p25_seed0.json"))
VICTIM = "flickr8k_vse-minilm_tuned_overlap_p25_seed0.json"  # the record a test spoils


def run_folder(root: Path) -> Path:
    """A run folder under ``root`` holding the four records."""
    records = root / "run" / "records"
    records.mkdir(parents=True)
    for source in SOURCES:
        shutil.copyfile(source, records / source.name)
    return root / "run"


def spoil(run: Path, change) -> Path:
    """Apply ``change`` to the victim record (a parsed dict) and write it back as Python's json
    writes it (NaN and Infinity as bare tokens); its path."""
    path = run / "records" / VICTIM
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    return path


def cli(argv: list) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``bench ARGV``, run in process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def one_error_line(status: int, out: str, err: str, *needles: str) -> str:
    """Assert exit status 2, one `bench: error:` line on stderr naming ``needles``, no traceback."""
    assert status == 2, f"exit status {status}\nstdout: {out}\nstderr: {err}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), err
    assert "Traceback" not in out + err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def set_at(keys: tuple, value):
    """A change that puts ``value`` at the nested ``keys`` of a record."""
    def change(record):
        target = record
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


# ---------------------------------------------------------------- bench report leaves a bad record out

# Each used to end `bench report` (with the option given) in a traceback.
WRONG_SHAPES = {
    "unpaired-fraction-string": (("cell", "unpaired_fraction"), "100", [], "'cell.unpaired_fraction' a string"),
    "test-ranks-empty": (("test_ranks",), {}, [], "lacks 'test_ranks.i2t', 'test_ranks.t2i'"),
    "data-list": (("data",), [], [], "'data' a list"),
    "training-string": (("training",), "x", [], "'training' a string"),
    "git-string": (("provenance", "git"), "abc", [], "'provenance.git' a string"),
    "extra-sources-number": (("cell", "extra_sources"), 3, [], "'cell.extra_sources' a number"),
    "tuned-profile-string": (("provenance", "tuned_profile"), "x", [], "'provenance.tuned_profile' a string"),
    "i2t-string": (("test_ranks", "i2t"), "x", ["--compare", "mine"], "'test_ranks.i2t' a string"),
    "t2i-short": (("test_ranks", "t2i"), [[0]], ["--compare", "mine"], "1 t2i lists"),
    "huge-rank": (("test_ranks", "i2t", 0), 2**70, ["--compare", "mine"], "i2t rank of at least"),
    "curve-string": (("training", "validation_curve"), "x", ["--per-run"], "'training.validation_curve' a string"),
    "curve-point-list": (("training", "validation_curve", 0), [], ["--per-run"], "validation_curve.0' a list"),
}


@pytest.mark.parametrize("kind", sorted(WRONG_SHAPES))
def test_report_leaves_out_a_record_of_the_wrong_shape_and_shows_the_others(tmp_path, kind):
    keys, value, options, problem = WRONG_SHAPES[kind]
    run = run_folder(tmp_path)
    path = spoil(run, set_at(keys, value))
    status, out, err = cli(["report", run, "--no-save", *options])
    assert status == 0, f"exit status {status}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in out + err
    rows = [line.split("|")[1].strip() for line in out.split("\n\n")[0].splitlines()[2:]]
    assert rows == ["cca", "jwae", "mine"]  # vse left out, the others shown
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: warning: record "), err
    assert str(path) in lines[0] and problem in lines[0] and "left out of the table" in lines[0]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("metric", ["rsum", "i2t_r1"])
def test_report_leaves_out_a_record_with_a_non_finite_metric_and_names_it(tmp_path, metric, value):
    """Such a record used to show as a row of "nan" (or "inf") with no word."""
    run = run_folder(tmp_path)
    path = spoil(run, set_at(("metrics", metric), value))
    assert ("NaN" if math.isnan(value) else "Infinity") in path.read_text()  # the bare token json writes
    status, out, err = cli(["report", run, "--no-save"])
    assert status == 0 and "| vse" not in out and "nan" not in out.lower() and "inf" not in out.lower()
    lines = err.splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and f"'metrics.{metric}'" in lines[0], err
    assert "expected a finite number" in lines[0]


def test_report_with_only_bad_records_is_one_error_naming_them(tmp_path):
    run = run_folder(tmp_path)
    for path in (run / "records").glob("*.json"):
        path.write_text("[]")
    one_error_line(*cli(["report", run, "--no-save"]), "no finished records", "holds a list",
                   str(run / "records" / VICTIM))


def test_a_record_with_a_nan_metric_is_written_as_a_failed_cell(tmp_path):
    """`bench run` writes every record through the schema (bench.run.record.write_record): a NaN metric, which
    the schema used to accept, makes the cell a failure that says why, never a result."""
    from bench.run import write_record

    record = json.loads(SOURCES[0].read_text())
    record["metrics"]["rsum"] = float("nan")
    write_record(tmp_path / "cell.json", record)
    written = json.loads((tmp_path / "cell.json").read_text())
    assert written["status"] == "failed" and "metrics" not in written
    assert written["error"]["type"] == "SchemaError" and "'metrics.rsum' NaN" in written["error"]["message"]
    assert validation_errors(written) == []


def test_every_committed_record_still_reads(tmp_path):
    """The tighter schema accepts the committed records of this test (all of them: test_committed_records)."""
    for source in SOURCES:
        assert validation_errors(json.loads(source.read_text())) == [], source


# ---------------------------------------------------------------- --reference and --latency files


@pytest.mark.parametrize("content, problem", [
    ("model,fraction,i2t_r1\nVSE++,abc,40.0\n", "has fraction 'abc' in row 1"),
    ("model,fraction,i2t_r1\nVSE++,25,abc\nJWAE,50,\n", "has i2t_r1 'abc' in row 1"),
    ("model,fraction,i2t_r1\nVSE++,25,inf\n", "has i2t_r1 'inf' in row 1"),
    ("model,fraction,i2t_r1\nVSE++,250,40\n", "has fraction '250' in row 1"),
    ("model,fraction,i2t_r1\n,25,40\n", "no model name in row 1"),
])
def test_report_refuses_a_reference_table_of_the_wrong_types(tmp_path, content, problem):
    run = run_folder(tmp_path)
    reference = tmp_path / "reference.csv"
    reference.write_text(content)
    one_error_line(*cli(["report", run, "--no-save", "--reference", reference]), str(reference), problem)


def test_a_reference_table_with_empty_cells_is_still_read(tmp_path):
    run = run_folder(tmp_path)
    reference = tmp_path / "reference.csv"
    reference.write_text("model,fraction,i2t_r1,i2t_r5\nVSE++,25,,40.5\n")
    status, out, err = cli(["report", run, "--no-save", "--reference", reference])
    assert status == 0 and "| VSE++ (reference) | -      | 25         | –             | 40.5" in out, out + err


@pytest.mark.parametrize("content, problem", [
    ({"environment": 3, "rows": []}, "'environment' a number"),
    ({"environment": {"device": "cpu"}, "rows": [{"model": "cca", "caption_ms_b1": float("nan")}]},
     "'rows.0.caption_ms_b1' NaN"),
    ({"rows": [{"model": ["cca"]}]}, "'rows.0.model' a list"),
    ({"rows": {"model": "cca"}}, "'rows' an object"),
])
def test_report_refuses_a_latency_file_of_the_wrong_shape(tmp_path, content, problem):
    run = run_folder(tmp_path)
    latency = tmp_path / "latency.json"
    latency.write_text(json.dumps(content))
    one_error_line(*cli(["report", run, "--no-save", "--latency", latency]), str(latency), problem)


# ---------------------------------------------------------------- bench check


def baseline_of(run: Path, tmp_path: Path) -> Path:
    path = tmp_path / "baseline.json"
    assert cli(["check", run, "--against", path, "--update"])[0] == 0
    assert cli(["check", run, "--against", path])[0] == 0
    return path


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_check_refuses_a_run_with_a_non_finite_metric(tmp_path, value):
    """A NaN rsum used to pass as "within tolerance": NaN is below nothing."""
    run = run_folder(tmp_path)
    baseline = baseline_of(run, tmp_path)
    path = spoil(run, set_at(("metrics", "rsum"), value))
    one_error_line(*cli(["check", run, "--against", baseline]), str(path), "'metrics.rsum'", "finite number")
    one_error_line(*cli(["check", run, "--against", tmp_path / "new.json", "--update"]), str(path))
    assert not (tmp_path / "new.json").exists()


@pytest.mark.parametrize("where, value, problem", [
    ("metric", float("nan"), "not finite numbers"),
    ("metric", float("inf"), "not finite numbers"),
    ("tolerance", float("nan"), "not numbers >= 0"),
    ("tolerance", float("inf"), "not numbers >= 0"),
    ("tolerances", {}, "has no tolerances"),
])
def test_check_refuses_a_baseline_that_could_not_fail(tmp_path, where, value, problem):
    """A NaN baseline metric or an infinite tolerance used to pass every run; no tolerance at all
    ended in a traceback."""
    run = run_folder(tmp_path)
    path = baseline_of(run, tmp_path)
    baseline = json.loads(path.read_text())
    if where == "metric":
        baseline["cells"][VICTIM[:-5]]["metrics"]["rsum"] = value
    elif where == "tolerance":
        baseline["tolerances"]["rsum"] = value
    else:
        baseline["tolerances"] = value
    path.write_text(json.dumps(baseline))
    one_error_line(*cli(["check", run, "--against", path]), str(path), problem)


@pytest.mark.parametrize("options, named", [
    (["--k", "-1", "--floor", "-5"], "--k"), (["--floor", "-5"], "--floor"), (["--k", "nan"], "--k"),
    (["--floor", "inf"], "--floor"),
])
def test_check_update_refuses_tolerances_that_are_not_finite_and_positive(tmp_path, options, named):
    """`--update --k -1 --floor -5` used to write a baseline with negative tolerances."""
    run = run_folder(tmp_path)
    one_error_line(*cli(["check", run, "--against", tmp_path / "b.json", "--update", *options]),
                   f"{named} must be a finite number >= 0")
    assert not (tmp_path / "b.json").exists()


# ---------------------------------------------------------------- property: any spoiled record


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

DELETE = object()  # a "value" that removes the key instead
WRONG_VALUES = ["x", "", [], [1, "a"], 0, -1, 0.5, 2**70, 1e308, {}, {"a": 1}, None, True,
                float("nan"), float("inf"), -float("inf"), DELETE]
VARIANTS = [[], ["--compare", "mine"], ["--per-run"], ["--format", "json", "--compare", "mine", "--per-run"]]


@st.composite
def spoilt_records(draw):
    """(file name, record, path of keys changed): one of the four records with one nested value
    (reached through objects and lists, as deep as the draw goes) replaced by a wrong one or removed."""
    source = draw(st.sampled_from(SOURCES))
    record = json.loads(source.read_text())
    keys, target = [], record
    while True:
        children = list(target) if isinstance(target, dict) else list(range(len(target)))
        key = draw(st.sampled_from(children))
        keys.append(key)
        child = target[key]
        if not isinstance(child, (dict, list)) or not child or draw(st.booleans()):
            break
        target = child
    value = draw(st.sampled_from(WRONG_VALUES))
    if value is DELETE:
        del target[key]
    else:
        target[key] = copy.deepcopy(value)
    return source.name, record, keys


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root``, with the SHA-256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@hypothesis.settings(max_examples=30, deadline=None, database=None,
                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(spoilt=spoilt_records(), variant=st.sampled_from(VARIANTS))
def test_report_on_a_spoilt_record_exits_cleanly_and_writes_nothing(spoilt, variant):
    """Whatever one value of one record is changed to: exit status 0 or 2, no traceback, a warning
    naming the file exactly when the schema refuses it, and no file written (in the folder, or in the
    working directory)."""
    name, record, keys = spoilt
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        run = run_folder(root)
        path = run / "records" / name
        path.write_text(json.dumps(record))
        before = snapshot(root)
        cwd = os.getcwd()
        os.chdir(root)
        try:
            status, out, err = cli(["report", run, "--no-save", *variant])
        finally:
            os.chdir(cwd)
        assert status in (0, 2), f"{keys}: exit status {status}\n{err}"
        assert "Traceback" not in out + err, keys
        assert (str(path) in err) == bool(validation_errors(record)), f"{keys}: {err}"
        assert snapshot(root) == before, keys
