"""Fault injection for campaigns on a real multi-node Ray cluster (helpers for tests and bench/chaos.py).

Not a test module (pytest collects only ``test_*.py``): ``tests/test_chaos.py`` and
``bench/chaos.py`` import it.  The pieces, each real (no mocks):

* :class:`RayStartCluster`: a head and ``n_workers`` worker nodes started with ``ray start --block``
  (token authentication on, as Ray 2.60's ``ray start`` does by default), each with its own
  ``--temp-dir`` under a private folder and a private ``HOME`` holding the token, so nothing clashes
  with other Ray instances on the machine; :meth:`RayStartCluster.stop` kills exactly the process
  trees it started and then every process whose command line names its folder (never ``ray stop``,
  which would stop every Ray instance of the machine).  ``ray.cluster_utils.Cluster`` is not used:
  it does not go through ``ray start`` (the path users take, with its token authentication), and its
  nodes are children of the process that builds it; ``ray start`` nodes are independent processes,
  as on a real cluster, which a driver joins by address.
* :data:`OBJECTIVE`: the objective module written beside the config (``chaosobj:f``): a sphere
  (deterministic) that sleeps a duration drawn from a generator seeded by its params (so each
  trial's duration is the same at every execution) and appends one JSON line per execution start
  and end (params hash ``key``, ``pid`` of the Ray worker, node id, time) to an execution log
  opened with ``O_APPEND`` (lines of concurrent writers never interleave).
* :func:`make_schedule`: the faults, a list of ``(delay_s, kind)`` drawn from
  ``numpy.random.default_rng(seed)``; kinds are :data:`KINDS`.
* :class:`ChaosRun`: runs one campaign through the real CLI (``python -m cluster.cli tune CONFIG
  --dir DIR --address ADDR --no-progress``, resumed with ``esopt resume`` after each driver kill)
  and injects the schedule: ``driver`` (SIGKILL the driver, then ``resume``), ``worker`` (SIGKILL
  the worker process of a running trial, found by its pid in the execution log), ``raylet``
  (SIGKILL a worker node's raylet, then the rest of that node, and start a fresh node in its place,
  as a cluster replaces a preempted machine), ``timeout`` (SIGSTOP a running trial's worker: the
  driver's ``resources.timeout_s`` must fire, cancel it and, under ``failures.on_error: retry``,
  run it again; Ray's force cancel of a stopped worker takes ~5 s here).  After each fault it
  snapshots the journal's finished rows.  Delays count from the moment the campaign runs again
  after the previous fault; near the end of the budget faults come sooner (``ChaosRun.reserve``)
  so that the whole schedule fits on a slow machine.
* Invariants, each a function returning a list of violations (empty: it holds):
  :func:`check_done_once`, :func:`check_no_rerun`, :func:`check_rows_kept`,
  :func:`check_sync_identical`, :func:`check_no_processes`, :func:`check_lock_released`,
  :func:`check_integrity`; :func:`check_all` runs those that apply.

Recovery time of a fault (:func:`recovery_times`): from the fault until every trial that was in
flight when it happened is journaled ``done`` (for a driver kill, by the resumed driver).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import yaml

__all__ = [
    "KINDS",
    "OBJECTIVE",
    "RayStartCluster",
    "ChaosRun",
    "Fault",
    "make_schedule",
    "chaos_config",
    "params_key",
    "read_log",
    "journal_rows",
    "reference_run",
    "recovery_times",
    "check_done_once",
    "check_no_rerun",
    "resubmissions",
    "check_rows_kept",
    "check_sync_identical",
    "check_no_processes",
    "check_lock_released",
    "check_integrity",
    "check_all",
]

KINDS = ("driver", "worker", "raylet", "timeout")
REPO = Path(__file__).resolve().parents[1]

OBJECTIVE = '''
import hashlib, json, os, time

import numpy as np

LOG = {log!r}
LOW_S, HIGH_S = {low_s!r}, {high_s!r}


def key(params):
    """The params hash that names a trial in the execution log (as tests/chaos.py computes it)."""
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _log(**fields):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(fields) + "\\n").encode())
    finally:
        os.close(fd)


def f(params):
    """Sphere around 0.3; sleeps U(LOW_S, HIGH_S) seconds drawn from a generator seeded by the params."""
    import ray

    k = key(params)
    node = ray.get_runtime_context().get_node_id()
    duration = np.random.default_rng(int(k, 16)).uniform(LOW_S, HIGH_S)
    _log(event="start", key=k, pid=os.getpid(), node=node, t=time.time())
    time.sleep(duration)
    _log(event="end", key=k, pid=os.getpid(), node=node, t=time.time())
    return sum((float(v) - 0.3) ** 2 for v in params.values())
'''


def params_key(params: dict) -> str:
    """The execution log's name of a trial: first 16 hex digits of SHA-1 of its sorted-key JSON params."""
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def sphere(params: dict) -> float:
    """The objective's value (what :data:`OBJECTIVE` returns), for the uninterrupted reference."""
    return sum((float(v) - 0.3) ** 2 for v in params.values())


def make_schedule(seed: int, n_faults: int, kinds=KINDS, *, gap_s=(0.5, 2.5)) -> list[tuple[float, str]]:
    """``n_faults`` faults as ``(delay_s, kind)``: ``delay_s`` ~ U(gap_s) seconds after the previous
    fault has been injected and the campaign runs again, ``kind`` uniform over ``kinds`` (each kind
    at least once when ``n_faults >= len(kinds)``, in a random order).  Raises ValueError for
    ``n_faults < 0``, an unknown kind or a bad ``gap_s``."""
    if n_faults < 0:
        raise ValueError(f"n_faults must be >= 0, got {n_faults}")
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {list(kinds)}")
    if not 0 <= gap_s[0] <= gap_s[1]:
        raise ValueError(f"gap_s must be (low, high) with 0 <= low <= high, got {gap_s}")
    rng = np.random.default_rng(seed)
    base = list(kinds) if n_faults >= len(kinds) else []
    drawn = base + [kinds[i] for i in rng.integers(0, len(kinds), size=n_faults - len(base))]
    order = rng.permutation(len(drawn))
    delays = rng.uniform(gap_s[0], gap_s[1], size=n_faults)
    return [(float(d), str(drawn[i])) for d, i in zip(delays, order)]


def chaos_config(*, mode: str, seed: int, generations: int, popsize: int, timeout_s: float) -> dict:
    """The campaign config of a chaos run (objective ``chaosobj:f``, three continuous parameters,
    CMA-ES, ``failures.on_error: retry`` so that a timed-out trial is run again)."""
    return {
        "name": f"chaos-{mode}",
        "objective": "chaosobj:f",
        "space": {
            "a": {"lower": -1.0, "upper": 1.0},
            "b": {"lower": 0.01, "upper": 10.0, "scale": "log10"},
            "c": {"lower": -2.0, "upper": 2.0},
        },
        "strategy": {"name": "cmaes", "popsize": popsize, "seed": seed, "sigma0": 0.3},
        "budget": {"max_generations": generations},
        "resources": {"num_cpus": 1, "timeout_s": timeout_s},
        "failures": {"on_error": "retry", "max_retries": 6},
        "scheduler": {"mode": mode},
    }


# ------------------------------------------------------------------------------------------ processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kill(procs: list[psutil.Process], timeout: float = 15.0) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=timeout)


def processes_naming(text: str) -> list[psutil.Process]:
    """Live, non-zombie processes whose command line contains ``text`` (e.g. a cluster's folder)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and text in " ".join(p.info["cmdline"] or []):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


class RayStartCluster:
    """A head and ``n_workers`` worker nodes (``ray start --block``, ``num_cpus`` each) in ``root``.

    ``root`` must be short (Ray's socket paths stay under ~107 characters), e.g. ``/tmp/esch...``.
    Token authentication: a token in ``root/home/.ray/auth_token`` (the nodes' ``HOME``); drivers get
    it through :attr:`driver_env` (``RAY_AUTH_TOKEN_PATH``, as a user would).
    """

    def __init__(self, root: Path, *, n_workers: int = 2, num_cpus: int = 1):
        from ray._private.authentication.authentication_token_generator import generate_new_authentication_token

        self.root, self.num_cpus = Path(root), int(num_cpus)
        self.home = self.root / "home"
        (self.home / ".ray").mkdir(parents=True, exist_ok=True)
        self.token_file = self.home / ".ray" / "auth_token"
        self.token_file.write_text(generate_new_authentication_token())
        base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "PYTHONPATH"}
        base["RAY_USAGE_STATS_ENABLED"] = "0"
        self.base_env = base
        self.node_env = {**base, "HOME": str(self.home), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        self.nodes: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Path] = {}
        self._starts = 0
        self.address = ""
        try:
            self._start_node("head", head=True)
            for i in range(n_workers):
                self.start_worker(f"w{i}")
        except BaseException:
            self.stop()
            raise

    @property
    def driver_env(self) -> dict:
        """Environment of a driver joining this cluster (own empty ``HOME``, the token file)."""
        home = self.root / "driver-home"
        home.mkdir(exist_ok=True)
        return {**self.base_env, "HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(self.token_file)}

    def _start_node(self, name: str, *, head: bool = False, wait: bool = True) -> None:
        self._starts += 1
        log = self.root / f"{name}-{self._starts}.log"
        args = [
            "ray",
            "start",
            f"--num-cpus={self.num_cpus}",
            "--block",
            f"--temp-dir={self.root / f'n{self._starts}'}",
        ]
        args.append(f"--dashboard-agent-listen-port={_free_port()}")
        if head:
            args += ["--head", f"--port={_free_port()}", "--include-dashboard=false"]
            env = self.node_env
        else:
            args.append(f"--address={self.address}")
            env = {**self.node_env, "RAY_AUTH_MODE": "token"}
        with open(log, "w") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.nodes[name], self._logs[name] = proc, log
        if wait:
            _wait_for(lambda: self.is_up(name), 120, f"node {name}")
        if head:
            text = log.read_text()
            self.address = text.split("ray start --address='", 1)[1].split("'", 1)[0]

    def is_up(self, name: str) -> bool:
        """Whether node ``name``'s ``ray start`` says it runs (RuntimeError if it exited)."""
        proc, log = self.nodes[name], self._logs[name]
        if proc.poll() is not None:
            raise RuntimeError(f"ray start of {name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        return "Ray runtime started" in log.read_text()

    def wait_up(self, timeout: float = 120.0) -> None:
        """Wait until every node runs (replacements started with ``wait=False``)."""
        _wait_for(lambda: all(self.is_up(n) for n in self.nodes), timeout, "every node")

    def start_worker(self, name: str, *, wait: bool = True) -> None:
        """Start (or restart) worker node ``name``; with ``wait``, return once Ray says it runs."""
        self._start_node(name, wait=wait)

    def raylet_pid(self, name: str) -> int | None:
        """The pid of node ``name``'s raylet, or None if it is not running."""
        proc = self.nodes.get(name)
        for p in _tree(proc.pid) if proc is not None else []:
            try:
                if p.name() == "raylet":
                    return p.pid
            except psutil.NoSuchProcess:
                pass
        return None

    def kill_node(self, name: str) -> int | None:
        """SIGKILL node ``name``'s raylet, then (the machine is gone) the rest of its process tree
        and the workers its raylet had started; returns the raylet's pid (None if there was none)."""
        proc = self.nodes.pop(name)
        tree = _tree(proc.pid)
        raylet = next((p for p in tree if _name(p) == "raylet"), None)
        if raylet is not None:
            tree += [c for c in _children(raylet) if c not in tree]
            raylet.kill()
        time.sleep(0.2)
        _kill(tree)
        proc.wait(timeout=10)
        return None if raylet is None else raylet.pid

    def stop(self) -> None:
        """Kill every process tree this cluster started, then anything left naming its folder."""
        trees = [p for proc in self.nodes.values() for p in _tree(proc.pid)]
        _kill(trees)
        for proc in self.nodes.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        self.nodes.clear()
        _kill(processes_naming(str(self.root)))


def _name(p: psutil.Process) -> str:
    try:
        return p.name()
    except psutil.NoSuchProcess:
        return ""


def _children(p: psutil.Process) -> list[psutil.Process]:
    try:
        return p.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


# ------------------------------------------------------------------------------------------ logs, journal
def read_log(path: Path) -> list[dict]:
    """The execution log's records (``event`` start/end, ``key``, ``pid``, ``node``, ``t``), in order."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(ln) for ln in lines if ln.strip()]


def in_flight(log: list[dict]) -> list[dict]:
    """Start records without a later end record of the same key and pid (executions still running)."""
    ended = {(r["key"], r["pid"]) for r in log if r["event"] == "end"}
    return [r for r in log if r["event"] == "start" and (r["key"], r["pid"]) not in ended]


def journal_rows(directory: Path) -> list[dict]:
    """The journal's trials (read-only, a consistent snapshot) as dicts: generation, idx, x, params,
    key, status, objective, finished_at, attempts; ``[]`` if there is no journal yet."""
    db = Path(directory) / "campaign.db"
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = con.execute(
            "SELECT generation, idx, x_json, params_json, status, objective, finished_at, attempts "
            "FROM trials ORDER BY generation, idx"
        ).fetchall()
    finally:
        con.close()
    out = []
    for g, i, x, p, status, obj, fin, att in rows:
        params = json.loads(p)
        out.append(
            dict(generation=g, idx=i, x=json.loads(x), params=params, key=params_key(params), status=status,
                 objective=obj, finished_at=fin, attempts=att)
        )  # fmt: skip
    return out


def _finished(rows: list[dict]) -> dict[tuple[int, int], tuple]:
    return {(r["generation"], r["idx"]): (r["status"], r["objective"], r["finished_at"]) for r in rows
            if r["status"] == "done"}  # fmt: skip


# ------------------------------------------------------------------------------------------ the run
@dataclass
class Fault:
    """One injected fault: ``kind``, wall time ``t`` (Unix s), the keys of the trials in flight then
    (``exposed``: they may execute once more), the victim's pid / node, and a note."""

    kind: str
    t: float
    exposed: list[str]
    pid: int | None = None
    node: str | None = None
    note: str = ""


@dataclass
class ChaosRun:
    """One campaign under a fault schedule, through the real CLI, on ``cluster``.

    ``work``: a folder for the config, objective, execution log, campaign directory and driver
    outputs.  :meth:`run` returns when the campaign ended (exit 0) or raises ``RuntimeError``
    (a driver failed, or it did not finish within ``timeout_s``).
    """

    cluster: RayStartCluster
    work: Path
    config: dict
    schedule: list[tuple[float, str]]
    seed: int = 0
    durations: tuple[float, float] = (0.1, 0.5)
    timeout_s: float = 300.0
    faults: list[Fault] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)
    stopped_pids: list[int] = field(default_factory=list)
    drivers: list[subprocess.Popen] = field(default_factory=list)
    elapsed_s: float = 0.0
    reserve: int = 4  # trials of the budget kept per fault still to inject (faults come sooner near the end)
    hurried: int = 0  # faults injected before their delay because of ``reserve``

    def __post_init__(self):
        self.work = Path(self.work)
        self.conf = self.work / "conf"
        self.conf.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "executions.jsonl"
        src = OBJECTIVE.format(log=str(self.log), low_s=self.durations[0], high_s=self.durations[1])
        (self.conf / "chaosobj.py").write_text(textwrap.dedent(src))
        (self.conf / "chaos.yaml").write_text(yaml.safe_dump(self.config))
        self.directory = self.work / "camp"
        self.rng = np.random.default_rng([self.seed, 1])
        self._n_out = 0
        self.left_stopped: list[int] = []

    def close(self) -> None:
        """Kill any driver still running (a failed test) and resume stopped workers; idempotent."""
        for d in self.drivers:
            if d.poll() is None:
                _kill(_tree(d.pid))
                d.wait(timeout=10)
        for pid in self.stopped_pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    # -------------------------------------------------------------- drivers
    def _cli(self, *args: str) -> subprocess.Popen:
        self._n_out += 1
        out = open(self.work / f"driver{self._n_out}.out", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cluster.cli", *args, "--address", self.cluster.address, "--no-progress"],
            env={**self.cluster.driver_env, "PYTHONPATH": str(REPO)},
            cwd=self.conf,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.drivers.append(proc)
        return proc

    def _output(self, k: int | None = None) -> str:
        k = self._n_out if k is None else k
        return (self.work / f"driver{k}.out").read_text()[-4000:]

    @property
    def driver(self) -> subprocess.Popen:
        return self.drivers[-1]

    def _running_again(self, since: float) -> bool:
        """The current driver has started a trial after ``since`` (so it runs, with Ray up)."""
        if self.driver.poll() is not None:
            return True
        return any(r["event"] == "start" and r["t"] > since for r in read_log(self.log))

    # -------------------------------------------------------------- the loop
    def run(self) -> ChaosRun:
        """Start the campaign, inject the schedule, wait for the end; returns self."""
        t0 = time.monotonic()
        self._cli("tune", str(self.conf / "chaos.yaml"), "--dir", str(self.directory))
        deadline = t0 + self.timeout_s
        _wait_for(lambda: self._running_again(0.0), 120, "the first trial")
        for delay, kind in self.schedule:
            if self._sleep(delay, deadline, faults_left=len(self.schedule) - len(self.faults) - len(self.skipped)):
                break  # the campaign ended before this fault
            fault = getattr(self, f"_inject_{kind}")()
            if fault is None:
                self.skipped.append(kind)
                continue
            self.faults.append(fault)
            self.snapshots.append(_finished(journal_rows(self.directory)))
            since = fault.t
            _wait_for(lambda: self._running_again(since), 120, f"the campaign to run again after {kind}")  # noqa: B023
        rc = self.driver.wait(timeout=max(1.0, deadline - time.monotonic()))
        self.elapsed_s = time.monotonic() - t0
        self.cluster.wait_up()
        if rc != 0:
            raise RuntimeError(f"driver exited with {rc}:\n{self._output()}")
        self._release_stopped()
        return self

    def _sleep(self, delay: float, deadline: float, *, faults_left: int) -> bool:
        """Sleep ``delay`` s, or less once fewer than :attr:`reserve` trials per fault left to inject
        remain of the budget (so that the schedule fits the campaign on a slow machine); True if the
        driver exited meanwhile (exit 0: the campaign is done)."""
        end = time.monotonic() + delay
        budget = self.config["budget"]["max_generations"] * self.config["strategy"]["popsize"]
        while time.monotonic() < end:
            rc = self.driver.poll()
            if rc is not None:
                if rc != 0:
                    raise RuntimeError(f"driver exited with {rc}:\n{self._output()}")
                return True
            if time.monotonic() > deadline:
                raise RuntimeError("the campaign did not finish in time")
            done = sum(r["status"] == "done" for r in journal_rows(self.directory))
            if budget - done <= self.reserve * faults_left:
                self.hurried += 1
                return False
            time.sleep(0.1)
        return False

    def _exposed(self) -> list[str]:
        """Keys of the trials in flight now: executed (a start record) and not journaled done.  This
        includes an execution that ended in its worker whose result the driver had not yet journaled
        (after a driver kill it runs again, by design)."""
        done = {r["key"] for r in journal_rows(self.directory) if r["status"] == "done"}
        return sorted({r["key"] for r in read_log(self.log) if r["event"] == "start"} - done)

    def _victim(self, wait_s: float = 60.0) -> dict | None:
        """A running execution of a trial not yet journaled done (the rng picks among them); None if
        the driver exited first or none ran within ``wait_s`` s.  The wait covers a sync generation
        held up by a SIGSTOPped trial (``timeout_s``, then Ray's ~5 s force cancel) while nothing
        else runs: a 10 s wait skipped a fault there once in CI (stop 22)."""

        def pick():
            if self.driver.poll() is not None:
                return "exited"
            done = {r["key"] for r in journal_rows(self.directory) if r["status"] == "done"}
            live = [r for r in in_flight(read_log(self.log)) if r["key"] not in done and psutil.pid_exists(r["pid"])]
            live = [r for r in live if r["pid"] not in self.stopped_pids]
            return sorted(live, key=lambda r: (r["t"], r["key"])) or None

        try:
            live = _wait_for(pick, wait_s, "a running trial")
        except TimeoutError:
            return None
        if live == "exited":
            return None
        return live[int(self.rng.integers(len(live)))]

    # -------------------------------------------------------------- faults
    def _inject_driver(self) -> Fault | None:
        if self.driver.poll() is not None:
            return None
        t = time.time()
        os.kill(self.driver.pid, signal.SIGKILL)
        self.driver.wait(timeout=30)
        exposed = self._exposed()  # the journal cannot change until the resume below
        self._cli("resume", str(self.directory))
        return Fault("driver", t, exposed, pid=self.drivers[-2].pid)

    def _inject_worker(self) -> Fault | None:
        v = self._victim()
        if v is None:
            return None
        before, t = self._exposed(), time.time()
        try:
            os.kill(v["pid"], signal.SIGKILL)
        except ProcessLookupError:
            return None
        return Fault("worker", t, sorted({*before, *self._exposed()}), pid=v["pid"], node=v["node"])

    def _inject_timeout(self) -> Fault | None:
        v = self._victim()
        if v is None:
            return None
        before, t = self._exposed(), time.time()
        try:
            os.kill(v["pid"], signal.SIGSTOP)
        except ProcessLookupError:
            return None
        self.stopped_pids.append(v["pid"])  # the driver must cancel it past timeout_s and run it again
        return Fault("timeout", t, sorted({*before, *self._exposed()}), pid=v["pid"], node=v["node"])

    def _inject_raylet(self) -> Fault | None:
        if self.driver.poll() is not None:
            return None
        workers = sorted(n for n in self.cluster.nodes if n != "head" and self.cluster.is_up(n))
        if not workers:
            return None
        name = workers[int(self.rng.integers(len(workers)))]
        before, t = self._exposed(), time.time()
        pid = self.cluster.kill_node(name)
        self.cluster.start_worker(name, wait=False)  # a replacement machine joins while the campaign runs
        return Fault("raylet", t, sorted({*before, *self._exposed()}), pid=pid, node=name)

    def _release_stopped(self, wait_s: float = 30.0) -> None:
        """SIGSTOPped workers still alive ``wait_s`` s after the campaign (Ray's force cancel of a
        stopped worker takes ~5 s here: a graceful exit request, then SIGKILL) are recorded in
        :attr:`left_stopped` (a violation, :func:`check_no_processes`) and resumed (SIGCONT) so that
        the cluster can stop them."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(_alive(p) for p in self.stopped_pids):
            time.sleep(0.2)
        self.left_stopped = [p for p in self.stopped_pids if _alive(p)]
        for pid in self.left_stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ------------------------------------------------------------------------------------------ reference
def reference_run(config: dict) -> list[tuple[int, int, list[float], float]]:
    """``(generation, idx, x, objective)`` of an uninterrupted synchronous campaign of ``config``:
    the strategy built as the campaign builds it, asked and told generation by generation with the
    objective's values (``Campaign == esopt ask/tell`` is checked in test_campaign.py)."""
    from cluster import parse_config
    from cluster.campaign import Campaign

    cfg = parse_config({**config, "objective": "chaos:sphere"})
    es = Campaign._new_strategy_of(cfg)
    out = []
    for g in range(1, cfg.budget.max_generations + 1):
        X = es.ask()
        f = [sphere(p) for p in cfg.space.decode_many(X)]
        es.tell(X, f)
        out += [(g, i, [float(v) for v in x], fi) for i, (x, fi) in enumerate(zip(X, f))]
    return out


def recovery_times(run: ChaosRun, rows: list[dict]) -> list[tuple[str, float]]:
    """``(kind, seconds)`` per fault: from the fault until every trial in flight then (and, for a
    driver kill, at least one trial) is journaled done in the final journal ``rows``."""
    fin = {r["key"]: r["finished_at"] for r in rows if r["status"] == "done"}
    out = []
    for f in run.faults:
        ends = [fin[k] for k in f.exposed if k in fin]
        if not ends:
            ends = [min((v for v in fin.values() if v > f.t), default=f.t)]
        out.append((f.kind, max(0.0, max(ends) - f.t)))
    return out


# ------------------------------------------------------------------------------------------ invariants
def check_done_once(rows: list[dict], config: dict, *, failed_ok: frozenset = frozenset()) -> list[str]:
    """Each trial (generation, idx) of the budget appears once and is ``done`` (or ``failed`` if its
    key is in ``failed_ok``); generations 1..max_generations, popsize each (sync layout)."""
    v = []
    keys = [(r["generation"], r["idx"]) for r in rows]
    if len(keys) != len(set(keys)):
        v.append(f"duplicate (generation, idx) rows: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    gens = config["budget"]["max_generations"]
    counted = {(g, i) for g, i in keys if g <= gens}
    if len(counted) < gens * config["strategy"]["popsize"]:
        v.append(f"{len(counted)} trials in generations 1..{gens}, expected {gens * config['strategy']['popsize']}")
    for r in rows:
        if r["status"] != "done" and not (r["status"] == "failed" and r["key"] in failed_ok):
            v.append(f"trial ({r['generation']}, {r['idx']}) is {r['status']}, not done")
    return v


def check_no_rerun(log: list[dict], rows: list[dict], faults: list[Fault]) -> list[str]:
    """No trial started again after it was journaled done, and no trial executed more often than it
    had reasons to: one execution, plus one per execution of it that did not end (its worker or node
    was killed), per fault that found it in flight (``Fault.exposed``: e.g. a result lost with a
    killed driver), and per resubmission by the driver (``attempts - 1``: a ``timeout_s`` that fired,
    also one not injected, as on a loaded machine)."""
    v = []
    fin = {r["key"]: r["finished_at"] for r in rows if r["status"] == "done"}
    resubmitted = {r["key"]: max(0, (r["attempts"] or 1) - 1) for r in rows}
    ended = {(r["key"], r["pid"]) for r in log if r["event"] == "end"}
    starts: dict[str, int] = {}
    reasons: dict[str, int] = {k: n for k, n in resubmitted.items() if n}
    for f in faults:
        for k in f.exposed:
            reasons[k] = reasons.get(k, 0) + 1
    for r in log:
        if r["event"] != "start":
            continue
        k = r["key"]
        starts[k] = starts.get(k, 0) + 1
        if (k, r["pid"]) not in ended:
            reasons[k] = reasons.get(k, 0) + 1
        if k in fin and r["t"] > fin[k]:
            v.append(
                f"trial {k} started again at {r['t']:.3f} (pid {r['pid']}), after it was journaled done at "
                f"{fin[k]:.3f}; {_last_fault(faults, r['t'])}"
            )
    for k, n in starts.items():
        if n > 1 + reasons.get(k, 0):
            last = max(r["t"] for r in log if r["event"] == "start" and r["key"] == k)
            v.append(
                f"trial {k} executed {n} times with {reasons.get(k, 0)} reasons to (interrupted executions, "
                f"faults in flight, resubmissions); {_last_fault(faults, last)}"
            )
    missing = sorted(set(fin) - set(starts))
    if missing:
        v.append(f"trials journaled done without an execution: {missing}")
    return v


def _last_fault(faults: list[Fault], t: float) -> str:
    """``last fault before it: <kind> ... <s> s earlier`` (for violation messages)."""
    before = [f for f in faults if f.t <= t]
    if not before:
        return "no fault before it"
    f = before[-1]
    return f"last fault before it: {f.kind} (pid {f.pid}, node {f.node}) {t - f.t:.2f} s earlier"


def resubmissions(rows: list[dict], log: list[dict], faults: list[Fault]) -> dict[str, int]:
    """Trials the driver submitted more than once (``attempts > 1``) that no fault found executing:
    ``not_started`` (one execution logged: submitted but not yet running at a driver kill, so the
    resume submitted them again) and ``timeouts`` (two or more executions: a ``timeout_s`` that fired
    without an injected SIGSTOP, as on a loaded machine)."""
    exposed = {k for f in faults for k in f.exposed}
    n_starts: dict[str, int] = {}
    for r in log:
        if r["event"] == "start":
            n_starts[r["key"]] = n_starts.get(r["key"], 0) + 1
    extra = [r["key"] for r in rows if (r["attempts"] or 1) > 1 and r["key"] not in exposed]
    return {
        "not_started": sum(n_starts.get(k, 0) <= 1 for k in extra),
        "timeouts": sum(n_starts.get(k, 0) > 1 for k in extra),
    }


def check_rows_kept(snapshots: list[dict], rows: list[dict]) -> list[str]:
    """Every row done in a snapshot taken after a fault is still done, with the same objective and
    finished_at, in the final journal (no committed row lost or rewritten)."""
    final = _finished(rows)
    v = []
    for n, snap in enumerate(snapshots):
        for key, val in snap.items():
            if final.get(key) != val:
                v.append(f"after fault {n + 1}: trial {key} was {val}, now {final.get(key)}")
    return v


def check_sync_identical(rows: list[dict], reference: list[tuple]) -> list[str]:
    """The journal's (generation, idx, x, objective) equal, bit for bit, an uninterrupted run's."""
    got = [(r["generation"], r["idx"], r["x"], r["objective"]) for r in rows]
    if got == reference:
        return []
    diff = next((i for i, (a, b) in enumerate(zip(got, reference)) if a != b), min(len(got), len(reference)))
    return [f"journal differs from the uninterrupted run at row {diff} ({len(got)} vs {len(reference)} rows)"]


def check_no_processes(run: ChaosRun, wait_s: float = 20.0) -> list[str]:
    """After the campaign: no driver process left, no worker that ran one of its trials (pids of the
    execution log, SIGSTOPped ones included) still alive once Ray has had ``wait_s`` s to reap them."""
    v = [f"a SIGSTOPped trial worker (pid {p}) was still alive after the campaign" for p in run.left_stopped]
    for d in run.drivers:
        if d.poll() is None:
            v.append(f"driver pid {d.pid} still running")
    pids = {r["pid"] for r in read_log(run.log)} - set(run.left_stopped)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    v += [f"trial worker pid {p} still alive {wait_s:.0f} s after the campaign" for p in sorted(pids) if _alive(p)]
    return v


def check_lock_released(directory: Path) -> list[str]:
    """No driver holds the campaign directory's lock (:mod:`cluster.lock`): its ``flock`` can be
    taken at once.  Takes the lock file itself (no pid file written), so it also works on a full disk."""
    import filelock

    from cluster.lock import LOCK_NAME, read_holder

    lock = filelock.FileLock(Path(directory) / LOCK_NAME, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return [f"lock still held (pid file names {read_holder(directory)})"]
    lock.release(force=True)
    return []


def check_integrity(directory: Path) -> list[str]:
    """``PRAGMA integrity_check`` of the journal (read-only) says ``ok``."""
    con = sqlite3.connect(f"file:{Path(directory) / 'campaign.db'}?mode=ro", uri=True)
    try:
        res = [r[0] for r in con.execute("PRAGMA integrity_check")]
    finally:
        con.close()
    return [] if res == ["ok"] else [f"integrity_check: {res[:5]}"]


def check_all(run: ChaosRun) -> list[str]:
    """Every invariant that applies to ``run`` (sync identity only in sync mode), prefixed by name."""
    rows, log = journal_rows(run.directory), read_log(run.log)
    checks: list[tuple[str, Any]] = [
        ("done once", lambda: check_done_once(rows, run.config)),
        ("no rerun", lambda: check_no_rerun(log, rows, run.faults)),
        ("rows kept", lambda: check_rows_kept(run.snapshots, rows)),
        ("processes", lambda: check_no_processes(run)),
        ("lock", lambda: check_lock_released(run.directory)),
        ("integrity", lambda: check_integrity(run.directory)),
    ]
    if run.config.get("scheduler", {}).get("mode") == "sync":
        checks.append(("sync identical", lambda: check_sync_identical(rows, reference_run(run.config))))
    return [f"{name}: {msg}" for name, fn in checks for msg in fn()]
