"""``minimize``: run any esopt strategy on a Python function until a termination criterion fires."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from .registry import STRATEGIES, make_strategy, strategy_class
from .termination import Tolerances

__all__ = ["minimize", "SUCCESS_CRITERIA", "BUDGET_CRITERIA", "is_success"]

#: Criteria that mean convergence (the target was reached, or f or x stopped changing).
SUCCESS_CRITERIA = frozenset({"ftarget", "tolfun", "tolfunhist", "tolx"})
#: Criteria that mean a budget ran out (``maxrestarts`` comes from the restart wrappers).
BUDGET_CRITERIA = frozenset({"maxfevals", "maxiter", "maxrestarts"})


def is_success(stop: dict) -> bool:
    """``True`` iff ``ftarget`` fired, or ``tolfun``/``tolfunhist``/``tolx`` fired and no budget
    criterion (``maxfevals``, ``maxiter``, ``maxrestarts``) did."""
    if "ftarget" in stop:
        return True
    return bool(SUCCESS_CRITERIA.intersection(stop)) and not BUDGET_CRITERIA.intersection(stop)


_TOLERANCE_NAMES = frozenset(f.name for f in dataclasses.fields(Tolerances))
_COMMON_ARGS = frozenset({"self", "x0", "sigma0", "popsize", "seed", "bounds", "tolerances"})


def _strategy_option_names(method: str) -> frozenset[str]:
    """Keyword options of ``method``'s constructor beyond the common ones (e.g. ``active``)."""
    params = inspect.signature(strategy_class(method).__init__).parameters.values()
    return frozenset(
        p.name for p in params if p.name not in _COMMON_ARGS and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def _split_options(method: str, options: dict[str, Any] | None) -> tuple[dict, dict]:
    if options is None:
        return {}, {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict or None, got {type(options).__name__}")
    strategy_names = _strategy_option_names(method)
    unknown = sorted(k for k in options if k not in _TOLERANCE_NAMES and k not in strategy_names)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for method {method!r}; known: termination "
            f"{sorted(_TOLERANCE_NAMES)} and strategy options {sorted(strategy_names)}"
        )
    tol = {k: v for k, v in options.items() if k in _TOLERANCE_NAMES}
    strat = {k: v for k, v in options.items() if k not in _TOLERANCE_NAMES}
    return tol, strat


def _evaluate(fun: Callable, X: np.ndarray, vectorized: bool) -> np.ndarray:
    if vectorized:
        f = np.asarray(fun(X.copy()), dtype=float)
        if f.shape != (X.shape[0],):
            raise ValueError(
                f"with vectorized=True, fun must map a ({X.shape[0]}, n) array to shape ({X.shape[0]},), "
                f"got shape {f.shape}"
            )
        return f
    f = np.empty(X.shape[0])
    for i, x in enumerate(X):
        v = fun(x.copy())
        try:
            f[i] = float(v)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"fun must return a scalar float for an (n,) array, got {type(v).__name__}; "
                "use vectorized=True for functions of a whole population"
            ) from e
    return f


def minimize(
    fun: Callable,
    x0,
    sigma0: float,
    method: str = "cmaes",
    *,
    vectorized: bool = False,
    popsize: int | None = None,
    seed: int | np.random.Generator | None = None,
    bounds=None,
    options: dict[str, Any] | None = None,
    callback: Callable | None = None,
    restarts: str | None = None,
    max_restarts: int = 9,
):
    """Minimize ``fun`` with an evolution strategy until a termination criterion fires.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float`` for ``x`` of shape ``(n,)``; with ``vectorized=True``,
        ``fun(X) -> (popsize,)`` for ``X`` of shape ``(popsize, n)`` (one call per generation).
        NaN/inf values rank worst.
    x0 : array_like (n,)
        Initial mean.
    sigma0 : float > 0
        Initial step size (units of ``x``).
    method : str
        A name in :data:`esopt.registry.STRATEGIES` (``"cmaes"``, ``"sepcmaes"``, ``"lmmaes"``,
        ``"canonical"``).
    vectorized : bool
        See ``fun``.
    popsize, seed, bounds
        Passed to the strategy (see :class:`esopt.CMAES`).
    options : dict, optional
        Termination thresholds by their :class:`esopt.Tolerances` names (``ftarget``,
        ``maxfevals``, ``tolfun``, ...) and keyword options of the strategy's constructor
        (e.g. ``active`` for CMA-ES).
    callback : callable, optional
        ``callback(strategy)`` after each ``tell``; returning ``True`` stops the run.
    restarts : {"ipop", "bipop"} or None
        Wrap the strategy in a restart scheme (:mod:`esopt.restarts`).
    max_restarts : int
        Passed to the restart wrapper (ignored when ``restarts`` is None).

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x`` (n,) best solution seen (the initial mean if nothing was evaluated), ``fun`` its
        value, ``nfev``, ``nit`` (generations), ``stop`` (dict of fired criteria, or
        ``{"callback": True}``), ``success``, ``message`` and ``strategy`` (the final strategy
        object, e.g. for :func:`esopt.save`).  ``success`` (:func:`is_success`) is True exactly
        when ``stop`` contains ``ftarget``, or contains ``tolfun``, ``tolfunhist`` or ``tolx``
        (the search converged; a local optimum counts) and none of the budget criteria
        ``maxfevals``, ``maxiter``, ``maxrestarts`` (restarts exhausted).  It is False for
        budget stops, for the numerical criteria alone (``tolstagnation``, ``tolupsigma``,
        ``tolconditioncov``, ``noeffectaxis``, ``noeffectcoord``, ``tolflatfitness``) and for a
        callback stop.

    Raises
    ------
    TypeError
        If ``fun``/``callback`` are not callable, ``options`` is not a dict, or ``fun`` returns
        a non-scalar in non-vectorized mode.
    ValueError
        For unknown ``method``/``restarts``/option names, a wrong output shape in vectorized
        mode, and every invalid strategy argument (raised by the strategy's constructor).
    """
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {type(fun).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if method not in STRATEGIES:
        raise ValueError(f"unknown method {method!r}; known: {sorted(STRATEGIES)}")
    tol, strategy_options = _split_options(method, options)
    kwargs: dict[str, Any] = dict(popsize=popsize, seed=seed, bounds=bounds, tolerances=Tolerances.from_dict(tol))
    if restarts is not None:
        kwargs["max_restarts"] = max_restarts
    es = make_strategy(method, x0, sigma0, restarts=restarts, **kwargs, **strategy_options)
    stop: dict = {}
    while True:
        stop = es.stop()
        if stop:
            break
        X = es.ask()
        es.tell(X, _evaluate(fun, X, vectorized))
        if callback is not None:
            ret = callback(es)
            if ret is not None and bool(ret):
                stop = {"callback": True}
                break
    return _make_result(es, stop)


def _make_result(es, stop: dict):
    from scipy.optimize import OptimizeResult  # deferred: scipy.optimize is slow to import

    r = es.result
    success = is_success(stop)
    message = "stopped by " + ", ".join(f"{k}={v!r}" for k, v in stop.items())
    x = r.x if r.x is not None else np.asarray(r.mean, dtype=float).copy()
    return OptimizeResult(
        x=x,
        fun=float(r.f),
        nfev=int(r.nfev),
        nit=int(r.nit),
        success=success,
        message=message,
        stop=dict(stop),
        strategy=es,
    )
