"""Ray execution: a node removed mid-generation (ray.cluster_utils), fractional GPUs on an
instance declaring 2 GPUs, max_concurrent, and objective failures under each on_error policy.

The multi-node test runs first with its own simulated cluster; the others share one local
instance with ``num_gpus=2`` (no real GPU needed: Ray only schedules the declared resource).
"""

from __future__ import annotations

import os

import helpers_objectives as ho
import numpy as np
import pytest

import esopt
from cluster import Campaign, Journal, parse_config
from cluster.penalty import penalize

SPACE = {"x": {"lower": 0.0, "upper": 1.0}, "y": {"lower": -1.0, "upper": 1.0}}


def _cfg(objective, *, popsize=6, gens=1, resources=None, failures=None, seed=2, ray=None, scheduler=None):
    return parse_config(
        {
            "name": "exec",
            "objective": f"helpers_objectives:{objective}",
            "space": SPACE,
            "strategy": {"name": "cmaes", "popsize": popsize, "seed": seed, "sigma0": 0.3},
            "budget": {"max_generations": gens},
            "resources": resources or {"num_cpus": 1},
            "failures": failures or {},
            "scheduler": scheduler or {},
            "ray": ray or {},
        }
    )


def _overlap(intervals) -> int:
    """Most intervals open at one time."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda t: (t[0], t[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


# ----------------------------------------------------------------------------- multi-node
def test_node_removed_mid_generation(tmp_path):
    """A worker node dies while it runs a trial: Ray re-runs the trial on the other node
    (system failure, ``max_retries``) and the campaign completes with every trial accounted for."""
    import threading
    import time
    from collections import Counter

    import ray
    from ray.cluster_utils import Cluster

    from cluster import JournalError

    assert not ray.is_initialized()
    log = tmp_path / "log.jsonl"
    os.environ.update({ho.LOG_ENV: str(log), ho.SLEEP_ENV: "2.0", "RAY_USAGE_STATS_ENABLED": "0"})
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    directory = tmp_path / "c"
    removed: list[str] = []
    done = threading.Event()

    def remove_a_busy_node():
        """Watch the journal (read-only, as `esopt status` does); once a trial has run 0.2 s on
        a node and its objective has logged its start there (on a loaded machine the objective may
        begin well after the task told the driver where it runs), remove that node while the
        trial is still running."""
        while not done.is_set():
            try:
                with Journal(directory, readonly=True) as j:
                    running = [
                        r["node_id"]
                        for r in j.trials(1)
                        if r["status"] == "running" and r["node_id"] and time.time() - r["started_at"] > 0.2
                    ]
            except JournalError:  # not created yet
                running = []
            events = ho.read_log(log)
            begun = Counter(e["node"] for e in events if e["event"] == "start")
            ended = Counter(e["node"] for e in events if e["event"] == "end")
            busy = [n for n in running if begun[n] > ended[n]]
            if busy:
                removed.append(busy[0])
                cluster.remove_node(workers[busy[0]])
                return
            time.sleep(0.05)

    try:
        workers = {n.node_id: n for n in (cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1))}
        cluster.wait_for_nodes()
        watcher = threading.Thread(target=remove_a_busy_node, daemon=True)
        watcher.start()
        cfg = _cfg("crash_on_node", popsize=4, gens=1, failures={"max_retries": 2})
        result = Campaign(cfg, directory, address=cluster.address).run()
        done.set()
        watcher.join(timeout=30)
    finally:
        done.set()
        for k in (ho.LOG_ENV, ho.SLEEP_ENV):
            os.environ.pop(k, None)
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    assert removed, "no trial was seen running"
    assert result.status == "done" and result.n_generations == 1 and result.n_trials == 4
    with Journal(directory, readonly=True) as j:
        rows = j.trials()
    # every trial is accounted for: done, with a value, recorded on the node where it ended
    assert len(rows) == 4 and all(r["status"] == "done" and r["objective"] is not None for r in rows)
    events = ho.read_log(log)
    for r in rows:
        assert r["node_id"] in workers and r["node_id"] != removed[0]
        assert any(e["event"] == "end" and e["node"] == r["node_id"] and e["params"] == r["params"] for e in events)
    # the trial on the removed node started there, never ended there, and ran again elsewhere: the
    # driver resubmitted it (a system failure; Ray's own task retries are off, see cluster.executor)
    lost = [e["params"] for e in events if e["event"] == "start" and e["node"] == removed[0]]
    assert lost
    for r in rows:
        assert r["attempts"] == (2 if r["params"] in lost else 1)
    for p in lost:
        assert not any(e["event"] == "end" and e["node"] == removed[0] and e["params"] == p for e in events)
        assert sum(e["event"] == "start" and e["params"] == p for e in events) == 2


# ----------------------------------------------------------------------------- one instance, 2 fake GPUs
@pytest.fixture(scope="module")
def ray_gpu(ray_local_factory, tmp_path_factory):
    """A private local instance declaring 2 GPUs (tests/conftest.py); yields the objectives' log file."""
    log = tmp_path_factory.mktemp("log") / "calls.jsonl"
    ray_local_factory(env={ho.LOG_ENV: str(log), ho.SLEEP_ENV: "0"}, num_cpus=2, num_gpus=2)
    return log


def test_fractional_gpus(ray_gpu, tmp_path):
    log = ray_gpu
    log.write_text("")
    cfg = _cfg("gpu_probe", popsize=8, resources={"num_cpus": 0.25, "num_gpus": 0.5})
    result = Campaign(cfg, tmp_path / "c").run()
    assert result.status == "done" and result.n_trials == 8
    calls = ho.read_log(log)
    assert len(calls) == 8
    for c in calls:  # each trial sees its own assignment: one of the two GPUs
        assert len(c["gpu_ids"]) == 1 and c["gpu_ids"][0] in ("0", "1")
        assert c["cuda"] == c["gpu_ids"][0]
    overlap = _overlap([(c["start"], c["end"]) for c in calls])
    assert 2 <= overlap <= 4  # 2 GPUs / 0.5 per trial; the CPUs (0.25 each) would allow 8
    for gpu in ("0", "1"):
        assert _overlap([(c["start"], c["end"]) for c in calls if c["gpu_ids"] == [gpu]]) <= 2
    assert len({c["pid"] for c in calls}) == 8  # GPU trials run in fresh worker processes


def test_max_concurrent(ray_gpu, tmp_path):
    os.environ[ho.SLEEP_ENV] = "0"
    cfg = _cfg("counting_sphere", popsize=4, resources={"num_cpus": 0.5, "max_concurrent": 1})
    c = Campaign(cfg, tmp_path / "c")
    assert c.run().status == "done"
    assert c.executor.max_running_seen == 1
    with Journal(tmp_path / "c", readonly=True) as j:
        rows = sorted(j.trials(), key=lambda r: r["started_at"])
    assert _overlap([(r["started_at"], r["finished_at"]) for r in rows]) == 1


@pytest.mark.parametrize(
    "objective, on_error, error_start",
    [
        ("raising", "penalty", "exception: ValueError: x="),
        ("nan_when_large", "penalty", "non-finite objective (nan)"),
        ("diverging", "abort", "diverged: loss became nan"),  # an outcome, never an error to abort on
        ("not_a_number", "penalty", "exception: TypeError: the objective value must be a real number"),
    ],
)
def test_failed_trials_are_recorded_and_penalized(ray_gpu, tmp_path, objective, on_error, error_start):
    cfg = _cfg(objective, gens=2, failures={"on_error": on_error})
    result = Campaign(cfg, tmp_path / "c").run()
    # the campaign goes on after failures; when every trial of a generation fails, it ends
    # 'failed' after telling that generation (all values equal the penalty), naming the reason
    if objective != "not_a_number":
        assert result.status == "done" and result.n_generations == 2
    else:
        assert result.status == "failed" and result.n_generations == 1 and result.stop == {}
        assert result.message.startswith("6 of 6 trials of generation 1 failed: TypeError: the objective value")
    with Journal(tmp_path / "c", readonly=True) as j:
        rows = sorted((r for r in j.trials() if r.told_generation == 1), key=lambda r: r.told_pos)
        state = j.state(1)
    assert len(rows) == 6  # the first tell (asynchronous: in completion order, from any generation)
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed, "the seed should give failing candidates"
    for r in failed:
        assert r["error"].startswith(error_start) and r["objective"] is None
    if objective != "not_a_number":
        assert any(r["status"] == "done" for r in rows)
        assert all(r["params"]["x"] > 0.5 for r in failed)
    # the strategy was told the documented penalty for the failed ones
    f = np.array([r["objective"] if r["status"] == "done" else np.nan for r in rows])
    told = penalize(f, [r["status"] != "done" for r in rows])
    assert np.array_equal(esopt.read_state(state)["base.f_sorted"], np.sort(told))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_abort_stops_the_campaign(ray_gpu, tmp_path, mode):
    cfg = _cfg("raising", popsize=6, gens=3, failures={"on_error": "abort"}, scheduler={"mode": mode})
    result = Campaign(cfg, tmp_path / "c").run()
    assert result.status == "failed" and "ValueError" in result.message and "abort" in result.message
    with Journal(tmp_path / "c", readonly=True) as j:
        info = j.campaign_info()
        rows = j.trials()
        gens = j.generations()
    assert info["status"] == "failed" and info["message"] == result.message
    if mode == "sync":
        assert len(gens) == 1 and gens[0]["told_at"] is None  # the generation was never told
    else:
        assert gens == []  # nothing was told (asynchronous tells journal a generation when they happen)
    assert sum(r["status"] == "failed" for r in rows) == 1
    assert {r["status"] for r in rows} <= {"failed", "done", "cancelled", "pending"}
    # resuming an aborted campaign runs the failed trial again (e.g. after a fix); done ones are kept
    again = Campaign.resume(tmp_path / "c").run()
    assert again.status == "failed"
    with Journal(tmp_path / "c", readonly=True) as j:
        after = {r["id"]: r for r in j.trials()}
    for r in rows:
        if r["status"] == "failed":  # submitted again; it (or another bad one) aborts again
            assert after[r["id"]]["attempts"] == r["attempts"] + 1
            assert after[r["id"]]["status"] in ("failed", "cancelled")
        if r["status"] == "done":
            assert after[r["id"]] == r
    assert sum(r["status"] == "failed" for r in after.values()) == 1


def test_retry_then_penalty(ray_gpu, tmp_path):
    log = ray_gpu
    log.write_text("")
    cfg = _cfg("always_raising", popsize=4, failures={"on_error": "retry", "max_retries": 2})
    result = Campaign(cfg, tmp_path / "c").run()
    assert result.status == "failed" and result.best_objective is None
    assert result.message.startswith(
        "4 of 4 trials of generation 1 failed: RuntimeError: objective always fails (4 trials)"
    )
    with Journal(tmp_path / "c", readonly=True) as j:
        rows = j.trials()
    calls = ho.read_log(log)
    for r in rows:
        assert r["status"] == "failed" and r["attempts"] == 3
        assert r["error"].startswith("exception: RuntimeError: objective always fails")
        assert sum(c["params"] == r["params"] for c in calls) == 3  # 1 run + max_retries
    assert len(calls) == 12


def test_timeout_cancels_the_trial(ray_gpu, tmp_path):
    cfg = _cfg("hanging", popsize=6, resources={"num_cpus": 0.5, "timeout_s": 1.5})
    result = Campaign(cfg, tmp_path / "c").run()
    assert result.status == "done"
    with Journal(tmp_path / "c", readonly=True) as j:
        rows = j.trials()
    hung = [r for r in rows if r["params"]["x"] > 0.5]
    assert hung and all(r["status"] == "failed" and r["error"] == "timeout" for r in hung)
    assert all(r["finished_at"] - r["started_at"] < 30 for r in hung)
    assert all(r["status"] == "done" for r in rows if r["params"]["x"] <= 0.5)


class _Recorder:
    """An ExecutorListener that keeps every call."""

    def __init__(self):
        self.submitted_ids, self.started_ids, self.outcomes = [], [], []

    def submitted(self, tasks, errors):
        self.submitted_ids += [t.trial_id for t in tasks]

    def started(self, task, node_id, worker_id, started_at):
        self.started_ids.append(task.trial_id)

    def finished(self, outcome):
        self.outcomes.append(outcome)


@pytest.mark.parametrize("streaming", [True, False])
def test_executor_modes(ray_gpu, streaming):
    """Streaming tasks report their start; plain tasks (what Ray Client connections get) do not,
    and with a timeout are submitted no faster than the cluster can run them."""
    import ray

    from cluster.config import FailuresConfig, ResourcesConfig
    from cluster.executor import RayExecutor, TrialTask
    from cluster.objective import Objective

    # plain tasks count worker start-up (seconds on a busy 2-core machine) into the timeout
    resources = ResourcesConfig(num_cpus=1, timeout_s=2.0 if streaming else 5.0)
    ex = RayExecutor(
        Objective("helpers_objectives:hanging", sys_path=tuple(os.sys.path)),
        resources,
        FailuresConfig(),
        streaming=streaming,
    )
    tasks = [TrialTask(i, 1, i, {"x": x, "y": 0.0}) for i, x in enumerate([0.1, 0.9, 0.2, 0.3])]
    rec = _Recorder()
    assert ex.run(tasks, rec) is None
    by_id = {o.task.trial_id: o for o in rec.outcomes}
    assert sorted(by_id) == [0, 1, 2, 3] and sorted(rec.submitted_ids) == [0, 1, 2, 3]
    assert by_id[1].status == "failed" and by_id[1].error == "timeout"
    for i in (0, 2, 3):
        assert by_id[i].status == "done", by_id[i].error
        assert by_id[i].objective == ho.sphere_value(tasks[i].params)
        assert by_id[i].node_id == ray.get_runtime_context().get_node_id()
    assert sorted(rec.started_ids) == ([0, 1, 2, 3] if streaming else [])
    assert ex.max_running_seen == (4 if streaming else 2)  # plain + timeout: at most the 2 CPUs' worth
