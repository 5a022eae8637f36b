"""The cluster path for real: `ray start` nodes (token authentication on), `esopt tune --address`.

A head node (``ray start --head``) and a worker node (``ray start --address=...``) run as separate
processes on this machine, each with its own ``--temp-dir`` and one CPU.  The head finds a token in
its ``~/.ray/auth_token`` (a private ``HOME``), so it enables token authentication, as Ray 2.60's
``ray start`` does by default.  Then, through the ``esopt`` command line (a subprocess, no
``PYTHONPATH``, with the objective in ``rsobj.py`` beside the config, shipped to both nodes by the
campaign's ``runtime_env``):

* a driver without the token fails within seconds, saying what to set, and leaves no directory;
* a driver given the token file (``RAY_AUTH_TOKEN_PATH``) runs a campaign whose trials run on both
  nodes (the journaled node ids); the worker node is SIGKILLed while it runs a trial, and the
  campaign ends with every trial done exactly once (the lost one re-run by Ray on the head).

Exactly the processes this test started are stopped (their process trees, with psutil); never
``ray stop``, which would stop every Ray instance on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import yaml

POPSIZE, GENERATIONS, SLEEP_S = 4, 3, 2.0

OBJECTIVE = '''
import json, os, time

LOG = {log!r}


def _log(**fields):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(fields) + "\\n").encode())
    finally:
        os.close(fd)


def f(params):
    """Sphere; logs its node id and its parent (the node's raylet), sleeps {sleep} s."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    _log(event="start", params=params, node=node, raylet=os.getppid(), t=time.time())
    time.sleep({sleep})
    _log(event="end", params=params, node=node, raylet=os.getppid(), t=time.time())
    return sum((float(v) - 0.3) ** 2 for v in params.values())
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _tree(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        p = psutil.Process(proc.pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kill_trees(procs: list[subprocess.Popen]) -> None:
    """SIGKILL every process of the trees rooted at ``procs`` (collected first, then killed)."""
    victims = [p for proc in procs for p in _tree(proc)]
    for p in victims:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=15)
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


def _wait_for(predicate, timeout: float, what: str, logs: list[Path]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.2)
    tails = "\n".join(f"--- {p}:\n{p.read_text()[-2000:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def _events(log: Path) -> list[dict]:
    try:
        return [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        return []


def _started(proc: subprocess.Popen, log: Path) -> bool:
    """Whether a `ray start --block` process says its node runs (AssertionError if it exited)."""
    assert proc.poll() is None, f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
    return "Ray runtime started" in log.read_text()


def _raylet_of(ray_start: subprocess.Popen) -> int | None:
    for p in _tree(ray_start):
        try:
            if p.name() == "raylet":
                return p.pid
        except psutil.NoSuchProcess:
            pass
    return None


@pytest.fixture
def tmp(request):
    """A short temporary folder (Ray's socket paths must stay under ~107 characters)."""
    d = Path(tempfile.mkdtemp(prefix="esrs", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_ray_start_cluster_token_auth_node_killed(tmp):
    from ray._private.authentication.authentication_token_generator import generate_new_authentication_token

    home_c, home_d = tmp / "hc", tmp / "hd"
    (home_c / ".ray").mkdir(parents=True)
    home_d.mkdir()
    token_file = home_c / ".ray" / "auth_token"
    token_file.write_text(generate_new_authentication_token())
    log = tmp / "trials.jsonl"
    conf = tmp / "conf"
    conf.mkdir()
    (conf / "rsobj.py").write_text(textwrap.dedent(OBJECTIVE.format(log=str(log), sleep=SLEEP_S)))
    config = {
        "name": "rs",
        "objective": "rsobj:f",
        "space": {"x": {"lower": 0.0, "upper": 1.0}, "y": {"lower": -1.0, "upper": 1.0}},
        "strategy": {"name": "cmaes", "popsize": POPSIZE, "seed": 1, "sigma0": 0.3},
        "budget": {"max_generations": GENERATIONS},
        "resources": {"num_cpus": 1},
        "failures": {"max_retries": 2},
        "scheduler": {"mode": "sync"},  # the journal is compared generation by generation
    }
    (conf / "rs.yaml").write_text(yaml.safe_dump(config))

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "PYTHONPATH"}
    base_env["RAY_USAGE_STATS_ENABLED"] = "0"
    node_env = {**base_env, "HOME": str(home_c)}
    port = _free_port()
    common = ["--num-cpus=1", "--block"]
    started: list[subprocess.Popen] = []
    head_log, worker_log = tmp / "head.log", tmp / "worker.log"
    try:
        with open(head_log, "w") as out:
            head = subprocess.Popen(
                ["ray", "start", "--head", f"--port={port}", f"--temp-dir={tmp / 'h'}", "--include-dashboard=false",
                 *common, f"--dashboard-agent-listen-port={_free_port()}"],
                env=node_env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(head)
        # "Ray runtime started" comes a few lines before the address hint: wait for both
        _wait_for(
            lambda: _started(head, head_log) and "ray start --address='" in head_log.read_text(),
            90,
            "the head node",
            [head_log],
        )
        text = head_log.read_text()
        assert "Token authentication is enabled" in text  # as Ray 2.60 does by default
        address = text.split("ray start --address='", 1)[1].split("'", 1)[0]
        with open(worker_log, "w") as out:
            worker = subprocess.Popen(
                ["ray", "start", f"--address={address}", f"--temp-dir={tmp / 'w'}", *common,
                 f"--dashboard-agent-listen-port={_free_port()}"],
                env={**node_env, "RAY_AUTH_MODE": "token"}, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(worker)
        _wait_for(lambda: _started(worker, worker_log), 90, "the worker node", [worker_log])

        cli = [sys.executable, "-m", "cluster.cli", "tune", str(conf / "rs.yaml"), "--address", address]

        # 1. no token available to the driver: a quick, exact failure, nothing written
        t0 = time.monotonic()
        bad = subprocess.run(
            [*cli, "--dir", str(tmp / "bad"), "--no-progress"],
            env={**base_env, "HOME": str(home_d)},
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=120,
        )
        took = time.monotonic() - t0
        assert bad.returncode == 1, bad.stderr
        assert "requires token authentication and this driver has no token" in bad.stderr
        assert "RAY_AUTH_TOKEN=" in bad.stderr and "RAY_AUTH_TOKEN_PATH" in bad.stderr
        assert took < 15, took
        assert not (tmp / "bad").exists()

        # 2. the token file given to the driver: the campaign runs on both nodes
        run_dir = tmp / "run"
        with open(tmp / "tune.out", "w") as out, open(tmp / "tune.err", "w") as err:
            driver = subprocess.Popen(
                [*cli, "--dir", str(run_dir), "--no-progress"],
                env={**base_env, "HOME": str(home_d), "RAY_AUTH_TOKEN_PATH": str(token_file)},
                cwd=tmp,
                stdout=out,
                stderr=err,
            )
        started.append(driver)
        worker_raylet = _raylet_of(worker)
        assert worker_raylet is not None

        def worker_busy_after_one_done():
            """A trial ended on the worker node and another one is running there now."""
            assert driver.poll() is None, (tmp / "tune.err").read_text()
            ev = [e for e in _events(log) if e["raylet"] == worker_raylet]
            ended = [e for e in ev if e["event"] == "end"]
            running = [e for e in ev if e["event"] == "start" and not any(x["params"] == e["params"] for x in ended)]
            return (ended, running) if ended and running else None

        ended, running = _wait_for(worker_busy_after_one_done, 240, "a busy worker node", [tmp / "tune.err"])
        worker_node = ended[0]["node"]
        _kill_trees([worker])  # the worker node dies while it runs a trial
        assert driver.wait(timeout=300) == 0, (tmp / "tune.err").read_text()
    finally:
        _kill_trees(started)
    for proc in started:
        assert not _tree(proc)  # every process this test started is gone

    out = (tmp / "tune.out").read_text()
    assert "campaign done" in out, out
    with sqlite3.connect(f"file:{run_dir / 'campaign.db'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT generation, idx, status, objective, node_id, params_json, attempts FROM trials"
        ).fetchall()
    keys = [(g, i) for g, i, *_ in rows]
    assert sorted(keys) == [(g, i) for g in range(1, GENERATIONS + 1) for i in range(POPSIZE)]  # each once
    assert all(r[2] == "done" and r[3] is not None for r in rows)
    nodes = {r[4] for r in rows}
    assert len(nodes) == 2 and worker_node in nodes  # trials ran on both nodes
    events = _events(log)
    for _, _, _, _, node, params_json, attempts in rows:  # journaled where the trial really ended
        params = json.loads(params_json)
        assert any(e["event"] == "end" and e["node"] == node and e["params"] == params for e in events)
        lost_here = any(params == lost["params"] for lost in running)
        assert attempts == (2 if lost_here else 1)  # a trial of the lost node is resubmitted by the driver
    for lost in running:  # the trial running on the killed node ended elsewhere, exactly once
        ends = [e for e in events if e["event"] == "end" and e["params"] == lost["params"]]
        assert len(ends) == 1 and ends[0]["node"] != worker_node


def test_find_token_in_rays_order(tmp_path, monkeypatch):
    from cluster.rayauth import find_token

    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home\n")
    (tmp_path / "tok").write_text("from-path")
    monkeypatch.setenv("HOME", str(home))
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    assert find_token() == (str(home / ".ray" / "auth_token"), "from-home")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    assert find_token() == (str(tmp_path / "tok"), "from-path")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert find_token() == ("RAY_AUTH_TOKEN", "from-env")
    (home / ".ray" / "auth_token").unlink()
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    assert find_token() is None
