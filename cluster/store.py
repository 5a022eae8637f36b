"""The campaign journal: one SQLite file (``campaign.db``) that is the truth about a campaign.

Tables (the column names are a contract: users query them with ``sqlite3``)::

    meta(key TEXT PRIMARY KEY, value TEXT)        -- schema_version, esopt_version, created_at
    campaign(id=1, name, config_json, status, message, created_at, updated_at, driver_pid, elapsed_s)
        status: running | done | failed | interrupted
    trials(id, generation, idx, x_json, params_json, status, objective, result_json, error,
           attempts, node_id, worker_id, started_at, finished_at, UNIQUE(generation, idx))
        status: pending | running | done | failed | cancelled
        x_json: the unit-cube vector (JSON list, floats round-trip exactly); params_json: the
        decoded hyperparameters in their own units; objective: NULL unless done with a finite value
    generations(generation, popsize, asked_at, told_at, sigma, mean_json, best_objective, state)
        state: esopt checkpoint bytes (``esopt.checkpoint.state_to_npz_bytes``) after the tell

Generations are numbered from 1 (generation ``g`` is the ``g``-th ask; after its tell the
strategy's ``countiter`` is ``g``); ``idx`` is the row of the candidate in the population (0-based).
Times are Unix seconds (``time.time()`` of the driver).

Durability: WAL mode with ``synchronous=NORMAL`` and one transaction per transition, committed
before the next transition starts.  A committed transition survives the death of the driver
(SIGKILL, crash); after an OS crash or power loss the file stays consistent but may lose the
last transitions, which a resume then re-runs.

Opening an existing file checks it before anything can write to it: the SQLite header, an
integrity check (``PRAGMA quick_check``) and the schema are read through a read-only connection
(``immutable=1`` when no ``-wal`` file exists, so not even -wal/-shm files are created), and a
corrupt file, a foreign database or a newer schema raise :class:`JournalError` with the
file left byte-for-byte untouched.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Journal", "JournalError", "SCHEMA_VERSION", "DB_NAME", "journal_path"]

SCHEMA_VERSION = 1
DB_NAME = "campaign.db"
_SQLITE_HEADER = b"SQLite format 3\x00"

CAMPAIGN_STATUSES = ("running", "done", "failed", "interrupted")
TRIAL_STATUSES = ("pending", "running", "done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE campaign(
    id INTEGER PRIMARY KEY CHECK(id = 1),
    name TEXT, config_json TEXT, status TEXT, message TEXT,
    created_at REAL, updated_at REAL, driver_pid INTEGER, elapsed_s REAL);
CREATE TABLE trials(
    id INTEGER PRIMARY KEY, generation INTEGER, idx INTEGER,
    x_json TEXT, params_json TEXT, status TEXT, objective REAL, result_json TEXT, error TEXT,
    attempts INTEGER, node_id TEXT, worker_id TEXT, started_at REAL, finished_at REAL,
    UNIQUE(generation, idx));
CREATE INDEX trials_status ON trials(status);
CREATE TABLE generations(
    generation INTEGER PRIMARY KEY, popsize INTEGER, asked_at REAL, told_at REAL, sigma REAL,
    mean_json TEXT, best_objective REAL, state BLOB);
"""

_REQUIRED_COLUMNS = {
    "meta": {"key", "value"},
    "campaign": {
        "id",
        "name",
        "config_json",
        "status",
        "message",
        "created_at",
        "updated_at",
        "driver_pid",
        "elapsed_s",
    },
    "trials": {
        "id",
        "generation",
        "idx",
        "x_json",
        "params_json",
        "status",
        "objective",
        "result_json",
        "error",
        "attempts",
        "node_id",
        "worker_id",
        "started_at",
        "finished_at",
    },
    "generations": {
        "generation",
        "popsize",
        "asked_at",
        "told_at",
        "sigma",
        "mean_json",
        "best_objective",
        "state",
    },
}

_TRIAL_COLUMNS = (
    "id, generation, idx, x_json, params_json, status, objective, result_json, error, attempts, "
    "node_id, worker_id, started_at, finished_at"
)


class JournalError(ValueError):
    """The journal cannot be used: missing, corrupt, foreign, of a newer schema, or of another config.

    Raised before anything is written to the file.
    """


def journal_path(path_or_dir: str | os.PathLike) -> Path:
    """``campaign.db`` inside a campaign directory, or the path itself if it names a file."""
    p = Path(path_or_dir)
    return p / DB_NAME if p.is_dir() or p.suffix != ".db" else p


def finite_or_none(v: Any) -> float | None:
    """``float(v)`` if that is a finite number, else ``None`` (also for None and non-numbers)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _dumps(obj: Any) -> str:
    # allow_nan keeps NaN/inf in result dicts readable by Python (json.loads accepts them)
    return json.dumps(obj, allow_nan=True, default=_json_default)


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"value of type {type(o).__name__} is not JSON serializable")


def check_config_match(stored: Mapping[str, Any], raw: Mapping[str, Any], path: Path) -> None:
    """Raise :class:`JournalError` if config ``raw`` differs from ``stored`` (naming the top-level keys)."""
    given = json.loads(json.dumps(dict(raw), default=_json_default))
    if dict(stored) != given:
        diff = sorted(k for k in set(stored) | set(given) if stored.get(k) != given.get(k))
        raise JournalError(
            f"the config does not match the one stored in {path} (differs in {diff}); "
            "resume with the stored config or start a new campaign directory"
        )


class Journal:
    """Read (and, for the campaign driver, write) a campaign journal.

    Parameters
    ----------
    path_or_dir : path
        A campaign directory (the file is ``DIR/campaign.db``) or the database file itself.
    readonly : bool
        Open through a read-only connection (``mode=ro``); safe while a campaign is running
        (WAL readers never block the writer).

    Raises
    ------
    JournalError
        If the file does not exist, is not an SQLite database, fails the integrity check, is a
        database of something else, or has a newer schema than this esopt reads.  The file is
        not modified in any of these cases.
    """

    def __init__(self, path_or_dir: str | os.PathLike, *, readonly: bool = False):
        self.path = journal_path(path_or_dir)
        self.readonly = bool(readonly)
        self._conn: sqlite3.Connection | None = None
        self._validate(self.path)
        self._conn = self._connect(readonly=self.readonly)

    # ------------------------------------------------------------------ opening / creating
    @classmethod
    def create(
        cls,
        directory: str | os.PathLike,
        *,
        name: str,
        config: Mapping[str, Any],
        driver_pid: int | None = None,
    ) -> Journal:
        """Create ``DIR/campaign.db`` with the schema, the config and status ``running``.

        Raises
        ------
        FileExistsError
            If the directory already holds a journal (resume it instead).
        TypeError
            If ``config`` is not JSON-serializable.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / DB_NAME
        config_json = json.dumps(dict(config), allow_nan=False, default=_json_default)
        tmp = directory / (DB_NAME + ".creating")
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.executescript(_SCHEMA)
            now = time.time()
            try:
                import esopt

                esopt_version = getattr(esopt, "__version__", "unknown")
            except Exception:  # noqa: BLE001 - the journal must not depend on esopt importing
                esopt_version = "unknown"
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("esopt_version", esopt_version),
                    ("created_at", repr(now)),
                ],
            )
            conn.execute(
                "INSERT INTO campaign(id, name, config_json, status, message, created_at, updated_at, "
                "driver_pid, elapsed_s) VALUES (1, ?, ?, 'running', NULL, ?, ?, ?, 0.0)",
                (name, config_json, now, now, driver_pid),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        # publish atomically: a half-created journal is never seen under the final name
        try:
            os.link(tmp, path)
        except FileExistsError:
            tmp.unlink(missing_ok=True)
            raise FileExistsError(f"{path} already exists; resume that campaign or choose another directory") from None
        except OSError:  # a filesystem without hard links: rename (not exclusive, but atomic)
            if path.exists():
                tmp.unlink(missing_ok=True)
                raise FileExistsError(f"{path} already exists; resume that campaign") from None
            os.replace(tmp, path)
            return cls(path)
        tmp.unlink()
        return cls(path)

    @staticmethod
    def _validate(path: Path) -> dict[str, Any]:
        """Check ``path`` without writing anything (see the module docstring); return the stored
        config dict.  Raises :class:`JournalError`."""
        if not path.exists():
            raise JournalError(f"no campaign journal at {path}")
        try:
            with open(path, "rb") as fh:
                header = fh.read(len(_SQLITE_HEADER))
        except OSError as e:
            raise JournalError(f"cannot read {path}: {e}") from e
        if header != _SQLITE_HEADER:
            raise JournalError(
                f"{path} is not an SQLite database (corrupt or not a campaign journal); it was left untouched"
            )
        # Without a -wal file nobody is writing and the main file holds everything: read it as
        # immutable, which creates no -wal/-shm files next to it.  With one (a live or killed
        # writer), a plain read-only connection sees the committed WAL content too.
        wal = Path(str(path) + "-wal").exists()
        uri = f"{path.resolve().as_uri()}?{'mode=ro' if wal else 'immutable=1'}"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as e:
            raise JournalError(f"cannot open {path}: {e}") from e
        try:
            try:
                check = conn.execute("PRAGMA quick_check").fetchall()
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            except sqlite3.DatabaseError as e:
                raise JournalError(f"{path} is corrupt ({e}); it was left untouched") from e
            if check != [("ok",)]:
                raise JournalError(f"{path} is corrupt (integrity check: {check[0][0]}); it was left untouched")
            if "meta" not in tables:
                raise JournalError(
                    f"{path} is not an esopt campaign journal (no 'meta' table; tables: "
                    f"{sorted(tables)}); it was left untouched"
                )
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                raise JournalError(
                    f"{path} is not an esopt campaign journal (no schema_version); it was left untouched"
                )
            try:
                version = int(row[0])
            except (TypeError, ValueError):
                raise JournalError(f"{path} has an unreadable schema_version {row[0]!r}") from None
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"{path} has journal schema version {version}, newer than this esopt reads "
                    f"({SCHEMA_VERSION}); upgrade esopt to resume it. It was left untouched"
                )
            if version < 1:
                raise JournalError(f"{path} has an unknown journal schema version {version}")
            for table, cols in _REQUIRED_COLUMNS.items():
                if table not in tables:
                    raise JournalError(f"{path} is not an esopt campaign journal (no {table!r} table)")
                have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                if not cols <= have:
                    raise JournalError(
                        f"{path}: table {table!r} lacks columns {sorted(cols - have)}; "
                        "not an esopt journal of this version"
                    )
            row = conn.execute("SELECT config_json FROM campaign WHERE id=1").fetchone()
            if row is None:
                raise JournalError(f"{path} has no campaign row; it is incomplete")
            try:
                return json.loads(row[0])
            except (TypeError, ValueError) as e:
                raise JournalError(f"{path}: the stored config is not valid JSON ({e})") from e
        finally:
            conn.close()

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        if readonly:
            uri = self.path.resolve().as_uri()
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("SELECT COUNT(*) FROM meta").fetchone()
            except sqlite3.OperationalError:
                # a WAL database in a directory we cannot write (no -shm possible): nobody can be
                # writing it either, so read the file as immutable
                conn.close()
                conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The underlying connection (raises ``ValueError`` once closed)."""
        if self._conn is None:
            raise ValueError(f"journal {self.path} is closed")
        return self._conn

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------ reading
    def meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict."""
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def config(self) -> dict[str, Any]:
        """The stored (normalized) campaign config dict."""
        return json.loads(self.conn.execute("SELECT config_json FROM campaign WHERE id=1").fetchone()[0])

    def check_config(self, raw: Mapping[str, Any]) -> None:
        """Raise :class:`JournalError` if ``raw`` differs from the stored config (naming the keys)."""
        check_config_match(self.config(), raw, self.path)

    def campaign_info(self) -> dict[str, Any]:
        """The campaign row (name, status, message, created_at, updated_at, driver_pid, elapsed_s)
        plus ``counts`` ({status: n} over all trials), ``n_trials``, ``n_generations`` (told
        generations), ``open_generation`` (asked but not told, or None) and ``stop`` (the
        criteria that ended a ``done`` campaign, else None)."""
        c = self.conn
        row = c.execute(
            "SELECT name, status, message, created_at, updated_at, driver_pid, elapsed_s FROM campaign WHERE id=1"
        ).fetchone()
        info = dict(zip(("name", "status", "message", "created_at", "updated_at", "driver_pid", "elapsed_s"), row))
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

    @staticmethod
    def _trial_row(r: Sequence[Any]) -> dict[str, Any]:
        d = dict(
            zip(
                (
                    "id",
                    "generation",
                    "idx",
                    "x",
                    "params",
                    "status",
                    "objective",
                    "result",
                    "error",
                    "attempts",
                    "node_id",
                    "worker_id",
                    "started_at",
                    "finished_at",
                ),
                r,
            )
        )
        d["x"] = json.loads(d["x"])
        d["params"] = json.loads(d["params"])
        d["result"] = json.loads(d["result"]) if d["result"] is not None else None
        return d

    def trials(self, generation: int | None = None) -> list[dict[str, Any]]:
        """Trials ordered by (generation, idx); all, or those of one generation.

        Each dict has: id, generation, idx, x (list of floats, unit cube), params (dict, own
        units), status, objective (float|None), result (dict|None), error, attempts, node_id,
        worker_id, started_at, finished_at.
        """
        q = f"SELECT {_TRIAL_COLUMNS} FROM trials"
        args: tuple = ()
        if generation is not None:
            q += " WHERE generation=?"
            args = (int(generation),)
        return [self._trial_row(r) for r in self.conn.execute(q + " ORDER BY generation, idx", args)]

    def trial(self, trial_id: int) -> dict[str, Any]:
        """One trial by id (raises ``KeyError`` if absent)."""
        r = self.conn.execute(f"SELECT {_TRIAL_COLUMNS} FROM trials WHERE id=?", (int(trial_id),)).fetchone()
        if r is None:
            raise KeyError(trial_id)
        return self._trial_row(r)

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

    def best_trial(self) -> dict[str, Any] | None:
        """The done trial with the smallest objective (ties: lowest id), or None."""
        r = self.conn.execute(
            f"SELECT {_TRIAL_COLUMNS} FROM trials WHERE status='done' AND objective IS NOT NULL "
            "ORDER BY objective, id LIMIT 1"
        ).fetchone()
        return None if r is None else self._trial_row(r)

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

    # ------------------------------------------------------------------ writing (the driver)
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

    def set_campaign(self, *, stop: Mapping[str, Any] | None = None, **fields: Any) -> None:
        """Update columns of the campaign row (status, message, driver_pid, elapsed_s) and, if
        given, the criteria that stopped the campaign (``meta`` key ``stop``, JSON); one commit."""
        allowed = {"status", "message", "driver_pid", "elapsed_s"}
        bad = sorted(set(fields) - allowed)
        if bad:
            raise ValueError(f"unknown campaign fields {bad}; allowed: {sorted(allowed)}")
        if "status" in fields and fields["status"] not in CAMPAIGN_STATUSES:
            raise ValueError(f"status must be one of {CAMPAIGN_STATUSES}, got {fields['status']!r}")
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
        status: str,
        objective: float | None = None,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
        node_id: str | None = None,
        worker_id: str | None = None,
        finished_at: float | None = None,
    ) -> None:
        """Record a trial's outcome (``done``, ``failed`` or ``cancelled``); one commit.

        ``objective`` is stored only if finite; node/worker ids, if given, replace the stored ones.
        """
        if status not in ("done", "failed", "cancelled"):
            raise ValueError(f"finish status must be done, failed or cancelled, got {status!r}")
        now = time.time() if finished_at is None else finished_at
        self._write(
            [
                (
                    "UPDATE trials SET status=?, objective=?, result_json=?, error=?, finished_at=?, "
                    "node_id=COALESCE(?, node_id), worker_id=COALESCE(?, worker_id) WHERE id=?",
                    (
                        status,
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
