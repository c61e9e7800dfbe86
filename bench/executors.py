"""Where the cells of a grid run: in this process, in N local worker processes, or as Ray tasks.

Every executor runs the same :func:`run_job` on each :class:`CellJob` and yields one
:class:`Outcome` per cell as cells finish. :func:`run_job` trains a cell only while it holds
that cell's lock (``<out>/locks/<cell>.lock``, a ``filelock`` lock that the operating system
releases when its process dies), so two ``bench run`` processes on one folder never train the
same cell. A locked cell is put off until every other cell has run, then waited for; if the
other process finished it, it is skipped, otherwise (that process failed or was killed) it is
trained here.

With Ray (``pip install -e '.[ray]'``), each cell is a task asking for ``threads`` CPUs and, with
``--device cuda``, one GPU. Workers read the dataset from Ray's object store and write records
straight into the run folder, so on a cluster the run folder must be on a filesystem every node
mounts at the same path (and the locks need one where ``flock`` works across nodes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import torch

from bench.data import Dataset
from bench.errors import BenchError
from bench.registry import ModelSpec
from bench.splits import PairingSplit

if TYPE_CHECKING:  # the runner imports this module; at run time the name is only an annotation
    from bench.runner import Cell

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

    from bench.runner import is_finished, run_cell, work_dir

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


def _init_worker(dataset: Dataset, threads: int) -> None:
    global _WORKER_DATASET
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
                                            initializer=_init_worker, initargs=(dataset, self.threads))
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
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
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
