"""cluster.raylocal's cleanup after a killed driver, with real processes (psutil, no Ray needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from cluster import raylocal

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def spawn():
    """Start sleeping processes (optionally with extra environment); kill what is left at the end."""
    procs: list[subprocess.Popen] = []

    def start(env: dict | None = None) -> subprocess.Popen:
        p = subprocess.Popen(SLEEPER, env={**os.environ, **(env or {})})
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _dead_driver() -> tuple[int, float]:
    """The pid and start time of a process that has exited (a killed driver)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    start = psutil.Process(p.pid).create_time()
    p.wait()
    return p.pid, start


def _ticks(pid: int) -> int:
    """Start time as esopt 0.1.0 recorded it: clock ticks since boot (``/proc/PID/stat`` field 22)."""
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[19])


def _record(directory, **rec) -> None:
    (directory / raylocal.RECORD_NAME).write_text(json.dumps(rec))


def _gone(p: subprocess.Popen) -> bool:
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_cleanup_kills_exactly_the_recorded_processes(tmp_path, spawn):
    recorded, by_env, bystander, reused = spawn(), spawn({"RAY_NODE_ID": "node-abc"}), spawn(), spawn()
    time.sleep(0.2)
    drv, drv_start = _dead_driver()
    _record(
        tmp_path,
        driver_pid=drv,
        driver_start_time=drv_start,
        node_id="node-abc",
        processes=[
            {"pid": recorded.pid, "start_time": psutil.Process(recorded.pid).create_time()},
            {"pid": reused.pid, "start_time": psutil.Process(reused.pid).create_time() - 3600.0},  # pid reused since
        ],
    )
    killed = raylocal.cleanup_leftovers(tmp_path)
    assert sorted(killed) == sorted([recorded.pid, by_env.pid])
    assert _gone(recorded) and _gone(by_env)
    assert bystander.poll() is None and reused.poll() is None
    assert not (tmp_path / raylocal.RECORD_NAME).exists()


def test_records_of_esopt_010_with_clock_ticks_still_match(tmp_path, spawn):
    p = spawn()
    time.sleep(0.2)
    drv, _ = _dead_driver()
    _record(
        tmp_path,
        driver_pid=drv,
        driver_start_time=None,
        node_id="",
        processes=[{"pid": p.pid, "start_time": _ticks(p.pid)}],
    )
    assert raylocal.cleanup_leftovers(tmp_path) == [p.pid]
    assert _gone(p)


def test_cleanup_leaves_a_live_driver_alone(tmp_path, spawn):
    p = spawn()
    driver = spawn()
    time.sleep(0.2)
    _record(
        tmp_path,
        driver_pid=driver.pid,
        driver_start_time=psutil.Process(driver.pid).create_time(),
        node_id="",
        processes=[{"pid": p.pid, "start_time": psutil.Process(p.pid).create_time()}],
    )
    assert raylocal.cleanup_leftovers(tmp_path) == []
    assert p.poll() is None and (tmp_path / raylocal.RECORD_NAME).exists()
