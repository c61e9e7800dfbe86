"""The study storage (Optuna's RDB storage, checked before use) and the sampler's random state in it."""

from __future__ import annotations

from pathlib import Path

from bench.errors import BenchError, notice
from bench.io import error_summary
from bench.tuning.study import StudySpec

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


    for study in studies:
        try:
            open_study(study, storage)
        except (SQLAlchemyError, OptunaError, OSError, RuntimeError, ValueError) as error:
            raise BenchError(f"cannot open study {study.name} in storage {_public_url(storage)} "
                             f"({error_summary(error)}); check --storage, and that its database server runs") from None


def _public_url(url: str) -> str:
    """A storage URL without its password."""
    import re

    return re.sub(r"://([^:/@]+):[^@]+@", r"://\1:***@", url)


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
    for frozen in sorted(study_obj.get_trials(deepcopy=False), key=lambda t: t.number, reverse=True):
        if SAMPLER_STATE not in frozen.user_attrs or frozen.user_attrs.get(INTERRUPTED):
            continue
        if not restore_sampler_state(study_obj.sampler, frozen.user_attrs[SAMPLER_STATE]):
            notice(f"{study.name} trial {frozen.number} holds a malformed sampler state; the next trial "
                   "is drawn from this process's own")
        return
