"""Ray Tune adapter: any esopt strategy as a ``ray.tune`` search algorithm.

:class:`ESSearcher` implements Ray Tune's ``Searcher`` contract (``ray/tune/search/searcher.py``
in Ray 2.60: ``suggest``, ``on_trial_complete(trial_id, result, error)``,
``set_search_properties``, ``set_max_concurrency``, ``save``/``restore``,
``get_state``/``set_state``) on top of esopt's ask/tell interface::

    generation g:  X = strategy.ask()                     # (popsize, d) in the unit cube
                   suggest() hands out decode(X[i]), i = 0 .. popsize-1, one per trial
                   suggest() -> None while results of generation g are missing
                   on_trial_complete() buffers metric values by trial id
                   all popsize values in -> strategy.tell(X, f)   (f minimized)

``mode="max"`` is turned into minimization (``f = -metric``) only at the ``tell`` boundary;
everything stored or reported keeps the metric's own sign.  Trials that errored, or whose last
result lacks the metric, or whose metric is NaN/inf, are told the penalty of
:func:`cluster.penalty.penalize` (worst finite value of the generation + ``max(|worst|, 1)``).

Search spaces: a :class:`cluster.space.Space`, or a Tune ``param_space`` dict (possibly nested)
converted by :func:`convert_search_space`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.search import UNDEFINED_METRIC_MODE, UNDEFINED_SEARCH_SPACE, Searcher
from ray.tune.search.sample import Domain, Float, Integer, LogUniform, Quantized, Uniform
from ray.tune.search.variant_generator import parse_spec_vars

import esopt
from esopt.checkpoint import read_state, state_to_npz_bytes
from esopt.registry import RESTARTS, STRATEGIES, strategy_class

from .penalty import penalize
from .space import Param, Space

__all__ = ["ESSearcher", "TuneSpace", "convert_search_space"]

logger = logging.getLogger(__name__)

_FORMAT = "esopt-tune-searcher"
_FORMAT_VERSION = 1
_META_KEY = "tune.searcher"  # JSON string with the searcher's own state, stored inside the npz
_X_KEY = "tune.X"  # (popsize, d) candidates of the generation in progress


# ------------------------------------------------------------------------------------------------
# search space
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TuneSpace:
    """A :class:`Space` plus what is needed to turn its vectors into Tune configs.

    Attributes
    ----------
    space : Space
        The hyperparameters the strategy searches, in vector order (unit cube ``[0, 1]^d``).
    paths : dict name -> tuple of str
        Where each hyperparameter lives in the (nested) config; ``("lr",)`` for a flat one.
    q : dict name -> float
        Quantization step of ``tune.qloguniform`` / ``tune.quniform`` parameters.  The strategy
        searches the continuous range; the value is rounded to the nearest multiple of ``q`` only
        when a config is decoded, then clipped to the multiples of ``q`` inside ``[lower, upper]``
        (Tune's own rule: quantization makes ``upper`` inclusive).
    template : dict or None
        The Tune ``param_space`` the space came from; its non-domain entries (constants) are
        copied unchanged into every suggested config.  None for a :class:`Space`.
    """

    space: Space
    paths: dict[str, tuple[str, ...]]
    q: dict[str, float] = field(default_factory=dict)
    template: dict | None = None

    def decode(self, x) -> dict[str, float | int]:
        """Vector ``(d,)`` in unit coordinates -> flat ``{name: value}`` in own units
        (ints rounded by :meth:`Space.decode`, quantized floats rounded to ``q``)."""
        values = self.space.decode(x)
        for name, q in self.q.items():
            p = self.space.params[self.space.names.index(name)]
            lo, up = _grid_index(p.lower, q, math.ceil) * q, _grid_index(p.upper, q, math.floor) * q
            values[name] = float(min(max(round(values[name] / q) * q, lo), up))
        return values

    def to_config(self, values: Mapping[str, Any]) -> dict:
        """Flat ``{name: value}`` -> the nested config a trainable receives (constants included)."""
        by_path = {self.paths[name]: v for name, v in values.items()}
        if self.template is None:
            return {path[0]: v for path, v in by_path.items()}
        return _fill(self.template, (), by_path)

    def flat_values(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A (nested or flat-keyed) config -> flat ``{name: value}`` of this space's parameters.

        Raises ``ValueError`` naming a parameter that the config lacks.
        """
        out = {}
        for name, path in self.paths.items():
            node: Any = config
            try:
                for key in path:
                    node = node[key]
            except (KeyError, TypeError, IndexError):
                if name not in config:
                    raise ValueError(f"config {dict(config)!r} has no value for parameter {name!r}") from None
                node = config[name]
            out[name] = node
        return out

    def same_as(self, other: TuneSpace) -> bool:
        """True if both describe the same vector space and decoding (templates' constants aside)."""
        return self.space == other.space and self.paths == other.paths and self.q == other.q

    def to_json(self) -> dict:
        """JSON-safe description (no constants)."""
        return {"space": self.space.to_dict(), "paths": {k: list(v) for k, v in self.paths.items()}, "q": dict(self.q)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TuneSpace:
        """Inverse of :meth:`to_json` (the rebuilt space has no constants)."""
        return cls(Space(d["space"]), {k: tuple(v) for k, v in d["paths"].items()}, dict(d["q"]))


def _grid_index(bound: float, q: float, round_fn) -> int:
    # index of `bound` on the grid of multiples of q, rounded inwards (as Tune's Quantized does)
    s = bound / q
    r = round(s)
    return int(r) if math.isclose(s, r) else int(round_fn(s))


def _fill(node, path: tuple, by_path: Mapping[tuple, Any]):
    if isinstance(node, Mapping):
        return {k: _fill(v, path + (k,), by_path) for k, v in node.items()}
    if isinstance(node, Domain):
        return by_path[path]
    return node


def convert_search_space(param_space: Mapping[str, Any]) -> TuneSpace:
    """Convert a Tune ``param_space`` dict into a :class:`TuneSpace`.

    Supported domains (``lower``/``upper`` as Tune defines them):

    ==============================  ==============================================================
    ``tune.uniform(lo, up)``        float, linear scale, ``[lo, up]``
    ``tune.quniform(lo, up, q)``    as uniform, rounded to a multiple of ``q`` at decode time
    ``tune.loguniform(lo, up)``     float, log10 scale, ``[lo, up]``
    ``tune.qloguniform(lo, up, q)`` as loguniform, rounded to a multiple of ``q`` at decode time
    ``tune.randint(lo, up)``        int, linear scale, ``lo .. up - 1`` (Tune excludes ``up``)
    ``tune.lograndint(lo, up)``     int, log10 scale, ``lo .. up - 1``
    ==============================  ==============================================================

    Nested dicts are allowed; a parameter at ``{"opt": {"lr": ...}}`` is named ``"opt/lr"``.
    Entries that are not domains (numbers, strings, objects) are constants: they are copied
    unchanged into every suggested config.

    Raises
    ------
    TypeError
        If ``param_space`` is not a mapping.
    ValueError
        Naming the parameter, for any other domain (``tune.choice``, ``tune.randn``,
        ``tune.qrandint``, ``tune.sample_from``, ``tune.grid_search``, ...), for a domain inside a
        list, for empty or infinite ranges, and if the space has no domain at all.
    """
    if not isinstance(param_space, Mapping):
        raise TypeError(f"param_space must be a dict of Tune domains, got {type(param_space).__name__}")
    _, domain_vars, grid_vars = parse_spec_vars(dict(param_space))
    for path, _ in grid_vars:
        raise ValueError(
            f"param_space[{_name(path)!r}] is a tune.grid_search; ESSearcher cannot search a "
            "grid. Use tune.uniform/loguniform/randint/qloguniform, or fix the value."
        )
    if not domain_vars:
        raise ValueError("param_space has no tune.uniform/loguniform/randint/qloguniform domain to search")
    params, paths, q = [], {}, {}
    for path, domain in domain_vars:
        name = _name(path)
        if not all(isinstance(k, str) for k in path):
            raise ValueError(
                f"param_space[{name!r}]: ESSearcher supports domains in (nested) dicts with "
                "string keys only, not inside lists"
            )
        param, step = _param_from_domain(name, domain)
        params.append(param)
        paths[name] = tuple(path)
        if step is not None:
            q[name] = step
    return TuneSpace(Space(params), paths, q, dict(param_space))


def _name(path) -> str:
    return "/".join(str(k) for k in path)


def _param_from_domain(name: str, domain: Domain) -> tuple[Param, float | None]:
    where = f"param_space[{name!r}]"
    sampler = domain.get_sampler()
    step = None
    if isinstance(sampler, Quantized):
        if not isinstance(domain, Float):
            raise ValueError(
                f"{where}: quantized integer domains (tune.qrandint/qlograndint) are not "
                "supported; use tune.randint or tune.lograndint"
            )
        step = float(sampler.q)
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"{where}: quantization step q must be a positive number, got {sampler.q!r}")
        sampler = sampler.get_sampler()
    if isinstance(sampler, LogUniform):
        scale = "log10"
    elif isinstance(sampler, Uniform):
        scale = "linear"
    else:
        raise ValueError(
            f"{where}: {type(domain).__name__} domain with a {sampler} sampler is not "
            "supported; ESSearcher takes tune.uniform, tune.loguniform, tune.randint, "
            "tune.qloguniform (and quniform, lograndint)"
        )
    if isinstance(domain, Integer):
        lower, upper = domain.lower, domain.upper - 1  # Tune's randint excludes `upper`
        if upper <= lower:
            raise ValueError(
                f"{where}: tune.randint({domain.lower}, {domain.upper}) holds a single value; "
                "put the constant in param_space instead"
            )
        return Param(name, lower=int(lower), upper=int(upper), scale=scale, type="int"), None
    if isinstance(domain, Float):
        lower, upper = float(domain.lower), float(domain.upper)
        if not (math.isfinite(lower) and math.isfinite(upper)):
            raise ValueError(f"{where}: needs finite bounds, got [{lower}, {upper}]")
        if step is not None and _grid_index(lower, step, math.ceil) > _grid_index(upper, step, math.floor):
            raise ValueError(f"{where}: no multiple of q={step} lies in [{lower}, {upper}]")
        return Param(name, lower=lower, upper=upper, scale=scale, type="float"), step
    raise ValueError(
        f"{where}: {type(domain).__name__} domains (e.g. tune.choice, tune.sample_from) are "
        "not supported; ESSearcher takes tune.uniform, tune.loguniform, tune.randint, "
        "tune.qloguniform"
    )


def _as_tune_space(space) -> TuneSpace:
    if isinstance(space, TuneSpace):
        return space
    if isinstance(space, Space):
        return TuneSpace(space, {n: (n,) for n in space.names})
    if isinstance(space, Mapping):
        return convert_search_space(space)
    raise TypeError(f"space must be a cluster.Space or a Tune param_space dict, got {type(space).__name__}")


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
    space : cluster.Space, Tune param_space dict, or None
        The search space.  None: take it from ``tune.Tuner(param_space=...)`` (Tune passes it
        through :meth:`set_search_properties`).  See :func:`convert_search_space`.
    strategy : str
        An ``esopt.STRATEGIES`` name (``"cmaes"``, ``"sepcmaes"``, ``"lmmaes"``, ``"canonical"``).
    metric : str, optional
        Key of the trial result to optimize (``TuneConfig(metric=...)`` sets it otherwise).
    mode : {"min", "max"}, optional
        Direction; ``"max"`` is negated only when values are told to the strategy.
    popsize : int >= 2, optional
        Trials per generation (the strategy's default otherwise, ``4 + floor(3 ln d)`` for CMA-ES).
    seed : int >= 0, optional
        Seed of the strategy's ``numpy.random.Generator``.
    sigma0 : float > 0
        Initial step size as a fraction of every parameter's scaled range (unit cube).
    max_trials : int >= 1, optional
        At most this many suggestions; then :meth:`suggest` returns ``Searcher.FINISHED``.  A
        generation cut short by it (or by ``num_samples``) is evaluated but never told.
    restarts : {"ipop", "bipop"}, optional
        Wrap the strategy in a restart scheme (``esopt.make_strategy(..., restarts=...)``).
    points_to_evaluate : list of dict, optional
        Configs (nested like the param_space, or flat ``"a/b"`` keys; constants ignored) that
        replace the first candidates of the first generation(s); they are handed out exactly as
        given and told to the strategy as injected solutions.
    **strategy_options
        Passed to the strategy's constructor (e.g. ``tolerances={"tolfun": 1e-6}``).

    Raises
    ------
    ValueError, TypeError
        Unknown strategy or restart names, ``mode`` not in {min, max}, a non-string metric, bad
        ``popsize``/``seed``/``sigma0``/``max_trials``, unsupported domains, points outside the
        space; and whatever the strategy's constructor raises for ``strategy_options`` (at once if
        ``space`` is given, else when Tune passes the space).

    Notes
    -----
    ``Searcher.FINISHED`` is returned once the strategy's ``stop()`` fired (checked after each
    generation) or ``max_trials`` suggestions were made.  ``save``/``restore`` write one
    pickle-free ``.npz`` checkpoint (:mod:`esopt.checkpoint`) holding the strategy's state, the
    candidates of the generation in progress, the trial ids handed out and the results buffered,
    so that ``tune.Tuner.restore`` continues the search exactly: trials that Tune re-runs keep
    their trial id and config, and the strategy sees the same ``X`` it asked for.
    """

    def __init__(
        self,
        space=None,
        strategy: str = "cmaes",
        *,
        metric: str | None = None,
        mode: str | None = None,
        popsize: int | None = None,
        seed: int | None = None,
        sigma0: float = 0.3,
        max_trials: int | None = None,
        restarts: str | None = None,
        points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
        **strategy_options,
    ):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; known: {sorted(STRATEGIES)}")
        if restarts is not None and restarts not in RESTARTS:
            raise ValueError(f"unknown restarts {restarts!r}; known: {sorted(RESTARTS)} or None")
        _check_metric_mode(metric, mode)
        if popsize is not None and not _is_int(popsize, 2):
            raise ValueError(f"popsize must be an int >= 2 or None, got {popsize!r}")
        if seed is not None and not _is_int(seed, 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        if isinstance(sigma0, bool) or not isinstance(sigma0, (int, float)) or not (0 < sigma0 < math.inf):
            raise ValueError(f"sigma0 must be a positive finite float (a fraction of each range), got {sigma0!r}")
        if max_trials is not None and not _is_int(max_trials, 1):
            raise ValueError(f"max_trials must be a positive int or None, got {max_trials!r}")
        if points_to_evaluate is not None and (
            isinstance(points_to_evaluate, (str, Mapping))
            or not isinstance(points_to_evaluate, Sequence)
            or not all(isinstance(p, Mapping) for p in points_to_evaluate)
        ):
            raise TypeError("points_to_evaluate must be a list of config dicts")
        reserved = sorted({"x0", "bounds"} & set(strategy_options))
        if reserved:
            raise ValueError(
                f"{reserved} come from the space (unit cube, x0 from Param.init); do not pass them to ESSearcher"
            )
        super().__init__(metric=metric, mode=mode)
        self._strategy_name = strategy
        self._restarts = restarts
        self._popsize = None if popsize is None else int(popsize)
        self._seed = None if seed is None else int(seed)
        self._sigma0 = float(sigma0)
        self._max_trials = None if max_trials is None else int(max_trials)
        self._points = [dict(p) for p in points_to_evaluate or ()]
        self._strategy_options = dict(strategy_options)
        self._max_concurrent: int | None = None
        self._tspace: TuneSpace | None = None
        self._strategy = None
        self._reset_search_state()
        if space is not None:
            self._setup(_as_tune_space(space))

    # ----- set-up ------------------------------------------------------------------------------
    def _reset_search_state(self) -> None:
        self._X: np.ndarray | None = None  # (popsize, d) candidates of the generation in progress
        self._configs: list[dict[str, Any]] = []  # flat {name: value} per row of _X
        self._next = 0  # rows of _X handed out so far
        self._rows: dict[str, int] = {}  # trial id -> row, for this generation
        self._results: dict[str, float | None] = {}  # trial id -> metric (own sign); None = failed
        self._n_suggested = 0
        self._generation = 0  # generations told
        self._pending_points: list[dict[str, Any]] = []  # flat, not yet injected
        self._stop: dict = {}

    def _setup(self, tspace: TuneSpace) -> None:
        pending = [_check_point(tspace, p, i) for i, p in enumerate(self._points)]
        strategy = self._make_strategy(tspace)
        self._tspace, self._strategy = tspace, strategy
        self._reset_search_state()
        self._pending_points = pending

    def _make_strategy(self, tspace: TuneSpace):
        kwargs: dict[str, Any] = {"seed": self._seed, "bounds": tspace.space.bounds, **self._strategy_options}
        if self._popsize is not None:
            kwargs["popsize"] = self._popsize
        return esopt.make_strategy(
            self._strategy_name, tspace.space.x0, self._sigma0, restarts=self._restarts, **kwargs
        )

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        """Take ``metric``, ``mode`` and the search space from ``tune.Tuner`` / ``TuneConfig``.

        Returns False (Tune then raises its own error) if ``config`` holds domains and this
        searcher already has a different space; True otherwise.  ``metric``/``mode`` given here
        override those given to the constructor.

        Raises
        ------
        ValueError
            ``mode`` not in {min, max}, or unsupported domains in ``config``.
        """
        _check_metric_mode(metric, mode)
        _, domain_vars, grid_vars = parse_spec_vars(dict(config or {}))
        if domain_vars or grid_vars:
            tspace = convert_search_space(config)
            if self._tspace is None:
                self._setup(tspace)
            elif self._tspace.same_as(tspace):
                self._tspace = tspace  # adopt the constants of the template
            else:
                return False
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        num_samples = spec.get("num_samples")
        if self._strategy is not None and isinstance(num_samples, int) and num_samples % self.popsize:
            logger.warning(
                "num_samples=%d is not a multiple of popsize=%d: the last generation will be "
                "evaluated but never told to the strategy",
                num_samples,
                self.popsize,
            )
        return True

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
        """The underlying esopt strategy (None until the space is known).  Read it, do not drive it."""
        return self._strategy

    @property
    def space(self) -> Space | None:
        """The :class:`Space` searched (None until known)."""
        return None if self._tspace is None else self._tspace.space

    @property
    def popsize(self) -> int:
        """Trials per generation.  Raises ``RuntimeError`` before the space is known."""
        if self._strategy is None:
            raise RuntimeError("popsize is known once the search space is set")
        return int(self._strategy.popsize)

    @property
    def generation(self) -> int:
        """Number of generations told to the strategy so far."""
        return self._generation

    @property
    def pending_trial_ids(self) -> tuple[str, ...]:
        """Trial ids of the current generation handed out and not yet complete."""
        return tuple(t for t in self._rows if t not in self._results)

    @property
    def completed_trial_ids(self) -> tuple[str, ...]:
        """Trial ids of the current generation whose results are buffered (not told yet)."""
        return tuple(self._results)

    @property
    def stop_reason(self) -> dict:
        """The strategy's ``stop()`` after the last generation told (``{}`` while running)."""
        return dict(self._stop)

    # ----- ask / tell --------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict | str | None:
        """Next candidate of the current generation as a config dict (own units, constants
        included); None while the generation waits for results or the concurrency limit is
        reached; ``Searcher.FINISHED`` once ``stop()`` fired or ``max_trials`` is spent.

        Raises
        ------
        RuntimeError
            If no search space or no metric/mode is set (Ray's messages).
        """
        if self._tspace is None:
            raise RuntimeError(UNDEFINED_SEARCH_SPACE.format(cls=type(self).__name__, space="space"))
        if not self._metric or not self._mode:
            raise RuntimeError(
                UNDEFINED_METRIC_MODE.format(cls=type(self).__name__, metric=self._metric, mode=self._mode)
            )
        if self._max_trials is not None and self._n_suggested >= self._max_trials:
            return Searcher.FINISHED
        if self._X is None:
            if self._stop:
                return Searcher.FINISHED
            self._ask()
        if self._next >= len(self._configs):
            return None  # whole generation handed out; wait for its results
        if self._max_concurrent is not None and len(self._rows) - len(self._results) >= self._max_concurrent:
            return None
        row = self._next
        self._next += 1
        self._rows[trial_id] = row
        self._n_suggested += 1
        return self._tspace.to_config(self._configs[row])

    def _ask(self) -> None:
        X = np.array(self._strategy.ask(), dtype=float)
        configs = [self._tspace.decode(x) for x in X]
        for i in range(min(len(self._pending_points), len(configs))):
            point = self._pending_points.pop(0)
            X[i] = np.clip(self._tspace.space.encode(point), 0.0, 1.0)
            configs[i] = point  # handed out exactly as given, told as an injected solution
        self._X, self._configs = X, configs
        self._next, self._rows, self._results = 0, {}, {}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Buffer the trial's metric; tell the strategy once the whole generation is in.

        A trial that errored, lacks the metric, or reports a non-number counts as failed and is
        told the penalty of :func:`cluster.penalty.penalize`.  Trial ids not handed out in the
        current generation (e.g. re-runs of older trials after a restore) are ignored.
        """
        if trial_id not in self._rows:
            logger.debug("ESSearcher: ignoring result of trial %s (not in the current generation)", trial_id)
            return
        self._results[trial_id] = None if error else _metric_value(result, self._metric)
        if len(self._results) == len(self._configs) == len(self._rows):
            self._tell()

    def _tell(self) -> None:
        n = len(self._configs)
        f = np.full(n, np.nan)
        for trial_id, row in self._rows.items():
            value = self._results[trial_id]
            if value is not None:
                f[row] = -value if self._mode == "max" else value  # flip max -> min only here
        failed = ~np.isfinite(f)
        if failed.any():
            logger.info(
                "ESSearcher: %d of %d trials of generation %d failed; told the penalty",
                int(failed.sum()),
                n,
                self.generation + 1,
            )
        self._strategy.tell(self._X, penalize(f, failed))
        self._X, self._configs = None, []
        self._next, self._rows, self._results = 0, {}, {}
        self._generation += 1
        self._stop = {str(k): _json_scalar(v) for k, v in self._strategy.stop().items()}

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
        """Write the searcher's state to ``checkpoint_path`` (an ``.npz`` file whatever the name;
        written to a temporary file and renamed).  Tune calls this after every experiment
        checkpoint; no pickle is involved."""
        path = Path(checkpoint_path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self._to_bytes())
        os.replace(tmp, path)

    def restore(self, checkpoint_path: str | os.PathLike) -> None:
        """Load a state written by :meth:`save` (``Tuner.restore`` calls it).

        A searcher without a space takes the checkpoint's (without constants).

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            Corrupt or foreign file, or a checkpoint of another space, strategy, restart scheme
            or mode than this searcher's.  Nothing changes then.
        """
        self._from_bytes(Path(checkpoint_path).read_bytes(), f"checkpoint {os.fspath(checkpoint_path)!r}")

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
            "stop": self._stop,
            "generation": self._generation,
        }
        state[_META_KEY] = json.dumps(meta)
        if self._X is not None:
            state[_X_KEY] = self._X
        return state_to_npz_bytes(state)

    def _from_bytes(self, data: bytes, where: str) -> None:
        state = read_state(data)
        try:
            meta = json.loads(str(state.pop(_META_KEY)))
        except KeyError:
            raise ValueError(f"{where} is an esopt checkpoint but not an ESSearcher one") from None
        if meta.get("format") != _FORMAT or meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"{where} has format {meta.get('format')!r} version "
                f"{meta.get('format_version')}; expected {_FORMAT!r} version {_FORMAT_VERSION}"
            )
        try:
            new = self._parse_checkpoint(meta, state, where)
        except (KeyError, TypeError) as e:
            raise ValueError(f"{where} is not a valid ESSearcher checkpoint ({type(e).__name__}: {e})") from e
        # ---- nothing has changed up to here ----
        for name, value in new.items():
            setattr(self, name, value)

    def _parse_checkpoint(self, meta: dict, state: dict, where: str) -> dict[str, Any]:
        if (meta["strategy"], meta["restarts"]) != (self._strategy_name, self._restarts):
            raise ValueError(
                f"{where} holds strategy={meta['strategy']!r}, restarts={meta['restarts']!r}; "
                f"this searcher has {self._strategy_name!r}, {self._restarts!r}"
            )
        if self._mode and meta["mode"] and meta["mode"] != self._mode:
            raise ValueError(f"{where} was written with mode={meta['mode']!r}, this searcher has mode={self._mode!r}")
        X = state.pop(_X_KEY, None)
        tspace = self._tspace
        if meta["tune_space"] is not None:
            saved = TuneSpace.from_json(meta["tune_space"])
            if tspace is None:
                tspace = saved
            elif not tspace.same_as(saved):
                raise ValueError(
                    f"{where} was written for the space {saved.to_json()}, this searcher has {tspace.to_json()}"
                )
        if "class" in state:
            strategy = strategy_class(str(state["class"])).from_state_dict(state)
        else:  # saved before the space was known: start afresh
            strategy = None if tspace is None else self._make_strategy(tspace)
        rows = {str(k): int(v) for k, v in meta["rows"].items()}
        n_rows = len(meta["configs"])
        if (
            (X is None) != (n_rows == 0)
            or (X is not None and X.shape[0] != n_rows)
            or any(not 0 <= r < n_rows for r in rows.values())
        ):
            raise ValueError(
                f"{where} is inconsistent: {n_rows} configs, X of shape "
                f"{None if X is None else X.shape}, rows {sorted(rows.values())}"
            )
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
        }


def _is_int(v, minimum: int) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v >= minimum


def _json_scalar(v):
    if isinstance(v, np.generic):
        v = v.item()
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def _check_metric_mode(metric, mode) -> None:
    if mode is not None and mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if metric is not None and not isinstance(metric, str):
        raise ValueError(
            f"metric must be one result key (a str), got {metric!r}; ESSearcher optimizes a single objective"
        )


def _check_point(tspace: TuneSpace, point: Mapping[str, Any], i: int) -> dict[str, Any]:
    flat = tspace.flat_values(point)
    for p in tspace.space.params:
        v = flat[p.name]
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float, np.integer, np.floating))
            or not (p.lower <= v <= p.upper)
        ):
            raise ValueError(f"points_to_evaluate[{i}][{p.name!r}] = {v!r} is not a number in [{p.lower}, {p.upper}]")
        flat[p.name] = v.item() if isinstance(v, np.generic) else v
    return flat
