"""Where the cells of a grid run: in this process, in N local worker processes, or as Ray tasks.

Every executor runs the same :func:`run_job` on each :class:`CellJob` and yields one
:class:`Outcome` per cell as cells finish. :func:`run_job` trains a cell only while it holds
that cell's lock (``<out>/locks/<cell>.lock``, a ``filelock`` lock that the operating system
releases when its process dies), so two ``bench run`` processes on one folder never train the
same cell. A locked cell is put off until every other cell has run, then waited for; if the
other process finished it, it is skipped, otherwise (that process failed or was killed) it is
trained here. A local worker process ends when its driver does, even a driver killed with
SIGKILL (:func:`watch_driver`), so no worker outlives the ``bench run`` that started it.

With Ray (``pip install -e '.[ray]'``), each cell is a task asking for ``threads`` CPUs and, with
``--device cuda``, one GPU. Workers read the dataset from Ray's object store and write records
straight into the run folder, so on a cluster the run folder must be on a filesystem every node
mounts at the same path (and the locks need one where ``flock`` works across nodes). An
``--address`` of the wrong form, or where no cluster answers, is one line before Ray is asked
(:func:`check_ray_address`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from bench.data import Dataset
from bench.errors import BenchError
from bench.io import error_summary
from bench.models.registry import ModelSpec
from bench.run.cell import Cell
from bench.run.folder import is_finished, work_dir
from bench.run.train import run_cell
from bench.splits import PairingSplit

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class CellJob:
    """Everything a worker needs to run one cell (picklable)."""

    cell: Cell
    spec: ModelSpec
    split: PairingSplit
    split_file: Path
    identity: str
    out: Path
    device: str
    force: bool


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # ok | failed | skipped (finished meanwhile) | waited (finished elsewhere) | deferred (locked)
    line: str  # what the driver prints for this cell
    message: str = ""


def run_job(job: CellJob, dataset: Dataset, quiet: bool, wait: bool) -> Outcome:
    """Run one cell under its lock; ``wait`` blocks on a lock another process holds."""
    from filelock import FileLock, Timeout

    name = job.cell.name
    lock = FileLock(str(job.out / "locks" / f"{name}.lock"))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        return Outcome(name, "deferred", f"{name}: another bench run is training it; back to it at the end")
    try:
        if is_finished(job.out, job.cell, job.identity) and (wait or not job.force):
            status = "waited" if wait else "skipped"
            return Outcome(name, status, f"{name}: finished by another bench run; skipped")
        if job.force:
            for stale in work_dir(job.out, job.cell, job.identity).glob("*.pt"):
                stale.unlink()
        record = run_cell(job.cell, job.spec, dataset, job.split, job.split_file, job.identity, job.out,
                          torch.device(job.device), quiet)
    finally:
        lock.release()
    if record["status"] == "ok":
        m = record["metrics"]
        return Outcome(name, "ok", f"{name}: rsum {m['rsum']:.1f} (i2t R@1 {m['i2t_r1']:.1f}, t2i R@1 "
                                   f"{m['t2i_r1']:.1f}) in {record['timing']['total_s']:.0f}s")
    error = record["error"]
    return Outcome(name, "failed", f"{name}: FAILED: {error['type']}: {error['message']}", error["message"])


class Executor:
    """Runs jobs and yields outcomes; ``run`` handles the put-off (locked) cells for every executor."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    def map(self, jobs: list[CellJob], dataset: Dataset, quiet: bool, wait: bool) -> Iterator[Outcome]:
        raise NotImplementedError

    def run(self, jobs: list[CellJob], dataset: Dataset, quiet: bool = False, total: int | None = None,
            already: int = 0) -> Iterator[Outcome]:
        from tqdm.auto import tqdm

        bar = tqdm(total=total or len(jobs), initial=already, desc="grid", unit="cell", disable=quiet,
                   dynamic_ncols=True)
        try:
            deferred = []
            for wait, batch in ((False, jobs), (True, None)):
                batch = batch if batch is not None else deferred
                for outcome in self.map(batch, dataset, quiet, wait):
                    if outcome.status == "deferred":
                        deferred.append(next(j for j in batch if j.cell.name == outcome.name))
                    else:
                        bar.update(1)
                    yield outcome
        finally:
            bar.close()


class InProcess(Executor):
    """One cell after another in this process (per-cell progress bars unless quiet)."""

    def map(self, jobs, dataset, quiet, wait):
        for job in jobs:
            yield run_job(job, dataset, quiet, wait)


_WORKER_DATASET: Dataset | None = None
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>: the signal this process gets when its parent dies


def watch_driver(driver_pid: int, interval: float = 1.0) -> None:
    """End this worker process when the driver process ``driver_pid`` ends, however it ends.

    A ``ProcessPoolExecutor`` worker waits on a queue whose write end it holds itself, so when its
    driver is killed (``kill -9``) nothing tells it: it finishes its cell, then waits for good,
    holding its memory, and keeps the multiprocessing resource tracker alive too (which ends once
    the last process holding its pipe has). So, on Linux, the kernel sends this process SIGKILL when
    its parent dies (``PR_SET_PDEATHSIG``). That ties it to the driver only where the driver is the
    parent, as with the 'spawn' context the executors here use (with 'forkserver' the parent is the
    server), and only while the driver thread that started it lives (the executors start workers
    from the thread that submits, the driver's main thread). On every platform a daemon thread also
    checks every ``interval`` seconds that the driver lives, and ends the process when it does not:
    through the pipe a 'spawn' parent holds open for its child (at end of file once the parent is
    gone, even before anyone reaps it), else by the driver's pid. Call it first in a worker's
    initializer; a driver that died before that is caught at once.
    """
    import multiprocessing
    import sys
    import threading

    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid == driver_pid:
        alive = parent.is_alive
        if sys.platform.startswith("linux"):
            _set_parent_death_signal()
    else:
        alive = lambda: _pid_alive(driver_pid)  # noqa: E731
    if not alive():  # it died before the signal was set
        os._exit(1)
    threading.Thread(target=_watch_driver, args=(alive, interval), daemon=True, name="bench-driver-watch").start()


def _set_parent_death_signal() -> None:
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library this process already has loaded
        libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0))
    except (OSError, AttributeError):  # no prctl here: the watching thread alone ends the worker
        pass


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a dead one not yet reaped still does: the thread then waits)."""
    if os.name != "posix":  # os.kill would terminate the process there, not test it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: the driver's pid was reused, so it is gone
        return False
    return True


def _watch_driver(alive, interval: float) -> None:
    import time

    while alive():
        time.sleep(interval)
    os._exit(1)  # nobody is left to take this worker's result


def _init_worker(dataset: Dataset, threads: int, driver_pid: int) -> None:
    global _WORKER_DATASET
    watch_driver(driver_pid)
    _WORKER_DATASET = dataset
    torch.set_num_threads(threads)


def _worker_job(job: CellJob, wait: bool) -> Outcome:
    return run_job(job, _WORKER_DATASET, True, wait)


class ProcessPool(Executor):
    """``jobs`` worker processes on this machine, each with ``threads`` torch threads."""

    def __init__(self, jobs: int, threads: int) -> None:
        self.jobs, self.threads, self.pool = jobs, threads, None

    def map(self, jobs, dataset, quiet, wait):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        if not jobs:
            return
        if self.pool is None:  # spawn: a clean interpreter per worker (forking a process with torch threads is unsafe)
            self.pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker,
                                            initargs=(dataset, self.threads, os.getpid()))
        futures = [self.pool.submit(_worker_job, job, wait) for job in jobs]
        for future in as_completed(futures):
            yield future.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


class RayPool(Executor):
    """Each cell a Ray task: ``threads`` CPUs and, on a GPU device, one GPU."""

    def __init__(self, address: str | None, threads: int, gpus: int) -> None:
        try:
            import ray
        except ImportError:
            raise BenchError("--executor ray needs Ray: pip install -e '.[ray]'") from None
        self.ray, self.threads, self.gpus = ray, threads, gpus
        self.started = not ray.is_initialized()
        if self.started:
            if address is not None:
                check_ray_address(address)
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError, TimeoutError) as error:
                what = f"--address {address}: Ray could not connect" if address else "--executor ray: Ray could not start"
                raise BenchError(f"{what} ({error_summary(error)}); {RAY_START}") from None
        self.task = ray.remote(num_cpus=threads, num_gpus=gpus)(_ray_job)
        self.dataset_ref = None

    def map(self, jobs, dataset, quiet, wait):
        ray = self.ray
        if self.dataset_ref is None:
            self.dataset_ref = ray.put(dataset)
        waiting = [self.task.remote(job, self.dataset_ref, self.threads, wait) for job in jobs]
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            yield ray.get(done[0])

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


RAY_START = ("start the cluster first (`ray start --head` on its head node, see the README), or leave out --address "
             "to start Ray on this machine for this run")
# What --address may be besides auto: ray://HOST:PORT (Ray Client) or HOST:PORT (the address `ray start --head` prints)
_RAY_ADDRESS = re.compile(r"(?P<client>ray://)?(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")


def check_ray_address(address: str) -> None:
    """Refuse, in one line that names --address and what to start, a Ray address that can't be joined:
    one of another form, ``auto`` on a machine where no cluster runs, or an address where nothing
    answers. Ray itself would retry such an address for minutes before it gives up; a TCP connection
    with a timeout of a few seconds answers at once."""
    import socket

    if address == "auto":
        host, port = _auto_address()
        if host is None:
            return
    else:
        match = _RAY_ADDRESS.fullmatch(address)
        if match is None or not 0 < int(match["port"]) < 65536:
            raise BenchError(f"--address {address!r} is not a Ray address; give auto (the cluster this machine "
                             "belongs to), ray://HOST:PORT (Ray Client, port 10001 by default) or HOST:PORT (the "
                             "address `ray start --head` prints)")
        host, port = match["host"].strip("[]"), int(match["port"])
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise BenchError(f"--address {address}: nothing answers at {host}:{port} ({reason}); {RAY_START}") from None


def _auto_address() -> tuple[str | None, int]:
    """The cluster ``--address auto`` would join, as Ray finds it (RAY_ADDRESS, else the latest
    `ray start` or a running Ray on this machine), or a :class:`BenchError` when there is none.
    (None, 0) when this version of Ray can't be asked (a private function): then ray.init answers."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        found = canonicalize_bootstrap_address("auto")
    except ConnectionError:
        raise BenchError("--address auto: no Ray cluster runs on this machine; start one with `ray start --head` "
                         "(see the README for SLURM and Kubernetes), or leave out --address to start Ray for this "
                         "run") from None
    except Exception:  # noqa: BLE001 - another Ray version: leave the answer to ray.init
        return None, 0
    host, _, port = (found or "").removeprefix("ray://").rpartition(":")  # RAY_ADDRESS may name a Ray Client
    return (host.strip("[]"), int(port)) if host and port.isdigit() else (None, 0)


def _ray_job(job: CellJob, dataset: Dataset, threads: int, wait: bool) -> Outcome:
    torch.set_num_threads(threads)
    return run_job(job, dataset, True, wait)


def default_threads(jobs: int) -> int:
    """The cores split evenly between the workers."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def make_executor(kind: str, jobs: int = 1, threads: int | None = None, address: str | None = None,
                  device: torch.device | str = "cpu") -> Executor:
    if kind not in EXECUTORS:
        raise BenchError(f"unknown executor '{kind}'; choose one of {', '.join(EXECUTORS)}")
    if jobs < 1:
        raise BenchError(f"--jobs {jobs}: give a positive number of worker processes")
    if kind == "ray":
        gpus = 1 if torch.device(device).type == "cuda" else 0
        return RayPool(address, threads or 1, gpus)
    if address is not None:
        raise BenchError("--address goes with --executor ray")
    if jobs == 1:
        return InProcess()
    return ProcessPool(jobs, threads or default_threads(jobs))
