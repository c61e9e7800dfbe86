"""Where a result came from: code version, packages, machine."""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

import torch

from bench.errors import BenchError

PACKAGES = ("torch", "torchvision", "numpy", "pandas", "pycocotools", "sentence-transformers",
            "efficientnet-lite-pytorch", "partial-pairing-bench")


def git_state(path: Path | None = None) -> dict:
    """Commit and dirty flag of the repository holding this package (or ``path``).

    ``dirty`` counts untracked files that git doesn't ignore: new code that isn't committed
    yet (a new module, a new package) changes results as much as an edited file does.
    """
    try:
        import git

        repo = git.Repo(path or Path(__file__).resolve().parent, search_parent_directories=True)
        try:
            commit = repo.head.commit.hexsha
        except ValueError:  # a repository without commits
            commit = None
        return {"commit": commit, "dirty": repo.is_dirty(untracked_files=True), "branch": _branch(repo)}
    except Exception as error:  # not a checkout (installed from a wheel), or git missing
        return {"commit": None, "dirty": None, "branch": None, "note": f"no git checkout ({type(error).__name__})"}


def _branch(repo) -> str | None:
    try:
        return repo.active_branch.name
    except (TypeError, ValueError):
        return None


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def cpu_capability() -> str:
    """The vector instruction set of this machine's CPU kernels, as torch reports it (``AVX2``,
    ``AVX512``, ...). It decides torch's kernels and, on the same machine, the OpenBLAS kernels of
    numpy's matrix products. CPU runs of the same cell are bit-identical only between machines that
    report the same one: an AVX2 and an AVX-512 machine sum float32 products in other orders. The
    tests key their bit-exact pins on it."""
    return torch.backends.cpu.get_cpu_capability()


def blas_core() -> str:
    """The kernel family numpy's BLAS runs on this machine (OpenBLAS's core name, e.g. ``Haswell`` or
    ``SkylakeX``), or ``unknown``. It need not follow torch's capability: OpenBLAS may be told to use
    another core (``OPENBLAS_CORETYPE``), and then numpy's float32 products sum as on that core."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.environ.get("OPENBLAS_CORETYPE") or "unknown"
    cores = sorted({str(info.get("architecture")) for info in threadpool_info()
                    if info.get("internal_api") == "openblas" and info.get("architecture")})
    return "+".join(cores) or os.environ.get("OPENBLAS_CORETYPE") or "unknown"


def numeric_platform() -> str:
    """What decides the last bits of a CPU run: torch's kernels (:func:`cpu_capability`) and numpy's
    BLAS core (:func:`blas_core`). The tests key their bit-exact pins on it; records keep
    ``cpu_capability`` as they always did."""
    return f"{cpu_capability()}/{blas_core()}"


def environment(device: torch.device) -> dict:
    return {
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_description(device),
        "cpu_capability": cpu_capability(),
    }


def resolve_device(name: str) -> torch.device:
    """``auto`` (a GPU when torch sees one), ``cpu``, ``cuda`` or ``cuda:N``; a clear error otherwise."""

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not re.fullmatch(r"cuda(:\d+)?", name):
        raise BenchError(f"unknown device '{name}'; choose auto, cpu, cuda or cuda:N")
    if name != "cpu" and not torch.cuda.is_available():
        raise BenchError(f"--device {name} was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)
