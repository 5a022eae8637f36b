"""A tuning campaign: ask -> decode -> run on Ray -> tell, every transition journaled; exact resume.

The loop, one generation ``g`` (numbered from 1) at a time::

    stop = budget + strategy criteria      # checked before every ask
    X = strategy.ask()                     # (popsize, d) in the unit cube
    journal: generation g and its popsize trials as 'pending'      (one commit)
    run the trials on Ray                  # each: 'running' -> 'done' | 'failed' (a commit each)
    f = objectives, failed ones penalized (cluster.penalty)
    strategy.tell(X, f)
    journal: told_at, sigma, mean, best so far, strategy state     (one commit)

Resume (:meth:`Campaign.resume`) rebuilds the strategy from the state stored after the last
tell, asks again (the state includes the RNG, so the same candidates come back) but tells the
``X`` stored in the journal, reuses every finished trial of the open generation and re-runs only
those that are ``pending``, ``running`` or ``cancelled`` (and ``failed`` ones if the campaign had
aborted), with the same vectors.  For a deterministic objective a killed-and-resumed campaign
therefore ends with exactly the result of an uninterrupted one.

Budget (``budget`` section; checked between generations, a generation is never cut short):
``max_trials`` stops once the trials told reach it (like pycma's ``maxfevals``, the last
generation may pass it by up to ``popsize - 1``), ``max_generations`` once that many tells are
done, ``ftarget`` once the best objective is ``<= ftarget``, ``max_time_s`` once the driver's
wall-clock time summed over all runs of the campaign reaches it.  The strategy's own
termination criteria (``strategy.stop()``) end it too.

One driver at a time: the campaign directory is locked (``campaign.lock``, an ``flock`` held
for the life of the driver, with its pid inside); a lock left by a dead driver is free again.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import CampaignConfig, ConfigError, parse_config
from .objective import Objective, make_objective
from .penalty import penalize
from .store import DB_NAME, Journal, JournalError, check_config_match

__all__ = ["Campaign", "CampaignLocked", "CampaignResult", "LOCK_NAME"]

LOCK_NAME = "campaign.lock"


class CampaignLocked(RuntimeError):
    """Another live driver holds the campaign directory; the message names its pid."""


@dataclass
class CampaignResult:
    """Outcome of :meth:`Campaign.run`.

    Attributes
    ----------
    status : {"done", "failed", "interrupted"}
    message : str
    best_params : dict or None
        Best hyperparameters found, in their own units.
    best_objective : float or None
    best_trial : dict or None
        Journal row of the best trial (see :meth:`cluster.store.Journal.trials`), incl. ``result``.
    n_trials : int
        Trials that finished (``done`` or ``failed``).
    n_generations : int
        Generations told to the strategy.
    stop : dict
        Budget keys (``max_trials``, ``max_generations``, ``ftarget``, ``max_time_s``) and/or the
        strategy's termination criteria that ended the campaign; empty unless ``status == "done"``.
    directory : Path
    """

    status: str
    message: str
    best_params: dict | None
    best_objective: float | None
    best_trial: dict | None
    n_trials: int
    n_generations: int
    stop: dict = field(default_factory=dict)
    directory: Path = Path(".")


class _Lock:
    """Exclusive lock on a campaign directory (``flock``; released by the kernel if the driver dies)."""

    def __init__(self, directory: Path):
        self.path = directory / LOCK_NAME
        self._fd: int | None = None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - non-POSIX: best effort with the pid file only
            holder = _read_pid(fd)
            if holder and holder != os.getpid() and _pid_alive(holder):
                os.close(fd)
                raise CampaignLocked(self._message(directory, holder)) from None
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            raise CampaignLocked(self._message(directory, holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{socket.gethostname()}\n".encode())
        self._fd = fd

    @staticmethod
    def _message(directory: Path, pid: int | None) -> str:
        who = f"pid {pid}" if pid else "an unknown pid"
        return (
            f"campaign directory {directory} is in use by another driver ({who}); wait for it to finish or "
            "stop it (Ctrl-C / kill) and resume"
        )

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            try:
                import fcntl

                fcntl.flock(self._fd, fcntl.LOCK_UN)
            except ImportError:  # pragma: no cover
                pass
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 64).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:  # pragma: no cover - used on non-POSIX only
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _call(progress: Any, name: str, *args: Any) -> None:
    fn = getattr(progress, name, None) if progress is not None else None
    if fn is not None:
        fn(*args)


class _Listener:
    """Journals every executor transition at once and forwards it to the progress object."""

    def __init__(self, journal: Journal, progress: Any, generation: int, counts: dict[str, int]):
        self.journal, self.progress, self.generation, self.counts = journal, progress, generation, counts

    def submitted(self, tasks, errors) -> None:
        self.journal.mark_submitted([t.trial_id for t in tasks], errors=errors)
        for err in errors:
            if err is None:  # a retry (err set) was counted as running already
                self.counts["pending"] -= 1
                self.counts["running"] += 1

    def started(self, task, node_id, worker_id, started_at) -> None:
        self.journal.mark_started(task.trial_id, node_id=node_id, worker_id=worker_id, started_at=started_at)

    def finished(self, outcome) -> None:
        self.journal.finish_trial(
            outcome.task.trial_id,
            status=outcome.status,
            objective=outcome.objective,
            result=outcome.result,
            error=outcome.error,
            node_id=outcome.node_id,
            worker_id=outcome.worker_id,
            finished_at=outcome.finished_at,
        )
        self.counts["running"] -= 1
        key = {"done": "done", "failed": "failed"}.get(outcome.status, "pending")
        self.counts[key] += 1
        if self.progress is not None and hasattr(self.progress, "on_trial_finished"):
            self.progress.on_trial_finished(
                self.generation, self.journal.trial(outcome.task.trial_id), dict(self.counts)
            )


class Campaign:
    """A campaign of one config in one directory.

    Parameters
    ----------
    config : CampaignConfig
        From :func:`cluster.load_config` / :func:`cluster.parse_config`.
    directory : path
        Campaign directory; created if missing.  It must not hold a journal already
        (use :meth:`resume`).
    address : str, optional
        Ray address overriding ``config.ray.address`` (``"auto"``, ``"host:port"``,
        ``"ray://host:port"``); None and no address in the config start a local instance.

    Raises
    ------
    TypeError
        If ``config`` is not a ``CampaignConfig``.
    FileExistsError
        If the directory already holds a campaign journal.
    ConfigError
        If the objective cannot be imported or the strategy rejects its options.
    CampaignLocked
        If another driver holds the directory.

    The directory stays locked until :meth:`run` returns (or :meth:`close`).
    """

    def __init__(self, config: CampaignConfig, directory: str | os.PathLike, *, address: str | None = None):
        if not isinstance(config, CampaignConfig):
            raise TypeError(f"config must be a CampaignConfig (see cluster.load_config), got {type(config).__name__}")
        directory = Path(directory)
        if (directory / DB_NAME).exists():
            raise FileExistsError(
                f"{directory} already holds a campaign journal; resume it with "
                f"Campaign.resume({str(directory)!r}) / `esopt resume {directory}`, or choose "
                "another directory"
            )
        objective = make_objective(config)
        self._new_strategy_of(config)  # strategy options checked before anything is written
        directory.mkdir(parents=True, exist_ok=True)
        lock = _Lock(directory)
        try:
            journal = Journal.create(directory, name=config.name, config=config.raw, driver_pid=os.getpid())
        except BaseException:
            lock.release()
            raise
        self._setup(config, directory, journal, lock, address, objective)

    @classmethod
    def resume(
        cls, directory: str | os.PathLike, *, address: str | None = None, config: CampaignConfig | None = None
    ) -> Campaign:
        """Reopen the campaign in ``directory``; :meth:`run` then continues it.

        ``config``, if given, must equal the stored one (else :class:`JournalError`).

        Raises
        ------
        JournalError
            No journal, or a corrupt / foreign / newer-schema one, or a config mismatch; the
            file is left untouched.
        ConfigError
            The stored config no longer validates here (e.g. the objective is not importable).
        CampaignLocked
            Another driver holds the directory.
        """
        directory = Path(directory)
        if not (directory / DB_NAME).exists():
            raise JournalError(f"no campaign journal in {directory} (expected {directory / DB_NAME})")
        # everything that can refuse the campaign is checked before the lock or a writable
        # connection touches the directory
        stored_raw = Journal._validate(directory / DB_NAME)
        if config is not None:
            check_config_match(stored_raw, config.raw, directory / DB_NAME)
        stored = parse_config(stored_raw)
        objective = make_objective(stored)
        lock = _Lock(directory)
        try:
            journal = Journal(directory)
        except BaseException:
            lock.release()
            raise
        self = cls.__new__(cls)
        self._setup(stored, directory, journal, lock, address, objective)
        return self

    def _setup(
        self,
        config: CampaignConfig,
        directory: Path,
        journal: Journal,
        lock: _Lock,
        address: str | None,
        objective: Objective,
    ) -> None:
        self.config = config
        self.directory = directory
        self.journal = journal
        self._lock = lock
        self.address = address if address is not None else config.ray.address
        self.objective = objective
        self.executor = None  # the RayExecutor of the last run (for inspection)

    # ------------------------------------------------------------------ strategy
    @staticmethod
    def _new_strategy_of(config: CampaignConfig):
        import esopt

        s = config.strategy
        opts = dict(s.options)
        tol_names = {f.name for f in dataclasses.fields(esopt.Tolerances)}
        tolerances = {k: opts.pop(k) for k in list(opts) if k in tol_names}
        kwargs: dict[str, Any] = dict(
            popsize=s.popsize, seed=s.seed, bounds=config.space.bounds, tolerances=tolerances or None, **opts
        )
        if s.restarts is not None:
            kwargs["max_restarts"] = s.max_restarts
        try:
            return esopt.make_strategy(s.name, config.space.x0, s.sigma0, restarts=s.restarts, **kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError("strategy", f"{s.name!r} rejects the strategy settings: {e}") from e

    def _restore(self):
        """Strategy after the last tell (or new), and the open generation ``(g, X, rows)`` or None."""
        import esopt

        last_g, state = self.journal.last_state()
        if state is None:
            strategy = self._new_strategy_of(self.config)
        else:
            try:
                d = esopt.read_state(state)
                strategy = esopt.strategy_class(str(d["class"])).from_state_dict(d)
            except (KeyError, ValueError, TypeError) as e:
                raise JournalError(
                    f"{self.journal.path}: the strategy state of generation {last_g} cannot be loaded ({e})"
                ) from e
        open_gens = [g for g in self.journal.generations() if g["told_at"] is None]
        if not open_gens:
            return strategy, last_g, None
        g = open_gens[0]["generation"]
        rows = self.journal.trials(g)
        if g != last_g + 1 or len(open_gens) > 1 or len(rows) != open_gens[0]["popsize"]:
            raise JournalError(
                f"{self.journal.path}: generation {g} is open but the journal is inconsistent "
                f"(last told {last_g}, {len(rows)} trials for popsize {open_gens[0]['popsize']})"
            )
        X = np.array([r["x"] for r in rows], dtype=float)
        X_again = strategy.ask()  # a pending ask; the RNG state makes it equal to the stored X
        if X_again.shape != X.shape:
            raise JournalError(
                f"{self.journal.path}: generation {g} has {X.shape} candidates but the restored "
                f"strategy asks {X_again.shape}"
            )
        return strategy, last_g, (g, X, rows)

    # ------------------------------------------------------------------ budget
    def _stop(self, strategy, n_told: int, n_gens: int, best: float | None, elapsed: float) -> dict:
        b = self.config.budget
        stop: dict[str, Any] = {}
        if b.max_trials is not None and n_told >= b.max_trials:
            stop["max_trials"] = b.max_trials
        if b.max_generations is not None and n_gens >= b.max_generations:
            stop["max_generations"] = b.max_generations
        if b.ftarget is not None and best is not None and best <= b.ftarget:
            stop["ftarget"] = b.ftarget
        if b.max_time_s is not None and elapsed >= b.max_time_s:
            stop["max_time_s"] = b.max_time_s
        if n_gens > 0:
            stop.update(strategy.stop())
        return stop

    # ------------------------------------------------------------------ run
    def run(self, progress: Any = None) -> CampaignResult:
        """Run (or continue) the campaign until the budget or the strategy stops it.

        ``progress`` is any object with some of ``on_generation_start(generation, popsize)``,
        ``on_trial_finished(generation, row, counts)`` (``counts``: done/running/failed/pending
        of the generation) and ``on_generation_end(generation, best_objective)``.

        Ctrl-C (``KeyboardInterrupt``) cancels the running trials, journals them ``cancelled``,
        sets the campaign ``interrupted``, shuts an owned Ray instance down and returns a result
        with status ``"interrupted"``; while ``run`` executes in the main thread, SIGTERM does the
        same (the previous SIGTERM handler is restored afterwards).  Other exceptions mark the
        campaign ``failed`` (message = the error) and propagate.  Trial failures under
        ``on_error: abort`` end it ``failed``.
        """
        with _sigterm_as_interrupt():
            return self._run(progress)

    def _run(self, progress: Any) -> CampaignResult:
        from . import raylocal
        from .executor import RayExecutor, TrialTask, check_feasible

        if not self._lock.held:
            self._lock = _Lock(self.directory)
        journal = self.journal
        t_start = time.time()
        info = journal.campaign_info()
        prior_status = info["status"]
        if prior_status == "done":
            self._lock.release()
            return self._result("done", info["message"] or "done", info["stop"] or {})
        base_elapsed = float(info["elapsed_s"] or 0.0)

        def elapsed() -> float:
            return base_elapsed + time.time() - t_start

        try:
            strategy, last_g, open_gen = self._restore()  # JournalError here leaves the file untouched
        except BaseException:
            self._lock.release()
            raise
        journal.set_campaign(status="running", message=None, driver_pid=os.getpid())
        session = None
        executor = None
        ray_was_up = _ray_initialized()
        g = 0
        try:
            told = [r for r in journal.trials() if r["generation"] <= last_g]
            n_told = len(told)
            done_f = [r["objective"] for r in told if r["status"] == "done" and r["objective"] is not None]
            best = min(done_f) if done_f else None
            stop = {} if open_gen is not None else self._stop(strategy, n_told, last_g, best, elapsed())
            if stop:
                return self._finish("done", stop, elapsed())
            session = raylocal.connect(
                self.directory,
                address=self.address,
                num_cpus=self.config.ray.num_cpus,
                num_gpus=self.config.ray.num_gpus,
            )
            check_feasible(self.config.resources, strict=session.owned)
            executor = self.executor = RayExecutor(self.objective, self.config.resources, self.config.failures)
            g = last_g
            while True:
                if open_gen is None:
                    g += 1
                    X = strategy.ask()
                    params = self.config.space.decode_many(X)
                    ids = journal.add_generation(g, X, params)
                    tasks = [TrialTask(i, g, k, p) for k, (i, p) in enumerate(zip(ids, params))]
                    counts = {"done": 0, "running": 0, "failed": 0, "pending": len(tasks)}
                else:
                    g, X, rows = open_gen
                    open_gen = None
                    rerun = {"pending", "running", "cancelled"} | ({"failed"} if prior_status == "failed" else set())
                    tasks = [
                        TrialTask(r["id"], g, r["idx"], r["params"], attempts=r["attempts"] or 0)
                        for r in rows
                        if r["status"] in rerun
                    ]
                    counts = {
                        "done": sum(r["status"] == "done" for r in rows),
                        "failed": sum(r["status"] == "failed" and "failed" not in rerun for r in rows),
                        "running": 0,
                        "pending": len(tasks),
                    }
                _call(progress, "on_generation_start", g, len(X))
                listener = _Listener(journal, progress, g, counts)
                abort = executor.run(tasks, listener)
                if abort is not None:
                    journal.set_campaign(status="failed", message=abort, elapsed_s=elapsed())
                    return self._result("failed", abort, {})
                rows = journal.trials(g)
                f = np.array(
                    [r["objective"] if r["status"] == "done" and r["objective"] is not None else np.nan for r in rows],
                    dtype=float,
                )
                failed = np.array([r["status"] != "done" for r in rows])
                strategy.tell(X, penalize(f, failed))
                good = f[~failed]
                if good.size:
                    best = float(good.min()) if best is None else min(best, float(good.min()))
                n_told += len(rows)
                res = strategy.result
                mean = np.asarray(res.mean, dtype=float)
                journal.tell(
                    g,
                    sigma=float(res.sigma),
                    mean=mean,
                    best_objective=best,
                    state=_state_bytes(strategy),
                    elapsed_s=elapsed(),
                )
                _call(progress, "on_generation_end", g, best)
                if g == last_g + 1 and session is not None:
                    session.refresh_record()
                stop = self._stop(strategy, n_told, g, best, elapsed())
                if stop:
                    return self._finish("done", stop, elapsed())
        except KeyboardInterrupt:
            if executor is not None:
                executor.cancel_all()
            journal.cancel_running(reason="cancelled: interrupted (Ctrl-C)")
            journal.set_campaign(
                status="interrupted", message="interrupted by Ctrl-C (KeyboardInterrupt)", elapsed_s=elapsed()
            )
            return self._result("interrupted", "interrupted by Ctrl-C (KeyboardInterrupt)", {})
        except BaseException as e:
            if executor is not None:
                executor.cancel_all()
            try:
                journal.cancel_running(reason=f"cancelled: driver error {type(e).__name__}")
                journal.set_campaign(status="failed", message=f"{type(e).__name__}: {e}", elapsed_s=elapsed())
            except Exception:  # noqa: BLE001 - keep the original error
                pass
            raise
        finally:
            if session is not None:
                session.shutdown()
            elif not ray_was_up and _ray_initialized():  # interrupted inside ray.init()
                import ray

                ray.shutdown()
            self._lock.release()

    def _finish(self, status: str, stop: dict, elapsed: float) -> CampaignResult:
        message = "stopped by " + ", ".join(f"{k}={v}" for k, v in stop.items())
        self.journal.set_campaign(status=status, message=message, elapsed_s=elapsed, stop=stop)
        return self._result(status, message, stop)

    def _result(self, status: str, message: str, stop: dict) -> CampaignResult:
        info = self.journal.campaign_info()
        best = self.journal.best_trial()
        return CampaignResult(
            status=status,
            message=message,
            best_params=None if best is None else best["params"],
            best_objective=None if best is None else best["objective"],
            best_trial=best,
            n_trials=info["counts"]["done"] + info["counts"]["failed"],
            n_generations=info["n_generations"],
            stop=dict(stop),
            directory=self.directory,
        )

    def close(self) -> None:
        """Release the directory lock and close the journal (idempotent)."""
        self._lock.release()
        self.journal.close()

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ray_initialized() -> bool:
    import sys

    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def _sigterm_as_interrupt():
    """In the main thread, make SIGTERM stop the campaign like Ctrl-C (restored afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _state_bytes(strategy) -> bytes:
    from esopt.checkpoint import state_to_npz_bytes

    return state_to_npz_bytes(strategy.state_dict())
