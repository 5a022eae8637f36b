"""Writing a campaign journal (the campaign driver): the write half of :class:`cluster.store.Journal`.

Every method is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), committed before it returns,
and checks its arguments before writing.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from esopt.jsonutil import json_default

from .status import CampaignStatus, TrialStatus

__all__ = ["JournalWrites", "finite_or_none", "RESTART_KEY"]

RESTART_KEY = "restart."  # meta keys of journaled restarts: restart.<generation told before it>

CAMPAIGN_STATUSES = tuple(s.value for s in CampaignStatus)
_FINISH_STATUSES = (TrialStatus.DONE, TrialStatus.FAILED, TrialStatus.CANCELLED)


def finite_or_none(v: Any) -> float | None:
    """``float(v)`` if that is a finite number, else ``None`` (also for None and non-numbers)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _dumps(obj: Any) -> str:
    # allow_nan keeps NaN/inf in result dicts readable by Python (json.loads accepts them)
    return json.dumps(obj, allow_nan=True, default=json_default)


class JournalWrites:
    """The writing methods of :class:`cluster.store.Journal` (which provides ``conn`` and ``readonly``)."""

    conn: sqlite3.Connection
    readonly: bool

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        if self.readonly:
            raise ValueError("journal opened read-only")
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                c.execute(sql, args)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def add_restart(self, after_generation: int, record: Mapping[str, Any]) -> None:
        """Journal that the strategy was restarted after generation ``after_generation`` (1-based,
        the last generation of the stopped run); ``record`` is a JSON-safe dict (the criteria that
        fired, the new popsize and seed, ...: :meth:`cluster.campaign.Campaign` writes it).  One
        commit; writing the same generation again replaces it (idempotent on resume).  Raises
        ``ValueError`` for ``after_generation < 0`` or a read-only journal."""
        g = int(after_generation)
        if g < 0:
            raise ValueError(f"after_generation must be >= 0, got {g}")
        row = {**record, "after_generation": g}
        self._write([("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (RESTART_KEY + str(g), _dumps(row)))])

    def set_campaign(self, *, stop: Mapping[str, Any] | None = None, **fields: Any) -> None:
        """Update columns of the campaign row (status, message, driver_pid, elapsed_s) and, if
        given, the criteria that stopped the campaign (``meta`` key ``stop``, JSON); one commit."""
        allowed = {"status", "message", "driver_pid", "elapsed_s"}
        bad = sorted(set(fields) - allowed)
        if bad:
            raise ValueError(f"unknown campaign fields {bad}; allowed: {sorted(allowed)}")
        if "status" in fields and fields["status"] not in CAMPAIGN_STATUSES:  # str enums compare equal
            raise ValueError(f"status must be one of {CAMPAIGN_STATUSES}, got {fields['status']!r}")
        if "status" in fields:
            fields["status"] = CampaignStatus(fields["status"]).value
        cols = ", ".join(f"{k}=?" for k in fields)
        stmts: list[tuple[str, Sequence[Any]]] = [
            (
                f"UPDATE campaign SET {cols}{', ' if cols else ''}updated_at=? WHERE id=1",
                (*fields.values(), time.time()),
            )
        ]
        if stop is not None or fields.get("status") == "running":
            stmts.append(
                (
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('stop', ?)",
                    (_dumps(dict(stop)) if stop is not None else "null",),
                )
            )
        self._write(stmts)

    def add_generation(
        self,
        generation: int,
        X: Sequence[Sequence[float]],
        params: Sequence[Mapping[str, Any]],
        *,
        asked_at: float | None = None,
    ) -> list[int]:
        """Store an asked generation: its row and one ``pending`` trial per candidate, one commit.

        ``X`` is the ``(popsize, n)`` unit-cube array, ``params`` the decoded dicts.  Returns the
        trial ids in ``idx`` order.
        """
        X = [[float(v) for v in row] for row in X]
        if len(X) != len(params):
            raise ValueError(f"X has {len(X)} rows but params has {len(params)}")
        now = time.time() if asked_at is None else asked_at
        stmts: list[tuple[str, Sequence[Any]]] = [
            (
                "INSERT INTO generations(generation, popsize, asked_at) VALUES (?, ?, ?)",
                (generation, len(X), now),
            )
        ]
        for i, (x, p) in enumerate(zip(X, params)):
            stmts.append(
                (
                    "INSERT INTO trials(generation, idx, x_json, params_json, status, attempts) "
                    "VALUES (?, ?, ?, ?, 'pending', 0)",
                    (generation, i, json.dumps(x), _dumps(dict(p))),
                )
            )
        stmts.append(("UPDATE campaign SET updated_at=? WHERE id=1", (now,)))
        self._write(stmts)
        return [r[0] for r in self.conn.execute("SELECT id FROM trials WHERE generation=? ORDER BY idx", (generation,))]

    def mark_submitted(
        self,
        trial_ids: Sequence[int],
        *,
        errors: Sequence[str | None] | None = None,
        now: float | None = None,
    ) -> None:
        """Trials handed to Ray: status ``running``, ``attempts + 1``, ``started_at`` = submission
        time (replaced by the start time reported by the worker), node/worker cleared, ``error``
        set to why the previous attempt failed (``errors``, for retries) or cleared; one commit."""
        now = time.time() if now is None else now
        errors = [None] * len(trial_ids) if errors is None else list(errors)
        if len(errors) != len(trial_ids):
            raise ValueError("errors must have one entry per trial id")
        self._write(
            [
                (
                    "UPDATE trials SET status='running', attempts=attempts+1, started_at=?, "
                    "finished_at=NULL, node_id=NULL, worker_id=NULL, error=? WHERE id=?",
                    (now, err, int(t)),
                )
                for t, err in zip(trial_ids, errors)
            ]
        )

    def mark_started(
        self, trial_id: int, *, node_id: str | None, worker_id: str | None, started_at: float | None = None
    ) -> None:
        """A worker reported that the trial started (node and worker ids); one commit."""
        now = time.time() if started_at is None else started_at
        self._write(
            [
                (
                    "UPDATE trials SET node_id=?, worker_id=?, started_at=? WHERE id=?",
                    (node_id, worker_id, now, int(trial_id)),
                )
            ]
        )

    def finish_trial(
        self,
        trial_id: int,
        *,
        status: TrialStatus | str,
        objective: float | None = None,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
        node_id: str | None = None,
        worker_id: str | None = None,
        finished_at: float | None = None,
    ) -> None:
        """Record a trial's outcome (:class:`TrialStatus` ``done``, ``failed`` or ``cancelled``, or
        its string); one commit.

        ``objective`` is stored only if finite; node/worker ids, if given, replace the stored ones.
        """
        if status not in _FINISH_STATUSES:
            raise ValueError(f"finish status must be done, failed or cancelled, got {status!r}")
        now = time.time() if finished_at is None else finished_at
        self._write(
            [
                (
                    "UPDATE trials SET status=?, objective=?, result_json=?, error=?, finished_at=?, "
                    "node_id=COALESCE(?, node_id), worker_id=COALESCE(?, worker_id) WHERE id=?",
                    (
                        TrialStatus(status).value,
                        finite_or_none(objective),
                        None if result is None else _dumps(dict(result)),
                        error,
                        now,
                        node_id,
                        worker_id,
                        int(trial_id),
                    ),
                )
            ]
        )

    def cancel_running(self, generation: int | None = None, *, reason: str = "cancelled") -> list[int]:
        """Mark every ``running`` trial (of one generation, or all) ``cancelled``; one commit.

        Returns the ids changed.
        """
        q = "SELECT id FROM trials WHERE status='running'"
        args: tuple = ()
        if generation is not None:
            q += " AND generation=?"
            args = (int(generation),)
        ids = [r[0] for r in self.conn.execute(q, args)]
        now = time.time()
        if ids:
            self._write(
                [
                    (
                        "UPDATE trials SET status='cancelled', error=?, finished_at=? WHERE id=?",
                        (reason, now, i),
                    )
                    for i in ids
                ]
            )
        return ids

    def tell(
        self,
        generation: int,
        *,
        sigma: float,
        mean: Sequence[float],
        best_objective: float | None,
        state: bytes,
        elapsed_s: float | None = None,
        told_at: float | None = None,
    ) -> None:
        """Record the tell of a generation: sigma, unit-cube mean, best so far and the strategy's
        checkpoint bytes (plus the campaign's elapsed time); one commit."""
        now = time.time() if told_at is None else told_at
        stmts: list[tuple[str, Sequence[Any]]] = [
            (
                "UPDATE generations SET told_at=?, sigma=?, mean_json=?, best_objective=?, state=? WHERE generation=?",
                (
                    now,
                    float(sigma),
                    json.dumps([float(v) for v in mean]),
                    finite_or_none(best_objective),
                    sqlite3.Binary(state),
                    int(generation),
                ),
            )
        ]
        if elapsed_s is not None:
            stmts.append(("UPDATE campaign SET elapsed_s=?, updated_at=? WHERE id=1", (float(elapsed_s), now)))
        self._write(stmts)
