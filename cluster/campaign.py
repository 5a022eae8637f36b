"""A tuning campaign: ask -> decode -> run on Ray -> tell, every transition journaled; exact resume.

The loop, one generation ``g`` (numbered from 1) at a time, each step a method of :class:`Campaign`::

    decide: budget stop? strategy criteria?   # _decide: stop, or restart the strategy (see below)
    open:   X = strategy.ask()                 # _ask_generation (or _reopen_generation on resume)
            journal: generation g and its popsize trials as 'pending'      (one commit)
    evaluate: run the trials on Ray            # _evaluate: each 'running' -> 'done' | 'failed' (a commit each)
    tell:   f = objectives, failed ones penalized (cluster.penalty)
            strategy.tell(X, f)
            journal: told_at, sigma, mean, best so far, strategy state     (one commit)
    every trial of g failed?  -> the campaign ends 'failed', naming each failure reason and its count

Resume (:meth:`Campaign.resume`) rebuilds the strategy from the state stored after the last
tell, asks again (the state includes the RNG, so the same candidates come back) but tells the
``X`` stored in the journal, reuses every finished trial of the open generation and re-runs only
those that are ``pending``, ``running`` or ``cancelled`` (and ``failed`` ones if the campaign had
failed), with the same vectors.  For a deterministic objective a killed-and-resumed campaign
therefore ends with exactly the result of an uninterrupted one.

Budget (``budget`` section; checked between generations, a generation is never cut short):
``max_trials`` stops once the trials told reach it (like pycma's ``maxfevals``, the last
generation may pass it by up to ``popsize - 1``), ``max_generations`` once that many tells are
done, ``ftarget`` once the best objective is ``<= ftarget``, ``max_time_s`` once the driver's
wall-clock time summed over all runs of the campaign reaches it.

The strategy's own termination criteria (``strategy.stop()``: ``tolfun``, ``tolflatfitness``, ...)
do not end a campaign before its budget: the strategy is restarted IPOP-style from its mean with a
fresh ``sigma0`` and twice the population (:func:`cluster.continuation.restart_after_convergence`,
capped by the trials left under ``max_trials``).  The restart is a pure function of the stopped
state, ``strategy.seed`` and the trials told, so a resumed campaign restarts identically; each
restart is journaled (``meta`` key ``restart.<generation>``, see :func:`restarts`), logged, and
reported to the progress object (``on_restart``).  ``strategy.stop_on_convergence: true`` (and
every journal written by esopt 0.1.0) stops instead, with the criteria in ``result.stop``.

One driver at a time: the campaign directory is locked (:mod:`cluster.lock`: ``campaign.lock``
held for the life of the driver, its pid in ``campaign.lock.pid``); a lock left by a dead driver
is free again.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import CampaignConfig, ConfigError, parse_config, require_stop, upgrade_stored
from .configmodel import check_address
from .lock import LOCK_NAME, PID_NAME, CampaignLock, CampaignLocked
from .objective import Objective, make_objective
from .penalty import penalize
from .status import CampaignStatus, TrialStatus, failure_reason
from .store import DB_NAME, Journal, JournalError, check_config_match

__all__ = ["Campaign", "CampaignLocked", "CampaignResult", "LOCK_NAME", "restarts"]

log = logging.getLogger(__name__)

_DONE, _FAILED, _STOPPED = TrialStatus.DONE.value, TrialStatus.FAILED.value, TrialStatus.STOPPED.value
_RERUN = {TrialStatus.PENDING.value, TrialStatus.RUNNING.value, TrialStatus.CANCELLED.value}
_MAX_REASONS = 5  # distinct failure reasons named in an all-failed message


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
        Trials that finished (``done``, ``failed`` or, with ``fidelity``, ``stopped``).
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


@dataclass
class _Search:
    """Evolving state of the driver loop: the strategy and what has been told to it."""

    strategy: Any
    generation: int  # last generation told (0: none)
    n_told: int  # trials told so far (all generations)
    best: float | None  # best objective among told, done trials
    open_gen: tuple[int, np.ndarray, list] | None = None  # (g, X, rows) of an asked, untold generation


@dataclass
class _Batch:
    """One generation to evaluate: its number, candidates ``X`` (popsize, d), tasks and counts."""

    generation: int
    X: np.ndarray
    tasks: list
    counts: dict[str, int]


class _Clock:
    """The campaign's elapsed time: ``base`` seconds of earlier runs plus this run's time on
    ``now`` (wall-clock seconds; a simulated cluster's virtual clock, :meth:`use`)."""

    def __init__(self, base: float | None):
        self.base, self.now = float(base or 0.0), time.time
        self.t0 = self.now()

    def use(self, now) -> None:
        """Count this run's time on the clock ``now`` (a callable returning seconds) from here on."""
        self.base, self.now = self(), now
        self.t0 = now()

    def __call__(self) -> float:
        return self.base + self.now() - self.t0


def _call(progress: Any, name: str, *args: Any) -> None:
    fn = getattr(progress, name, None) if progress is not None else None
    if fn is not None:
        fn(*args)


class _Listener:
    """Journals every executor transition at once and forwards it to the progress object."""

    def __init__(
        self, journal: Journal, progress: Any, generation: int, counts: dict[str, int], now=time.time, fidelity=None
    ):
        self.journal, self.progress, self.generation, self.counts = journal, progress, generation, counts
        self.now = now  # the executor's clock (virtual in a simulated cluster)
        self.fidelity = fidelity  # cluster.fidelitydriver.FidelityTracker, or None

    def submitted(self, tasks, errors) -> None:
        if self.fidelity is not None:
            for t, err in zip(tasks, errors):
                if err is not None:  # a retry restarts from step 0
                    self.fidelity.prepare_rerun(t)
        self.journal.mark_submitted([t.trial_id for t in tasks], errors=errors, now=self.now())
        for err in errors:
            if err is None:  # a retry (err set) was counted as running already
                self.counts["pending"] -= 1
                self.counts["running"] += 1

    def started(self, task, node_id, worker_id, started_at) -> None:
        self.journal.mark_started(task.trial_id, node_id=node_id, worker_id=worker_id, started_at=started_at)
        _call(self.progress, "on_trial_started", self.generation, task.trial_id)

    def started_many(self, events) -> None:
        """Several starts at once, ``(task, node_id, worker_id, started_at)`` each, in one commit."""
        self.journal.mark_started_many([(t.trial_id, n, w, at) for t, n, w, at in events])
        for t, *_ in events:
            _call(self.progress, "on_trial_started", self.generation, t.trial_id)

    def reported(self, task, step, value, at) -> bool:
        """A report of a multi-fidelity trial: journaled, then decided (False: stop it)."""
        return self.fidelity.reported(task, step, value, self.now() if at is None else at)

    def ignored_stop(self, task):
        """The outcome of a stopped trial that kept on training and was cancelled."""
        return self.fidelity.ignored_stop(task)

    def convert(self, outcome):
        """The outcome as journaled: ``stopped`` after a fidelity stop (see FidelityTracker.outcome)."""
        return outcome if self.fidelity is None else self.fidelity.outcome(outcome)

    def finished(self, outcome, finish_seq: int | None = None) -> None:
        outcome = self.convert(outcome)
        self.journal.finish_trial(
            outcome.task.trial_id,
            status=str(outcome.status),
            objective=outcome.objective,
            result=outcome.result,
            error=outcome.error,
            node_id=outcome.node_id,
            worker_id=outcome.worker_id,
            finished_at=outcome.finished_at,
            finish_seq=finish_seq,
        )
        self.counts["running"] -= 1
        key = {_DONE: "done", _FAILED: "failed", _STOPPED: "done"}.get(str(outcome.status), "pending")
        self.counts[key] += 1
        if self.progress is not None and hasattr(self.progress, "on_trial_finished"):
            self.progress.on_trial_finished(
                self.generation, self.journal.trial(outcome.task.trial_id), dict(self.counts)
            )


def restarts(journal: Journal) -> list[dict[str, Any]]:
    """The restarts journaled by a campaign, in order: dicts with ``after_generation`` (the last
    generation of the stopped run), ``stop`` (the criteria that fired), ``popsize`` (of the new
    run), ``seed``, ``n_told`` and ``start`` (``"mean"``)."""
    return journal.restarts()


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
        If ``config`` is not a ``CampaignConfig``, or ``address`` not a string or None.
    ValueError
        If ``address`` is an empty string (leave it None to start a local instance).
    FileExistsError
        If the directory already holds a campaign journal.
    ConfigError
        If the objective cannot be imported, the strategy rejects its options, or nothing would
        stop the campaign (no budget and ``stop_on_convergence`` false, :func:`cluster.config.require_stop`).
    CampaignLocked
        If another driver holds the directory.

    The directory stays locked until :meth:`run` returns (or :meth:`close`).  If :meth:`run`
    then finds that no Ray node can provide ``resources`` (a ``ConfigError``), what this
    constructor wrote is removed again, and so is the directory if it created it.
    """

    def __init__(self, config: CampaignConfig, directory: str | os.PathLike, *, address: str | None = None):
        if not isinstance(config, CampaignConfig):
            raise TypeError(f"config must be a CampaignConfig (see cluster.load_config), got {type(config).__name__}")
        check_address(address)
        directory = Path(directory)
        if (directory / DB_NAME).exists():
            raise FileExistsError(
                f"{directory} already holds a campaign journal; continue it with "
                f"`esopt resume {directory}` (or cluster.Campaign.resume({str(directory)!r}).run() in Python), "
                "or choose another directory"
            )
        require_stop(config)
        objective = make_objective(config)
        self._new_strategy_of(config)  # strategy options checked before anything is written
        created = [p for p in (directory, *directory.parents) if not p.exists()]
        directory.mkdir(parents=True, exist_ok=True)
        lock = CampaignLock(directory)
        try:
            journal = Journal.create(directory, name=config.name, config=config.raw, driver_pid=os.getpid())
        except BaseException:
            lock.release()
            raise
        self._setup(config, directory, journal, lock, address, objective)
        self._created_dirs = created  # removed again if the first run refuses the resources

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
        TypeError, ValueError
            A bad ``address`` (as for the constructor).
        """
        check_address(address)
        directory = Path(directory)
        if not (directory / DB_NAME).exists():
            raise JournalError(f"no campaign journal in {directory} (expected {directory / DB_NAME})")
        # everything that can refuse the campaign is checked before the lock or a writable
        # connection touches the directory
        stored_raw = Journal._validate(directory / DB_NAME)
        if config is not None:
            check_config_match(stored_raw, config.raw, directory / DB_NAME)
        # keys added since it was written: legacy values; a trials space is not checked against the hyperparameters'
        # ranges again (a journal written before that check resumes as it ran, its out-of-range trials failing)
        stored = parse_config(upgrade_stored(stored_raw), check_values=False)
        objective = make_objective(stored)
        lock = CampaignLock(directory)
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
        lock: CampaignLock,
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
        self.executor_factory = None  # callable(campaign) -> executor without Ray (cluster.simulate)
        self._fidelity = None  # cluster.fidelitydriver.FidelityTracker while a multi-fidelity run runs
        self._created_dirs: list[Path] | None = None  # set by __init__: the campaign is new
        self._refused = False  # set when a run finds that no Ray node can provide ``resources``

    # ------------------------------------------------------------------ strategy
    @staticmethod
    def _new_strategy_of(config: CampaignConfig, *, x0=None, popsize: int | None = None, seed: int | None = None):
        """The config's strategy; ``x0`` ((d,), the space's coordinates: the unit cube, or with the
        mixed strategy also integer and category-index coordinates, :mod:`cluster.space`),
        ``popsize`` and ``seed`` override the config's (a restart).  With a mixed space the
        strategy gets ``integers``, ``categories`` and ``stds`` from it
        (:meth:`cluster.space.Space.strategy_options`), and a restart's ``x0`` is clipped
        into the space's bounds (an integer coordinate's mean may drift past them).  Raises
        ConfigError if the strategy rejects its settings."""
        import esopt

        s, space = config.strategy, config.space
        opts = dict(s.options)
        if space.mixed:
            opts.update(space.strategy_options())
            if x0 is not None:
                x0 = np.clip(np.asarray(x0, dtype=float), *space.bounds)
        if s.restarts is not None:
            opts.setdefault("max_restarts", s.max_restarts)
        try:
            return esopt.build(
                s.name,
                space.x0 if x0 is None else x0,
                s.sigma0,
                restarts=s.restarts,
                popsize=s.popsize if popsize is None else popsize,
                seed=s.seed if seed is None else seed,
                bounds=space.bounds,
                options=opts,
                surrogate=s.surrogate,
            )
        except (TypeError, ValueError) as e:
            raise ConfigError("strategy", f"{s.name!r} rejects the strategy settings: {e}") from e

    def _load_strategy(self) -> tuple[Any, int]:
        """The strategy after the last tell (new if none) and that generation's number."""
        import esopt

        last_g, state = self.journal.last_state()
        if state is None:
            return self._new_strategy_of(self.config), last_g
        try:
            d = esopt.read_state(state)
            return esopt.strategy_class(str(d["class"])).from_state_dict(d), last_g
        except (KeyError, ValueError, TypeError) as e:
            raise JournalError(
                f"{self.journal.path}: the strategy state of generation {last_g} cannot be loaded ({e})"
            ) from e

    @property
    def _async(self) -> bool:
        """``scheduler.mode == "async"`` (journals written before that key existed: sync)."""
        return self.config.scheduler.mode == "async"

    def _restore_async(self) -> _Search:
        """The search of an asynchronous journal: the strategy after the last tell, the trials told
        (``told_generation`` set) and the best of every done trial, told or not."""
        from .asyncdriver import told_count

        strategy, last_g = self._load_strategy()
        rows = self.journal.trials()
        done_f = [r.objective for r in rows if r.status == _DONE and r.objective is not None]
        return _Search(strategy, last_g, told_count(rows), min(done_f) if done_f else None)

    def _restore(self) -> _Search:
        """The search as the journal left it: strategy, what was told, the open generation."""
        if self._async:
            return self._restore_async()
        strategy, last_g = self._load_strategy()
        told = [r for r in self.journal.trials() if r["generation"] <= last_g]
        done_f = [r["objective"] for r in told if r["status"] == _DONE and r["objective"] is not None]
        search = _Search(strategy, last_g, len(told), min(done_f) if done_f else None)
        open_gens = [g for g in self.journal.generations() if g["told_at"] is None]
        if not open_gens:
            return search
        g = open_gens[0]["generation"]
        rows = self.journal.trials(g)
        if g != last_g + 1 or len(open_gens) > 1 or len(rows) != open_gens[0]["popsize"]:
            raise JournalError(
                f"{self.journal.path}: generation {g} is open but the journal is inconsistent "
                f"(last told {last_g}, {len(rows)} trials for popsize {open_gens[0]['popsize']})"
            )
        criteria = self._criteria(search)
        if criteria and not self._stops_on_convergence:  # the driver restarted before asking g
            self._restart(search, criteria, progress=None)
        X = np.array([r["x"] for r in rows], dtype=float)
        X_again = search.strategy.ask()  # a pending ask; the RNG state makes it equal to the stored X
        if X_again.shape != X.shape:
            raise JournalError(
                f"{self.journal.path}: generation {g} has {X.shape} candidates but the restored "
                f"strategy asks {X_again.shape}"
            )
        search.open_gen = (g, X, rows)
        return search

    # ------------------------------------------------------------------ budget, criteria, restarts
    @property
    def _stops_on_convergence(self) -> bool:
        return bool(getattr(self.config.strategy, "stop_on_convergence", False))

    def _budget_stop(self, search: _Search, elapsed: float) -> dict:
        b = self.config.budget
        stop: dict[str, Any] = {}
        if b.max_trials is not None and search.n_told >= b.max_trials:
            stop["max_trials"] = b.max_trials
        if b.max_generations is not None and search.generation >= b.max_generations:
            stop["max_generations"] = b.max_generations
        if b.ftarget is not None and search.best is not None and search.best <= b.ftarget:
            stop["ftarget"] = b.ftarget
        if b.max_time_s is not None and elapsed >= b.max_time_s:
            stop["max_time_s"] = b.max_time_s
        cap = getattr(b, "max_resource", None)
        if cap is not None and self._fidelity is not None and self._fidelity.resource_used >= cap:
            stop["max_resource"] = cap
        return stop

    @staticmethod
    def _criteria(search: _Search) -> dict:
        """The strategy's termination criteria that fired (none before the first tell)."""
        return dict(search.strategy.stop()) if search.generation > 0 else {}

    def _decide(self, search: _Search, elapsed: float, progress: Any) -> dict:
        """Between generations: the stop dict if the campaign ends here, else ``{}`` (after
        restarting the strategy if its own criteria fired and the budget is not spent)."""
        budget, criteria = self._budget_stop(search, elapsed), self._criteria(search)
        if budget or (criteria and self._stops_on_convergence):
            return {**budget, **criteria}
        if criteria:
            self._restart(search, criteria, progress)
        return {}

    def _restart(self, search: _Search, criteria: dict, progress: Any) -> None:
        """Replace the stopped strategy by an IPOP-style restart; journal, log and report it."""
        from .continuation import describe_stop, restart_after_convergence, restart_seed

        b, seed = self.config.budget, int(self.config.strategy.seed or 0)
        left = None if b.max_trials is None else max(2, b.max_trials - search.n_told)

        def build(x0, popsize, new_seed):
            return self._new_strategy_of(self.config, x0=x0, popsize=popsize, seed=new_seed)

        earlier = sum(1 for r in self.journal.restarts() if r["after_generation"] < search.generation)
        search.strategy = restart_after_convergence(
            search.strategy, build, seed=seed, n_told=search.n_told, max_popsize=left, n_restarts=earlier
        )
        record = {
            "after_generation": search.generation,
            "stop": {k: _plain(v) for k, v in criteria.items()},
            "popsize": int(search.strategy.popsize),
            "seed": restart_seed(seed, search.n_told),
            "n_told": search.n_told,
            "start": "mean",
        }
        self.journal.add_restart(search.generation, record)  # idempotent on resume
        log.info(
            "generation %d: strategy criteria fired (%s); restarted from the mean with sigma0 and popsize %d",
            search.generation,
            describe_stop(criteria),
            record["popsize"],
        )
        _call(progress, "on_restart", search.generation, dict(criteria), record["popsize"])

    # ------------------------------------------------------------------ run
    def run(self, progress: Any = None) -> CampaignResult:
        """Run (or continue) the campaign until the budget stops it (or it fails).

        ``progress`` is any object with some of ``on_generation_start(generation, popsize)``,
        ``on_trial_finished(generation, row, counts)`` (``counts``: done/running/failed/pending
        of the generation), ``on_generation_end(generation, best_objective)`` and
        ``on_restart(generation, stop, popsize)`` (the strategy's criteria ``stop`` fired after
        ``generation`` and it was restarted with ``popsize``).

        Ctrl-C (``KeyboardInterrupt``) cancels the running trials, journals them ``cancelled``,
        sets the campaign ``interrupted``, shuts an owned Ray instance down and returns a result
        with status ``"interrupted"``; while ``run`` executes in the main thread, SIGTERM does the
        same (the previous SIGTERM handler is restored afterwards).  Other exceptions mark the
        campaign ``failed`` (message = the error) and propagate.  A generation in which every
        trial failed, and trial failures under ``on_error: abort``, end it ``failed``; resumed with
        its budget spent after such a generation, it stays ``failed`` and nothing is written.

        Raises
        ------
        ConfigError
            ``resources.*``: no node of the Ray cluster this campaign started can run one trial;
            for a campaign created by this object nothing is left in its directory.
        ConnectionError
            The Ray cluster cannot be reached, or it requires a token this driver lacks
            (:mod:`cluster.rayauth`); a new campaign is removed again in the same way.
        """
        with _sigterm_as_interrupt():
            return self._run(progress)

    def _run(self, progress: Any) -> CampaignResult:
        if not self._lock.held:
            self._lock = CampaignLock(self.directory)
        info = self.journal.campaign_info()
        if info["status"] == CampaignStatus.DONE:
            self._lock.release()
            return self._result(CampaignStatus.DONE.value, info["message"] or "done", info["stop"] or {})
        clock = _Clock(info["elapsed_s"])
        try:
            self._fidelity = self._fidelity_tracker()
            search = self._restore()  # JournalError here leaves the file untouched
        except BaseException:
            self._lock.release()
            raise
        ray_was_up = _ray_initialized()
        session = executor = None
        try:
            stop = {} if search.open_gen is not None else self._decide(search, clock(), progress)
            if stop and info["status"] == CampaignStatus.FAILED and self._last_tell_failed(search):
                # it ended failed at its last generation and nothing is left to run: it stays failed
                return self._result(CampaignStatus.FAILED.value, info["message"] or "failed", {})
            if stop:
                return self._finish(stop, clock())
            if self.executor_factory is None:
                session = self._connect()
                _reclaim_sigterm()  # ray.init installed its own handler over ours
            self.journal.set_campaign(status=CampaignStatus.RUNNING.value, message=None, driver_pid=os.getpid())
            executor = self.executor = self._executor()
            clock.use(executor.now)
            return self._loop(search, executor, session, progress, clock, info["status"] == CampaignStatus.FAILED)
        except KeyboardInterrupt:
            return self._interrupted(executor, clock())
        except BaseException as e:
            self._record_error(executor, e, clock())
            raise
        finally:
            _disconnect(session, ray_was_up)
            self._lock.release()
            self._discard_if_refused()

    def _fidelity_tracker(self):
        """ASHA with its rungs rebuilt from the journal, or None without a ``fidelity`` section."""
        fidelity = getattr(self.config, "fidelity", None)
        if fidelity is None:
            return None
        from .fidelitydriver import FidelityTracker

        return FidelityTracker(self.journal, fidelity)

    def _connect(self):
        """Connect to Ray (or start it) and check that some node can run a trial.

        Raises ConfigError (``resources``) if no node of an instance this campaign started can
        (a joined cluster only warns: its autoscaler may add such nodes), ConnectionError if the
        cluster cannot be reached; a new campaign is then discarded (:meth:`_discard_if_refused`)."""
        from . import raylocal
        from .executor import check_feasible

        try:
            session = raylocal.connect(
                self.directory,
                address=self.address,
                num_cpus=self.config.ray.num_cpus,
                num_gpus=self.config.ray.num_gpus,
                runtime_env=self.objective.runtime_env(),  # the config folder's modules, for every node
                trial_cpus=self.config.resources.num_cpus,
            )
        except ConnectionError:
            self._refused = True  # a new campaign that could not reach Ray leaves nothing behind
            raise
        try:
            check_feasible(self.config.resources, strict=session.owned)
        except ValueError as e:
            session.shutdown()
            self._refused = True
            raise ConfigError("resources", str(e)) from e
        return session

    def _all_failed(self, search: _Search, rows: list) -> bool:
        """True when the trials just told (``rows``, generation ``search.generation``) all failed,
        so the strategy learnt nothing: the campaign ends ``failed``.  With a surrogate a generation
        is one round of 1..popsize trials, so the last ``popsize`` trials told (this round and the
        rounds before it) must all have failed."""
        if not rows or not all(r["status"] == _FAILED for r in rows):
            return False
        if self.config.strategy.surrogate is None:
            return True
        seen, g = len(rows), search.generation - 1
        while seen < int(search.strategy.popsize) and g >= 1:
            earlier = self.journal.trials(g)
            if not all(r["status"] == _FAILED for r in earlier):
                return False
            seen, g = seen + len(earlier), g - 1
        return seen >= int(search.strategy.popsize)

    def _last_tell_failed(self, search: _Search) -> bool:
        """True when every trial told in the last tell (generation ``search.generation``) failed.

        Such a campaign ended ``failed`` there (:meth:`_all_failed_message`); a resume that finds
        its budget spent leaves it so (status, message and exit code) instead of calling it done.
        A campaign that failed for another reason (a driver error after a good tell) is finished
        as ``done``.  Sync: the trials of that generation; async: those whose ``told_generation``
        it is.
        """
        g = search.generation
        if self._async:  # told in completion order: any asked generation may hold them
            rows = [r for r in self.journal.trials() if r.told_generation == g]
        else:
            rows = self.journal.trials(g)
        return bool(rows) and all(r.status == _FAILED for r in rows)

    def _executor(self):
        if self.executor_factory is not None:
            return self.executor_factory(self)
        from .executor import RayExecutor

        return RayExecutor(
            self.objective,
            self.config.resources,
            self.config.failures,
            max_concurrent=self.config.scheduler.max_concurrent,
            reporting=self._fidelity is not None,
            decision_steps=() if self._fidelity is None else self._fidelity.asha.rungs[:-1],
        )

    def _loop(self, search: _Search, executor, session, progress: Any, clock: _Clock, rerun_failed: bool):
        if self._async:
            from .asyncdriver import AsyncLoop

            result = AsyncLoop(self, search, executor, clock, progress, rerun_failed).run()
            if session is not None:
                session.refresh_record()
            return result
        first = search.generation + 1
        while True:
            if search.open_gen is None:
                batch = self._ask_generation(search, executor.now())
            else:
                batch = self._reopen_generation(search, rerun_failed)
            _call(progress, "on_generation_start", batch.generation, len(batch.X))
            listener = _Listener(
                self.journal, progress, batch.generation, batch.counts, now=executor.now, fidelity=self._fidelity
            )
            abort = executor.run(batch.tasks, listener)
            if abort is not None:
                return self._failed(abort, clock(), executor)
            rows = self._tell(search, batch, clock(), executor.now())
            _call(progress, "on_generation_end", batch.generation, search.best)
            if batch.generation == first and session is not None:
                session.refresh_record()
            if self._all_failed(search, rows):
                return self._failed(self._all_failed_message(batch.generation, rows), clock(), executor)
            stop = self._decide(search, clock(), progress)
            if stop:
                return self._finish(stop, clock())

    def _ask_generation(self, search: _Search, now: float) -> _Batch:
        """Ask the next generation and journal it (with its trials ``pending``) in one commit,
        stamped ``now`` on the executor's clock (virtual in a simulation)."""
        from .executor import TrialTask

        g = search.generation + 1
        X = search.strategy.ask()
        params = self.config.space.decode_many(X)
        ids = self.journal.add_generation(g, X, params, asked_at=now)
        tasks = [TrialTask(i, g, k, p) for k, (i, p) in enumerate(zip(ids, params))]
        self._created_dirs = None  # a campaign that asked is never discarded
        return _Batch(g, X, tasks, {"done": 0, "running": 0, "failed": 0, "pending": len(tasks)})

    def _reopen_generation(self, search: _Search, rerun_failed: bool) -> _Batch:
        """The open generation of a resumed campaign: re-run what did not finish (and the failed
        trials if the campaign had failed), keep the rest."""
        from .executor import TrialTask

        g, X, rows = search.open_gen
        search.open_gen = None
        rerun = _RERUN | ({_FAILED} if rerun_failed else set())
        tasks = [
            TrialTask(r["id"], g, r["idx"], r["params"], attempts=r["attempts"] or 0)
            for r in rows
            if r["status"] in rerun
        ]
        if self._fidelity is not None:
            for t in tasks:
                self._fidelity.prepare_rerun(t)
        counts = {
            "done": sum(r["status"] == _DONE for r in rows),
            "failed": sum(r["status"] == _FAILED and _FAILED not in rerun for r in rows),
            "running": 0,
            "pending": len(tasks),
        }
        return _Batch(g, X, tasks, counts)

    def _tell(self, search: _Search, batch: _Batch, elapsed: float, now: float) -> list:
        """Tell the generation's objectives (failed ones penalized) and journal it, stamped
        ``now`` on the executor's clock; its rows."""
        rows = self.journal.trials(batch.generation)
        f = np.array(
            [r["objective"] if r["status"] == _DONE and r["objective"] is not None else np.nan for r in rows],
            dtype=float,
        )
        failed = np.array([r["status"] not in (_DONE, _STOPPED) for r in rows])
        told = f
        if self._fidelity is not None:  # (highest rung reached, value there), lexicographic
            told = self._fidelity.fitness(
                [r.id for r in rows], [None if x else r.objective for r, x in zip(rows, failed)]
            )
        search.strategy.tell(batch.X, penalize(told, failed))
        good = f[~failed]
        if good.size:
            search.best = float(good.min()) if search.best is None else min(search.best, float(good.min()))
        search.n_told += len(rows)
        search.generation = batch.generation
        res = search.strategy.result
        self.journal.tell(
            batch.generation,
            sigma=float(res.sigma),
            mean=np.asarray(res.mean, dtype=float),
            best_objective=search.best,
            state=_state_bytes(search.strategy),
            elapsed_s=elapsed,
            told_at=now,
        )
        return rows

    def _all_failed_message(self, generation: int, rows: list, *, by_journal: bool = True) -> str:
        """``"8 of 8 trials of generation 1 failed: ValueError: ... (8 trials)"``, each distinct
        reason with its count, most frequent first (counted over ``rows``, or with ``by_journal``
        over the journal's trials of ``generation``)."""
        counts_of = getattr(self.journal, "failure_counts", None) if by_journal else None
        if counts_of is not None:
            counts = Counter(counts_of(generation))
        else:
            counts = Counter(failure_reason(r["error"]) for r in rows if r["status"] == _FAILED)
        ranked = counts.most_common()
        parts = [f"{reason} ({n} trial{'s' if n != 1 else ''})" for reason, n in ranked[:_MAX_REASONS]]
        if len(ranked) > _MAX_REASONS:
            parts.append(f"and {len(ranked) - _MAX_REASONS} more reasons")
        head = f"{len(rows)} of {len(rows)} trials of generation {generation} failed: "
        return head + "; ".join(parts) + f" (details: esopt status {self.directory})"

    # ------------------------------------------------------------------ endings
    def _finish(self, stop: dict, elapsed: float) -> CampaignResult:
        message = "stopped by " + ", ".join(f"{k}={_plain(v)}" for k, v in stop.items())
        done = CampaignStatus.DONE.value
        self.journal.set_campaign(status=done, message=message, elapsed_s=elapsed, stop=stop)
        return self._result(done, message, stop)

    def _cancel_out(self, executor, reason: str) -> None:
        """Cancel the trials still out on ``executor`` (if any) and journal every ``running`` trial
        ``cancelled`` with ``reason``, stamped on the executor's clock (virtual in a simulation;
        Unix seconds without an executor)."""
        if executor is not None:
            executor.cancel_all()
        self.journal.cancel_running(reason=reason, at=None if executor is None else executor.now())

    def _failed(self, message: str, elapsed: float, executor=None) -> CampaignResult:
        # trials still out (async: a failed population with others running) are cancelled, as on Ctrl-C
        self._cancel_out(executor, "cancelled: campaign failed")
        failed = CampaignStatus.FAILED.value
        self.journal.set_campaign(status=failed, message=message, elapsed_s=elapsed)
        return self._result(failed, message, {})

    def _interrupted(self, executor, elapsed: float) -> CampaignResult:
        message = "interrupted by Ctrl-C (KeyboardInterrupt)"
        self._cancel_out(executor, "cancelled: interrupted (Ctrl-C)")
        self.journal.set_campaign(status=CampaignStatus.INTERRUPTED.value, message=message, elapsed_s=elapsed)
        return self._result(CampaignStatus.INTERRUPTED.value, message, {})

    def _record_error(self, executor, e: BaseException, elapsed: float) -> None:
        """Mark the campaign failed after a driver error (nothing, if it is being discarded)."""
        if self._refusing:
            if executor is not None:
                executor.cancel_all()
            return
        try:
            self._cancel_out(executor, f"cancelled: driver error {type(e).__name__}")
            self.journal.set_campaign(
                status=CampaignStatus.FAILED.value, message=f"{type(e).__name__}: {e}", elapsed_s=elapsed
            )
        except Exception:  # noqa: BLE001 - keep the original error
            pass

    @property
    def _refusing(self) -> bool:
        """A new campaign whose first run was refused (resources, or Ray unreachable): it is discarded."""
        return self._refused and self._created_dirs is not None

    def _discard_if_refused(self) -> None:
        """Remove what :meth:`__init__` wrote (journal, lock files) and the folders it created."""
        if not self._refusing:
            return
        self.journal.close()
        for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", LOCK_NAME, PID_NAME):
            (self.directory / name).unlink(missing_ok=True)
        for d in self._created_dirs or []:  # deepest first; only if empty (never another's files)
            try:
                d.rmdir()
            except OSError:
                break
        self._created_dirs = None

    def _result(self, status: str, message: str, stop: dict) -> CampaignResult:
        info = self.journal.campaign_info()
        best = self.journal.best_trial()
        return CampaignResult(
            status=status,
            message=message,
            best_params=None if best is None else best["params"],
            best_objective=None if best is None else best["objective"],
            best_trial=best,
            n_trials=info["counts"][_DONE] + info["counts"][_FAILED] + info["counts"].get(_STOPPED, 0),
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


def _disconnect(session, ray_was_up: bool) -> None:
    """Shut the run's Ray session down (or a Ray that an interrupted ``ray.init`` left up)."""
    if session is not None:
        session.shutdown()
    elif not ray_was_up and _ray_initialized():  # interrupted inside ray.init()
        import ray

        ray.shutdown()


def _ray_initialized() -> bool:
    import sys

    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _reclaim_sigterm() -> None:
    """Put :func:`_raise_interrupt` back as the SIGTERM handler (main thread only).

    ``ray.init`` (Ray 2.60) installs a handler that exits with status 1 over the one
    :func:`_sigterm_as_interrupt` installed, so without this a SIGTERM (``ray job stop``, a
    Kubernetes pod shutdown) ended a campaign ``failed`` instead of ``interrupted``."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


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


def _plain(v: Any) -> Any:
    """numpy scalars as Python numbers (for messages and JSON)."""
    return v.item() if isinstance(v, np.generic) else v


def _state_bytes(strategy) -> bytes:
    from esopt.checkpoint import state_to_npz_bytes

    return state_to_npz_bytes(strategy.state_dict())
