"""Starting or joining Ray for a campaign, and cleaning up what a killed driver left behind.

* No address: a new local Ray instance is started (``ray.init(address="local", num_cpus=...,
  include_dashboard=False)``) and the campaign owns it: it is shut down when the campaign ends.
* ``"auto"``, ``"host:port"`` or ``"ray://host:port"``: the driver joins that cluster and only
  disconnects at the end.
* Ray already initialized in this process (e.g. by a test fixture or a notebook): it is used
  as is and left running.

Leftovers.  With Ray 2.60, after SIGKILL of a driver that called ``ray.init()``, the
``gcs_server`` and ``raylet`` exit but ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent`` stay
behind, orphaned, and ignore SIGTERM.  So when the campaign starts a local instance it writes
``ray_local.json`` in the campaign directory: the driver's pid, the Ray node id, the session
directory and the pids (with their start times, Unix seconds, so that a reused pid is never
mistaken for one) of the processes Ray started.  The record exists only while a campaign's driver
runs a local instance it started (or after that driver was killed): a clean end removes it, and a
campaign that joins a cluster (``--address``) never writes one.  :func:`cleanup_leftovers`,
called by a resume before it starts its own instance (under the campaign lock, so the recorded
driver is known to be dead), kills with SIGKILL exactly those processes: the recorded pids whose
start time matches, and any process whose environment carries the recorded ``RAY_NODE_ID``.
Nothing else is touched.
Processes are inspected with psutil (start times, children, environments).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = ["RaySession", "connect", "cleanup_leftovers", "session_processes", "RECORD_NAME"]

RECORD_NAME = "ray_local.json"


# ----------------------------------------------------------------------------- process helpers (psutil)
def _create_time(pid: int) -> float | None:
    """Creation time of process ``pid`` (Unix seconds, psutil's ``create_time``), or None if it is gone."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return None


def _stat(pid: int) -> tuple[str, int, float] | None:
    """``(status, ppid, create_time)`` of a process (psutil; ``create_time`` in Unix seconds), or None."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return proc.status(), proc.ppid(), proc.create_time()
    except (psutil.Error, ValueError):
        return None


def _same_start(recorded: float, create_time: float) -> bool:
    """Whether a recorded start time is ``create_time``.

    Records written by esopt 0.1.0 hold the start time in clock ticks since boot (``/proc/PID/stat``
    field 22); psutil turns those into Unix seconds as ``ticks / SC_CLK_TCK + boot_time``, so both
    forms are accepted (within 50 ms).
    """
    if abs(float(recorded) - create_time) < 0.05:
        return True
    try:
        ticks = os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return False
    return abs(float(recorded) / ticks + psutil.boot_time() - create_time) < 0.05


def _alive(pid: int, start_time: float | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, if ``start_time`` is given, started then."""
    st = _stat(pid)
    if st is None or st[0] in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        return False
    return start_time is None or _same_start(start_time, st[2])


def _all_pids() -> list[int]:
    return psutil.pids()


def _descendants(root: int) -> list[int]:
    """Pids of every live descendant of ``root`` (children, grandchildren, ...)."""
    try:
        return [c.pid for c in psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return []


def _has_env(pid: int, key: str, value: str) -> bool:
    try:
        return psutil.Process(pid).environ().get(key) == value
    except (psutil.Error, OSError):
        return False


def session_processes(node_id: str, pids: list[dict] | None = None) -> list[int]:
    """Live processes of a local Ray node: recorded ``{pid, start_time}`` entries still alive
    with the same start time, plus processes whose environment has ``RAY_NODE_ID=node_id``.
    The calling process is never included."""
    me = os.getpid()
    found = {p["pid"] for p in pids or [] if p["pid"] != me and _alive(p["pid"], p.get("start_time"))}
    if node_id:
        for pid in _all_pids():
            if pid != me and pid not in found and _alive(pid) and _has_env(pid, "RAY_NODE_ID", node_id):
                found.add(pid)
    return sorted(found)


def _kill(pids: list[int], wait_s: float = 5.0) -> list[int]:
    """SIGKILL ``pids`` and wait up to ``wait_s`` seconds for them to be gone; returns ``pids``."""
    procs = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.kill()
            procs.append(proc)
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=wait_s)
    return pids


# ----------------------------------------------------------------------------- records
def _record_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / RECORD_NAME


def _write_record(directory: Path, data: dict) -> None:
    tmp = directory / (RECORD_NAME + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, directory / RECORD_NAME)


def cleanup_leftovers(directory: str | os.PathLike, *, keep_node_id: str | None = None) -> list[int]:
    """Kill the processes of a local Ray instance recorded in ``DIR/ray_local.json`` by a driver
    that is no longer alive; remove the record.  Returns the pids killed.

    Does nothing (returns ``[]``) if there is no record, its driver is still alive, or it
    records ``keep_node_id`` (the node this process is connected to).
    """
    path = _record_path(directory)
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    drv = rec.get("driver_pid")
    if drv and drv != os.getpid() and _alive(int(drv), rec.get("driver_start_time")):
        return []
    if keep_node_id is not None and rec.get("node_id") == keep_node_id:
        return []
    pids = session_processes(str(rec.get("node_id") or ""), rec.get("processes"))
    killed = _kill(pids) if pids else []
    path.unlink(missing_ok=True)
    return killed


# ----------------------------------------------------------------------------- sessions
@dataclass
class RaySession:
    """The driver's Ray connection for one campaign run.

    Attributes
    ----------
    owned : bool
        True when this session started a local Ray instance (shut down by :meth:`shutdown`).
    connected : bool
        True when this session called ``ray.init`` (disconnected by :meth:`shutdown`).
    node_id : str or None
        The local node's id (owned instances).
    directory : Path or None
        Campaign directory holding the record of an owned instance.
    """

    owned: bool = False
    connected: bool = False
    node_id: str | None = None
    directory: Path | None = None
    record: dict = field(default_factory=dict)

    def refresh_record(self) -> None:
        """Add processes the owned instance started since the last snapshot (e.g. its agents)."""
        if not (self.owned and self.directory is not None and self.record):
            return
        known = {p["pid"] for p in self.record["processes"]}
        new = [p for p in _descendants(os.getpid()) if p not in known]
        if new:
            self.record["processes"] += [{"pid": p, "start_time": _create_time(p)} for p in new]
            _write_record(self.directory, self.record)

    def shutdown(self) -> list[int]:
        """Disconnect (and stop an owned instance); for an owned instance, kill whatever of it is
        still alive a few seconds after ``ray.shutdown()`` and remove the record.  Returns the
        pids that had to be killed.  Never raises."""
        import ray

        if not self.connected:
            return []
        try:
            ray.shutdown()
        except Exception:  # noqa: BLE001 - shutting down must not mask the campaign's outcome
            pass
        self.connected = False
        if not self.owned:
            return []
        deadline = time.time() + 5.0
        left = session_processes(self.node_id or "", self.record.get("processes"))
        while left and time.time() < deadline:
            time.sleep(0.1)
            left = session_processes(self.node_id or "", self.record.get("processes"))
        killed = _kill(left) if left else []
        if self.directory is not None:
            _record_path(self.directory).unlink(missing_ok=True)
        return killed


def connect(
    directory: str | os.PathLike | None,
    *,
    address: str | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    runtime_env: dict[str, Any] | None = None,
    trial_cpus: float | None = None,
) -> RaySession:
    """Make sure this process is connected to Ray (see module docstring) and return the session.

    ``num_cpus``/``num_gpus`` size a new local instance (default: all CPUs, detected GPUs).
    ``trial_cpus`` (a trial's ``resources.num_cpus``): when fractions pack more trials than CPUs,
    a new local instance keeps that many idle workers alive (Ray's ``num_workers_soft_limit``
    defaults to the CPU count and kills the other idle workers after 1 s, so every gap between
    trials would restart them, about 1-1.5 s each on 2 cores: measured in bench/async_scheduling.py).
    ``runtime_env`` (e.g. ``{"py_modules": [...]}``, see :meth:`cluster.objective.Objective.runtime_env`)
    is the job's Ray runtime environment when this call connects (``ray.init``); Ray already
    initialized in this process is used as it is.
    First, leftovers of an earlier local instance recorded in ``directory`` are cleaned up.

    Token authentication (:mod:`cluster.rayauth`): joining by address sends the token when one is
    available (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``); a local
    instance started here uses Ray's token silently (no "Token authentication is enabled" warning).

    Raises
    ------
    ConnectionError
        Within seconds if nothing answers at ``host:port`` or the cluster requires a token that this
        driver lacks (the message says what to set); otherwise from ``ray.init``.
    RuntimeError
        From ``ray.init``.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from . import rayauth

    directory = Path(directory) if directory is not None else None
    if directory is not None:
        current = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
        cleanup_leftovers(directory, keep_node_id=current)
    if ray.is_initialized():
        return RaySession()
    if address:
        rayauth.prepare_join(address)
        ray.init(address=address, logging_level=logging.WARNING, runtime_env=runtime_env)
        return RaySession(connected=True)
    rayauth.prepare_local()
    kwargs: dict[str, Any] = dict(
        address="local",
        num_cpus=int(num_cpus or os.cpu_count() or 1),
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env=runtime_env,
    )
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
    if trial_cpus:
        slots = int(kwargs["num_cpus"] / float(trial_cpus) + 1e-9)
        if slots > kwargs["num_cpus"]:
            kwargs["_system_config"] = {"num_workers_soft_limit": slots}
    ray.init(**kwargs)
    node_id = ray.get_runtime_context().get_node_id()
    sess = RaySession(owned=True, connected=True, node_id=node_id, directory=directory)
    if directory is not None:
        me = os.getpid()
        sess.record = {
            "driver_pid": me,
            "driver_start_time": (_stat(me) or ("", 0, None))[2],
            "node_id": node_id,
            "session_dir": _session_dir(),
            "created_at": time.time(),
            "processes": [{"pid": p, "start_time": (_stat(p) or ("", 0, None))[2]} for p in _descendants(me)],
        }
        _write_record(directory, sess.record)
    return sess


def _session_dir() -> str | None:
    try:
        import ray

        return ray._private.worker._global_node.get_session_dir_path()  # noqa: SLF001 - informational only
    except Exception:  # noqa: BLE001
        return None
