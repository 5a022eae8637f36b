"""Termination criteria as data, with pycma's names and defaults.

Each criterion is one small function of a :class:`SearchView` (what a strategy exposes about its
current state) and the resolved :class:`Tolerances`; :func:`check` returns a ``dict`` mapping the
names of the criteria that fired to their threshold, e.g. ``{'tolfun': 1e-11}``, and an empty dict
while the search should go on.  Semantics follow pycma 4.5 ``_CMAStopDict._update``
(``cma/evolution_strategy.py``); Hansen's tutorial (arXiv 1604.00772, appendix B.3) describes
the same criteria.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from .jsonutil import plain

__all__ = ["Tolerances", "SearchView", "FitnessHistory", "check"]


_FLAGS = ("noeffectaxis", "noeffectcoord")  # the criteria switched on or off, not thresholds


@dataclass(frozen=True)
class Tolerances:
    """Thresholds of the termination criteria (pycma's option names and defaults).

    ``None`` means "pycma's default for this dimension ``n`` and ``popsize``"; call
    :meth:`resolve` to get concrete numbers.  Function-value tolerances are in units of the
    objective; ``tolx`` in units of ``x`` (internal, unbounded coordinates).

    Raises
    ------
    ValueError
        From :meth:`resolve` if a threshold is NaN or negative.
    """

    ftarget: float = -math.inf  # stop when the best f <= ftarget
    maxfevals: float = math.inf  # stop when evaluations >= maxfevals
    maxiter: float | None = None  # default 100 + 150 (n+3)^2 // sqrt(popsize) iterations
    tolfun: float = 1e-11  # range of this generation's f and of recent best f below it
    tolfunhist: float = 1e-12  # range of recent generations' best f below it
    tolx: float = 1e-11  # sigma*pc and sigma*sqrt(diag C) all below it
    tolstagnation: float | None = None  # default int(100 + 100 n^1.5 / popsize) iterations
    tolupsigma: float = 1e20  # sigma/max(sqrt(eig C)) > tolupsigma * sigma0 ("creeping")
    tolconditioncov: float = 1e14  # condition number of C above it
    noeffectaxis: bool = True  # adding 0.1 sigma along a principal axis leaves the mean unchanged
    noeffectcoord: bool = True  # adding 0.2 sigma*sqrt(C_ii) leaves a coordinate unchanged
    tolflatfitness: float = 1  # iterations tolerated with flat fitness

    def resolve(self, n: int, popsize: int) -> Tolerances:
        """Return a copy with every ``None`` replaced by pycma's default for ``n``, ``popsize``.

        Raises ``TypeError`` for a threshold that is not a number (a string or a bool included)
        or a flag (``noeffectaxis``, ``noeffectcoord``) that is not a bool, ``ValueError`` for a
        NaN or negative threshold.
        """
        values = dataclasses.asdict(self)
        if values["maxiter"] is None:
            values["maxiter"] = float(100 + 150 * (n + 3) ** 2 // popsize**0.5)
        if values["tolstagnation"] is None:
            values["tolstagnation"] = float(int(100 + 100 * n**1.5 / popsize))
        for k, v in values.items():
            if k in _FLAGS:
                if not isinstance(v, (bool, np.bool_)):
                    raise TypeError(f"tolerances.{k} must be True or False, got {plain(v)!r}")
                values[k] = bool(v)
                continue
            if isinstance(v, (bool, np.bool_, str, bytes)):  # float("1e-3") and float(True) would pass
                raise TypeError(f"tolerances.{k} must be a number, got {plain(v)!r}")
            try:
                fv = float(v)
            except (TypeError, ValueError) as e:
                raise TypeError(f"tolerances.{k} must be a number, got {plain(v)!r}") from e
            if math.isnan(fv) or (k != "ftarget" and fv < 0):
                raise ValueError(f"tolerances.{k} must be a non-negative number, got {plain(v)!r}")
            values[k] = fv
        return Tolerances(**values)

    @classmethod
    def coerce(cls, tolerances: Tolerances | dict | None) -> Tolerances:
        """``None`` -> defaults, a dict -> :meth:`from_dict`, a ``Tolerances`` -> itself.

        Raises ``TypeError`` for anything else and ``ValueError`` for unknown names.
        """
        if tolerances is None:
            return cls()
        if isinstance(tolerances, dict):
            return cls.from_dict(tolerances)
        if not isinstance(tolerances, Tolerances):
            raise TypeError(f"tolerances must be a Tolerances or a dict, got {type(tolerances).__name__}")
        return tolerances

    @classmethod
    def from_dict(cls, d: dict) -> Tolerances:
        """Build from a dict of criterion names; unknown names raise ``ValueError`` listing the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown termination option(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class FitnessHistory:
    """Recent fitness values kept for the function-value criteria (pycma's ``fit.hist``,
    ``fit.histbest``, ``fit.histmedian``), newest first.

    ``hist`` holds the best f of the last ``10 + 30 n / popsize`` iterations; ``histbest`` and
    ``histmedian`` hold every 5th iteration's best and median f (at most 20000 entries).
    ``flat_iterations`` counts consecutive iterations whose best equals the 75%-quantile value.
    """

    hist: np.ndarray = field(default_factory=lambda: np.empty(0))
    histbest: np.ndarray = field(default_factory=lambda: np.empty(0))
    histmedian: np.ndarray = field(default_factory=lambda: np.empty(0))
    flat_iterations: int = 0

    def update(self, f_sorted: np.ndarray, countiter: int, n: int, popsize: int) -> None:
        """Record one generation; ``f_sorted`` is its ``(popsize,)`` f values in ascending order
        (non-finite values already ranked last)."""
        fbest = float(f_sorted[0])
        k = len(f_sorted) // 2
        median = float(f_sorted[k] if len(f_sorted) % 2 else (f_sorted[k - 1] + f_sorted[k]) / 2)
        maxlen = int(10 + 30 * n / popsize)
        self.hist = np.concatenate(([fbest], self.hist))[:maxlen]  # pycma: at most int(10 + 30 n / popsize)
        if countiter % 5 == 0:
            self.histbest = np.concatenate(([fbest], self.histbest))[:20000]
            self.histmedian = np.concatenate(([median], self.histmedian))[:20000]
        if f_sorted[0] < f_sorted[int(0.75 * len(f_sorted))]:
            self.flat_iterations = 0
        else:
            self.flat_iterations += 1


@dataclass
class SearchView:
    """What a strategy exposes to the termination criteria; arrays are in internal coordinates.

    Attributes
    ----------
    n, popsize, countiter, countevals : int
    sigma, sigma0 : float
        Current and initial step size.
    mean : ndarray (n,)
    stds : ndarray (n,)
        Coordinate-wise standard deviations of the sampling distribution, ``sigma*sqrt(diag C)``.
    pc : ndarray (n,) or None
        Evolution path for C (``None`` if the strategy has none: criterion uses ``stds`` only).
    eigvals : ndarray (n,) or None
        Eigenvalues of C (``D**2``), ascending; ``None`` when the strategy has no full C.
    B : ndarray (n, n) or None
        Eigenvectors (columns) of C; ``None`` when not available.
    f_sorted : ndarray (popsize,)
        Last generation's f values, ascending (non-finite last).
    best_f : float
        Best f seen.
    evals_at_best : int
        ``countevals`` when ``best_f`` was found.
    history : FitnessHistory
    """

    n: int
    popsize: int
    countiter: int
    countevals: int
    sigma: float
    sigma0: float
    mean: np.ndarray
    stds: np.ndarray
    pc: np.ndarray | None
    eigvals: np.ndarray | None
    B: np.ndarray | None
    f_sorted: np.ndarray
    best_f: float
    evals_at_best: int
    history: FitnessHistory


def _ftarget(v: SearchView, t: Tolerances) -> bool:
    return v.best_f <= t.ftarget


def _maxfevals(v: SearchView, t: Tolerances) -> bool:
    return v.countevals >= t.maxfevals


def _maxiter(v: SearchView, t: Tolerances) -> bool:
    return v.countiter >= t.maxiter


def _tolx(v: SearchView, t: Tolerances) -> bool:
    small = bool(np.all(v.stds < t.tolx))
    if v.pc is not None:
        small = small and bool(np.all(v.sigma * np.abs(v.pc) < t.tolx))
    return small


def _fin_range(a: np.ndarray) -> float:
    """``max(a) - min(a)``; ``inf`` when ``a`` is empty or holds a non-finite value (as values
    that rank worst are stored), so that no NaN (``inf - inf``) and no RuntimeWarning arise."""
    return float(np.max(a) - np.min(a)) if a.size and np.isfinite(a).all() else math.inf


def _tolfun(v: SearchView, t: Tolerances) -> bool:
    return _fin_range(v.f_sorted) < t.tolfun and _fin_range(v.history.hist) < t.tolfun


def _tolfunhist(v: SearchView, t: Tolerances) -> bool:
    return v.history.hist.size > 9 and _fin_range(v.history.hist) < t.tolfunhist


def _tolstagnation(v: SearchView, t: Tolerances) -> bool:
    if not t.tolstagnation:
        return False
    h = v.history
    length = max(t.tolstagnation / 5.0 / 2, h.histbest.size / 10)
    if length > v.countiter:
        return False
    k = int(length)
    return bool(
        v.countiter > v.n * (5 + 100 / v.popsize)
        and (v.countevals - v.evals_at_best) / v.popsize > t.tolstagnation / 2
        and h.histbest.size > 100
        and 2 * k < h.histbest.size
        and np.median(h.histmedian[:k]) >= np.median(h.histmedian[k : 2 * k])
        and np.median(h.histbest[:k]) >= np.median(h.histbest[k : 2 * k])
    )


def _tolupsigma(v: SearchView, t: Tolerances) -> bool:
    maxd = math.sqrt(float(np.max(v.eigvals))) if v.eigvals is not None else float(np.max(v.stds) / v.sigma)
    return bool(t.tolupsigma) and v.sigma / maxd > v.sigma0 * t.tolupsigma


def _tolconditioncov(v: SearchView, t: Tolerances) -> bool:
    if not t.tolconditioncov:
        return False
    if v.eigvals is not None:
        return float(v.eigvals[-1]) > t.tolconditioncov * float(v.eigvals[0])
    var = (v.stds / v.sigma) ** 2
    return float(np.max(var)) > t.tolconditioncov * float(np.min(var))


def _noeffectcoord(v: SearchView, t: Tolerances) -> bool:
    return bool(t.noeffectcoord) and bool(np.any(v.mean == v.mean + 0.2 * v.stds))


def _noeffectaxis(v: SearchView, t: Tolerances) -> bool:
    if not t.noeffectaxis or v.B is None or v.eigvals is None:
        return False
    i = v.countiter % v.n
    step = 0.1 * v.sigma * math.sqrt(max(float(v.eigvals[i]), 0.0)) * v.B[:, i]
    return bool(np.all(v.mean == v.mean + step))


def _tolflatfitness(v: SearchView, t: Tolerances) -> bool:
    return v.history.flat_iterations > t.tolflatfitness


_CRITERIA = {
    "ftarget": _ftarget,
    "maxfevals": _maxfevals,
    "maxiter": _maxiter,
    "tolx": _tolx,
    "tolfun": _tolfun,
    "tolfunhist": _tolfunhist,
    "tolstagnation": _tolstagnation,
    "tolupsigma": _tolupsigma,
    "tolconditioncov": _tolconditioncov,
    "noeffectcoord": _noeffectcoord,
    "noeffectaxis": _noeffectaxis,
    "tolflatfitness": _tolflatfitness,
}


def check(view: SearchView, tolerances: Tolerances) -> dict[str, float | bool]:
    """Evaluate every criterion; return ``{name: threshold}`` for those that fired.

    ``tolerances`` must be resolved (no ``None``).  Nothing fires before the first ``tell``
    except ``maxfevals``/``maxiter`` set to 0.
    """
    fired: dict[str, float | bool] = {}
    if view.countiter == 0:
        for name in ("maxfevals", "maxiter"):
            if _CRITERIA[name](view, tolerances):
                fired[name] = getattr(tolerances, name)
        return fired
    for name, crit in _CRITERIA.items():
        if crit(view, tolerances):
            fired[name] = getattr(tolerances, name)
    return fired
