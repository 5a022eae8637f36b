"""The campaign's objective as a picklable callable ``params -> dict``.

A config names the objective as ``"module:function"``.  :class:`Objective` carries that string
(not the function), so that it pickles to Ray workers on any node and is imported there on
first use.  Calling it returns a plain dict::

    {"objective": float (may be nan/inf), "status": "ok" | "diverged" | "failed",
     "reason": str | None, "result": dict}

``result`` is the full ``TrialResult.to_dict()`` for ``trials:train_and_evaluate``, the dict
returned by a user function, or ``{"objective": value}`` for a function returning a number.
"""

from __future__ import annotations

import importlib
import math
import numbers
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import TRIALS_OBJECTIVE, CampaignConfig, ConfigError, import_callable

__all__ = ["Objective", "make_objective", "normalize_result", "pin_threads", "shipped_modules"]

_CACHE: dict[str, Callable[..., Any]] = {}
_PINNED: list[int] = []  # threads this process was pinned to (pinning once per process is enough)


def _threads(num_cpus: float) -> int:
    """Threads for a trial with ``num_cpus`` CPUs: ``max(1, floor(num_cpus))``."""
    return max(1, int(math.floor(num_cpus)))


def pin_threads(n: int) -> Any:
    """Limit BLAS/OpenMP thread pools (threadpoolctl) and torch (if imported) to ``n`` threads.

    Returns the threadpoolctl limiter (or None if threadpoolctl is missing); it stays in force
    for the life of the process or until ``restore_original_limits()``.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)  # for libraries loaded after this point
    limiter = None
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    return limiter


def normalize_result(value: Any) -> dict[str, Any]:
    """Turn what an objective returned into ``{"objective", "status", "reason", "result"}``.

    Accepts a real number, a mapping with key ``"objective"`` (and optionally ``status``,
    ``reason``; an objective of None there reads as NaN), or an object with ``to_dict()``
    returning such a mapping (``TrialResult``).

    Raises
    ------
    TypeError
        For anything else (e.g. a string, a bool, a mapping without ``objective``).
    """
    if hasattr(value, "to_dict") and callable(value.to_dict) and not isinstance(value, Mapping):
        value = value.to_dict()
    if isinstance(value, Mapping):
        if "objective" not in value:
            raise TypeError(f"the objective returned a dict without key 'objective' (keys: {sorted(value)})")
        obj = value["objective"]
        result = dict(value)
    else:
        if value is None:
            raise TypeError("the objective returned None; return a float or a dict with key 'objective'")
        obj = value
        result = {"objective": value}
    if isinstance(obj, bool) or not isinstance(obj, numbers.Real) and obj is not None:
        raise TypeError(f"the objective value must be a real number, got {type(obj).__name__}: {obj!r}")
    objective = float("nan") if obj is None else float(obj)
    if "objective" in result:
        result["objective"] = objective
    status = str(result.get("status") or "ok")
    reason = result.get("reason")
    return {
        "objective": objective,
        "status": status,
        "reason": None if reason is None else str(reason),
        "result": result,
    }


@dataclass(frozen=True)
class Objective:
    """Picklable objective: ``Objective(...)(params) -> dict`` (see module docstring).

    Attributes
    ----------
    target : str
        ``"module:function"``.
    trial : dict
        ``TrialSpec`` fields, used only for ``trials:train_and_evaluate`` (then the function is
        called as ``train_and_evaluate(params, TrialSpec.from_dict(trial))``).
    num_cpus : float
        CPUs of a trial: BLAS/torch threads are pinned to ``max(1, floor(num_cpus))`` in the
        worker, and ``TrialSpec.threads`` defaults to it.
    sys_path : tuple of str
        Import directories of the driver, appended to a worker's ``sys.path`` if missing there,
        so that a module importable in the driver (e.g. next to a script) is importable in workers.
    num_gpus : float
        GPUs of a trial; with 0, ``TrialSpec.device`` "auto" becomes "cpu" (a trial that Ray did
        not give a GPU must not use one).
    base_dir : str or None
        The config file's folder (``CampaignConfig.base_dir``): imported from first where it exists
        (the driver, and workers on the driver's machine).
    py_modules : tuple of str
        Modules of ``base_dir`` shipped to every worker with Ray's ``runtime_env`` (``py_modules``:
        each top-level ``*.py`` file and package of the folder), so that ``myobj:f`` with
        ``myobj.py`` beside the config imports on every node of a cluster; empty when the
        objective's module is not in ``base_dir`` (see :func:`shipped_modules`).
    """

    target: str
    trial: dict = field(default_factory=dict)
    num_cpus: float = 1.0
    sys_path: tuple[str, ...] = ()
    num_gpus: float = 0.0
    base_dir: str | None = None
    py_modules: tuple[str, ...] = ()

    @property
    def uses_trials(self) -> bool:
        return self.target == TRIALS_OBJECTIVE

    def load(self) -> Callable[..., Any]:
        """Import the target (cached per process). Raises ``ConfigError`` if not importable."""
        fn = _CACHE.get(self.target)
        if fn is None:
            for p in self.sys_path:
                if p not in sys.path:
                    sys.path.append(p)
            importlib.invalidate_caches()
            here = self.base_dir if self.base_dir and os.path.isdir(self.base_dir) else None
            fn = import_callable(self.target, "objective", base_dir=here)
            _CACHE[self.target] = fn
        return fn

    def runtime_env(self) -> dict[str, Any] | None:
        """The Ray job's ``runtime_env`` for this objective: ``{"py_modules": [...]}``, or None (nothing
        to ship).  Ray uploads local paths only for a job (``ray.init(runtime_env=...)``), which
        :func:`cluster.raylocal.connect` passes; when Ray was initialized before the campaign, workers
        on the driver's machine import from ``sys_path``/``base_dir`` instead."""
        return {"py_modules": list(self.py_modules)} if self.py_modules else None

    def spec(self) -> Any:
        """The ``trials.TrialSpec`` for this campaign (threads default to the trial's CPUs)."""
        import trials

        fields = dict(self.trial)
        if fields.get("threads") is None:
            fields["threads"] = _threads(self.num_cpus)
        if fields.get("device", "auto") == "auto" and self.num_gpus == 0:
            fields["device"] = "cpu"
        return trials.TrialSpec.from_dict(fields)

    def __call__(self, params: Mapping[str, Any], report: Callable[[int, float], Any] | None = None) -> dict[str, Any]:
        """Evaluate ``params`` (dict in own units) and return the normalized dict.

        ``report`` (multi-fidelity) is passed on as the keyword ``report`` (the config check made
        sure the function takes it: :func:`cluster.fidelity.accepts_report`).  Exceptions of the
        objective propagate (the executor records them).
        """
        n = _threads(self.num_cpus)
        if _PINNED != [n]:
            pin_threads(n)
            _PINNED[:] = [n]
        fn = self.load()
        extra = {} if report is None else {"report": report}
        value = fn(dict(params), self.spec(), **extra) if self.uses_trials else fn(dict(params), **extra)
        return normalize_result(value)


def make_objective(config: CampaignConfig) -> Objective:
    """Build the :class:`Objective` of a campaign config.

    Raises
    ------
    ConfigError
        If the objective (or ``trial``) is not usable; checked in the driver before anything runs.
    """
    base_dir = getattr(config, "base_dir", None)
    base_dir = None if base_dir is None else str(Path(base_dir).resolve())
    obj = Objective(
        target=config.objective,
        trial=dict(config.trial),
        num_cpus=float(config.resources.num_cpus),
        num_gpus=float(config.resources.num_gpus),
        sys_path=tuple(p for p in sys.path if p and os.path.isdir(p)),
        base_dir=base_dir,
        py_modules=shipped_modules(base_dir, config.objective),
    )
    obj.load()
    if obj.uses_trials:
        try:
            obj.spec()
        except (TypeError, ValueError) as e:
            raise ConfigError("trial", str(e)) from e
    return obj


def shipped_modules(base_dir: str | os.PathLike | None, target: str) -> tuple[str, ...]:
    """What of ``base_dir`` the workers need for ``target`` (``"module:function"``).

    If the objective's top-level module is a ``module.py`` or a package ``module/__init__.py`` in
    ``base_dir``, every top-level ``*.py`` file and package of ``base_dir`` (sorted absolute paths;
    the objective's module may import its siblings), for Ray's ``runtime_env`` ``py_modules``;
    otherwise (e.g. ``trials:train_and_evaluate``, or no ``base_dir``) an empty tuple.  Data,
    campaign directories and other files are never shipped.
    """
    if base_dir is None or not isinstance(target, str) or ":" not in target:
        return ()
    root = Path(base_dir)
    top = target.split(":", 1)[0].split(".")[0]
    if not ((root / f"{top}.py").is_file() or (root / top / "__init__.py").is_file()):
        return ()
    found = [p for p in root.iterdir() if (p.suffix == ".py" and p.is_file()) or (p / "__init__.py").is_file()]
    return tuple(sorted(str(p.resolve()) for p in found))
