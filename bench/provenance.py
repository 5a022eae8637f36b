"""Where a benchmark result came from: code, packages, BLAS kernel, interpreter and CPU.

Every results file under ``bench/results/`` records :func:`provenance` (a header in a ``.md``, a
sidecar ``<file>.provenance.json`` next to a CSV or PNG), so that a number can be traced to the
code and the machine that produced it.  Why the BLAS kernel matters: esopt's CMA-ES used to sample
``B D z``, whose eigenvectors B LAPACK picks differently per OpenBLAS kernel (issue 15), and
sums in other orders per kernel still differ in the last bits.

Usage::

    from provenance import provenance, markdown, write_sidecar   # bench/ is on sys.path
    prov = provenance(command="python bench/x.py --seeds 5")
    write_sidecar(Path("bench/results/x.csv"), prov)
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: distributions whose versions are recorded (importlib.metadata; nothing is imported)
PACKAGES = (
    "esopt",
    "numpy",
    "scipy",
    "torch",
    "ray",
    "cma",
    "cmaes",
    "optuna",
    "DEHB",
    "ConfigSpace",
    "scikit-learn",
    "threadpoolctl",
)
#: folders of the code that determines a benchmark's numbers (hashed by :func:`source_digest`)
SOURCE_DIRS = ("esopt", "trials", "cluster", "bench")
#: environment variables that change numerics or threading
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _git(root: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def git_state(root: Path = ROOT) -> dict[str, Any]:
    """``{"commit": full sha or None, "dirty": bool or None, "dirty_paths": [tracked files that
    differ from the commit]}`` (read-only git commands; None where git or the repository is
    missing)."""
    head = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    paths = [line[3:] for line in (status or "").splitlines() if line.strip()]
    return {
        "commit": head.strip() if head else None,
        "dirty": None if status is None else bool(paths),
        "dirty_paths": sorted(paths),
    }


def source_digest(root: Path = ROOT, dirs: tuple[str, ...] = SOURCE_DIRS) -> str:
    """SHA-1 over the ``*.py`` files under ``dirs`` of ``root`` as they are on disk (committed or
    not): ``sha1`` of the sorted lines ``"<path> <git blob id>"``.  The blob ids are git's
    (``sha1(b"blob <size>\\0" + content)``), so a digest can be recomputed from any commit with
    ``git ls-tree -r``; two results with the same digest came from the same code."""
    lines = []
    for d in dirs:
        for p in sorted((root / d).rglob("*.py")):
            if "__pycache__" in p.parts:
                continue
            data = p.read_bytes()
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            lines.append(f"{p.relative_to(root).as_posix()} {blob}")
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()


def source_digests(root: Path = ROOT, dirs: tuple[str, ...] = SOURCE_DIRS) -> dict[str, str]:
    """``{folder: source_digest(root, (folder,))}`` for each of ``dirs``."""
    return {d: source_digest(root, (d,)) for d in dirs}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """``{distribution: version}`` from the installed metadata (None if not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def blas_info() -> list[dict[str, Any]]:
    """The BLAS/LAPACK (and OpenMP) libraries loaded in this process, from threadpoolctl:
    ``user_api``, ``internal_api`` (e.g. ``openblas``), ``version``, ``architecture`` (the
    kernel, e.g. ``Haswell``), ``num_threads``, ``threading_layer`` and the library's file name.
    numpy and scipy are imported first so that both of their libraries are listed.  An empty list
    if threadpoolctl is not installed."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [
        {**{k: i.get(k) for k in keys}, "library": Path(str(i.get("filepath", ""))).name} for i in threadpool_info()
    ]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(command: str | None = None, root: Path = ROOT) -> dict[str, Any]:
    """A JSON-safe dict: ``date_utc``, ``command``, ``git`` (:func:`git_state`), ``source_sha1``
    (:func:`source_digest`), ``source_sha1_by_dir`` (:func:`source_digests`), ``packages``
    (:func:`package_versions`), ``blas`` (:func:`blas_info`), ``python`` (version, implementation,
    executable), ``platform``, ``cpu`` (model, logical count) and ``env`` (the :data:`ENV_VARS`
    that are set).

    ``command`` is the command line to record (default: this process's ``sys.argv``)."""
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command if command is not None else " ".join([Path(sys.executable).name, *sys.argv]),
        "git": git_state(root),
        "source_sha1": source_digest(root),
        "source_sha1_by_dir": source_digests(root),
        "packages": package_versions(),
        "blas": blas_info(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": platform.platform(),
        "cpu": {"model": cpu_model(), "logical_cpus": os.cpu_count()},
        "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
    }


def short(prov: dict[str, Any]) -> str:
    """One line: commit (``+dirty``), source digest, BLAS kernels."""
    g = prov.get("git", {})
    commit = (g.get("commit") or "unknown")[:10] + ("+dirty" if g.get("dirty") else "")
    kernels = sorted({f"{b['internal_api']} {b['version']} {b['architecture']}" for b in prov.get("blas", [])})
    return f"commit {commit}, source {prov.get('source_sha1', '?')[:10]}, BLAS {'; '.join(kernels) or 'unknown'}"


def markdown(prov: dict[str, Any]) -> str:
    """A few markdown lines (ending in two spaces for line breaks) describing ``prov``."""
    g = prov["git"]
    dirty = ""
    if g.get("dirty"):
        dirty = f" + uncommitted changes to {', '.join(g['dirty_paths'][:8])}" + (
            " ..." if len(g["dirty_paths"]) > 8 else ""
        )
    pk = ", ".join(f"{k} {v}" for k, v in prov["packages"].items() if v is not None)
    blas = "; ".join(
        f"{b['internal_api']} {b['version']} kernel {b['architecture']} ({b['library']}, {b['num_threads']} threads)"
        for b in prov["blas"]
        if b.get("user_api") == "blas"
    )
    return "\n".join(
        [
            f"Produced {prov['date_utc']} by commit {g.get('commit') or 'unknown'}{dirty}; "
            f"source digest {prov['source_sha1']} (bench/provenance.py)  ",
            f"Packages: {pk}; Python {prov['python']['version']}  ",
            f"BLAS: {blas or 'unknown'}; CPU: {prov['cpu']['model']} ({prov['cpu']['logical_cpus']} logical)"
            + (f"; env {prov['env']}" if prov["env"] else "")
            + "  ",
        ]
    )


def code_differs(recorded: dict[str, Any] | None, now: dict[str, Any], dirs: tuple[str, ...]) -> bool:
    """True if provenance ``recorded`` is None or its source digest of any folder in ``dirs``
    (:func:`source_digests`) differs from that of provenance ``now``."""
    if recorded is None:
        return True
    old, new = recorded.get("source_sha1_by_dir", {}), now["source_sha1_by_dir"]
    return any(old.get(d) != new.get(d) for d in dirs)


def sidecar_path(path: Path) -> Path:
    """``<path>.provenance.json`` next to ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".provenance.json")


def write_sidecar(path: Path, prov: dict[str, Any], **extra: Any) -> Path:
    """Write ``{**prov, **extra}`` as indented JSON to :func:`sidecar_path` (atomically); returns
    that path.  Raises ``TypeError`` if a value is not JSON-serializable."""
    out = sidecar_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({**prov, **extra}, indent=1, sort_keys=True) + "\n")
    tmp.replace(out)
    return out


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The provenance recorded next to ``path``, or None if there is none."""
    p = sidecar_path(path)
    return json.loads(p.read_text()) if p.exists() else None
