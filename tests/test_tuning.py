"""`bench tune`: one budget for every model, dev-only objective, resumable studies, tuned profiles."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.models.registry import get_model_spec
from bench.models.search_space import UPDATES
from bench.tuning import StudySpec, TuningData, trial_config, tuned_config


class _Trap:
    """Stands in for the test split: its ids may be checked (a split file must not name them), but
    reading its features, captions or links fails the test."""

    def __init__(self, test):
        self.name, self.image_ids, self.caption_ids = test.name, test.image_ids, test.caption_ids

    def __getattr__(self, name):
        raise AssertionError(f"tuning read the test split (.{name})")


@pytest.fixture()
def tuning_folder(tmp_path, small_synthetic, small_splits, fake_minilm, monkeypatch):
    """A small synthetic dataset whose test split is a trap, registered for the CLI."""
    import bench.commands.tune as tune_command

    dataset = small_synthetic
    dataset.content_sha256, dataset.ids_sha256  # the checksums read every split; computed before the trap
    trapped = object.__new__(type(dataset))
    trapped.__dict__.update(dataset.__dict__)
    object.__setattr__(trapped, "test", _Trap(dataset.test))
    monkeypatch.setattr(tune_command, "load_from_args", lambda args: trapped)
    return tmp_path, small_splits


def test_every_model_gets_the_same_trials_and_update_cap_and_test_is_never_read(tuning_folder, capsys):
    folder, splits = tuning_folder
    args = ["tune", "--models", "vse,jwae,mine,cca", "--fractions", "25", "--trials", "3", "--update-cap", "60",
            "--out", str(folder / "tune"), "--tuned-dir", str(folder / "tuned"), "--splits-dir", str(splits),
            "--jobs", "1", "--quiet"]
    assert main(args) == 0
    files = sorted((folder / "tuned" / "synthetic").glob("*.json"))
    assert [f.name for f in files] == ["cca_p25.json", "jwae_minilm_p25.json", "mine_minilm_p25.json",
                                       "vse_minilm_p25.json"]
    for path in files:
        tuned = json.loads(path.read_text())
        assert tuned["budget"]["trials"] == 3 and tuned["budget"]["trials_spent"] == 3
        assert tuned["budget"]["update_cap"] == 60
        for trial in tuned["trials"]:
            assert trial["updates"] is None or trial["updates"] <= 60  # the cap holds for every trial
        assert tuned["data"]["split_file"].endswith("synthetic_overlap_p25_seed0.json")
        assert tuned["provenance"]["git"]["commit"]
    # a rerun resumes: the studies are full, so no trial is added and the files are rewritten the same way
    capsys.readouterr()
    assert main(args) == 0
    assert "trial" not in capsys.readouterr().out
    assert json.loads(files[0].read_text())["budget"]["trials_spent"] == 3


def test_a_run_with_the_tuned_profile_uses_the_file_and_names_it(tuning_folder, tmp_path):
    folder, splits = tuning_folder
    assert main(["tune", "--models", "vse", "--fractions", "25", "--trials", "2", "--update-cap", "40",
                 "--out", str(folder / "tune"), "--tuned-dir", str(folder / "tuned"), "--splits-dir", str(splits),
                 "--jobs", "1", "--quiet"]) == 0
    spec = get_model_spec("vse")
    config, source = tuned_config(spec, "synthetic", "minilm", 10, folder / "tuned")
    tuned = json.loads((folder / "tuned" / "synthetic" / "vse_minilm_p25.json").read_text())
    assert config.lr == tuned["config"]["lr"] and config.epochs == tuned["config"]["epochs"]
    assert source["tuned_fraction"] == 25 and source["file"].endswith("vse_minilm_p25.json")  # nearest tuned fraction
    with pytest.raises(BenchError, match="bench tune --dataset synthetic --models vse --text-encoders gru"):
        tuned_config(spec, "synthetic", "gru", 25, folder / "tuned")
    # settings tuned before a behaviour fix are refused once the model's revision is raised
    assert tuned["model_revision"] == spec.revision == source["model_revision"] == 0
    raised = dataclasses.replace(spec, revision=1)
    with pytest.raises(BenchError, match="tuned for vse revision 0, but vse is now at revision 1; retune"):
        tuned_config(raised, "synthetic", "minilm", 25, folder / "tuned")


def test_updates_become_epochs_within_the_cap(small_synthetic, fake_minilm):
    from bench.splits import subsets
    from bench.splits import make_split

    paired, unpaired = subsets(small_synthetic, make_split(small_synthetic, 50, 0))
    data = TuningData(paired, unpaired, small_synthetic.dev, "x", "y")
    for model in ("vse", "jwae", "mine"):
        spec = get_model_spec(model)
        study = StudySpec("synthetic", model, "minilm", 50, "cpu", 5, 100)
        base = spec.config_class.for_profile("cpu")
        params = {"lr": 1e-3, UPDATES: 1.0}
        config, updates = trial_config(spec, study, params, data)
        fixed, per_epoch = spec.factory(config).schedule(paired, unpaired)
        assert updates == fixed + per_epoch * config.epochs <= 100
        assert fixed + per_epoch * (config.epochs + 1) > 100  # the most epochs that fit
        assert config.lr == 1e-3 and config.lr_decay_epoch == max(1, round(config.epochs * base.lr_decay_epoch
                                                                           / base.epochs))


def test_models_print_their_search_space(capsys):
    assert main(["models", "--search-space"]) == 0
    out = capsys.readouterr().out
    assert "vse.lr: log-uniform" in out and "mine.dropout: uniform" in out and "cca.dim: one of" in out
    assert "jwae.image_rec_weight" in out and "updates: optimizer updates per trial" in out


def test_a_study_with_a_trial_running_elsewhere_is_written_by_the_last_process(tuning_folder, capsys):
    """The tuned file waits for trials another live process still runs; once that process is gone,
    its trial is marked interrupted and replaced, and the file is written with every trial spent."""
    import subprocess
    import sys
    import time

    from bench.tuning import open_study

    folder, splits = tuning_folder
    out, tuned = folder / "tune", folder / "tuned" / "synthetic" / "cca_p25.json"
    args = ["tune", "--models", "cca", "--fractions", "25", "--trials", "2", "--out", str(out), "--tuned-dir",
            str(folder / "tuned"), "--splits-dir", str(splits), "--jobs", "1", "--quiet"]
    assert main(args) == 0 and tuned.exists()
    tuned.unlink()
    study = StudySpec("synthetic", "cca", None, 25, "cpu", 3, 2000)
    trial = open_study(study, f"sqlite:///{(out / 'studies.db').resolve()}").ask()  # RUNNING, held below
    lock = out / "locks" / f"{study.name}-trial{trial.number}.lock"
    holder = subprocess.Popen([sys.executable, "-c", f"from filelock import FileLock; held = FileLock({str(lock)!r}); held.acquire(); "
                               "print('held', flush=True); import time; time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main([*args[:6], "3", *args[7:]]) == 0  # 2 finished + 1 running elsewhere = 3: nothing to do
        assert "still running in another bench tune process" in capsys.readouterr().out and not tuned.exists()
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert main([*args[:6], "3", *args[7:]]) == 0  # the holder is gone: its trial is interrupted and replaced
    written = json.loads(tuned.read_text())
    # the interrupted trial is in the table, but not spent: --trials counts complete and pruned trials
    assert written["budget"]["trials_spent"] == 3 and written["budget"]["trials_failed"] == 0
    assert [t["state"] for t in written["trials"]].count("FAIL") == 1


def test_a_raised_model_revision_starts_a_new_study():
    before = StudySpec("synthetic", "vse", "gru", 25, "cpu", 5, 100)
    assert before.name == "synthetic_vse_gru_p25"  # revision 0: the name studies have always had
    assert StudySpec("synthetic", "vse", "gru", 25, "cpu", 5, 100, revision=1).name == "synthetic_vse_gru_p25_r1"
