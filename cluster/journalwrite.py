"""Writing a campaign journal (the campaign driver): the write half of :class:`cluster.store.Journal`.

Every method is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), committed before it returns,
and checks its arguments before writing.
"""

from __future__ import annotations

import errno
import json
import math
import os
import resource
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from esopt.jsonutil import json_default

from .status import CampaignStatus, TrialStatus

__all__ = ["JournalWrites", "JournalFullError", "finite_or_none", "RESTART_KEY"]

RESTART_KEY = "restart."  # meta keys of journaled restarts: restart.<generation told before it>

CAMPAIGN_STATUSES = tuple(s.value for s in CampaignStatus)
_FINISH_STATUSES = (TrialStatus.DONE, TrialStatus.FAILED, TrialStatus.STOPPED, TrialStatus.CANCELLED)


def finite_or_none(v: Any) -> float | None:
    """``float(v)`` if that is a finite number, else ``None`` (also for None and non-numbers)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class JournalFullError(OSError):
    """The journal could not be written because its file system is full (``errno.ENOSPC``, SQLite's
    ``SQLITE_FULL``) or the driver's file-size limit (``ulimit -f``, ``RLIMIT_FSIZE``: ``errno.EFBIG``)
    was reached.  The transaction was rolled back: the journal holds every earlier commit and is
    consistent; free space (or raise the limit) and run ``esopt resume DIR``.

    Attributes: ``errno`` (``ENOSPC`` or ``EFBIG``), ``what`` (what was being journaled, e.g. "a
    trial's result"), ``filename`` (the journal's path, or None).
    """

    def __init__(self, code: int, what: str, path: os.PathLike | str | None):
        where = f" to {path}" if path is not None else ""
        directory = os.path.dirname(os.fspath(path)) if path is not None else "DIR"
        if code == errno.EFBIG:
            head, fix = "file size limit (ulimit -f) reached", "raise the limit"
        else:
            head, fix = "no space left on device", "free space"
        msg = f"{head} while journaling {what}{where}: {fix} and run `esopt resume {directory}`"
        super().__init__(code, msg)
        self.what = what
        self.filename = None if path is None else os.fspath(path)

    def __str__(self) -> str:
        return self.strerror


# what each writing method journals, for JournalFullError's message
_WHAT = {
    "add_restart": "a strategy restart",
    "set_campaign": "the campaign's status",
    "add_generation": "a new generation's candidates",
    "mark_submitted": "trial submissions",
    "mark_started": "a trial's start",
    "finish_trial": "a trial's result",
    "cancel_running": "cancelled trials",
    "tell": "a generation's tell (strategy state)",
}


def _caller_what() -> str:
    """What the writing method that called ``_write`` journals (``_WHAT``; else its name)."""
    frame = sys._getframe(2)  # 0: here, 1: _write, 2: the writing method
    while frame is not None and frame.f_code.co_name in ("_write", "_caller_what"):
        frame = frame.f_back
    name = frame.f_code.co_name if frame is not None else "?"
    return _WHAT.get(name, f"{name.strip('_').replace('_', ' ')}")


def _full_errno(e: BaseException, path: Any) -> int | None:
    """``ENOSPC``/``EFBIG`` if ``e`` means the journal ran out of room, else None.

    SQLite reports a full file system as ``SQLITE_FULL`` ("database or disk is full"); a write
    refused by ``RLIMIT_FSIZE`` comes back as ``SQLITE_IOERR_WRITE`` ("disk I/O error", errno not
    exposed), taken as EFBIG only when a soft file-size limit is set and a journal file (db or -wal)
    has reached it within one page.
    """
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG):
        return e.errno
    if not isinstance(e, sqlite3.Error):
        return None
    name = getattr(e, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL" or "database or disk is full" in str(e):
        return errno.ENOSPC
    if name.startswith("SQLITE_IOERR") and path is not None:
        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY:
            sizes = []
            for suffix in ("", "-wal"):
                try:
                    sizes.append(os.path.getsize(os.fspath(path) + suffix))
                except OSError:
                    pass
            if any(size + 65536 > soft for size in sizes):
                return errno.EFBIG
    return None


def _elapsed(elapsed_s: float | None, now: float) -> list[tuple[str, Sequence[Any]]]:
    """The statement that records the campaign's elapsed seconds with a tell (none if not given)."""
    if elapsed_s is None:
        return []
    return [("UPDATE campaign SET elapsed_s=?, updated_at=? WHERE id=1", (float(elapsed_s), now))]


def _dumps(obj: Any) -> str:
    # allow_nan keeps NaN/inf in result dicts readable by Python (json.loads accepts them)
    return json.dumps(obj, allow_nan=True, default=json_default)


class JournalWrites:
    """The writing methods of :class:`cluster.store.Journal` (which provides ``conn`` and ``readonly``)."""

    conn: sqlite3.Connection
    readonly: bool

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Run ``statements`` (``(sql, args)`` pairs) as one transaction, committed before returning.

        Raises ``ValueError`` on a read-only journal, and :class:`JournalFullError` (an ``OSError``
        with ``errno`` ``ENOSPC`` or ``EFBIG``) when the file system or the process's file-size
        limit leaves no room for the transaction; nothing of it is then committed and the journal
        stays as it was after the previous commit.  Other SQLite errors propagate unchanged.
        """
        if self.readonly:
            raise ValueError("journal opened read-only")
        c = self.conn
        began = False  # a BEGIN that fails (inside a reader's snapshot) leaves that transaction alone
        try:
            c.execute("BEGIN IMMEDIATE")
            began = True
            for sql, args in statements:
                c.execute(sql, args)
            c.execute("COMMIT")
        except BaseException as e:
            if began and c.in_transaction:  # SQLite rolls back by itself after SQLITE_FULL / I/O errors
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the original error says more
            full = _full_errno(e, getattr(self, "path", None))
            if full is not None:
                raise JournalFullError(full, _caller_what(), getattr(self, "path", None)) from e
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

    def mark_started_many(self, rows: Sequence[tuple[int, str | None, str | None, float]]) -> None:
        """:meth:`mark_started` for several trials, ``(trial_id, node_id, worker_id, started_at)``
        each, in one commit."""
        self._write(
            [
                ("UPDATE trials SET node_id=?, worker_id=?, started_at=? WHERE id=?", (n, w, float(at), int(t)))
                for t, n, w, at in rows
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
        finish_seq: int | None = None,
    ) -> None:
        """Record a trial's outcome (:class:`TrialStatus` ``done``, ``failed``, ``stopped`` or
        ``cancelled``, or its string); one commit.

        ``objective`` is stored only if finite; node/worker ids, if given, replace the stored ones;
        ``finish_seq`` (the trial's place in the campaign's completion order) is stored if given.
        """
        if status not in _FINISH_STATUSES:
            raise ValueError(f"finish status must be done, failed or cancelled, got {status!r}")
        now = time.time() if finished_at is None else finished_at
        self._write(
            [
                (
                    "UPDATE trials SET status=?, objective=?, result_json=?, error=?, finished_at=?, "
                    "node_id=COALESCE(?, node_id), worker_id=COALESCE(?, worker_id), "
                    "finish_seq=COALESCE(?, finish_seq) WHERE id=?",
                    (
                        TrialStatus(status).value,
                        finite_or_none(objective),
                        None if result is None else _dumps(dict(result)),
                        error,
                        now,
                        node_id,
                        worker_id,
                        None if finish_seq is None else int(finish_seq),
                        int(trial_id),
                    ),
                )
            ]
        )

    def cancel_running(
        self, generation: int | None = None, *, reason: str = "cancelled", at: float | None = None
    ) -> list[int]:
        """Mark every ``running`` trial (of one generation, or all) ``cancelled``; one commit.

        ``at``: the ``finished_at`` to record (the executor's clock, virtual in a simulation);
        None = now (Unix seconds).  Returns the ids changed.
        """
        q = "SELECT id FROM trials WHERE status='running'"
        args: tuple = ()
        if generation is not None:
            q += " AND generation=?"
            args = (int(generation),)
        ids = [r[0] for r in self.conn.execute(q, args)]
        now = time.time() if at is None else float(at)
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
        stmts.append(
            ("UPDATE trials SET told_generation=generation, told_pos=idx WHERE generation=?", (int(generation),))
        )
        self._write(stmts + _elapsed(elapsed_s, now))

    # ------------------------------------------------------------------ asynchronous campaigns
    def add_trials(
        self,
        generation: int,
        idx: Sequence[int],
        X: Sequence[Sequence[float]],
        params: Sequence[Mapping[str, Any]],
    ) -> list[int]:
        """Store candidates of an asynchronous campaign as ``pending`` trials, one commit.

        ``generation`` is the generation whose distribution produced them (tells so far + 1),
        ``idx`` their numbers among that generation's candidates (ask ``k`` of it, row ``r``:
        ``k * popsize + r``), ``X`` the ``(m, d)`` coordinates and ``params`` the decoded dicts.
        Returns the trial ids in the given order.  Raises ``ValueError`` for mismatched lengths
        (``sqlite3.IntegrityError`` if a ``(generation, idx)`` is journaled already).
        """
        rows = [[float(v) for v in x] for x in X]
        if not (len(rows) == len(params) == len(idx)):
            raise ValueError(f"idx, X and params must have the same length, got {len(idx)}, {len(rows)}, {len(params)}")
        self._write(
            [
                (
                    "INSERT INTO trials(generation, idx, x_json, params_json, status, attempts) "
                    "VALUES (?, ?, ?, ?, 'pending', 0)",
                    (int(generation), int(i), json.dumps(x), _dumps(dict(p))),
                )
                for i, x, p in zip(idx, rows, params)
            ]
        )
        q = "SELECT id FROM trials WHERE generation=? AND idx=?"
        return [self.conn.execute(q, (int(generation), int(i))).fetchone()[0] for i in idx]

    def tell_population(
        self,
        told_generation: int,
        rows: Sequence[tuple[int, int]],
        *,
        sigma: float,
        mean: Sequence[float],
        best_objective: float | None,
        state: bytes,
        elapsed_s: float | None = None,
        told_at: float | None = None,
    ) -> None:
        """Record a tell of an asynchronous campaign: the ``generations`` row ``told_generation``
        (its ``popsize`` = ``len(rows)``, ``asked_at`` = ``told_at``) with sigma, mean, best so far
        and the strategy's checkpoint bytes, and for each ``(trial_id, pos)`` in ``rows`` that it
        was told at row ``pos``; one commit.  Raises ``ValueError`` for an empty ``rows``."""
        if not rows:
            raise ValueError("a tell needs at least one (trial_id, pos) row")
        now = time.time() if told_at is None else told_at
        stmts: list[tuple[str, Sequence[Any]]] = [
            (
                "INSERT INTO generations(generation, popsize, asked_at, told_at, sigma, mean_json, best_objective, "
                "state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    int(told_generation),
                    len(rows),
                    now,
                    now,
                    float(sigma),
                    json.dumps([float(v) for v in mean]),
                    finite_or_none(best_objective),
                    sqlite3.Binary(state),
                ),
            )
        ]
        stmts += [
            ("UPDATE trials SET told_generation=?, told_pos=? WHERE id=?", (int(told_generation), int(pos), int(t)))
            for t, pos in rows
        ]
        self._write(stmts + _elapsed(elapsed_s, now))

    def add_report(
        self,
        trial_id: int,
        step: int,
        value: float,
        *,
        reported_at: float | None = None,
        rung: int | None = None,
    ) -> None:
        """Journal one report of a trial (multi-fidelity), before the decision that uses it; one commit.

        Inserts ``reports(trial_id, step, value, reported_at)`` and sets the trial's ``resource``
        to ``step`` (the resource it consumed so far) and, if given, its ``rung`` (index of the
        highest rung reached, :meth:`cluster.fidelity.ASHA.rung_of`).  Raises ``ValueError`` for a
        step that is not an integer >= 1, a value that is not finite, an unknown trial, a step the
        trial reported already (a trial that restarts from step 0 needs :meth:`reset_reports`
        first), or a read-only journal; nothing is written then.
        """
        from numbers import Integral, Real

        if (
            isinstance(step, bool)
            or not isinstance(step, Real)
            or not math.isfinite(step)
            or step != int(step)
            or step < 1
        ):
            raise ValueError(f"step must be an integer >= 1, got {step!r}")
        v = finite_or_none(value)
        if v is None or isinstance(value, bool):
            raise ValueError(f"value must be a finite number, got {value!r}")
        if rung is not None and (isinstance(rung, bool) or not isinstance(rung, Integral) or rung < 0):
            raise ValueError(f"rung must be None or an integer >= 0, got {rung!r}")
        tid, s = int(trial_id), int(step)
        if self.conn.execute("SELECT 1 FROM trials WHERE id=?", (tid,)).fetchone() is None:
            raise ValueError(f"no trial {tid} in the journal")
        if self.conn.execute("SELECT 1 FROM reports WHERE trial_id=? AND step=?", (tid, s)).fetchone() is not None:
            raise ValueError(
                f"trial {tid} already has a report at step {s}; a trial that restarts from step 0 needs "
                f"journal.reset_reports({tid}) first"
            )
        now = time.time() if reported_at is None else float(reported_at)
        self._write(
            [
                ("INSERT INTO reports(trial_id, step, value, reported_at) VALUES (?, ?, ?, ?)", (tid, s, v, now)),
                (
                    "UPDATE trials SET resource=?, rung=COALESCE(?, rung) WHERE id=?",
                    (float(s), None if rung is None else int(rung), tid),
                ),
            ]
        )

    def reset_reports(self, trial_id: int) -> int:
        """Delete a trial's reports and clear its ``rung`` and ``resource``: it restarts from step 0
        (a retry, or a trial running when the campaign was killed); one commit.  Returns how many
        reports were deleted."""
        tid = int(trial_id)
        n = self.conn.execute("SELECT COUNT(*) FROM reports WHERE trial_id=?", (tid,)).fetchone()[0]
        self._write(
            [
                ("DELETE FROM reports WHERE trial_id=?", (tid,)),
                ("UPDATE trials SET rung=NULL, resource=NULL WHERE id=?", (tid,)),
            ]
        )
        return int(n)
