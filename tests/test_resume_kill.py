"""SIGKILL of the campaign driver at several points, then resume: nothing finished runs twice,
the result equals the uninterrupted campaign's, and killed drivers' Ray processes do not pile up.
Also Ctrl-C (SIGINT to the driver's process group, as a terminal sends it): clean stop.

Drivers are real subprocesses (``python tests/helpers_objectives.py``) started in their own
session (``start_new_session=True``): every process a driver's Ray starts inherits that session
id, so processes left behind by a killed driver are counted by session id, independently of the
campaign's own bookkeeping.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import helpers_objectives as ho
import pytest

from cluster import Campaign, CampaignLocked, Journal, parse_config

HERE = Path(__file__).resolve().parent
DRIVER = str(HERE / "helpers_objectives.py")

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

CONFIG = {
    "name": "killme",
    "objective": "helpers_objectives:counting_sphere",
    "space": {
        "a": {"lower": -1.0, "upper": 1.0},
        "b": {"lower": 0.01, "upper": 10.0, "scale": "log10"},
        "c": {"lower": -2.0, "upper": 2.0},
    },
    "strategy": {"name": "cmaes", "popsize": 6, "seed": 3, "sigma0": 0.3},
    "budget": {"max_generations": 4},
    "resources": {"num_cpus": 1},
    "scheduler": {"mode": "sync"},  # the journal of a synchronous campaign equals the uninterrupted one
    "ray": {"num_cpus": 2},
}


def _session_procs(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is ``sid``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            rest = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[3]) == sid and rest[0] not in ("Z", "X"):
            out.append(int(name))
    return out


def _env(log: Path) -> dict:
    env = dict(os.environ)
    env.update(
        {
            ho.LOG_ENV: str(log),
            ho.SLEEP_ENV: "0.05",
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
        }
    )
    return env


def _start(args: dict, env: dict, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, DRIVER, json.dumps(args)],
        env=env,
        stdout=open(out, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_marker(proc: subprocess.Popen, marker: Path, out: Path, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"driver exited with {proc.returncode} before pausing:\n{out.read_text()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError(f"driver did not reach its pause point:\n{out.read_text()[-3000:]}")
        time.sleep(0.05)
    marker.unlink()


def _done_rows(directory: Path) -> dict[int, dict]:
    with Journal(directory, readonly=True) as j:
        return {r["id"]: r for r in j.trials() if r["status"] == "done"}


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def _uninterrupted():
    """What an uninterrupted campaign of CONFIG computes: the strategy built as the campaign
    builds it, asked and told generation by generation with the deterministic objective
    (``Campaign == esopt.minimize`` is checked in test_campaign.py)."""
    import esopt

    cfg = parse_config(CONFIG)
    es = esopt.make_strategy(
        "cmaes",
        cfg.space.x0,
        cfg.strategy.sigma0,
        popsize=cfg.strategy.popsize,
        seed=cfg.strategy.seed,
        bounds=cfg.space.bounds,
    )
    trials, gens, best = [], [], None
    for g in range(1, cfg.budget.max_generations + 1):
        X = es.ask()
        f = [ho.sphere_value(p) for p in cfg.space.decode_many(X)]
        es.tell(X, f)
        best = min(f) if best is None else min(best, min(f))
        trials += [(g, i, list(map(float, x)), fi) for i, (x, fi) in enumerate(zip(X, f))]
        gens.append((es.result.sigma, list(map(float, es.result.mean)), best))
    return trials, gens, best


def test_sigkill_at_several_points_then_resume(tmp_path):
    ref_trials, ref_gens, ref_best = _uninterrupted()
    directory = tmp_path / "camp"
    log = tmp_path / "log.jsonl"
    env = _env(log)
    marker = tmp_path / "paused"
    pauses = [("new", ["start", 2]), ("resume", ["trial", 3, 2]), ("resume", ["end", 3])]
    done_at_kill: dict[int, dict] = {}
    sessions: list[int] = []
    leftovers_seen = []
    for k, (mode, pause) in enumerate(pauses):
        args = {
            "dir": str(directory),
            "config": CONFIG if mode == "new" else None,
            "pause": pause,
            "marker": str(marker),
        }
        out = tmp_path / f"driver{k}.out"
        proc = _start(args, env, out)
        _wait_marker(proc, marker, out)
        # the earlier, killed drivers' processes were cleaned up by this driver's start
        for sid in sessions:
            assert _session_procs(sid) == [], f"processes of killed driver {sid} are still alive"
        # a second driver on the same directory is refused, naming the holder's pid
        with pytest.raises(CampaignLocked, match=f"pid {proc.pid}"):
            Campaign.resume(directory)
        done_at_kill.update(_done_rows(directory))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        time.sleep(1.0)  # let gcs_server/raylet notice and exit; the orphaned agents stay
        leftovers_seen.append(len(_session_procs(proc.pid)))
        sessions.append(proc.pid)
    # the journal says where each kill happened
    with Journal(directory, readonly=True) as j:
        info = j.campaign_info()
        assert info["status"] == "running"  # nobody could mark it: the driver was SIGKILLed
        assert [g["told_at"] is not None for g in j.generations()] == [True, True, True]
    # the final resume runs to the end
    out = tmp_path / "final.out"
    proc = _start({"dir": str(directory), "config": None, "pause": None}, env, out)
    assert proc.wait(timeout=180) == 0, out.read_text()[-3000:]
    sessions.append(proc.pid)
    final = json.loads(out.read_text().strip().splitlines()[-1])

    # no trial that was finished (journaled done) at a kill ran again: it kept its row, and the
    # side file has no execution of its params after it was journaled.  (Trials that completed in
    # a worker but were not yet journaled when the driver died do run again, by design.)
    log_times: dict[str, list[float]] = {}
    for rec in ho.read_log(log):
        log_times.setdefault(_key(rec["params"]), []).append(rec["t"])
    assert len(done_at_kill) >= 12, "the kill points should have left finished trials behind"
    with Journal(directory, readonly=True) as j:
        final_rows = {r["id"]: r for r in j.trials()}
    for tid, row in done_at_kill.items():
        assert final_rows[tid]["attempts"] == row["attempts"]
        assert final_rows[tid]["finished_at"] == row["finished_at"]
        runs = log_times[_key(row["params"])]
        assert len([t for t in runs if t > row["finished_at"]]) == 0, f"trial {tid} ran again after it finished"
        assert len([t for t in runs if t <= row["finished_at"]]) >= 1

    # same result as the uninterrupted campaign, down to every vector and value
    assert final["status"] == "done"
    assert final["n_generations"] == 4 and final["n_trials"] == 24
    assert final["best_objective"] == ref_best
    with Journal(directory, readonly=True) as j:
        trials, gens = j.trials(), j.generations()
        assert final["best_params"] == j.best_trial()["params"]
    assert [(t["generation"], t["idx"], t["x"], t["objective"]) for t in trials] == ref_trials
    assert all(t["status"] == "done" for t in trials)
    assert [(g["sigma"], g["mean"], g["best_objective"]) for g in gens] == ref_gens

    # kill/resume cycles did not pile up processes: nothing of any driver's session is alive
    for sid in sessions:
        assert _session_procs(sid) == [], f"session {sid} left {_session_procs(sid)}"
    assert not (directory / "ray_local.json").exists()
    print("processes left right after each SIGKILL (cleaned by the next resume):", leftovers_seen)


def test_ctrl_c_stops_cleanly(tmp_path):
    directory = tmp_path / "camp"
    marker = tmp_path / "paused"
    out = tmp_path / "driver.out"
    cfg = dict(CONFIG, name="ctrlc")
    env = _env(tmp_path / "log.jsonl")
    env[ho.SLEEP_ENV] = "2.0"  # trials still running when Ctrl-C arrives
    proc = _start({"dir": str(directory), "config": cfg, "pause": ["trial", 1, 2], "marker": str(marker)}, env, out)
    _wait_marker(proc, marker, out)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    assert proc.wait(timeout=60) == 130, out.read_text()[-3000:]
    assert json.loads(out.read_text().strip().splitlines()[-1])["status"] == "interrupted"
    with Journal(directory, readonly=True) as j:
        info = j.campaign_info()
        rows = j.trials(1)
    assert info["status"] == "interrupted"
    assert sum(r["status"] == "done" for r in rows) >= 2
    assert sum(r["status"] == "cancelled" for r in rows) >= 1
    assert all(r["status"] in ("done", "cancelled") for r in rows)
    # ray.shutdown() left no worker (or any other) process of the driver's session behind
    deadline = time.time() + 10
    while _session_procs(proc.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert _session_procs(proc.pid) == []
    assert not (directory / "ray_local.json").exists()
