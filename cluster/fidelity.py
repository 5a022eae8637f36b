"""Multi-fidelity campaigns: rungs, asynchronous successive halving, and the ranking of stopped trials.

Asynchronous successive halving (ASHA; Li et al., "A System for Massively Parallel
Hyperparameter Tuning", MLSys 2020, arXiv 1810.05934, Algorithm 2 and Sec. 3) in its *stopping*
variant, as Ray Tune's ``ASHAScheduler`` implements it (ray 2.60.0,
``ray/tune/schedulers/async_hyperband.py``, ``_Bracket.on_result`` and ``_Bracket.cutoff``, one
bracket, ``stop_last_trials=True``): a trial reports ``(step, value)`` as it trains; when a report
first reaches rung ``k`` (step ``>= r_k``) the value is compared with the values recorded at rung
``k`` so far, *before* the trial's own is added, and the trial goes on only if

    value <= percentile(recorded_k, 100 / eta)          (numpy's linear interpolation)

i.e. it is among the best ``1/eta`` of the values seen there (Ray: ``reward >= nanpercentile(
rewards, (1 - 1/eta) * 100)`` with ``reward = -value``, the same cut).  The first trial at a rung
always goes on; then its value is recorded at that rung.  A report that jumps over several rungs
is recorded (and decided) at the highest one only, as in Ray.  The last rung is ``max``, the full
budget: a trial there is complete (nothing is left to stop).  One difference: Ray's
``on_trial_complete`` also records a finished trial's last value at the highest rung below
``max_t`` it skipped; here a report at ``max`` is recorded at ``max`` only (with a report every
step, as ``trials:train_and_evaluate`` makes, no rung is skipped and the two agree).

An evolution strategy needs a fitness for each trial it is told, stopped ones included.  Evolution
strategies use only the ranks of the values told in one ``tell`` (Hansen, arXiv 1604.00772, Sec.
3: the weights depend on the rank only), so a fitness that sorts lexicographically by (highest rung
reached, descending; value there, ascending) is consistent (:func:`lexicographic_fitness`,
:func:`rank_fitness`, :meth:`ASHA.fitness`).  What it loses: how much worse a stopped trial would
have ended (a stopped trial ranks below every trial that went further, whatever its curve), and the
order between trials stopped at one rung as their full-budget values would have it.  The bias that
remains: low-fidelity values favour configurations that learn fast (large learning rates, small
models, little regularization), since the first rungs select on early progress; the
synthetic study of ``bench/multifidelity.py`` measures when that hurts.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = [
    "ASHA",
    "FidelityError",
    "accepts_report",
    "lexicographic_fitness",
    "rank_fitness",
    "rungs",
]


class FidelityError(ValueError):
    """A report an objective made is unusable (a step not a positive integer, not increasing, or
    beyond ``max``; a value not a finite number): the driver fails that trial with this message
    and the campaign goes on.  Raised before any state changes."""


def lexicographic_fitness(levels: Sequence[float], values: Sequence[float | None]) -> np.ndarray:
    """Fitness values (to minimize) that rank trials by (highest level reached, then value).

    Parameters
    ----------
    levels : sequence of float, shape (n,)
        How far each trial got: its highest rung (or ``training_iteration`` reached, or epochs);
        larger is further.  Must be finite.
    values : sequence of float or None, shape (n,)
        Each trial's objective at that level (minimization); ``None`` or NaN for a failed trial.

    Returns
    -------
    numpy.ndarray, shape (n,)
        ``f_i = v_i + s_i * (span + 1)`` with ``s_i`` the number of distinct levels above ``l_i`` and
        ``span`` the range of the finite values: trials at the top level keep their own value (so
        termination criteria on values such as ``tolfun`` still see real objective values), a
        trial at a lower level ranks
        below every trial of a higher level and, within its level, by its value.  Failed trials
        stay NaN (the caller penalizes them, :mod:`cluster.penalty`).

    Raises
    ------
    ValueError
        If the lengths differ or a level is not finite.
    """
    lv = np.asarray(levels, dtype=float)
    v = np.array([np.nan if x is None else float(x) for x in values], dtype=float)
    if lv.shape != v.shape or lv.ndim != 1:
        raise ValueError(f"levels and values must be 1-D of the same length, got {lv.shape} and {v.shape}")
    if not np.all(np.isfinite(lv)):
        raise ValueError("levels must be finite numbers (the rung or iteration each trial reached)")
    if v.size == 0:
        return v
    finite = np.isfinite(v)
    span = float(np.ptp(v[finite])) if finite.any() else 0.0
    ranks = np.searchsorted(np.unique(lv), lv)  # each distinct level is a whole band of span + 1 lower
    steps = ranks.max() - ranks
    return np.where(finite, v + steps * (span + 1.0), np.nan)


def rank_fitness(rungs_reached: Sequence[int | None], values: Sequence[float | None]) -> np.ndarray:
    """:func:`lexicographic_fitness` over rung indices; ``None`` (no rung reached) ranks below rung 0.

    Parameters
    ----------
    rungs_reached : sequence of int or None, shape (n,)
        Index of the highest rung each trial reached (0 = the first, ``len(rungs) - 1`` = ``max``),
        ``None`` for a trial that ended before the first rung.
    values : sequence of float or None, shape (n,)
        The value at that rung (for a trial at ``max``: its objective); None/NaN for a failed trial.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Fitness to minimize; trials at the highest rung present keep their own values, NaN stays NaN.

    Raises
    ------
    ValueError
        Lengths differ, or a rung index is not an integer >= 0.
    """
    levels = []
    for r in rungs_reached:
        if r is not None and (isinstance(r, bool) or not isinstance(r, Integral) or r < 0):
            raise ValueError(f"rung indices must be integers >= 0 or None, got {r!r}")
        levels.append(-1.0 if r is None else float(r))
    return lexicographic_fitness(levels, values)


def _integer(x: Any, name: str) -> int:
    """``x`` as an int if it is an integer (an integral float too), else ``ValueError``."""
    if isinstance(x, bool) or not isinstance(x, Real) or not math.isfinite(float(x)) or float(x) != int(x):
        raise ValueError(f"{name} must be an integer, got {x!r}")
    return int(x)


def rungs(min: int, max: int, eta: float = 3) -> list[int]:  # noqa: A002 - the config's key names
    """The rungs of successive halving: ``min * eta**k`` for ``k = 0, 1, ...`` while below ``max``, then ``max``.

    Li et al. (arXiv 1810.05934, Algorithm 2): rung ``k`` has resource ``r * eta**(s + k)``; here
    ``s = 0`` (one bracket, Ray Tune's default) and the full budget ``R = max`` is the last rung
    even when it is not a power of ``eta`` times ``min`` (Ray ends trials there too).

    Parameters
    ----------
    min : int
        First rung (steps of the resource, e.g. epochs), >= 1.
    max : int
        Full budget, the objective's last step; > ``min``.
    eta : float
        Reduction factor, > 1 (3 in Li et al. and here, 4 in Ray Tune).

    Returns
    -------
    list of int
        Increasing steps, e.g. ``rungs(1, 16, 3) == [1, 3, 9, 16]``.

    Raises
    ------
    ValueError
        ``min``/``max`` not integers, ``min < 1``, ``min >= max``, ``eta <= 1`` or not finite, or a
        rung ``min * eta**k`` below ``max`` that is not an integer (e.g. ``min=4, eta=1.5``: 13.5);
        the message names the offending value and how to fix it.
    """
    lo, hi = _integer(min, "min"), _integer(max, "max")
    if isinstance(eta, bool) or not isinstance(eta, Real) or not math.isfinite(float(eta)) or eta <= 1:
        raise ValueError(f"eta must be a number > 1 (the reduction factor), got {eta!r}")
    if lo < 1:
        raise ValueError(f"min must be >= 1 (the first rung, in steps), got {lo}")
    if lo >= hi:
        raise ValueError(f"min must be < max (the full budget), got min={lo}, max={hi}")
    out, k = [], 0
    while True:
        r = lo * float(eta) ** k
        if r >= hi * (1 - 1e-12):
            break
        if abs(r - round(r)) > 1e-9 * r:
            raise ValueError(
                f"rung {k} is min * eta**{k} = {r:g}, not an integer step; use an integer eta, or a min that makes "
                "every rung below max an integer"
            )
        out.append(int(round(r)))
        k += 1
    return out + [hi]


def accepts_report(fn: Callable[..., Any]) -> bool:
    """True if ``fn`` takes a parameter named ``report`` that can be passed by keyword.

    ``inspect.signature``; a positional-only ``report`` or one hidden in ``**kwargs`` does not count
    (the campaign passes ``report=`` only where the signature says it is taken).  A callable
    without a readable signature (some builtins) gives False.  Never raises.
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    p = params.get("report")
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


class ASHA:
    """Asynchronous successive halving, stopping variant (see the module docstring for the rule).

    Parameters
    ----------
    r_min, r_max : int
        First rung and full budget, in steps of the resource (``fidelity.min``, ``fidelity.max``).
    eta : float
        Reduction factor > 1 (``fidelity.eta``, default 3): a trial goes on past a rung when it is
        among the best ``1/eta`` of the values recorded there so far.
    window : int or None
        ``fidelity.window``: compare with the last ``window`` values recorded at the rung (in the
        order recorded) instead of all of them; None (the default) is ASHA as published.  Why: the
        cutoff of plain ASHA is a quantile of every value a rung has seen, so once the strategy
        samples better configurations than at the start, most of them beat it and run to ``max``
        (bench/results/multifidelity-digits.csv, ``min: 2, eta: 3``: 44-49% of esopt's trials per
        seed went to the full budget at commit 8716272, 37-53% in earlier runs, not the 1/9 the rule
        gives candidates that do not improve); a
        window tracks the current population.  Not in Li et al. or Ray.

    State: for each rung, ``{trial_id: value}`` of the trials recorded there; per trial the last step
    it reported (the resource it consumed) and whether it was stopped.  It is rebuilt from a
    journal's reports with :meth:`from_reports` / :meth:`from_journal`, so a resumed campaign has its
    rungs intact.

    Raises
    ------
    ValueError
        Bad ``r_min``, ``r_max`` or ``eta`` (see :func:`rungs`); ``window`` not an integer >= 1.
    """

    def __init__(self, r_min: int, r_max: int, eta: float = 3, window: int | None = None):
        self.rungs: list[int] = rungs(r_min, r_max, eta)
        self.eta = float(eta)
        if window is not None and (isinstance(window, bool) or not isinstance(window, Integral) or window < 1):
            raise ValueError(f"window must be an integer >= 1 (values compared at a rung) or None, got {window!r}")
        self.window = None if window is None else int(window)
        self._recorded: list[dict[int, float]] = [{} for _ in self.rungs]
        self._top: dict[int, int] = {}  # trial -> index of its highest recorded rung
        self._last: dict[int, int] = {}  # trial -> last step reported
        self._stopped: set[int] = set()

    @classmethod
    def from_config(cls, fidelity: Any) -> ASHA:
        """An ASHA of a :class:`cluster.configmodel.FidelityConfig` (``min``, ``max``, ``eta``,
        ``window``; ``max`` set)."""
        if fidelity is None or getattr(fidelity, "max", None) is None:
            raise ValueError("the config has no fidelity section with max set; multi-fidelity is off")
        return cls(fidelity.min, fidelity.max, fidelity.eta, getattr(fidelity, "window", None))

    @property
    def r_min(self) -> int:
        """The first rung, in steps."""
        return self.rungs[0]

    @property
    def r_max(self) -> int:
        """The full budget (last rung), in steps."""
        return self.rungs[-1]

    # ------------------------------------------------------------------------------------ reports
    def check_report(self, trial_id: int, step: Any, value: Any) -> tuple[int, float]:
        """``(step, value)`` as ``(int, float)`` if the report is usable, else :class:`FidelityError`.

        Usable: ``step`` an integer (an integral float too) in ``1 .. r_max`` and above the trial's
        previous step; ``value`` a finite real number.  Changes nothing.
        """
        try:
            s = _integer(step, "step")
        except ValueError:
            raise FidelityError(f"trial {trial_id} reported step {step!r}: steps must be positive integers") from None
        if s < 1:
            raise FidelityError(f"trial {trial_id} reported step {s}: steps must be positive integers")
        last = self._last.get(trial_id)
        if last is not None and s <= last:
            raise FidelityError(f"trial {trial_id} reported step {s} after step {last}: steps must increase")
        if s > self.r_max:
            raise FidelityError(
                f"trial {trial_id} reported step {s}, beyond fidelity.max = {self.r_max} (the full budget): set max "
                "to the objective's last step"
            )
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
            raise FidelityError(f"trial {trial_id} reported value {value!r} at step {s}: values must be finite numbers")
        return s, float(value)

    def rung_of(self, step: int) -> int | None:
        """Index of the highest rung at or below ``step`` (None below the first rung)."""
        k = int(np.searchsorted(self.rungs, step, side="right")) - 1
        return None if k < 0 else k

    def on_report(self, trial_id: int, step: Any, value: Any) -> bool:
        """Take a trial's report; True = go on, False = stop it.

        Reports of one trial come with increasing steps.  When ``step`` first reaches a rung ``k``
        (the highest one it reaches, if it jumps several), ``value`` is recorded there and the
        decision is made: the first trial at a rung goes on; later ones go on iff ``value <=
        percentile(earlier values at k, 100/eta)`` (the last :attr:`window` of them when set).  At
        the last rung (``r_max``) the trial is complete: recorded, True.  A stopped trial's later
        reports (the decision may arrive a few reports late) count as resource consumed and are
        otherwise ignored (False).

        Raises
        ------
        FidelityError
            An unusable report (:meth:`check_report`), before any state changes.
        """
        s, v = self.check_report(trial_id, step, value)
        self._last[trial_id] = s
        if trial_id in self._stopped:
            return False
        k = self.rung_of(s)
        if k is None or k <= self._top.get(trial_id, -1):
            return True  # between rungs, or this rung decided already
        recorded = self._recorded[k]
        go = True
        if recorded and k < len(self.rungs) - 1:
            earlier = list(recorded.values())
            if self.window is not None:
                earlier = earlier[-self.window :]
            cutoff = float(np.percentile(np.asarray(earlier, float), 100.0 / self.eta))
            go = v <= cutoff
        recorded[trial_id] = v
        self._top[trial_id] = k
        if not go:
            self._stopped.add(trial_id)
        return go

    def forget(self, trial_id: int) -> None:
        """Drop a trial from every rung and from the accounting: it restarts from step 0 (a retry,
        or a trial that was running when the campaign was killed).  Unknown ids are ignored."""
        for recorded in self._recorded:
            recorded.pop(trial_id, None)
        self._top.pop(trial_id, None)
        self._last.pop(trial_id, None)
        self._stopped.discard(trial_id)

    # ----------------------------------------------------------------------------------- rebuild
    @classmethod
    def from_reports(
        cls,
        r_min: int,
        r_max: int,
        eta: float,
        reports: Iterable[tuple[int, int, float]],
        *,
        stopped: Mapping[int, int] | None = None,
        window: int | None = None,
    ) -> ASHA:
        """Rebuild the state from journaled reports ``(trial_id, step, value)`` in the order they were taken.

        ``stopped`` (``{trial_id: rung index}`` of the journal's ``stopped`` trials) makes the journal's
        decisions authoritative: each report is recorded by the same rule as :meth:`on_report`
        but no decision is recomputed; a trial listed there is marked stopped, and its reports after
        the one that reached its stop rung (late ones) are not recorded.  Without ``stopped`` the
        decisions are replayed (the same as live when ``reports`` are in the order the driver took
        them and none was removed since).

        Raises
        ------
        FidelityError
            A report that could not have been taken (steps not increasing, ...).
        ValueError
            Bad ``r_min``/``r_max``/``eta``/``window`` (see :class:`ASHA`).
        """
        asha = cls(r_min, r_max, eta, window)
        if stopped is None:
            for tid, step, value in reports:
                asha.on_report(int(tid), step, value)
            return asha
        stop_at = {int(t): int(k) for t, k in stopped.items()}
        for tid, step, value in reports:
            tid = int(tid)
            s, v = asha.check_report(tid, step, value)
            asha._last[tid] = s
            k = asha.rung_of(s)
            if k is None or k <= asha._top.get(tid, -1) or asha._top.get(tid, -1) >= stop_at.get(tid, len(asha.rungs)):
                continue
            asha._recorded[k][tid] = v
            asha._top[tid] = k
        asha._stopped = set(stop_at)
        return asha

    @classmethod
    def from_journal(cls, journal: Any, fidelity: Any = None) -> ASHA:
        """Rebuild from a :class:`cluster.store.Journal` (its reports in the order they were journaled).

        ``fidelity`` defaults to the journal's config (``fidelity`` section).  Trials whose status is
        ``stopped`` keep the rung the journal recorded (``trials.rung``); reports of trials that are
        not finished (pending, running, cancelled: they restart from step 0 on resume) are left out;
        call ``journal.reset_reports(id)`` for those before they run again.

        Raises
        ------
        ValueError
            The config has no fidelity section; :class:`FidelityError` for unusable reports.
        """
        from .status import TrialStatus

        if fidelity is None:
            fidelity = journal.campaign_config().fidelity
        if fidelity is None or fidelity.max is None:
            raise ValueError("the campaign has no fidelity section; multi-fidelity is off")
        final = (TrialStatus.DONE, TrialStatus.FAILED, TrialStatus.STOPPED)
        rows = journal.trials()
        keep = {t.id for t in rows if t.status in final}
        stopped = {t.id: (t.rung if t.rung is not None else 0) for t in rows if t.status is TrialStatus.STOPPED}
        reports = [r for r in journal.reports() if r[0] in keep]
        return cls.from_reports(
            fidelity.min, fidelity.max, fidelity.eta, reports, stopped=stopped, window=getattr(fidelity, "window", None)
        )

    # ----------------------------------------------------------------------------------- queries
    def recorded(self, k: int) -> dict[int, float]:
        """``{trial_id: value}`` recorded at rung ``k`` (a copy)."""
        return dict(self._recorded[k])

    def level(self, trial_id: int) -> tuple[int | None, float | None]:
        """``(highest rung index recorded, value there)``; ``(None, None)`` before the first rung."""
        k = self._top.get(trial_id)
        return (None, None) if k is None else (k, self._recorded[k][trial_id])

    def is_stopped(self, trial_id: int) -> bool:
        """True once :meth:`on_report` returned False for the trial."""
        return trial_id in self._stopped

    def reached_max(self, trial_id: int) -> bool:
        """True if the trial reported the full budget ``r_max`` (only those count as the campaign's best)."""
        return self._top.get(trial_id) == len(self.rungs) - 1

    def fitness(self, trial_ids: Sequence[int], objectives: Sequence[float | None] | None = None) -> np.ndarray:
        """Fitness of the trials of one tell, shape ``(len(trial_ids),)``: :func:`rank_fitness` of
        (highest rung reached, value there).

        ``objectives`` (optional, same length): what each trial returned (None/NaN when failed).  A
        trial at ``r_max`` is ranked by its objective where finite (else its value reported there);
        a trial that never reached a rung by its objective, below every rung (NaN if it failed).
        """
        obj = [None] * len(trial_ids) if objectives is None else list(objectives)
        if len(obj) != len(trial_ids):
            raise ValueError(f"{len(trial_ids)} trial ids but {len(obj)} objectives")
        levels, values = [], []
        for tid, o in zip(trial_ids, obj):
            k, v = self.level(tid)
            finite_o = o is not None and math.isfinite(float(o))
            if k is None or (k == len(self.rungs) - 1 and finite_o):
                v = float(o) if finite_o else None
            levels.append(k)
            values.append(v)
        return rank_fitness(levels, values)

    # -------------------------------------------------------------------------------- accounting
    @property
    def resource_used(self) -> int:
        """Steps consumed by all trials known: the sum of each one's last reported step."""
        return int(sum(self._last.values()))

    @property
    def resource_saved(self) -> int:
        """Steps not trained because of stops: the sum over stopped trials of ``r_max - last step``."""
        return int(sum(self.r_max - self._last.get(t, 0) for t in self._stopped))

    @property
    def n_stopped(self) -> int:
        """Trials stopped so far."""
        return len(self._stopped)
