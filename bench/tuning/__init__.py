"""``bench tune``: every model tuned on the dev split with the same budget (Optuna).

One study per (dataset, model, text encoder, paired fraction). Each has the same number of
trials and the same cap on optimizer updates per trial (the ``updates`` key of a search space
is a share of that cap, turned into epochs by the model's ``schedule``). A trial trains on the
split file's paired set and unpaired pools (split seed ``--seed``), and its value is the
best dev rsum over its epochs, the same selection `bench run` makes. The dev rsum of every epoch
goes to the pruner, which stops trials that trail the median of earlier ones.

The test split is never read: the workers get a :class:`TuningData` that holds the training
subsets and the dev split only.

Studies live in Optuna's RDB storage, a SQLite file in the run folder by default (any SQLAlchemy
URL works, e.g. PostgreSQL for workers on several machines), so a killed ``bench tune`` resumes
where it stopped and several processes can work on one study. A worker claims a trial under a
lock in ``<out>/locks``, draws its values there, and holds a lock of its own for the trial while
it trains; a trial left RUNNING by a process that died (its lock is free) is marked FAIL as
interrupted, its work folder removed, and it is replaced. Complete and pruned trials count toward
``--trials``; failed and interrupted ones do not. Each trial stores the sampler's random state
after its draw, and the next claim continues from it, so a study resumed after a kill (one
worker) draws what the uninterrupted study would have: the same trials, the same best one.
When the studies are done, each best configuration is written with its trial table, budget and
provenance to ``<tuned dir>/<dataset>/<model>_<text encoder>_p<fraction>.json``, which ``bench run
--profile tuned`` reads through one validating reader (:func:`read_tuned_file`).

The package, by concern: :mod:`~bench.tuning.study` (what a study is), :mod:`~bench.tuning.trial`
(one trial, the objective), :mod:`~bench.tuning.storage` (the study storage and the sampler's
state in it), :mod:`~bench.tuning.workers` (claiming and running trials), :mod:`~bench.tuning.driver`
(``tune`` and the tuned files it writes) and :mod:`~bench.tuning.profile` (reading a tuned file).
Every name is re-exported here: import them from ``bench.tuning``.
"""

from __future__ import annotations

from bench.tuning.driver import trial_table, tune, write_tuned_file
from bench.tuning.profile import (
    TUNED_FILE_SCHEMA,
    config_from_dict,
    config_schema,
    read_tuned_file,
    search_space_lines,
    tuned_config,
    tuned_configs,
)
from bench.tuning.storage import (
    INTERRUPTED,
    INTERRUPTED_ERROR,
    SAMPLER_STATE,
    STORAGE_EXAMPLE,
    check_storage,
    open_studies,
    open_study,
    restore_sampler_state,
    sampler_state,
)
from bench.tuning.study import DEFAULT_TUNED_DIR, STUDIES_FILE, TUNED_PROFILE, StudySpec, TuningData, tuned_file
from bench.tuning.trial import run_trial, sample_params, trial_config
from bench.tuning.workers import finished_trials, work

__all__ = [
    "DEFAULT_TUNED_DIR", "INTERRUPTED", "INTERRUPTED_ERROR", "SAMPLER_STATE", "STORAGE_EXAMPLE", "STUDIES_FILE",
    "TUNED_FILE_SCHEMA", "TUNED_PROFILE", "StudySpec", "TuningData", "check_storage", "config_from_dict",
    "config_schema", "finished_trials", "open_studies", "open_study", "read_tuned_file", "restore_sampler_state",
    "run_trial", "sample_params", "sampler_state", "search_space_lines", "trial_config", "trial_table", "tune",
    "tuned_config", "tuned_configs", "tuned_file", "work", "write_tuned_file",
]
