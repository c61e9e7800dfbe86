"""The driver of `bench tune`: the studies run to their trials, then the tuned files written."""

from __future__ import annotations

import os
from pathlib import Path

from bench.data.types import Dataset
from bench.errors import BenchError
from bench.io import atomic_write_text, to_json
from bench.models.registry import ModelSpec
from bench.run.executors import watch_driver
from bench.run.folder import prepare_run_folder
from bench.models.search_space import describe_space
from bench.splits import load_split, subsets
from bench.tuning.storage import INTERRUPTED, _public_url, check_storage, open_studies, open_study
from bench.tuning.study import STUDIES_FILE, TUNED_PROFILE, StudySpec, TuningData
from bench.tuning.workers import _settle_running, _study_lock, _work_in_process, work


def tune(studies: list[StudySpec], specs: dict[str, ModelSpec], dataset: Dataset, out: Path, storage: str | None,
         tuned_dir: Path, jobs: int = 1, threads: int | None = None, device: str = "cpu", quiet: bool = False,
         splits_dir: Path | None = None) -> list[Path]:
    """Run every study to its trials with ``jobs`` worker processes, then write the tuned files."""
    prepare_run_folder(out)
    storage = storage or f"sqlite:///{(out / STUDIES_FILE).resolve()}"
    check_storage(storage)
    open_studies(studies, storage)  # here, so a storage that can't be opened fails before any data is read
    data: dict[float, TuningData] = {}
    for fraction in sorted({s.fraction for s in studies}):
        split, split_file = load_split(dataset, fraction, studies[0].seed, "overlap", splits_dir)
        paired, unpaired = subsets(dataset, split)
        data[fraction] = TuningData(paired, unpaired, dataset.dev, str(split_file), split.sha256)
    from bench.nn.text import TEXT_SIDES, text_side

    for name in sorted({s.text_encoder for s in studies} & set(TEXT_SIDES)):  # once, not in every worker; never test
        text_side(name).warm([c for split in (dataset.train, dataset.dev) for c in split.captions], not quiet)
    if jobs <= 1:
        work(studies, specs, data, storage, out, device, threads, 0, quiet)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        # each worker ends when this process does (killed or not), not after finishing its studies
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=watch_driver,
                                 initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(_work_in_process, (studies, specs, data, storage, out, device, threads, w, True))
                       for w in range(jobs)]
            for future in futures:
                future.result()
    written = []
    for study in studies:
        study_obj = open_study(study, storage)
        with _study_lock(out / "locks", study):
            running = _settle_running(study_obj, study, out)
        if running:  # another process still trains some of its trials: the last one to stop writes the file
            print(f"{study.name}: {running} trial(s) still running in another bench tune process, which writes "
                  f"{study.tuned_path(tuned_dir)} when it stops")
            continue
        written.append(write_tuned_file(study, storage, data[study.fraction], dataset, tuned_dir,
                                        specs[study.model], device))
    return written


def trial_table(study_obj) -> list[dict]:
    """One row per trial, an interrupted one included (state FAIL, its error says so)."""
    rows = []
    for t in study_obj.get_trials(deepcopy=False):
        rows.append({"number": t.number, "state": t.state.name, "dev_rsum": t.value,
                     "params": t.params, "updates": t.user_attrs.get("updates"),
                     "epochs": (t.user_attrs.get("config") or {}).get("epochs"),
                     "seconds": t.user_attrs.get("seconds"), "error": t.user_attrs.get("error")})
    return rows


def write_tuned_file(study: StudySpec, storage: str, data: TuningData, dataset: Dataset, tuned_dir: Path,
                     spec: ModelSpec, device: str = "cpu") -> Path:
    """The best trial's configuration with the trial table, the budget and provenance."""
    import torch
    from optuna.trial import TrialState

    from bench.run.provenance import environment

    study_obj = open_study(study, storage)
    complete = [t for t in study_obj.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        raise BenchError(f"study {study.name} has no completed trial (all pruned or failed); see {storage}")
    best = max(complete, key=lambda t: (t.value, -t.number))
    table = trial_table(study_obj)
    # An interrupted trial is not spent: its process died, and a new trial with the same draw replaced it.
    interrupted = {t.number for t in study_obj.get_trials(deepcopy=False) if t.user_attrs.get(INTERRUPTED)}
    spent = [r for r in table if r["state"] in ("COMPLETE", "PRUNED", "FAIL") and r["number"] not in interrupted]
    payload = {
        "profile": TUNED_PROFILE,
        "dataset": study.dataset, "model": study.model, "text_encoder": study.text_encoder,
        "fraction": study.fraction, "model_revision": study.revision,
        "config": best.user_attrs["config"],
        "best": {"trial": best.number, "dev_rsum": best.value, "params": best.params,
                 "updates": best.user_attrs.get("updates")},
        "budget": {"trials": study.trials, "update_cap": study.update_cap, "trials_spent": len(spent),
                   "trials_pruned": sum(r["state"] == "PRUNED" for r in spent),
                   "trials_failed": sum(r["state"] == "FAIL" for r in spent),
                   "wall_s": round(sum(r["seconds"] or 0 for r in table), 1),
                   "base_profile": study.base_profile},
        "method": {"sampler": f"TPE (seed {study.seed})", "pruner": "median (4 startup trials, 2 warm-up epochs)",
                   "objective": "best dev rsum over the trial's epochs (test split never read)",
                   "search_space": dict(describe_space(spec.config_class.SEARCH_SPACE))},
        "data": {"dataset": dataset.name, "ids_sha256": dataset.ids_sha256, "content_sha256": dataset.content_sha256,
                 "split_file": data.split_file, "split_sha256": data.split_sha256},
        "study": {"name": study.name, "storage": _public_url(storage)},
        "provenance": environment(torch.device(device)),
        "trials": table,
    }
    path = study.tuned_path(tuned_dir)
    atomic_write_text(path, to_json(payload))
    return path
