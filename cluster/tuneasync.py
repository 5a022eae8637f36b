"""Asynchronous bookkeeping of :class:`cluster.tune.ESSearcher` (``mode="async"``, issue 13 item 4).

No generation barrier: a configuration is handed out whenever Tune asks while budget remains::

    supply   candidates asked from the strategy's current distribution, not handed out yet
             (ask ahead; ask again when it runs out; emptied after every tell, so that new
             trials always come from the newest distribution)
    out      trial id -> candidate handed out, with the generation (tells so far) and the ask
             that produced it
    done     finished results in completion order, not told yet

Whenever ``done`` holds ``popsize`` results, the first ``popsize`` are told (``strategy.tell``)
in completion order.  The rows of the strategy's pending ask whose own candidate finished keep
their row (told as asked, exact ``z``); every other row (sampled from an older distribution, a
``points_to_evaluate`` entry or a known result) is an injected solution, whose step the strategy
clips (Hansen, arXiv 1110.4181; :mod:`esopt.injection`).  No finished trial is dropped.

Restarts after convergence: results of trials sampled before a restart are told to the new run
as injected rows (clipped, like any stale sample); they also stay Tune results, so they count
for the best.  A restart starts from the old run's mean with a fresh ``sigma0``, so such samples
lie well inside the new distribution.

Everything here is plain JSON (:meth:`AsyncQueue.to_json`), stored in the searcher's checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AsyncQueue", "Candidate"]


@dataclass
class Candidate:
    """One candidate: ``x`` (d,) unit-cube coordinates, ``config`` flat ``{name: value}``,
    ``generation`` (generations told when it was asked), ``ask`` (number of the strategy's ask that
    produced it, -1 for points and known results) and ``row`` (its row in that ask)."""

    x: list[float]
    config: dict[str, Any]
    generation: int
    ask: int = -1
    row: int = -1

    def to_json(self) -> list:
        return [self.x, self.config, self.generation, self.ask, self.row]

    @classmethod
    def from_json(cls, v) -> Candidate:
        x, config, generation, ask, row = v
        return cls([float(t) for t in x], dict(config), int(generation), int(ask), int(row))


@dataclass
class AsyncQueue:
    """Supply, outstanding trials and finished results of an asynchronous ESSearcher.

    ``n_asks`` counts the strategy's asks; ``pending_ask`` is the number of the ask the strategy
    holds pending (None after a tell).  ``done`` holds ``(candidate, value)`` with ``value`` the
    metric in its own sign, None for a failed trial.
    """

    supply: list[Candidate] = field(default_factory=list)
    out: dict[str, Candidate] = field(default_factory=dict)
    done: list[tuple[Candidate, float | None]] = field(default_factory=list)
    n_asks: int = 0
    pending_ask: int | None = None
    asked: list[list[float]] | None = None  # X of the pending ask (popsize, d)

    def refill(self, X: np.ndarray, configs: list[dict[str, Any]], generation: int) -> None:
        """Replace the supply by the rows of a new ask ``X`` (popsize, d)."""
        self.pending_ask = self.n_asks
        self.asked = [[float(t) for t in x] for x in X]
        self.supply = [
            Candidate([float(t) for t in x], c, generation, self.n_asks, i) for i, (x, c) in enumerate(zip(X, configs))
        ]
        self.n_asks += 1

    def population(self, popsize: int) -> tuple[np.ndarray, list[float | None]]:
        """The first ``popsize`` finished results as ``(X, values)`` for one tell; removes them.

        Rows of the pending ask (``asked``, (popsize, d)) whose own candidate is among them keep
        their row; the others fill the remaining rows in completion order.  Call after
        :meth:`refill` (a pending ask of ``popsize`` rows is needed)."""
        X, values, _ = self.population_rows(popsize)
        return X, values

    def population_rows(self, popsize: int) -> tuple[np.ndarray, list[float | None], list[int]]:
        """As :meth:`population`, plus ``rows``: the row of ``X`` that each of the first ``popsize``
        finished results (in completion order) was given."""
        batch, self.done = self.done[:popsize], self.done[popsize:]
        X = np.array(self.asked, dtype=float)
        values: list[float | None] = [None] * popsize
        rows: list[int] = [-1] * len(batch)
        free = set(range(popsize))
        rest = []
        for i, (cand, value) in enumerate(batch):
            if cand.ask == self.pending_ask and cand.row in free:
                free.discard(cand.row)
                values[cand.row], rows[i] = value, cand.row
            else:
                rest.append(i)
        for row, i in zip(sorted(free), rest):
            cand, value = batch[i]
            X[row] = cand.x
            values[row], rows[i] = value, row
        self.pending_ask, self.asked = None, None
        self.supply = []
        return X, values, rows

    def to_json(self) -> dict[str, Any]:
        return {
            "supply": [c.to_json() for c in self.supply],
            "out": {k: c.to_json() for k, c in self.out.items()},
            "done": [[c.to_json(), v] for c, v in self.done],
            "n_asks": self.n_asks,
            "pending_ask": self.pending_ask,
            "asked": self.asked,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AsyncQueue:
        """Inverse of :meth:`to_json`; raises ``KeyError``/``TypeError``/``ValueError`` on a malformed dict."""
        return cls(
            supply=[Candidate.from_json(c) for c in d["supply"]],
            out={str(k): Candidate.from_json(c) for k, c in d["out"].items()},
            done=[(Candidate.from_json(c), None if v is None else float(v)) for c, v in d["done"]],
            n_asks=int(d["n_asks"]),
            pending_ask=None if d["pending_ask"] is None else int(d["pending_ask"]),
            asked=None if d["asked"] is None else [[float(t) for t in x] for x in d["asked"]],
        )
