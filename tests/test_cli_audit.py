"""The esopt command's user paths found wrong in an audit, each checked through the command line.

- a ``trials:train_and_evaluate`` space (or ``trial.fixed``) whose values every trial would reject
  (outside ``trials.HPARAMS``' valid ranges, an unknown optimizer choice, a float for an integer
  hyperparameter, a coefficient of another optimizer) is refused by ``esopt tune`` at its key path;
- ``esopt resume`` of a campaign that ended ``failed`` (a generation without any success) with its
  budget spent keeps it ``failed`` (exit 1) instead of rewriting it ``done`` (exit 0);
- ``esopt status DIR | head`` (stdout closed by its reader) exits quietly, not with "cannot reach the
  Ray cluster";
- ``--dir``/``--out`` naming a file, or a path under one, is one line at exit 2, not a traceback;
- ``esopt simulate --durations`` with an unusable CSV is one line at exit 2, not a traceback.

No Ray: every campaign here is refused before it starts, or runs on the simulated cluster.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cluster.cli import EXIT_BROKEN_PIPE, EXIT_CONFIG, EXIT_DONE, EXIT_FAILED, main

OBJECTIVES = """
def sphere(params):
    return float(sum((float(v) - 0.3) ** 2 for v in params.values()))

def broken(params):
    raise RuntimeError("objective exploded")
"""


def _config(objective: str = "audit_objectives:sphere", **over) -> dict:
    cfg = {
        "name": "audit",
        "objective": objective,
        "space": {"x": {"lower": -1.0, "upper": 1.0}, "y": {"lower": 1e-3, "upper": 1.0, "scale": "log10"}},
        "strategy": {"name": "cmaes", "popsize": 4, "seed": 1},
        "budget": {"max_generations": 1},
    }
    cfg.update(over)
    return cfg


def _write(folder: Path, cfg: dict) -> Path:
    """The config as ``folder/config.yaml``, with its objective module beside it (no PYTHONPATH needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audit_objectives.py").write_text(OBJECTIVES)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _one_error_line(err: str, start: str) -> None:
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"esopt: error: bad config: {start}"), err


def _status(run_dir: Path) -> tuple[str, str]:
    with sqlite3.connect(f"file:{run_dir / 'campaign.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT status, message FROM campaign").fetchone()


# -- trials: values every trial would reject ----------------------------------------------------------
TRIALS = {
    "objective": "trials:train_and_evaluate",
    "trial": {"dataset": "digits", "epochs": 1},
    "strategy": {"popsize": 4, "seed": 1},  # the default strategy: catcmawm for a space with choices
}
LR = {"lower": 1e-4, "upper": 0.1, "scale": "log10"}


@pytest.mark.parametrize(
    "space,trial,path,message",
    [
        ({"lr": {**LR, "upper": 1000.0}}, {}, "space.lr.upper", "'lr'=1000.0 is outside its valid range (0, 100]"),
        ({"dropout1": {"lower": 0.0, "upper": 1.0}}, {}, "space.dropout1.upper", "outside its valid range [0, 1)"),
        ({"lr": {**LR, "init": 200.0, "upper": 300.0}}, {}, "space.lr.init", "'lr'=200.0 is outside"),
        ({"optimizer": {"choices": ["adamw", "adam"]}}, {}, "space.optimizer.choices", "'optimizer'='adam' is not one"),
        ({"filters1": {"lower": 4, "upper": 64, "scale": "log10"}}, {}, "space.filters1.type", "add type: int"),
        ({"momentum": {"lower": 0.5, "upper": 0.99}}, {}, "space.momentum", "applies to ['sgdw'] only"),
        ({"lr": LR}, {"fixed": {"dropout1": 5}}, "trial.fixed", "'dropout1'=5 is outside its valid range"),
        ({"lr": LR}, {"fixed": {"lr": 0.01}}, "space.lr", "both tuned (hparams) and fixed"),
        (
            {
                "weight_decay": {"lower": 1e-6, "upper": 0.1, "scale": "log10"},
                "weight_decay_norm": {"lower": 0, "upper": 1},
            },
            {},
            "space",
            "give either 'weight_decay' or 'weight_decay_norm', not both",
        ),
    ],
    ids=[
        "range",
        "open-bound",
        "init",
        "choice",
        "int-as-float",
        "other-optimizer",
        "fixed",
        "tuned-and-fixed",
        "pair",
    ],
)
def test_a_trials_space_that_every_trial_would_reject_exits_2_at_its_key(tmp_path, capsys, space, trial, path, message):
    """Before, each of these configs started a campaign whose trials failed one by one (the trial's
    own ValueError: "... fix the value or the search-space bounds")."""
    cfg = _config(**TRIALS, space=space)
    cfg["trial"] = {**cfg["trial"], **trial}
    run_dir = tmp_path / "run"
    assert main(["tune", str(_write(tmp_path / "cfg", cfg)), "--dir", str(run_dir), "--no-progress"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    _one_error_line(err, f"{path}: ")
    assert message in err
    assert not run_dir.exists()


def test_a_tuned_optimizer_checks_the_other_optimizers_coefficients_by_range_only(tmp_path):
    """With the optimizer in the space, momentum (sgdw only) is accepted, as each trial ignores it
    for adamw; its range is still checked."""
    from cluster.config import ConfigError, parse_config

    space = {"optimizer": {"choices": ["adamw", "sgdw"]}, "momentum": {"lower": 0.5, "upper": 0.99}}
    assert parse_config(_config(**TRIALS, space=space)).space.names == ["optimizer", "momentum"]
    with pytest.raises(ConfigError) as e:
        parse_config(_config(**TRIALS, space={**space, "momentum": {"lower": 0.5, "upper": 1.0}}))
    assert e.value.path == "space.momentum.upper"


def test_a_journal_with_such_a_space_still_resumes(tmp_path):
    """The check is for new configs: a journal written before it opens (its trials fail as they did)."""
    from cluster.campaign import Campaign
    from cluster.config import ConfigError, parse_config
    from cluster.store import Journal

    raw = _config(**TRIALS, space={"lr": {**LR, "upper": 1000.0}})
    with pytest.raises(ConfigError):
        parse_config(raw)
    cfg = parse_config(raw, check_values=False)
    Journal.create(tmp_path / "run", name=cfg.name, config=cfg.raw).close()
    campaign = Campaign.resume(tmp_path / "run")
    try:
        assert campaign.config.space.params[0].upper == 1000.0
    finally:
        campaign.close()


# -- resume of a failed campaign whose budget is spent ------------------------------------------------
@pytest.mark.parametrize("mode", ["async", "sync"])
def test_resume_of_a_campaign_failed_at_its_last_generation_stays_failed(tmp_path, capsys, mode):
    """Every trial of the only generation failed: the campaign ended failed (exit 1).  Resuming it
    ran nothing and rewrote it ``done`` ("stopped by max_generations=1"), exit 0."""
    cfg_path = _write(tmp_path / "cfg", _config("audit_objectives:broken", scheduler={"mode": mode}))
    run_dir = tmp_path / "run"
    assert main(["simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]) == EXIT_FAILED
    failed = _status(run_dir)
    assert failed[0] == "failed" and failed[1].startswith("4 of 4 trials of generation 1 failed: RuntimeError")
    capsys.readouterr()

    assert main(["resume", str(run_dir), "--no-progress"]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "campaign failed: 4 trials finished, 1 generation told" in out
    assert "4 of 4 finished trials failed: RuntimeError: objective exploded" in out
    assert _status(run_dir) == failed  # status and message as the run left them
    assert main(["status", str(run_dir)]) == EXIT_DONE
    assert "campaign audit: failed" in capsys.readouterr().out


def test_resume_of_a_campaign_failed_after_a_good_last_generation_finishes_it(tmp_path, capsys):
    """Only a last generation without any success keeps a campaign failed: one that failed for
    another reason after its last (good) tell is finished ``done`` by the resume, as before."""
    from cluster.store import Journal

    cfg_path = _write(tmp_path / "cfg", _config())
    run_dir = tmp_path / "run"
    assert main(["simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]) == EXIT_DONE
    with Journal(run_dir) as j:
        j.set_campaign(status="failed", message="OSError: [Errno 28] No space left on device")
    assert main(["resume", str(run_dir), "--no-progress"]) == EXIT_DONE
    assert "campaign done: 4 trials finished" in capsys.readouterr().out
    assert _status(run_dir) == ("done", "stopped by max_generations=1")


# -- stdout closed by its reader ------------------------------------------------------------------------
def test_status_into_a_closed_pipe_exits_quietly(tmp_path):
    """``esopt status DIR | head -1``: a BrokenPipeError is a ConnectionError and was reported as
    "cannot reach the Ray cluster: [Errno 32] Broken pipe" (exit 1)."""
    cfg_path = _write(tmp_path / "cfg", _config())
    run_dir = tmp_path / "run"
    assert main(["simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]) == EXIT_DONE
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: every write gets EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cluster.cli", "status", str(run_dir)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert proc.returncode == EXIT_BROKEN_PIPE
    assert proc.stderr == ""


# -- folders that are files ----------------------------------------------------------------------------
def test_dir_and_out_naming_a_file_exit_2_in_one_line(tmp_path, capsys):
    cfg_path = _write(tmp_path / "cfg", _config())
    before = cfg_path.read_bytes()
    run_dir = tmp_path / "run"
    assert main(["simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]) == EXIT_DONE
    capsys.readouterr()
    for argv, option in [
        (["tune", str(cfg_path), "--dir", str(cfg_path / "sub"), "--no-progress"], "--dir"),
        (["tune", str(cfg_path), "--dir", str(cfg_path), "--no-progress"], "--dir"),
        (["simulate", str(cfg_path), "--workers", "2", "--dir", str(cfg_path / "sub")], "--dir"),
        (["report", str(run_dir), "--out", str(cfg_path)], "--out"),
        (["report", str(run_dir), "--out", str(cfg_path / "sub")], "--out"),
    ]:
        assert main(argv) == EXIT_CONFIG, argv
        err = capsys.readouterr().err
        _one_error_line(err, f"{option}: ")
        assert f"{cfg_path}, which is a file" in err or f"{cfg_path} is a file" in err
    assert cfg_path.read_bytes() == before
    assert not (run_dir / "report").exists()


# -- simulate --durations -----------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["a,b\n1,2\n", b"\xf5\x00\xff binary", None], ids=["columns", "binary", "missing"])
def test_simulate_with_an_unusable_durations_csv_exits_2_and_writes_nothing(tmp_path, capsys, content):
    cfg_path = _write(tmp_path / "cfg", _config())
    csv_path = tmp_path / "durations.csv"
    if isinstance(content, str):
        csv_path.write_text(content)
    elif content is not None:
        csv_path.write_bytes(content)
    run_dir = tmp_path / "run"
    argv = ["simulate", str(cfg_path), "--workers", "2", "--durations", str(csv_path), "--dir", str(run_dir)]
    assert main(argv) == EXIT_CONFIG
    err = capsys.readouterr().err
    _one_error_line(err, "--durations: ")
    assert str(csv_path) in err
    assert not run_dir.exists()


def test_simulate_without_a_budget_is_one_error_line_and_writes_nothing(tmp_path, capsys):
    """As ``esopt tune``: the budget is refused before "running simulated campaign ..." is printed."""
    cfg_path = _write(tmp_path / "cfg", _config(budget={}))
    run_dir = tmp_path / "run"
    assert main(["simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    _one_error_line(err, "budget: nothing would stop this campaign")
    assert not run_dir.exists()


# -- a third audit: infinite numbers in a config, trials left running by a failed campaign -------
@pytest.mark.parametrize(
    "over, key",
    [
        ({"resources": {"timeout_s": float("inf")}}, "resources.timeout_s"),
        ({"budget": {"max_time_s": float("inf")}}, "budget.max_time_s"),
        ({"budget": {"max_trials": 4, "ftarget": float("-inf")}}, "budget.ftarget"),
        ({"budget": {"max_trials": float("inf")}}, "budget.max_trials"),
        ({"strategy": {"popsize": float("inf")}}, "strategy.popsize"),
    ],
)
def test_an_infinite_number_in_a_config_is_a_config_error_and_writes_nothing(tmp_path, capsys, over, key):
    """inf passed validation; the journal (strict JSON) then raised a traceback, exit 1, after the
    campaign directory and its lock files were written."""
    cfg_path = _write(tmp_path / "cfg", _config(**over))
    run_dir = tmp_path / "run"
    assert main(["simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]) == EXIT_CONFIG
    _one_error_line(capsys.readouterr().err, key)
    assert not run_dir.exists()


def test_an_async_campaign_failed_by_a_whole_population_leaves_no_trial_running(tmp_path):
    """the async driver ended 'failed' with the next population's trials still journaled running
    (esopt status listed them 'for 499078:36:54')."""
    cfg = _config("audit_objectives:broken", scheduler={"mode": "async"}, budget={"max_trials": 12})
    cfg_path = _write(tmp_path / "cfg", cfg)
    run_dir = tmp_path / "run"
    assert main(["simulate", str(cfg_path), "--workers", "3", "--dir", str(run_dir)]) == EXIT_FAILED
    with sqlite3.connect(f"file:{run_dir / 'campaign.db'}?mode=ro", uri=True) as db:
        statuses = dict(db.execute("SELECT status, COUNT(*) FROM trials GROUP BY status").fetchall())
        cancelled = db.execute("SELECT DISTINCT error FROM trials WHERE status = 'cancelled'").fetchall()
        last_end = db.execute("SELECT MAX(finished_at) FROM trials").fetchone()[0]
    assert statuses.get("failed", 0) >= 4 and "running" not in statuses and "pending" not in statuses
    assert statuses.get("cancelled", 0) >= 1 and cancelled == [("cancelled: campaign failed",)]
    assert last_end < 1e5  # stamped on the simulation's virtual clock, not in Unix seconds
