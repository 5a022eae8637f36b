"""Trials stopped early by a Tune scheduler (``ASHAScheduler``, HyperBand...), for :class:`cluster.tune.ESSearcher`.

A scheduler such as Ray Tune's ``ASHAScheduler`` (asynchronous successive halving, Li et al.,
MLSys 2020, arXiv 1810.05934) stops poor trials after a few iterations.  Tune then calls the
searcher's ``on_trial_complete`` with the trial's last result (not an error), exactly as for a
trial that ran to the end: only the trial's progress, ``result[time_attr]`` (``training_iteration``
by default, the scheduler's ``time_attr``), tells them apart.

With ``max_t`` set, every ``tell`` ranks its trials lexicographically (highest level reached, then
the metric there; :func:`cluster.fidelity.lexicographic_fitness`): a stopped trial ranks below every
trial of the tell that got further, and among those stopped at the same level by its value there.
It is never told the failure penalty (failed trials still are, below everything,
:func:`cluster.penalty.penalize`).  What the full budget is:

* ``max_t=<int>``: the scheduler's ``max_t`` (pass the same number to both); levels are capped at
  it, and a trial is full-budget when ``result[time_attr] >= max_t``;
* ``max_t="auto"``: the largest level any completed trial has reached so far (for when the
  scheduler's ``max_t`` is not known).  Early in a run, before any trial ran to the end, the best
  level seen so far counts as the full budget.

``max_t=None`` (default) switches this off: every trial is told its last metric value, as an ES
with no scheduler needs (a trainable that stops by itself, e.g. through ``RunConfig(stop=...)``
when it reached a target, must not be ranked as stopped).

The information lost: a stopped trial's value at a lower level is compared only with others
stopped at that level, never with a full-budget value; an ES uses ranks only (Hansen, arXiv
1604.00772, Sec. 3), so the fitness is consistent, but a configuration that learns slowly and
ends well is ranked by its early value, the bias every successive-halving method shares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .fidelity import lexicographic_fitness

__all__ = ["Fidelity", "check_fidelity_args"]


def check_fidelity_args(max_t, time_attr) -> None:
    """Raise ``ValueError`` unless ``max_t`` is None, ``"auto"`` or an int >= 1 and ``time_attr`` a non-empty str."""
    is_int = isinstance(max_t, int) and not isinstance(max_t, bool)
    if not (max_t is None or (isinstance(max_t, str) and max_t == "auto") or (is_int and max_t >= 1)):
        raise ValueError(
            f"max_t must be None (no early stopping), 'auto' or the scheduler's max_t (an int >= 1), got {max_t!r}"
        )
    if not isinstance(time_attr, str) or not time_attr:
        raise ValueError(f"time_attr must be a result key such as 'training_iteration', got {time_attr!r}")


@dataclass
class Fidelity:
    """Levels reached by trials and the best full-budget result.

    Attributes
    ----------
    max_t : int, "auto" or None
        See the module docstring.
    time_attr : str
        Result key of the level (Tune's ``training_iteration`` by default).
    largest : float
        Largest level of any completed trial so far (0 before the first).
    best : dict
        ``{str(level): [value, flat config, trial_id]}``: the best value (own sign) per level
        that can count as full budget (only ``>= max_t`` for an int ``max_t``; ``"off"`` as the
        only key when ``max_t`` is None).
    """

    max_t: int | str | None = None
    time_attr: str = "training_iteration"
    largest: float = 0.0
    best: dict[str, list] = field(default_factory=dict)

    @property
    def on(self) -> bool:
        """True if stopped trials are ranked by level (``max_t`` set)."""
        return self.max_t is not None

    def level(self, result: Mapping[str, Any] | None, read) -> float | None:
        """The level of a result (``read(result, time_attr)``, capped at an int ``max_t``); None if
        ranking is off or the result has no finite level.  Updates :attr:`largest`."""
        if not self.on:
            return None
        v = read(result, self.time_attr)
        if v is None or not math.isfinite(v):
            return None
        if isinstance(self.max_t, int):
            v = min(v, float(self.max_t))
        self.largest = max(self.largest, v)
        return v

    def fitness(self, f: np.ndarray, levels: Sequence[float | None]) -> np.ndarray:
        """``(n,)`` fitness to minimize, NaN for failed rows, from ``f`` (n,) (minimization sign,
        NaN = failed) and each row's level (None = full budget: known results, results without
        ``time_attr``).  Unchanged when ranking is off."""
        if not self.on:
            return f
        top = float(self.max_t) if isinstance(self.max_t, int) else max([self.largest, *(v or 0 for v in levels)])
        return lexicographic_fitness([top if v is None else v for v in levels], f)

    def record(self, level: float | None, value: float | None, config: dict, trial_id: str, mode: str) -> None:
        """Keep ``value`` (own sign) if it is the best at its level among those that may count as full budget."""
        if value is None or not math.isfinite(value):
            return
        if not self.on:
            key = "off"
        elif level is None or (isinstance(self.max_t, int) and level < self.max_t):
            return
        else:
            key = repr(float(level))
        old = self.best.get(key)
        if old is None or (value > old[0] if mode == "max" else value < old[0]):
            self.best[key] = [float(value), dict(config), str(trial_id)]

    def best_result(self) -> tuple[float, dict, str, float | None] | None:
        """``(value, flat config, trial_id, level)`` of the best full-budget trial, or None."""
        if not self.best:
            return None
        if not self.on:
            v, c, t = self.best["off"]
            return v, c, t, None
        key = max(self.best, key=float) if self.max_t == "auto" else None
        if key is not None and float(key) < self.largest:
            return None  # no trial at the largest level seen has finished with a value yet
        if key is None:  # int max_t: every key is >= max_t (levels capped at max_t): one key
            key = max(self.best, key=float)
        v, c, t = self.best[key]
        return v, c, t, float(key)

    def to_json(self) -> dict[str, Any]:
        return {"largest": self.largest, "best": {k: list(v) for k, v in self.best.items()}}

    def load_json(self, d: Mapping[str, Any] | None) -> Fidelity:
        """This object's settings with the state of ``d`` (None: fresh)."""
        d = d or {}
        best = {str(k): [float(v[0]), dict(v[1]), str(v[2])] for k, v in d.get("best", {}).items()}
        return Fidelity(self.max_t, self.time_attr, float(d.get("largest", 0.0)), best)
