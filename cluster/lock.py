"""One driver per campaign directory: an exclusive lock on ``DIR/campaign.lock`` (:mod:`filelock`).

The lock is an ``flock`` taken through :class:`filelock.FileLock`, held for the life of the
driver and released by the kernel when the driver dies (SIGKILL, crash), so a lock left by a dead
driver never blocks a resume.  filelock does not record who holds a lock, so the holder writes
its pid and host name beside it, into ``DIR/campaign.lock.pid``; a driver that finds the
directory locked reads that file to name the holder in :class:`CampaignLocked`'s message.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import filelock
import psutil

__all__ = ["CampaignLock", "CampaignLocked", "LOCK_NAME", "PID_NAME", "pid_alive", "read_holder"]

LOCK_NAME = "campaign.lock"
PID_NAME = LOCK_NAME + ".pid"


class CampaignLocked(RuntimeError):
    """Another live driver holds the campaign directory; the message names its pid."""


def pid_alive(pid: int | str | None) -> bool | None:
    """Whether process ``pid`` exists on this machine (``psutil.pid_exists``); None if ``pid`` is not
    an integer (e.g. missing).  A pid recorded on another host cannot be checked from here."""
    try:
        return bool(psutil.pid_exists(int(pid)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def read_holder(directory: str | os.PathLike) -> int | None:
    """The pid written by the driver that holds (or last held) ``directory``'s lock, or None."""
    try:
        return int((Path(directory) / PID_NAME).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class CampaignLock:
    """Exclusive lock on a campaign directory, taken at construction (never waits).

    Parameters
    ----------
    directory : path
        An existing campaign directory; ``campaign.lock`` and ``campaign.lock.pid`` are created in it.

    Raises
    ------
    CampaignLocked
        If another driver (another process, or another ``CampaignLock`` of this process) holds it;
        the message names the holder's pid and says what to do.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._lock: filelock.BaseFileLock | None = filelock.FileLock(self.path, thread_local=False)
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            self._lock = None
            raise CampaignLocked(self._message(read_holder(self.directory))) from None
        tmp = self.directory / (PID_NAME + ".tmp")
        tmp.write_text(f"{os.getpid()}\n{socket.gethostname()}\n")
        os.replace(tmp, self.directory / PID_NAME)

    def _message(self, pid: int | None) -> str:
        who = f"pid {pid}" if pid else "an unknown pid"
        return (
            f"campaign directory {self.directory} is in use by another driver ({who}); wait for it to finish or "
            "stop it (Ctrl-C / kill) and resume"
        )

    @property
    def held(self) -> bool:
        """True until :meth:`release`."""
        return self._lock is not None

    def release(self) -> None:
        """Release the lock (idempotent); the files stay (a later driver reuses them)."""
        if self._lock is not None:
            self._lock.release(force=True)
            self._lock = None
