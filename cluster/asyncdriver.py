"""The asynchronous campaign loop (``scheduler.mode: async``): every slot busy, no generation barrier.

One loop, each step a method of :class:`AsyncLoop`::

    tell:    while popsize finished results wait: tell them, in completion order     # _tell_ready
             (rows of the strategy's pending ask whose own candidate finished keep their row, exact
             z; every other row, sampled from an older distribution or an older ask, is an injected
             solution, whose step the strategy clips: Hansen, arXiv 1110.4181, esopt.injection)
             journal: the tell (state, sigma, mean) and each trial's told_generation, told_pos
    decide:  budget spent? strategy criteria?  -> stop submitting, or restart the strategy
    fill:    free slots -> candidates from the current distribution (ask ahead; ask again when the
             supply runs out), journaled 'pending' in one commit, then handed to the executor
    wait:    the executor reports starts and ends (each journaled at once, with its finish_seq)

The executor is the only part that knows Ray (:class:`cluster.executor.RayExecutor`); the
simulated cluster (:class:`cluster.simulate.SimulatedExecutor`) runs this same loop on a virtual
clock.  The bookkeeping of candidates is :class:`cluster.tuneasync.AsyncQueue`, shared with the
asynchronous :class:`cluster.tune.ESSearcher`.

Journal: a trial's ``generation`` is the generation whose distribution produced it (tells done when
it was asked, plus one), ``idx`` its number among that generation's candidates (``k * popsize + r``
for row ``r`` of the ``k``-th ask from that distribution), ``told_generation``/``told_pos`` the tell
that included it and its row there, ``finish_seq`` its place in the completion order.  A
``generations`` row is written at each tell.

Resume restores the strategy state journaled at the last tell (restarting it if its criteria had
fired, exactly as the driver did), replays the asks made from that distribution (the RNG state is
in the checkpoint, so they give the journaled candidates back, and the strategy's pending ask is
the one it had), puts the finished-but-untold trials back in completion order, re-runs the trials
that had not finished (with their journaled coordinates) and never runs a finished one again.

Budget: ``max_trials`` stops new submissions once the trials told, waiting and running reach it,
rounded up to a whole population so that every finished trial is told; ``ftarget``,
``max_time_s`` and ``max_generations`` stop new submissions too, and the running trials finish
and are journaled (told if they complete a population, except past ``max_generations``).

Restarts after convergence (``strategy.stop_on_convergence: false``): the new run's first tells
receive the results of trials sampled by the previous run that were still running or waiting, as
injected solutions (they lie well inside the new distribution, which starts at the old mean with
``sigma0``); they are journaled and count for the best like every trial.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .penalty import penalize
from .status import TrialStatus
from .tuneasync import AsyncQueue, Candidate

if TYPE_CHECKING:  # pragma: no cover
    from .campaign import Campaign, CampaignResult, _Search

__all__ = ["AsyncLoop", "told_count"]

log = logging.getLogger(__name__)

_DONE, _FAILED, _STOPPED = TrialStatus.DONE.value, TrialStatus.FAILED.value, TrialStatus.STOPPED.value
_TOLD = (_DONE, _FAILED, _STOPPED)  # the outcomes told to the strategy
_UNFINISHED = {TrialStatus.PENDING.value, TrialStatus.RUNNING.value, TrialStatus.CANCELLED.value}
_CAPACITY_EVERY_S = 10.0  # how often the cluster's capacity is read again (nodes join and leave)


def told_count(rows) -> int:
    """Trials of an asynchronous journal that were told (``told_generation`` set)."""
    return sum(r.told_generation is not None for r in rows)


class _AsyncListener:
    """Journals the executor's transitions (through the campaign's listener) and collects the
    finished outcomes for the loop, numbering them in completion order."""

    def __init__(self, inner, finish_seq: int):
        self.inner, self.seq, self.finished_now = inner, finish_seq, []

    def submitted(self, tasks, errors) -> None:
        self.inner.submitted(tasks, errors)

    def started(self, task, node_id, worker_id, started_at) -> None:
        self.inner.started(task, node_id, worker_id, started_at)

    def started_many(self, events) -> None:
        self.inner.started_many(events)

    def reported(self, task, step, value, at) -> bool:
        return self.inner.reported(task, step, value, at)

    def ignored_stop(self, task):
        return self.inner.ignored_stop(task)

    def finished(self, outcome) -> None:
        outcome = self.inner.convert(outcome)
        if str(outcome.status) in _TOLD:
            self.seq += 1
            self.inner.finished(outcome, finish_seq=self.seq)
            self.finished_now.append(outcome)
        else:  # cancelled: re-run on resume, never told
            self.inner.finished(outcome)


class AsyncLoop:
    """Run one asynchronous campaign to its end; see the module docstring.

    Parameters
    ----------
    campaign : cluster.campaign.Campaign
        Provides the config, journal, endings and the strategy factory.
    search : cluster.campaign._Search
        The strategy and what was told, as :meth:`Campaign._restore` rebuilt it.
    executor
        :class:`cluster.executor.RayExecutor` or :class:`cluster.simulate.SimulatedExecutor`.
    clock : callable
        The campaign's elapsed seconds (summed over runs).
    progress : object or None
        The progress protocol of :meth:`Campaign.run` (each tell is a "generation").
    rerun_failed : bool
        Re-run untold ``failed`` trials (the campaign had failed, e.g. ``on_error: abort``).
    """

    def __init__(self, campaign: Campaign, search: _Search, executor, clock, progress: Any, rerun_failed: bool):
        from .campaign import _Listener

        self.c, self.search, self.executor, self.clock, self.progress = campaign, search, executor, clock, progress
        self.journal, self.config = campaign.journal, campaign.config
        self.queue = AsyncQueue()
        self.ids: dict[int, Candidate] = {}  # trial id -> candidate, for every trial not told yet
        self.tid: dict[int, int] = {}  # id(candidate) -> trial id, for the finished ones waiting
        self.local_asks = 0  # asks made from the current distribution (since the last tell)
        self.stop: dict[str, Any] = {}
        self.counts = {"done": 0, "running": 0, "failed": 0, "pending": 0}
        rows = self.journal.trials()
        seq = max((r.finish_seq or 0 for r in rows), default=0)
        inner = _Listener(
            self.journal, progress, search.generation + 1, self.counts, now=executor.now, fidelity=campaign._fidelity
        )
        self.listener = _AsyncListener(inner, seq)
        self._rerun = self._restore_queue(rows, rerun_failed)
        if "lmmaes" in str(getattr(search.strategy, "name", "")):
            log.warning(
                "LM-MA-ES learns poorly from stale samples: asynchronously it needed 3.5-5.7x the evaluations of a "
                "synchronous run on the sphere (n = 10, 60); prefer scheduler.mode: sync, or cmaes / sepcmaes"
            )
        self.slots = 1
        self._capacity_at = -math.inf
        self._criteria_key: tuple | None = None
        self._criteria_cache: dict = {}

    # ------------------------------------------------------------------ restore
    def _restore_queue(self, rows, rerun_failed: bool) -> list:
        """Rebuild the supply, the pending ask, the finished-but-untold results (completion order)
        and the trials to run again; returns the tasks to re-run (journal order)."""
        from .executor import TrialTask

        g_next = self.search.generation + 1
        popsize = int(self.search.strategy.popsize)
        open_rows = [r for r in rows if r.told_generation is None]
        current = [r.idx for r in open_rows if r.generation == g_next]
        n_asks = max(current) // popsize + 1 if current else 0
        for _ in range(n_asks):
            self._ask()
        journaled = {r.idx for r in open_rows if r.generation == g_next}
        last = self.queue.pending_ask
        if last is not None:
            base = (n_asks - 1) * popsize
            self.queue.supply = [c for c in self.queue.supply if base + c.row not in journaled]
        rerun_status = _UNFINISHED | ({_FAILED} if rerun_failed else set())
        finished, tasks = [], []
        for r in open_rows:
            cand = self._candidate_of(r, g_next, popsize, last, n_asks)
            self.ids[r.id] = cand
            if r.status in rerun_status:
                t0 = r.started_at if r.status == TrialStatus.RUNNING.value and r.node_id is not None else None
                tasks.append(TrialTask(r.id, r.generation, r.idx, r.params, attempts=r.attempts or 0, started_at=t0))
            else:
                value = r.objective if r.status in (_DONE, _STOPPED) else None
                finished.append((r.finish_seq or 0, r.id, cand, value))
        if self.c._fidelity is not None:
            for t in tasks:
                t.started_at = None  # reports restart from step 0: the trial runs again from its start
                self.c._fidelity.prepare_rerun(t)
        for _, tid, cand, value in sorted(finished, key=lambda t: (t[0], t[1])):
            self.queue.done.append((cand, value))
            self.tid[id(cand)] = tid
        self._count_waiting()
        return tasks

    @staticmethod
    def _candidate_of(r, g_next: int, popsize: int, last: int | None, n_asks: int) -> Candidate:
        told_before = r.generation - 1
        if r.generation == g_next and last is not None and r.idx // popsize == n_asks - 1:
            return Candidate([float(v) for v in r.x], dict(r.params), told_before, last, r.idx % popsize)
        return Candidate([float(v) for v in r.x], dict(r.params), told_before)

    # ------------------------------------------------------------------ the loop
    def run(self) -> CampaignResult:
        """Run until the budget (or the strategy's criteria with ``stop_on_convergence``) stops the
        campaign and no trial is running; returns the campaign's result."""
        if self._rerun:
            self.executor.start(self._rerun, self.listener)
            self._count_running()
        self._start_generation()
        while True:
            ended = self._tell_ready()
            if ended is not None:
                return ended
            self._decide()
            if self.stop and not self.executor.busy:
                return self.c._finish(self.stop, self.clock())
            if not self.stop:
                self._fill()
            if not self.executor.busy:  # max_trials reached with a partial population left untold
                return self.c._finish(self.stop or {"max_trials": self.config.budget.max_trials}, self.clock())
            abort = self.executor.wait(self.listener)
            if abort is not None:
                return self.c._failed(abort, self.clock(), self.executor)
            self._collect()

    def _collect(self) -> None:
        for outcome in self.listener.finished_now:
            tid = outcome.task.trial_id
            cand = self.ids[tid]
            status = str(outcome.status)
            value = outcome.objective if status in (_DONE, _STOPPED) else None
            self.queue.done.append((cand, value))
            self.tid[id(cand)] = tid
            if value is not None and status == _DONE:  # the best counts full-budget trials only
                self.search.best = value if self.search.best is None else min(self.search.best, value)
        self.listener.finished_now.clear()

    # ------------------------------------------------------------------ tell
    def _tell_ready(self) -> CampaignResult | None:
        """Tell every full population of finished results; the campaign's failed result if every
        trial of a tell failed, else None."""
        s = self.search
        while len(self.queue.done) >= s.strategy.popsize and not self._tells_capped():
            if self.queue.pending_ask is None:
                self._ask()  # the tell needs a pending ask; its rows are replaced by the results
            n = int(s.strategy.popsize)
            batch = [c for c, _ in self.queue.done[:n]]
            X, values, rows = self.queue.population_rows(n)
            ids = [self._pop_id(c) for c in batch]
            f = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
            failed = ~np.isfinite(f)
            if self.c._fidelity is not None:  # (highest rung reached, value there), lexicographic
                by_row = [0] * n
                for tid, row in zip(ids, rows):
                    by_row[row] = tid
                f = self.c._fidelity.fitness(by_row, [None if np.isnan(v) else float(v) for v in f])
            s.strategy.tell(X, penalize(f, failed))
            s.n_told += n
            s.generation += 1
            self.local_asks = 0
            self._journal_tell(list(zip(ids, rows)))
            from .campaign import _call

            _call(self.progress, "on_generation_end", s.generation, s.best)
            if failed.all():
                return self.c._failed(self._all_failed(ids), self.clock(), self.executor)
            if not self._decide():
                self._start_generation()
        return None

    def _tells_capped(self) -> bool:
        b = self.config.budget
        return b.max_generations is not None and self.search.generation >= b.max_generations

    def _pop_id(self, cand: Candidate) -> int:
        tid = self.tid.pop(id(cand))
        del self.ids[tid]
        return tid

    def _journal_tell(self, rows: list[tuple[int, int]]) -> None:
        from .campaign import _state_bytes

        s = self.search
        res = s.strategy.result
        self.journal.tell_population(
            s.generation,
            rows,
            sigma=float(res.sigma),
            mean=np.asarray(res.mean, dtype=float),
            best_objective=s.best,
            state=_state_bytes(s.strategy),
            elapsed_s=self.clock(),
            told_at=self.executor.now(),
        )
        self.c._created_dirs = None
        self._count_waiting()

    def _all_failed(self, ids: list[int]) -> str:
        """The campaign's all-failed message for the tell of ``ids`` (each reason counted over them)."""
        rows = [self.journal.trial(i) for i in ids]
        return self.c._all_failed_message(self.search.generation, rows, by_journal=False)

    # ------------------------------------------------------------------ decide
    def _decide(self) -> bool:
        """Set :attr:`stop` if the budget (or, with ``stop_on_convergence``, the strategy's criteria)
        ends the campaign; restart the strategy if its criteria fired otherwise.  True if stopping."""
        if self.stop:
            return True
        s, c = self.search, self.c
        budget = c._budget_stop(s, self.clock())
        budget.pop("max_trials", None)  # submissions stop by the count of trials (see _may_submit)
        if s.n_told >= (self.config.budget.max_trials or math.inf):
            budget["max_trials"] = self.config.budget.max_trials
        criteria = self._criteria_now()
        if budget or (criteria and c._stops_on_convergence):
            self.stop = {**budget, **criteria}
            return True
        if criteria:
            c._restart(s, criteria, self.progress)
            self.queue.supply, self.queue.pending_ask, self.queue.asked = [], None, None
            self.local_asks = 0
        return False

    def _criteria_now(self) -> dict:
        """The strategy's criteria, evaluated once per tell (they change only when it is told)."""
        key = (id(self.search.strategy), self.search.generation)
        if self._criteria_key != key:
            self._criteria_key, self._criteria_cache = key, self.c._criteria(self.search)
        return self._criteria_cache

    # ------------------------------------------------------------------ fill
    def _capacity(self) -> int:
        now = self.executor.now()
        if now - self._capacity_at >= _CAPACITY_EVERY_S:
            self._capacity_at = now
            cap = self.executor.capacity()
            limit = self.config.scheduler.max_concurrent
            slots = max(1, min(cap, limit) if limit is not None else cap)
            popsize = int(self.search.strategy.popsize)
            if slots > 2 * popsize and slots != self.slots:
                log.warning(
                    "%d trials run at once with popsize %d: most results will come from older distributions "
                    "(told as injected solutions), which costs evaluations; set strategy.popsize near %d",
                    slots,
                    popsize,
                    slots,
                )
            self.slots = slots
        return self.slots

    def _fill(self) -> None:
        """Start a new candidate in every free slot (one journal commit for all of them)."""
        from .executor import TrialTask

        free = self._capacity() - self.executor.n_active
        picked: list[Candidate] = []
        idx: list[int] = []
        while len(picked) < free and self._may_submit_with(len(picked)):
            if not self.queue.supply:
                self._ask()
            cand = self.queue.supply.pop(0)
            picked.append(cand)
            idx.append((self.local_asks - 1) * int(self.search.strategy.popsize) + cand.row)
        if not picked:
            return
        g = self.search.generation + 1
        ids = self.journal.add_trials(g, idx, [c.x for c in picked], [c.config for c in picked])
        self.c._created_dirs = None  # a campaign that asked is never discarded
        for tid, cand in zip(ids, picked):
            self.ids[tid] = cand
        tasks = [TrialTask(tid, g, i, c.config) for tid, i, c in zip(ids, idx, picked)]
        self.executor.start(tasks, self.listener)
        self._count_running()

    def _may_submit_with(self, extra: int) -> bool:
        """Whether one more candidate may start besides ``extra`` picked ones: below ``max_trials``
        counting told, waiting and running trials, or completing the population of those out."""
        b, popsize = self.config.budget, int(self.search.strategy.popsize)
        outstanding = len(self.queue.done) + self.executor.n_active + extra
        if b.max_generations is not None and outstanding >= (b.max_generations - self.search.generation) * popsize:
            return False  # enough trials out for the generations left: none would be told
        if b.max_trials is None or self.search.n_told + outstanding < b.max_trials:
            return True
        return outstanding % popsize != 0

    def _ask(self) -> None:
        s = self.search
        X = np.asarray(s.strategy.ask(), dtype=float)
        self.queue.refill(X, self.config.space.decode_many(X), s.generation)
        self.local_asks += 1

    # ------------------------------------------------------------------ progress
    def _start_generation(self) -> None:
        from .campaign import _call

        self.listener.inner.generation = self.search.generation + 1
        _call(self.progress, "on_generation_start", self.search.generation + 1, int(self.search.strategy.popsize))

    def _count_waiting(self) -> None:
        done = [v for _, v in self.queue.done]
        self.counts["done"] = sum(v is not None for v in done)
        self.counts["failed"] = sum(v is None for v in done)

    def _count_running(self) -> None:
        """Progress counts after a submission: every active trial counts as running."""
        self.counts["running"] = self.executor.n_active
        self.counts["pending"] = 0
