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
history, termination, checkpoint state).  A concrete algorithm keeps its frozen strategy
parameters in a frozen dataclass ``self.params`` and its evolving state in a dataclass
``self.state`` (evosax's ``Params``/``State`` split; the class is the stateful ask/tell wrapper,
as in CyberAgentAILab/cmaes), and implements the hooks:

* ``_sample() -> (popsize, n)``: draw internal (unbounded) candidates from ``self._rng``;
* ``_update(Y, f, order, injected)``: update ``self.state`` from internal candidates ``Y``,
  values ``f`` (non-finite ones replaced by ``+inf``; only the ranking may be used), the rank
  ``order`` (indices sorting ``f``, ties in sampling order) and ``injected`` (None when every row
  is as asked, else a ``(popsize,)`` bool mask of the rows that were not);
* ``_search_view_parts() -> dict``: ``stds``, ``pc``, ``eigvals``, ``B`` for :mod:`termination`;
* ``_init_options() -> dict``: the constructor options beyond ``x0, sigma0, popsize, seed,
  bounds, tolerances`` (plain scalars/strings) from which ``from_state_dict`` rebuilds
  ``self.params``;

and optionally ``_after_load()`` (restore caches and memory layouts) and ``_export_state()``.
Checkpoints (:meth:`EvolutionStrategy.state_dict`) are generic over the two dataclasses
``self.progress`` (bookkeeping) and ``self.state`` (:mod:`esopt.statedict`).
"""

from __future__ import annotations

import abc
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from . import statedict as sd
from .bounds import BoxBounds, as_box_bounds
from .jsonutil import plain
from .numtypes import is_int, is_real, real_array
from .statedict import STATE_FORMAT_VERSION
from .termination import FitnessHistory, SearchView, Tolerances, check

__all__ = [
    "Strategy",
    "EvolutionStrategy",
    "Result",
    "Progress",
    "default_popsize",
    "make_rng",
    "state_field",
    "param_field",
    "progress_field",
    "STATE_FORMAT_VERSION",
]


def default_popsize(n: int) -> int:
    """``4 + floor(3 ln n)`` (Hansen's tutorial, arXiv 1604.00772, Table 1)."""
    return 4 + int(3 * np.log(n))


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int seed, an existing Generator (used as is) or None.

    Raises ``TypeError`` for anything else (e.g. a float, a bool or a legacy ``RandomState``),
    ``ValueError`` for a negative int.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or is_int(seed):
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got {type(seed).__name__}")


@dataclass
class Progress:
    """Bookkeeping common to all single-population strategies (checkpointed as ``base.*``).

    Attributes
    ----------
    countiter, countevals : int
        Tells and evaluations so far.
    best_f : float
        Best finite f seen (``inf`` before the first).
    evals_at_best : int
        ``countevals`` when ``best_f`` was found.
    best_x : ndarray (n,) or None
        Its solution, external coordinates.
    f_sorted : ndarray (popsize,)
        Last generation's f values, ascending (non-finite as ``inf``).
    history : FitnessHistory
        Recent best/median values for the termination criteria.
    warned_nonfinite : bool
        Whether the non-finite-values warning was given.
    asked_Y, asked_X : ndarray (popsize, n) or None
        Internal and external candidates of the pending ask (None when no ask is pending).
    """

    countiter: int = 0
    countevals: int = 0
    best_f: float = math.inf
    evals_at_best: int = 0
    best_x: np.ndarray | None = None
    f_sorted: np.ndarray = field(default_factory=lambda: np.empty(0))
    history: FitnessHistory = field(default_factory=FitnessHistory)
    warned_nonfinite: bool = False
    asked_Y: np.ndarray | None = None
    asked_X: np.ndarray | None = None


class _Field:
    """Attribute of the strategy that is a field of one of its dataclasses (``state``,
    ``params`` or ``progress``): explicit forwarding, declared in the class body."""

    def __init__(self, holder: str, name: str | None = None, readonly: bool = False):
        self.holder, self.field, self.readonly = holder, name, readonly

    def __set_name__(self, owner, name: str) -> None:
        if self.field is None:
            self.field = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return getattr(getattr(obj, self.holder), self.field)

    def __set__(self, obj, value) -> None:
        if self.readonly:
            raise AttributeError(f"{self.field} is a frozen strategy parameter (in .params); build a new strategy")
        setattr(getattr(obj, self.holder), self.field, value)


def state_field(name: str | None = None) -> Any:
    """Class-body declaration: ``mean = state_field()`` forwards ``es.mean`` to ``es.state.mean``
    (reading and assigning)."""
    return _Field("state", name)


def param_field(name: str | None = None) -> Any:
    """Class-body declaration: ``mu = param_field()`` forwards ``es.mu`` to ``es.params.mu``
    (read-only: parameters are frozen)."""
    return _Field("params", name, readonly=True)


def progress_field(name: str | None = None) -> Any:
    """Class-body declaration: ``countiter = progress_field()`` forwards ``es.countiter`` to
    ``es.progress.countiter`` (reading and assigning)."""
    return _Field("progress", name)


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

    def __repr__(self) -> str:
        """One line for a REPL or a log: class, ``n``, ``popsize``, generations (``nit``),
        evaluations (``nfev``), ``sigma``, the best value seen and the criteria that fired."""
        r = self.result
        return (
            f"{type(self).__name__}(n={self.n}, popsize={self.popsize}, nit={r.nit}, nfev={r.nfev}, "
            f"sigma={float(r.sigma):.4g}, f_best={float(r.f):.6g}, stop={dict(r.stop)})"
        )


def _check_x0_sigma0(x0, sigma0) -> tuple[np.ndarray, float]:
    try:
        a = np.asarray(x0)
    except (TypeError, ValueError) as e:  # e.g. a ragged list
        raise TypeError(f"x0 must be an array of floats, got {x0!r}") from e
    if a.dtype.kind not in "iuf":  # strings, complex numbers, bools, objects: never cast silently
        raise TypeError(f"x0 must be an array of real numbers (ints or floats), got dtype {a.dtype}: {x0!r}")
    x = np.array(a, dtype=float, copy=True)
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x0 must be a non-empty 1-D array of shape (n,), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x0 must be finite, got non-finite entries at {np.flatnonzero(~np.isfinite(x)).tolist()}")
    if not is_real(sigma0):
        raise TypeError(f"sigma0 must be a positive float, got {plain(sigma0)!r}")
    s = float(sigma0)
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"sigma0 must be a positive finite float, got {plain(sigma0)!r}")
    return x, s


def _check_popsize(popsize, n: int, minimum: int = 2) -> int:
    if popsize is None:
        return default_popsize(n)
    if not is_int(popsize):
        raise TypeError(f"popsize must be an int, got {plain(popsize)!r}")
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
        Scalars or ``(n,)`` arrays, or a :class:`scipy.optimize.Bounds`; handled by
        :class:`esopt.bounds.BoxBounds` (reflection; parsed by :func:`esopt.bounds.as_box_bounds`).
    tolerances : Tolerances or dict, optional
        Termination thresholds (pycma's names); defaults as pycma.

    Raises
    ------
    ValueError, TypeError
        For non-finite or mis-shaped ``x0``, ``sigma0 <= 0``, bad ``popsize``, ``lower >= upper``,
        ``x0`` outside the bounds, or unknown tolerance names.
    """

    _min_popsize: ClassVar[int] = 2
    #: constructor options that reproduce esopt 0.1.0's behaviour, added when reading its checkpoints
    _V1_OPTIONS: ClassVar[dict[str, Any]] = {}

    # bookkeeping, forwarded to self.progress (a Progress dataclass)
    countiter = progress_field("countiter")
    countevals = progress_field("countevals")
    best_f = progress_field("best_f")
    best_x = progress_field("best_x")
    evals_at_best = progress_field("evals_at_best")
    history = progress_field("history")
    _f_sorted = progress_field("f_sorted")
    _asked_Y = progress_field("asked_Y")
    _asked_X = progress_field("asked_X")
    _warned_nonfinite = progress_field("warned_nonfinite")
    # mean and sigma are evolving state of every subclass
    mean = state_field()
    sigma = state_field()

    params: Any  # frozen dataclass of the strategy parameters
    state: Any  # dataclass of the evolving state

    def __init__(self, x0, sigma0, *, popsize=None, seed=None, bounds=None, tolerances=None):
        x, s = _check_x0_sigma0(x0, sigma0)
        n = x.size
        self.n = n
        self.popsize = _check_popsize(popsize, n, self._min_popsize)
        self._popsize_default = popsize is None  # the default tolerances depend on it (below)
        self.bounds: BoxBounds | None = None
        if bounds is not None:
            self.bounds = as_box_bounds(bounds, n)
            out = np.flatnonzero(self.bounds.outside(x)).tolist()
            if out:
                raise ValueError(f"x0 lies outside the bounds in coordinates {out}; move x0 inside the box")
        tolerances = Tolerances.coerce(tolerances)
        self.tolerances_given = tolerances
        # pycma evaluates its default option strings (maxiter, tolstagnation) with the unrounded
        # default popsize 4 + 3 ln n, or with the popsize given
        self.tolerances = tolerances.resolve(n, self.popsize if popsize is not None else 4 + 3 * np.log(n))
        self.x0 = x
        self.sigma0 = s
        self._rng = make_rng(seed)
        self.progress = Progress()

    # ----- hooks -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _sample(self) -> np.ndarray:
        """Draw ``(popsize, n)`` internal candidates."""

    @abc.abstractmethod
    def _update(self, Y: np.ndarray, f: np.ndarray, order: np.ndarray, injected: np.ndarray | None) -> None:
        """Update ``self.state`` from internal candidates ``Y`` (popsize, n), values ``f`` (popsize,),
        their rank ``order`` (popsize,) and the ``injected`` rows (bool mask, or None if none)."""

    @abc.abstractmethod
    def _search_view_parts(self) -> dict[str, Any]:
        """Return ``stds`` (n,), ``pc`` (n,)|None, ``eigvals`` (n,)|None, ``B`` (n,n)|None."""

    def _init_options(self) -> dict[str, Any]:
        return {}

    def _export_state(self) -> Any:
        """The state dataclass as checkpointed (default ``self.state``; not modified)."""
        return self.state

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
        pr = self.progress
        pr.asked_Y, pr.asked_X = Y, X
        return X.copy()

    def _check_tell(self, X, f) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Validated ``(X, f, same)``; ``same`` marks the rows equal to the asked ones (None: all)."""
        if self.progress.asked_Y is None:
            raise ValueError("tell() without a pending ask(): call ask() first (each ask takes one tell)")
        X = real_array(X, "X", "X must be a (popsize, n) float array", keep=(np.float32,))  # float32 stays
        f = real_array(f, "f", "f must be a (popsize,) array of floats")
        if X.shape != (self.popsize, self.n):
            raise ValueError(f"X must have shape (popsize, n) = ({self.popsize}, {self.n}), got {X.shape}")
        if f.shape != (self.popsize,):
            raise ValueError(f"f must have shape (popsize,) = ({self.popsize},), got {f.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or inf; pass the candidates returned by ask()")
        asked_X = self.progress.asked_X
        if np.array_equal(X, asked_X):  # fast path: X is exactly the asked population
            return X, f, None
        same = (X == asked_X).all(axis=1)
        out = None if self.bounds is None else self.bounds.outside(X) & ~same[:, None]  # (popsize, n)
        if out is not None and out.any():
            lo, up = self.bounds.lower, self.bounds.upper
            rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
            j = int(cols[0])
            raise ValueError(
                f"injected rows {rows.tolist()} of X lie outside the bounds in coordinates {cols.tolist()} "
                f"(coordinate {j} must lie in [{plain(lo[j])!r}, {plain(up[j])!r}]); clip them into the box"
            )
        return X, f, same

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
        TypeError
            If ``X`` or ``f`` is not numeric, or complex.  Nothing changes then.
        """
        X, f, same = self._check_tell(X, f)
        # ---- no state has changed up to here ----
        pr = self.progress
        Y = pr.asked_Y if same is None else np.where(same[:, None], pr.asked_Y, self._inverse(X))
        finite = np.isfinite(f)
        all_finite = bool(finite.all())
        if not all_finite and not pr.warned_nonfinite:
            warnings.warn(
                f"{type(self).__name__}: {int((~finite).sum())} non-finite objective value(s) ranked worst "
                "(warned once)",
                RuntimeWarning,
                stacklevel=2,
            )
            pr.warned_nonfinite = True
        f_rank = f.copy() if all_finite else np.where(finite, f, np.inf)
        order = f_rank.argsort(kind="stable")  # ties in sampling order, NaN/inf last
        pr.countiter += 1
        pr.countevals += self.popsize
        i = int(order[0])
        if finite[i] and f_rank[i] < pr.best_f:
            pr.best_f = float(f_rank[i])
            pr.best_x = np.array(X[i], dtype=float)
            pr.evals_at_best = pr.countevals
        pr.f_sorted = f_rank[order]
        pr.history.update(pr.f_sorted, pr.countiter, self.n, self.popsize)
        self._update(Y, f_rank, order, None if same is None else ~same)
        pr.asked_Y = pr.asked_X = None

    def _inverse(self, X: np.ndarray) -> np.ndarray:
        return self.bounds.inverse(X) if self.bounds is not None else X.copy()

    # ----- termination and result ------------------------------------------------------------
    def search_view(self) -> SearchView:
        """The :class:`~esopt.termination.SearchView` of the current state."""
        parts = self._search_view_parts()
        pr = self.progress
        return SearchView(
            n=self.n,
            popsize=self.popsize,
            countiter=pr.countiter,
            countevals=pr.countevals,
            sigma=float(self.sigma),
            sigma0=self.sigma0,
            mean=self.mean,
            stds=parts["stds"],
            pc=parts.get("pc"),
            eigvals=parts.get("eigvals"),
            B=parts.get("B"),
            f_sorted=pr.f_sorted,
            best_f=pr.best_f,
            evals_at_best=pr.evals_at_best,
            history=pr.history,
        )

    def stop(self) -> dict:
        """Termination criteria that fired, ``{name: threshold}``; ``{}`` while running."""
        return check(self.search_view(), self.tolerances)

    @property
    def result(self) -> Result:
        """Best solution seen (external coordinates), counts, current mean (mapped) and sigma."""
        mean = self.bounds.transform(self.mean) if self.bounds is not None else np.array(self.mean, float)
        pr = self.progress
        return Result(
            x=None if pr.best_x is None else pr.best_x.copy(),
            f=pr.best_f,
            nfev=pr.countevals,
            nit=pr.countiter,
            mean=mean,
            sigma=float(self.sigma),
            stop=self.stop(),
        )

    # ----- checkpoint state --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Flat dict: ``class``, ``version`` (format 2), ``init.*`` (constructor arguments),
        ``rng`` (JSON of the bit generator state), ``base.*`` (``self.progress``: counters, best,
        histories, pending ask) and ``state.*`` (the fields of the state dataclass).  Arrays are
        copies (:mod:`esopt.statedict`)."""
        d = sd.header(self.name)
        d.update(
            sd.init_entries(
                self.x0, self.sigma0, self.popsize, self.bounds, self.tolerances_given, self._init_options()
            )
        )
        if self._popsize_default:  # rebuilt with popsize=None, so that maxiter and tolstagnation resolve alike
            d["init.popsize_default"] = True
        d["rng"] = sd.rng_entry(self._rng)
        d.update(sd.flatten(self.progress, "base."))
        d.update(sd.flatten(self._export_state(), "state."))
        return d

    @classmethod
    def _upgrade_v1(cls, d: dict[str, Any]) -> dict[str, Any]:
        """Format 1 (esopt 0.1.0) -> 2: ``state._name`` keys became ``state.name``; the options of
        ``_V1_OPTIONS`` are added (0.1.0 had no such option and behaved as they say)."""
        new = {f"init.options.{k}": v for k, v in cls._V1_OPTIONS.items()}
        new.update((("state." + k[len("state._") :] if k.startswith("state._") else k), v) for k, v in d.items())
        return new

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> EvolutionStrategy:
        """Rebuild from :meth:`state_dict` output (format 2, or 1 as written by esopt 0.1.0).

        Raises
        ------
        ValueError
            If ``d`` is of another class or an unreadable format version, or a key is missing.
        TypeError
            If ``d`` is not a dict.
        """
        if sd.check_header(d, cls.name, cls.__name__) == 1:
            d = cls._upgrade_v1(d)
        try:
            init = sd.read_init(d)
            obj = cls(
                init["x0"],
                init["sigma0"],
                popsize=init["popsize"],
                seed=None,
                bounds=init["bounds"],
                tolerances=init["tolerances"],
                **init["options"],
            )
            obj._rng = sd.load_rng(d)
            obj.progress = sd.unflatten(obj.progress, "base.", d)
            obj.state = sd.unflatten(obj.state, "state.", d)
        except KeyError as e:
            raise ValueError(f"state dict for {cls.__name__} is missing key {e.args[0]!r}") from None
        obj._after_load()
        return obj

    def _after_load(self) -> None:
        """Hook: recompute caches derived from the loaded state (default: nothing)."""
