"""The workers: claiming trials under locks, settling those a dead process left, running them."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.models.registry import ModelSpec
from bench.tuning.storage import (
    INTERRUPTED,
    INTERRUPTED_ERROR,
    SAMPLER_STATE,
    _continue_sampling,
    open_study,
    sampler_state,
)
from bench.tuning.study import StudySpec, TuningData
from bench.tuning.trial import sample_params


def finished_trials(study) -> list:
    """The trials that count toward a study's --trials: complete and pruned ones. A failed trial (its
    training raised, or its process died) is replaced."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def _study_lock(locks: Path, study: StudySpec):
    """The lock a process holds while it settles or claims trials of ``study``."""
    from filelock import FileLock

    return FileLock(str(locks / f"{study.name}.lock"))


def _trial_lock(locks: Path, study: StudySpec, number: int):
    """The lock a worker holds while it trains trial ``number``: free means nobody runs it."""
    from filelock import FileLock

    return FileLock(str(locks / f"{study.name}-trial{number}.lock"))


def _trial_folders(out: Path, study: StudySpec, number: int) -> list[Path]:
    """The work folders of trial ``number``, one per worker that ran it (``<study>-trial<n>-w<worker>``)."""
    prefix = f"{study.name}-trial{number}-w"
    work = out / "work"
    if not work.is_dir():
        return []
    return [p for p in work.iterdir() if p.name.startswith(prefix) and p.name[len(prefix):].isdigit()]


def _settle_running(study_obj, study: StudySpec, out: Path, say=print) -> int:
    """Mark FAIL, as interrupted, the trials a dead process left RUNNING (their lock is free) and
    remove their work folders; return how many RUNNING trials a live worker holds. Call it under
    the study's lock."""
    from filelock import Timeout
    from optuna.trial import TrialState

    running = 0
    storage = study_obj._storage
    for frozen in study_obj.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        lock = _trial_lock(out / "locks", study, frozen.number)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            running += 1  # a live worker has it
            continue
        try:
            storage.set_trial_user_attr(frozen._trial_id, INTERRUPTED, True)
            storage.set_trial_user_attr(frozen._trial_id, "error", INTERRUPTED_ERROR)
            storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
            for folder in _trial_folders(out, study, frozen.number):
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            lock.release()
        say(f"{study.name} trial {frozen.number}: interrupted (its process stopped); its work folder is removed "
            "and a new trial takes its place")
    return running


def _claim(study_obj, study: StudySpec, out: Path, spec: ModelSpec, say=print):
    """Under the study's lock: fail trials a dead process left RUNNING, then, unless the study has
    its trials (finished or running), ask for a new trial and draw its values, continuing the random
    sequence of the trials before it. Returns (trial, its lock) or None."""
    locks = out / "locks"
    with _study_lock(locks, study):
        running = _settle_running(study_obj, study, out, say)
        if len(finished_trials(study_obj)) + running >= study.trials:
            return None
        _continue_sampling(study_obj, study)
        trial = study_obj.ask()
        lock = _trial_lock(locks, study, trial.number)
        lock.acquire()
        sample_params(trial, spec)  # drawn under the study's lock, so the next claim continues from here
        trial.set_user_attr(SAMPLER_STATE, sampler_state(study_obj.sampler))
        return trial, lock


def work(studies: list[StudySpec], specs: dict[str, ModelSpec], data: dict[float, TuningData], storage: str,
         out: Path, device: str = "cpu", threads: int | None = None, worker: int = 0, quiet: bool = False) -> None:
    """Run trials of ``studies`` in order until each has its trials (one worker; several may share)."""
    import torch
    from optuna.trial import TrialState

    # run_trial is looked up on the package, where it has always been public: whoever replaces
    # bench.tuning.run_trial (a test standing in for a killed trial) replaces what the workers run
    from bench import tuning

    if threads:
        torch.set_num_threads(threads)
    say = print if quiet else _write
    for study in studies:
        study_obj = open_study(study, storage)
        while True:
            claimed = _claim(study_obj, study, out, specs[study.model], say)
            if claimed is None:
                break
            trial, lock = claimed
            started = time.perf_counter()
            try:
                workdir = out / "work" / f"{study.name}-trial{trial.number}-w{worker}"
                value = tuning.run_trial(trial, specs[study.model], study, data[study.fraction], workdir,
                                         torch.device(device))
            except Exception as error:  # noqa: BLE001 - a pruned or failed trial is told, the study goes on
                import optuna

                state = TrialState.PRUNED if isinstance(error, optuna.TrialPruned) else TrialState.FAIL
                trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
                if state == TrialState.FAIL:
                    trial.set_user_attr("error", f"{type(error).__name__}: {error}")
                study_obj.tell(trial, state=state)
                what = "pruned" if state == TrialState.PRUNED else f"failed ({type(error).__name__}: {error})"
                say(f"{study.name} trial {trial.number}: {what} after {time.perf_counter() - started:.0f}s")
            else:
                trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
                study_obj.tell(trial, value)
                updates = trial.user_attrs.get("updates")
                say(f"{study.name} trial {trial.number}: dev rsum {value:.1f}"
                    f"{f' ({updates} updates)' if updates else ''} in {time.perf_counter() - started:.0f}s")
            finally:
                lock.release()


def _write(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line)


def _work_in_process(args: tuple) -> None:
    work(*args)
