"""A campaign-shaped journal writer for the journal damage and reader tests (and bench/journal_readers.py).

:func:`write_generations` drives a real :class:`cluster.store.Journal` through the transitions the
campaign driver journals (:mod:`cluster.campaign`, ``_ask_generation`` / ``_Listener`` / ``_tell``),
each its own commit, in the same order::

    add_generation(g, X, params)          -- the generation row + popsize 'pending' trials (1 commit)
    mark_submitted(all ids)               -- all 'running' (1 commit)
    mark_started(id) ... for each trial   -- node/worker ids (1 commit each)
    finish_trial(id, status='done', ...)  -- one by one (1 commit each)
    tell(g, sigma, mean, best, state)     -- told_at + the strategy checkpoint (1 commit)

The candidates come from a real :class:`esopt.CMAES` (``seed``) on the sphere in the unit cube; the
objective is the sphere value, so a run is deterministic given the seed.

Run as a script (``python tests/helpers_journal.py DIR GENERATIONS [--kill] ...``, see :func:`main`) it
creates ``DIR`` and writes the generations; with ``--kill`` it then SIGKILLs itself, leaving the committed
transitions in ``campaign.db-wal`` (no checkpoint, as after a driver crash).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(_ROOT))

from cluster import Journal, parse_config  # noqa: E402
from esopt import CMAES  # noqa: E402
from esopt.checkpoint import state_to_npz_bytes  # noqa: E402

POPSIZE = 6
CONFIG = {
    "name": "journal-test",
    "objective": "helpers_objectives:sphere",
    "space": {"x": {"lower": -1.0, "upper": 1.0}, "y": {"lower": -1.0, "upper": 1.0}},
    "strategy": {"name": "cmaes", "popsize": POPSIZE, "seed": 0},
    "budget": {"max_generations": 10_000},
}


def sched_times() -> tuple[float, float]:
    """``(seconds on a CPU, seconds runnable but waiting for a CPU)`` of the calling thread so far.

    From Linux's ``/proc/thread-self/schedstat``; where that file is missing, ``(time.thread_time(),
    0.0)``.  Wall time minus both is the time the thread was not runnable (blocked on I/O or a lock).
    """
    try:
        with open("/proc/thread-self/schedstat") as fh:
            cpu_ns, wait_ns = fh.read().split()[:2]
        return int(cpu_ns) / 1e9, int(wait_ns) / 1e9
    except (OSError, ValueError):
        return time.thread_time(), 0.0


def create(directory: str | os.PathLike) -> Journal:
    """A new journal in ``directory`` with :data:`CONFIG` (normalized by ``parse_config``)."""
    return Journal.create(directory, name=CONFIG["name"], config=parse_config(CONFIG).raw, driver_pid=os.getpid())


def write_generations(
    journal: Journal,
    n_generations: int,
    *,
    seed: int = 0,
    on_commit: Callable[[float, float, float], None] | None = None,
    first: int = 1,
    es: CMAES | None = None,
) -> CMAES:
    """Journal ``n_generations`` generations (numbered from ``first``) as the campaign does.

    ``on_commit(seconds, cpu_seconds, runqueue_seconds)`` is called after every journal write (one
    commit each) with its wall time (``time.perf_counter``) and the time this thread spent in it on a
    CPU and waiting for one (:func:`sched_times`).
    ``es`` continues a strategy returned by an earlier call (default: a new one from ``seed``).
    Returns the strategy after the last tell.
    """
    es = CMAES(np.full(2, 0.5), 0.2, popsize=POPSIZE, seed=seed) if es is None else es
    best = float(es.result.f) if np.isfinite(es.result.f) else None

    def timed(fn, *args, **kwargs):
        t0, (c0, q0) = time.perf_counter(), sched_times()
        out = fn(*args, **kwargs)
        if on_commit is not None:
            c1, q1 = sched_times()
            on_commit(time.perf_counter() - t0, c1 - c0, q1 - q0)
        return out

    for g in range(first, first + n_generations):
        X = np.clip(es.ask(), 0.0, 1.0)
        params = [{"x": float(2 * x[0] - 1), "y": float(2 * x[1] - 1)} for x in X]
        ids = timed(journal.add_generation, g, X, params)
        timed(journal.mark_submitted, ids)
        for t in ids:
            timed(journal.mark_started, t, node_id="node-0", worker_id=f"worker-{t % 2}")
        f = np.array([p["x"] ** 2 + p["y"] ** 2 for p in params])
        for t, v in zip(ids, f):
            timed(journal.finish_trial, t, status="done", objective=float(v), result={"objective": float(v)})
        es.tell(X, f)
        best = float(f.min()) if best is None else min(best, float(f.min()))
        res = es.result
        timed(
            journal.tell,
            g,
            sigma=float(res.sigma),
            mean=np.asarray(res.mean, dtype=float),
            best_objective=best,
            state=state_to_npz_bytes(es.state_dict()),
            elapsed_s=float(g),
        )
    return es


def journal_state(journal: Journal) -> tuple[int, int, int]:
    """``(generations asked, generations told, trials done)`` as the journal reads now."""
    c = journal.conn
    asked, told = c.execute("SELECT COUNT(*), COUNT(told_at) FROM generations").fetchone()
    done = c.execute("SELECT COUNT(*) FROM trials WHERE status='done'").fetchone()[0]
    return int(asked), int(told), int(done)


def main(argv: list[str]) -> None:
    """``DIR GENERATIONS [--kill] [--log FILE] [--sql STATEMENT]``.

    Create the journal and write the generations; ``--log`` appends one line per commit,
    ``"<WAL size in bytes> <asked> <told> <done>"`` (the WAL is append-only until a checkpoint);
    ``--sql`` runs one more statement as its own journal commit; then close, or SIGKILL with ``--kill``.
    """
    directory, n = Path(argv[0]), int(argv[1])
    opt = {k: argv[i + 1] for i, k in enumerate(argv) if k in ("--log", "--sql")}
    journal = create(directory)
    log = open(opt["--log"], "w") if "--log" in opt else None  # noqa: SIM115 - closed below or by the kill
    wal = Path(str(journal.path) + "-wal")

    def record(_seconds: float, _cpu: float, _runq: float) -> None:
        if log is not None:
            log.write(f"{wal.stat().st_size} {' '.join(map(str, journal_state(journal)))}\n")
            log.flush()

    write_generations(journal, n, on_commit=record)
    if "--sql" in opt:
        journal._write([(opt["--sql"], ())])  # noqa: SLF001 - a test writes a row the API has no method for
    if "--kill" in argv:
        os.kill(os.getpid(), signal.SIGKILL)
    journal.close()


if __name__ == "__main__":
    main(sys.argv[1:])
