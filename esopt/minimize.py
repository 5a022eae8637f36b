"""``minimize``: run any esopt strategy on a Python function until a termination criterion fires."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .registry import build

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


def _evaluate(fun: Callable, X: np.ndarray, vectorized: bool, args: tuple = ()) -> np.ndarray:
    if vectorized:
        f = np.asarray(fun(X.copy(), *args), dtype=float)
        if f.shape != (X.shape[0],):
            raise ValueError(
                f"with vectorized=True, fun must map a ({X.shape[0]}, n) array to shape ({X.shape[0]},), "
                f"got shape {f.shape}"
            )
        return f
    f = np.empty(X.shape[0])
    for i, x in enumerate(X):
        v = fun(x.copy(), *args)
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
    args: tuple = (),
    vectorized: bool = False,
    popsize: int | None = None,
    seed: int | np.random.Generator | None = None,
    bounds=None,
    options: dict[str, Any] | None = None,
    callback: Callable | None = None,
    restarts: str | None = None,
    max_restarts: int | None = None,
    surrogate: str | None = None,
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
        ``"canonical"``, ``"catcmawm"`` for integer and categorical coordinates, given by
        ``options={"integers": [...], "categories": {index: K}}``).
    args : tuple
        Extra positional arguments: ``fun(x, *args)`` (or ``fun(X, *args)``), as in
        :func:`scipy.optimize.minimize`.
    vectorized : bool
        See ``fun``.
    popsize, seed, bounds
        Passed to the strategy (see :class:`esopt.CMAES`).
    options : dict, optional
        One flat mapping (checked by :func:`esopt.registry.check_options`): termination
        thresholds by their :class:`esopt.Tolerances` names (``ftarget``, ``maxfevals``,
        ``tolfun``, ...), the strategy's options (``esopt.STRATEGIES[method].options``, e.g.
        ``active`` for CMA-ES) and, with ``restarts``, the wrapper's (``incpopsize``, ...).
    callback : callable, optional
        ``callback(strategy)`` after each ``tell``; returning ``True`` stops the run.
    restarts : {"ipop", "bipop"} or None
        Wrap the strategy in a restart scheme (:mod:`esopt.restarts`).
    max_restarts : int or None
        Restarts after the first run, passed to the restart wrapper unless ``options`` holds it
        (None: the wrapper's default, 9).  Only with ``restarts``: given without it, a
        ``ValueError``.
    surrogate : {"lq"} or None
        Pre-screen each generation with a global linear-quadratic surrogate
        (:class:`esopt.surrogate.LQSurrogate`, lq-CMA-ES, Hansen, GECCO 2019): only the
        candidates the model cannot rank are evaluated, so ``fun`` is called on fewer rows per
        generation (``vectorized`` calls get ``(k, n)`` arrays, ``1 <= k <= popsize``).  For
        expensive objectives; ``nfev`` and ``maxfevals`` count true evaluations.

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
        If ``fun``/``callback`` are not callable, ``args`` is not a tuple, ``options`` is not a dict, or ``fun`` returns
        a non-scalar in non-vectorized mode.
    ValueError
        For unknown ``method``/``restarts``/option names, ``max_restarts`` without ``restarts``,
        a wrong output shape in vectorized
        mode, and every invalid strategy argument (raised by the strategy's constructor).
    """
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {type(fun).__name__}")
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple of extra arguments for fun, got {type(args).__name__}; e.g. args=(a,)")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if max_restarts is not None and restarts is None:
        raise ValueError(
            f"max_restarts={max_restarts!r} needs a restart scheme: pass restarts='ipop' or 'bipop' "
            "(esopt.registry.RESTARTS), or leave max_restarts out"
        )
    # any Mapping (a MappingProxyType too) is copied; anything else goes to build, which refuses it
    opts = dict(options) if isinstance(options, Mapping) else ({} if options is None else options)
    if max_restarts is not None and isinstance(opts, dict):  # also without options (it was dropped then)
        opts.setdefault("max_restarts", max_restarts)
    es = build(
        method,
        x0,
        sigma0,
        restarts=restarts,
        popsize=popsize,
        seed=seed,
        bounds=bounds,
        options=opts,
        surrogate=surrogate,
    )
    stop: dict = {}
    while True:
        stop = es.stop()
        if stop:
            break
        X = es.ask()
        es.tell(X, _evaluate(fun, X, vectorized, args))
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
