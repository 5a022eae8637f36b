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

Layout: the tables are declared once in :mod:`cluster.journalschema` (which also creates and
validates files), a trial row is a :class:`cluster.trialrow.TrialRow`, statuses and failure kinds
are the enums of :mod:`cluster.status`; this module is the access layer (:class:`Journal`).
Journals written by esopt 0.1.0 (schema version 1, the current one) open and resume unchanged;
their config lacks keys added since, which read as :data:`cluster.config.LEGACY_DEFAULTS`.

Opening an existing file checks it before anything can write to it: the SQLite header, an
integrity check (``PRAGMA quick_check``) and the schema are read through a read-only connection
(``immutable=1`` when no ``-wal`` file exists, so not even -wal/-shm files are created), and a
corrupt file, a foreign database or a newer schema raise :class:`JournalError` with the
file left byte-for-byte untouched.  A ``-wal`` file is checked first (:mod:`cluster.journalwal`):
one whose damage would make SQLite silently drop committed transactions (a bad frame followed by
valid commits, a bad header) is refused; one that ends in a torn transaction is opened at its last
complete commit, as SQLite's recovery does, with a :class:`JournalRecoveredWarning`.

Readers: each read method is one or a few statements, each seeing the last committed state; to
read several from one state while a campaign writes (never a half-written generation), read inside
:meth:`Journal.snapshot`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from esopt.jsonutil import json_default

from .journalread import JournalReads
from .journalschema import (
    DB_NAME,
    SCHEMA_VERSION,
    JournalError,
    JournalRecoveredWarning,
    create_journal,
    migrate,
    validate_file,
)
from .journalwrite import JournalWrites, finite_or_none
from .trialrow import TrialRow

__all__ = [
    "Journal",
    "JournalError",
    "JournalRecoveredWarning",
    "TrialRow",
    "SCHEMA_VERSION",
    "DB_NAME",
    "journal_path",
    "check_config_match",
    "finite_or_none",
]


def journal_path(path_or_dir: str | os.PathLike) -> Path:
    """``campaign.db`` inside a campaign directory, or the path itself if it names a file."""
    p = Path(path_or_dir)
    return p / DB_NAME if p.is_dir() or p.suffix != ".db" else p


def check_config_match(stored: Mapping[str, Any], raw: Mapping[str, Any], path: Path) -> None:
    """Raise :class:`JournalError` if config ``raw`` differs from ``stored`` (naming the top-level keys).

    ``base_dir`` is not compared, and a key the journal's version did not have
    (:data:`cluster.config.LEGACY_DEFAULTS`) is not compared while ``raw`` leaves it at its default.
    """
    from .config import config_differences

    diff = config_differences(stored, json.loads(json.dumps(dict(raw), default=json_default)))
    if diff:
        raise JournalError(
            f"the config does not match the one stored in {path} (differs in {diff}); "
            "resume with the stored config or start a new campaign directory"
        )


class Journal(JournalReads, JournalWrites):
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
        config_json = json.dumps(dict(config), allow_nan=False, default=json_default)
        path = create_journal(directory, name=name, config_json=config_json, driver_pid=driver_pid)
        return cls(path)

    @staticmethod
    def _validate(path: Path) -> dict[str, Any]:
        """Check ``path`` without writing anything (see the module docstring); return the stored
        config dict, upgraded with :func:`cluster.config.upgrade_stored`.  Raises :class:`JournalError`."""
        from .config import upgrade_stored

        return upgrade_stored(validate_file(Path(path)))

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
            migrate(conn)  # a journal of an older schema gets the new columns (NULL) before any write
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
