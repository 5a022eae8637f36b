"""Campaign on a local Ray instance (shared by this module): equals esopt.minimize, budgets,
progress protocol, Ctrl-C then resume, the directory lock.

These tests run the synchronous loop (``scheduler.mode: sync``, esopt 0.1's semantics, kept
bit-exact); the asynchronous loop, the default, is tested in tests/test_async_campaign.py."""

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
    "scheduler": {"mode": "sync"},
}


@pytest.fixture(scope="module")
def ray_log(ray_local_factory, tmp_path_factory):
    """One private local Ray instance (2 CPUs) for the module (tests/conftest.py); workers inherit
    the side-file env vars.  Yields the log file of the logging objectives."""
    log = tmp_path_factory.mktemp("log") / "calls.jsonl"
    ray_local_factory(env={ho.LOG_ENV: str(log), ho.SLEEP_ENV: "0.02"}, num_cpus=2)
    return log


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


def test_campaign_equals_minimize(ray_log, tmp_path):
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


def test_progress_protocol_and_trial_rows(ray_log, tmp_path):
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


def test_budgets(ray_log, tmp_path):
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


def test_ctrl_c_then_resume_equals_uninterrupted(ray_log, tmp_path):
    cfg = _cfg(name="ctrlc")
    full = Campaign(cfg, tmp_path / "full").run()
    log = ray_log
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


def test_directory_lock(ray_log, tmp_path):
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
    assert r.status == "done" and (d / "campaign.lock.pid").read_text().split()[0] == str(os.getpid())


def test_unit_cube_vectors_are_stored_and_decoded(ray_log, tmp_path):
    cfg = _cfg(budget={"max_generations": 1})
    Campaign(cfg, tmp_path / "c").run()
    with Journal(tmp_path / "c", readonly=True) as j:
        for row in j.trials():
            x = np.array(row["x"])
            assert np.all((x >= 0) & (x <= 1))
            assert cfg.space.decode(x) == row["params"]
            assert isinstance(row["params"]["n"], int)


def test_sigterm_stops_like_ctrl_c(ray_log, tmp_path):
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


# ----------------------------------------------------------------------------- every trial failed
@pytest.mark.parametrize(
    "objective, reason",
    [
        ("always_raising", "RuntimeError: objective always fails"),
        ("not_a_number", "TypeError: the objective value must be a real number, got str: 'oops'"),
        ("wrong_signature", "TypeError: wrong_signature() missing 1 required positional argument: 'spec'"),
    ],
)
def test_a_generation_without_any_success_fails_the_campaign(ray_log, tmp_path, objective, reason):
    cfg = _cfg(objective=f"helpers_objectives:{objective}", budget={"max_generations": 3})
    r = Campaign(cfg, tmp_path / "c").run()
    assert (r.status, r.stop, r.n_generations, r.n_trials, r.best_objective) == ("failed", {}, 1, 6, None)
    assert r.message.startswith(f"6 of 6 trials of generation 1 failed: {reason} (6 trials) (details: esopt status")
    with Journal(tmp_path / "c", readonly=True) as j:
        info = j.campaign_info()
        assert info["status"] == "failed" and info["message"] == r.message
        assert j.generations()[0]["told_at"] is not None  # told (penalties), then ended


def test_all_failed_message_counts_each_reason(ray_log, tmp_path):
    r = Campaign(_cfg(objective="helpers_objectives:two_reasons"), tmp_path / "c").run()
    with Journal(tmp_path / "c", readonly=True) as j:
        rows = j.trials(1)
    n_pos = sum(row["params"]["a"] > 0 for row in rows)
    assert 0 < n_pos < 6, "the seed should give both signs"
    parts = {("ValueError: a is positive", n_pos), ("KeyError: 'no such key'", 6 - n_pos)}
    head, _, rest = r.message.partition(": ")
    assert r.status == "failed" and head == "6 of 6 trials of generation 1 failed"
    for reason, n in parts:
        assert f"{reason} ({n} trial{'s' if n != 1 else ''})" in rest
    first = max(parts, key=lambda p: (p[1], p[0] == "KeyError: 'no such key'"))  # most frequent first
    assert rest.startswith(first[0])


# ----------------------------------------------------------------------------- restarts instead of stopping
class Restarts(Recorder):
    """Recorder that also keeps ``on_restart`` and can interrupt after telling a generation."""

    def __init__(self, interrupt_at=None, interrupt_after=None):
        super().__init__(interrupt_at)
        self.interrupt_after = interrupt_after

    def on_restart(self, generation, stop, popsize):
        self.events.append(("restart", generation, stop, popsize))

    def on_generation_end(self, generation, best):
        super().on_generation_end(generation, best)
        if generation == self.interrupt_after:
            raise KeyboardInterrupt


FLAT = {"objective": "helpers_objectives:flat", "strategy": {"name": "cmaes", "popsize": 4, "seed": 5, "sigma0": 0.3}}


def test_flat_objective_restarts_until_the_budget(ray_log, tmp_path):
    from cluster.campaign import restarts
    from cluster.continuation import restart_seed

    cfg = _cfg(**FLAT, budget={"max_trials": 30})
    rec = Restarts()
    r = Campaign(cfg, tmp_path / "c").run(rec)
    assert r.status == "done" and r.stop["max_trials"] == 30 and r.n_trials == 30
    with Journal(tmp_path / "c", readonly=True) as j:
        gens = j.generations()
        done = restarts(j)
        first_x2 = j.trials(2)[0]["x"]
        mean1 = gens[0]["mean"]
    # IPOP: popsize x2 after each flat generation, the last one capped by the trials left (30 - 28)
    assert [g["popsize"] for g in gens] == [4, 8, 16, 2]
    assert [(d["after_generation"], d["popsize"], d["n_told"], d["start"]) for d in done] == [
        (1, 8, 4, "mean"),
        (2, 16, 12, "mean"),
        (3, 2, 28, "mean"),
    ]
    assert all(d["stop"] for d in done) and done[0]["seed"] == restart_seed(5, 4)
    assert [(e[1], e[2], e[3]) for e in rec.events if e[0] == "restart"] == [
        (d["after_generation"], d["stop"], d["popsize"]) for d in done
    ]
    # the new run is the campaign's own strategy, from the stopped run's mean, fresh sigma0, new seed
    again = Campaign._new_strategy_of(cfg, x0=np.array(mean1), popsize=8, seed=restart_seed(5, 4))
    assert again.ask()[0].tolist() == first_x2


def test_stop_on_convergence_keeps_the_old_stop(ray_log, tmp_path):
    cfg = _cfg(**{**FLAT, "strategy": {**FLAT["strategy"], "stop_on_convergence": True}}, budget={"max_trials": 30})
    r = Campaign(cfg, tmp_path / "c").run()
    assert r.status == "done" and r.n_generations == 1 and r.stop and "max_trials" not in r.stop


@pytest.mark.parametrize("where", ["mid-generation", "between generations"])
def test_resume_after_a_restart_is_exact(ray_log, tmp_path, where):
    from cluster.campaign import restarts

    cfg = _cfg(**FLAT, budget={"max_generations": 4})
    full = Campaign(cfg, tmp_path / "full").run()
    rec = Restarts(interrupt_at=(3, 2)) if where == "mid-generation" else Restarts(interrupt_after=2)
    assert Campaign(cfg, tmp_path / "int").run(rec).status == "interrupted"
    assert [e[1] for e in rec.events if e[0] == "restart"] == ([1, 2] if where == "mid-generation" else [1])
    resumed = Campaign.resume(tmp_path / "int").run()
    assert (resumed.status, resumed.n_trials, resumed.stop) == (full.status, full.n_trials, full.stop)
    assert full.n_trials == 4 + 8 + 16 + 32  # restarted after every flat generation
    with Journal(tmp_path / "int", readonly=True) as a, Journal(tmp_path / "full", readonly=True) as b:
        assert [(t["x"], t["objective"], t["status"]) for t in a.trials()] == [
            (t["x"], t["objective"], t["status"]) for t in b.trials()
        ]
        keys = ("generation", "popsize", "sigma", "mean", "best_objective")
        assert [[g[k] for k in keys] for g in a.generations()] == [[g[k] for k in keys] for g in b.generations()]
        assert [a.state(g) for g in range(1, 5)] == [b.state(g) for g in range(1, 5)]  # checkpoints, byte for byte
        assert restarts(a) == restarts(b) and len(restarts(a)) == 3


def test_pid_alive_uses_the_process_table():
    import subprocess
    import sys

    from cluster.lock import pid_alive

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert pid_alive(os.getpid()) is True
    assert pid_alive(int(done.stdout)) is False  # exited (and reaped) before the check
    assert pid_alive(None) is None and pid_alive("x") is None


def test_a_journal_without_stop_on_convergence_resumes_as_010_did(ray_log, tmp_path):
    """A config stored before ``strategy.stop_on_convergence`` existed (esopt 0.1.0) resumes with the
    legacy value ``true``: the strategy's criteria end it instead of a restart."""
    import json
    import sqlite3

    cfg = _cfg(**FLAT, budget={"max_trials": 30})
    for name, legacy in (("new", False), ("old", True)):
        d = tmp_path / name
        assert Campaign(cfg, d).run(Restarts(interrupt_after=1)).status == "interrupted"
        if legacy:
            with sqlite3.connect(d / "campaign.db") as db:
                raw = json.loads(db.execute("SELECT config_json FROM campaign").fetchone()[0])
                del raw["strategy"]["stop_on_convergence"]
                db.execute("UPDATE campaign SET config_json=?", (json.dumps(raw),))
        r = Campaign.resume(d).run()
        if legacy:
            assert (r.status, r.n_generations, r.n_trials) == ("done", 1, 4) and "max_trials" not in r.stop
        else:
            assert (r.status, r.n_trials) == ("done", 30) and r.stop["max_trials"] == 30


def test_progress_bar_counts_only_trials_that_run(ray_log, tmp_path):
    """Issue 11 item 14: all 6 trials of a generation are submitted to Ray at once, but with 2 CPUs
    at most 2 run; the bar's ``run=`` comes from the executor's start events, never above 2."""
    import io

    from cluster.progress import TqdmProgress

    class Watch(TqdmProgress):
        def __init__(self):
            super().__init__(io.StringIO())
            self.seen = []

        def _refresh(self):
            self.seen.append(self.running)
            super()._refresh()

    watch = Watch()
    cfg = _cfg(objective="helpers_objectives:counting_sphere", budget={"max_generations": 2})
    assert Campaign(cfg, tmp_path / "c").run(progress=watch).status == "done"
    assert watch.seen and max(watch.seen) == 2  # both CPUs busy at some point, never more
    assert all(f"run={k}" not in watch.file.getvalue() for k in range(3, 7))


def test_restarts_stop_doubling_the_popsize_after_max_popsize_increases(ray_log, tmp_path, monkeypatch):
    """A cheap objective under max_time_s doubled the popsize without bound (8192 after 30 s);
    after ``MAX_POPSIZE_INCREASES`` restarts (9, as pycma's IPOP) the popsize is kept.  The
    constant is lowered to 2 here so that the test needs 60 trials, not 4,000."""
    import cluster.continuation as cont
    from cluster.campaign import restarts

    monkeypatch.setattr(cont, "MAX_POPSIZE_INCREASES", 2)
    cfg = _cfg(**FLAT, budget={"max_trials": 4 + 8 + 16 + 16 + 16})
    r = Campaign(cfg, tmp_path / "c").run()
    assert r.status == "done" and r.n_trials == 60
    with Journal(tmp_path / "c", readonly=True) as j:
        assert [g["popsize"] for g in j.generations()] == [4, 8, 16, 16, 16]
        assert [d["popsize"] for d in restarts(j)] == [8, 16, 16, 16]


def test_a_campaign_that_nothing_would_stop_is_refused_before_anything_is_written(tmp_path):
    from cluster import ConfigError

    cfg = _cfg(**FLAT, budget={})
    with pytest.raises(ConfigError, match=r"^budget: nothing would stop this campaign") as e:
        Campaign(cfg, tmp_path / "c")
    assert e.value.path == "budget" and not (tmp_path / "c").exists()
    # ending at convergence is a stop; so is any budget key
    for ok in (
        _cfg(**{**FLAT, "strategy": {**FLAT["strategy"], "stop_on_convergence": True}}, budget={}),
        _cfg(**FLAT, budget={"max_time_s": 5}),
        _cfg(**FLAT, budget={"ftarget": 0.0}),
    ):
        Campaign(ok, tmp_path / f"ok{len(list(tmp_path.iterdir()))}").close()


def test_restart_after_convergence_keeps_the_popsize_from_the_ninth_restart():
    from cluster.continuation import MAX_POPSIZE_INCREASES, restart_after_convergence

    es = esopt.CMAES(np.full(3, 0.5), 0.2, popsize=6, seed=0, bounds=(0.0, 1.0))

    def build(x0, popsize, seed):
        return esopt.CMAES(x0, 0.2, popsize=popsize, seed=seed, bounds=(0.0, 1.0))

    assert MAX_POPSIZE_INCREASES == 9
    grow = [restart_after_convergence(es, build, seed=1, n_told=6, n_restarts=k).popsize for k in (0, 8, 9, 20)]
    assert grow == [12, 12, 6, 6]
    assert restart_after_convergence(es, build, seed=1, n_told=6, n_restarts=9, max_popsize=4).popsize == 4
    with pytest.raises(ValueError, match="n_restarts"):
        restart_after_convergence(es, build, seed=1, n_told=6, n_restarts=-1)


@pytest.mark.parametrize("address, error", [("", ValueError), ("  ", ValueError), (5, TypeError)])
def test_a_bad_address_is_refused_before_anything_is_written(tmp_path, address, error):
    with pytest.raises(error, match="address"):
        Campaign(_cfg(), tmp_path / "run", address=address)
    assert not (tmp_path / "run").exists()
    with Campaign(_cfg(), tmp_path / "kept"):
        pass
    before = (tmp_path / "kept" / "campaign.db").read_bytes()
    with pytest.raises(error, match="address"):
        Campaign.resume(tmp_path / "kept", address=address)
    assert (tmp_path / "kept" / "campaign.db").read_bytes() == before
