"""Readers during writes (issue 16, item 5): a writer process and reader processes on one journal.

Used by ``tests/test_journal_readers.py`` (CI-sized) and ``bench/journal_readers.py`` (longer).

The writer (:func:`writer`) journals generations back to back with :func:`helpers_journal.write_generations`
(the campaign's transitions and commit boundaries), timing every commit and recording the ``-wal``
size after it.  Its connection has ``busy_timeout=0``: if a reader ever held a lock the writer needs,
the write would fail at once with ``database is locked`` instead of waiting, so "never blocked by a
lock" is checked exactly, apart from the wall-clock latency (which on a loaded machine also holds
the time the writer was not scheduled).

**Half-written.**  Given the commit boundaries, every committed state of the journal satisfies, with
``N`` generations asked, ``M`` told and popsize ``P``: the generation rows are ``1..N``; there are
exactly ``N*P`` trials (a generation row and its ``P`` pending trials are one commit); ``M`` is ``N``
or ``N - 1`` (the driver tells before it asks again) and generations ``1..M`` are the told ones; every
trial of a told generation is ``done`` (a tell is committed after its trials' last ``finish_trial``),
so ``M*P <= done <= N*P``.  A reader whose view breaks one of these saw a half-written generation (a
tell without its trials done, trials without their generation row, or a generation without its
trials).  :func:`check_view` asserts them on one reading; :func:`check_status_output` and
:func:`check_trials_csv` on what ``esopt status`` prints and on ``esopt report``'s ``trials.csv``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from helpers_journal import POPSIZE, create, write_generations

from cluster import Journal

__all__ = ["writer", "reader", "check_view", "check_status_output", "check_trials_csv", "latency_summary"]


def check_view(asked: int, told: int, trials: list[tuple[int, str]], told_gens: list[int]) -> str | None:
    """The invariants of the module docstring on one view; None if they hold, else what broke.

    ``trials`` are ``(generation, status)`` pairs, ``told_gens`` the told generation numbers.
    """
    P = POPSIZE
    done = sum(s == "done" for _, s in trials)
    per_gen = np.bincount([g for g, _ in trials], minlength=asked + 1)[1:] if trials else np.zeros(asked, int)
    if len(trials) != asked * P or len(per_gen) != asked or np.any(per_gen != P):
        return f"{len(trials)} trials for {asked} generations of {P}"
    if told not in (asked, asked - 1) or sorted(told_gens) != list(range(1, told + 1)):
        return f"{told} told of {asked} asked (told: {sorted(told_gens)[-3:]})"
    not_done = [g for g, s in trials if g <= told and s != "done"]
    if not_done:
        return f"generation {not_done[0]} told but {len(not_done)} of its trials not done"
    if not told * P <= done <= asked * P:
        return f"{done} done with {told} told"
    return None


def check_journal(j: Journal, *, snapshot: bool) -> str | None:
    """Read as ``esopt status`` does (campaign_info, trials, generations: several statements), inside
    :meth:`Journal.snapshot` or not, and :func:`check_view` the result."""

    def read():
        info = j.campaign_info()
        trials = [(t.generation, str(t.status)) for t in j.trials()]
        gens = j.generations()
        return info, trials, gens

    if snapshot:
        with j.snapshot():
            info, trials, gens = read()
    else:
        info, trials, gens = read()
    told = [g["generation"] for g in gens if g["told_at"] is not None]
    return check_view(len(gens), len(told), trials, told) or (
        None
        if info["n_trials"] == len(trials)
        else f"campaign_info counts {info['n_trials']} trials, trials() {len(trials)}"
    )


_GEN_RE = re.compile(r"^generations: (\d+) asked, (\d+) told", re.M)
_TRIALS_RE = re.compile(r"^trials: done (\d+), running (\d+), pending (\d+), failed (\d+), cancelled (\d+)", re.M)


def check_status_output(text: str) -> str | None:
    """:func:`check_view`'s invariants on ``esopt status`` output (its generation and trial count lines)."""
    g, t = _GEN_RE.search(text), _TRIALS_RE.search(text)
    if g is None or t is None:
        return f"unexpected status output: {text[:200]!r}"
    asked, told = map(int, g.groups())
    done, running, pending, failed, cancelled = map(int, t.groups())
    total, P = done + running + pending + failed + cancelled, POPSIZE
    if total != asked * P or told not in (asked, asked - 1) or not told * P <= done <= asked * P:
        return f"status: {asked} asked, {told} told, {total} trials, {done} done"
    return None


def check_trials_csv(path: Path) -> str | None:
    """``esopt report``'s trials.csv: whole generations of popsize rows, all but the last done."""
    with open(path, newline="") as fh:
        rows = [(int(r["generation"]), r["status"]) for r in csv.DictReader(fh)]
    asked = max((g for g, _ in rows), default=0)
    # the last generation may be open or told: either view is consistent on its own
    return check_view(asked, max(asked - 1, 0), rows, list(range(1, asked)))


# ------------------------------------------------------------------------------------ processes
def writer(directory: Path, enough: Path, out: Path) -> None:
    """Create a journal in ``directory`` and journal generations until the file ``enough`` exists; write
    ``{"latency_s": [...], "cpu_s": [...], "runq_s": [...], "wal_bytes": [...], "generations": n}`` (one
    entry per commit: wall time, the writer's time on a CPU and waiting for one in it
    (:func:`helpers_journal.sched_times`), the ``-wal`` size after it, whether it ran an auto-checkpoint,
    seen as a new mtime of ``campaign.db``, which in WAL mode only a checkpoint writes) to ``out``."""
    journal = create(directory)
    journal.conn.execute("PRAGMA busy_timeout=0")  # a lock conflict fails at once (see the module doc)
    wal = Path(str(journal.path) + "-wal")
    lat: list[float] = []
    cpu: list[float] = []
    runq: list[float] = []
    sizes: list[int] = []
    ckpt: list[bool] = []
    db_mtime = [journal.path.stat().st_mtime_ns]

    def record(dt: float, dcpu: float, drunq: float) -> None:
        lat.append(dt)
        cpu.append(dcpu)
        runq.append(drunq)
        sizes.append(wal.stat().st_size if wal.exists() else 0)
        m = journal.path.stat().st_mtime_ns  # only a checkpoint writes campaign.db in WAL mode
        ckpt.append(m != db_mtime[0])
        db_mtime[0] = m

    g, es = 0, None
    while g == 0 or not enough.exists():  # at least one generation
        es = write_generations(journal, 1, on_commit=record, first=g + 1, es=es)
        g += 1
    journal.close()
    out.write_text(
        json.dumps(
            {"latency_s": lat, "cpu_s": cpu, "runq_s": runq, "wal_bytes": sizes, "checkpoint": ckpt, "generations": g}
        )
    )


def _run_cli(args: list[str], stop: Path) -> str | None:
    """``esopt ARGS``'s stdout; None if ``stop`` appeared meanwhile (the call is killed, not counted)."""
    p = subprocess.Popen(["esopt", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while p.poll() is None:
        if stop.exists():
            p.kill()
            p.communicate()
            return None
        time.sleep(0.02)
    out, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"esopt {' '.join(args)} exited {p.returncode}: {err.strip()}")
    return out


_SKIPPED = "skipped"  # a reading cut short by the end of the run


def _one_reading(kind: str, directory: Path, scratch: Path, stop: Path) -> str | None:
    if kind == "status":
        out = _run_cli(["status", str(directory)], stop)
        return _SKIPPED if out is None else check_status_output(out)
    if kind == "report":
        out = _run_cli(["report", str(directory), "--out", str(scratch)], stop)
        return _SKIPPED if out is None else check_trials_csv(scratch / "trials.csv")
    with Journal(directory, readonly=True) as j:
        return check_journal(j, snapshot=kind == "journal")


def reader(kind: str, directory: Path, stop: Path, out: Path, nice: int = 0, pause: float = 0.0) -> None:
    """Read ``directory`` in a loop until the file ``stop`` exists; ``kind``: ``status`` (``esopt
    status``), ``report`` (``esopt report``), ``journal`` (Journal reads in a snapshot) or
    ``journal-nosnapshot``.  ``nice`` is added to the process's niceness (``os.nice``) first;
    ``pause`` seconds are slept between two readings.
    Writes ``{"views": n, "violations": [...], "seconds": [...]}`` to ``out``."""
    os.nice(nice)
    while not (directory / "campaign.db").exists() and not stop.exists():
        time.sleep(0.01)
    views, bad, secs = 0, [], []
    with tempfile.TemporaryDirectory() as scratch:
        while not stop.exists():
            t0 = time.perf_counter()
            v = _one_reading(kind, directory, Path(scratch), stop)
            if v == _SKIPPED:
                break
            secs.append(time.perf_counter() - t0)
            views += 1
            if v is not None:
                bad.append(v)
            Path(str(out) + ".count").write_text(str(views))
            time.sleep(pause)
    out.write_text(json.dumps({"views": views, "violations": bad, "seconds": secs}))


def latency_summary(record: dict, threshold_s: float = 0.1) -> dict[str, float]:
    """The writer's commits (a :func:`writer` record) in ms: n, p50, p99, max of the wall time, how
    many took longer than ``threshold_s`` (``over``), and the same for the time the writer was
    *blocked* in a commit (wall minus on-CPU minus waiting-for-a-CPU: I/O and lock waits):
    ``blocked_max_ms``, ``blocked_over``; the latter also over the commits that ran no checkpoint
    (``nockpt_*``), and the wall-clock max / count over the threshold of those that did (``ckpt_*``)."""
    a = np.asarray(record["latency_s"]) * 1e3
    blocked = a - 1e3 * (np.asarray(record["cpu_s"]) + np.asarray(record["runq_s"]))
    ck = np.asarray(record["checkpoint"], dtype=bool)
    t = threshold_s * 1e3
    return {
        "n": float(a.size),
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
        "over": float(np.sum(a > t)),
        "blocked_max_ms": float(blocked.max()),
        "blocked_over": float(np.sum(blocked > t)),
        "checkpoints": float(ck.sum()),
        "nockpt_blocked_max_ms": float(blocked[~ck].max(initial=0.0)),
        "nockpt_blocked_over": float(np.sum(blocked[~ck] > t)),
        "ckpt_max_ms": float(a[ck].max(initial=0.0)),
        "ckpt_over": float(np.sum(a[ck] > t)),
    }


def _views(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def run(
    directory: Path,
    seconds: float,
    readers: list[str],
    work: Path,
    *,
    nice: int = 0,
    pause: float = 0.0,
    min_views: int = 0,
    max_seconds: float | None = None,
) -> tuple[dict, dict[str, dict]]:
    """Run the writer for ``seconds`` with one reader process per entry of ``readers`` (niceness
    raised by ``nice``, ``pause`` seconds between readings), and on until every reader has made
    ``min_views`` readings or ``max_seconds`` have passed; return the writer's record and
    ``{"<kind>#<i>": its record}``.

    Raises ``RuntimeError`` if a process fails (the writer: also on ``database is locked``)."""
    stop, enough = work / "stop", work / "enough"
    stop.unlink(missing_ok=True)
    enough.unlink(missing_ok=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    outs = [work / f"r{i}.json" for i in range(len(readers))]
    for o in outs:
        Path(str(o) + ".count").unlink(missing_ok=True)
    procs = {
        f"{k}#{i}": subprocess.Popen([*me, "reader", k, str(directory), str(stop), str(o), str(nice), str(pause)])
        for i, (k, o) in enumerate(zip(readers, outs))
    }
    w = subprocess.Popen([*me, "writer", str(directory), str(enough), str(work / "w.json")], stderr=subprocess.PIPE)
    t0, limit = time.perf_counter(), max(seconds, max_seconds or seconds)
    while w.poll() is None:
        t = time.perf_counter() - t0
        if t >= limit or (t >= seconds and all(_views(Path(str(o) + ".count")) >= min_views for o in outs)):
            enough.touch()
            break
        time.sleep(0.05)
    _, err = w.communicate(timeout=120)
    stop.touch()
    codes = {name: p.wait(timeout=180) for name, p in procs.items()}
    if w.returncode != 0 or any(codes.values()):
        raise RuntimeError(f"writer exited {w.returncode} ({err.decode()[-2000:]}); readers {codes}")
    return json.loads((work / "w.json").read_text()), {n: json.loads(o.read_text()) for n, o in zip(procs, outs)}


_MAIN: dict[str, Callable[..., None]] = {
    "writer": lambda d, e, o: writer(Path(d), Path(e), Path(o)),
    "reader": lambda k, d, s, o, n, p: reader(k, Path(d), Path(s), Path(o), int(n), float(p)),
}

if __name__ == "__main__":  # the script's folder (tests/) is on sys.path: helpers_journal imports
    _MAIN[sys.argv[1]](*sys.argv[2:])
