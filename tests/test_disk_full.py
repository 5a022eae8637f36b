"""The journal's disk fills up mid-campaign: exit 1 with a one-line message, the journal stays readable
and consistent, and ``esopt resume`` finishes once there is room, with nothing lost.

Two ways to run out of room, both real (the driver is the ``esopt`` command in a subprocess, its
journal a real SQLite file):

* ``tmpfs``: the campaign directory is a 2 MiB tmpfs mounted for the test, and a ballast file fills
  it while trials run: SQLite's next write gets ``ENOSPC`` (``SQLITE_FULL``, "database or disk is
  full").  Freeing space = deleting the ballast.  Needs the right to mount (root or
  ``CAP_SYS_ADMIN``); where ``mount`` is refused this case is skipped and says so.
* ``fsize``: the running driver's file-size limit (``RLIMIT_FSIZE``, set with ``prlimit(2)`` from
  the test; CPython ignores ``SIGXFSZ``) is lowered to just above its WAL file's size: SQLite's
  next write past it gets ``EFBIG`` (``SQLITE_IOERR_WRITE``).  Works for any user.  Freeing space =
  the resumed driver runs without that limit.

The driver starts its own local Ray instance (1 CPU); the objective is tests/chaos.py's.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import chaos
import pytest
import yaml

from cluster import Journal
from cluster.journalwrite import JournalFullError

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

GENERATIONS, POPSIZE = 4, 4


def _mount_tmpfs(where: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``where``; None if done, else why not (no privilege, no mount)."""
    if shutil.which("mount") is None:
        return "no mount command"
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return None if res.returncode == 0 else f"mount -t tmpfs refused (uid {os.getuid()}): {res.stderr.decode()[:200]}"


def _fill(path: Path) -> None:
    """Write ``path`` until its file system has no free byte left (ENOSPC)."""
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise


@pytest.fixture
def work():
    d = Path(tempfile.mkdtemp(prefix="esdf", dir="/tmp"))
    yield d
    if os.path.ismount(d / "fs"):
        subprocess.run(["umount", "-l", str(d / "fs")], check=False)
    shutil.rmtree(d, ignore_errors=True)


def _cli(args: list[str], conf: Path, out: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(chaos.REPO))
    with open(out, "w") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "cluster.cli", *args, "--no-progress"],
            cwd=conf,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait(pred, timeout: float, what: str, proc: subprocess.Popen, out: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"driver exited with {proc.returncode} before {what}:\n{out.read_text()[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}:\n{out.read_text()[-3000:]}")


def _done(directory: Path) -> int:
    return sum(r["status"] == "done" for r in chaos.journal_rows(directory))


@pytest.mark.parametrize("how", ["tmpfs", "fsize"])
def test_disk_full_mid_campaign_then_resume(work, how):
    conf, log = work / "conf", work / "executions.jsonl"
    conf.mkdir()
    src = chaos.OBJECTIVE.format(log=str(log), low_s=0.1, high_s=0.3)
    (conf / "chaosobj.py").write_text(textwrap.dedent(src))
    config = chaos.chaos_config(mode="sync", seed=4, generations=GENERATIONS, popsize=POPSIZE, timeout_s=30.0)
    config["ray"] = {"num_cpus": 1}
    (conf / "c.yaml").write_text(yaml.safe_dump(config))
    directory = work / "fs" / "camp"
    if how == "tmpfs":
        why = _mount_tmpfs(work / "fs", "2m")
        if why is not None:
            pytest.skip(why + "; the fsize case covers this machine")
    directory.parent.mkdir(exist_ok=True)

    out1 = work / "tune.out"
    proc = _cli(["tune", str(conf / "c.yaml"), "--dir", str(directory)], conf, out1)
    _wait(lambda: _done(directory) >= POPSIZE + 1, 180, "a few finished trials", proc, out1)
    t_full = time.time()
    if how == "tmpfs":
        _fill(work / "fs" / "ballast")
    else:
        wal = directory / "campaign.db-wal"
        limit = max(os.path.getsize(wal), os.path.getsize(directory / "campaign.db")) + 4096
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    assert proc.wait(timeout=120) == 1, out1.read_text()[-3000:]
    text = out1.read_text()
    head = "no space left on device" if how == "tmpfs" else "file size limit (ulimit -f) reached"
    errors = [ln for ln in text.splitlines() if ln.startswith("esopt: error:")]
    assert len(errors) == 1, text[-3000:]
    print(errors[0])
    assert f"esopt: error: {head} while journaling " in errors[0], text[-3000:]
    assert f"{directory / 'campaign.db'}: " in errors[0] and f"run `esopt resume {directory}`" in errors[0]
    assert "Traceback" not in text, text[-3000:]

    # readable and consistent on the full disk: the read-only checks of `esopt status` pass
    with Journal(directory, readonly=True) as j:
        assert j.campaign_info()["status"] in ("running", "failed")
    assert chaos.check_integrity(directory) == []
    assert chaos.check_lock_released(directory) == []
    status = subprocess.run(
        [sys.executable, "-m", "cluster.cli", "status", str(directory)], capture_output=True, text=True, cwd=conf
    )
    assert status.returncode == 0, status.stderr
    before = chaos.journal_rows(directory)
    kept = chaos._finished(before)
    assert len(kept) >= POPSIZE + 1

    if how == "tmpfs":  # a resume before space is freed: refused with the same advice, journal untouched
        db = directory / "campaign.db"
        files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (db, db.with_name("campaign.db-wal"))}
        early = subprocess.run(
            [sys.executable, "-m", "cluster.cli", "resume", str(directory), "--no-progress"],
            capture_output=True, text=True, cwd=conf, timeout=120,
        )  # fmt: skip
        assert early.returncode == 1, early.stderr
        assert "esopt: error: no space left on device" in early.stderr and "Traceback" not in early.stderr
        assert f"run `esopt resume {directory}`" in early.stderr
        assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == files
        (work / "fs" / "ballast").unlink()  # free the space

    # resume (fsize: a new driver, without the limit): it finishes, nothing lost
    out2 = work / "resume.out"
    proc2 = _cli(["resume", str(directory)], conf, out2)
    assert proc2.wait(timeout=300) == 0, out2.read_text()[-3000:]
    assert "campaign done" in out2.read_text()
    rows = chaos.journal_rows(directory)
    assert chaos.check_rows_kept([kept], rows) == []
    assert chaos.check_done_once(rows, config) == []
    assert chaos.check_sync_identical(rows, chaos.reference_run(config)) == []
    assert chaos.check_integrity(directory) == []
    assert chaos.check_lock_released(directory) == []
    # nothing journaled done before the disk filled ran again
    fin = {r["key"]: r["finished_at"] for r in rows if r["status"] == "done" and r["finished_at"] < t_full}
    again = [r for r in chaos.read_log(log) if r["event"] == "start" and r["key"] in fin and r["t"] > fin[r["key"]]]
    assert again == []


def test_journal_full_error_from_sqlite_full(tmp_path):
    """SQLITE_FULL from a real journal (``PRAGMA max_page_count`` caps the file) becomes
    JournalFullError (ENOSPC, the message), the transaction is rolled back, the journal stays usable."""
    from cluster import parse_config

    cfg = parse_config({**chaos.chaos_config(mode="sync", seed=1, generations=1, popsize=4, timeout_s=5.0),
                        "objective": "chaos:sphere"})  # fmt: skip
    j = Journal.create(tmp_path, name="full", config=cfg.raw, driver_pid=os.getpid())
    try:
        pages = j.conn.execute("PRAGMA page_count").fetchone()[0]
        j.conn.execute(f"PRAGMA max_page_count={pages}")
        X = [[0.5] * 3] * 400
        with pytest.raises(JournalFullError) as info:
            j.add_generation(1, X, [{"a": 0.0, "b": 1.0, "c": float(i)} for i in range(400)])
        e = info.value
        assert isinstance(e, OSError) and e.errno == errno.ENOSPC
        assert str(e) == (
            f"no space left on device while journaling a new generation's candidates to {j.path}: "
            f"free space and run `esopt resume {tmp_path}`"
        )
        assert isinstance(e.__cause__, sqlite3.OperationalError)
        assert not j.conn.in_transaction and j.trials() == [] and j.generations() == []
        j.conn.execute("PRAGMA max_page_count=1073741823")
        j.add_generation(1, X[:4], [{"a": 0.0, "b": 1.0, "c": float(i)} for i in range(4)])  # room again
        assert len(j.trials()) == 4
    finally:
        j.close()
