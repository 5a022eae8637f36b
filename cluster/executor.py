"""Run a generation's trials as Ray tasks: resources, retries, timeouts, cancellation.

Each trial is one Ray task (a streaming generator) with the configured ``num_cpus`` and
``num_gpus`` (fractions pack several trials on one GPU).  The task first yields a small
"started" message (node id, worker id) and then the trial's result, so the driver knows when
and where a trial actually started: ``resources.timeout_s`` counts from that moment, not from
the submission, and the journal shows the node of a running trial.  Ray Client (``ray://``)
does not support streaming generators (ray-project/ray#43357); there plain tasks are used
(see :class:`RayExecutor`, ``streaming``).

Failure handling (``failures`` section of the config):

* a worker or node that dies is a *system failure*: the executor submits the trial again, up to
  ``max_retries`` times (not Ray's own ``max_retries`` task option, which re-runs a streaming task
  whose worker dies even after the driver has its result: ``tests/test_chaos.py`` caught finished
  trials trained twice); if it still fails, the trial is ``failed`` and is penalized (never
  aborted on);
* an exception in the objective, a non-finite objective value, a ``TrialResult`` with status
  ``failed``, or a trial running longer than ``timeout_s`` (cancelled with
  ``ray.cancel(force=True)``, reason ``"timeout"``) follow ``on_error``: ``penalty`` records the
  trial ``failed`` (the campaign tells the optimizer a penalty, :mod:`cluster.penalty`),
  ``retry`` submits it again while ``attempts <= max_retries`` and then penalizes it, ``abort``
  cancels the other running trials and stops the generation;
* a ``TrialResult`` with status ``diverged`` is an outcome of the hyperparameters, not an
  error: it is ``done`` with its objective if that is finite, else ``failed`` and penalized,
  whatever ``on_error`` says.

Every failed outcome carries its :class:`cluster.status.FailureKind` (``TrialOutcome.kind``); the
policy above is chosen from that type (:attr:`FailureKind.policy_applies`), never from the text of
the error, which is the journal's ``error`` column (``kind.message(detail)``).

A trial that uses a GPU runs in a fresh worker process (``max_calls=1``) so that its GPU memory
is returned when it ends; CPU-only trials reuse workers; ``resources.fresh_process`` overrides
both.  Results are collected with ``ray.wait`` in the order they finish.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .config import FailuresConfig, ResourcesConfig
from .objective import Objective
from .status import FailureKind, TrialStatus

__all__ = ["TrialTask", "TrialOutcome", "ExecutorBase", "RayExecutor", "ExecutorListener", "check_feasible"]

_WAIT_S = 0.5  # longest single ray.wait, so that Ctrl-C is handled promptly
_IGNORED_STOPS = 3  # reports a stopped trial may still send (the decision arrives late) before it is cancelled
_DECISION_WAIT_S = 10.0  # longest wait of a trial at a rung for the driver's decision (then it goes on)


@dataclass
class TrialTask:
    """One trial to run: journal id, position, params (own units), submissions so far."""

    trial_id: int
    generation: int
    idx: int
    params: dict
    attempts: int = 0
    last_error: str | None = None  # why the previous attempt failed (retries), journaled at resubmission
    # when an attempt interrupted by a driver kill had started (journal time): a simulated cluster,
    # which does not die with the driver, lets it run on from then; Ray re-runs it from scratch
    started_at: float | None = None


@dataclass
class TrialOutcome:
    """Final outcome of a trial.

    ``status`` is ``done`` (finite ``objective``), ``failed`` (``error`` says why, and ``kind``
    which :class:`~cluster.status.FailureKind` it is; the campaign penalizes it) or ``cancelled``.
    ``result`` is the objective's full result dict, if any.
    """

    task: TrialTask
    status: TrialStatus
    objective: float | None = None
    result: dict | None = None
    error: str | None = None
    node_id: str | None = None
    worker_id: str | None = None
    finished_at: float = field(default_factory=time.time)
    kind: FailureKind | None = None

    @classmethod
    def failure(cls, task: TrialTask, kind: FailureKind, detail: str | None = None, **fields: Any) -> TrialOutcome:
        """A ``failed`` outcome of ``kind``; ``error`` is ``kind.message(detail)`` (the journal's text)."""
        return cls(task, TrialStatus.FAILED, error=kind.message(detail), kind=kind, **fields)


class ExecutorListener(Protocol):
    """What the executor reports to the campaign (which journals each call at once)."""

    def submitted(self, tasks: Sequence[TrialTask], errors: Sequence[str | None]) -> None: ...

    def started(self, task: TrialTask, node_id: str, worker_id: str, started_at: float) -> None: ...

    def finished(self, outcome: TrialOutcome) -> None: ...


def _run_objective(objective: Objective, params: dict, node_id: str, worker_id: str, report=None) -> dict:
    t0 = time.time()
    try:
        out = objective(params) if report is None else objective(params, report=report)
        out["kind"] = "result"
    except Exception as e:  # noqa: BLE001 - every objective error is recorded, not raised
        out = {"kind": "error", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    out.update(node_id=node_id, worker_id=worker_id, pid=os.getpid(), wall_s=time.time() - t0)
    return out


def _trial_task(objective: Objective, params: dict):
    """The Ray task (streaming): yield a "started" message, then the trial's result (never raises
    for exceptions of the objective: they come back as ``kind == "error"``)."""
    import ray

    ctx = ray.get_runtime_context()
    node_id, worker_id = ctx.get_node_id(), ctx.get_worker_id()
    yield {"kind": "start", "node_id": node_id, "worker_id": worker_id, "pid": os.getpid()}
    yield _run_objective(objective, params, node_id, worker_id)


class _StopBoard:
    """The driver's decisions on the reports of running trials (a Ray actor without resources,
    multi-fidelity; asynchronous, so that a waiting trial does not block the driver's calls).

    The driver records every report's decision, in the order the reports arrive
    (:meth:`decide`); a trial that reaches a rung waits for the decision on that report
    (:meth:`decision`, awaited through a ``concurrent.futures`` future: a worker blocked in
    ``ray.get`` gives its CPU back to Ray, which would start another trial on it), so that a trial
    stopped at a rung trains no step past it; between rungs it asks without waiting
    (:meth:`is_stopped`).  Decisions and stops belong to one attempt of a trial: a trial
    resubmitted after its worker died reports from its first step again and is decided afresh
    (the driver's ASHA forgets the earlier attempt, ``FidelityTracker.prepare_rerun``)."""

    def __init__(self):
        import asyncio

        self.stopped: set[tuple[int, int]] = set()  # (trial id, attempt) stopped
        self.decided: dict[tuple[int, int], int] = {}  # (trial id, attempt) -> reports decided
        self._changed = asyncio.Condition()  # binds to the actor's event loop at first use (3.10+)

    async def decide(self, trial_id: int, attempt: int, go_on: bool) -> None:
        """The driver's decision on the next report of ``(trial_id, attempt)`` (False: stop it)."""
        key = (int(trial_id), int(attempt))
        self.decided[key] = self.decided.get(key, 0) + 1
        if not go_on:
            self.stopped.add(key)
        async with self._changed:
            self._changed.notify_all()

    async def decision(self, trial_id: int, attempt: int, n: int, timeout_s: float) -> bool | None:
        """Wait until the driver has decided on the ``n``-th report (1-based) of ``(trial_id,
        attempt)``, at most ``timeout_s`` seconds: True = go on, False = stopped, None = no decision
        in time (the trial goes on and learns of a stop later, as between rungs)."""
        import asyncio

        key = (int(trial_id), int(attempt))

        def known() -> bool:
            return key in self.stopped or self.decided.get(key, 0) >= n

        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(known), timeout_s)
        except asyncio.TimeoutError:
            return None
        return key not in self.stopped

    def is_stopped(self, trial_id: int, attempt: int) -> bool:
        """Whether the driver stopped this attempt of ``trial_id`` (answered at once)."""
        return (int(trial_id), int(attempt)) in self.stopped


class _Reporter:
    """The ``report(step, value)`` callback of a multi-fidelity trial (runs in the objective's
    thread of :func:`_trial_task_reporting`): each report goes to ``messages`` (streamed to the
    driver); the return value says whether to go on (False once the driver stopped the trial).

    At a report whose step first reaches one of ``decision_steps`` (the rungs below the full
    budget) it waits for the driver's decision on that report (at most :data:`_DECISION_WAIT_S`
    seconds), so a trial stopped at a rung returns from there; at other steps it asks the
    ``board`` without waiting and learns of a stop a report or two after it was made."""

    def __init__(self, messages, board: Any, trial_id: int, attempt: int, decision_steps: Sequence):
        self.messages, self.board, self.trial_id, self.attempt = messages, board, trial_id, attempt
        self.pending = sorted(float(s) for s in decision_steps)
        self.n = 0  # reports sent
        self.stopped = False
        self.future = None  # the pending non-blocking is_stopped question

    def __call__(self, step, value) -> bool:
        self.messages.put({"kind": "report", "step": step, "value": value, "at": time.time()})
        self.n += 1
        if self.stopped:
            return False
        go = self._decision() if self._at_rung(step) else None
        if go is not None:
            self.stopped = not go
            return go
        return self._poll()

    def _at_rung(self, step) -> bool:
        try:
            reached = [r for r in self.pending if step >= r]
        except TypeError:  # an unusable step: the driver fails the trial and stops it
            return False
        del self.pending[: len(reached)]
        return bool(reached)

    def _decision(self) -> bool | None:
        import concurrent.futures

        import ray

        fut = self.board.decision.remote(self.trial_id, self.attempt, self.n, _DECISION_WAIT_S).future()
        try:  # a concurrent.futures wait, not ray.get, which would give the CPU back to Ray; the
            go = fut.result(timeout=_DECISION_WAIT_S + 5.0)  # actor answers None at _DECISION_WAIT_S
        except (concurrent.futures.TimeoutError, ray.exceptions.RayError):
            return None
        return None if go is None else bool(go)

    def _poll(self) -> bool:
        fut = self.future
        if fut is not None and fut.done():
            self.stopped, self.future = bool(fut.result()), None
        if self.future is None and not self.stopped:
            self.future = self.board.is_stopped.remote(self.trial_id, self.attempt).future()
        return not self.stopped


def _trial_task_reporting(
    objective: Objective, params: dict, trial_id: int, board: Any, attempt: int = 1, decision_steps: Sequence = ()
):
    """The streaming Ray task of a multi-fidelity trial: "start", then one "report" message per
    ``report(step, value)`` of the objective (which runs in a thread of the task; the callback is
    a :class:`_Reporter`), then the result."""
    import queue
    import threading

    import ray

    ctx = ray.get_runtime_context()
    node_id, worker_id = ctx.get_node_id(), ctx.get_worker_id()
    yield {"kind": "start", "node_id": node_id, "worker_id": worker_id, "pid": os.getpid()}
    messages: queue.Queue = queue.Queue()
    report = _Reporter(messages, board, trial_id, attempt, decision_steps)

    def run() -> None:
        messages.put(_run_objective(objective, params, node_id, worker_id, report=report))

    threading.Thread(target=run, daemon=True).start()
    while True:
        msg = messages.get()
        yield msg
        if msg["kind"] != "report":
            return


def _trial_task_plain(objective: Objective, params: dict) -> dict:
    """The Ray task for Ray Client (``ray://``) connections, which do not support streaming
    generators: only the result comes back."""
    import ray

    ctx = ray.get_runtime_context()
    return _run_objective(objective, params, ctx.get_node_id(), ctx.get_worker_id())


def check_feasible(resources: ResourcesConfig, *, strict: bool = True) -> bool:
    """Whether some alive node of the connected Ray cluster can run one trial (e.g. not
    ``num_gpus: 1`` on a cluster without GPUs); nodes are read from ``ray.nodes()``.

    With ``strict`` (a local instance this campaign started) an infeasible trial raises
    ``ValueError``; otherwise (a joined cluster, whose autoscaler may still add such nodes) a
    ``RuntimeWarning`` is issued and False returned.
    """
    import warnings

    import ray

    need = {"CPU": float(resources.num_cpus), "GPU": float(resources.num_gpus)}
    try:
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    except Exception:  # noqa: BLE001 - e.g. not available through this connection: do not block
        return True
    for res in nodes:
        if all(res.get(k, 0.0) >= v for k, v in need.items() if v > 0):
            return True
    have = [{k: res.get(k, 0.0) for k in need} for res in nodes]
    msg = (
        f"no Ray node can run a trial needing num_cpus={need['CPU']}, num_gpus={need['GPU']} "
        f"(nodes have {have}); lower resources.num_cpus/num_gpus or add nodes"
    )
    if strict:
        raise ValueError(msg)
    warnings.warn(msg + "; waiting for the cluster to provide them", RuntimeWarning, stacklevel=2)
    return False


class _Running:
    __slots__ = ("task", "started_at", "deadline")

    def __init__(self, task: TrialTask):
        self.task = task
        self.started_at: float | None = None
        self.deadline = math.inf


class ExecutorBase:
    """What every executor shares (:class:`RayExecutor`, :class:`cluster.simulate.SimulatedExecutor`):
    running a batch to completion on top of ``start``/``wait``/``busy``, and the ``failures``
    policy (module docstring).  Subclasses provide ``failures``, ``start``, ``wait`` and ``busy``."""

    failures: FailuresConfig

    def run(self, tasks: Sequence[TrialTask], listener: ExecutorListener) -> str | None:
        """Run ``tasks`` to completion, reporting every transition to ``listener`` (a synchronous
        generation: :meth:`start` then :meth:`wait` until nothing is left).

        Returns None when every task ended ``done``/``failed``, or the abort reason when a
        failure under ``on_error: abort`` stopped the run (the other running trials are then
        cancelled and reported ``cancelled``; tasks not yet submitted are left untouched).
        ``KeyboardInterrupt`` propagates; call ``cancel_all`` then.
        """
        self.start(tasks, listener)
        while self.busy:
            reason = self.wait(listener)
            if reason is not None:
                return reason
        return None

    @staticmethod
    def _policy_applies(outcome: TrialOutcome) -> bool:
        """Whether ``failures.on_error`` decides about this outcome (:attr:`FailureKind.policy_applies`)."""
        return outcome.status == TrialStatus.FAILED and outcome.kind is not None and outcome.kind.policy_applies

    def _handle(self, outcome: TrialOutcome, queue: deque[TrialTask], listener: ExecutorListener) -> str | None:
        """Apply ``failures.on_error`` to a finished trial: requeue a retry at the front of ``queue``,
        or report it (returning the abort reason under ``abort``)."""
        on_error = self.failures.on_error
        task = outcome.task
        if outcome.kind is FailureKind.SYSTEM and task.attempts <= self.failures.max_retries:
            task.last_error = f"attempt {task.attempts} {outcome.error}"  # a worker or node died: run it again
            queue.appendleft(task)
            return None
        if self._policy_applies(outcome):
            if on_error == "retry" and task.attempts <= self.failures.max_retries:
                task.last_error = f"attempt {task.attempts} {outcome.error}"
                queue.appendleft(task)
                return None
            if on_error == "abort":
                listener.finished(outcome)
                return (
                    f"trial {task.trial_id} (generation {task.generation}, idx {task.idx}) {outcome.error}; "
                    "failures.on_error is 'abort'"
                )
        listener.finished(outcome)
        return None


class RayExecutor(ExecutorBase):
    """Submit trials to Ray and report their transitions to a listener.

    Parameters
    ----------
    objective : Objective
        Picklable objective (see :mod:`cluster.objective`).
    resources, failures : ResourcesConfig, FailuresConfig
        The config sections (see module docstring for the semantics).
    reporting : bool, optional
        Multi-fidelity: the objective gets a ``report`` callback; each report comes to
        ``listener.reported(task, step, value, at)``, whose False stops the trial (the worker's
        ``report`` returns False from then on; a trial that reports :data:`_IGNORED_STOPS` more times
        after that is cancelled).  Needs streaming.
    decision_steps : sequence of int, optional
        Multi-fidelity: the steps at which the scheduler decides (the rungs below the full budget,
        ``cluster.fidelity.ASHA.rungs[:-1]``).  A trial whose report first reaches one waits for
        the decision on it (at most :data:`_DECISION_WAIT_S` s), so a trial stopped there trains
        no further step; elsewhere it learns of a stop a report or two late.  Empty (the default):
        it never waits.
    max_concurrent : int, optional
        At most this many trials running at once (``scheduler.max_concurrent``), besides
        ``resources.max_concurrent``; None: as many as the cluster fits.
    streaming : bool, optional
        Use streaming-generator tasks that report their start (default, except over Ray Client,
        which does not support them).  Without streaming, a trial counts as started when it is
        submitted, its node is known when it ends, and with ``timeout_s`` set no more trials are
        submitted than the cluster can run at once (so that queueing does not count as running).

    Requires an initialized Ray connection (``ray.init``) when :meth:`run` is called.
    """

    def __init__(
        self,
        objective: Objective,
        resources: ResourcesConfig,
        failures: FailuresConfig,
        *,
        streaming: bool | None = None,
        max_concurrent: int | None = None,
        reporting: bool = False,
        decision_steps: Sequence[int] = (),
    ):
        import ray

        self.objective = objective
        self.resources = resources
        self.failures = failures
        fresh = resources.fresh_process if resources.fresh_process is not None else resources.num_gpus > 0
        self.fresh_process = bool(fresh)
        opts: dict[str, Any] = dict(
            num_cpus=float(resources.num_cpus),
            num_gpus=float(resources.num_gpus),
            # Ray's own task retries re-run a streaming task whose worker dies even after the driver
            # has its result (found by tests/test_chaos.py), so system failures are resubmitted here
            max_retries=0,
            retry_exceptions=False,
            num_returns="streaming",
        )
        if self.fresh_process:
            opts["max_calls"] = 1
        if streaming is None:
            streaming = not _client_mode()
        self.streaming = bool(streaming)
        self.reporting = bool(reporting)
        if self.reporting and not self.streaming:
            raise ValueError(
                "multi-fidelity (fidelity section) needs streaming tasks, which Ray Client does not support"
            )
        self._board = ray.remote(num_cpus=0)(_StopBoard).remote() if self.reporting else None
        self._stops_ignored: dict[int, int] = {}
        self.decision_steps = tuple(int(s) for s in decision_steps)
        if self.reporting:
            self._remote = ray.remote(**opts)(_trial_task_reporting)
        elif self.streaming:
            self._remote = ray.remote(**opts)(_trial_task)  # max_calls is not accepted by .options()
        else:
            opts.pop("num_returns")
            self._remote = ray.remote(**opts)(_trial_task_plain)
        self._running: dict[Any, _Running] = {}
        self._queue: deque[TrialTask] = deque()  # submitted by the campaign, waiting for a slot
        caps = [c for c in (resources.max_concurrent, max_concurrent) if c is not None]
        self.max_concurrent = min(caps) if caps else None
        self.limit = self.max_concurrent or math.inf
        self.max_running_seen = 0  # most trials in flight at once (for tests/benchmarks)

    # ------------------------------------------------------------------ public
    def start(self, tasks: Sequence[TrialTask], listener: ExecutorListener) -> None:
        """Queue ``tasks`` and submit as many as :attr:`limit` allows now (the rest as trials end,
        in :meth:`wait`); each submission is reported to ``listener.submitted`` first."""
        if not self._running and not self._queue:
            self.limit = self.max_concurrent or math.inf
            if not self.streaming and self.resources.timeout_s is not None:
                self.limit = min(self.limit, _capacity(self.resources))
        self._queue.extend(tasks)
        self._submit(self._queue, listener)

    @property
    def busy(self) -> bool:
        """True while a trial runs or waits in the queue (retries, or more tasks than slots)."""
        return bool(self._running or self._queue)

    @property
    def n_active(self) -> int:
        """Trials submitted and not finished, plus those queued (retries waiting for a slot)."""
        return len(self._running) + len(self._queue)

    def capacity(self) -> int:
        """Trials the connected cluster can run at once with ``resources`` (``ray.cluster_resources()``),
        capped by ``resources.max_concurrent``; >= 1."""
        cap = _capacity(self.resources)
        return int(min(cap, self.max_concurrent or cap))

    @staticmethod
    def now() -> float:
        """The clock the executor reports times in (Unix seconds)."""
        return time.time()

    def wait(self, listener: ExecutorListener) -> str | None:
        """Wait (at most ``_WAIT_S`` seconds) for trials to start or end, report them, resubmit
        retries, cancel expired ones and submit queued tasks into freed slots.

        Returns None, or the abort reason after a failure under ``on_error: abort`` (every other
        running trial is then cancelled and reported ``cancelled``)."""
        import ray

        refs = list(self._running)
        if refs:
            ready, _ = ray.wait(refs, num_returns=1, timeout=self._next_timeout())
            if ready:
                more, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                ready = list(dict.fromkeys([*ready, *more]))
            for gen in ready:
                outcome = self._receive(gen, listener)
                if outcome is None:
                    continue
                reason = self._handle(outcome, self._queue, listener)
                if reason is not None:
                    self.cancel_all(listener, reason="cancelled: campaign aborted")
                    return reason
            reason = self._expire(self._queue, listener)
            if reason is not None:
                self.cancel_all(listener, reason="cancelled: campaign aborted")
                return reason
        self._submit(self._queue, listener)
        return None

    def cancel_all(self, listener: ExecutorListener | None = None, *, reason: str = "cancelled") -> list[TrialTask]:
        """Force-cancel every running trial; report each as ``cancelled`` (if a listener is given).

        Returns the cancelled tasks.  Errors from Ray (e.g. a cluster already gone) are ignored.
        """
        import ray

        cancelled = []
        self._queue.clear()
        for gen, run in list(self._running.items()):
            try:
                ray.cancel(gen, force=True)
            except Exception:  # noqa: BLE001 - best effort while stopping
                pass
            del self._running[gen]
            cancelled.append(run.task)
            if listener is not None:
                listener.finished(TrialOutcome(run.task, TrialStatus.CANCELLED, error=reason))
        return cancelled

    # ------------------------------------------------------------------ internals
    def _submit(self, queue: deque[TrialTask], listener: ExecutorListener) -> None:
        batch: list[TrialTask] = []
        errors: list[str | None] = []
        while queue and len(self._running) + len(batch) < self.limit:
            task = queue.popleft()
            batch.append(task)
            errors.append(task.last_error)
            task.last_error = None
        if not batch:
            return
        listener.submitted(batch, errors)  # journaled (status running) before Ray sees them
        for task in batch:
            task.attempts += 1
            if self.reporting:
                gen = self._remote.remote(
                    self.objective, task.params, task.trial_id, self._board, task.attempts, self.decision_steps
                )
            else:
                gen = self._remote.remote(self.objective, task.params)
            run = self._running[gen] = _Running(task)
            if not self.streaming:
                self._mark_started(run)
        self.max_running_seen = max(self.max_running_seen, len(self._running))

    def _mark_started(self, run: _Running) -> float:
        now = time.time()
        run.started_at = now
        if self.resources.timeout_s is not None:
            run.deadline = now + float(self.resources.timeout_s)
        return now

    def _next_timeout(self) -> float:
        deadlines = [r.deadline for r in self._running.values()]
        nearest = min(deadlines, default=math.inf)
        return max(0.0, min(_WAIT_S, nearest - time.time()))

    def _receive(self, gen: Any, listener: ExecutorListener) -> TrialOutcome | None:
        import ray

        run = self._running[gen]
        task = run.task
        try:
            msg = ray.get(next(gen) if self.streaming else gen)
        except StopIteration:  # pragma: no cover - the task always yields a result before ending
            del self._running[gen]
            return TrialOutcome.failure(task, FailureKind.SYSTEM, "the trial task ended without a result")
        except ray.exceptions.TaskCancelledError:
            del self._running[gen]
            return TrialOutcome(task, TrialStatus.CANCELLED, error="cancelled")
        except ray.exceptions.RayTaskError as e:  # an error outside the objective's try block
            del self._running[gen]
            return TrialOutcome.failure(task, FailureKind.ERROR, _first_line(e))
        except ray.exceptions.RayError as e:  # worker/node died and Ray's retries are exhausted
            del self._running[gen]
            detail = f"{type(e).__name__}: {_first_line(e)}"
            return TrialOutcome.failure(task, FailureKind.SYSTEM, detail, result={"system_failure": True})
        if msg.get("kind") == "start":
            listener.started(task, msg.get("node_id"), msg.get("worker_id"), self._mark_started(run))
            return None
        if msg.get("kind") == "report":
            return self._report(gen, task, msg, listener)
        del self._running[gen]
        return self._outcome(task, msg)

    def _report(self, gen: Any, task: TrialTask, msg: dict, listener: ExecutorListener) -> TrialOutcome | None:
        """A report of a running trial: the listener journals it and decides; a stopped trial goes on
        the board, and one that keeps reporting is cancelled (its outcome: the listener's
        ``ignored_stop(task)``)."""
        import ray

        tid = task.trial_id
        if tid in self._stops_ignored:
            self._stops_ignored[tid] += 1
            listener.reported(task, msg["step"], msg["value"], msg.get("at"))
            self._board.decide.remote(tid, task.attempts, False)
            if self._stops_ignored[tid] > _IGNORED_STOPS:
                try:
                    ray.cancel(gen, force=True)
                except Exception:  # noqa: BLE001
                    pass
                del self._running[gen]
                return listener.ignored_stop(task)
            return None
        go_on = bool(listener.reported(task, msg["step"], msg["value"], msg.get("at")))
        self._board.decide.remote(tid, task.attempts, go_on)  # after the journal has the report
        if not go_on:
            self._stops_ignored[tid] = 0
        return None

    @staticmethod
    def _outcome(task: TrialTask, msg: dict) -> TrialOutcome:
        where = dict(node_id=msg.get("node_id"), worker_id=msg.get("worker_id"))
        if msg["kind"] == "error":
            return TrialOutcome.failure(
                task, FailureKind.EXCEPTION, msg["error"], result={"traceback": msg.get("traceback")}, **where
            )
        result = dict(msg.get("result") or {})
        result.setdefault("wall_s", msg.get("wall_s"))
        f = float(msg["objective"])
        status = msg.get("status", "ok")
        reason = msg.get("reason")
        if status == "failed":
            return TrialOutcome.failure(task, FailureKind.FAILED, str(reason), result=result, **where)
        if not math.isfinite(f):
            if status == "diverged":
                return TrialOutcome.failure(task, FailureKind.DIVERGED, str(reason), result=result, **where)
            return TrialOutcome.failure(task, FailureKind.NONFINITE, str(f), result=result, **where)
        return TrialOutcome(task, TrialStatus.DONE, objective=f, result=result, **where)

    def _expire(self, queue: deque[TrialTask], listener: ExecutorListener) -> str | None:
        import ray

        now = time.time()
        for gen, run in list(self._running.items()):
            if run.deadline <= now:
                try:
                    ray.cancel(gen, force=True)
                except Exception:  # noqa: BLE001
                    pass
                del self._running[gen]
                out = TrialOutcome.failure(
                    run.task,
                    FailureKind.TIMEOUT,
                    result={"timeout_s": self.resources.timeout_s, "ran_s": now - (run.started_at or now)},
                )
                reason = self._handle(out, queue, listener)
                if reason is not None:
                    return reason
        return None


def _client_mode() -> bool:
    """True when this driver is connected through Ray Client (``ray://``)."""
    try:
        from ray.util.client import ray as client_ray

        return bool(client_ray.is_connected())
    except Exception:  # noqa: BLE001
        return False


def _capacity(resources: ResourcesConfig) -> int:
    """Trials the connected cluster can run at once (from ``ray.cluster_resources()``), >= 1."""
    import ray

    total = ray.cluster_resources()
    cap = math.inf
    for key, need in (("CPU", resources.num_cpus), ("GPU", resources.num_gpus)):
        if need > 0:
            cap = min(cap, math.floor(total.get(key, 0.0) / need + 1e-9))
    return max(1, int(cap)) if cap != math.inf else 1_000_000


def _first_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return lines[-1][:500] if lines else type(e).__name__
