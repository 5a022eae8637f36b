"""Findings of the command-line audit left open at the previous stop, each checked through the
command line (``cluster.cli.main``) on the simulated cluster (no Ray):

- ``esopt simulate`` in sync mode stamps generations on the virtual clock (they were journaled in
  Unix seconds, so a continued simulation ran on the real clock);
- an interrupted ``esopt simulate`` exits 130 with the hint to rerun it (it exited 1);
- duplicate keys in a config are an error at their key path (PyYAML silently kept the last);
- ``esopt status`` counts only stopped trials' unused epochs as saved (failed ones were counted);
- a ``strategy.options`` threshold of ``.inf``/``.nan`` is refused before anything is written;
- a ``type: int`` parameter refuses a non-integer ``init``.
"""

from __future__ import annotations

import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cluster.cli import EXIT_CONFIG, EXIT_DONE, EXIT_INTERRUPTED, main

OBJECTIVES = """
import os, signal

CALLS = []

def timed(params):
    x = float(params["x"])
    return {"objective": (x - 0.3) ** 2, "duration_s": 10.0 + 5.0 * abs(x)}

def long_when_positive(params):
    x = float(params["x"])
    return {"objective": (x - 0.3) ** 2, "duration_s": 100.0 if x > 0 else 10.0}

def sigkill_at_the_fifth(params):
    CALLS.append(params)
    if len(CALLS) == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return timed(params)

def ctrl_c_at_the_fifth(params):
    CALLS.append(params)
    if len(CALLS) == 5:
        os.kill(os.getpid(), signal.SIGINT)
    return timed(params)
"""


def _config(**over) -> dict:
    cfg = {
        "name": "audit2",
        "objective": "audit2_objectives:timed",
        "space": {"x": {"lower": -1.0, "upper": 1.0}, "y": {"lower": 0.0, "upper": 1.0}},
        "strategy": {"name": "cmaes", "popsize": 4, "seed": 1},
        "budget": {"max_generations": 3},
    }
    cfg.update(over)
    return cfg


def _write(folder: Path, cfg: dict | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audit2_objectives.py").write_text(OBJECTIVES)
    path = folder / "config.yaml"
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return path


def _db(run_dir: Path):
    return sqlite3.connect(f"file:{run_dir / 'campaign.db'}?mode=ro", uri=True)


# -- simulate: the virtual clock in sync mode -----------------------------------------------------------
def test_sync_simulation_journals_generations_on_the_virtual_clock(tmp_path):
    run_dir = tmp_path / "run"
    cfg_path = _write(tmp_path, _config(scheduler={"mode": "sync"}))
    assert main(["simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]) == EXIT_DONE
    with _db(run_dir) as db:
        gens = db.execute("SELECT generation, asked_at, told_at FROM generations ORDER BY generation").fetchall()
        trials = db.execute("SELECT generation, started_at, finished_at FROM trials").fetchall()
    assert [g for g, _, _ in gens] == [1, 2, 3]
    end = max(f for _, _, f in trials)
    assert 0 < end < 1000  # 12 trials of 10-15 virtual seconds, 2 at a time
    for g, asked, told in gens:
        of_g = [(s, f) for tg, s, f in trials if tg == g]
        # asked before its trials started, told when the last of them had finished
        assert asked <= min(s for s, _ in of_g) and told == pytest.approx(max(f for _, f in of_g))


# -- simulate: the limits of resources and scheduler -------------------------------------------------
def _trials(run_dir: Path) -> list[tuple]:
    with _db(run_dir) as db:
        return db.execute(
            "SELECT status, error, started_at, finished_at, json_extract(params_json, '$.x') FROM trials ORDER BY id"
        ).fetchall()


def test_simulated_trials_longer_than_the_timeout_fail_as_timeouts(tmp_path):
    run_dir = tmp_path / "run"
    cfg = _config(objective="audit2_objectives:long_when_positive", resources={"timeout_s": 30})
    assert main(["simulate", str(_write(tmp_path, cfg)), "--workers", "2", "--dir", str(run_dir)]) == EXIT_DONE
    rows = _trials(run_dir)
    long_ones = [r for r in rows if r[4] > 0]
    assert long_ones and len(long_ones) < len(rows)
    for status, error, started, finished, x in rows:
        if x > 0:  # cancelled 30 s after its start, penalized (on_error: penalty)
            assert (status, error, finished - started) == ("failed", "timeout", pytest.approx(30.0))
        else:
            assert (status, finished - started) == ("done", pytest.approx(10.0))


@pytest.mark.parametrize("section", ["resources", "scheduler"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_simulation_runs_at_most_max_concurrent_trials(tmp_path, section, mode):
    run_dir = tmp_path / "run"
    cfg = _config(scheduler={"mode": mode}, budget={"max_trials": 8})
    cfg.setdefault(section, {})["max_concurrent"] = 1
    assert main(["simulate", str(_write(tmp_path, cfg)), "--workers", "4", "--dir", str(run_dir)]) == EXIT_DONE
    spans = sorted((s, f) for _, _, s, f, _ in _trials(run_dir))
    assert len(spans) == 8
    assert all(s1 >= f0 for (_, f0), (s1, _) in zip(spans, spans[1:]))  # one after another


# -- simulate: interrupted ------------------------------------------------------------------------------
def test_an_interrupted_simulation_exits_130_with_the_command_that_continues_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    cfg_path = _write(tmp_path, _config(objective="audit2_objectives:ctrl_c_at_the_fifth"))
    argv = ["simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]
    assert main(argv) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    again = f"esopt {shlex.join(argv)}"
    assert f"interrupted; continue with: {again}" in err
    with _db(run_dir) as db:
        assert db.execute("SELECT status FROM campaign").fetchone() == ("interrupted",)
    assert main(argv) == EXIT_DONE  # the printed command continues it to its budget
    with _db(run_dir) as db:
        assert db.execute("SELECT status, (SELECT count(*) FROM generations) FROM campaign").fetchone() == ("done", 3)


def test_simulate_says_it_continues_only_once_the_journal_accepted_the_config(tmp_path, capsys):
    run_dir = tmp_path / "run"
    cfg_path = _write(tmp_path, _config())
    assert main(["simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]) == EXIT_DONE
    _write(tmp_path, _config(budget={"max_generations": 4}, space={"x": {"lower": -2.0, "upper": 2.0}}))
    capsys.readouterr()
    assert main(["simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the config does not match the one stored" in err, err  # no "continuing ..."


def test_status_of_a_killed_simulation_speaks_of_the_simulation(tmp_path, capsys):
    """Its running trials started at virtual seconds (not "for 499078:36:54" of real time since a
    virtual start) and the hint reruns esopt simulate (esopt resume would need Ray)."""
    run_dir = tmp_path / "run"
    cfg_path = _write(tmp_path, _config(objective="audit2_objectives:sigkill_at_the_fifth"))
    cmd = [sys.executable, "-m", "cluster.cli", "simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]
    assert subprocess.run(cmd, capture_output=True, timeout=120).returncode == -9
    assert main(["status", str(run_dir)]) == EXIT_DONE
    out = capsys.readouterr().out
    assert "not alive: killed? continue with esopt simulate CONFIG --workers P --dir " in out
    assert "running (on the simulated cluster, virtual seconds):" in out and "esopt resume" not in out
    running = [ln for ln in out.splitlines() if ln.startswith("  trial ")]
    assert running and all(", for " not in ln for ln in running)
    assert all(", started at " in ln for ln in running if "on node sim-node" in ln)
    assert all(", submitted at " in ln for ln in running if "waiting for resources" in ln)


# -- config errors before anything is written -----------------------------------------------------------
def _refused(tmp_path, capsys, cfg, start: str) -> None:
    run_dir = tmp_path / "run"
    cfg_path = _write(tmp_path, cfg)
    assert main(["simulate", str(cfg_path), "--workers", "2", "--dir", str(run_dir)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"esopt: error: bad config: {start}"), err
    assert not run_dir.exists()


DUPLICATE_SPACE = """
name: dup
objective: audit2_objectives:timed
space:
  x: {lower: -1.0, upper: 1.0}
  y: {lower: 0.0, upper: 1.0}
  x: {lower: -2.0, upper: 2.0}
strategy: {name: cmaes, popsize: 4}
budget: {max_generations: 1}
"""
DUPLICATE_SECTION = """
name: dup
objective: audit2_objectives:timed
scheduler: {mode: sync}
space: {x: {lower: -1.0, upper: 1.0}, y: {lower: 0.0, upper: 1.0}}
strategy: {name: cmaes, popsize: 4}
budget: {max_generations: 1}
scheduler: {max_concurrent: 2}
"""
MERGED = """
name: merged
objective: audit2_objectives:timed
space:
  y: &range {lower: -1.0, upper: 1.0}
  x: {<<: *range, upper: 0.5}
strategy: {name: cmaes, popsize: 4}
budget: {max_generations: 1}
"""


@pytest.mark.parametrize(
    "text, key, lines", [(DUPLICATE_SPACE, "x", "5 and 7"), (DUPLICATE_SECTION, "scheduler", "4 and 8")]
)
def test_a_key_given_twice_is_refused_with_its_lines(tmp_path, capsys, text, key, lines):
    _refused(
        tmp_path,
        capsys,
        text,
        f"'{tmp_path / 'config.yaml'}' gives the key '{key}' twice in one mapping (lines {lines}); ",
    )


def test_a_merge_key_may_still_be_overridden(tmp_path):
    cfg_path = _write(tmp_path, MERGED)
    assert main(["simulate", str(cfg_path), "--workers", "2", "--dir", str(tmp_path / "run")]) == EXIT_DONE
    with _db(tmp_path / "run") as db:
        xs = [row[0] for row in db.execute("SELECT json_extract(params_json, '$.x') FROM trials")]
    assert xs and all(-1.0 <= x <= 0.5 for x in xs)


@pytest.mark.parametrize(
    "over, start",
    [
        (
            {"strategy": {"name": "cmaes", "popsize": 4, "options": {"tolfun": float("inf")}}},
            "strategy.options.tolfun: must be finite, got inf (leave the key out",
        ),
        (
            {"strategy": {"name": "cmaes", "popsize": 4, "options": {"tolx": float("nan")}}},
            "strategy.options.tolx: must be finite, got nan",
        ),
        (
            {"space": {"x": {"lower": 1, "upper": 9, "type": "int", "init": 2.5}}},
            "space.x.init: must be an integer for a type: int parameter, got 2.5",
        ),
        (
            {"space": {"x": {"choices": [None, "null", "a"]}}, "strategy": {"popsize": 4}},
            "space.x.choices: holds both null and the string 'null'",
        ),
        (
            {"space": {"x": {"lower": "1e-4", "upper": 1.0, "scale": "log10"}}},
            "space.x.lower: must be a finite number, got '1e-4' (YAML reads 1e-4 as text: write 1.0e-4)",
        ),
        (
            {"space": {"x": {"lower": 0.0, "upper": "1.0e3"}}},
            "space.x.upper: must be a finite number, got '1.0e3' (YAML reads 1.0e3 as text: write 1.0e+3)",
        ),
    ],
)
def test_config_values_that_cannot_work_are_refused_at_their_key(tmp_path, capsys, over, start):
    _refused(tmp_path, capsys, _config(**over), start)
