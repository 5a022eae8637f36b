"""Reading a campaign journal: the read-only half of :class:`cluster.store.Journal`.

Every method reads through ``self.conn`` and never writes; statuses are the enums of
:mod:`cluster.status`, trial rows :class:`cluster.trialrow.TrialRow`.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .journalschema import columns
from .status import TrialStatus, failure_reason
from .trialrow import TRIAL_COLUMNS, TrialRow

if TYPE_CHECKING:  # pragma: no cover
    from .config import CampaignConfig

__all__ = ["JournalReads"]

TRIAL_STATUSES = tuple(s.value for s in TrialStatus)
_INFO_COLUMNS = tuple(columns("campaign", exclude=("id", "config_json")))


class JournalReads:
    """The reading methods of :class:`cluster.store.Journal` (which provides ``conn`` and ``path``)."""

    conn: sqlite3.Connection
    path: Path
    _select_cache: str | None = None

    @property
    def _trial_select(self) -> str:
        """The ``SELECT`` list of :data:`TRIAL_COLUMNS`; a column an older journal lacks (read
        without migrating it, e.g. by ``esopt status``) reads as NULL."""
        if self._select_cache is None:
            have = {r[1] for r in self.conn.execute("PRAGMA table_info(trials)")}
            self._select_cache = ", ".join(c if c in have else f"NULL AS {c}" for c in TRIAL_COLUMNS)
        return self._select_cache

    @contextmanager
    def snapshot(self) -> Iterator[JournalReads]:
        """Read several methods from one committed state: ``with journal.snapshot(): ...``.

        Every method below is one or a few ``SELECT`` statements, each reading the journal as last
        committed when it runs; while a campaign writes, two calls may therefore see two different
        states (``trials()`` before a tell, ``generations()`` after it: a told generation whose trials
        are not all done).  Inside ``snapshot()`` every read sees the state committed when the first
        one ran (one SQLite read transaction, ``BEGIN`` ... ``COMMIT``), i.e. never a half-written
        generation.  A WAL reader never blocks the writer, but a long snapshot keeps the writer's
        checkpoints from passing it, so the ``-wal`` file grows meanwhile: keep it short.  Nested
        calls join the outer snapshot; a write method inside one raises ``sqlite3.OperationalError``.
        """
        c = self.conn
        if c.in_transaction:
            yield self
            return
        c.execute("BEGIN")
        try:
            yield self
        finally:
            c.execute("COMMIT")

    def meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict."""
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def restarts(self) -> list[dict[str, Any]]:
        """The restarts after convergence journaled by :meth:`add_restart`, in generation order:
        dicts with ``after_generation`` (the last generation of the stopped run), ``stop`` (the
        criteria that fired), ``popsize`` and ``seed`` of the new run, ``n_told``, ``start``."""
        from .journalwrite import RESTART_KEY

        found = [json.loads(v) for k, v in self.meta().items() if k.startswith(RESTART_KEY)]
        return sorted(found, key=lambda rec: int(rec["after_generation"]))

    def config(self) -> dict[str, Any]:
        """The stored (normalized) campaign config dict, with keys added since it was written set
        to their legacy values (:func:`cluster.config.upgrade_stored`)."""
        from .config import upgrade_stored

        return upgrade_stored(
            json.loads(self.conn.execute("SELECT config_json FROM campaign WHERE id=1").fetchone()[0])
        )

    def campaign_config(self, *, check_objective: bool = False) -> CampaignConfig:
        """The stored config as a :class:`cluster.config.CampaignConfig` (objective not imported
        and data not checked unless ``check_objective``: readers such as ``esopt status`` must work
        where the objective is not importable).  Raises ``ConfigError`` if it no longer validates."""
        from .config import parse_config

        return parse_config(self.config(), check_objective=check_objective, check_data=check_objective)

    def check_config(self, raw: Mapping[str, Any]) -> None:
        """Raise :class:`JournalError` if ``raw`` differs from the stored config (naming the keys)."""
        from .store import check_config_match

        check_config_match(self.config(), raw, self.path)

    def campaign_info(self) -> dict[str, Any]:
        """The campaign row (name, status, message, created_at, updated_at, driver_pid, elapsed_s)
        plus ``counts`` ({status: n} over all trials), ``n_trials``, ``n_generations`` (told
        generations), ``open_generation`` (asked but not told, or None) and ``stop`` (the
        criteria that ended a ``done`` campaign, else None)."""
        c = self.conn
        row = c.execute(f"SELECT {', '.join(_INFO_COLUMNS)} FROM campaign WHERE id=1").fetchone()
        info = dict(zip(_INFO_COLUMNS, row))
        counts = {s: 0 for s in TRIAL_STATUSES}
        for status, n in c.execute("SELECT status, COUNT(*) FROM trials GROUP BY status"):
            counts[status] = n
        info["counts"] = counts
        info["n_trials"] = sum(counts.values())
        info["n_generations"] = c.execute("SELECT COUNT(*) FROM generations WHERE told_at IS NOT NULL").fetchone()[0]
        og = c.execute("SELECT MIN(generation) FROM generations WHERE told_at IS NULL").fetchone()[0]
        info["open_generation"] = og
        stop = c.execute("SELECT value FROM meta WHERE key='stop'").fetchone()
        info["stop"] = json.loads(stop[0]) if stop is not None else None
        return info

    def trials(self, generation: int | None = None) -> list[TrialRow]:
        """Trials ordered by (generation, idx); all, or those of one generation.

        Each is a :class:`cluster.trialrow.TrialRow`: id, generation, idx, x (list of floats,
        strategy coordinates, see ``TrialRow.x``), params (dict, own units), status, objective (float|None), result
        (dict|None), error, attempts, node_id, worker_id, started_at, finished_at (also readable
        as ``row["status"]`` until esopt 0.3).
        """
        q = f"SELECT {self._trial_select} FROM trials"
        args: tuple = ()
        if generation is not None:
            q += " WHERE generation=?"
            args = (int(generation),)
        return [TrialRow.from_row(r) for r in self.conn.execute(q + " ORDER BY generation, idx", args)]

    def trial(self, trial_id: int) -> TrialRow:
        """One trial by id (raises ``KeyError`` if absent)."""
        r = self.conn.execute(f"SELECT {self._trial_select} FROM trials WHERE id=?", (int(trial_id),)).fetchone()
        if r is None:
            raise KeyError(trial_id)
        return TrialRow.from_row(r)

    def failure_counts(self, generation: int | None = None) -> dict[str, int]:
        """Distinct reasons of ``failed`` trials (all, or of one generation) -> how many.

        A reason is the first line of the trial's error without the kind prefix where the rest
        names the error itself (:func:`cluster.status.failure_reason`), e.g.
        ``"ValueError: dataset 'mnist' needs spec.data_dir"``, ``"timeout"``,
        ``"diverged: training loss nan ..."``.  Most frequent first (ties: alphabetical).
        """
        q, args = "SELECT error FROM trials WHERE status=?", (TrialStatus.FAILED.value,)
        if generation is not None:
            q, args = q + " AND generation=?", (*args, int(generation))
        counts = Counter(failure_reason(r[0]) for r in self.conn.execute(q, args))
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def generations(self) -> list[dict[str, Any]]:
        """Generations in order: generation, popsize, asked_at, told_at, sigma, mean (list|None),
        best_objective (best finite objective of all trials done up to this tell, or None)."""
        out = []
        for r in self.conn.execute(
            "SELECT generation, popsize, asked_at, told_at, sigma, mean_json, best_objective "
            "FROM generations ORDER BY generation"
        ):
            d = dict(zip(("generation", "popsize", "asked_at", "told_at", "sigma", "mean", "best_objective"), r))
            d["mean"] = json.loads(d["mean"]) if d["mean"] is not None else None
            out.append(d)
        return out

    def best_trial(self) -> TrialRow | None:
        """The done trial with the smallest objective (ties: lowest id), or None."""
        r = self.conn.execute(
            f"SELECT {self._trial_select} FROM trials WHERE status='done' AND objective IS NOT NULL "
            "ORDER BY objective, id LIMIT 1"
        ).fetchone()
        return None if r is None else TrialRow.from_row(r)

    def state(self, generation: int) -> bytes | None:
        """The strategy's checkpoint bytes stored after telling ``generation`` (None if not told);
        ``esopt.read_state(bytes)`` turns them into a state dict."""
        r = self.conn.execute("SELECT state FROM generations WHERE generation=?", (int(generation),)).fetchone()
        return None if r is None or r[0] is None else bytes(r[0])

    def last_state(self) -> tuple[int, bytes | None]:
        """``(generation, state bytes)`` of the last told generation; ``(0, None)`` if none."""
        r = self.conn.execute(
            "SELECT generation, state FROM generations WHERE told_at IS NOT NULL ORDER BY generation DESC LIMIT 1"
        ).fetchone()
        return (0, None) if r is None else (int(r[0]), bytes(r[1]) if r[1] is not None else None)

    def reports(self, trial_id: int | None = None) -> list[tuple[int, int, float]]:
        """The reports of objectives that take ``report`` (multi-fidelity), all or of one trial:
        ``(trial_id, step, value)`` in the order they were journaled (each before the decision that
        used it, so :meth:`cluster.fidelity.ASHA.from_reports` replays them in this order).  Empty
        for a journal without a ``reports`` table (schema 1, read without migrating it)."""
        c = self.conn
        if c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='reports'").fetchone() is None:
            return []
        q, args = "SELECT trial_id, step, value FROM reports", ()
        if trial_id is not None:
            q, args = q + " WHERE trial_id=?", (int(trial_id),)
        return [(int(t), int(s), float(v)) for t, s, v in c.execute(q + " ORDER BY rowid", args)]
