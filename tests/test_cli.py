"""The esopt command: exit codes, config errors, summary, status, Ctrl-C, the driver lock; progress."""

from __future__ import annotations

import contextlib
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

def flat(params):
    """Every trial at the same value (chance-level accuracy): the strategy's flat-fitness criterion fires."""
    return 0.9

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
        (lambda c: c.update(objective="trials:train_and_evaluate", trial={"dataset": "mnist"}), "trial.data_dir"),
    ],
    ids=["lower>=upper", "log-nonpositive", "unknown-key", "unimportable", "wrong-type", "mnist-without-data_dir"],
)
def test_bad_config_exits_2_naming_the_key_before_anything_starts(tmp_path, capsys, objectives, edit, path):
    cfg = _config("quadratic")
    edit(cfg)
    run_dir = tmp_path / "run"
    assert main(["tune", str(_write(tmp_path, cfg)), "--dir", str(run_dir)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{path}:" in err and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("esopt: error: bad config: ")  # one line, nothing else
    assert not run_dir.exists()


@pytest.mark.parametrize("cmd", ["tune", "resume"])
def test_an_empty_address_is_a_usage_error_not_a_local_instance(tmp_path, capsys, objectives, cmd):
    """``--address ''`` is refused as ``ray.address: ''`` is (it used to start a local Ray instance)."""
    target = str(_write(tmp_path, _config("quadratic"))) if cmd == "tune" else str(tmp_path)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main([cmd, target, "--address", " ", *(["--dir", str(run_dir)] if cmd == "tune" else [])])
    assert e.value.code == 2
    assert "--address: address ' ' is empty" in capsys.readouterr().err
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
    err = capsys.readouterr().err
    assert f"esopt resume {run_dir}" in err
    assert "Campaign.resume" not in err and err.count("\n") == 1  # the CLI's own command, one line
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
def test_tune_prints_summary_then_status_reads_the_journal(tmp_path, capsys, objectives, ray_local):
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


def test_objective_error_with_on_error_abort_exits_1(tmp_path, capsys, objectives, ray_local):
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


@contextlib.contextmanager
def _slow_driver(tmp_path):
    """``esopt tune`` in a subprocess on a sync generation of 4 slow trials (2 CPUs: two start, two
    wait), yielded with its run directory once two trials run on a node; killed if still alive."""
    run_dir = tmp_path / "run"
    cfg_path = _write(tmp_path, _config("slow", budget={"max_generations": 1}, scheduler={"mode": "sync"}))
    env = {**os.environ, "CLI_TEST_SLEEP": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cluster.cli", "tune", str(cfg_path), "--dir", str(run_dir), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: _started(run_dir) == 2, 90, "two trials started on a node")  # 2 CPUs, 1 each
        yield proc, run_dir, env
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stopped_by(proc, sig, run_dir) -> None:
    """Send ``sig``: exit 130 with the resume hint, campaign interrupted, its 4 trials cancelled."""
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert f"esopt resume {run_dir}" in out + err
    with _db(run_dir) as db:
        (status,) = db.execute("SELECT status FROM campaign").fetchone()
        counts = dict(db.execute("SELECT status, count(*) FROM trials GROUP BY status").fetchall())
    assert (status, counts) == ("interrupted", {"cancelled": 4})


def test_ctrl_c_exits_130_and_a_second_driver_is_refused(tmp_path, objectives):
    """While a driver runs: status shows its running trials and nodes, a second driver is refused
    with the holder's pid; SIGINT then stops it with exit code 130 and the journal says interrupted."""
    esopt_cmd = [sys.executable, "-m", "cluster.cli"]
    with _slow_driver(tmp_path) as (proc, run_dir, env):
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
        _stopped_by(proc, signal.SIGINT, run_dir)


def test_sigterm_after_ray_started_exits_130_like_ctrl_c(tmp_path, objectives):
    """SIGTERM (what `ray job stop` and a pod shutdown send) to a driver that started Ray itself:
    ray.init installs its own SIGTERM handler (exit 1), which used to end the campaign 'failed'."""
    with _slow_driver(tmp_path) as (proc, run_dir, _):
        _stopped_by(proc, signal.SIGTERM, run_dir)


# -- journals as campaigns leave them, written through the Journal API (no Ray needed) -----------
TRIALS_CONFIG = {
    "name": "pct",
    "objective": "trials:train_and_evaluate",
    "trial": {"dataset": "digits", "epochs": 1},
    "space": {"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}},
    "strategy": {"name": "cmaes", "popsize": 4, "seed": 0},
    "budget": {"max_generations": 1},
}


def _hand_journal(run_dir, raw, outcomes, *, status="done", message="stopped by max_generations=1"):
    """One told generation whose trials ended as ``outcomes``: ``(status, objective, error, result)``."""
    from cluster.config import parse_config
    from cluster.store import Journal

    cfg = parse_config(raw, check_objective=False, check_data=False)
    j = Journal.create(run_dir, name=cfg.name, config=cfg.raw)
    try:
        X = [[0.1 + 0.2 * k] * cfg.space.dim for k in range(len(outcomes))]
        ids = j.add_generation(1, X, cfg.space.decode_many(X))
        j.mark_submitted(ids)
        for tid, (st, obj, err, res) in zip(ids, outcomes):
            j.finish_trial(tid, status=st, objective=obj, error=err, result=res)
        j.tell(1, sigma=0.25, mean=[0.5] * cfg.space.dim, best_objective=None, state=b"", elapsed_s=3.0)
        j.set_campaign(status=status, message=message, elapsed_s=3.0)
    finally:
        j.close()
    return cfg


def test_status_lists_failure_reasons_with_counts_and_where_to_read_errors(tmp_path, capsys):
    run_dir = tmp_path / "run"
    _hand_journal(
        run_dir,
        _config("quadratic"),
        [
            ("failed", None, "exception: ValueError: dataset 'mnist' needs spec.data_dir\nTraceback ...", None),
            ("done", 0.25, None, {"objective": 0.25}),
            ("failed", None, "exception: ValueError: dataset 'mnist' needs spec.data_dir", None),
            ("failed", None, "timeout", None),
        ],
    )
    assert main(["status", str(run_dir)]) == EXIT_DONE
    out = capsys.readouterr().out
    assert "trials: done 1, running 0, pending 0, failed 3, cancelled 0" in out
    assert "3 of 4 finished trials failed, by reason:" in out
    lines = out.splitlines()
    i = lines.index("3 of 4 finished trials failed, by reason:")
    assert lines[i + 1].split() == ["2", "x", "ValueError:", "dataset", "'mnist'", "needs", "spec.data_dir"]
    assert lines[i + 2].split() == ["1", "x", "timeout"]
    assert "trials.csv" in lines[i + 3] and "select id, generation, idx, error from trials" in lines[i + 3]
    assert "Traceback" not in out  # only the first line of each error


def test_trials_errors_are_printed_in_percent(tmp_path, capsys):
    """trials:train_and_evaluate reports error fractions; the CLI prints them in percent, as the README does."""
    run_dir = tmp_path / "run"
    _hand_journal(
        run_dir,
        TRIALS_CONFIG,
        [("done", 0.005, None, {"objective": 0.005, "test_error": 0.02})] + [("done", 0.01, None, None)] * 3,
    )
    assert main(["status", str(run_dir)]) == EXIT_DONE
    out = capsys.readouterr().out
    assert "best so far: 0.5% validation error (trial 1," in out and "0.005" not in out
    assert main(["resume", str(run_dir), "--no-progress"]) == EXIT_DONE  # done: prints the summary, runs nothing
    out = capsys.readouterr().out
    assert "validation error: 0.5%   test error: 2%" in out


def test_the_journal_file_stands_for_its_campaign_directory(tmp_path, capsys):
    run_dir = tmp_path / "run"
    _hand_journal(run_dir, TRIALS_CONFIG, [("done", 0.005, None, None)] * 2)
    assert main(["status", str(run_dir)]) == EXIT_DONE
    by_dir = capsys.readouterr().out
    assert main(["status", str(run_dir / "campaign.db")]) == EXIT_DONE
    assert capsys.readouterr().out == by_dir and "best so far: 0.5% validation error" in by_dir
    assert main(["report", str(run_dir / "campaign.db")]) == EXIT_DONE
    assert (run_dir / "report" / "trials.csv").is_file()


def test_status_of_a_config_file_names_its_campaign_directories(tmp_path, capsys, monkeypatch):
    from cluster.store import Journal

    monkeypatch.chdir(tmp_path)
    cfg_path = _write(tmp_path, _config("quadratic"))
    assert main(["status", str(cfg_path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "not a campaign directory" in err and "--dir" not in err and "runs/cli-test-<YYYYmmdd-HHMMSS>" in err
    for stamp in ("20261201-101010", "20261202-090000"):
        Journal.create(Path("runs") / f"cli-test-{stamp}", name="cli-test", config={"name": "cli-test"}).close()
    Journal.create(Path("runs") / "cli-test-other-20261201-101010", name="cli-test-other", config={}).close()
    # esopt simulate's default directory, runs/<name>-sim-<stamp>, is listed in time order
    Journal.create(Path("runs") / "cli-test-sim-20261201-120000", name="cli-test", config={}).close()
    for cmd in ("status", "report", "resume"):
        assert main([cmd, str(cfg_path)]) == EXIT_CONFIG
        err = capsys.readouterr().err
        assert (
            "campaigns of 'cli-test': runs/cli-test-20261201-101010, runs/cli-test-sim-20261201-120000, "
            "runs/cli-test-20261202-090000\n"
        ) in err
        assert "Traceback" not in err


def test_every_trial_failing_ends_the_campaign_failed_with_its_reason(tmp_path, capsys, objectives, ray_local):
    run_dir = tmp_path / "run"
    assert main(["tune", str(_write(tmp_path, _config("broken"))), "--dir", str(run_dir), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "campaign failed:" in out and "no trial finished successfully" in out
    assert "4 of 4 finished trials failed: RuntimeError: objective exploded" in out
    assert main(["status", str(run_dir)]) == EXIT_DONE
    status = capsys.readouterr().out
    assert "campaign cli-test: failed" in status
    assert "4 of 4 finished trials failed: RuntimeError: objective exploded" in status


def test_resources_no_node_has_exit_2_in_one_line_and_write_nothing(tmp_path, objectives):
    """A trial needing 4 CPUs on a local instance of 2: refused before any trial, nothing left behind."""
    run_dir = tmp_path / "run"
    cfg_path = _write(tmp_path, _config("quadratic", resources={"num_cpus": 4}))
    proc = subprocess.run(
        [sys.executable, "-m", "cluster.cli", "tune", str(cfg_path), "--dir", str(run_dir), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("esopt: error:")]
    assert len(errors) == 1 and "resources" in errors[0] and "Traceback" not in proc.stderr
    assert not run_dir.exists()


def test_restarts_after_convergence_are_printed_with_no_progress(tmp_path, capsys, objectives, ray_local):
    run_dir = tmp_path / "run"
    cfg = _config("flat", budget={"max_generations": 3})
    assert main(["tune", str(_write(tmp_path, cfg)), "--dir", str(run_dir), "--no-progress"]) == EXIT_DONE
    captured = capsys.readouterr()
    assert "|" not in captured.err  # no bars
    restarts = [ln for ln in captured.err.splitlines() if "(IPOP)" in ln]
    assert len(restarts) == 2, captured.err  # after generations 1 and 2; generation 3 ends the budget
    assert restarts[0].startswith("generation 1: the strategy's stopping criteria fired (") and "tol" in restarts[0]
    assert "restart 1 (IPOP): popsize 4 -> 8" in restarts[0] and "restart 2 (IPOP): popsize 8 -> 16" in restarts[1]
    assert main(["status", str(run_dir)]) == EXIT_DONE
    status = capsys.readouterr().out
    assert "restart after generation 1: " in status and "new popsize 8" in status
