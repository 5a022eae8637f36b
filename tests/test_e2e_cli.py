"""End to end through the installed `esopt` command (issue 6, CI part).

A tiny real campaign (CNN on digits via trials, 2 generations of 4, 3 epochs) on a local Ray
instance: `esopt tune` is SIGKILLed mid-generation (some trial done, the generation not told),
`esopt resume` finishes it, then `esopt status` and `esopt report` run on its directory.  The
journal must hold every trial exactly once, all done, the trials finished before the kill
untouched (not run again), and the report files must be non-empty PNGs and a CSV.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from shutil import which

import pytest
import yaml

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
POPSIZE, GENERATIONS = 4, 2

CONFIG = {
    "name": "e2e-digits",
    "objective": "trials:train_and_evaluate",
    "trial": {"dataset": "digits", "model": "cnn", "optimizer": "adamw", "epochs": 3, "seed": 0, "device": "cpu"},
    "space": {
        "lr": {"lower": 3.1622776601683795e-05, "upper": 0.1, "scale": "log10"},
        "weight_decay": {"lower": 1e-6, "upper": 0.1, "scale": "log10"},
        "T_0": {"lower": 1, "upper": 20, "type": "int"},
    },
    "strategy": {"name": "cmaes", "popsize": POPSIZE, "sigma0": 0.3, "seed": 0},
    "budget": {"max_generations": GENERATIONS},
    "resources": {"num_cpus": 1, "timeout_s": 300},
    "scheduler": {"mode": "sync"},  # killed while a generation is open (async: tests/test_async_campaign.py)
    "ray": {"num_cpus": 2},
}


def _esopt() -> str:
    """The installed console script (next to this Python, else on PATH)."""
    here = Path(sys.executable).parent / "esopt"
    found = str(here) if here.exists() else which("esopt")
    if not found:
        pytest.fail("the `esopt` command is not installed; run `pip install -e .` first")
    return found


def _ro(directory: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{directory / 'campaign.db'}?mode=ro", uri=True, timeout=10)


def _mid_generation(directory: Path):
    """(generation, done trials) once an asked, untold generation has >= 1 done and < POPSIZE done."""
    if not (directory / "campaign.db").exists():
        return None
    try:
        with _ro(directory) as db:
            row = db.execute(
                "SELECT g.generation, COUNT(t.id) FROM generations g JOIN trials t "
                "ON t.generation = g.generation AND t.status = 'done' "
                "WHERE g.told_at IS NULL GROUP BY g.generation"
            ).fetchone()
    except sqlite3.Error:  # being created
        return None
    return row if row and 1 <= row[1] < POPSIZE else None


def test_tune_sigkill_resume_status_report(tmp_path):
    esopt = _esopt()
    cfg_path = tmp_path / "e2e.yaml"
    cfg_path.write_text(yaml.safe_dump(CONFIG))
    run_dir = tmp_path / "run"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}

    # 1. tune, killed with SIGKILL while a generation is open and part of it is done
    with open(tmp_path / "tune.out", "w") as out, open(tmp_path / "tune.err", "w") as err:
        proc = subprocess.Popen([esopt, "tune", str(cfg_path), "--dir", str(run_dir)], env=env, stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + 240  # a loaded 2-core machine starts Ray and torch slowly
            while _mid_generation(run_dir) is None:
                assert proc.poll() is None, f"esopt tune ended early: {(tmp_path / 'tune.err').read_text()}"
                assert time.monotonic() < deadline, "no trial finished within 240 s"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with _ro(run_dir) as db:
        (status,) = db.execute("SELECT status FROM campaign").fetchone()
        told = db.execute("SELECT COUNT(*) FROM generations WHERE told_at IS NOT NULL").fetchone()[0]
        before = {
            r[0]: r[1:]
            for r in db.execute(
                "SELECT id, generation, idx, objective, finished_at, result_json FROM trials WHERE status = 'done'"
            )
        }
    assert status == "running"  # the killed driver could not write anything more
    assert told < GENERATIONS and 1 <= len(before) < POPSIZE * GENERATIONS

    # 2. resume to the end
    res = subprocess.run(
        [esopt, "resume", str(run_dir), "--no-progress"], env=env, capture_output=True, text=True, timeout=180
    )
    assert res.returncode == 0, res.stderr
    assert "validation error:" in res.stdout and "test error:" in res.stdout
    assert f"esopt report {run_dir}" in res.stdout

    with _ro(run_dir) as db:
        rows = db.execute(
            "SELECT id, generation, idx, status, objective, finished_at, result_json "
            "FROM trials ORDER BY generation, idx"
        ).fetchall()
        (status,) = db.execute("SELECT status FROM campaign").fetchone()
        told = db.execute("SELECT COUNT(*) FROM generations WHERE told_at IS NOT NULL").fetchone()[0]
    assert status == "done" and told == GENERATIONS
    keys = [(g, i) for _, g, i, *_ in rows]
    assert len(keys) == len(set(keys)) == POPSIZE * GENERATIONS  # every trial once
    assert sorted(keys) == [(g, i) for g in sorted({g for g, _ in keys}) for i in range(POPSIZE)]
    assert all(r[3] == "done" and r[4] is not None for r in rows)
    after = {r[0]: r[1:3] + r[4:] for r in rows}
    for tid, old in before.items():  # finished before the kill: kept as they were, not run again
        assert after[tid] == old

    # 3. status and report on the finished campaign
    st = subprocess.run([esopt, "status", str(run_dir)], env=env, capture_output=True, text=True, timeout=60)
    assert st.returncode == 0, st.stderr
    assert "campaign e2e-digits: done" in st.stdout
    assert f"trials: done {POPSIZE * GENERATIONS}, running 0" in st.stdout

    rep = subprocess.run([esopt, "report", str(run_dir)], env=env, capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    report_dir = run_dir / "report"
    for name in ("objective.png", "sigma.png", "params.png"):
        data = (report_dir / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1000, name
    with (report_dir / "trials.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == POPSIZE * GENERATIONS
    assert all(r["status"] == "done" and 0.0 <= float(r["objective"]) <= 1.0 for r in table)
    diverged = {str(r[0]) for r in rows if json.loads(r[6])["status"] == "diverged"}  # no final model to test
    assert len(diverged) < len(table) // 2
    assert all(r["test_error"] != "" for r in table if r["id"] not in diverged)  # a test error beside the objective


def _clean_env() -> dict:
    """The environment of a new user's shell: no PYTHONPATH, no Ray variables but no usage stats."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "PYTHONPATH"}
    return {**env, "RAY_USAGE_STATS_ENABLED": "0"}


SMALL = {
    "space": {"x": {"lower": 0.0, "upper": 1.0}, "y": {"lower": -1.0, "upper": 1.0}},
    "strategy": {"name": "cmaes", "popsize": 4, "sigma0": 0.3, "seed": 0},
    "budget": {"max_generations": 1},
    "ray": {"num_cpus": 2},
}


def test_objective_module_beside_the_config(tmp_path):
    """`objective: myobj:f` with myobj.py beside the config (and a sibling module it imports) runs
    without PYTHONPATH, from another working directory; the local instance says nothing about tokens."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "myhelpers.py").write_text("def shift(v):\n    return float(v) - 0.3\n")
    (conf / "myobj.py").write_text(
        "from myhelpers import shift\n\n\ndef f(params):\n    return sum(shift(v) ** 2 for v in params.values())\n"
    )
    (conf / "mine.yaml").write_text(yaml.safe_dump({"name": "mine", "objective": "myobj:f", **SMALL}))
    work = tmp_path / "elsewhere"
    work.mkdir()
    res = subprocess.run(
        [_esopt(), "tune", str(conf / "mine.yaml"), "--dir", str(tmp_path / "run"), "--no-progress"],
        env=_clean_env(),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr
    assert "campaign done: 4 trials finished" in res.stdout
    assert "Token authentication is enabled" not in res.stderr  # issue 11 item 14: a local instance needs no token
    with _ro(tmp_path / "run") as db:
        assert db.execute("SELECT COUNT(*) FROM trials WHERE status = 'done'").fetchone()[0] == 4


def test_resources_no_node_can_provide(tmp_path):
    """num_gpus that no node has: exit 2 with a one-line message, and no campaign directory."""
    cfg_path = tmp_path / "gpu.yaml"
    cfg = {"name": "gpu", "objective": "trials:train_and_evaluate", "trial": {"dataset": "digits", "epochs": 1}}
    space = {"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}, "T_0": {"lower": 1, "upper": 5, "type": "int"}}
    cfg.update(space=space, strategy=SMALL["strategy"], budget=SMALL["budget"])
    cfg.update(resources={"num_cpus": 1, "num_gpus": 1}, ray={"num_cpus": 1, "num_gpus": 0})
    cfg_path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "runs" / "gpu-run"
    res = subprocess.run(
        [_esopt(), "tune", str(cfg_path), "--dir", str(run_dir), "--no-progress"],
        env=_clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 2, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("esopt: error:")]
    assert len(errors) == 1 and "resources: no Ray node can run a trial needing" in errors[0], res.stderr
    assert "num_gpus=1.0" in errors[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists()  # created by this run, removed again: nothing written
    # a directory that existed before is kept (only what the run wrote is removed)
    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    res = subprocess.run(
        [_esopt(), "tune", str(cfg_path), "--dir", str(kept), "--no-progress"],
        env=_clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 2, res.stderr
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]
