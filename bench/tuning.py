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
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import config_to_dict
from bench.data.types import Dataset, Split
from bench.errors import BenchError
from bench.io import atomic_write_text, sha256_file, to_json
from bench.models import FitContext, PairedData, UnpairedData
from bench.registry import ModelSpec
from bench.run.cell import cell_text_encoder
from bench.run.executors import watch_driver
from bench.run.folder import prepare_run_folder
from bench.search_space import UPDATES, describe_space
from bench.splits import format_fraction, load_split, subsets

TUNED_PROFILE = "tuned"
DEFAULT_TUNED_DIR = Path("reports") / "tuning"
STUDIES_FILE = "studies.db"


# -- what a study is ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StudySpec:
    dataset: str
    model: str
    text_encoder: str | None
    fraction: float
    base_profile: str  # the profile a trial's settings start from
    trials: int
    update_cap: int
    seed: int = 0  # of the split file and of the sampler
    revision: int = 0  # the model's behaviour revision: a raised one starts a new study, not old trials

    @property
    def name(self) -> str:
        revision = f"_r{self.revision}" if self.revision else ""
        return f"{self.dataset}_{self.tuned_path(Path()).stem}{revision}"

    def tuned_path(self, tuned_dir: Path) -> Path:
        return tuned_file(tuned_dir, self.dataset, self.model, self.text_encoder, self.fraction)


def tuned_file(tuned_dir: Path, dataset: str, model: str, text_encoder: str | None, fraction: float) -> Path:
    text = f"_{text_encoder}" if text_encoder else ""
    return Path(tuned_dir) / dataset / f"{model}{text}_p{format_fraction(fraction)}.json"


@dataclass(frozen=True, eq=False)
class TuningData:
    """What a trial may read: the training subsets of one split and the dev split. No test split."""

    paired: PairedData
    unpaired: UnpairedData
    dev: Split
    split_file: str
    split_sha256: str


def trial_config(spec: ModelSpec, study: StudySpec, params: dict[str, Any], data: TuningData) -> tuple[Any, int | None]:
    """The config a trial trains with and the updates it is allowed: the base profile with the
    sampled settings, ``updates`` turned into epochs (and the lr drop at the profile's share of them)."""
    settings = {k: str(v) for k, v in params.items() if k != UPDATES}
    if study.text_encoder:
        settings["text_encoder"] = study.text_encoder
    config = spec.config_class.for_profile(study.base_profile, settings)
    if UPDATES not in params:
        return config, None
    # the budget in whole updates (flooring first gives the same epochs as flooring after); a
    # pre-training stage is shortened only when it would not fit under the cap with one epoch
    config = dataclasses.replace(config, updates=int(params[UPDATES] * study.update_cap))
    model = spec.factory(config)
    config = model.settle_schedule(data.paired, data.unpaired, room=study.update_cap)
    fixed, per_epoch = model.schedule(data.paired, data.unpaired)
    return config, fixed + per_epoch * config.epochs


def config_from_dict(config_class: type, values: dict) -> Any:
    """A config from its JSON form: lists back to tuples where the field is a tuple, and a whole
    float (``64.0``) back to an int where the field is an int. ``values`` must have passed
    :func:`config_schema` (as every tuned file does in :func:`read_tuned_file`)."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise BenchError(f"{config_class.__name__} has no setting(s) {', '.join(unknown)}")
    defaults = config_class()
    converted = {}
    for key, value in values.items():
        default = getattr(defaults, key)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif type(default) is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        converted[key] = value
    return config_class(**converted)


# The JSON types of config fields, by the type of the field's default (as `--set` converts them).
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def config_schema(config_class: type) -> dict:
    """A JSON schema of ``config_class``'s settings in a tuned file: each setting of its default's
    type (a number where the default is a float; a list where it is a tuple). Unknown settings and
    ranges are not here: :func:`config_from_dict` refuses the first, making the config checks the
    others (:func:`bench.config.check_ranges`)."""
    properties = {}
    for field in dataclasses.fields(config_class):
        default = field.default
        if type(default) in _JSON_TYPES:
            properties[field.name] = {"type": _JSON_TYPES[type(default)]}
        elif isinstance(default, tuple):
            item = _JSON_TYPES.get(type(default[0])) if default else None
            properties[field.name] = {"type": "array", **({"items": {"type": item}} if item else {})}
        else:  # a type JSON can't hold (a plugin's own): the config's constructor judges it
            properties[field.name] = {}
    return {"type": "object", "properties": properties}


# What `bench run --profile tuned` reads from a tuned file (the rest is a record for people): checked
# by bench.schema, where a number is finite. A file lacking `text_encoder` is for a model without one,
# one lacking `model_revision` was written before revisions existed (revision 0).
TUNED_FILE_SCHEMA = {
    "type": "object",
    "required": ["model", "fraction", "config", "budget"],
    "properties": {
        "model": {"type": "string"},
        "text_encoder": {"type": ["string", "null"]},
        "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
        "model_revision": {"type": "integer", "minimum": 0},
        "config": {"type": "object"},
        "budget": {"type": "object", "required": ["trials_spent", "update_cap", "wall_s"],
                   "properties": {"trials_spent": {"type": "integer", "minimum": 0},
                                  "update_cap": {"type": "integer", "minimum": 1},
                                  "wall_s": {"type": "number", "minimum": 0}}},
    },
}


# -- one trial ----------------------------------------------------------------------------------
class _Pruned(Exception):
    pass


def sample_params(trial: Any, spec: ModelSpec) -> dict[str, Any]:
    """The trial's values of the model's search space; Optuna samples each once, later calls read them back."""
    return {name: dist.suggest(trial, name) for name, dist in spec.config_class.SEARCH_SPACE.items()}


def run_trial(trial: Any, spec: ModelSpec, study: StudySpec, data: TuningData, workdir: Path, device) -> float:
    """Train one trial on the training subsets, select on dev, return the best dev rsum."""
    import optuna

    from bench.training import seed_everything

    params = sample_params(trial, spec)  # sampled when the trial was claimed: the same values again
    config, updates = trial_config(spec, study, params, data)
    trial.set_user_attr("config", config_to_dict(config))
    trial.set_user_attr("updates", updates)
    reported = [0]

    def progress(**fields: Any) -> None:
        if "val_rsum" in fields and "epoch" in fields:  # one dev rsum per epoch (mine's stage 1 reports no rsum)
            reported[0] += 1
            trial.report(float(fields["val_rsum"]), step=reported[0])
            if trial.should_prune():
                raise _Pruned()

    workdir.mkdir(parents=True, exist_ok=True)
    seed_everything(study.seed)
    model = spec.factory(config)
    context = FitContext(validation=data.dev, workdir=workdir, device=device, seed=study.seed, progress=progress)
    try:
        fit = model.fit(data.paired, data.unpaired, context)
    except _Pruned:
        raise optuna.TrialPruned() from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    trial.set_user_attr("updates", fit.updates if fit.updates is not None else updates)
    trial.set_user_attr("best_epoch", fit.best_epoch)
    if not fit.validation_curve:  # a closed-form model: its one dev evaluation
        from bench.metrics import evaluate_protocol

        dev = data.dev
        return evaluate_protocol(model.embed_images(dev.features), model.embed_captions(dev.captions),
                                 dev.caption_to_image, "full").to_dict()["rsum"]
    return max(point["val_rsum"] for point in fit.validation_curve)


# -- the study storage ----------------------------------------------------------------------------
STORAGE_EXAMPLE = "sqlite:///runs/tune/studies.db or postgresql://user:password@host/optuna"
# What to pip install for a database driver that SQLAlchemy could not import (by its module's name).
_DRIVER_PACKAGES = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "pymysql": "pymysql",
                    "MySQLdb": "mysqlclient", "mysql": "mysql-connector-python", "asyncpg": "asyncpg",
                    "oracledb": "oracledb", "pyodbc": "pyodbc"}


def check_storage(url: str) -> None:
    """Refuse, in one line that names ``--storage``, a storage URL that cannot work, before any data
    is read or trial trained: not a database URL, a database SQLAlchemy does not know, one whose
    Python driver is not installed, a SQLite file in a folder that does not exist. (A server that
    does not answer is found when the studies are opened, see :func:`open_studies`.)"""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = _public_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise BenchError(f"--storage {shown} is not a database URL; give one such as {STORAGE_EXAMPLE}") from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise BenchError(f"--storage {shown}: SQLAlchemy knows no database '{parsed.drivername}'; give a URL such "
                         f"as {STORAGE_EXAMPLE}") from None
    try:
        # SQLAlchemy 2 names the driver import import_dbapi, 1.4 dbapi
        (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()
    except ImportError as error:
        module = (error.name or "").split(".")[0] or parsed.drivername
        raise BenchError(f"--storage {shown} needs the database driver {module}, which is not installed: "
                         f"pip install {_DRIVER_PACKAGES.get(module, module)}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            raise BenchError(f"--storage {shown}: the SQLite file's folder {folder} does not exist; create it or "
                             "give a file in a folder that does")


def open_study(study: StudySpec, storage: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study.name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=study.seed, n_startup_trials=min(8, max(1, study.trials // 3))),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2),
    )


def open_studies(studies: list[StudySpec], storage: str) -> None:
    """Create (or find) every study, so that a storage that can't be opened (a server that does not
    answer, a file that can't be written, a database of another Optuna version) is one line before
    any worker starts."""
    from optuna.exceptions import OptunaError
    from sqlalchemy.exc import SQLAlchemyError

    from bench.io import error_summary

    for study in studies:
        try:
            open_study(study, storage)
        except (SQLAlchemyError, OptunaError, OSError, RuntimeError, ValueError) as error:
            raise BenchError(f"cannot open study {study.name} in storage {_public_url(storage)} "
                             f"({error_summary(error)}); check --storage, and that its database server runs") from None


# -- the sampler's random state ----------------------------------------------------------------------
# A trial's user attributes: the sampler's random state once the trial's values were drawn (what the
# next trial continues from), and the mark of a trial whose process died while it ran.
SAMPLER_STATE, INTERRUPTED = "sampler_state", "interrupted"
INTERRUPTED_ERROR = "interrupted: the process running it stopped; a new trial took its place"


def _sampler_generators(sampler) -> list:
    """The random generators of Optuna's TPE sampler: its own, and that of the random sampler it
    draws the startup trials with. Private attributes (the same since Optuna 3.0); the resume tests
    in tests/test_untrusted_tuning.py fail if they change."""
    return [sampler._rng.rng, sampler._random_sampler._rng.rng]


def sampler_state(sampler) -> list:
    """The sampler's random state as JSON: per generator, its Mersenne Twister key (base64), position
    and cached Gaussian."""
    import base64

    state = []
    for generator in _sampler_generators(sampler):
        _, key, position, has_gauss, gauss = generator.get_state()
        state.append([base64.b64encode(key.astype("<u4").tobytes()).decode("ascii"), int(position), int(has_gauss),
                      float(gauss)])
    return state


def restore_sampler_state(sampler, state: object) -> bool:
    """Set the sampler's generators to ``state`` (from :func:`sampler_state`). The storage is not
    trusted: anything else leaves the sampler as it was and returns False."""
    import base64
    import binascii
    import math

    import numpy as np

    generators = _sampler_generators(sampler)
    try:
        values = []
        for (key, position, has_gauss, gauss), generator in zip(state, generators, strict=True):
            words = np.frombuffer(base64.b64decode(key, validate=True), dtype="<u4").astype(np.uint32)
            position, has_gauss, gauss = int(position), int(has_gauss), float(gauss)
            if len(words) != 624 or not 0 <= position <= 624 or has_gauss not in (0, 1) or not math.isfinite(gauss):
                return False
            values.append(("MT19937", words, position, has_gauss, gauss))
    except (TypeError, ValueError, binascii.Error):
        return False
    for generator, value in zip(generators, values):
        generator.set_state(value)
    return True


def _continue_sampling(study_obj, study: StudySpec) -> None:
    """Set the sampler's random state to where the latest trial's draw left it (an interrupted
    trial aside: its replacement draws what it drew). Then every trial continues one random sequence,
    whichever process draws it: a resumed study draws what the uninterrupted one would have, and
    workers sharing a study don't repeat each other's draws (each process seeds its sampler alike)."""
    import sys

    for frozen in sorted(study_obj.get_trials(deepcopy=False), key=lambda t: t.number, reverse=True):
        if SAMPLER_STATE not in frozen.user_attrs or frozen.user_attrs.get(INTERRUPTED):
            continue
        if not restore_sampler_state(study_obj.sampler, frozen.user_attrs[SAMPLER_STATE]):
            print(f"notice: {study.name} trial {frozen.number} holds a malformed sampler state; the next trial "
                  "is drawn from this process's own", file=sys.stderr)
        return


# -- workers --------------------------------------------------------------------------------------
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
                value = run_trial(trial, specs[study.model], study, data[study.fraction],
                                  out / "work" / f"{study.name}-trial{trial.number}-w{worker}", torch.device(device))
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


# -- the driver --------------------------------------------------------------------------------------
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

    from bench.provenance import environment

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


def _public_url(url: str) -> str:
    """A storage URL without its password."""
    import re

    return re.sub(r"://([^:/@]+):[^@]+@", r"://\1:***@", url)


# -- reading a tuned profile -----------------------------------------------------------------------
def read_tuned_file(path: Path, spec: ModelSpec, text_encoder: str | None, remedy: str) -> tuple[dict, Any] | None:
    """The tuned file at ``path`` and the config it holds for ``spec``, or None when the file is for
    another model or text encoder. Tuned files travel between people, so nothing in one is trusted:
    a file that is not what `bench tune` writes (a field missing or of the wrong type, a setting the
    model does not have or of the wrong type, a value out of range) is one :class:`BenchError` that
    names the file and the reason, never a traceback or a failed cell."""
    from bench.io import read_json_file
    from bench.schema import schema_problems

    data = read_json_file(path, "tuned profile", remedy)
    problems = schema_problems(data, TUNED_FILE_SCHEMA)
    if problems:
        raise BenchError(f"tuned profile {path} is not a `bench tune` file: it {problems[0]}; {remedy}")
    if data["model"] != spec.name or data.get("text_encoder") != text_encoder:
        return None
    problems = schema_problems(data["config"], config_schema(spec.config_class))
    if problems:
        raise BenchError(f"tuned profile {path} has a config that {spec.name} can't use: it {problems[0]}; {remedy}")
    try:
        config = config_from_dict(spec.config_class, data["config"])
    except BenchError as error:  # an unknown setting, a value out of range: the message names it, this the file
        raise BenchError(f"tuned profile {path}: {error}; {remedy}") from None
    except (TypeError, ValueError) as error:  # a plugin's config refusing a value in its own way
        raise BenchError(f"tuned profile {path} holds a config {spec.name} refuses ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}); {remedy}") from None
    return data, config


def tuned_config(spec: ModelSpec, dataset: str, text_encoder: str | None, fraction: float,
                 tuned_dir: Path | None = None, overrides: dict[str, str] | None = None) -> tuple[Any, dict]:
    """The tuned config for this cell and where it came from. A fraction without its own file takes
    the nearest tuned fraction's (the record says which); none at all is a clear error, and so is a
    malformed file among this model's (:func:`read_tuned_file`)."""
    from bench.config import apply_overrides

    def tune_command(at: float) -> str:
        text = f" --text-encoders {text_encoder}" if text_encoder else ""
        return f"`bench tune --dataset {dataset} --models {spec.name}{text} --fractions {format_fraction(at)}`"

    tuned_dir = Path(tuned_dir or DEFAULT_TUNED_DIR)
    pattern = f"{spec.name}_{text_encoder}_p*.json" if text_encoder else f"{spec.name}_p*.json"
    remedy = f"fix or remove it, or write it anew with {tune_command(fraction)}"
    found = {}
    for path in sorted((tuned_dir / dataset).glob(pattern)):
        read = read_tuned_file(path, spec, text_encoder, remedy)
        if read is not None:
            data, config = read
            found[float(data["fraction"])] = (path, data, config)
    if not found:
        raise BenchError(f"no tuned profile for {spec.name}{f' ({text_encoder})' if text_encoder else ''} on "
                         f"{dataset} in {tuned_dir / dataset}; make one with {tune_command(fraction)}")
    nearest = min(found, key=lambda f: (abs(f - fraction), f))
    path, data, config = found[nearest]
    # Settings tuned for older behaviour are not this model's tuned settings: a raised revision
    # starts a new study (StudySpec.name), so its profile must come from that study too. Files
    # written before revisions existed are revision 0.
    tuned_revision = int(data.get("model_revision", 0))
    if tuned_revision != spec.revision:
        raise BenchError(f"{path} was tuned for {spec.name} revision {tuned_revision}, but {spec.name} is now at "
                         f"revision {spec.revision}; retune with {tune_command(nearest)}, or run another profile")
    config = apply_overrides(config, overrides or {})
    source = {"file": str(path), "sha256": sha256_file(path), "tuned_fraction": nearest,
              "trials_spent": data["budget"]["trials_spent"], "update_cap": data["budget"]["update_cap"],
              "tuning_wall_s": data["budget"]["wall_s"], "model_revision": tuned_revision}
    return config, source


def tuned_configs(dataset: str, tuned_dir: Path | None = None):
    """The config source of ``--profile tuned`` for :func:`bench.run.build_cells`: each cell's config
    is the tuned one for its model, text encoder (the model's default when none is asked for) and
    fraction (:func:`tuned_config`), with the command line's settings applied over it."""
    def configs(spec: ModelSpec, encoder: str | None, fraction: float, settings: dict[str, str]) -> tuple[Any, dict]:
        text = cell_text_encoder(spec, encoder or spec.default_text_encoder("cpu"))
        return tuned_config(spec, dataset, text, fraction, tuned_dir,
                            {k: v for k, v in settings.items() if k != "text_encoder"})

    return configs


def search_space_lines(spec: ModelSpec) -> list[str]:
    space = getattr(spec.config_class, "SEARCH_SPACE", {})
    if not space:
        return [f"{spec.name}: no search space"]
    return [f"{spec.name}.{name}: {text}" for name, text in describe_space(space)]

