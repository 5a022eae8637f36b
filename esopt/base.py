"""The Strategy contract shared by every optimizer in esopt.

``Strategy`` is the abstract ask/tell interface (minimization)::

    X = es.ask()            # (popsize, n) candidates, inside the bounds if any
    es.tell(X, f)           # f: (popsize,) objective values of the rows of X
    es.stop()               # {} while running, else {'tolfun': 1e-11, ...}
    es.result               # best x/f seen, nfev, nit, current mean and sigma
    d = es.state_dict()     # plain arrays/scalars, RNG included
    es2 = type(es).from_state_dict(d)   # continues bit-for-bit

``EvolutionStrategy`` implements everything that does not depend on the algorithm (input
checks before any state change, bounds, ranking of NaN/inf as worst, best-so-far, fitness
history, termination, checkpoint state).  A concrete algorithm implements four hooks:

* ``_sample() -> (popsize, n)``: draw internal (unbounded) candidates from ``self._rng``;
* ``_update(Y, f)``: update the evolving state from internal candidates ``Y`` and values ``f``
  (non-finite values already replaced by ``+inf``; only the ranking may be used);
* ``_state_attrs``: names of the attributes that hold evolving state (arrays or scalars);
* ``_search_view_parts() -> dict``: ``stds``, ``pc``, ``eigvals``, ``B`` for :mod:`termination`;

and, if its constructor takes options beyond ``x0, sigma0, popsize, seed, bounds, tolerances``,
``_init_options() -> dict`` returning them (plain scalars/strings), so that
``from_state_dict`` can rebuild the frozen parameters.
"""

from __future__ import annotations

import abc
import json
import warnings
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from .bounds import BoxBounds
from .termination import FitnessHistory, SearchView, Tolerances, check

__all__ = ["Strategy", "EvolutionStrategy", "Result", "default_popsize", "make_rng", "rank_order"]

STATE_FORMAT_VERSION = 1


def default_popsize(n: int) -> int:
    """``4 + floor(3 ln n)`` (Hansen's tutorial, arXiv 1604.00772, Table 1)."""
    return 4 + int(3 * np.log(n))


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int seed, an existing Generator (used as is) or None.

    Raises ``TypeError`` for anything else (e.g. a float or a legacy ``RandomState``).
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer)):
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got {type(seed).__name__}")


def rank_order(f: np.ndarray) -> np.ndarray:
    """Indices that sort ``f`` ascending, ties kept in sampling order, NaN/inf last."""
    key = np.where(np.isfinite(f), f, np.inf)
    return np.argsort(key, kind="stable")


@dataclass(frozen=True)
class Result:
    """Snapshot of a strategy's outcome.

    Attributes
    ----------
    x : ndarray (n,) or None
        Best solution seen (external coordinates, inside the bounds); None before the first tell.
    f : float
        Its objective value (``inf`` before the first finite value).
    nfev, nit : int
        Evaluations and iterations (tells) so far.
    mean : ndarray (n,)
        Current distribution mean, mapped into the bounds.
    sigma : float
        Current step size.
    stop : dict
        Criteria fired so far (see :func:`esopt.termination.check`).
    """

    x: np.ndarray | None
    f: float
    nfev: int
    nit: int
    mean: np.ndarray
    sigma: float
    stop: dict


class Strategy(abc.ABC):
    """Abstract ask/tell minimizer; see the module docstring for the contract."""

    name: ClassVar[str] = "strategy"  # registry name, stored in checkpoints
    n: int
    popsize: int

    @abc.abstractmethod
    def ask(self) -> np.ndarray:
        """Return a new ``(popsize, n)`` float array of candidates."""

    @abc.abstractmethod
    def tell(self, X: np.ndarray, f) -> None:
        """Update from candidates ``X`` (popsize, n) and their objective values ``f`` (popsize,)."""

    @abc.abstractmethod
    def stop(self) -> dict:
        """Return the termination criteria that fired, ``{}`` while running."""

    @property
    @abc.abstractmethod
    def result(self) -> Result:
        """Best solution seen and current distribution (a :class:`Result`)."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Flat dict of plain numpy arrays, Python scalars, strings and None; includes the RNG."""

    @classmethod
    @abc.abstractmethod
    def from_state_dict(cls, d: dict[str, Any]) -> Strategy:
        """Rebuild a strategy from :meth:`state_dict` output; it continues bit-for-bit."""


def _check_x0_sigma0(x0, sigma0) -> tuple[np.ndarray, float]:
    try:
        x = np.array(x0, dtype=float, copy=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"x0 must be an array of floats, got {x0!r}") from e
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x0 must be a non-empty 1-D array of shape (n,), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x0 must be finite, got non-finite entries at {np.flatnonzero(~np.isfinite(x)).tolist()}")
    if isinstance(sigma0, bool) or not isinstance(sigma0, (int, float, np.integer, np.floating)):
        raise TypeError(f"sigma0 must be a positive float, got {sigma0!r}")
    s = float(sigma0)
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"sigma0 must be a positive finite float, got {sigma0!r}")
    return x, s


def _check_popsize(popsize, n: int, minimum: int = 2) -> int:
    if popsize is None:
        return default_popsize(n)
    if isinstance(popsize, bool) or not isinstance(popsize, (int, np.integer)):
        raise TypeError(f"popsize must be an int, got {popsize!r}")
    if popsize < minimum:
        raise ValueError(f"popsize must be >= {minimum}, got {popsize}")
    return int(popsize)


class EvolutionStrategy(Strategy):
    """Common machinery of single-population strategies (see module docstring).

    Parameters
    ----------
    x0 : array_like (n,)
        Initial mean, inside ``bounds`` if given.
    sigma0 : float > 0
        Initial step size (same units as ``x``).
    popsize : int, optional
        Offspring per generation (lambda); default ``4 + floor(3 ln n)``.
    seed : int, numpy.random.Generator or None
        Source of randomness; a Generator is used as is (not copied).
    bounds : (lower, upper), optional
        Scalars or ``(n,)`` arrays; handled by :class:`esopt.bounds.BoxBounds` (reflection).
    tolerances : Tolerances or dict, optional
        Termination thresholds (pycma's names); defaults as pycma.

    Raises
    ------
    ValueError, TypeError
        For non-finite or mis-shaped ``x0``, ``sigma0 <= 0``, bad ``popsize``, ``lower >= upper``,
        ``x0`` outside the bounds, or unknown tolerance names.
    """

    _state_attrs: ClassVar[tuple[str, ...]] = ()
    _min_popsize: ClassVar[int] = 2

    def __init__(self, x0, sigma0, *, popsize=None, seed=None, bounds=None, tolerances=None):
        x, s = _check_x0_sigma0(x0, sigma0)
        n = x.size
        self.n = n
        self.popsize = _check_popsize(popsize, n, self._min_popsize)
        self.bounds: BoxBounds | None = None
        if bounds is not None:
            if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
                raise ValueError("bounds must be a pair (lower, upper) of scalars or (n,) arrays")
            self.bounds = BoxBounds(bounds[0], bounds[1], n)
            if not self.bounds.contains(x):
                out = np.flatnonzero((x < self.bounds.lower) | (x > self.bounds.upper)).tolist()
                raise ValueError(f"x0 lies outside the bounds in coordinates {out}; move x0 inside the box")
        tolerances = Tolerances.coerce(tolerances)
        self.tolerances_given = tolerances
        # pycma evaluates its default option strings (maxiter, tolstagnation) with the unrounded
        # default popsize 4 + 3 ln n, or with the popsize given
        self.tolerances = tolerances.resolve(n, self.popsize if popsize is not None else 4 + 3 * np.log(n))
        self.x0 = x
        self.sigma0 = s
        self._rng = make_rng(seed)
        # bookkeeping common to all strategies
        self.countiter = 0
        self.countevals = 0
        self.best_x: np.ndarray | None = None
        self.best_f = np.inf
        self.evals_at_best = 0
        self.history = FitnessHistory()
        self._f_sorted = np.empty(0)
        self._asked_Y: np.ndarray | None = None
        self._asked_X: np.ndarray | None = None
        self._warned_nonfinite = False

    # ----- hooks -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _sample(self) -> np.ndarray:
        """Draw ``(popsize, n)`` internal candidates."""

    @abc.abstractmethod
    def _update(self, Y: np.ndarray, f: np.ndarray) -> None:
        """Update state from internal candidates ``Y`` (popsize, n) and ranked values ``f``."""

    @abc.abstractmethod
    def _search_view_parts(self) -> dict[str, Any]:
        """Return ``stds`` (n,), ``pc`` (n,)|None, ``eigvals`` (n,)|None, ``B`` (n,n)|None."""

    def _init_options(self) -> dict[str, Any]:
        return {}

    # mean and sigma are evolving state of every subclass
    mean: np.ndarray
    sigma: float

    # ----- ask / tell --------------------------------------------------------------------------
    def ask(self) -> np.ndarray:
        """Sample a new population.

        Returns
        -------
        ndarray, shape (popsize, n)
            Candidates (a fresh array), inside the bounds if any.  Calling ``ask`` again before
            ``tell`` discards the previous population and draws a new one.
        """
        Y = self._sample()
        # without bounds X is Y itself (never modified); the caller gets a copy
        X = self.bounds.transform(Y) if self.bounds is not None else Y
        self._asked_Y, self._asked_X = Y, X
        return X.copy()

    def tell(self, X, f) -> None:
        """Update the strategy with the evaluated population.

        Parameters
        ----------
        X : array_like, shape (popsize, n)
            The array returned by :meth:`ask`, or rows replaced by injected candidates (inside the
            bounds).  Rows equal to the asked ones use the internal pre-image kept at ask time.
        f : array_like, shape (popsize,)
            Objective values (minimized).  NaN and +-inf rank worst (warned once).

        Raises
        ------
        ValueError
            If no ``ask`` is pending (including a second ``tell`` for one ``ask``), on wrong
            shapes, non-finite ``X``, or ``X`` outside the bounds.  Nothing changes then.
        """
        if self._asked_Y is None:
            raise ValueError("tell() without a pending ask(): call ask() first (each ask takes one tell)")
        try:
            X = np.asarray(X)
            if X.dtype not in (np.float64, np.float32):  # float32 populations stay float32
                X = X.astype(float)
        except (TypeError, ValueError) as e:
            raise TypeError("X must be a (popsize, n) float array") from e
        try:
            f = np.asarray(f, dtype=float)
        except (TypeError, ValueError) as e:
            raise TypeError("f must be a (popsize,) array of floats") from e
        if X.shape != (self.popsize, self.n):
            raise ValueError(f"X must have shape (popsize, n) = ({self.popsize}, {self.n}), got {X.shape}")
        if f.shape != (self.popsize,):
            raise ValueError(f"f must have shape (popsize,) = ({self.popsize},), got {f.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or inf; pass the candidates returned by ask()")
        # fast path: X is exactly the asked population (the common case)
        all_same = np.array_equal(X, self._asked_X)
        if not all_same:
            same = (X == self._asked_X).all(axis=1)
            if self.bounds is not None:
                inside = self.bounds.contains(X[~same])
                if not inside.all():
                    raise ValueError("injected rows of X lie outside the bounds; clip them into the box")
        # ---- no state has changed up to here ----
        Y = self._asked_Y if all_same else np.where(same[:, None], self._asked_Y, self._inverse(X))
        finite = np.isfinite(f)
        all_finite = bool(finite.all())
        if not all_finite and not self._warned_nonfinite:
            warnings.warn(
                f"{type(self).__name__}: {int((~finite).sum())} non-finite objective value(s) ranked worst "
                "(warned once)",
                RuntimeWarning,
                stacklevel=2,
            )
            self._warned_nonfinite = True
        f_rank = f.copy() if all_finite else np.where(finite, f, np.inf)
        order = f_rank.argsort(kind="stable")  # = rank_order(f): ties in sampling order, NaN/inf last
        self.countiter += 1
        self.countevals += self.popsize
        i = int(order[0])
        if finite[i] and f_rank[i] < self.best_f:
            self.best_f = float(f_rank[i])
            self.best_x = np.array(X[i], dtype=float)
            self.evals_at_best = self.countevals
        self._f_sorted = f_rank[order]
        self.history.update(self._f_sorted, self.countiter, self.n, self.popsize)
        self._update(Y, f_rank)
        self._asked_Y = self._asked_X = None

    def _inverse(self, X: np.ndarray) -> np.ndarray:
        return self.bounds.inverse(X) if self.bounds is not None else X.copy()

    # ----- termination and result ------------------------------------------------------------
    def search_view(self) -> SearchView:
        """The :class:`~esopt.termination.SearchView` of the current state."""
        parts = self._search_view_parts()
        return SearchView(
            n=self.n,
            popsize=self.popsize,
            countiter=self.countiter,
            countevals=self.countevals,
            sigma=float(self.sigma),
            sigma0=self.sigma0,
            mean=self.mean,
            stds=parts["stds"],
            pc=parts.get("pc"),
            eigvals=parts.get("eigvals"),
            B=parts.get("B"),
            f_sorted=self._f_sorted,
            best_f=self.best_f,
            evals_at_best=self.evals_at_best,
            history=self.history,
        )

    def stop(self) -> dict:
        """Termination criteria that fired, ``{name: threshold}``; ``{}`` while running."""
        return check(self.search_view(), self.tolerances)

    @property
    def result(self) -> Result:
        """Best solution seen (external coordinates), counts, current mean (mapped) and sigma."""
        mean = self.bounds.transform(self.mean) if self.bounds is not None else np.array(self.mean, float)
        return Result(
            x=None if self.best_x is None else self.best_x.copy(),
            f=self.best_f,
            nfev=self.countevals,
            nit=self.countiter,
            mean=mean,
            sigma=float(self.sigma),
            stop=self.stop(),
        )

    # ----- checkpoint state --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Flat dict: ``class``, ``version``, ``init.*`` (constructor arguments), ``rng`` (JSON of the
        bit generator state), ``base.*`` (counters, best, histories, pending ask) and ``state.*``
        (the algorithm's evolving state).  Arrays are copies."""
        d: dict[str, Any] = {"class": self.name, "version": STATE_FORMAT_VERSION}
        d["init.x0"] = self.x0.copy()
        d["init.sigma0"] = self.sigma0
        d["init.popsize"] = self.popsize
        if self.bounds is not None:
            d["init.bounds.lower"] = self.bounds.lower.copy()
            d["init.bounds.upper"] = self.bounds.upper.copy()
        for k, v in asdict(self.tolerances_given).items():
            d[f"init.tolerances.{k}"] = v
        for k, v in self._init_options().items():
            d[f"init.options.{k}"] = v
        d["rng"] = json.dumps(self._rng.bit_generator.state)
        d["base.countiter"] = self.countiter
        d["base.countevals"] = self.countevals
        d["base.best_f"] = self.best_f
        d["base.evals_at_best"] = self.evals_at_best
        if self.best_x is not None:
            d["base.best_x"] = self.best_x.copy()
        d["base.f_sorted"] = self._f_sorted.copy()
        d["base.hist"] = self.history.hist.copy()
        d["base.histbest"] = self.history.histbest.copy()
        d["base.histmedian"] = self.history.histmedian.copy()
        d["base.flat_iterations"] = self.history.flat_iterations
        d["base.warned_nonfinite"] = self._warned_nonfinite
        if self._asked_Y is not None:
            d["base.asked_Y"] = self._asked_Y.copy()
            d["base.asked_X"] = self._asked_X.copy()
        for name in self._state_attrs:
            v = getattr(self, name)
            d[f"state.{name}"] = v.copy() if isinstance(v, np.ndarray) else _plain(v)
        return d

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> EvolutionStrategy:
        """Rebuild from :meth:`state_dict` output.

        Raises
        ------
        ValueError
            If ``d`` is of another class or format version, or a key is missing.
        """
        _check_header(d, cls)
        try:
            tol = Tolerances(
                **{k[len("init.tolerances.") :]: v for k, v in d.items() if k.startswith("init.tolerances.")}
            )
            bounds = None
            if "init.bounds.lower" in d:
                bounds = (d["init.bounds.lower"], d["init.bounds.upper"])
            options = {k[len("init.options.") :]: v for k, v in d.items() if k.startswith("init.options.")}
            obj = cls(
                np.asarray(d["init.x0"]),
                float(d["init.sigma0"]),
                popsize=int(d["init.popsize"]),
                seed=None,
                bounds=bounds,
                tolerances=tol,
                **options,
            )
            obj._rng.bit_generator.state = json.loads(str(d["rng"]))
            obj.countiter = int(d["base.countiter"])
            obj.countevals = int(d["base.countevals"])
            obj.best_f = float(d["base.best_f"])
            obj.evals_at_best = int(d["base.evals_at_best"])
            obj.best_x = np.array(d["base.best_x"], float) if "base.best_x" in d else None
            obj._f_sorted = np.array(d["base.f_sorted"], float)
            obj.history = FitnessHistory(
                hist=np.array(d["base.hist"], float),
                histbest=np.array(d["base.histbest"], float),
                histmedian=np.array(d["base.histmedian"], float),
                flat_iterations=int(d["base.flat_iterations"]),
            )
            obj._warned_nonfinite = bool(d["base.warned_nonfinite"])
            if "base.asked_Y" in d:
                obj._asked_Y = np.array(d["base.asked_Y"])
                obj._asked_X = np.array(d["base.asked_X"])
            for name in cls._state_attrs:
                v = d[f"state.{name}"]
                cur = getattr(obj, name, None)
                if isinstance(cur, np.ndarray) or isinstance(v, np.ndarray):
                    setattr(obj, name, np.array(v, dtype=cur.dtype if isinstance(cur, np.ndarray) else None))
                else:
                    setattr(obj, name, type(cur)(v) if cur is not None and v is not None else v)
        except KeyError as e:
            raise ValueError(f"state dict for {cls.__name__} is missing key {e.args[0]!r}") from None
        obj._after_load()
        return obj

    def _after_load(self) -> None:
        """Hook: recompute caches derived from the loaded state (default: nothing)."""


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def _check_header(d: dict[str, Any], cls: type) -> None:
    if not isinstance(d, dict):
        raise TypeError(f"state dict must be a dict, got {type(d).__name__}")
    if "class" not in d or "version" not in d:
        raise ValueError("not an esopt state dict: keys 'class' and 'version' are missing")
    if d["class"] != cls.name:
        raise ValueError(f"state dict is of class {d['class']!r}, cannot load it as {cls.__name__} ({cls.name!r})")
    if int(d["version"]) != STATE_FORMAT_VERSION:
        raise ValueError(
            f"state dict format version {d['version']} is not supported (this esopt reads version "
            f"{STATE_FORMAT_VERSION})"
        )
