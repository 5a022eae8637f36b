"""Campaign on a local Ray instance (shared by this module): equals esopt.minimize, budgets,
progress protocol, Ctrl-C then resume, the directory lock."""

from __future__ import annotations

import os

import helpers_objectives as ho
import numpy as np
import pytest

import esopt
from cluster import Campaign, CampaignLocked, Journal, parse_config

CONFIG = {
    "name": "camp",
    "objective": "helpers_objectives:counting_sphere",
    "space": {
        "a": {"lower": -1.0, "upper": 1.0},
        "b": {"lower": 0.01, "upper": 10.0, "scale": "log10"},
        "n": {"lower": 1, "upper": 6, "type": "int"},
    },
    "strategy": {"name": "cmaes", "popsize": 6, "seed": 5, "sigma0": 0.3},
    "budget": {"max_generations": 5},
    "resources": {"num_cpus": 1},
}


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """One local Ray instance (2 CPUs) for the module; workers inherit the side-file env vars."""
    import ray

    log = tmp_path_factory.mktemp("log") / "calls.jsonl"
    os.environ.update({ho.LOG_ENV: str(log), ho.SLEEP_ENV: "0.02", "RAY_USAGE_STATS_ENABLED": "0"})
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield log
    ray.shutdown()
    for k in (ho.LOG_ENV, ho.SLEEP_ENV):
        os.environ.pop(k, None)


def _cfg(**overrides):
    raw = {**CONFIG, **overrides}
    return parse_config(raw)


class Recorder:
    """Progress object recording every call."""

    def __init__(self, interrupt_at=None):
        self.events = []
        self.interrupt_at = interrupt_at

    def on_generation_start(self, generation, popsize):
        self.events.append(("start", generation, popsize))

    def on_trial_finished(self, generation, row, counts):
        self.events.append(("trial", generation, row, counts))
        if self.interrupt_at == (generation, counts["done"]):
            raise KeyboardInterrupt

    def on_generation_end(self, generation, best):
        self.events.append(("end", generation, best))


def test_campaign_equals_minimize(ray_local, tmp_path):
    cfg = _cfg(objective="helpers_objectives:sphere")
    result = Campaign(cfg, tmp_path / "c").run()
    space = cfg.space
    ref = esopt.minimize(
        lambda x: ho.sphere_value(space.decode(x)),
        space.x0,
        cfg.strategy.sigma0,
        "cmaes",
        popsize=6,
        seed=5,
        bounds=space.bounds,
        options={"maxiter": 5},
    )
    assert result.status == "done" and result.stop == {"max_generations": 5}
    assert result.n_generations == ref.nit == 5 and result.n_trials == ref.nfev == 30
    assert result.best_objective == ref.fun
    assert result.best_params == space.decode(ref.x)
    assert result.best_trial["params"] == result.best_params and result.best_trial["status"] == "done"
    with Journal(tmp_path / "c", readonly=True) as j:
        gens = j.generations()
        assert [g["sigma"] for g in gens][-1] == ref.strategy.result.sigma
        assert gens[-1]["mean"] == ref.strategy.result.mean.tolist()
        assert j.campaign_info()["status"] == "done"


def test_progress_protocol_and_trial_rows(ray_local, tmp_path):
    rec = Recorder()
    result = Campaign(_cfg(budget={"max_generations": 2}), tmp_path / "c").run(rec)
    assert result.status == "done"
    kinds = [e[0] for e in rec.events]
    assert kinds == (["start"] + ["trial"] * 6 + ["end"]) * 2
    assert rec.events[0] == ("start", 1, 6)
    for e in rec.events:
        if e[0] == "trial":
            _, g, row, counts = e
            assert sum(counts.values()) == 6 and set(counts) == {"done", "running", "failed", "pending"}
            assert row["generation"] == g and row["status"] == "done" and row["node_id"] and row["worker_id"]
            assert row["started_at"] <= row["finished_at"] and row["attempts"] == 1
            assert row["result"]["extra"] == {"n": 3}  # the objective's full dict is kept
    assert [e[3]["done"] for e in rec.events if e[0] == "trial"] == [1, 2, 3, 4, 5, 6] * 2
    bests = [e[2] for e in rec.events if e[0] == "end"]
    assert bests == [g["best_objective"] for g in Journal(tmp_path / "c", readonly=True).generations()]
    assert bests[1] <= bests[0]


def test_budgets(ray_local, tmp_path):
    r = Campaign(
        _cfg(strategy={"name": "cmaes", "popsize": 4, "seed": 1}, budget={"max_trials": 10}), tmp_path / "a"
    ).run()
    assert (r.status, r.n_trials, r.n_generations, r.stop) == ("done", 12, 3, {"max_trials": 10})
    r = Campaign(_cfg(budget={"ftarget": 100.0, "max_generations": 9}), tmp_path / "b").run()
    assert r.n_generations == 1 and r.stop == {"ftarget": 100.0}
    # a finished campaign resumes to the same result without running anything
    again = Campaign.resume(tmp_path / "b").run()
    assert (again.status, again.best_objective, again.n_trials, again.stop) == (
        "done",
        r.best_objective,
        r.n_trials,
        r.stop,
    )


def test_ctrl_c_then_resume_equals_uninterrupted(ray_local, tmp_path):
    cfg = _cfg(name="ctrlc")
    full = Campaign(cfg, tmp_path / "full").run()
    log = ray_local
    log.write_text("")
    rec = Recorder(interrupt_at=(3, 2))
    interrupted = Campaign(cfg, tmp_path / "int").run(rec)
    assert interrupted.status == "interrupted" and interrupted.stop == {}
    with Journal(tmp_path / "int", readonly=True) as j:
        info = j.campaign_info()
        rows = j.trials(3)
        done_before = {r["id"]: r for r in j.trials() if r["status"] == "done"}
    assert info["status"] == "interrupted" and info["n_generations"] == 2 and info["open_generation"] == 3
    assert [r["status"] for r in rows].count("done") == 2
    assert {r["status"] for r in rows} <= {"done", "cancelled", "pending"} and "cancelled" in {
        r["status"] for r in rows
    }
    resumed = Campaign.resume(tmp_path / "int").run()
    assert resumed.status == "done"
    assert resumed.best_objective == full.best_objective and resumed.best_params == full.best_params
    with Journal(tmp_path / "int", readonly=True) as a, Journal(tmp_path / "full", readonly=True) as b:
        assert [(t["x"], t["objective"]) for t in a.trials()] == [(t["x"], t["objective"]) for t in b.trials()]
        after = {r["id"]: r for r in a.trials()}
    # trials done before the interrupt were reused, not run again
    calls = ho.read_log(log)
    for tid, row in done_before.items():
        assert after[tid]["finished_at"] == row["finished_at"]
        key = sorted(row["params"].items())
        assert [c for c in calls if sorted(c["params"].items()) == key and c["t"] > row["finished_at"]] == []


def test_directory_lock(ray_local, tmp_path):
    d = tmp_path / "c"
    first = Campaign(_cfg(), d)  # holds the lock until run() returns or close()
    with pytest.raises(CampaignLocked, match=f"pid {os.getpid()}"):
        Campaign.resume(d)
    first.close()
    second = Campaign.resume(d)  # free again
    second.close()
    # a lock file left by a dead driver (no flock held) does not block
    (d / "campaign.lock").write_text("999999\nsomehost\n")
    r = Campaign.resume(d).run()
    assert r.status == "done" and (d / "campaign.lock").read_text().split()[0] == str(os.getpid())


def test_unit_cube_vectors_are_stored_and_decoded(ray_local, tmp_path):
    cfg = _cfg(budget={"max_generations": 1})
    Campaign(cfg, tmp_path / "c").run()
    with Journal(tmp_path / "c", readonly=True) as j:
        for row in j.trials():
            x = np.array(row["x"])
            assert np.all((x >= 0) & (x <= 1))
            assert cfg.space.decode(x) == row["params"]
            assert isinstance(row["params"]["n"], int)


def test_sigterm_stops_like_ctrl_c(ray_local, tmp_path):
    import signal

    class Term:
        def on_trial_finished(self, generation, row, counts):
            if generation == 2 and counts["done"] == 1:
                os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    r = Campaign(_cfg(), tmp_path / "c").run(Term())
    assert r.status == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored
    with Journal(tmp_path / "c", readonly=True) as j:
        assert j.campaign_info()["status"] == "interrupted"
        assert j.campaign_info()["n_generations"] == 1
