"""A damaged journal (issue 16, item 4): a torn or damaged WAL, flipped bytes in the database, a newer
schema, another config.

The journals are real: ``tests/helpers_journal.py`` writes generations through the Journal API in the
campaign's order and commit boundaries, in a subprocess that is SIGKILLed afterwards, so the committed
transitions are still only in ``campaign.db-wal`` (as after a driver crash); a closed journal (WAL
checkpointed into ``campaign.db``) serves the database cases.

What the journal does (SQLite's WAL recovery, https://www.sqlite.org/fileformat2.html#walformat, reads
frames until the first one whose salts or cumulative checksum do not match and applies them up to the
last commit frame):

* a torn WAL tail (the file ends inside a frame): accepted, as SQLite does, at the last complete commit,
  with a :class:`cluster.journalschema.JournalRecoveredWarning`; ``campaign.db`` and ``-wal`` untouched
  by the read-only opening (SQLite rebuilds the ``-shm`` index, its scratch file); a resume's writable
  connection then checkpoints the recovered prefix (that is the legitimate recovery changing the files);
* a flipped byte in the WAL (a frame in the middle, or the header): SQLite would silently drop committed
  transactions, so the journal refuses, every file untouched (bytes and mtime, ``-shm`` included: the
  refusal comes before any SQLite connection);
* a flipped byte in ``campaign.db`` (the header's magic or page size, a page of the trials table): refused
  by the header / ``PRAGMA quick_check`` check, untouched;
* a newer schema or another config, on a crashed (WAL-bearing) journal: refused, ``campaign.db`` and
  ``-wal`` untouched.

Every refusal message says what to do (restore a copy, ``PRAGMA integrity_check``, a new directory,
upgrade esopt, the stored config).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from helpers_journal import CONFIG, POPSIZE, journal_state

from cluster import Campaign, Journal, JournalError, parse_config
from cluster.journalschema import DB_NAME, SCHEMA_VERSION, JournalRecoveredWarning
from cluster.journalwal import inspect_wal

HELPER = Path(__file__).with_name("helpers_journal.py")
FRAME = 24 + 4096  # WAL frame: 24-byte header + one 4 KiB page
N_GEN = 4


def _write(d: Path, *args: str) -> None:
    """Run the helper writer (``DIR N_GEN args...``) in a subprocess; it may be SIGKILLed on purpose."""
    r = subprocess.run([sys.executable, str(HELPER), str(d), str(N_GEN), *args], capture_output=True, text=True)
    assert r.returncode in (0, -9), r.stderr


@pytest.fixture(scope="module")
def crashed(tmp_path_factory) -> tuple[Path, list[tuple[int, tuple[int, int, int]]]]:
    """A journal whose writer was SIGKILLed after N_GEN generations, and the writer's log of
    ``(WAL size after the commit, (asked, told, done))``, one entry per commit."""
    root = tmp_path_factory.mktemp("crashed")
    d, log = root / "camp", root / "commits.log"
    _write(d, "--kill", "--log", str(log))
    commits = []
    for line in log.read_text().split("\n"):
        if line:
            size, *state = map(int, line.split())
            commits.append((size, tuple(state)))
    assert (d / (DB_NAME + "-wal")).stat().st_size == commits[-1][0] > 32 * FRAME  # all still in the WAL
    return d, commits


@pytest.fixture(scope="module")
def closed(tmp_path_factory) -> Path:
    """A journal written and closed (its WAL checkpointed into campaign.db and removed)."""
    d = tmp_path_factory.mktemp("closed") / "camp"
    _write(d)
    assert not (d / (DB_NAME + "-wal")).exists()
    return d


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=shutil.copy2)
    return dst


def _snapshot(d: Path, names=(DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm")) -> dict:
    return {n: ((d / n).read_bytes(), (d / n).stat().st_mtime_ns) for n in names if (d / n).exists()}


def _flip(path: Path, offset: int, mask: int = 0x10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def _status(d: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["esopt", "status", str(d)], capture_output=True, text=True, timeout=60)


def _assert_refused(d: Path, match: str, *, names=(DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm")) -> str:
    """Journal (writable and read-only) and Campaign.resume refuse ``d`` with ``match``, leaving the
    files ``names`` byte-for-byte untouched (and their mtimes); returns the message."""
    before = _snapshot(d, names)
    for open_it in (lambda: Journal(d), lambda: Journal(d, readonly=True), lambda: Campaign.resume(d)):
        with pytest.raises(JournalError, match=match) as err:
            open_it()
    assert _snapshot(d, names) == before
    return str(err.value)


def _assert_consistent(j: Journal) -> tuple[int, int, int]:
    """No half-written generation: every asked generation has its popsize trials, every told one has
    them all done, at most the last is open.  Returns (asked, told, done)."""
    asked, told, done = journal_state(j)
    gens = j.generations()
    assert [g["generation"] for g in gens] == list(range(1, asked + 1))
    assert len(j.trials()) == asked * POPSIZE
    assert all(g["told_at"] is not None for g in gens[:told]) and told >= asked - 1
    assert all(t.status == "done" for t in j.trials() if t.generation <= told)
    return asked, told, done


# --------------------------------------------------------------------------------------- the WAL
def test_an_intact_crashed_journal_opens_with_every_commit(crashed):
    d, commits = crashed
    assert inspect_wal(d / (DB_NAME + "-wal")).verdict == "ok"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no recovery warning for a WAL that verifies
        with Journal(d, readonly=True) as j:
            assert _assert_consistent(j) == commits[-1][1] == (N_GEN, N_GEN, N_GEN * POPSIZE)


@pytest.mark.parametrize("cut_frame", [7, 40, 95, -1])  # in generation 1, 2, 3, inside the last frame
def test_a_torn_wal_tail_opens_at_the_last_complete_commit(crashed, tmp_path, cut_frame):
    d, commits = crashed
    d = _copy(d, tmp_path / "camp")
    wal = d / (DB_NAME + "-wal")
    size = wal.stat().st_size
    cut = (32 + cut_frame * FRAME if cut_frame >= 0 else size - FRAME) + 1000  # 1000 bytes into a frame
    os.truncate(wal, cut)
    expected = max((c for c in commits if c[0] <= cut), key=lambda c: c[0])[1]  # the last commit that fits
    assert expected != commits[-1][1]  # the cut did drop transitions
    before = _snapshot(d, (DB_NAME, DB_NAME + "-wal"))
    with pytest.warns(JournalRecoveredWarning, match=r"torn transaction .*last complete commit.*esopt resume"):
        j = Journal(d, readonly=True)
    with j:
        assert _assert_consistent(j) == expected
    assert _snapshot(d, (DB_NAME, DB_NAME + "-wal")) == before  # only -shm is SQLite's to rebuild
    # the CLI accepts it too (exit 0) and says so on stderr
    r = _status(d)
    assert r.returncode == 0 and "ends in a torn transaction" in r.stderr and f"{expected[1]} told" in r.stdout
    # a resume's writable connection recovers the prefix for good: later openings need no warning
    with pytest.warns(JournalRecoveredWarning):
        Campaign.resume(d).close()
    assert not wal.exists() or inspect_wal(wal).verdict == "ok"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Journal(d, readonly=True) as j:
            assert _assert_consistent(j) == expected


@pytest.mark.parametrize("frame", [10, 60])
def test_a_flipped_byte_in_a_wal_frame_is_refused_untouched(crashed, tmp_path, frame):
    d = _copy(crashed[0], tmp_path / "camp")
    _flip(d / (DB_NAME + "-wal"), 32 + frame * FRAME + 24 + 2000)  # inside the page of a committed frame
    msg = _assert_refused(d, r"-wal is damaged .*silently drop \d+ committed transaction")
    assert "Restore campaign.db and campaign.db-wal from a copy" in msg and "PRAGMA integrity_check" in msg
    # SQLite alone would have opened it without a word, at the frame before the damage
    conn = sqlite3.connect(f"{(d / DB_NAME).resolve().as_uri()}?mode=ro", uri=True)
    told = conn.execute("SELECT COUNT(told_at) FROM generations").fetchone()[0]
    conn.close()
    assert told < N_GEN
    # the command line: exit 2 and one line saying what to do
    d2 = _copy(crashed[0], tmp_path / "camp2")
    _flip(d2 / (DB_NAME + "-wal"), 32 + frame * FRAME + 24 + 2000)
    before = _snapshot(d2)
    r = _status(d2)
    assert r.returncode == 2 and r.stdout == ""
    assert (
        r.stderr.startswith("esopt: error: bad journal: ")
        and r.stderr.count("\n") == 1
        and "-wal is damaged" in r.stderr
    )
    assert _snapshot(d2) == before


def test_a_flipped_byte_in_the_wal_header_is_refused_untouched(crashed, tmp_path):
    d = _copy(crashed[0], tmp_path / "camp")
    _flip(d / (DB_NAME + "-wal"), 17)  # the checkpoint sequence number: the header checksum fails
    _assert_refused(d, r"WAL header .*fails its checksum.*silently drop all of it")


def test_the_suggested_recovery_of_a_damaged_wal_keeps_the_valid_prefix(crashed, tmp_path):
    """The message's "open a copy once with sqlite3" recipe gives a journal that opens (and resumes)."""
    d = _copy(crashed[0], tmp_path / "camp")
    _flip(d / (DB_NAME + "-wal"), 32 + 60 * FRAME + 24 + 2000)
    copy = _copy(d, tmp_path / "copy")
    conn = sqlite3.connect(copy / DB_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()  # the last connection checkpoints the valid prefix and removes the WAL
    with Journal(copy, readonly=True) as j:
        asked, told, _ = _assert_consistent(j)
    assert 1 <= told < N_GEN
    Campaign.resume(copy).close()


# ---------------------------------------------------------------------------------- the database
def _trials_leaf_page(d: Path) -> int:
    conn = sqlite3.connect(f"{(d / DB_NAME).resolve().as_uri()}?immutable=1", uri=True)
    pages = [r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name='trials' AND pagetype='leaf'")]
    conn.close()
    assert pages
    return pages[0]


@pytest.mark.parametrize(
    "where, match",
    [("magic", "not an SQLite database"), ("page_size", r"corrupt \(file is not a database\)"), ("trials", "corrupt")],
)
def test_a_flipped_byte_in_the_database_is_refused_untouched(closed, tmp_path, where, match):
    d = _copy(closed, tmp_path / "camp")
    page = _trials_leaf_page(d)
    offset = {"magic": 5, "page_size": 16, "trials": (page - 1) * 4096}[where]  # a leaf's page-type byte
    _flip(d / DB_NAME, offset)
    msg = _assert_refused(d, match)
    assert "Restore the campaign directory" in msg and "PRAGMA integrity_check" in msg
    assert sorted(p.name for p in d.iterdir()) == [DB_NAME]  # no -wal/-shm created, no lock taken
    if where == "trials":
        r = _status(d)
        assert r.returncode == 2 and r.stderr.startswith("esopt: error: bad journal: ") and r.stderr.count("\n") == 1
        assert "is corrupt" in r.stderr


# -------------------------------------------------------------------------- newer schema, config
def test_a_crashed_journal_of_a_newer_schema_is_refused_untouched(tmp_path):
    d = tmp_path / "camp"
    _write(d, "--kill", "--sql", f"UPDATE meta SET value='{SCHEMA_VERSION + 1}' WHERE key='schema_version'")
    assert (d / (DB_NAME + "-wal")).exists()
    _assert_refused(d, r"newer than this esopt reads .*upgrade esopt", names=(DB_NAME, DB_NAME + "-wal"))
    before = _snapshot(d, (DB_NAME, DB_NAME + "-wal"))
    r = _status(d)
    assert r.returncode == 2 and r.stderr.startswith("esopt: error: bad journal: ") and "upgrade esopt" in r.stderr
    assert _snapshot(d, (DB_NAME, DB_NAME + "-wal")) == before


def test_a_crashed_journal_of_another_config_is_refused_untouched(crashed, tmp_path):
    d = _copy(crashed[0], tmp_path / "camp")
    other = parse_config(dict(CONFIG, strategy=dict(CONFIG["strategy"], seed=1)))
    before = _snapshot(d, (DB_NAME, DB_NAME + "-wal"))
    with pytest.raises(JournalError, match=r"differs in \['strategy'\].*stored config or start a new"):
        Campaign.resume(d, config=other)
    assert _snapshot(d, (DB_NAME, DB_NAME + "-wal")) == before
    assert not (d / "campaign.lock").exists()  # refused before the lock
