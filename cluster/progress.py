"""Terminal progress of a campaign: one tqdm bar per generation, and a line per restart.

:class:`TqdmProgress` implements the progress protocol of :meth:`cluster.campaign.Campaign.run`
(every method optional there; generations are numbered from 1, as in the journal):

- ``on_generation_start(generation, popsize)``: opens a bar of ``popsize`` trials,
- ``on_trial_started(generation, trial_id)``: a trial began to run on a worker (the executor's
  "started" event, not its submission to Ray: submitted trials may wait for resources),
- ``on_trial_finished(generation, row, counts)``: moves the bar to ``done + failed`` trials and
  shows the counts by status and the best objective so far,
- ``on_generation_end(generation, best_objective)``: closes the bar (its 100% line is written once),
- ``on_restart(generation, stop, new_popsize)``: the strategy's termination criteria ``stop``
  (pycma's names and thresholds) fired after ``generation`` and the campaign restarted it with
  population size ``new_popsize`` (see :mod:`cluster.continuation`); printed as one line.

The bar's postfix reads ``done=5 run=2 fail=0 best=0.0123 elapsed=0:01:23``: ``run`` counts the
trials that started and have not finished (from ``on_trial_started``/``on_trial_finished``; a
caller that never reports starts gets ``counts["running"]``, i.e. trials submitted to Ray);
``elapsed`` is the wall-clock time since the progress object was made (this driver), tqdm's own
timer the time of the generation.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import is_dataclass
from typing import IO, Any

from tqdm import tqdm

from .store import finite_or_none

__all__ = ["TqdmProgress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``3723.4`` -> ``"1:02:03"`` (hours:minutes:seconds, seconds truncated)."""
    s = max(int(seconds), 0)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _field(row: Any, key: str) -> Any:
    """Field ``key`` of a journal trial: an attribute of a :class:`cluster.trialrow.TrialRow` (or any
    object with attributes), else ``row.get(key)`` of a plain dict; None if absent."""
    if row is None:
        return None
    if is_dataclass(row) or not isinstance(row, Mapping):
        return getattr(row, key, None)
    return row.get(key)


class TqdmProgress:
    """tqdm bars, one per generation, written to ``file`` (default ``sys.stderr``).

    Parameters
    ----------
    file : text stream, optional
        Where the bars and restart lines go.
    best : float, optional
        Best objective known before this driver started (e.g. on resume).
    disable : bool
        No bars (the methods still track ``best``, ``counts`` and ``running``).  Restart lines are
        still printed: they change what the campaign does.
    percent : bool
        Show ``best`` in percent (``0.005`` -> ``best=0.5%``): for objectives that are error
        fractions, such as ``trials:train_and_evaluate``'s validation error.

    Attributes
    ----------
    best : float or None
        Smallest finite objective seen (``objective`` of finished ``done`` trials, and the
        ``best_objective`` reported at generation ends).
    counts : dict
        Last counts by status of the open generation (``done``, ``running``, ``failed``,
        ``pending``) as the campaign reported them.
    running : int
        Trials of the open generation that started and have not finished.
    restarts : list of str
        The restart lines printed so far.
    """

    def __init__(
        self, file: IO[str] | None = None, *, best: float | None = None, disable: bool = False, percent: bool = False
    ):
        self.file = file if file is not None else sys.stderr
        self.disable = disable
        self.percent = percent
        self.best = finite_or_none(best)
        self.counts: dict[str, int] = {}
        self.restarts: list[str] = []
        self.t0 = time.monotonic()
        self._bar: tqdm | None = None
        self._generation: int | None = None
        self._popsize: int | None = None
        self._started: set[Any] = set()
        self._starts_reported = False

    @property
    def running(self) -> int:
        """Trials running now: started minus finished, or the campaign's count if it reports no starts."""
        return len(self._started) if self._starts_reported else int(self.counts.get("running", 0))

    # -- protocol ---------------------------------------------------------------------------
    def on_generation_start(self, generation: int, popsize: int) -> None:
        """Open the bar of ``generation`` (1-based, as journaled) with ``popsize`` trials."""
        self._close()
        self._generation, self._popsize = generation, int(popsize)
        self.counts = {}
        self._started = set()
        self._bar = tqdm(
            total=int(popsize),
            desc=f"generation {generation}",
            unit="trial",
            file=self.file,
            disable=self.disable,
            dynamic_ncols=True,
            leave=True,
            mininterval=0.2,
            postfix=self.postfix(),
        )

    def on_trial_started(self, generation: int, trial_id: Any) -> None:
        """Count trial ``trial_id`` as running (it began on a worker) until it finishes."""
        self._starts_reported = True
        if generation == self._generation:
            self._started.add(trial_id)
            self._refresh()

    def on_trial_finished(self, generation: int, row: Any, counts: Mapping[str, int]) -> None:
        """Record a finished trial (``row``: a journal trial) and the generation's ``counts``.

        The bar is redrawn unless the generation is complete (then :meth:`on_generation_end`
        or :meth:`close` writes its final line, once).
        """
        if (_field(row, "status") or "done") == "done":
            self._update_best(_field(row, "objective"))
        self._started.discard(_field(row, "id"))
        self.counts = {k: int(v) for k, v in (counts or {}).items()}
        if self._bar is None or generation != self._generation:
            return
        finished = self.counts.get("done", 0) + self.counts.get("failed", 0)
        total = self._bar.total or finished
        self._bar.n = min(finished, total)
        if finished < total:
            self._refresh()
        else:
            self._bar.set_postfix_str(self.postfix(), refresh=False)

    def on_generation_end(self, generation: int, best_objective: float | None) -> None:
        """Close the bar of ``generation``; ``best_objective`` is the campaign's best so far."""
        self._update_best(best_objective)
        if self._bar is not None:
            self._bar.n = self._bar.total or self._bar.n
            self._bar.set_postfix_str(self.postfix(), refresh=False)
        self._close()

    def on_restart(self, generation: int, stop: Mapping[str, Any], new_popsize: int) -> None:
        """Print that the strategy's criteria ``stop`` fired after ``generation`` and it was restarted."""
        from .continuation import describe_stop

        sizes = f"{self._popsize} -> {int(new_popsize)}" if self._popsize else f"{int(new_popsize)}"
        line = (
            f"generation {generation}: the strategy's stopping criteria fired ({describe_stop(dict(stop or {}))}); "
            f"restart {len(self.restarts) + 1} (IPOP): popsize {sizes}, sigma reset to sigma0; "
            "the search goes on until the budget"
        )
        self.restarts.append(line)
        self._close()
        tqdm.write(line, file=self.file)

    # -- helpers ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close an open bar (e.g. after an interruption); it keeps its last state on screen."""
        self._close()

    def postfix(self) -> str:
        """The text shown after the bar, e.g. ``done=5 run=2 fail=0 best=0.0123 elapsed=0:00:42``."""
        c = self.counts
        if self.best is None:
            best = "n/a"
        else:
            best = f"{100.0 * self.best:.3g}%" if self.percent else f"{self.best:.4g}"
        return (
            f"done={c.get('done', 0)} run={self.running} fail={c.get('failed', 0)} "
            f"best={best} elapsed={format_duration(time.monotonic() - self.t0)}"
        )

    def _update_best(self, value: Any) -> None:
        v = finite_or_none(value)
        if v is not None and (self.best is None or v < self.best):
            self.best = v

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self.postfix(), refresh=False)
            self._bar.refresh()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
