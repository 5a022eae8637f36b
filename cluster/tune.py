"""Ray Tune adapter: any esopt strategy as a ``ray.tune`` search algorithm.

:class:`ESSearcher` implements Ray Tune's ``Searcher`` contract (``ray/tune/search/searcher.py``
in Ray 2.60: ``suggest``, ``on_trial_complete(trial_id, result, error)``,
``set_search_properties``, ``set_max_concurrency``, ``add_evaluated_point``,
``add_evaluated_trials``, ``save``/``restore``, ``get_state``/``set_state``, the staticmethod
``convert_search_space``) on top of esopt's ask/tell interface::

    generation g:  X = strategy.ask()                     # (popsize, d), the space's coordinates
                   rows 0..k-1 <- known results (evaluated_rewards, add_evaluated_point)
                   suggest() hands out decode(X[i]) for the other rows, one per trial
                   suggest() -> None while results of generation g are missing
                   on_trial_complete() buffers metric values by trial id
                   all popsize values in -> strategy.tell(X, f)   (f minimized)
                   strategy.stop() fired -> restart (IPOP, cluster.continuation) or FINISHED

``mode="max"`` is turned into minimization (``f = -metric``) only at the ``tell`` boundary;
everything stored or reported keeps the metric's own sign.  Trials that errored, or whose last
result lacks the metric, or whose metric is NaN/inf, are told the penalty of
:func:`cluster.penalty.penalize` (worst finite value of the generation + ``max(|worst|, 1)``).

For tuning, the budget (``num_samples``, ``max_trials``) is the stop: when the strategy's own
convergence criteria fire (``tolfun``, ``tolflatfitness``, ``tolx``, ...; e.g. after a flat
generation), the search restarts with :func:`cluster.continuation.restart_after_convergence`
(from the mean, fresh ``sigma0``, population size x2, seed derived from ``(seed, evaluations
told)``) and the restart is logged (logger ``cluster.tune``).  Budget criteria (``maxiter``,
``maxfevals``, ``maxrestarts`` of a restart wrapper) and ``ftarget`` end the search
(``Searcher.FINISHED``), and so does every criterion with ``stop_on_convergence=True``.

Search spaces: a :class:`cluster.space.Space` (``"a/b"`` names give nested configs), or a Tune
``param_space`` dict (possibly nested) converted by :func:`cluster.tunespace.convert_search_space`
(re-exported here with :class:`~cluster.tunespace.TuneSpace`).  Supported Tune domains and their
mapping (the table in :mod:`cluster.tunespace`):

==========================================  ===========================================================
Tune domain                                 what the strategy searches
==========================================  ===========================================================
``uniform``, ``loguniform``                 a unit coordinate (linear / log10 scale)
``quniform``, ``qloguniform``               a unit coordinate; the value rounded to a multiple of ``q``
``randint``                                 cmaes & co.: a unit coordinate, rounded; mixed strategy: an
                                            integer coordinate holding the int (``upper`` excluded)
``qrandint``                                as randint, on the grid index ``k`` (value ``k q``; ``upper``
                                            included for ``q > 1``, as Tune's sampler)
``lograndint``, ``qlograndint``             a unit coordinate on the log10 scale, rounded (``q``: grid index)
``choice``                                  mixed strategy only: a categorical coordinate (index 0..K-1);
                                            the config gets the choice itself
``sample_from``, ``grid_search``, ``randn``  refused: ``ValueError`` naming the parameter
==========================================  ===========================================================

Which strategy: the one named (``strategy=``), or when none is named the mixed strategy
``"catcmawm"`` (:class:`esopt.CatCMAwM`, CatCMA with margin, Hamano et al., GECCO 2024) for a space
with an integer or a ``tune.choice`` domain and ``"cmaes"`` otherwise (the campaigns' rule,
:func:`cluster.configmodel.default_strategy`).  Only the strategies of
:func:`cluster.configmodel.mixed_strategies` search a categorical; naming another one for such a
space is a ``ValueError`` that names those that can.  A named continuous strategy searches integer
domains as rounded unit coordinates (esopt 0.1.0's behaviour).

Trials stopped early by a Tune scheduler (``ASHAScheduler``, ``HyperBandScheduler``): with
``max_t`` (the scheduler's ``max_t``, or ``"auto"``) every tell ranks them lexicographically by
the ``time_attr`` they reached, then by their value there (:mod:`cluster.tunefidelity`,
:func:`cluster.fidelity.lexicographic_fitness`), below every trial that got further, never as
failures; :attr:`ESSearcher.best_result` counts only full-budget trials.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.result import DEFAULT_METRIC
from ray.tune.search import UNDEFINED_METRIC_MODE, UNDEFINED_SEARCH_SPACE, Searcher
from ray.tune.search.variant_generator import parse_spec_vars

import esopt
from esopt.checkpoint import atomic_write_bytes, read_state, state_to_npz_bytes
from esopt.jsonutil import to_jsonable
from esopt.minimize import BUDGET_CRITERIA
from esopt.numtypes import is_int, is_real
from esopt.registry import strategy_class

from .configmodel import mixed_strategies
from .continuation import describe_stop, restart_after_convergence
from .penalty import penalize
from .space import Space
from .tuneasync import AsyncQueue, Candidate
from .tunefidelity import Fidelity, check_fidelity_args
from .tunespace import TuneSpace, as_tune_space, convert_search_space
from .tunestrategy import check_strategy_options as _check_strategy_options
from .tunestrategy import resolve_strategy as _resolve_strategy
from .tunestrategy import same_space as _same_space

__all__ = ["ESSearcher", "TuneSpace", "convert_search_space"]

logger = logging.getLogger(__name__)

_FORMAT = "esopt-tune-searcher"
_FORMAT_VERSION = 2  # 2: + known results, restarts after convergence, a subclass's own attributes
_READABLE_VERSIONS = (1, 2)  # version 1: esopt 0.1.0
_META_KEY = "tune.searcher"  # JSON string with the searcher's own state, stored inside the npz
_X_KEY = "tune.X"  # (popsize, d) candidates of the generation in progress
_EXTRA_KEY = "tune.subclass_attributes"  # pickle (uint8) of a subclass's own attributes, if any
#: Criteria that end the search even without ``stop_on_convergence`` (a budget, or the target).
_FINAL_CRITERIA = BUDGET_CRITERIA | {"ftarget"}
_KNOWN_ID = "esopt-known-{}"  # pseudo trial id of a row holding a known result
_SCHEDULING = ("sync", "async")
_FROM_SPACE = ("x0", "bounds", "integers", "categories", "stds")  # strategy options the searcher sets from the space


def _metric_value(result: Mapping[str, Any] | None, metric: str) -> float | None:
    """The metric of a (possibly nested) result dict as a float, or None if it is missing."""
    if not result:
        return None
    if metric in result:
        v = result[metric]
    else:
        v = result
        for key in metric.split("/"):
            if not isinstance(v, Mapping) or key not in v:
                return None
            v = v[key]
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------
# searcher
# ------------------------------------------------------------------------------------------------
class ESSearcher(Searcher):
    """Ray Tune search algorithm driven by an esopt evolution strategy (generation by generation).

    Parameters
    ----------
    space : cluster.Space, TuneSpace, Tune param_space dict, or None
        The search space.  None: take it from ``tune.Tuner(param_space=...)`` (Tune passes it
        through :meth:`set_search_properties`).  See :meth:`convert_search_space`.  A ``Space``
        parameter named ``"a/b"`` is handed out as ``config["a"]["b"]``.
    strategy : str, optional
        An ``esopt.STRATEGIES`` name (``"cmaes"``, ``"sepcmaes"``, ``"lmmaes"``, ``"canonical"``,
        ``"catcmawm"``).  None (default): ``"catcmawm"`` for a space with an integer or a
        ``tune.choice`` domain, ``"cmaes"`` otherwise (module docstring); see
        :attr:`strategy_name`.
    metric : str, optional
        Key of the trial result to optimize (``TuneConfig(metric=...)`` sets it otherwise).  With
        ``mode`` but no metric anywhere, Ray's default metric ``"_metric"`` is used (as Ray's own
        searchers do; a trainable that returns a number reports it under that key).
    mode : {"min", "max"}, optional
        Direction; ``"max"`` is negated only when values are told to the strategy.
    popsize : int >= 2, optional
        Trials per generation (the strategy's default otherwise, ``4 + floor(3 ln d)`` for CMA-ES).
    seed : int >= 0, optional
        Seed of the strategy's ``numpy.random.Generator``; a restart's seed is derived from it
        and the number of evaluations told (:func:`cluster.continuation.restart_seed`).  None:
        fresh OS entropy, for restarts too.
    sigma0 : float > 0
        Initial step size as a fraction of every parameter's scaled range (unit cube); every
        restart starts afresh with it.
    max_trials : int >= 1, optional
        At most this many suggestions (Tune trials; known results do not count, as they do not
        count in ``num_samples``); then :meth:`suggest` returns ``Searcher.FINISHED``.  A
        generation cut short by it (or by ``num_samples``) is evaluated but never told.
    restarts : {"ipop", "bipop"}, optional
        Wrap the strategy in a restart scheme (``esopt.build(..., restarts=...)``), the mixed
        strategy on a discrete space too (every run gets the space's integers/categories/stds).
        The wrapper then restarts on convergence itself; its ``maxrestarts`` ends the search.
    points_to_evaluate : list of dict, optional
        Configs (nested like the param_space, or flat ``"a/b"`` keys; constants ignored).
        Without ``evaluated_rewards`` they replace the first candidates of the first
        generation(s); they are handed out exactly as given and told to the strategy as injected
        solutions.
    evaluated_rewards : list of float, optional
        Known metric values (own sign, as the trainable reports them) of ``points_to_evaluate``,
        one per point (Ray's convention).  Those points are not run again: they are told to the
        strategy as injected solutions, as :meth:`add_evaluated_point` does.
    stop_on_convergence : bool
        False (default): restart when the strategy's convergence criteria fire, until the
        budget.  True: end the search then (``Searcher.FINISHED``), the behaviour of esopt 0.1.0.
    scheduling : {"sync", "async"}
        ``"sync"`` (default; esopt 0.1.0's behaviour, bit-exact): generation by generation,
        :meth:`suggest` returns None while a generation waits for its results.  ``"async"``:
        no generation barrier (:mod:`cluster.tuneasync`): a config whenever Tune asks while
        budget remains, results told ``popsize`` at a time in completion order, rows sampled
        from an older distribution told as injected solutions (clipped, arXiv 1110.4181), no
        finished trial dropped; ``max_concurrent_trials`` above ``popsize`` keeps every slot
        busy.  (Named ``scheduling`` because ``mode`` is Tune's min/max.)
    max_t : int >= 1, "auto" or None
        Rank trials stopped early by a Tune scheduler (:mod:`cluster.tunefidelity`): the full
        budget in ``time_attr`` units, the scheduler's own ``max_t`` (pass the same number to
        both), or ``"auto"``: the largest ``time_attr`` any completed trial reached so far.  None
        (default): every trial is told its last metric value (right without a scheduler, and when
        trials stop by themselves, e.g. through ``RunConfig(stop=...)`` on reaching a target).
    time_attr : str
        Result key of the progress a scheduler stops on (``ASHAScheduler``'s ``time_attr``,
        default ``"training_iteration"``).
    **strategy_options
        Strategy options, termination thresholds and restart-wrapper options as one flat mapping
        (``esopt.check_options``), e.g. ``tolfun=1e-6`` or ``tolerances={"tolfun": 1e-6}``.
        ``ftarget`` is in the metric's own sign: with ``mode="max"`` the search ends once a
        trial's metric is at or above it (the strategy is told ``-ftarget``).  A ``mode`` that
        Tune passes later (``set_search_properties``) rebuilds the strategy with it before the
        first suggestion; after that, a change of sign with ``ftarget`` set raises ``ValueError``.

    Raises
    ------
    ValueError, TypeError
        Unknown strategy or restart names, ``mode`` not in {min, max}, a non-string metric, bad
        ``popsize``/``seed``/``sigma0``/``max_trials``/``stop_on_convergence``/``max_t``/
        ``time_attr``, unsupported domains or bad choices (naming the parameter), a categorical
        with a strategy that cannot search one, points outside the space (a value not among the
        choices, a non-integer for an integer domain), ``evaluated_rewards`` without points or of
        another length, ``x0``/``bounds``/``integers``/``categories``/``stds`` among the options
        (they come from the space); and whatever the strategy's constructor raises for
        ``strategy_options`` (at once if ``space`` is given, else when Tune passes the space).

    Notes
    -----
    ``Searcher.FINISHED`` is returned once ``max_trials`` suggestions were made, or once the
    strategy's ``stop()`` fired with a budget criterion, ``ftarget`` or (with
    ``stop_on_convergence=True``) any criterion.  ``save``/``restore`` write one pickle-free
    ``.npz`` checkpoint (:mod:`esopt.checkpoint`) holding the strategy's state, the candidates of
    the generation in progress, the trial ids handed out, the results buffered, the known results
    not yet told and the restarts made, so that ``tune.Tuner.restore`` continues the search
    exactly: trials that Tune re-runs keep their trial id and config, and the strategy sees the
    same ``X`` it asked for.  Ray's own ``Searcher`` subclasses restore their whole ``__dict__``;
    so that a subclass of ``ESSearcher`` keeps its own attributes across ``Tuner.restore``, the
    attributes it adds are pickled into the checkpoint as well (only those; ESSearcher's own
    state never is).
    """

    def __init__(
        self,
        space=None,
        strategy: str | None = None,
        *,
        metric: str | None = None,
        mode: str | None = None,
        popsize: int | None = None,
        seed: int | None = None,
        sigma0: float = 0.3,
        max_trials: int | None = None,
        restarts: str | None = None,
        points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
        evaluated_rewards: Sequence[float] | None = None,
        stop_on_convergence: bool = False,
        scheduling: str = "sync",
        max_t: int | str | None = None,
        time_attr: str = "training_iteration",
        **strategy_options,
    ):
        before = set(self.__dict__)  # a subclass's attributes set before this call are its own
        # names of strategy/restarts and every option checked by the registry (nothing built yet)
        flat_options = esopt.registry.flat_options({k: v for k, v in strategy_options.items() if k not in _FROM_SPACE})
        _check_strategy_options(strategy, flat_options, restarts)
        _check_metric_mode(metric, mode)
        if popsize is not None and not _is_int(popsize, 2):
            raise ValueError(f"popsize must be an int >= 2 or None, got {popsize!r}")
        if seed is not None and not _is_int(seed, 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        if not is_real(sigma0) or not (0 < sigma0 < math.inf):
            raise ValueError(f"sigma0 must be a positive finite float (a fraction of each range), got {sigma0!r}")
        if max_trials is not None and not _is_int(max_trials, 1):
            raise ValueError(f"max_trials must be a positive int or None, got {max_trials!r}")
        points, rewards = _check_warm_start(points_to_evaluate, evaluated_rewards, stop_on_convergence)
        if scheduling not in _SCHEDULING:
            raise ValueError(f"scheduling must be 'sync' or 'async', got {scheduling!r}")
        check_fidelity_args(max_t, time_attr)
        reserved = sorted(set(_FROM_SPACE) & set(strategy_options))
        if reserved:
            raise ValueError(
                f"{reserved} come from the space (its coordinates, x0 from Param.init, integer and categorical "
                "coordinates from the domains); do not pass them to ESSearcher"
            )
        super().__init__(metric=metric, mode=mode)
        self._strategy_arg = strategy  # as given; None = chosen from the space (_resolve_strategy)
        self._strategy_name = strategy  # the strategy searched (known once the space is)
        self._fidelity_args = (max_t, time_attr)
        self._restarts = restarts
        self._popsize = None if popsize is None else int(popsize)
        self._seed = None if seed is None else int(seed)
        self._sigma0 = float(sigma0)
        self._max_trials = None if max_trials is None else int(max_trials)
        self._points = points
        self._rewards = rewards
        self._stop_on_convergence = stop_on_convergence
        self._scheduling = scheduling
        self._strategy_options = flat_options
        self._max_concurrent: int | None = None
        self._num_samples: int | None = None  # Tune's num_samples, once set_search_properties told it
        self._tspace: TuneSpace | None = None
        self._strategy = None
        self._reset_search_state()
        self._own_attributes = frozenset(set(self.__dict__) - before) | {"_own_attributes"}
        if space is not None:
            self._setup(as_tune_space(space))

    convert_search_space = staticmethod(convert_search_space)

    # ----- set-up ------------------------------------------------------------------------------
    def _reset_search_state(self) -> None:
        self._X: np.ndarray | None = None  # (popsize, d) candidates of the generation in progress
        self._configs: list[dict[str, Any]] = []  # flat {name: value} per row of _X
        self._next = 0  # rows of _X handed out (or holding known results) so far
        self._ptev_end = 0  # rows _next .. _ptev_end - 1 hold points_to_evaluate not handed out yet
        self._rows: dict[str, int] = {}  # trial id (or _KNOWN_ID) -> row, for this generation
        self._results: dict[str, float | None] = {}  # trial id -> metric (own sign); None = failed
        self._n_suggested = 0
        self._generation = 0  # generations told
        self._pending_points: list[dict[str, Any]] = []  # flat, not yet injected
        self._known: list[tuple[dict[str, Any], float | None]] = []  # (flat point, metric) not yet in a row
        self._n_known = 0  # known results received so far (names their pseudo trial ids)
        self._n_told = 0  # evaluations told to the strategy, over all restarts
        self._restart_log: list[dict[str, Any]] = []  # one entry per restart after convergence
        self._stop: dict = {}
        self._queue = AsyncQueue()  # scheduling="async" only
        self._levels: dict[str, float | None] = {}  # sync: trial id -> level reached (max_t set)
        self._done_levels: list[float | None] = []  # async: level of each entry of _queue.done
        self._fidelity = Fidelity(*self._fidelity_args)

    def _setup(self, tspace: TuneSpace) -> None:
        where = "points_to_evaluate"
        name = _resolve_strategy(self._strategy_arg, tspace)
        tspace = tspace.with_mixed(name in mixed_strategies())
        checked = [tspace.check_point(p, f"{where}[{i}]") for i, p in enumerate(self._points)]
        self._strategy_name = name
        strategy = self._make_strategy(tspace)
        self._tspace, self._strategy = tspace, strategy
        self._reset_search_state()
        if self._rewards is None:
            self._pending_points = checked
        else:
            self._known = [
                (p, _reward(r, f"evaluated_rewards[{i}]")) for i, (p, r) in enumerate(zip(checked, self._rewards))
            ]
            self._n_known = len(self._known)

    def _make_strategy(
        self, tspace: TuneSpace, x0=None, popsize: int | None = None, seed: int | None = None, name: str | None = None
    ):
        # x0, popsize, seed: None = the searcher's own (a restart passes new ones); a mixed space
        # sets the strategy's integers/categories/stds (Space.strategy_options, {} otherwise), and a
        # restart's x0 is clipped into the bounds (an integer coordinate's mean may drift past them),
        # as the campaigns do
        space, options = tspace.space, dict(self._strategy_options)
        options.update(space.strategy_options())
        if options.get("ftarget") is not None and self._mode == "max":  # given in the metric's own sign
            options["ftarget"] = -float(options["ftarget"])
        return esopt.build(
            self._strategy_name if name is None else name,
            space.x0 if x0 is None else np.clip(np.asarray(x0, dtype=float), *space.bounds),
            self._sigma0,
            restarts=self._restarts,
            popsize=self._popsize if popsize is None else popsize,
            seed=self._seed if seed is None else seed,
            bounds=space.bounds,
            options=options,
        )

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        """Take ``metric``, ``mode`` and the search space from ``tune.Tuner`` / ``TuneConfig``.

        Returns False (Tune then raises its own error) if ``config`` holds domains and this
        searcher already has a different space; True otherwise.  The strategy is chosen here when
        none was named and the space arrives with Tune's ``param_space`` (class docstring).
        ``metric``/``mode`` given here override those given to the constructor; a ``mode``
        without any metric selects Ray's default metric ``"_metric"``.  ``spec["num_samples"]``
        caps the population size of restarts to the trials left (Tune calls this only with a
        ``param_space``; otherwise only ``max_trials`` caps it); ``num_samples=-1`` (Tune passes
        ``sys.maxsize``: run until a stopper or ``max_trials`` ends the experiment) caps nothing.

        Raises
        ------
        ValueError
            ``mode`` not in {min, max}, unsupported domains or bad choices in ``config``, a
            categorical with a strategy that cannot search one, ``points_to_evaluate`` outside
            the space; a ``mode`` of the other sign once suggestions were made, when
            ``ftarget`` is set.  Nothing is set up then.
        """
        _check_metric_mode(metric, mode)
        _, domain_vars, grid_vars = parse_spec_vars(dict(config or {}))
        tspace = convert_search_space(config) if domain_vars or grid_vars else None
        if tspace is not None and self._tspace is not None and not _same_space(self._tspace, tspace):
            return False
        flips = bool(mode) and (mode == "max") != (self._mode == "max")
        if flips and self._strategy is not None and self._strategy_options.get("ftarget") is not None:
            if self._n_suggested or self._n_told or self._restart_log:
                raise ValueError(
                    f"mode={mode!r} arrives after the search started with mode={self._mode!r}, and ftarget "
                    "is in the metric's sign: pass mode= to ESSearcher"
                )
            tspace, rebuild = tspace or self._tspace, True  # ftarget in the new sign (nothing asked yet)
        else:
            rebuild = False
        before = (self._metric, self._mode)
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        self._default_metric()
        if tspace is not None:
            if self._tspace is None or rebuild:
                try:
                    self._setup(tspace)
                except Exception:
                    self._metric, self._mode = before
                    raise
            else:
                self._tspace = tspace.with_mixed(self._tspace.space.mixed)  # adopt the constants of the template
        num_samples = spec.get("num_samples")
        if _is_int(num_samples, 1) and num_samples < sys.maxsize:  # num_samples=-1 arrives as sys.maxsize
            self._num_samples = int(num_samples)
        if self._strategy is not None and self._num_samples and self._num_samples % self.popsize:
            logger.warning(
                "num_samples=%d is not a multiple of popsize=%d: the last generation will be "
                "evaluated but never told to the strategy",
                self._num_samples,
                self.popsize,
            )
        return True

    def _default_metric(self) -> None:
        if self._mode and not self._metric:
            self._metric = DEFAULT_METRIC  # Ray's searchers: "if only a mode was passed, use anonymous metric"

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Run at most ``max_concurrent`` trials of a generation at once (``ConcurrencyLimiter``
        and ``TuneConfig(max_concurrent_trials=...)`` call this).  Returns True.

        Raises ``ValueError`` unless ``max_concurrent`` is a positive int.
        """
        if not _is_int(max_concurrent, 1):
            raise ValueError(f"max_concurrent must be a positive int, got {max_concurrent!r}")
        self._max_concurrent = int(max_concurrent)
        return True

    # ----- properties --------------------------------------------------------------------------
    @property
    def strategy(self):
        """The underlying esopt strategy (None until the space is known; a new object after each
        restart).  Read it, do not drive it."""
        return self._strategy

    @property
    def space(self) -> Space | None:
        """The :class:`Space` searched (None until known)."""
        return None if self._tspace is None else self._tspace.space

    @property
    def popsize(self) -> int:
        """Trials per generation of the current run.  Raises ``RuntimeError`` before the space is known."""
        if self._strategy is None:
            raise RuntimeError("popsize is known once the search space is set")
        return int(self._strategy.popsize)

    @property
    def generation(self) -> int:
        """Number of generations told to the strategy so far (over all restarts)."""
        return self._generation

    @property
    def n_told(self) -> int:
        """Evaluations told to the strategy so far (trials and known results, over all restarts)."""
        return self._n_told

    @property
    def pending_trial_ids(self) -> tuple[str, ...]:
        """Trial ids handed out and not yet complete (sync: of the current generation)."""
        if self._scheduling == "async":
            return tuple(self._queue.out)
        return tuple(t for t in self._rows if t not in self._results)

    @property
    def completed_trial_ids(self) -> tuple[str, ...]:
        """Trial ids of the current generation whose results are buffered (not told yet; known
        results included under pseudo ids ``esopt-known-<k>``).  Async: always ``()``, see
        :attr:`n_finished_untold`."""
        return tuple(self._results)

    @property
    def n_finished_untold(self) -> int:
        """Async: finished results (and known ones) waiting for the next tell (< popsize)."""
        return len(self._queue.done)

    @property
    def stop_reason(self) -> dict:
        """The strategy's ``stop()`` that ended the search (``{}`` while running, also after a
        restart; the criteria that caused restarts are in :attr:`restart_history`)."""
        return dict(self._stop)

    @property
    def restart_history(self) -> list[dict[str, Any]]:
        """One dict per restart after convergence: ``generation`` (generations told before it),
        ``n_told``, ``stop`` (the criteria that fired), ``popsize`` and ``seed`` of the new run."""
        return [dict(r) for r in self._restart_log]

    @property
    def strategy_name(self) -> str | None:
        """The registry name of the strategy searched (chosen from the space when none was named;
        None until the space is known)."""
        return self._strategy_name

    @property
    def best_result(self) -> dict[str, Any] | None:
        """The best trial this searcher suggested that reached the full budget, or None.

        ``{"config": nested config, "metric": value (own sign), "trial_id": str, "level": float or
        None}``.  With ``max_t`` set only full-budget trials count (``result[time_attr] >= max_t``;
        with ``max_t="auto"`` those at the largest level seen so far), so a trial stopped early by
        a scheduler is never the best; without ``max_t`` every completed trial counts and
        ``level`` is None.  Failed trials and known results (``evaluated_rewards``) never count.
        """
        b = self._fidelity.best_result()
        if b is None or self._tspace is None:
            return None
        value, config, trial_id, level = b
        return {"config": self._tspace.to_config(config), "metric": value, "trial_id": trial_id, "level": level}

    # ----- ask / tell --------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict | str | None:
        """Next candidate of the current generation as a config dict (own units, constants
        included); None while the generation waits for results or the concurrency limit is
        reached; ``Searcher.FINISHED`` once the search ended (see the class notes) or
        ``max_trials`` is spent.

        Raises
        ------
        RuntimeError
            If no search space or no metric/mode is set (Ray's messages).
        """
        self._check_ready()
        if self._max_trials is not None and self._n_suggested >= self._max_trials:
            return Searcher.FINISHED
        if self._scheduling == "async":
            return self._suggest_async(trial_id)
        while self._X is None:
            if self._stop:
                return Searcher.FINISHED
            self._ask()  # may tell at once a generation made of known results only
        free = self._reissued_row()
        if free is None and self._next >= len(self._configs):
            return None  # whole generation handed out; wait for its results
        if self._max_concurrent is not None and len(self._rows) - len(self._results) >= self._max_concurrent:
            return None
        if free is None:
            row = self._next
            self._next += 1
        else:
            row = free
        self._rows[trial_id] = row
        self._n_suggested += 1
        return self._tspace.to_config(self._configs[row])

    def _reissued_row(self) -> int | None:
        # sync: the first row handed out before and given back by reissue_pending (None: none);
        # rows below _next are all taken unless reissue_pending freed some (the usual case, O(1))
        if len(self._rows) >= self._next:
            return None
        taken = set(self._rows.values())
        return next((r for r in range(self._next) if r not in taken), None)

    def reissue_pending(self) -> tuple[str, ...]:
        """Hand the candidates of the trials still outstanding (suggested, no result yet: see
        :attr:`pending_trial_ids`) out again, to the next :meth:`suggest` calls; returns those
        trial ids, whose results are ignored from now on.

        For a searcher checkpoint continued in a *new* Tune experiment (``searcher.restore(path)``
        then a new ``Tuner(..., search_alg=searcher).fit()``): the trials that were running when
        the checkpoint was written belong to the old experiment and never report to this one, so a
        sync searcher would wait for them forever and an async one would count them against
        ``max_concurrent``.  ``Tuner.restore`` does not need it (Tune resumes those trials under
        their own ids).  The same candidates are evaluated as in an uninterrupted run (sync: the
        same rows of the generation; async: first, until the next tell, which replaces the
        supply); ``max_trials`` counts each once.  Changes nothing when no trial is outstanding.
        """
        ids = self.pending_trial_ids
        if self._scheduling == "async":
            q = self._queue
            q.supply = [q.out.pop(t) for t in ids] + q.supply
        else:
            for t in ids:
                del self._rows[t]
        self._n_suggested -= len(ids)
        return ids

    def _suggest_async(self, trial_id: str) -> dict | str | None:
        self._flush_known()
        self._tell_async()  # a population of known results (evaluated_rewards) is told before any suggestion
        if self._stop:
            return Searcher.FINISHED
        q = self._queue
        if self._max_concurrent is not None and len(q.out) >= self._max_concurrent:
            return None
        if self._pending_points:
            point = self._pending_points.pop(0)  # handed out exactly as given, told as injected
            cand = Candidate(self._encode(point), point, self._generation)
        else:
            if not q.supply:
                self._ask_async()
            cand = q.supply.pop(0)
        q.out[trial_id] = cand
        self._n_suggested += 1
        return self._tspace.to_config(cand.config)

    def _encode(self, point: dict[str, Any]) -> list[float]:
        return [float(t) for t in self._tspace.encode(point)]

    def _ask_async(self) -> None:
        X = np.array(self._strategy.ask(), dtype=float)
        self._queue.refill(X, [self._tspace.decode(x) for x in X], self._generation)

    def _flush_known(self) -> None:
        # known results (evaluated_rewards, add_evaluated_point) join the finished ones
        while self._known:
            point, value = self._known.pop(0)
            self._queue.done.append((Candidate(self._encode(point), point, self._generation), value))
            self._done_levels.append(None)  # a known result counts as full budget

    def _complete_async(self, trial_id: str, value: float | None, level: float | None) -> None:
        cand = self._queue.out.pop(trial_id, None)
        if cand is None:
            logger.debug("ESSearcher: ignoring result of trial %s (not handed out)", trial_id)
            return
        self._queue.done.append((cand, value))
        self._done_levels.append(level)
        self._fidelity.record(level, value, cand.config, trial_id, self._mode)
        self._tell_async()

    def _tell_async(self) -> None:
        q = self._queue
        while not self._stop and len(q.done) >= self.popsize:
            if q.pending_ask is None:
                self._ask_async()  # the tell needs a pending ask; its rows become the supply again
            n = self.popsize
            X, values, rows = q.population_rows(n)
            levels: list[float | None] = [None] * n
            for i, row in enumerate(rows):
                levels[row] = self._done_levels[i]
            del self._done_levels[:n]
            self._strategy.tell(X, self._fitness(values, levels))
            self._after_tell(n)

    def _check_ready(self) -> None:
        if self._tspace is None:
            raise RuntimeError(UNDEFINED_SEARCH_SPACE.format(cls=type(self).__name__, space="space"))
        self._default_metric()
        if not self._metric or not self._mode:
            raise RuntimeError(
                UNDEFINED_METRIC_MODE.format(cls=type(self).__name__, metric=self._metric, mode=self._mode)
            )

    def _ask(self) -> None:
        X = np.array(self._strategy.ask(), dtype=float)
        self._X, self._configs = X, [self._tspace.decode(x) for x in X]
        self._next, self._rows, self._results, self._ptev_end = 0, {}, {}, 0
        self._place_known()  # rows 0 .. k-1
        self._ptev_end = min(self._next + len(self._pending_points), len(X))
        for i in range(self._next, self._ptev_end):
            self._inject(i, self._pending_points.pop(0))  # handed out exactly as given
        self._maybe_tell()

    def _inject(self, row: int, point: dict[str, Any]) -> None:
        # the strategy sees a row that differs from the asked one: an injected solution
        self._X[row] = self._tspace.encode(point)
        self._configs[row] = point

    def _place_known(self) -> None:
        # known results take rows not handed out yet from row _next on, never a points_to_evaluate
        # row (rows < _ptev_end); the others wait for the next generation
        k0 = self._n_known - len(self._known)  # number of the first waiting known result
        while self._known and self._ptev_end <= self._next < len(self._configs):
            point, value = self._known.pop(0)
            row = self._next
            self._inject(row, point)
            pseudo = _KNOWN_ID.format(k0)
            k0 += 1
            self._rows[pseudo], self._results[pseudo] = row, value
            self._next += 1

    def add_evaluated_point(
        self,
        parameters: Mapping[str, Any],
        value: float | None,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: Sequence[float] | None = None,
    ) -> None:
        """Tell the search a result obtained outside it (Ray's warm-start API).

        The point is told to the strategy as an injected solution in the next row not handed out
        (of this generation or the next one), so it enters a full-population ``tell`` as
        completed trials do; it counts as an evaluation (``maxfevals``, :attr:`n_told`) but not
        in ``max_trials`` (Tune trials, like ``num_samples``).  It is kept across
        ``save``/``restore`` until told.  ``add_evaluated_trials`` (Ray's, from a
        ``ResultGrid``/``ExperimentAnalysis`` or trials) calls this for every trial.

        Parameters
        ----------
        parameters : dict
            The config (nested like the param_space, or flat ``"a/b"`` keys; constants ignored).
        value : float or None
            The metric in its own sign (``mode`` is applied when told).  None or NaN/inf: a
            failed evaluation, told the generation's penalty.
        error : bool
            The trial errored: told the penalty whatever ``value`` is.
        pruned : bool
            Stopped early (e.g. by a scheduler): ``value`` is told as it is (an ES has no notion
            of pruning).
        intermediate_values : list of float, optional
            Ignored (an ES uses final values only).

        Raises
        ------
        RuntimeError
            Before the search space or ``mode`` is known (the sign of ``value`` is needed).
        ValueError
            A parameter missing or outside the space.
        TypeError
            ``value`` neither a number nor None.
        """
        if self._tspace is None or not self._mode:
            raise RuntimeError(
                "add_evaluated_point needs the search space and mode: pass space= and mode= to ESSearcher"
            )
        point = self._tspace.check_point(parameters, "add_evaluated_point parameters")
        v = None if error else _reward(value, "add_evaluated_point value")
        self._known.append((point, v))
        self._n_known += 1
        if self._scheduling == "async":
            self._flush_known()
            self._tell_async()
        elif self._X is not None:
            self._place_known()
            self._maybe_tell()

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Buffer the trial's metric; tell the strategy once the whole generation is in.

        A trial that errored, lacks the metric, or reports a non-number counts as failed and is
        told the penalty of :func:`cluster.penalty.penalize`.  Trial ids not handed out in the
        current generation (async: not outstanding; e.g. re-runs of older trials after a restore)
        are ignored before their result is read: they change nothing, not even the largest level
        that ``max_t="auto"`` takes as the full budget.
        """
        if trial_id not in (self._queue.out if self._scheduling == "async" else self._rows):
            logger.debug("ESSearcher: ignoring result of trial %s (not handed out or already told)", trial_id)
            return
        value = None if error else _metric_value(result, self._metric)
        level = None if error else self._fidelity.level(result, _metric_value)
        if self._scheduling == "async":
            self._complete_async(trial_id, value, level)
            return
        self._results[trial_id] = value
        if level is not None:
            self._levels[trial_id] = level
        self._fidelity.record(level, value, self._configs[self._rows[trial_id]], trial_id, self._mode)
        self._maybe_tell()

    def _maybe_tell(self) -> None:
        if self._X is not None and len(self._results) == len(self._configs) == len(self._rows):
            self._tell()

    def _tell(self) -> None:
        n = len(self._configs)
        values: list[float | None] = [None] * n
        levels: list[float | None] = [None] * n
        for trial_id, row in self._rows.items():
            values[row], levels[row] = self._results[trial_id], self._levels.get(trial_id)
        self._strategy.tell(self._X, self._fitness(values, levels))
        self._X, self._configs = None, []
        self._next, self._rows, self._results, self._levels = 0, {}, {}, {}
        self._after_tell(n)

    def _fitness(self, values: list[float | None], levels: list[float | None]) -> np.ndarray:
        """``(n,)`` fitness told to the strategy (minimized) for one tell's rows.

        ``values``: each row's metric in its own sign (None = failed); ``levels``: the level each
        row reached (:mod:`cluster.tunefidelity`; None = full budget or ranking off).  ``mode="max"``
        is flipped here only; with ``max_t`` set the rows are ranked lexicographically (level
        reached, then value; :func:`cluster.fidelity.lexicographic_fitness`); failed rows (None,
        NaN, inf) get the penalty of :func:`cluster.penalty.penalize` (below every other row).
        """
        f = np.array([np.nan if v is None else (-v if self._mode == "max" else v) for v in values], dtype=float)
        f = self._fidelity.fitness(f, levels)  # stopped early (max_t): below every trial that got further
        failed = ~np.isfinite(f)
        if failed.any():
            logger.info(
                "ESSearcher: %d of %d trials of tell %d failed; told the penalty",
                int(failed.sum()),
                len(f),
                self.generation + 1,
            )
        return penalize(f, failed)

    def _after_tell(self, n: int) -> None:
        self._generation += 1
        self._n_told += n
        stop = to_jsonable(dict(self._strategy.stop()))
        if stop and not self._stop_on_convergence and not _FINAL_CRITERIA.intersection(stop):
            self._restart(stop)
        else:
            self._stop = stop

    def _restart(self, stop: dict[str, Any]) -> None:
        """IPOP-style restart of a converged strategy (:func:`cluster.continuation.restart_after_convergence`)."""
        budget = [b for b in (self._max_trials, self._num_samples) if b is not None]
        left = min(budget) - self._n_suggested if budget else None
        old_popsize = self.popsize
        tspace, used = self._tspace, {}

        def build(x0, popsize, seed):
            used["seed"] = None if self._seed is None else int(seed)  # no seed: fresh entropy, as the first run
            return self._make_strategy(tspace, x0=x0, popsize=popsize, seed=used["seed"])

        self._strategy = restart_after_convergence(
            self._strategy,
            build,
            seed=0 if self._seed is None else self._seed,
            n_told=self._n_told,
            max_popsize=None if left is None or left < 2 else left,
            n_restarts=len(self._restart_log),
        )
        entry = {
            "generation": self._generation,
            "n_told": self._n_told,
            "stop": stop,
            "popsize": self.popsize,
            "seed": used["seed"],
        }
        self._restart_log.append(entry)
        logger.warning(
            "ESSearcher: the strategy's criteria fired after %d evaluations (%s) before the budget; "
            "restarted from the mean with sigma0=%g and popsize %d -> %d "
            "(stop_on_convergence=True ends the search instead)",
            self._n_told,
            describe_stop(stop),
            self._sigma0,
            old_popsize,
            self.popsize,
        )

    # ----- checkpoints -------------------------------------------------------------------------
    def get_state(self) -> dict:
        """``{"format": "esopt-tune-searcher", "npz": bytes}``: the checkpoint of :meth:`save`."""
        return {"format": _FORMAT, "npz": self._to_bytes()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`get_state`.  Raises ``ValueError`` as :meth:`restore`."""
        if not (isinstance(state, Mapping) and state.get("format") == _FORMAT and isinstance(state.get("npz"), bytes)):
            raise ValueError("not an ESSearcher state: expected the dict returned by ESSearcher.get_state()")
        self._from_bytes(state["npz"], "ESSearcher state")

    def save(self, checkpoint_path: str | os.PathLike) -> None:
        """Write the searcher's state to ``checkpoint_path`` (an ``.npz`` file whatever the name),
        atomically and durably (:func:`esopt.checkpoint.atomic_write_bytes`: temporary file,
        fsync, rename, fsync of the directory).  Tune calls this after every experiment
        checkpoint.  No pickle is involved, except for the attributes a subclass adds.

        Raises ``TypeError`` if a subclass's own attribute cannot be pickled.
        """
        atomic_write_bytes(checkpoint_path, self._to_bytes())

    def restore(self, checkpoint_path: str | os.PathLike) -> None:
        """Load a state written by :meth:`save` (``Tuner.restore`` calls it).

        A searcher without a space takes the checkpoint's (without constants); every searcher
        takes the checkpoint's ``seed`` and ``sigma0`` (they fix the restarts to come).
        Checkpoints of esopt 0.1.0 (format version 1) load as well.  To continue the checkpoint
        in a new Tune experiment rather than through ``Tuner.restore``, call
        :meth:`reissue_pending` afterwards: the trials outstanding in the checkpoint never report
        to a new experiment.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            Corrupt or foreign file, or a checkpoint of another space, strategy, restart scheme
            or mode than this searcher's.  Nothing changes then.
        """
        self._from_bytes(Path(checkpoint_path).read_bytes(), f"checkpoint {os.fspath(checkpoint_path)!r}")

    def _extra_attributes(self) -> dict[str, Any]:
        # what a subclass added to __dict__ (Ray's Searchers restore __dict__; ESSearcher's own state is in meta)
        own = getattr(self, "_own_attributes", None)
        return {} if own is None else {k: v for k, v in self.__dict__.items() if k not in own}

    def _to_bytes(self) -> bytes:
        state: dict[str, Any] = {} if self._strategy is None else self._strategy.state_dict()
        meta = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "strategy": self._strategy_name,
            "restarts": self._restarts,
            "metric": self._metric,
            "mode": self._mode,
            "tune_space": None if self._tspace is None else self._tspace.to_json(),
            "configs": self._configs,
            "next": self._next,
            "rows": self._rows,
            "results": self._results,
            "n_suggested": self._n_suggested,
            "pending_points": self._pending_points,
            "ptev_end": self._ptev_end,
            "known": [[p, v] for p, v in self._known],
            "n_known": self._n_known,
            "n_told": self._n_told,
            "restart_log": self._restart_log,
            "seed": self._seed,
            "sigma0": self._sigma0,
            "stop": self._stop,
            "generation": self._generation,
            "levels": self._levels,
            "fidelity": self._fidelity.to_json(),
        }
        if self._scheduling == "async":  # absent in sync checkpoints: those stay as before
            meta["scheduling"] = "async"
            meta["async"] = self._queue.to_json()
            meta["done_levels"] = self._done_levels
        state[_META_KEY] = json.dumps(to_jsonable(meta))
        if self._X is not None:
            state[_X_KEY] = self._X
        extra = self._extra_attributes()
        if extra:
            try:
                blob = pickle.dumps(extra, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as e:
                raise TypeError(
                    f"{type(self).__name__}: its own attributes {sorted(extra)} cannot be pickled ({e}); "
                    "keep only picklable values on a subclass of ESSearcher"
                ) from e
            state[_EXTRA_KEY] = np.frombuffer(blob, dtype=np.uint8)
        return state_to_npz_bytes(state)

    def _from_bytes(self, data: bytes, where: str) -> None:
        state = read_state(data)
        try:
            meta = json.loads(str(state.pop(_META_KEY)))
        except KeyError:
            raise ValueError(f"{where} is an esopt checkpoint but not an ESSearcher one") from None
        if meta.get("format") != _FORMAT or meta.get("format_version") not in _READABLE_VERSIONS:
            raise ValueError(
                f"{where} has format {meta.get('format')!r} version "
                f"{meta.get('format_version')}; expected {_FORMAT!r} version {_FORMAT_VERSION}"
            )
        extra = state.pop(_EXTRA_KEY, None)
        try:
            new = self._parse_checkpoint(meta, state, where)
            if extra is not None:
                new.update(pickle.loads(np.asarray(extra, dtype=np.uint8).tobytes()))
        except (KeyError, TypeError, pickle.UnpicklingError, AttributeError, ImportError) as e:
            raise ValueError(f"{where} is not a valid ESSearcher checkpoint ({type(e).__name__}: {e})") from e
        # ---- nothing has changed up to here ----
        for name, value in new.items():
            setattr(self, name, value)

    def _parse_checkpoint(self, meta: dict, state: dict, where: str) -> dict[str, Any]:
        # (a searcher pickled by an older esopt, as Tuner.restore unpickles it, lacks the newer attributes)
        requested = getattr(self, "_strategy_arg", self._strategy_name)
        fidelity_args = getattr(self, "_fidelity_args", (None, "training_iteration"))
        if meta["restarts"] != self._restarts or requested not in (None, meta["strategy"]):
            raise ValueError(
                f"{where} holds strategy={meta['strategy']!r}, restarts={meta['restarts']!r}; "
                f"this searcher has {requested!r}, {self._restarts!r}"
            )
        if self._mode and meta["mode"] and meta["mode"] != self._mode:
            raise ValueError(f"{where} was written with mode={meta['mode']!r}, this searcher has mode={self._mode!r}")
        if meta.get("scheduling", "sync") != self._scheduling:
            raise ValueError(
                f"{where} was written with scheduling={meta.get('scheduling', 'sync')!r}, "
                f"this searcher has scheduling={self._scheduling!r}"
            )
        X = state.pop(_X_KEY, None)
        tspace = self._checkpoint_space(meta, where)
        queue = AsyncQueue.from_json(meta["async"]) if "async" in meta else AsyncQueue()
        n_done = len(queue.done)
        name = meta["strategy"]
        if name is None and tspace is not None:  # saved before the space (and so the strategy) was known
            name = _resolve_strategy(requested, tspace)
        if tspace is not None:
            tspace = tspace.with_mixed(name in mixed_strategies())
        if "class" in state:
            strategy = strategy_class(str(state["class"])).from_state_dict(state)
        else:  # saved before the space was known: start afresh
            strategy = None if tspace is None else self._make_strategy(tspace, name=name)
        rows = {str(k): int(v) for k, v in meta["rows"].items()}
        _check_rows(where, X, len(meta["configs"]), rows)
        return {
            "_tspace": tspace,
            "_strategy": strategy,
            "_metric": self._metric or meta["metric"],
            "_mode": self._mode or meta["mode"],
            "_X": None if X is None else np.array(X, dtype=float),
            "_configs": list(meta["configs"]),
            "_next": int(meta["next"]),
            "_rows": rows,
            "_results": {str(k): (None if v is None else float(v)) for k, v in meta["results"].items()},
            "_n_suggested": int(meta["n_suggested"]),
            "_pending_points": list(meta["pending_points"]),
            "_stop": dict(meta["stop"]),
            "_generation": int(meta["generation"]),
            "_queue": queue,
            "_done_levels": [None if v is None else float(v) for v in meta.get("done_levels", [None] * n_done)],
            "_levels": {str(k): float(v) for k, v in meta.get("levels", {}).items()},
            "_fidelity": Fidelity(*fidelity_args).load_json(meta.get("fidelity")),
            "_fidelity_args": fidelity_args,
            "_strategy_arg": requested,
            "_strategy_name": name,
            **_version2_fields(meta, strategy),
        }

    def _checkpoint_space(self, meta: dict, where: str) -> TuneSpace | None:
        tspace = self._tspace
        if meta["tune_space"] is not None:
            saved = TuneSpace.from_json(meta["tune_space"])
            if tspace is None:
                tspace = saved
            elif _same_space(saved, tspace):
                tspace = tspace.with_mixed(saved.space.mixed)  # the checkpoint's strategy's coordinates
            else:
                raise ValueError(
                    f"{where} was written for the space {saved.to_json()}, this searcher has {tspace.to_json()}"
                )
        return tspace


def _version2_fields(meta: dict, strategy) -> dict[str, Any]:
    # fields added in format version 2; a version-1 checkpoint (esopt 0.1.0) has none of them:
    # no known results, no restart yet, evaluations told = the strategy's own count
    n_told = meta.get("n_told")
    if n_told is None:
        n_told = int(getattr(strategy, "countevals", 0) or 0)
    return {
        "_known": [(dict(p), None if v is None else float(v)) for p, v in meta.get("known", [])],
        "_n_known": int(meta.get("n_known", 0)),
        "_n_told": int(n_told),
        "_restart_log": [dict(r) for r in meta.get("restart_log", [])],
        "_ptev_end": int(meta.get("ptev_end", len(meta["configs"]))),
        **({"_seed": meta["seed"], "_sigma0": float(meta["sigma0"])} if "sigma0" in meta else {}),
    }


def _check_rows(where: str, X, n_rows: int, rows: Mapping[str, int]) -> None:
    if (
        (X is None) != (n_rows == 0)
        or (X is not None and X.shape[0] != n_rows)
        or any(not 0 <= r < n_rows for r in rows.values())
    ):
        raise ValueError(
            f"{where} is inconsistent: {n_rows} configs, X of shape "
            f"{None if X is None else X.shape}, rows {sorted(rows.values())}"
        )


def _is_int(v, minimum: int) -> bool:
    return is_int(v) and v >= minimum


def _reward(v, where: str) -> float | None:
    """A known metric value as a float; None (failed) for None and NaN/inf.  ``TypeError`` otherwise."""
    if v is None:
        return None
    if not is_real(v):
        raise TypeError(f"{where} must be a number (the metric) or None, got {v!r}")
    v = float(v)
    return v if math.isfinite(v) else None


def _check_warm_start(points, rewards, stop_on_convergence) -> tuple[list[dict], list | None]:
    if points is not None and (
        isinstance(points, (str, Mapping))
        or not isinstance(points, Sequence)
        or not all(isinstance(p, Mapping) for p in points)
    ):
        raise TypeError("points_to_evaluate must be a list of config dicts")
    if rewards is not None:
        if isinstance(rewards, (str, Mapping)) or not isinstance(rewards, Sequence):
            raise TypeError("evaluated_rewards must be a list of numbers, one per points_to_evaluate entry")
        if len(rewards) != len(points or ()):
            raise ValueError(
                f"evaluated_rewards has {len(rewards)} values for {len(points or ())} points_to_evaluate; "
                "give one known metric value per point (or no evaluated_rewards)"
            )
        for i, r in enumerate(rewards):
            _reward(r, f"evaluated_rewards[{i}]")
    if not isinstance(stop_on_convergence, bool):
        raise TypeError(f"stop_on_convergence must be True or False, got {stop_on_convergence!r}")
    return [dict(p) for p in points or ()], None if rewards is None else list(rewards)


def _check_metric_mode(metric, mode) -> None:
    if mode is not None and mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if metric is not None and not isinstance(metric, str):
        raise ValueError(
            f"metric must be one result key (a str), got {metric!r}; ESSearcher optimizes a single objective"
        )
