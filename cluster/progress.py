"""Terminal progress of a campaign: one tqdm bar per generation.

:class:`TqdmProgress` implements the progress protocol of :meth:`cluster.campaign.Campaign.run`
(every method optional there):

- ``on_generation_start(generation, popsize)``: opens a bar of ``popsize`` trials,
- ``on_trial_finished(generation, row, counts)``: moves it to ``done + failed`` trials and shows
  the counts by status and the best objective so far,
- ``on_generation_end(generation, best_objective)``: closes it.

The bar's postfix reads ``done=5 run=2 fail=0 best=0.0123 elapsed=0:01:23``; ``elapsed`` is
the wall-clock time since the progress object was made (this driver), tqdm's own timer the
time of the generation.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from tqdm import tqdm

from .store import finite_or_none

__all__ = ["TqdmProgress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``3723.4`` -> ``"1:02:03"`` (hours:minutes:seconds, seconds truncated)."""
    s = max(int(seconds), 0)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class TqdmProgress:
    """tqdm bars, one per generation, written to ``file`` (default ``sys.stderr``).

    Parameters
    ----------
    file : text stream, optional
        Where the bars go.
    best : float, optional
        Best objective known before this driver started (e.g. on resume).
    disable : bool
        No output at all (the methods still track ``best`` and ``counts``).

    Attributes
    ----------
    best : float or None
        Smallest finite objective seen (``row["objective"]`` of finished trials, and the
        ``best_objective`` reported at generation ends).
    counts : dict
        Last counts by status (``done``, ``running``, ``failed``, ``pending``).
    """

    def __init__(self, file: IO[str] | None = None, *, best: float | None = None, disable: bool = False):
        self.file = file if file is not None else sys.stderr
        self.disable = disable
        self.best = finite_or_none(best)
        self.counts: dict[str, int] = {}
        self.t0 = time.monotonic()
        self._bar: tqdm | None = None
        self._generation: int | None = None

    # -- protocol ---------------------------------------------------------------------------
    def on_generation_start(self, generation: int, popsize: int) -> None:
        """Open the bar of ``generation`` (0-based, shown as is) with ``popsize`` trials."""
        self._close()
        self._generation = generation
        self.counts = {}
        self._bar = tqdm(
            total=int(popsize),
            desc=f"generation {generation}",
            unit="trial",
            file=self.file,
            disable=self.disable,
            dynamic_ncols=True,
            leave=True,
            mininterval=0.2,
        )
        self._refresh()

    def on_trial_finished(self, generation: int, row: Mapping[str, Any], counts: Mapping[str, int]) -> None:
        """Record a finished trial (``row`` a journal trial dict) and the generation's ``counts``."""
        if row is not None and row.get("status", "done") == "done":
            self._update_best(row.get("objective"))
        self.counts = {k: int(v) for k, v in (counts or {}).items()}
        if self._bar is not None and generation == self._generation:
            finished = self.counts.get("done", 0) + self.counts.get("failed", 0)
            self._bar.n = min(finished, self._bar.total or finished)
            self._refresh()

    def on_generation_end(self, generation: int, best_objective: float | None) -> None:
        """Close the bar of ``generation``; ``best_objective`` is the campaign's best so far."""
        self._update_best(best_objective)
        if self._bar is not None:
            self._bar.n = self._bar.total or self._bar.n
            self._refresh()
        self._close()

    # -- helpers ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close an open bar (e.g. after an interruption)."""
        self._close()

    def postfix(self) -> str:
        """The text shown after the bar, e.g. ``done=5 run=2 fail=0 best=0.0123 elapsed=0:00:42``."""
        c = self.counts
        best = "n/a" if self.best is None else f"{self.best:.4g}"
        return (
            f"done={c.get('done', 0)} run={c.get('running', 0)} fail={c.get('failed', 0)} "
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
