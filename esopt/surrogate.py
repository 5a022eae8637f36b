"""lq-CMA-ES pre-screening: evaluate only the candidates a global surrogate cannot rank.

Hansen, "A Global Surrogate Assisted CMA-ES", GECCO 2019 (doi 10.1145/3321707.3321842): each
generation of the wrapped strategy (``popsize`` candidates ``P``) is evaluated in rounds.  The
candidates are sorted by the :class:`esopt.lqmodel.LQModel`'s values; the best-ranked
unevaluated ones are evaluated until ``k`` are, ``k = 1 + max(popsize * 2 / 100,
3 / truncation_ratio - model size)`` in the first round; the true values join the model's archive;
then Kendall's tau between true and model values over the ``max(15, min(1.2 k, 0.75 popsize))``
newest archived points decides: at ``tau >= tau_threshold`` (0.85) the generation ends, else
``k`` grows by ``ceil(k / 2)`` (1, 2, 3, 5, 8, 12, ...) and another round is evaluated.  When the
generation ends with every candidate evaluated, the strategy is told the true values; otherwise
it is told the model's values of all ``popsize`` candidates, shifted so that their minimum equals
the best true value of the generation (a failed, non-finite evaluation stays ``inf``).  Rank-based
updates see a full population ranked by the model, so the distribution update stays as
unbiased as the model's ranking.  The constants are pycma 4.5.0's (``cma.fitness_models``,
``SurrogatePopulationSettings``, read from its source); pycma's optional injection of the
model's optimum is not done.

The ask/tell contract therefore changes shape: :meth:`LQSurrogate.ask` returns the ``k_t`` rows
to evaluate *now* (``1 <= k_t <= popsize``), and :meth:`LQSurrogate.tell` takes exactly those
rows and their values.  Several ask/tell rounds make one generation of the inner strategy.

Categorical coordinates of :class:`esopt.CatCMAwM` (also inside IPOP/BIPOP) enter the model as
one-hot blocks (:func:`esopt.lqmodel.features`); every other coordinate enters as it is.

Budget: ``maxfevals`` of the wrapper counts *true* evaluations; the inner strategy's own
counters (and any ``maxfevals`` given to it) count every candidate it is told, evaluated or
not.  :func:`esopt.build` and :func:`esopt.minimize` with ``surrogate="lq"`` route ``maxfevals``
to the wrapper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from . import statedict as sd
from .base import Result, Strategy
from .lqmodel import LQArchive, LQModel, features, n_features
from .numtypes import is_int, is_real, real_array

__all__ = ["LQSurrogate", "SurrogateProgress", "categories_of"]

#: pycma 4.5.0 SurrogatePopulationSettings.min_evals_percent
MIN_EVALS_PERCENT = 2.0


def categories_of(strategy: Strategy) -> dict[int, int]:
    """``{coordinate: K}`` of the categorical coordinates of ``strategy`` (a
    :class:`esopt.CatCMAwM`, or a restart wrapper around one); ``{}`` for every other strategy."""
    params = getattr(strategy, "params", None)
    if params is not None and hasattr(params, "cat_idx") and hasattr(params, "K"):
        return {int(j): int(k) for j, k in zip(params.cat_idx, params.K)}
    inner = getattr(strategy, "inner", None)
    return categories_of(inner) if isinstance(inner, Strategy) else {}


@dataclass
class SurrogateProgress:
    """Evolving state of :class:`LQSurrogate` (checkpointed as ``surrogate.*``).

    Attributes
    ----------
    countevals : int
        True evaluations so far.
    best_f : float
        Best finite true value (``inf`` before the first); ``best_x`` (n,) its candidate.
    evals_at_best : int
        ``countevals`` when it was found.
    P : ndarray (popsize, n) or None
        The inner strategy's pending generation (None between generations).
    evaluated : ndarray (popsize,) bool, ftrue : ndarray (popsize,)
        Which of ``P`` are evaluated, and their true values (NaN where not).
    target : int
        Evaluations of ``P`` this round ends at (``k``).
    rows : ndarray (k_t,) int or None
        Rows of ``P`` handed out by the pending ask (None when no ask is pending).
    last_tau, last_fraction : float
        Kendall's tau and the evaluated fraction of the last finished generation.
    model_popsize : int
        Popsize the model's archive was sized for (a larger one, after a restart, resets it).
    model : LQArchive
        The model's data.
    """

    countevals: int = 0
    best_f: float = math.inf
    best_x: np.ndarray | None = None
    evals_at_best: int = 0
    P: np.ndarray | None = None
    evaluated: np.ndarray | None = None
    ftrue: np.ndarray | None = None
    target: int = 0
    rows: np.ndarray | None = None
    last_tau: float = math.nan
    last_fraction: float = math.nan
    model_popsize: int = 0
    model: LQArchive = field(default_factory=LQArchive)


class LQSurrogate(Strategy):
    """Surrogate pre-screening (lq-CMA-ES) around any esopt strategy; see the module docstring.

    Parameters
    ----------
    strategy : Strategy
        The strategy whose generations are pre-screened (``CMAES``, ``SepCMAES``, ``CatCMAwM``,
        ``IPOP``/``BIPOP``, ...; any :class:`esopt.Strategy` whose ``tell`` takes its own asked
        population).  The wrapper owns it from now on.
    tau_threshold : float in (-1, 1]
        Kendall's tau at which a generation's remaining candidates are left to the model
        (default 0.85, pycma's).
    maxfevals : int or float, optional
        Stop after this many *true* evaluations (``stop()`` returns ``{"maxfevals": value}``).

    Raises
    ------
    TypeError
        If ``strategy`` is not an :class:`esopt.Strategy`, or a threshold is not a number.
    ValueError
        For ``tau_threshold`` outside ``(-1, 1]`` or ``maxfevals < 1``.

    Notes
    -----
    ``ask()`` again before ``tell()`` returns the same rows (no new candidates are drawn).
    ``tell`` takes exactly the asked rows (no injected candidates) and refuses anything else with
    ``ValueError`` before any state changes.  ``popsize`` is the inner strategy's generation size,
    not the size of one ask.  ``result.nfev`` counts true evaluations, ``result.nit`` the inner
    strategy's generations, ``result.x``/``f`` the best truly evaluated candidate.
    """

    name: ClassVar[str] = "lq"

    def __init__(self, strategy: Strategy, *, tau_threshold: float = 0.85, maxfevals=None):
        if not isinstance(strategy, Strategy):
            raise TypeError(
                f"strategy must be an esopt Strategy (e.g. esopt.CMAES(...)), got {type(strategy).__name__}"
            )
        if not is_real(tau_threshold):
            raise TypeError(f"tau_threshold must be a number in (-1, 1], got {tau_threshold!r}")
        if not -1 < float(tau_threshold) <= 1:
            raise ValueError(f"tau_threshold must be a number in (-1, 1], got {tau_threshold!r}")
        if maxfevals is not None and not is_real(maxfevals):
            raise TypeError(f"maxfevals must be a number >= 1 or None, got {maxfevals!r}")
        if maxfevals is not None and not float(maxfevals) >= 1:
            raise ValueError(f"maxfevals must be a number >= 1 or None, got {maxfevals!r}")
        self.inner = strategy
        self.n = int(strategy.n)
        self.tau_threshold = float(tau_threshold)
        self.maxfevals = None if maxfevals is None else (int(maxfevals) if is_int(maxfevals) else float(maxfevals))
        self.categories = categories_of(strategy)
        self.model = LQModel(n_features(self.n, self.categories))
        self.progress = SurrogateProgress(model=self.model.archive)

    # ----- forwarded -----------------------------------------------------------------------------
    @property
    def popsize(self) -> int:  # type: ignore[override]
        """Candidates per generation of the inner strategy (one generation takes several asks)."""
        return int(self.inner.popsize)

    @property
    def sigma(self) -> float:
        """The inner strategy's step size."""
        return float(self.inner.sigma)

    @property
    def mean(self) -> np.ndarray:
        """The inner strategy's mean ``(n,)``."""
        return self.inner.mean

    @property
    def countevals(self) -> int:
        """True evaluations so far."""
        return self.progress.countevals

    # ----- ask / tell ----------------------------------------------------------------------------
    def _start_generation(self) -> None:
        pr = self.progress
        lam = self.popsize
        if lam > pr.model_popsize:
            if pr.model_popsize:  # a restart with a larger population: old data describe another search
                self.model.reset()
            pr.model_popsize = lam
            self.model.min_size = lam
        pr.P = np.asarray(self.inner.ask(), dtype=float)
        pr.evaluated = np.zeros(lam, dtype=bool)
        pr.ftrue = np.full(lam, np.nan)
        first = 1 + max(lam * MIN_EVALS_PERCENT / 100, 3 / self.model.truncation_ratio - self.model.size)
        pr.target = min(lam, int(first))

    def ask(self) -> np.ndarray:
        """The candidates to evaluate now, shape ``(k_t, n)`` with ``1 <= k_t <= popsize``: the
        best-ranked by the model among the generation's unevaluated ones (a fresh array)."""
        pr = self.progress
        if pr.rows is None:
            if pr.P is None:
                self._start_generation()
            if self.model.size > 1:
                order = np.argsort(self.model.predict(features(pr.P, self.categories)), kind="stable")
            else:
                order = np.arange(self.popsize)
            todo = order[~pr.evaluated[order]]
            pr.rows = todo[: pr.target - int(pr.evaluated.sum())].astype(np.int64)
        return pr.P[pr.rows].copy()

    def tell(self, X, f) -> None:
        """Record the true values ``f`` ``(k_t,)`` of the asked rows ``X`` ``(k_t, n)``; ends the
        generation (tells the inner strategy) when the model ranks well enough or all are evaluated.

        Raises
        ------
        ValueError
            Without a pending ask, on wrong shapes, or if ``X`` is not exactly the asked rows.
            Nothing changes then.
        TypeError
            If ``X`` or ``f`` are not numeric arrays.
        """
        pr = self.progress
        if pr.rows is None:
            raise ValueError("tell() without a pending ask(): call ask() first (each ask takes one tell)")
        asked = pr.P[pr.rows]
        message = "X must be a (k, n) float array and f a (k,) float array, as returned by ask()"
        X, f = real_array(X, "X", message), real_array(f, "f", message)
        if X.shape != asked.shape:
            raise ValueError(f"X must have the asked shape {asked.shape} (this round's rows), got {X.shape}")
        if f.shape != (asked.shape[0],):
            raise ValueError(f"f must have shape ({asked.shape[0]},), one value per asked row, got {f.shape}")
        if not np.array_equal(X, asked):
            raise ValueError("X differs from the asked rows; LQSurrogate takes back exactly what ask() returned")
        # ---- no state has changed up to here ----
        rows = pr.rows
        pr.rows = None
        pr.ftrue[rows] = f
        pr.evaluated[rows] = True
        self.model.add(features(asked, self.categories), f)
        pr.countevals += int(rows.size)
        finite = np.isfinite(f)
        if finite.any():
            i = int(np.argmin(np.where(finite, f, np.inf)))
            if f[i] < pr.best_f:
                pr.best_f, pr.best_x = float(f[i]), asked[i].copy()
                pr.evals_at_best = pr.countevals - int(rows.size) + i + 1
        n_eval = int(pr.evaluated.sum())
        lam = self.popsize
        tau = self.model.kendall(int(max(15, min(1.2 * n_eval, 0.75 * lam))))
        if n_eval < lam and tau < self.tau_threshold:
            pr.target = min(lam, pr.target + math.ceil(pr.target / 2))
            return
        self._end_generation(tau, n_eval)

    def _end_generation(self, tau: float, n_eval: int) -> None:
        pr = self.progress
        if n_eval == self.popsize:
            F = pr.ftrue.copy()
        else:
            F = self.model.predict(features(pr.P, self.categories))
            seen = pr.ftrue[pr.evaluated]
            if np.isfinite(seen).any():
                F = F - F.min() + np.min(seen[np.isfinite(seen)])
            failed = pr.evaluated & ~np.isfinite(pr.ftrue)
            F[failed] = np.inf
        P = pr.P
        pr.P = pr.evaluated = pr.ftrue = None
        pr.last_tau, pr.last_fraction = float(tau), n_eval / self.popsize
        self.inner.tell(P, F)

    # ----- termination and result ----------------------------------------------------------------
    def stop(self) -> dict:
        """The inner strategy's criteria, plus ``{"maxfevals": value}`` once the true evaluations
        reach the wrapper's ``maxfevals``; ``{}`` while running."""
        out = dict(self.inner.stop())
        if self.maxfevals is not None and self.progress.countevals >= self.maxfevals:
            out["maxfevals"] = self.maxfevals
        return out

    @property
    def result(self) -> Result:
        """Best truly evaluated candidate, true evaluations, inner generations, mean and sigma."""
        r = self.inner.result
        pr = self.progress
        return Result(
            x=None if pr.best_x is None else pr.best_x.copy(),
            f=pr.best_f,
            nfev=pr.countevals,
            nit=r.nit,
            mean=r.mean,
            sigma=r.sigma,
            stop=self.stop(),
        )

    # ----- checkpoint state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Flat dict: header (format 2), ``init.tau_threshold``, ``init.maxfevals``,
        ``surrogate.*`` (:class:`SurrogateProgress`, the model's archive included) and the inner
        strategy's state dict under ``inner.``."""
        d = sd.header(self.name)
        d["init.tau_threshold"] = self.tau_threshold
        d["init.maxfevals"] = self.maxfevals
        d.update(sd.flatten(self.progress, "surrogate."))
        d.update(sd.nest(self.inner.state_dict(), "inner."))
        return d

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> LQSurrogate:
        """Rebuild from :meth:`state_dict` output; continues bit-for-bit.

        Raises ``ValueError`` for another class, an unreadable version or a missing key,
        ``TypeError`` if ``d`` is not a dict.
        """
        from .registry import strategy_class

        sd.check_header(d, cls.name, cls.__name__)
        try:
            inner_d = sd.unnest(d, "inner.")
            inner = strategy_class(str(inner_d["class"])).from_state_dict(inner_d)
            obj = cls(inner, tau_threshold=float(d["init.tau_threshold"]), maxfevals=d["init.maxfevals"])
            # the optional arrays are None in the template: they keep their stored dtypes (or None)
            pr = sd.unflatten(SurrogateProgress(model=obj.model.archive), "surrogate.", d)
        except KeyError as e:
            raise ValueError(f"state dict for {cls.__name__} is missing key {e.args[0]!r}") from None
        obj.progress = pr
        obj.model.archive = pr.model
        obj.model.min_size = pr.model_popsize
        return obj
