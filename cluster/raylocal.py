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
directory and the pids (with their start times, so that a reused pid is never mistaken for one)
of the processes Ray started.  :func:`cleanup_leftovers`, called by a resume before it starts
its own instance (under the campaign lock, so the recorded driver is known to be dead), kills
with SIGKILL exactly those processes: the recorded pids whose start time matches, and any
process whose environment carries the recorded ``RAY_NODE_ID``.  Nothing else is touched.
Process inspection uses ``/proc`` (Linux); elsewhere it does nothing.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RaySession", "connect", "cleanup_leftovers", "session_processes", "RECORD_NAME"]

RECORD_NAME = "ray_local.json"
_PROC = Path("/proc")


# ----------------------------------------------------------------------------- /proc helpers
def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, ppid, start_time_ticks)`` of a process, or None if it is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    rest = raw.rsplit(")", 1)[1].split()
    return rest[0], int(rest[1]), int(rest[19])


def _alive(pid: int, start_time: int | None = None) -> bool:
    st = _stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return start_time is None or st[2] == start_time


def _all_pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir(_PROC) if p.isdigit()]
    except OSError:  # pragma: no cover - no /proc
        return []


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        st = _stat(pid)
        if st is not None:
            children.setdefault(st[1], []).append(pid)
    out, stack = [], [root]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def _has_env(pid: int, key: str, value: str) -> bool:
    try:
        env = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return f"{key}={value}".encode() in env.split(b"\0")


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
    starts = {p: (_stat(p) or ("", 0, None))[2] for p in pids}
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.time() + wait_s
    while time.time() < deadline and any(_alive(p, starts[p]) for p in pids):
        time.sleep(0.05)
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
            self.record["processes"] += [{"pid": p, "start_time": (_stat(p) or ("", 0, None))[2]} for p in new]
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
) -> RaySession:
    """Make sure this process is connected to Ray (see module docstring) and return the session.

    ``num_cpus``/``num_gpus`` size a new local instance (default: all CPUs, detected GPUs).
    First, leftovers of an earlier local instance recorded in ``directory`` are cleaned up.

    Raises
    ------
    ConnectionError, RuntimeError
        From ``ray.init`` if the address cannot be reached.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    directory = Path(directory) if directory is not None else None
    if directory is not None:
        current = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
        cleanup_leftovers(directory, keep_node_id=current)
    if ray.is_initialized():
        return RaySession()
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return RaySession(connected=True)
    kwargs: dict[str, Any] = dict(
        address="local",
        num_cpus=int(num_cpus or os.cpu_count() or 1),
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
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
