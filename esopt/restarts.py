"""Restart strategies with increasing population size: IPOP and BIPOP, over any strategy.

* **IPOP** (Auger and Hansen, "A Restart CMA Evolution Strategy With Increasing Population
  Size", CEC 2005): whenever a run stops on a local criterion (``tolfun``, ``tolx``,
  ``tolstagnation``, ...), a new run starts from ``x0`` with ``sigma0`` and the population size
  multiplied by ``incpopsize`` (2): ``popsize_k = round(popsize_0 * incpopsize**k)``.
* **BIPOP** (Hansen, "Benchmarking a BI-Population CMA-ES on the BBOB-2009 Function Testbed",
  GECCO 2009 workshop): two interlaced regimes after a first run with the default population
  size ``popsize_0``.  The *large* regime is IPOP (``popsize_0 * 2**k`` after ``k`` earlier
  large-regime runs counting the first run, ``sigma0``).  The *small* regime draws
  ``U1, U2 ~ U[0, 1]`` and uses ``sigma0 * 10**(-2 U1)`` and
  ``floor(popsize_0 * (popsize_l / popsize_0)**(U2**2))``, where ``popsize_l`` is the population
  size of the latest large run; a small run is limited to ``0.5 * budget_large / popsize``
  iterations.  The next run is small while the evaluations spent in small runs are below those
  spent in large runs, so both regimes get about the same budget.  Budget accounting details
  follow pycma 4.5.0's ``fmin2(..., bipop=True)`` (read from its source), which charges the
  first run to the small budget, as Hansen's MATLAB code does.  Only large-regime runs count as
  restarts against ``max_restarts``.

A wrapper is itself a :class:`esopt.base.Strategy`.  **The population size changes between
restarts, so the shape of** ``ask()`` **changes**: always use ``es.popsize`` (or the returned
array's shape) of the current generation.  ``stop()`` is ``{}`` until the restarts are
exhausted or a global criterion (``ftarget``, ``maxfevals``, counted over all runs) fires; it
then returns the last run's criteria, plus ``{'maxrestarts': max_restarts}`` when the restarts
were exhausted.  ``result`` is the best over all runs with ``restart_history``.  Every run
restarts from ``x0`` with the same strategy options (for the mixed strategy :class:`esopt.CatCMAwM`
its ``integers``, ``categories`` and ``stds``: a restart starts its categorical distributions
uniform again).  Per-run criteria (``maxiter``, ``tolfun``, ...) apply to each run.

Randomness: the wrapper's ``numpy.random.Generator`` draws each run's seed (and BIPOP's
``U1, U2``), so a seeded wrapper is reproducible; ``state_dict`` stores it and the current
run's state under the prefix ``inner.`` so that a resumed wrapper continues bit-for-bit, also in
the middle of a restart.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from . import statedict as sd
from .base import EvolutionStrategy, Result, Strategy, make_rng, progress_field
from .jsonutil import to_jsonable
from .numtypes import is_int, is_real
from .termination import Tolerances

__all__ = ["IPOP", "BIPOP", "RestartResult", "RestartProgress", "BIPOPProgress"]

_GLOBAL = ("ftarget", "maxfevals")


@dataclass(frozen=True)
class RestartResult(Result):
    """:class:`esopt.base.Result` of a restart wrapper, best over all runs.

    ``restart_history`` lists one dict per run (the current one included while it runs):
    ``run``, ``regime`` (``'first'``, ``'large'`` or ``'small'``), ``popsize``, ``sigma0``,
    ``evals``, ``iterations``, ``best_f`` and ``stop`` (the criteria that ended it, ``{}``
    while running).
    """

    restart_history: list = field(default_factory=list)


@dataclass
class RestartProgress:
    """Evolving state of a restart wrapper (checkpointed as ``restarts.*``).

    Attributes
    ----------
    history : list of dict
        Completed runs (see :class:`RestartResult`).
    run : dict
        ``run``, ``regime``, ``popsize``, ``sigma0`` of the current run.
    evals_done, iters_done : int
        Evaluations and iterations of the runs before the current one.
    best_f, evals_at_best, best_x
        Best over all runs (``best_x`` (n,), external coordinates, None before the first tell).
    final_stop : dict or None
        The criteria that ended the whole search, None while it runs.
    """

    history: list = field(default_factory=list, metadata={"json": True})
    run: dict = field(default_factory=dict, metadata={"json": True})
    evals_done: int = 0
    iters_done: int = 0
    best_f: float = math.inf
    evals_at_best: int = 0
    best_x: np.ndarray | None = None
    final_stop: dict | None = field(default=None, metadata={"json": True})


@dataclass
class BIPOPProgress(RestartProgress):
    """:class:`RestartProgress` plus BIPOP's budgets: evaluations of the small-regime runs (the
    first run included) and of the large-regime runs."""

    budget_small: int = 0
    budget_large: int = 0


def _checkpointable_option(name: str, v):
    """An inner strategy's option in the form the wrapper keeps and checkpoints.

    Accepted: ``None``, bool, int, float, str (numpy scalars become Python scalars, numpy dtypes
    their names); numeric arrays (lists, tuples or ndarrays of bools, ints or floats, any shape:
    kept as a copied ndarray, e.g. :class:`esopt.CatCMAwM`'s ``integers`` (k,) and ``stds``
    (n,)); and mappings of ints to ints (``CatCMAwM``'s ``categories`` ``{coordinate: K}``: kept
    as an int64 array of ``(key, value)`` pairs sorted by key, shape (k, 2), the form that
    strategy also accepts).  The inner constructor still validates the value.

    Raises ``TypeError`` (naming the option) for anything else: objects, strings in an array,
    ragged sequences, mappings with other keys or values.
    """
    if isinstance(v, Mapping):
        if all(is_int(a) and is_int(b) for a, b in v.items()):
            pairs = sorted((int(a), int(b)) for a, b in v.items())
            return np.array(pairs, dtype=np.int64).reshape(-1, 2)
    elif isinstance(v, (list, tuple, np.ndarray)):
        try:
            arr = np.array(v)
        except ValueError:  # ragged
            arr = None
        if arr is not None and arr.dtype.kind in "biuf":
            return arr.item() if arr.ndim == 0 else arr
    else:
        try:
            p = to_jsonable(v)
        except TypeError:
            p = v
        if p is None or isinstance(p, (bool, int, float, str)):
            return p
    raise TypeError(
        f"strategy option {name}={v!r} must be a scalar, a string, a numpy dtype, a numeric array or a "
        "mapping of ints to ints so that the restart wrapper can be checkpointed"
    )


def _resolve_method(method) -> tuple[type, str]:
    from .registry import STRATEGIES, strategy_class

    if isinstance(method, str):
        if method not in STRATEGIES:
            raise ValueError(f"unknown method {method!r} for restarts; known: {sorted(STRATEGIES)}")
        return strategy_class(method), method
    if isinstance(method, type) and issubclass(method, EvolutionStrategy):
        return method, method.name
    raise TypeError(f"method must be a registered strategy name or an EvolutionStrategy subclass, got {method!r}")


class IPOP(Strategy):
    """IPOP restarts (Auger and Hansen 2005) around a strategy; see the module docstring.

    Parameters
    ----------
    method : str or EvolutionStrategy subclass
        Inner strategy: a name of :data:`esopt.registry.STRATEGIES` (``'cmaes'``, ...) or a class
        (it must be registered under its ``name`` for :func:`esopt.load`).
    x0 : array_like (n,)
        Initial mean of every run.
    sigma0 : float > 0
        Initial step size of every (large-regime) run.
    popsize : int, optional
        Population size of the first run; default the inner strategy's default.
    seed : int, numpy.random.Generator or None
        Source of the runs' seeds.
    bounds : (lower, upper), optional
        Passed to every run.
    tolerances : Tolerances or dict, optional
        ``ftarget`` and ``maxfevals`` are global (over all runs); the others apply per run.
    max_restarts : int >= 0
        Restarts after the first run (default 9, as pycma).
    incpopsize : float >= 1
        Population size factor per restart (default 2).
    **strategy_options
        Further constructor arguments of the inner strategy, passed to every run: plain scalars,
        strings, dtypes, numeric arrays or mappings of ints to ints (e.g. ``integers``,
        ``categories`` and ``stds`` of ``'catcmawm'``, so that IPOP/BIPOP restart the mixed
        strategy too; see ``_checkpointable_option``).

    Raises
    ------
    ValueError, TypeError
        For an unknown ``method``, bad ``max_restarts``/``incpopsize``/options, and everything
        the inner constructor rejects (``x0``, ``sigma0``, ``bounds``, ...).
    """

    name: ClassVar[str] = "ipop"
    _progress_class: ClassVar[type] = RestartProgress

    # evolving state, forwarded to self.progress (a RestartProgress dataclass)
    history = progress_field()
    run = progress_field()
    evals_done = progress_field()
    iters_done = progress_field()
    best_f = progress_field()
    evals_at_best = progress_field()
    best_x = progress_field()
    final_stop = progress_field()

    def __init__(
        self,
        method,
        x0,
        sigma0,
        *,
        popsize=None,
        seed=None,
        bounds=None,
        tolerances=None,
        max_restarts=9,
        incpopsize=2,
        **strategy_options,
    ):
        self._cls, self.method = _resolve_method(method)
        if not is_int(max_restarts):
            raise TypeError(f"max_restarts must be an int >= 0, got {max_restarts!r}")
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {max_restarts}")
        if not is_real(incpopsize):
            raise TypeError(f"incpopsize must be a float >= 1, got {incpopsize!r}")
        if not math.isfinite(incpopsize) or incpopsize < 1:
            raise ValueError(f"incpopsize must be a finite float >= 1, got {incpopsize!r}")
        tolerances = Tolerances.coerce(tolerances)
        self.options = {k: _checkpointable_option(k, v) for k, v in strategy_options.items()}
        self.max_restarts = int(max_restarts)
        self.incpopsize = float(incpopsize)
        self.tolerances_given = tolerances
        self._bounds_arg = bounds
        self._rng = make_rng(seed)
        rng_state = self._rng.bit_generator.state  # a Generator passed in is left as it was if we raise
        try:
            # the first run validates x0, sigma0, popsize, bounds and the options
            self.inner: EvolutionStrategy = self._cls(
                x0,
                sigma0,
                popsize=popsize,
                seed=self._draw_seed(),
                bounds=bounds,
                tolerances=self._run_tolerances(None, 0),
                **self.options,
            )
            self.tolerances = tolerances.resolve(self.inner.n, self.inner.popsize)  # raises for bad thresholds
        except Exception:
            self._rng.bit_generator.state = rng_state
            raise
        self.n = self.inner.n
        self.x0 = self.inner.x0.copy()
        self.sigma0 = self.inner.sigma0
        self.bounds = self.inner.bounds
        self.popsize0 = self.inner.popsize
        self.progress = self._progress_class(
            run={"run": 0, "regime": "first", "popsize": self.popsize0, "sigma0": self.sigma0}
        )

    # ----- run management ------------------------------------------------------------------------
    def _draw_seed(self) -> int:
        return int(self._rng.integers(0, 2**63 - 1))

    def _run_tolerances(self, maxiter, evals_done: int) -> Tolerances:
        t = self.tolerances_given
        changes: dict[str, Any] = {"maxfevals": max(0.0, float(t.maxfevals) - evals_done)}
        if maxiter is not None:
            changes["maxiter"] = maxiter
        return dataclasses.replace(t, **changes)

    def _next_run(self) -> tuple[str, int, float, float | None]:
        """``(regime, popsize, sigma0, maxiter or None)`` of the next run (IPOP: large regime)."""
        k = sum(1 for h in self.history if h["regime"] in ("first", "large"))
        return "large", int(round(self.popsize0 * self.incpopsize**k)), self.sigma0, None

    def _restarts_exhausted(self) -> bool:
        return len(self.history) > self.max_restarts

    def _end_run(self, stop: dict) -> None:
        rec = dict(
            self.run,
            evals=self.inner.countevals,
            iterations=self.inner.countiter,
            best_f=float(self.inner.best_f),
            stop=dict(stop),
        )
        self.history.append(rec)
        self._account(rec)

    def _account(self, rec: dict) -> None:
        """Hook for BIPOP's budget bookkeeping."""

    def _start_run(self) -> None:
        self.evals_done += self.inner.countevals
        self.iters_done += self.inner.countiter
        regime, popsize, sigma0, maxiter = self._next_run()
        tolerances = self._run_tolerances(maxiter, self.evals_done)
        warned = self.inner.progress.warned_nonfinite
        self.inner = self._cls(
            self.x0,
            sigma0,
            popsize=popsize,
            seed=self._draw_seed(),
            bounds=self._bounds_arg,
            tolerances=tolerances,
            **self.options,
        )
        self.inner.progress.warned_nonfinite = warned  # one warning about NaN/inf values per search
        self.run = {"run": len(self.history), "regime": regime, "popsize": popsize, "sigma0": sigma0}

    # ----- Strategy API --------------------------------------------------------------------------
    @property
    def popsize(self) -> int:  # type: ignore[override]
        """Population size of the current run (changes between restarts)."""
        return self.inner.popsize

    @property
    def countevals(self) -> int:
        """Evaluations over all runs."""
        return self.evals_done + self.inner.countevals

    @property
    def countiter(self) -> int:
        """Iterations (tells) over all runs."""
        return self.iters_done + self.inner.countiter

    @property
    def sigma(self) -> float:
        return float(self.inner.sigma)

    @property
    def mean(self) -> np.ndarray:
        return self.inner.mean

    @property
    def restart_history(self) -> list[dict]:
        """Completed runs, then the current one (``stop == {}``) if it has started."""
        hist = [dict(h) for h in self.history]
        if self.final_stop is None and self.inner.countiter > 0:
            hist.append(
                dict(
                    self.run,
                    evals=self.inner.countevals,
                    iterations=self.inner.countiter,
                    best_f=float(self.inner.best_f),
                    stop={},
                )
            )
        return hist

    def ask(self) -> np.ndarray:
        """Candidates of the current run, shape ``(popsize, n)`` with the *current* popsize."""
        return self.inner.ask()

    def tell(self, X, f) -> None:
        """Tell the current run; starts the next run when it stops on a local criterion.

        Raises ``ValueError``/``TypeError`` as :meth:`EvolutionStrategy.tell`, before any change.
        """
        self.inner.tell(X, f)  # validates before changing anything
        if self.inner.best_f < self.best_f:
            self.best_f = float(self.inner.best_f)
            self.best_x = self.inner.best_x.copy()
            self.evals_at_best = self.evals_done + self.inner.evals_at_best
        if self.final_stop is not None:
            return
        stop = self.inner.stop()
        if not stop:
            return
        self._end_run(stop)
        if any(k in stop for k in _GLOBAL):
            self.final_stop = dict(stop)
            if "maxfevals" in stop:  # the run had the budget left; report the threshold the user set
                self.final_stop["maxfevals"] = float(self.tolerances_given.maxfevals)
        elif self._restarts_exhausted():
            self.final_stop = dict(stop, maxrestarts=self.max_restarts)
        else:
            self._start_run()

    def stop(self) -> dict:
        """``{}`` while restarts remain; else the last run's criteria (see module docstring)."""
        if self.final_stop is not None:
            return dict(self.final_stop)
        return {k: v for k, v in self.inner.stop().items() if k in _GLOBAL}

    @property
    def result(self) -> RestartResult:
        """Best over all runs, totals, current mean/sigma and the restart history."""
        r = self.inner.result
        return RestartResult(
            x=None if self.best_x is None else self.best_x.copy(),
            f=self.best_f,
            nfev=self.countevals,
            nit=self.countiter,
            mean=r.mean,
            sigma=r.sigma,
            stop=self.stop(),
            restart_history=self.restart_history,
        )

    # ----- checkpoint state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Flat dict: header (format 2), ``init.*`` (with ``init.method``, ``init.max_restarts``,
        ``init.incpopsize``), ``rng``, ``restarts.*`` (``self.progress``) and the current run's
        state dict under ``inner.`` (:mod:`esopt.statedict`)."""
        d = sd.header(self.name)
        d["init.method"] = self.method
        d.update(sd.init_entries(self.x0, self.sigma0, self.popsize0, self.bounds, self.tolerances_given, self.options))
        d["init.max_restarts"] = self.max_restarts
        d["init.incpopsize"] = self.incpopsize
        d["rng"] = sd.rng_entry(self._rng)
        d.update(sd.flatten(self.progress, "restarts."))
        d.update(sd.nest(self.inner.state_dict(), "inner."))
        return d

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> IPOP:
        """Rebuild from :meth:`state_dict` output (format 2, or 1 of esopt 0.1.0); continues
        bit-for-bit.

        Raises ``ValueError`` for another class, an unreadable format version or a missing key,
        ``TypeError`` if ``d`` is not a dict.
        """
        version = sd.check_header(d, cls.name, cls.__name__)
        try:
            method_cls, _ = _resolve_method(str(d["init.method"]))
            if version == 1:  # the inner class's options that reproduce esopt 0.1.0 runs
                d = {**{f"init.options.{k}": v for k, v in method_cls._V1_OPTIONS.items()}, **d}
            init = sd.read_init(d)
            obj = cls(
                str(d["init.method"]),
                init["x0"],
                init["sigma0"],
                popsize=init["popsize"],
                seed=None,
                bounds=init["bounds"],
                tolerances=init["tolerances"],
                max_restarts=int(d["init.max_restarts"]),
                incpopsize=float(d["init.incpopsize"]),
                **init["options"],
            )
            obj._rng = sd.load_rng(d)
            obj.progress = sd.unflatten(obj.progress, "restarts.", d)
            obj.inner = obj._cls.from_state_dict(sd.unnest(d, "inner."))
        except KeyError as e:
            raise ValueError(f"state dict for {cls.__name__} is missing key {e.args[0]!r}") from None
        return obj


class BIPOP(IPOP):
    """BIPOP restarts (Hansen 2009): interlaced large (IPOP) and small-population runs.

    Same parameters as :class:`IPOP`; ``max_restarts`` counts large-regime restarts only.
    See the module docstring for the regimes and the budget split.
    """

    name: ClassVar[str] = "bipop"
    _progress_class: ClassVar[type] = BIPOPProgress

    budget_small = progress_field()  # evaluations of small-regime runs (and of the first run)
    budget_large = progress_field()

    def _account(self, rec: dict) -> None:
        if rec["regime"] == "large":
            self.budget_large += rec["evals"]
        else:
            self.budget_small += rec["evals"]

    def _n_large(self) -> int:
        """Runs of the large regime so far, the first run included."""
        return sum(1 for h in self.history if h["regime"] in ("first", "large"))

    def _restarts_exhausted(self) -> bool:
        return self._n_large() > self.max_restarts

    def _next_run(self) -> tuple[str, int, float, float | None]:
        k = self._n_large()
        if self.budget_small < max(1, self.budget_large):
            u1 = self._rng.uniform()
            u2 = self._rng.uniform()
            sigma0 = self.sigma0 * 0.01**u1  # 10^(-2 U1)
            ratio = self.incpopsize ** (k - 1)  # popsize_l / popsize_0
            popsize = max(2, int(self.popsize0 * ratio ** (u2**2)))
            default_maxiter = self.tolerances_given.resolve(self.n, popsize).maxiter
            maxiter = min(default_maxiter, 0.5 * self.budget_large / popsize)
            return "small", popsize, sigma0, maxiter
        return "large", int(round(self.popsize0 * self.incpopsize**k)), self.sigma0, None
