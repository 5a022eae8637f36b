"""The journal's tables, written once, and the checks that open a file without writing to it.

:data:`TABLES` is the one list of every table's columns (name, SQL declaration); the ``CREATE``
statements, the columns a file must have and the ``SELECT`` lists of :class:`cluster.store.Journal`
are derived from it.  :func:`validate_file` checks a file before anything may write to it (see
:mod:`cluster.store`); :func:`create_file` writes a new one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

from .journalwal import inspect_wal

__all__ = [
    "SCHEMA_VERSION",
    "DB_NAME",
    "TABLES",
    "JournalError",
    "JournalRecoveredWarning",
    "columns",
    "create_file",
    "create_journal",
    "migrate",
    "required_columns",
    "validate_file",
]

SCHEMA_VERSION = 2  # 0.1.0 wrote 1; 2 added the columns and table of ADDED_IN_2 (migrated on resume)
DB_NAME = "campaign.db"
_SQLITE_HEADER = b"SQLite format 3\x00"

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "meta": (("key", "TEXT PRIMARY KEY"), ("value", "TEXT")),
    "campaign": (
        ("id", "INTEGER PRIMARY KEY CHECK(id = 1)"),
        ("name", "TEXT"),
        ("config_json", "TEXT"),
        ("status", "TEXT"),
        ("message", "TEXT"),
        ("created_at", "REAL"),
        ("updated_at", "REAL"),
        ("driver_pid", "INTEGER"),
        ("elapsed_s", "REAL"),
    ),
    "trials": (
        ("id", "INTEGER PRIMARY KEY"),
        ("generation", "INTEGER"),
        ("idx", "INTEGER"),
        ("x_json", "TEXT"),
        ("params_json", "TEXT"),
        ("status", "TEXT"),
        ("objective", "REAL"),
        ("result_json", "TEXT"),
        ("error", "TEXT"),
        ("attempts", "INTEGER"),
        ("node_id", "TEXT"),
        ("worker_id", "TEXT"),
        ("started_at", "REAL"),
        ("finished_at", "REAL"),
        ("told_generation", "INTEGER"),  # the tell that included it (1-based), NULL while untold
        ("told_pos", "INTEGER"),  # its row in that tell's (popsize, d) array
        ("finish_seq", "INTEGER"),  # completion order (1, 2, ...) over the campaign
        ("rung", "INTEGER"),  # with fidelity: index of the highest rung it reached (0 = first)
        ("resource", "REAL"),  # with fidelity: the last step it reported (resource consumed)
    ),
    "generations": (
        ("generation", "INTEGER PRIMARY KEY"),
        ("popsize", "INTEGER"),
        ("asked_at", "REAL"),
        ("told_at", "REAL"),
        ("sigma", "REAL"),
        ("mean_json", "TEXT"),
        ("best_objective", "REAL"),
        ("state", "BLOB"),
    ),
    "reports": (  # intermediate results of objectives that take ``report`` (multi-fidelity)
        ("trial_id", "INTEGER"),
        ("step", "INTEGER"),
        ("value", "REAL"),
        ("reported_at", "REAL"),
    ),
}
#: What schema version 2 added to version 1: (table, column) pairs; a table with all columns
#: listed is a new table.  :func:`migrate` adds them to a version-1 journal on resume.
ADDED_IN_2: dict[str, tuple[str, ...]] = {
    "trials": ("told_generation", "told_pos", "finish_seq", "rung", "resource"),
    "reports": ("trial_id", "step", "value", "reported_at"),
}
_CONSTRAINTS = {"trials": ("UNIQUE(generation, idx)",), "reports": ("PRIMARY KEY(trial_id, step)",)}
_INDEXES = ("CREATE INDEX trials_status ON trials(status)",)


class JournalError(ValueError):
    """The journal cannot be used: missing, corrupt, foreign, of a newer schema, or of another config.

    Raised before anything is written to the file.
    """


class JournalRecoveredWarning(UserWarning):
    """The journal's WAL ends in a torn (incomplete) transaction, which SQLite ignores on opening."""


_CORRUPT_TODO = (
    "Restore the campaign directory (campaign.db with its campaign.db-wal) from a copy, or start a new "
    "campaign directory; `sqlite3 campaign.db 'PRAGMA integrity_check'` lists the damage"
)


def _check_wal(path: Path) -> None:
    """Refuse a ``-wal`` file whose damage would make SQLite drop committed transactions; warn
    about a torn tail, which SQLite's recovery drops as it should (:mod:`cluster.journalwal`).

    A live writer appends to the WAL while it is read, so a verdict other than ``ok`` is confirmed
    by a second reading 50 ms later (a frame being written is complete by then; real damage stays).
    """
    wal = Path(str(path) + "-wal")
    try:
        report = inspect_wal(wal)
        if report.verdict != "ok":
            time.sleep(0.05)
            report = inspect_wal(wal)
    except OSError as e:
        raise JournalError(f"cannot read {wal}: {e}") from e
    if report.verdict == "damaged":
        lost = f"{report.lost_commits} committed transaction(s) after it" if report.lost_commits else "all of it"
        raise JournalError(
            f"{wal} is damaged ({report.detail}): SQLite would silently drop {lost}. Both files were left "
            "untouched. Restore campaign.db and campaign.db-wal from a copy taken together, or start a new "
            "campaign directory; to continue from what precedes the damage instead, open a copy of the "
            "directory once with `sqlite3 campaign.db 'PRAGMA integrity_check'` (SQLite then keeps the "
            "valid part of the WAL) and resume the copy"
        )
    if report.verdict == "torn":
        warnings.warn(
            JournalRecoveredWarning(
                f"{wal} ends in a torn transaction ({report.detail}); SQLite ignores it and the journal opens "
                f"at its last complete commit (WAL frame {report.committed}). Nothing a killed driver had "
                "committed is lost; after an OS crash or power loss the last transitions may be, and "
                "`esopt resume` re-runs them"
            ),
            stacklevel=4,
        )


def columns(table: str, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """Column names of ``table`` in declaration order (``KeyError`` for an unknown table)."""
    return [name for name, _ in TABLES[table] if name not in exclude]


def _create_table(table: str) -> str:
    parts = [f"{name} {decl}" for name, decl in TABLES[table]] + list(_CONSTRAINTS.get(table, ()))
    return f"CREATE TABLE {table}({', '.join(parts)});"


def schema_sql() -> str:
    """The ``CREATE TABLE``/``CREATE INDEX`` script of a new journal."""
    return "\n".join([_create_table(t) for t in TABLES] + [s + ";" for s in _INDEXES])


def required_columns(table: str, version: int) -> list[str]:
    """The columns a journal of schema ``version`` has in ``table`` (empty: not in that version)."""
    added = ADDED_IN_2.get(table, ()) if version < 2 else ()
    return [c for c in columns(table) if c not in added]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring a writable journal to :data:`SCHEMA_VERSION` in one transaction (columns and tables
    of :data:`ADDED_IN_2`, ``meta.schema_version``); returns the version it had.  A version-1
    journal's trials get NULL in the new columns (their meaning: told with their generation,
    esopt 0.1's synchronous semantics)."""
    version = int(conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
    if version >= SCHEMA_VERSION:
        return version
    have = {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in ADDED_IN_2}
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, cols in ADDED_IN_2.items():
            if not have[table]:
                conn.execute(_create_table(table))
                continue
            decl = dict(TABLES[table])
            for c in cols:
                if c not in have[table]:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {c} {decl[c]}")
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version


def create_file(path: Path, *, name: str, config_json: str, driver_pid: int | None, esopt_version: str) -> None:
    """Write a new journal at ``path`` (schema, meta, the campaign row with status ``running``)
    in one transaction, in rollback-journal mode (:class:`cluster.store.Journal` switches to WAL)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.executescript(schema_sql())
        now = time.time()
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            [("schema_version", str(SCHEMA_VERSION)), ("esopt_version", esopt_version), ("created_at", repr(now))],
        )
        cols = columns("campaign")
        conn.execute(
            f"INSERT INTO campaign({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            (1, name, config_json, "running", None, now, now, driver_pid, 0.0),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def create_journal(directory: str | os.PathLike, *, name: str, config_json: str, driver_pid: int | None) -> Path:
    """Create ``DIR/campaign.db`` (see :func:`create_file`) and return its path.

    The file is written under a temporary name and published atomically (a hard link, which
    also refuses an existing journal; a rename on filesystems without links), so a half-created
    journal is never seen under the final name.  Raises ``FileExistsError`` if the directory
    already holds a journal (resume it instead).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / DB_NAME
    tmp = directory / (DB_NAME + ".creating")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    create_file(tmp, name=name, config_json=config_json, driver_pid=driver_pid, esopt_version=_esopt_version())
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
        return path
    tmp.unlink()
    return path


def _esopt_version() -> str:
    try:
        import esopt

        return getattr(esopt, "__version__", "unknown")
    except Exception:  # noqa: BLE001 - the journal must not depend on esopt importing
        return "unknown"


def _read_only(path: Path) -> sqlite3.Connection:
    # Without a -wal file nobody is writing and the main file holds everything: read it as
    # immutable, which creates no -wal/-shm files next to it.  With one (a live or killed
    # writer), a plain read-only connection sees the committed WAL content too.
    wal = Path(str(path) + "-wal").exists()
    uri = f"{path.resolve().as_uri()}?{'mode=ro' if wal else 'immutable=1'}"
    try:
        return sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as e:
        raise JournalError(f"cannot open {path}: {e}") from e


def _check_header(path: Path) -> None:
    if not path.exists():
        raise JournalError(f"no campaign journal at {path}")
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(_SQLITE_HEADER))
    except OSError as e:
        raise JournalError(f"cannot read {path}: {e}") from e
    if header != _SQLITE_HEADER:
        raise JournalError(
            f"{path} is not an SQLite database (corrupt or not a campaign journal); it was left untouched. "
            + _CORRUPT_TODO
        )


def _check_integrity(conn: sqlite3.Connection, path: Path) -> set[str]:
    try:
        check = conn.execute("PRAGMA quick_check").fetchall()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
        raise JournalError(f"{path} is corrupt ({e}); it was left untouched. {_CORRUPT_TODO}") from e
    if check != [("ok",)]:
        raise JournalError(
            f"{path} is corrupt (integrity check: {check[0][0]}); it was left untouched. {_CORRUPT_TODO}"
        )
    if "meta" not in tables:
        raise JournalError(
            f"{path} is not an esopt campaign journal (no 'meta' table; tables: {sorted(tables)}); "
            "it was left untouched"
        )
    return tables


def _check_version(conn: sqlite3.Connection, path: Path) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        raise JournalError(f"{path} is not an esopt campaign journal (no schema_version); it was left untouched")
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
    return version


def _check_columns(conn: sqlite3.Connection, path: Path, tables: set[str], version: int) -> None:
    for table in TABLES:
        need = required_columns(table, version)
        if not need:
            continue
        if table not in tables:
            raise JournalError(f"{path} is not an esopt campaign journal (no {table!r} table)")
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        missing = sorted(set(need) - have)
        if missing:
            raise JournalError(f"{path}: table {table!r} lacks columns {missing}; not an esopt journal of this version")


def validate_file(path: Path) -> dict[str, Any]:
    """Check ``path`` without writing anything (header, its ``-wal`` file, ``PRAGMA quick_check``,
    tables, columns, schema version) and return the stored config dict as written (not upgraded).

    Raises :class:`JournalError`, leaving the file and its ``-wal`` byte-for-byte untouched (with a
    ``-wal`` file, SQLite rebuilds the ``-shm`` index of a journal whose writer died: that file is
    SQLite's scratch space, derived from the WAL).  A WAL with a torn tail is accepted with a
    :class:`JournalRecoveredWarning` (see :func:`_check_wal`).
    """
    _check_header(path)
    _check_wal(path)
    conn = _read_only(path)
    try:
        tables = _check_integrity(conn, path)
        version = _check_version(conn, path)
        _check_columns(conn, path, tables, version)
        row = conn.execute("SELECT config_json FROM campaign WHERE id=1").fetchone()
        if row is None:
            raise JournalError(f"{path} has no campaign row; it is incomplete")
        try:
            return json.loads(row[0])
        except (TypeError, ValueError) as e:
            raise JournalError(f"{path}: the stored config is not valid JSON ({e})") from e
    finally:
        conn.close()
