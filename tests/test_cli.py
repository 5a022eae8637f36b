"""The esopt command: exit codes, config errors, summary, status, Ctrl-C, the driver lock; progress."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

import esopt
from cluster.cli import EXIT_CONFIG, EXIT_DONE, EXIT_FAILED, EXIT_INTERRUPTED, default_directory, main
from cluster.progress import TqdmProgress, format_duration

OBJECTIVES = '''
import math, os, time

def quadratic(params):
    """Deterministic, cheap; reports a test error like trials does."""
    v = (math.log10(params["lr"]) + 2.0) ** 2 + 0.01 * params["T_0"]
    return {"objective": v, "test_error": v + 1.0}

def broken(params):
    raise RuntimeError("objective exploded")

def slow(params):
    time.sleep(float(os.environ.get("CLI_TEST_SLEEP", "60")))
    return 1.0
'''


def _config(objective: str, **over) -> dict:
    cfg = {
        "name": "cli-test",
        "objective": f"cli_test_objectives:{objective}",
        "space": {
            "lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"},
            "T_0": {"lower": 1, "upper": 20, "type": "int"},
        },
        "strategy": {"name": "cmaes", "popsize": 4, "seed": 1},
        "budget": {"max_generations": 2},
        "resources": {"num_cpus": 1},
        "ray": {"num_cpus": 2},
    }
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


@pytest.fixture
def objectives(tmp_path, monkeypatch):
    """Importable objectives for the driver (sys.path) and for Ray workers and subprocesses (PYTHONPATH)."""
    d = tmp_path / "mods"
    d.mkdir()
    (d / "cli_test_objectives.py").write_text(OBJECTIVES)
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(d), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    return d


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for this module's in-process campaigns (they join it, not own it)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False)  # never join another test's cluster
    yield
    ray.shutdown()


def _write(tmp_path, cfg) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(cfg) if isinstance(cfg, dict) else cfg)
    return p


def _db(directory) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(directory) / 'campaign.db'}?mode=ro", uri=True)


# -- no campaign needed -------------------------------------------------------------------------
def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"esopt {esopt.__version__}"


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("tune", "resume", "status", "report"):
        assert cmd in out


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2


@pytest.mark.parametrize(
    "edit,path",
    [
        (lambda c: c["space"]["lr"].update(lower=0.5, upper=0.1), "space.lr.lower"),
        (lambda c: c["space"]["lr"].update(lower=-1.0), "space.lr.lower"),
        (lambda c: c["budget"].update(max_trails=10), "budget.max_trails"),
        (lambda c: c.update(objective="no_such_module_xyz:f"), "objective"),
        (lambda c: c["resources"].update(num_cpus="two"), "resources.num_cpus"),
    ],
    ids=["lower>=upper", "log-nonpositive", "unknown-key", "unimportable", "wrong-type"],
)
def test_bad_config_exits_2_naming_the_key_before_anything_starts(tmp_path, capsys, objectives, edit, path):
    cfg = _config("quadratic")
    edit(cfg)
    run_dir = tmp_path / "run"
    assert main(["tune", str(_write(tmp_path, cfg)), "--dir", str(run_dir)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{path}:" in err and "Traceback" not in err
    assert not run_dir.exists()


def test_invalid_yaml_and_missing_file_exit_2(tmp_path, capsys):
    assert main(["tune", str(_write(tmp_path, "name: [unclosed\n"))]) == EXIT_CONFIG
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["tune", str(tmp_path / "nope.yaml")]) == EXIT_CONFIG
    assert "cannot read config" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["status", "report", "resume"])
def test_commands_on_a_directory_without_journal_exit_2(tmp_path, capsys, cmd):
    assert main([cmd, str(tmp_path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "no campaign here" in err and "campaign.db" in err


def test_tune_into_an_existing_campaign_is_refused_with_a_hint(tmp_path, capsys, objectives):
    from cluster.store import Journal

    run_dir = tmp_path / "run"
    Journal.create(run_dir, name="other", config={"name": "other"}).close()
    before = (run_dir / "campaign.db").read_bytes()
    assert main(["tune", str(_write(tmp_path, _config("quadratic"))), "--dir", str(run_dir)]) == EXIT_CONFIG
    assert f"esopt resume {run_dir}" in capsys.readouterr().err
    assert (run_dir / "campaign.db").read_bytes() == before


@pytest.mark.parametrize("cmd", ["status", "report", "resume"])
def test_a_corrupt_journal_exits_2_and_stays_untouched(tmp_path, capsys, cmd):
    db = tmp_path / "campaign.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)
    assert main([cmd, str(tmp_path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "bad journal" in err and "Traceback" not in err
    assert db.read_bytes() == b"SQLite format 3\x00" + b"\xff" * 4080
    assert not (tmp_path / "report").exists()


def test_default_directory_is_timestamped_and_unique(tmp_path):
    now = datetime(2026, 11, 21, 9, 5, 7)
    first = default_directory("digits-cmaes", tmp_path, now)
    assert first == tmp_path / "digits-cmaes-20261121-090507"
    first.mkdir()
    assert default_directory("digits-cmaes", tmp_path, now) == tmp_path / "digits-cmaes-20261121-090507-2"


def test_progress_bar_counts_and_best():
    buf = io.StringIO()
    p = TqdmProgress(buf, best=0.9)
    p.on_generation_start(0, 4)
    p.on_trial_finished(0, {"status": "done", "objective": 0.7}, {"done": 1, "running": 2, "pending": 1})
    p.on_trial_finished(0, {"status": "failed", "objective": None}, {"done": 1, "running": 2, "failed": 1})
    assert p.best == 0.7
    assert p.postfix().startswith("done=1 run=2 fail=1 best=0.7 elapsed=0:00:0")
    p.on_trial_finished(0, {"status": "done", "objective": float("nan")}, {"done": 2, "running": 1, "failed": 1})
    p.on_generation_end(0, 0.5)
    assert p.best == 0.5
    text = buf.getvalue()
    assert "generation 0" in text and "3/4" in text and "4/4" in text


def test_format_duration():
    assert format_duration(3723.9) == "1:02:03" and format_duration(-1) == "0:00:00"


# -- real campaigns (local Ray) ---------------------------------------------------------------
def test_tune_prints_summary_then_status_reads_the_journal(tmp_path, capsys, objectives, local_ray):
    run_dir = tmp_path / "run"
    code = main(["tune", str(_write(tmp_path, _config("quadratic"))), "--dir", str(run_dir), "--no-progress"])
    out = capsys.readouterr().out
    assert code == EXIT_DONE
    with _db(run_dir) as db:
        ((best_id, obj, lr, t0),) = db.execute(
            "SELECT id, objective, json_extract(params_json, '$.lr'), json_extract(params_json, '$.T_0') "
            "FROM trials WHERE status = 'done' ORDER BY objective, generation, idx LIMIT 1"
        )
        (n_done,) = db.execute("SELECT count(*) FROM trials WHERE status = 'done'").fetchone()
    assert n_done == 8
    assert f"lr  = {lr:.4g}" in out and f"T_0 = {t0}" in out
    assert f"objective: {obj:.4g}" in out and f"test error: {obj + 1.0:.4g}" in out
    assert f"esopt report {run_dir}" in out and f"esopt resume {run_dir}" in out
    assert f"campaign directory: {run_dir}" in out

    assert main(["status", str(run_dir)]) == EXIT_DONE
    status = capsys.readouterr().out
    assert "campaign cli-test: done" in status
    assert "generations: 2 asked, 2 told" in status
    assert "trials: done 8, running 0, pending 0, failed 0, cancelled 0" in status
    assert f"best so far: {obj:.4g}" in status and f"(trial {best_id}," in status


def test_objective_error_with_on_error_abort_exits_1(tmp_path, capsys, objectives, local_ray):
    run_dir = tmp_path / "run"
    cfg = _config("broken", failures={"on_error": "abort", "max_retries": 0})
    assert main(["tune", str(_write(tmp_path, cfg)), "--dir", str(run_dir), "--no-progress"]) == EXIT_FAILED
    with _db(run_dir) as db:
        (status,) = db.execute("SELECT status FROM campaign").fetchone()
        errors = [e for (e,) in db.execute("SELECT error FROM trials WHERE status = 'failed'")]
    assert status == "failed"
    assert errors and all("objective exploded" in e for e in errors)


def _wait_for(pred, timeout, what):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _started(run_dir):
    """Trials running on a node (submitted ones are 'running' too, with no node until they start)."""
    if not (run_dir / "campaign.db").exists():
        return None
    try:
        with _db(run_dir) as db:
            return db.execute(
                "SELECT count(*) FROM trials WHERE status = 'running' AND node_id IS NOT NULL"
            ).fetchone()[0]
    except sqlite3.Error:
        return None


def test_ctrl_c_exits_130_and_a_second_driver_is_refused(tmp_path, objectives):
    """While a driver runs: status shows its running trials and nodes, a second driver is refused
    with the holder's pid; SIGINT then stops it with exit code 130 and the journal says interrupted."""
    run_dir = tmp_path / "run"
    cfg_path = _write(tmp_path, _config("slow", budget={"max_generations": 1}))
    env = {**os.environ, "CLI_TEST_SLEEP": "120"}
    esopt_cmd = [sys.executable, "-m", "cluster.cli"]
    proc = subprocess.Popen(
        [*esopt_cmd, "tune", str(cfg_path), "--dir", str(run_dir), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: _started(run_dir) == 2, 90, "two trials started on a node")  # 2 CPUs, 1 each
        st = subprocess.run([*esopt_cmd, "status", str(run_dir)], env=env, capture_output=True, text=True, timeout=60)
        assert st.returncode == 0, st.stderr
        assert f"driver pid {proc.pid})" in st.stdout and "trials: done 0, running 4," in st.stdout
        with _db(run_dir) as db:
            started = db.execute("SELECT id, node_id FROM trials WHERE node_id IS NOT NULL").fetchall()
        assert len(started) == 2
        for tid, node in started:
            assert f"trial {tid} (generation 1, index {tid - 1}) on node {node} worker" in st.stdout
        assert st.stdout.count("waiting for resources") == 2

        second = subprocess.run(
            [*esopt_cmd, "resume", str(run_dir), "--no-progress"], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == EXIT_FAILED
        assert str(proc.pid) in second.stderr

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == EXIT_INTERRUPTED, err
        assert f"esopt resume {run_dir}" in out + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with _db(run_dir) as db:
        (status,) = db.execute("SELECT status FROM campaign").fetchone()
        left = db.execute("SELECT count(*) FROM trials WHERE status = 'running'").fetchone()[0]
    assert status == "interrupted" and left == 0
