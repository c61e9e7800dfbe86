"""Tuned files, Ray addresses and storage URLs from elsewhere give one line and exit 2, never a
traceback (issue 39); worker processes end with their driver, and a `bench tune` resumed after a
kill is the study it replaces (issue 40)."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.models.config import config_to_dict
from bench.errors import BenchError
from bench.models.registry import get_model_spec
from bench.tuning import tuned_config

REPO = Path(__file__).resolve().parent.parent
COMMITTED_TUNED = REPO / "reports" / "tuning"
# the subprocesses below run this checkout's bench, whatever the installed one is
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


# -- tuned files ----------------------------------------------------------------------------------
def _tiny_vse_tuned_file() -> dict:
    """A committed vse tuned file, moved to the synthetic data, with a config that trains in a moment."""
    data = json.loads((COMMITTED_TUNED / "flickr8k" / "vse_minilm_p10.json").read_text())
    config = get_model_spec("vse").config_class.for_profile(
        "quick", {"text_encoder": "minilm", "embed_size": "32", "epochs": "1", "batch_size": "32"})
    data["dataset"], data["config"] = "synthetic", json.loads(json.dumps(config_to_dict(config)))
    return data


@pytest.fixture()
def tuned_run(tmp_path, small_synthetic, small_splits, fake_minilm, monkeypatch):
    """`bench run --profile tuned` on a small synthetic dataset: returns run(tuned file) -> (exit, stderr,
    out folder). Each call gets fresh folders; the working directory is a folder of this test's own."""
    import bench.commands.run as run_command

    monkeypatch.setattr(run_command, "load_from_args", lambda args: small_synthetic)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    calls = [0]

    def run(tuned: object, capsys) -> tuple[int, str, Path]:
        calls[0] += 1
        folder = tmp_path / f"case{calls[0]}"
        (folder / "tuned" / "synthetic").mkdir(parents=True)
        (folder / "tuned" / "synthetic" / "vse_minilm_p10.json").write_text(json.dumps(tuned))
        out = folder / "out"
        capsys.readouterr()
        code = main(["run", "--profile", "tuned", "--models", "vse", "--fractions", "10", "--tuned-dir",
                     str(folder / "tuned"), "--out", str(out), "--splits-dir", str(small_splits), "--jobs", "1",
                     "--quiet"])
        return code, capsys.readouterr().err, out

    return run


def _without(data: dict, key: str) -> dict:
    return {k: v for k, v in data.items() if k != key}


MALFORMED = {  # name -> (how the valid file is changed, what the message says)
    "fraction abc": (lambda d: {**d, "fraction": "abc"}, "'fraction' a string"),
    "no config": (lambda d: _without(d, "config"), "lacks 'config'"),
    "no budget": (lambda d: _without(d, "budget"), "lacks 'budget'"),
    "model_revision x": (lambda d: {**d, "model_revision": "x"}, "'model_revision' a string"),
    "a config value of the wrong type": (lambda d: {**d, "config": {**d["config"], "embed_size": "abc"}},
                                         "config that vse can.t use: it has 'embed_size' a string; expected an integer"),
    "a boolean for a number": (lambda d: {**d, "config": {**d["config"], "lr": True}}, "'lr' a boolean"),
    "a config value out of range": (lambda d: {**d, "config": {**d["config"], "embed_size": 0}},
                                    r"vse.embed_size must be >= 1 \(got 0\)"),
    "an unknown setting": (lambda d: {**d, "config": {**d["config"], "nonsense": 1}}, "no setting.* nonsense"),
    "NaN wall time": (lambda d: {**d, "budget": {**d["budget"], "wall_s": math.nan}}, "'budget.wall_s' NaN"),
    "a list": (lambda d: [d], "holds a list; expected an object"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_tuned_file_is_one_line_naming_it_and_the_reason(tuned_run, capsys, case):
    mutate, reason = MALFORMED[case]
    code, err, out = tuned_run(mutate(_tiny_vse_tuned_file()), capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: tuned profile "), err
    assert "vse_minilm_p10.json" in lines[0] and "bench tune" in lines[0]
    assert re.search(reason, lines[0]), lines[0]
    assert not (out / "records").exists()  # refused before anything ran


def test_a_valid_tuned_file_still_runs(tuned_run, capsys):
    code, err, out = tuned_run(_tiny_vse_tuned_file(), capsys)
    assert code == 0, err
    record = json.loads(next((out / "records").glob("*.json")).read_text())
    assert record["status"] == "ok" and record["config"]["embed_size"] == 32


def test_a_cca_tuned_dim_of_the_wrong_type_is_named(tmp_path):
    """The probe of the issue: a cca file whose ``dim`` is "abc" stopped a cell with a TypeError."""
    data = json.loads((COMMITTED_TUNED / "flickr8k" / "cca_p10.json").read_text())
    data["config"]["dim"] = "abc"
    (tmp_path / "flickr8k").mkdir()
    (tmp_path / "flickr8k" / "cca_p10.json").write_text(json.dumps(data))
    with pytest.raises(BenchError, match=r"cca_p10\.json has a config that cca can't use: it has 'dim' a string"):
        tuned_config(get_model_spec("cca"), "flickr8k", None, 10, tmp_path)


@pytest.mark.parametrize("path", sorted((COMMITTED_TUNED / "flickr8k").glob("*.json")), ids=lambda p: p.stem)
def test_the_committed_tuned_files_load_as_before(path):
    """What the reader gives for a valid file: the file's config values as they are, and its budget."""
    from bench.io import sha256_file

    data = json.loads(path.read_text())
    spec = get_model_spec(data["model"])
    config, source = tuned_config(spec, "flickr8k", data["text_encoder"], data["fraction"], COMMITTED_TUNED)
    loaded = json.loads(json.dumps(config_to_dict(config)))
    assert {key: loaded[key] for key in data["config"]} == data["config"]
    assert {key: type(getattr(config, key)) for key in data["config"]} == \
        {key: type(value) if not isinstance(value, list) else tuple for key, value in data["config"].items()}
    assert source == {"file": str(path), "sha256": sha256_file(path), "tuned_fraction": data["fraction"],
                      "trials_spent": data["budget"]["trials_spent"], "update_cap": data["budget"]["update_cap"],
                      "tuning_wall_s": data["budget"]["wall_s"], "model_revision": data.get("model_revision", 0)}


def _wrong_values(original: object):
    """Hypothesis values of another JSON type than ``original`` (a float for an int only when it is
    not whole, since 64.0 is a whole number; NaN and infinities for a number, which JSON lacks)."""
    from hypothesis import strategies as st

    number = isinstance(original, (int, float)) and not isinstance(original, bool)
    options = [st.none(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                                 max_size=2)]
    if not isinstance(original, bool):
        options.append(st.booleans())
    if not isinstance(original, str):
        options.append(st.text(max_size=6))
    if not number:
        options += [st.integers(), st.floats(allow_nan=False)]
    if number:
        options.append(st.sampled_from([math.nan, math.inf, -math.inf]))
    if isinstance(original, int) and not isinstance(original, bool):
        options.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()))
    return st.one_of(options)


def _mutations():
    """A valid tuned file with one key of the file, its budget or its config removed (not a config
    key: a default config trains for long) or given a value of another type."""
    from hypothesis import strategies as st

    valid = _tiny_vse_tuned_file()
    places = [(), ("budget",), ("config",)]

    @st.composite
    def mutated(draw):
        data = json.loads(json.dumps(valid))
        place = draw(st.sampled_from(places))
        holder = data
        for key in place:
            holder = holder[key]
        key = draw(st.sampled_from(sorted(holder)))
        if place != ("config",) and draw(st.booleans()):
            del holder[key]
        else:
            holder[key] = draw(_wrong_values(holder[key]))
        return data

    return mutated()


def _files_under(folder: Path, skip: Path) -> dict[str, float]:
    """Every path under ``folder`` but ``skip`` (and hypothesis's own cache) with its modification time."""
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")
            if skip not in p.parents and p != skip and ".hypothesis" not in p.parts}


def test_mutated_tuned_files_exit_0_or_2_and_write_only_into_the_run_folder(tuned_run, capsys, tmp_path):
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=20, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(_mutations())
    def check(tuned):
        before = _files_under(tmp_path, tmp_path / "none")
        code, err, out = tuned_run(tuned, capsys)
        assert code in (0, 2), err
        assert "Traceback" not in err
        if code == 2:
            assert len(err.strip().splitlines()) == 1 and err.startswith("bench: error: "), err
        # the new case folder holds the tuned file given and the run folder; nothing else changed
        case = out.parent
        after = _files_under(tmp_path, case)
        assert after == before, set(after) ^ set(before)
        assert {p.name for p in case.iterdir()} <= {"tuned", "out"}

    check()


# -- connection errors: Ray address, storage URL ---------------------------------------------------------
def _ray_cluster_running() -> bool:
    try:
        from ray._private.services import find_gcs_addresses
    except ImportError:
        return False
    return bool(os.environ.get("RAY_ADDRESS")) or bool(find_gcs_addresses())


@pytest.mark.parametrize("address, says", [
    ("auto", "--address auto: no Ray cluster runs on this machine; start one with `ray start --head`"),
    ("ray://127.0.0.1:1", "--address ray://127.0.0.1:1: nothing answers at 127.0.0.1:1"),
    ("127.0.0.1:1", "--address 127.0.0.1:1: nothing answers at 127.0.0.1:1"),
    ("not a url", "--address 'not a url' is not a Ray address; give auto"),
])
def test_a_ray_address_without_a_cluster_is_one_line(tmp_path, address, says):
    pytest.importorskip("ray")
    if address == "auto" and _ray_cluster_running():
        pytest.skip("a Ray cluster runs on this machine, so --address auto would join it")
    env = {k: v for k, v in ENV.items() if k != "RAY_ADDRESS"}
    # Ray retries an address where nothing listens for minutes; the timeout keeps a regression from hanging here
    done = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--executor", "ray", "--address", address,
                           "--models", "vse", "--text-encoders", "gru", "--fractions", "10", "--out",
                           str(tmp_path / "run"), "--quiet"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=90)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: ") and says in lines[0], done.stderr[-2000:]
    assert "start" in done.stderr or "give auto" in done.stderr  # what to start, or what to give


@pytest.fixture()
def tune_folder(tmp_path, small_synthetic, small_splits, fake_minilm, monkeypatch):
    import bench.commands.tune as tune_command

    monkeypatch.setattr(tune_command, "load_from_args", lambda args: small_synthetic)
    return tmp_path, small_splits


def _tune_args(folder: Path, splits: Path, out: Path, trials: int, *extra: str) -> list[str]:
    return ["tune", "--models", "cca", "--fractions", "25", "--trials", str(trials), "--out", str(out), "--tuned-dir",
            str(folder / "tuned"), "--splits-dir", str(splits), "--jobs", "1", "--quiet", *extra]


def _driver_installed() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(name) for name in ("psycopg", "psycopg2"))


@pytest.mark.parametrize("url, says", [
    ("notaurl", "--storage notaurl is not a database URL; give one such as sqlite:///"),
    ("postgresql://u:p@localhost/x", "--storage postgresql://u:***@localhost/x needs the database driver psycopg"),
    ("sqlite:////nonexistent/dir/x.db", "--storage sqlite:////nonexistent/dir/x.db: the SQLite file's folder "
                                        "/nonexistent/dir does not exist"),
    ("nosuchdb://host/x", "SQLAlchemy knows no database 'nosuchdb'"),
])
def test_a_storage_url_that_cannot_work_is_one_line_naming_storage(tune_folder, capsys, url, says):
    if url.startswith("postgresql") and _driver_installed():
        pytest.skip("a PostgreSQL driver is installed here")
    folder, splits = tune_folder
    assert main(_tune_args(folder, splits, folder / "tune", 2, "--storage", url)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and says in err, err
    if url.startswith("postgresql"):
        assert "pip install" in err and ":p@" not in err  # what to install; no password
    assert not (folder / "tune").exists()  # refused before anything was made


def test_a_storage_that_cannot_be_opened_is_one_line(tune_folder, capsys):
    folder, splits = tune_folder
    (folder / "a-folder.db").mkdir()  # SQLite can't open a folder as its file
    url = f"sqlite:///{folder / 'a-folder.db'}"
    assert main(_tune_args(folder, splits, folder / "tune", 2, "--storage", url)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot open study" in err and "check --storage" in err, err


# -- workers end with their driver -------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc, Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an orphan's zombie may wait for a reaper here)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_and_watch(driver: subprocess.Popen, processes: list[int], limit: float) -> list[int]:
    """SIGKILL the driver, then wait up to ``limit`` seconds for ``processes`` to end; returns those left
    (killed here, so that a failing test leaves nothing behind)."""
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    killed = time.monotonic()
    while time.monotonic() - killed < limit and any(_running(p) for p in processes):
        time.sleep(0.1)
    left = [p for p in processes if _running(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_workers_and_the_resource_tracker_end_with_a_killed_driver(tmp_path):
    out = tmp_path / "run"
    # two cells that train far longer than the test waits (1000 epochs), one per worker
    driver = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--models", "vse", "--text-encoders", "gru",
                               "--fractions", "100,50", "--set", "vse.epochs=1000", "--jobs", "2", "--threads", "1",
                               "--quiet", "--out", str(out)], env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        started = time.monotonic()
        while len(list(out.glob("work/*"))) < 2:  # both workers train, a cell each
            assert driver.poll() is None, "the driver stopped before its workers trained"
            assert time.monotonic() - started < 180, "the workers did not start training in 3 minutes"
            time.sleep(0.2)
        processes = _children(driver.pid)  # the two workers and the multiprocessing resource tracker
        assert len(processes) >= 2
    except BaseException:
        driver.kill()
        raise
    assert _kill_and_watch(driver, processes, limit=5) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_the_watching_thread_ends_a_worker_without_the_parent_death_signal(tmp_path):
    """Where prctl is missing (not Linux), the thread alone ends the worker within its interval."""
    script = tmp_path / "driver.py"
    script.write_text(
        "import multiprocessing, time\n"
        "import bench.run.executors as executors\n"
        "def start(driver_pid):\n"
        "    executors._set_parent_death_signal = lambda: None  # as on a platform without prctl\n"
        "    executors.watch_driver(driver_pid, interval=0.2)\n"
        "    print('watching', flush=True)\n"
        "    time.sleep(300)\n"
        "if __name__ == '__main__':\n"
        "    import os\n"
        "    child = multiprocessing.get_context('spawn').Process(target=start, args=(os.getpid(),))\n"
        "    child.start()\n"
        "    child.join()\n")
    driver = subprocess.Popen([sys.executable, str(script)], env=ENV, cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert driver.stdout.readline().strip() == "watching"
        worker = [p for p in _children(driver.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(worker) == 1
    except BaseException:
        driver.kill()
        raise
    assert _kill_and_watch(driver, worker, limit=3) == []


# -- a resumed study is the study it replaces ---------------------------------------------------------------
class _Killed(BaseException):
    """Stands in for SIGKILL in the middle of a trial: nothing of bench.tuning catches it."""


def _tuned_file(folder: Path) -> dict:
    (path,) = (folder / "tuned" / "synthetic").glob("cca*_p25.json")
    return json.loads(path.read_text())


def _complete(tuned: dict) -> list[tuple]:
    return [(t["params"], t["dev_rsum"]) for t in tuned["trials"] if t["state"] == "COMPLETE"]


def test_a_study_resumed_after_a_kill_is_the_uninterrupted_study(tune_folder, monkeypatch):
    import bench.tuning as tuning

    folder, splits = tune_folder
    trials = 5  # a random startup trial, then TPE, whose draws depend on the trials before
    assert main(_tune_args(folder / "whole", splits, folder / "whole" / "tune", trials)) == 0
    whole = _tuned_file(folder / "whole")

    out = folder / "killed" / "tune"
    real_run_trial = tuning.run_trial

    def killed_in_trial_3(trial, spec, study, data, workdir, device):
        if trial.number == 3:  # its values are drawn and it trains: the process dies, leaving its folder
            workdir.mkdir(parents=True)
            (workdir / "checkpoint.pt").write_bytes(b"half a checkpoint")
            raise _Killed()
        return real_run_trial(trial, spec, study, data, workdir, device)

    monkeypatch.setattr(tuning, "run_trial", killed_in_trial_3)
    with pytest.raises(_Killed):
        main(_tune_args(folder / "killed", splits, out, trials))
    assert [p.name for p in (out / "work").iterdir()] == [f"{_study_name(out)}-trial3-w0"]
    monkeypatch.setattr(tuning, "run_trial", real_run_trial)
    assert main(_tune_args(folder / "killed", splits, out, trials)) == 0  # resumed in a new sampler, as a new process
    resumed = _tuned_file(folder / "killed")

    # the killed trial: in the table as interrupted, not spent, its work folder gone
    (interrupted,) = [t for t in resumed["trials"] if t["state"] != "COMPLETE"]
    assert interrupted["number"] == 3 and interrupted["state"] == "FAIL"
    assert interrupted["error"].startswith("interrupted")
    assert resumed["budget"]["trials_spent"] == trials == whole["budget"]["trials_spent"]
    assert resumed["budget"]["trials_failed"] == 0
    assert not list(out.glob("work/*"))
    # the same trials, drawn in the same order, and so the same best trial (numbered one later: the
    # interrupted trial keeps its number)
    assert _complete(resumed) == _complete(whole)
    assert (resumed["best"]["params"], resumed["best"]["dev_rsum"]) == (whole["best"]["params"],
                                                                        whole["best"]["dev_rsum"])
    assert resumed["best"]["trial"] == whole["best"]["trial"] + (whole["best"]["trial"] >= 3)
    assert resumed["config"] == whole["config"]


def _study_name(out: Path) -> str:
    import sqlite3

    with sqlite3.connect(out / "studies.db") as db:
        (name,) = db.execute("select study_name from studies").fetchone()
    return name


def test_a_study_resumed_between_trials_draws_what_it_would_have(tune_folder, capsys):
    """Stopped after a trial (no trial running), then resumed: the next draws continue the sequence."""
    folder, splits = tune_folder
    assert main(_tune_args(folder / "whole", splits, folder / "whole" / "tune", 4)) == 0
    out = folder / "parts" / "tune"
    for trials in (2, 4):  # the first process stops after 2 trials (the second drawn by TPE), the next adds 2
        assert main(_tune_args(folder / "parts", splits, out, trials)) == 0
    assert _complete(_tuned_file(folder / "parts")) == _complete(_tuned_file(folder / "whole"))


def test_a_malformed_sampler_state_in_the_storage_is_not_trusted():
    from bench.tuning import StudySpec, open_study, restore_sampler_state, sampler_state

    sampler = open_study(StudySpec("synthetic", "cca", None, 25, "cpu", 5, 100), "sqlite://").sampler
    state = sampler_state(sampler)
    for bad in (None, "x", [], [state[0]], [[state[0][0], 625, 0, 0.0], state[1]], [["!!", 0, 0, 0.0], state[1]],
                [[state[0][0][:-8], 0, 0, 0.0], state[1]], [[state[0][0], 0, 2, 0.0], state[1]]):
        assert restore_sampler_state(sampler, bad) is False
        assert sampler_state(sampler) == state  # untouched
    other = open_study(StudySpec("synthetic", "cca", None, 25, "cpu", 5, 100, seed=1), "sqlite://").sampler
    assert restore_sampler_state(other, state) and sampler_state(other) == state
