"""Seeded fault schedules against campaigns on a real three-node ``ray start`` cluster (tests/chaos.py).

Each test runs one campaign through the ``esopt`` command line while :class:`chaos.ChaosRun`
SIGKILLs the driver (then ``esopt resume``), SIGKILLs the Ray worker running a trial, kills a worker
node's raylet (and starts a replacement node) and SIGSTOPs a trial past ``resources.timeout_s``,
at moments drawn from ``numpy.random.default_rng(seed)``; then every invariant of
:func:`chaos.check_all` must hold (trials done exactly once, nothing finished executed again,
no journal row lost, sync mode identical to an uninterrupted run, no process left, lock released,
``PRAGMA integrity_check`` ok).  Both scheduler modes run (``scheduler.mode``); the invariants do
not assume either's order of execution.  Together the tests inject at least 20 faults.

A trial that Ray runs again after its result was journaled (its worker or node died after the last
item of the streaming task was taken but before the task completed: Ray retries it) is a violation
of ``check_no_rerun``; bench/results/chaos.md describes it and the executor's fix (``ray.cancel``
of the task once its result is in).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import chaos
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

FAULTS_PER_RUN = 10
SEEDS = {"sync": 11, "async": 12}


@pytest.fixture(scope="module")
def cluster():
    """One head and two worker nodes (1 CPU each) for the module; every process stopped after."""
    root = Path(tempfile.mkdtemp(prefix="esch", dir="/tmp"))
    c = chaos.RayStartCluster(root, n_workers=2, num_cpus=1)
    try:
        yield c
    finally:
        c.stop()
        left = chaos.processes_naming(str(root))
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes of the cluster left: {[p.pid for p in left]}"


def test_schedule_is_seeded_and_covers_every_kind():
    a, b = chaos.make_schedule(5, 12), chaos.make_schedule(5, 12)
    assert a == b and a != chaos.make_schedule(6, 12)
    assert {k for _, k in a} == set(chaos.KINDS)
    assert all(0.5 <= d <= 2.5 for d, _ in a)
    with pytest.raises(ValueError, match="kinds"):
        chaos.make_schedule(1, 3, kinds=("driver", "meteor"))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_fault_schedule_keeps_the_invariants(cluster, mode, tmp_path):
    seed = SEEDS[mode]
    config = chaos.chaos_config(mode=mode, seed=seed, generations=24, popsize=4, timeout_s=5.0)
    schedule = chaos.make_schedule(seed, FAULTS_PER_RUN)
    run = chaos.ChaosRun(cluster, tmp_path, config, schedule, seed=seed)
    try:
        run.run()
    finally:
        run.close()
    # the nodes killed by the schedule were replaced: the cluster is whole for the next test
    assert sorted(cluster.nodes) == ["head", "w0", "w1"]
    injected = [f.kind for f in run.faults]
    assert len(injected) == FAULTS_PER_RUN, f"injected {injected}, skipped {run.skipped}"
    assert set(injected) == set(chaos.KINDS)
    violations = chaos.check_all(run)
    assert violations == [], "\n".join(violations)
    # the faults did hit trials: some executions were repeated, and a driver kill left work to resume
    rows, log = chaos.journal_rows(run.directory), chaos.read_log(run.log)
    assert sum(r["event"] == "start" for r in log) > len(rows)
    assert len(run.drivers) == 1 + injected.count("driver")


def _row(g, i, status="done", objective=1.0, finished_at=10.0):
    return dict(generation=g, idx=i, x=[0.5], key=f"k{g}{i}", status=status, objective=objective,
                finished_at=finished_at, attempts=1)  # fmt: skip


def test_invariant_checks_report_what_breaks_them(tmp_path):
    """Each check returns [] on a good record and names the violation on a broken one."""
    config = {"budget": {"max_generations": 1}, "strategy": {"popsize": 2}}
    rows = [_row(1, 0), _row(1, 1)]
    log = [{"event": e, "key": f"k1{i}", "pid": 1, "t": 5.0} for i in (0, 1) for e in ("start", "end")]
    fault = chaos.Fault("worker", 6.0, ["k10"])
    assert chaos.check_done_once(rows, config) == []
    assert "duplicate" in chaos.check_done_once([*rows, _row(1, 1)], config)[0]
    assert "is failed, not done" in chaos.check_done_once([rows[0], _row(1, 1, "failed")], config)[0]
    assert chaos.check_done_once([rows[0], _row(1, 1, "failed")], config, failed_ok=frozenset({"k11"})) == []
    again = [{**log[0], "pid": 2, "t": 5.5}, {**log[1], "pid": 2, "t": 5.9}]  # k10 ran twice, both ended
    assert chaos.check_no_rerun([*log, *again], rows, [fault]) == []  # the fault found it in flight
    assert "executed 2 times with 0 reasons" in chaos.check_no_rerun([*log, *again], rows, [])[0]
    assert chaos.check_no_rerun([*log, *again], [{**rows[0], "attempts": 2}, rows[1]], []) == []  # a timeout retry
    killed = [{**log[0], "pid": 3, "t": 5.2}]  # an execution that never ended (its worker was killed)
    assert chaos.check_no_rerun([*killed, *log], rows, []) == []
    assert "after it was journaled done" in chaos.check_no_rerun([*log, {**log[2], "t": 11.0}], rows, [fault])[0]
    snap = chaos._finished(rows)
    assert chaos.check_rows_kept([snap], rows) == []
    assert "trial (1, 0)" in chaos.check_rows_kept([snap], [_row(1, 0, objective=2.0), rows[1]])[0]
    ref = [(1, 0, [0.5], 1.0), (1, 1, [0.5], 1.0)]
    assert chaos.check_sync_identical(rows, ref) == []
    assert "at row 1" in chaos.check_sync_identical(rows, [ref[0], (1, 1, [0.25], 1.0)])[0]
    from cluster.lock import CampaignLock

    lock = CampaignLock(tmp_path)
    assert "lock still held" in chaos.check_lock_released(tmp_path)[0]
    lock.release()
    assert chaos.check_lock_released(tmp_path) == []
