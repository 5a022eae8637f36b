"""A simulated cluster: the production campaign driver on a virtual clock, without Ray.

:class:`SimulatedExecutor` stands where :class:`cluster.executor.RayExecutor` stands (same
methods: ``start``, ``wait``, ``busy``, ``n_active``, ``capacity``, ``now``, ``cancel_all``) and
so runs the real :class:`cluster.campaign.Campaign` loop, synchronous or asynchronous, with the
journal written exactly as in a real campaign (times in virtual seconds).  ``P`` workers (1 to
10,000) take trials as they come; a trial's duration and result come from

* the config's objective, called in this process: its result's ``duration_s`` (else
  ``wall_s``) gives the duration, so a deterministic objective with deterministic durations
  gives a deterministic simulation; or
* a recorded table (``durations=CSV``, e.g. a ``bench/results/hpo_quality-*.csv`` or the
  ``trials.csv`` of ``esopt report``): the nearest recorded trial, in the space's coordinates,
  gives both the objective and the duration (column ``wall_time_s``, ``wall_s`` or
  ``duration_s``).

The clock advances event by event (a heap of trial ends, as Syne Tune's
``syne_tune/backend/simulator_backend`` does with its time keeper): ``wait`` pops the earliest
end, moves the clock there, reports it, and starts queued trials on the freed worker.

:func:`simulate` runs a campaign this way and returns a :class:`SimulationResult` with
utilization (sum of trial durations / (workers x virtual wall time)), virtual wall time, the
driver's CPU time per trial and the best objective against virtual time; ``esopt simulate
CONFIG --workers P [--durations CSV]`` prints them.
"""

from __future__ import annotations

import csv
import heapq
import math
import os
import shlex
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import CampaignConfig, ConfigError, FailuresConfig
from .executor import ExecutorBase, ExecutorListener, RayExecutor, TrialOutcome, TrialTask, _run_objective
from .space import NULL_TEXT
from .status import FailureKind, TrialStatus

__all__ = ["SimulatedExecutor", "SimulationResult", "DurationTable", "simulate", "MAX_WORKERS"]

MAX_WORKERS = 10_000
_DURATION_COLUMNS = ("duration_s", "wall_time_s", "wall_s")


class DurationTable:
    """Recorded trials to replay: the nearest one (Euclidean, in the space's strategy coordinates)
    gives a candidate's objective and duration.

    Parameters
    ----------
    path : path
        CSV with one column per hyperparameter of ``space`` (own units), ``objective`` and a
        duration column (seconds): ``duration_s``, ``wall_time_s`` or ``wall_s``.  Rows whose
        objective or duration is not a finite number are skipped.
    space : cluster.space.Space

    Raises
    ------
    ValueError
        If a column is missing or no usable row remains.
    """

    def __init__(self, path: str | os.PathLike, space):
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            raise ValueError(f"{path}: no rows")
        names = [p.name for p in space.params]
        have = set(rows[0])
        missing = [n for n in (*names, "objective") if n not in have]
        dur = next((c for c in _DURATION_COLUMNS if c in have), None)
        if missing or dur is None:
            raise ValueError(
                f"{path}: missing columns {missing + ([] if dur else ['duration_s|wall_time_s|wall_s'])}; "
                f"it needs the space's hyperparameters {names}, objective and a duration in seconds"
            )
        X, f, d = [], [], []
        for r in rows:
            try:
                params = {p.name: _cell(p, r[p.name]) for p in space.params}
                obj, sec = float(r["objective"]), float(r[dur])
            except (TypeError, ValueError):
                continue
            if math.isfinite(obj) and math.isfinite(sec) and sec >= 0:
                X.append(space.encode(params))
                f.append(obj)
                d.append(sec)
        if not X:
            raise ValueError(f"{path}: no row with a finite objective and duration")
        self.X, self.objective, self.duration = np.array(X, dtype=float), np.array(f), np.array(d)
        lo, hi = space.bounds
        self._scale = np.where(np.asarray(hi) > np.asarray(lo), np.asarray(hi) - np.asarray(lo), 1.0)

    def lookup(self, x: Sequence[float]) -> tuple[float, float]:
        """``(objective, duration_s)`` of the recorded trial nearest to ``x`` (d,)."""
        diff = (self.X - np.asarray(x, dtype=float)) / self._scale
        i = int(np.argmin(np.einsum("ij,ij->i", diff, diff)))
        return float(self.objective[i]), float(self.duration[i])


def _cell(param, text: str) -> Any:
    """A hyperparameter's trials.csv cell -> its value: a categorical's choice is the one written
    as ``text`` (``null`` for a None choice, :func:`cluster.report.write_trials_csv`), else a
    number.  ValueError (the row is skipped) for text that is neither."""
    if not param.is_categorical:
        return _value(text)
    for c in param.choices:
        if text == (NULL_TEXT if c is None else str(c)):
            return c
    raise ValueError(f"{text!r} is not one of {param.name}'s choices")


#: the node id of every simulated trial (a Ray node id is 56 hex digits, so it names no real node):
#: how ``esopt status`` tells a simulated journal
SIM_NODE = "sim-node"


def _value(text: str) -> Any:
    try:
        v = float(text)
    except ValueError:
        return {"True": True, "False": False}.get(text, text)
    return int(v) if v.is_integer() and "." not in text and "e" not in text.lower() else v


@dataclass(eq=False)
class _Run:
    """A simulated trial in flight: its worker, its precomputed outcome and reported curve."""

    seq: int
    worker: int
    outcome: TrialOutcome
    curve: list
    end: float


def _valid_prefix(curve: list) -> list:
    """The reports up to the first unusable one (which the driver then sees and fails the trial on)."""
    out, last = [], 0.0
    for step, value in curve:
        out.append((step, value))
        try:
            ok = float(step) > last and math.isfinite(float(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            break
        last = float(step)
    return out


class SimulatedExecutor(ExecutorBase):
    """``workers`` simulated workers on a virtual clock (see the module docstring).

    Parameters
    ----------
    objective : callable
        ``params -> dict`` as :class:`cluster.objective.Objective` (called in this process).
    workers : int
        Slots, 1 to :data:`MAX_WORKERS`.
    failures : FailuresConfig
        ``on_error: retry`` resubmits failed trials as the Ray executor does; ``abort`` aborts.
    table : DurationTable, optional
        Replay objective and duration from recorded trials instead of calling ``objective``.
    duration : callable, optional
        ``(params, result) -> seconds``; default: the result's ``duration_s``, else ``wall_s``.
    start : float
        The virtual time at which the clock starts (seconds; a resumed simulation continues
        from its journal's last time).
    space : cluster.space.Space, optional
        Needed with ``table`` (candidates are looked up in its coordinates).
    reporting : bool
        Multi-fidelity: the objective runs to its end with a ``report`` that records its curve;
        the reports are then replayed at virtual times in proportion to their steps, each one
        decided by the driver (``listener.reported``); a stopped trial ends, and frees its worker,
        at the report that stopped it, with that report's value.
    timeout_s : float, optional
        ``resources.timeout_s``: a trial whose duration exceeds it ends ``timeout_s`` seconds
        after its start as a ``timeout`` failure (its later reports never arrive), handled by
        ``failures`` as the Ray executor handles one.
    max_concurrent : int, optional
        At most this many trials at once (``resources.max_concurrent`` and
        ``scheduler.max_concurrent``, the smaller), as the Ray executor caps them; None: ``workers``.

    Raises
    ------
    ValueError
        If ``workers`` is not an int in 1..MAX_WORKERS, ``timeout_s`` is not > 0 or
        ``max_concurrent`` not >= 1.
    """

    def __init__(
        self,
        objective: Callable[[Mapping[str, Any]], dict],
        workers: int,
        failures: FailuresConfig,
        *,
        table: DurationTable | None = None,
        duration: Callable[[Mapping[str, Any], Mapping[str, Any]], float] | None = None,
        start: float = 0.0,
        space: Any = None,
        reporting: bool = False,
        timeout_s: float | None = None,
        max_concurrent: int | None = None,
    ):
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be an int in 1..{MAX_WORKERS}, got {workers!r}")
        if timeout_s is not None and not float(timeout_s) > 0:
            raise ValueError(f"timeout_s must be > 0 or None, got {timeout_s!r}")
        if max_concurrent is not None and not int(max_concurrent) >= 1:
            raise ValueError(f"max_concurrent must be >= 1 or None, got {max_concurrent!r}")
        self.timeout_s = None if timeout_s is None else float(timeout_s)
        self.limit = workers if max_concurrent is None else min(workers, int(max_concurrent))
        self.objective, self.workers, self.failures = objective, workers, failures
        if table is not None and space is None:
            raise ValueError("a replay table needs the campaign's space (space=config.space)")
        self.table, self.duration, self.space = table, duration, space
        self.clock = float(start)
        self.reporting = bool(reporting)
        self._queue: deque[TrialTask] = deque()
        self._heap: list[tuple[float, int, _Run, int]] = []  # (time, seq, run, report index or -1 = end)
        self._live: set[int] = set()  # seq of the runs still running
        self._free = list(range(workers - 1, -1, -1))
        self._seq = 0
        self.busy_s = 0.0  # sum of simulated trial durations (for utilization)
        self.objective_cpu_s = 0.0  # CPU time spent in the objective (not the driver's)
        self.n_started = 0
        self.max_running_seen = 0

    # -------------------------------------------------------------- the executor protocol
    def now(self) -> float:
        """The virtual clock (seconds)."""
        return self.clock

    def capacity(self) -> int:
        """Trials that can run at once: the workers, capped by ``max_concurrent``."""
        return self.limit

    @property
    def busy(self) -> bool:
        """True while a trial runs or waits for a worker."""
        return bool(self._live or self._queue)

    @property
    def n_active(self) -> int:
        """Trials running or queued."""
        return len(self._live) + len(self._queue)

    def start(self, tasks: Sequence[TrialTask], listener: ExecutorListener) -> None:
        """Queue ``tasks`` and start as many as workers are free (at the current virtual time)."""
        self._queue.extend(tasks)
        self._dispatch(listener)

    def wait(self, listener: ExecutorListener) -> str | None:
        """Advance the clock to the next event (a trial's end, or with ``reporting`` one of its
        reports), process it and every other event at that same time, then start queued trials on
        the freed workers.  The abort reason or None."""
        self._drop_dead()
        if not self._heap:
            self._dispatch(listener)
            return None
        at = self._heap[0][0]
        while self._heap and self._heap[0][0] == at:
            _, _, run, k = heapq.heappop(self._heap)
            if run.seq not in self._live:
                continue  # the trial was stopped at an earlier report
            self.clock = max(self.clock, at)
            outcome = run.outcome if k < 0 else self._report(run, k, listener)
            if outcome is None:
                continue
            self._end(run, at)
            reason = self._handle(outcome, self._queue, listener)
            if reason is not None:
                self.cancel_all(listener, reason="cancelled: campaign aborted")
                return reason
        self._dispatch(listener)
        return None

    def cancel_all(self, listener: ExecutorListener | None = None, *, reason: str = "cancelled") -> list[TrialTask]:
        """Drop every running and queued trial (reported ``cancelled`` if a listener is given)."""
        runs = {run.seq: run for _, _, run, _ in self._heap if run.seq in self._live}
        cancelled = [run.outcome.task for run in runs.values()]
        self._heap.clear()
        self._live.clear()
        self._queue.clear()
        self._free = list(range(self.workers - 1, -1, -1))
        if listener is not None:
            for task in cancelled:
                listener.finished(TrialOutcome(task, TrialStatus.CANCELLED, error=reason, finished_at=self.clock))
        return cancelled

    # -------------------------------------------------------------- internals
    def _drop_dead(self) -> None:
        while self._heap and self._heap[0][2].seq not in self._live:
            heapq.heappop(self._heap)

    def _report(self, run: _Run, k: int, listener: ExecutorListener) -> TrialOutcome | None:
        """Report ``k`` of ``run`` at the current time; the trial's outcome if the driver stops it."""
        step, value = run.curve[k]
        if listener.reported(run.outcome.task, step, value, self.clock):
            return None
        out = run.outcome
        out.status, out.objective, out.error, out.kind = TrialStatus.DONE, float(value), None, None
        out.finished_at = self.clock
        return out

    def _end(self, run: _Run, at: float) -> None:
        self._live.discard(run.seq)
        self._free.append(run.worker)
        self.busy_s -= run.end - at  # a trial stopped early frees its worker then

    def _dispatch(self, listener: ExecutorListener) -> None:
        batch: list[TrialTask] = []
        room = min(len(self._free), self.limit - len(self._live))
        while self._queue and len(batch) < room:
            batch.append(self._queue.popleft())
        if not batch:
            return
        listener.submitted(batch, [t.last_error for t in batch])
        starts = []
        for task in batch:
            task.last_error = None
            task.attempts += 1
            worker = self._free.pop()
            t0 = self.clock if task.started_at is None else min(self.clock, task.started_at)
            task.started_at = None  # a trial running when the driver was killed runs on from its start
            starts.append((task, SIM_NODE, f"sim-worker-{worker}", t0))
            cpu0 = time.process_time()
            outcome, seconds, curve = self._evaluate(task, worker)
            self.objective_cpu_s += time.process_time() - cpu0
            end = t0 + seconds
            if self.timeout_s is not None and seconds > self.timeout_s:  # as RayExecutor._expire
                end = t0 + self.timeout_s
                outcome = TrialOutcome.failure(
                    task,
                    FailureKind.TIMEOUT,
                    result={"timeout_s": self.timeout_s, "ran_s": self.timeout_s},
                    node_id=outcome.node_id,
                    worker_id=outcome.worker_id,
                )
            self._schedule(_Run(self._next_seq(), worker, outcome, curve, end), t0, seconds)
        many = getattr(listener, "started_many", None)
        if many is not None:
            many(starts)
        else:
            for event in starts:
                listener.started(*event)
        self.max_running_seen = max(self.max_running_seen, len(self._live))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _schedule(self, run: _Run, t0: float, seconds: float) -> None:
        """Put ``run`` on the heap: its reports at ``t0 + seconds * step / last step`` up to its
        end (``t0 + seconds``, earlier for a trial that times out), then its end."""
        run.outcome.finished_at = run.end
        self.busy_s += seconds if run.end == t0 + seconds else run.end - t0
        self.n_started += 1
        self._live.add(run.seq)
        last = max((step for step, _ in run.curve), default=0)
        for k, (step, _) in enumerate(run.curve):  # reports spread over the trial in proportion to their step
            # never after the trial's end: t0 + seconds * last / last can round one ulp past run.end,
            # and the end would then arrive before the last report (a full trial left at a lower rung)
            at = t0 + seconds * step / last
            if at > run.end and run.end < t0 + seconds:
                break  # timed out before this report
            heapq.heappush(self._heap, (min(at, run.end), self._next_seq(), run, k))
        heapq.heappush(self._heap, (run.end, self._next_seq(), run, -1))

    def _evaluate(self, task: TrialTask, worker: int) -> tuple[TrialOutcome, float, list]:
        curve: list[tuple[Any, Any]] = []
        if self.table is not None:
            f, seconds = self.table.lookup(self.space.encode(task.params))
            msg = {"kind": "result", "objective": f, "status": "ok", "result": {"objective": f}}
        else:
            record = (lambda step, value: curve.append((step, value)) or True) if self.reporting else None
            msg = _run_objective(self.objective, task.params, SIM_NODE, f"sim-worker-{worker}", report=record)
            seconds = self._seconds(task.params, msg)
        msg.update(node_id=SIM_NODE, worker_id=f"sim-worker-{worker}")
        return RayExecutor._outcome(task, msg), seconds, _valid_prefix(curve)

    def _seconds(self, params: Mapping[str, Any], msg: Mapping[str, Any]) -> float:
        result = msg.get("result") or {}
        if self.duration is not None:
            seconds = float(self.duration(params, result))
        elif "duration_s" in result:
            seconds = float(result["duration_s"])
        else:
            seconds = float(msg.get("wall_s") or 0.0)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"a simulated trial's duration must be a finite number >= 0, got {seconds!r}")
        return seconds


@dataclass
class SimulationResult:
    """What :func:`simulate` measured.

    Attributes
    ----------
    campaign : cluster.campaign.CampaignResult
    workers : int
    virtual_time_s : float
        Virtual wall time of this run (first submission to last end).
    utilization : float
        Sum of trial durations / (workers x virtual_time_s), in [0, 1].
    driver_cpu_per_trial_s : float
        The driver's process CPU time (user + system) per trial started, in seconds, without the
        time spent in the objective (which a real cluster runs elsewhere).
    n_trials : int
        Trials started by this run.
    steady_utilization : float
        Utilization up to the last trial's start (before the budget stops new submissions and
        the last trials drain): the scheduler's share, without the end-of-budget tail.
    best_curve : list of (float, float)
        ``(virtual time, best objective so far)`` at each improvement.
    """

    campaign: Any
    workers: int
    virtual_time_s: float
    utilization: float
    driver_cpu_per_trial_s: float
    n_trials: int
    steady_utilization: float = 0.0
    best_curve: list = field(default_factory=list)

    def summary(self) -> str:
        """The lines ``esopt simulate`` prints."""
        best = self.best_curve[-1][1] if self.best_curve else None
        lines = [
            f"simulated {self.n_trials} trials on {self.workers} workers: {self.campaign.status} "
            f"({self.campaign.message})",
            f"virtual wall time {self.virtual_time_s:.6g} s, utilization {100 * self.utilization:.1f}% "
            f"({100 * self.steady_utilization:.1f}% until the last trial started)",
            f"driver CPU per trial {1e3 * self.driver_cpu_per_trial_s:.3f} ms",
            f"best objective {best!r}",
            "best objective against virtual time (s): "
            + ", ".join(f"{t:.4g}: {v:.6g}" for t, v in _thin(self.best_curve, 12)),
        ]
        return "\n".join(lines)


def _thin(curve: list, k: int) -> list:
    if len(curve) <= k:
        return curve
    idx = np.unique(np.linspace(0, len(curve) - 1, k).round().astype(int))
    return [curve[i] for i in idx]


def simulate(
    config: CampaignConfig,
    directory: str | os.PathLike,
    *,
    workers: int,
    durations: str | os.PathLike | DurationTable | None = None,
    duration: Callable[[Mapping[str, Any], Mapping[str, Any]], float] | None = None,
    resume: bool = False,
    progress: Any = None,
    announce: Callable[[], None] | None = None,
) -> SimulationResult:
    """Run (or, with ``resume``, continue) the campaign of ``config`` in ``directory`` on
    ``workers`` simulated workers; see the module docstring.

    ``durations`` replays a recorded table (a CSV path, or a :class:`DurationTable` already read
    from one, :func:`read_durations`); ``duration`` computes each trial's seconds from
    ``(params, result)``.  The journal's times are virtual seconds.  ``announce()`` is called
    once the campaign is built (its config and strategy accepted), before the first trial.

    Raises
    ------
    ValueError
        ``workers`` out of range, or an unusable ``durations`` table.
    ConfigError, FileExistsError, JournalError, CampaignLocked
        As :class:`cluster.campaign.Campaign` (``directory`` holds a journal and not ``resume``...).
    """
    from .campaign import Campaign

    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be an int in 1..{MAX_WORKERS}, got {workers!r}")
    table = (
        durations
        if durations is None or isinstance(durations, DurationTable)
        else DurationTable(durations, config.space)
    )
    if resume:
        campaign = Campaign.resume(directory, config=config)
    else:
        campaign = Campaign(config, directory)
    start = _last_time(campaign.journal) if resume else 0.0
    made: list[SimulatedExecutor] = []

    def factory(c: Campaign) -> SimulatedExecutor:
        ex = SimulatedExecutor(
            c.objective,
            workers,
            c.config.failures,
            table=table,
            duration=duration,
            start=start,
            space=c.config.space,
            reporting=getattr(c.config, "fidelity", None) is not None,
            timeout_s=c.config.resources.timeout_s,
            max_concurrent=_max_concurrent(c.config),
        )
        made.append(ex)
        return ex

    campaign.executor_factory = factory
    if announce is not None:
        announce()
    cpu0 = time.process_time()
    try:
        result = campaign.run(progress)
    finally:
        campaign.close()
    cpu = time.process_time() - cpu0
    ex = made[0] if made else None
    if ex is not None:
        cpu -= ex.objective_cpu_s
    span = (ex.clock - start) if ex is not None else 0.0
    n = ex.n_started if ex is not None else 0
    util = ex.busy_s / (workers * span) if ex is not None and span > 0 else 0.0
    return SimulationResult(
        campaign=result,
        workers=workers,
        virtual_time_s=span,
        utilization=min(1.0, util),
        driver_cpu_per_trial_s=cpu / n if n else 0.0,
        n_trials=n,
        steady_utilization=_steady_utilization(directory, workers, start),
        best_curve=_best_curve(directory),
    )


def _steady_utilization(directory: str | os.PathLike, workers: int, start: float) -> float:
    """Busy worker-seconds in ``[start, last start]`` / (workers x that span)."""
    from .store import Journal

    with Journal(Path(directory), readonly=True) as j:
        spans = [(t.started_at, t.finished_at) for t in j.trials() if t.started_at is not None and t.finished_at]
    spans = [(s, e) for s, e in spans if e >= start]
    if not spans:
        return 0.0
    t_end = max(s for s, _ in spans)
    t0 = max(start, min(s for s, _ in spans))
    if t_end <= t0:
        return 0.0
    busy = sum(max(0.0, min(e, t_end) - max(s, t0)) for s, e in spans)
    return min(1.0, busy / (workers * (t_end - t0)))


def _max_concurrent(config: CampaignConfig) -> int | None:
    """The smaller of ``resources.max_concurrent`` and ``scheduler.max_concurrent`` (None: neither)."""
    caps = [c for c in (config.resources.max_concurrent, config.scheduler.max_concurrent) if c is not None]
    return min(caps) if caps else None


def _last_time(journal) -> float:
    """The journal's latest virtual time: trial starts and ends, tells."""
    c = journal.conn
    t = c.execute("SELECT MAX(MAX(COALESCE(finished_at, 0)), MAX(COALESCE(started_at, 0))) FROM trials").fetchone()[0]
    g = c.execute("SELECT MAX(COALESCE(told_at, 0)) FROM generations").fetchone()[0]
    return float(max(t or 0.0, g or 0.0))


def _best_curve(directory: str | os.PathLike) -> list[tuple[float, float]]:
    from .store import Journal

    with Journal(Path(directory), readonly=True) as j:
        rows = [r for r in j.trials() if r.status == TrialStatus.DONE and r.objective is not None]
    rows.sort(key=lambda r: (r.finished_at or 0.0, r.id))
    out, best = [], math.inf
    for r in rows:
        if r.objective < best:
            best = r.objective
            out.append((float(r.finished_at or 0.0), float(best)))
    return out


def check_workers(value: Any) -> int:
    """``--workers`` as an int in 1..MAX_WORKERS (ConfigError otherwise, for the CLI's exit 2)."""
    try:
        w = int(value)
    except (TypeError, ValueError):
        raise ConfigError("--workers", f"must be an integer, got {value!r}") from None
    if not 1 <= w <= MAX_WORKERS:
        raise ConfigError("--workers", f"must be in 1..{MAX_WORKERS}, got {w}")
    return w


def read_durations(path: str | os.PathLike, space) -> DurationTable:
    """``--durations``: the :class:`DurationTable` of the CSV ``path`` for ``space``.

    Raises :class:`ConfigError` at ``--durations`` (the CLI's exit 2, one line) when the file
    cannot be read, is not a CSV in UTF-8 text, lacks a column or has no usable row.
    """
    try:
        return DurationTable(path, space)
    except OSError as e:
        raise ConfigError("--durations", f"cannot read {str(path)!r}: {e.strerror or e}") from None
    except (csv.Error, ValueError) as e:  # UnicodeDecodeError is a ValueError
        raise ConfigError("--durations", f"{str(path)!r} is not a usable trials CSV: {e}") from None


def add_parser(sub) -> None:
    """Add ``esopt simulate`` to the CLI's subparsers ``sub``."""
    sm = sub.add_parser(
        "simulate",
        help="run a campaign on a simulated cluster (virtual clock, no Ray)",
        description=(
            "Run CONFIG's campaign with the production driver on P simulated workers and print utilization, "
            "virtual wall time, driver CPU per trial and the best objective against virtual time. The objective "
            "runs in this process (its result's duration_s, else its wall time, is the trial's duration), or "
            "--durations replays a recorded trials CSV. A DIR that holds this config's journal is continued."
        ),
    )
    sm.add_argument("config", metavar="CONFIG", help="campaign YAML")
    sm.add_argument("--workers", metavar="P", required=True, help=f"simulated workers, 1..{MAX_WORKERS}")
    sm.add_argument("--durations", metavar="CSV", default=None, help="replay objective and duration from a CSV")
    sm.add_argument("--dir", metavar="DIR", default=None, help="campaign directory (default: runs/<name>-sim-...)")


def cmd_simulate(args) -> int:
    """``esopt simulate``: exit 0 done, 1 failed, 130 interrupted (with the command that continues it;
    see :func:`cluster.cli.main` for the others)."""
    import sys

    from .cli import _STATUS_EXIT, EXIT_FAILED, JOURNAL_FILE, check_folder, default_directory
    from .config import load_config, require_stop

    workers = check_workers(args.workers)
    cfg = load_config(args.config)
    table = None if args.durations is None else read_durations(args.durations, cfg.space)
    directory = check_folder(Path(args.dir), "--dir") if args.dir else default_directory(f"{cfg.name}-sim")
    resume = (directory / JOURNAL_FILE).exists()
    if not resume:
        require_stop(cfg)  # refused before the first line is printed, as by esopt tune
    what = "continuing" if resume else "running"

    def announce() -> None:  # once the campaign is built: a strategy error is the only line
        print(f"{what} simulated campaign {cfg.name} in {directory} on {workers} workers", file=sys.stderr)

    result = simulate(cfg, directory, workers=workers, durations=table, resume=resume, announce=announce)
    print(result.summary())
    status = str(result.campaign.status)
    if status == "interrupted":
        again = ["esopt", "simulate", str(args.config), "--workers", str(workers), "--dir", str(directory)]
        if args.durations is not None:
            again += ["--durations", str(args.durations)]
        print(f"interrupted; continue with: {shlex.join(again)}", file=sys.stderr)
    return _STATUS_EXIT.get(status, EXIT_FAILED)
