"""The strategies of esopt by name, with their options, and the one builder used everywhere.

``STRATEGIES`` maps a name (``"cmaes"``, ...) to a :class:`StrategyInfo`: the class as
``"module:Class"`` (imported on first use) and its constructor options beyond the common
``x0, sigma0, popsize, seed, bounds, tolerances`` (:class:`OptionSpec`: name, type, default, doc).
``RESTARTS`` does the same for the restart wrappers (``"ipop"``, ``"bipop"``; options
``max_restarts``, ``incpopsize``).

Options travel as one flat mapping (a campaign config's ``strategy.options``, ``minimize``'s
``options``, ``ESSearcher``'s ``strategy_options``): strategy options, termination thresholds by
their :class:`esopt.Tolerances` names (``tolfun``, ``maxfevals``, ...) and, with ``restarts``,
the wrapper's options.  :func:`check_options` validates such a mapping without building
anything (config validation uses it); :func:`build` validates and constructs.  So adding a
strategy is one module plus one :func:`register` call; ``minimize``, campaign configs and
``cluster.tune.ESSearcher`` then accept its name and options, and the registry-parametrized tests
(``tests/test_strategies_contract.py``) cover it.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .numtypes import is_int, is_real
from .termination import Tolerances

__all__ = [
    "OptionSpec",
    "StrategyInfo",
    "STRATEGIES",
    "RESTARTS",
    "TOLERANCE_NAMES",
    "register",
    "unregister",
    "strategy_class",
    "check_options",
    "split_options",
    "flat_options",
    "build",
    "make_strategy",
]

#: Names of the termination thresholds accepted in a flat options mapping.
TOLERANCE_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Tolerances))


def _dtype_name(v):
    """``np.float32`` / ``np.dtype('float32')`` / ``'float32'`` -> ``'float32'`` (others unchanged)."""
    if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
        return np.dtype(v).name
    return v


@dataclass(frozen=True)
class OptionSpec:
    """One constructor option of a strategy or restart wrapper.

    Attributes
    ----------
    name : str
        Keyword argument name.
    type : type or tuple of types
        ``bool``, ``int``, ``float`` or ``str``; an ``int`` is accepted for ``float``, a ``bool``
        never for a number.  ``None`` is accepted exactly when ``default`` is None.
    default : Any
        The constructor's default.
    doc : str
        One line: meaning, units/scale, source.
    choices : tuple, optional
        Allowed values (checked after ``normalize``).
    minimum : float, optional
        Smallest allowed value (inclusive); other range checks are the constructor's.
    normalize : callable, optional
        Applied to a given value before the checks (e.g. numpy dtypes to their names).
    """

    name: str
    type: type | tuple[type, ...]
    default: Any
    doc: str
    choices: tuple | None = None
    minimum: float | None = None
    normalize: Callable[[Any], Any] | None = None

    def validate(self, value: Any, owner: str) -> Any:
        """Return ``value`` (normalized) or raise ``TypeError``/``ValueError`` naming the option."""
        if self.normalize is not None:
            value = self.normalize(value)
        if value is None and self.default is None:
            return None
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        if not any(_is_instance(value, t) for t in types):
            names = " or ".join(t.__name__ for t in types) + (" or None" if self.default is None else "")
            raise TypeError(f"option {self.name!r} of {owner!r} must be {names}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"option {self.name!r} of {owner!r} must be one of {list(self.choices)}, got {value!r}")
        if self.minimum is not None and not value >= self.minimum:
            raise ValueError(f"option {self.name!r} of {owner!r} must be >= {self.minimum}, got {value!r}")
        return value.item() if isinstance(value, np.generic) else value


def _is_instance(value: Any, t: type) -> bool:
    if t is bool:
        return isinstance(value, (bool, np.bool_))
    if t is int:
        return is_int(value)
    if t is float:
        return is_real(value)
    return isinstance(value, t)  # str, dict, list, tuple, ndarray: a bool is none of them


@dataclass(frozen=True)
class StrategyInfo:
    """A registered strategy or restart wrapper.

    Attributes
    ----------
    name : str
        Registry name (stored in checkpoints as ``class``; the class's ``name`` attribute).
    target : str
        ``"module:Class"``, imported on first use.
    options : tuple of OptionSpec
        Constructor options beyond the common ones.
    doc : str
        One line describing the algorithm and its source.
    """

    name: str
    target: str
    options: tuple[OptionSpec, ...] = ()
    doc: str = ""

    @property
    def option_names(self) -> tuple[str, ...]:
        """Names of :attr:`options`, in order."""
        return tuple(o.name for o in self.options)

    def option(self, name: str) -> OptionSpec:
        """The :class:`OptionSpec` called ``name``; ``KeyError`` if there is none."""
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(name)

    def load(self) -> type:
        """Import and return the class."""
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


STRATEGIES: dict[str, StrategyInfo] = {}
RESTARTS: dict[str, StrategyInfo] = {}
#: surrogate pre-screening wrappers (``"lq"``: :class:`esopt.surrogate.LQSurrogate`), by name
SURROGATES: dict[str, StrategyInfo] = {}


def register(info: StrategyInfo, *, restart: bool = False) -> StrategyInfo:
    """Add ``info`` to ``STRATEGIES`` (or to ``RESTARTS`` with ``restart=True``); returns it.

    Raises ``ValueError`` if the name is taken in either registry (names must be unique because
    checkpoints store only the name), ``TypeError`` if ``info`` is not a :class:`StrategyInfo`.
    """
    if not isinstance(info, StrategyInfo):
        raise TypeError(f"register() takes a StrategyInfo, got {type(info).__name__}")
    if info.name in STRATEGIES or info.name in RESTARTS:
        raise ValueError(f"strategy name {info.name!r} is already registered")
    if ":" not in info.target:
        raise ValueError(f"target must be 'module:Class', got {info.target!r}")
    clash = set(info.option_names) & (set(TOLERANCE_NAMES) | {"x0", "sigma0", "popsize", "seed", "bounds"})
    if clash:
        raise ValueError(f"options {sorted(clash)} of {info.name!r} clash with common arguments or tolerances")
    (RESTARTS if restart else STRATEGIES)[info.name] = info
    return info


def unregister(name: str) -> StrategyInfo:
    """Remove ``name`` from ``STRATEGIES`` or ``RESTARTS`` and return its info (for tests and
    plug-ins that register temporarily).  Raises ``ValueError`` for an unknown name."""
    for registry in (STRATEGIES, RESTARTS):
        if name in registry:
            return registry.pop(name)
    raise ValueError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES) + sorted(RESTARTS)}")


def _info(name: str) -> StrategyInfo:
    info = STRATEGIES.get(name) or RESTARTS.get(name) or SURROGATES.get(name)
    if info is None:
        known = sorted(STRATEGIES) + sorted(RESTARTS) + sorted(SURROGATES)
        raise ValueError(f"unknown strategy {name!r}; known: {known}")
    return info


def strategy_class(name: str) -> type:
    """The class registered under ``name`` (a key of ``STRATEGIES``, ``RESTARTS`` or ``SURROGATES``).

    Raises ``ValueError`` listing the known names for an unknown one.
    """
    return _info(name).load()


def _check_names(method: str, restarts: str | None) -> tuple[StrategyInfo, StrategyInfo | None]:
    if not isinstance(method, str) or method not in STRATEGIES:
        raise ValueError(f"unknown method {method!r} (a strategy name); known strategies: {sorted(STRATEGIES)}")
    if restarts is not None and (not isinstance(restarts, str) or restarts not in RESTARTS):
        raise ValueError(f"unknown restarts {restarts!r}; known: {sorted(RESTARTS)} or None")
    return STRATEGIES[method], (None if restarts is None else RESTARTS[restarts])


def split_options(
    method: str, options: Mapping[str, Any] | None, *, restarts: str | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Validate a flat options mapping (as :func:`check_options`) and split it.

    Returns
    -------
    (strategy, tolerances, wrapper) : three dicts
        Strategy constructor options, termination thresholds (:class:`esopt.Tolerances` names)
        and restart-wrapper options (empty without ``restarts``); values normalized.

    Raises
    ------
    ValueError
        Unknown ``method``/``restarts``, or an unknown key (the message names it and lists the
        known ones), or a value out of range.
    TypeError
        ``options`` not a mapping, or a value of the wrong type.
    """
    info, rinfo = _check_names(method, restarts)
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a mapping of option names to values, got {type(options).__name__}")
    wrapper_names = rinfo.option_names if rinfo is not None else ()
    strat: dict[str, Any] = {}
    tol: dict[str, Any] = {}
    wrap: dict[str, Any] = {}
    for key, value in options.items():
        if key in info.option_names:
            strat[key] = info.option(key).validate(value, method)
        elif key in TOLERANCE_NAMES:
            tol[key] = value
        elif key in wrapper_names:
            wrap[key] = rinfo.option(key).validate(value, restarts)
        else:
            raise ValueError(_unknown_message(key, method, info, restarts, rinfo))
    Tolerances(**tol).resolve(1, 2)  # type and range of the thresholds (TypeError/ValueError)
    return strat, tol, wrap


def _unknown_message(key, method: str, info: StrategyInfo, restarts, rinfo) -> str:
    msg = (
        f"unknown option {key!r} for strategy {method!r}; known: strategy options {sorted(info.option_names)}, "
        f"termination {sorted(TOLERANCE_NAMES)}"
    )
    if rinfo is not None:
        return msg + f", restarts {restarts!r} options {sorted(rinfo.option_names)}"
    wrapper_keys = sorted({o.name for r in RESTARTS.values() for o in r.options})
    if key in wrapper_keys:
        return msg + f"; {key!r} is an option of the restart wrappers: set restarts to one of {sorted(RESTARTS)}"
    return msg


def flat_options(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor-style keywords -> one flat options mapping: a ``tolerances`` entry (a dict or
    an :class:`esopt.Tolerances`) is replaced by its items (for a ``Tolerances``: the fields
    that differ from the defaults); every other entry is kept.

    Raises ``TypeError`` if ``tolerances`` is neither, ``ValueError`` if one of its names is
    also given at the top level.
    """
    flat = {k: v for k, v in kwargs.items() if k != "tolerances"}
    tol = kwargs.get("tolerances")
    if tol is None:
        return flat
    if isinstance(tol, Tolerances):
        default = Tolerances()
        tol = {f: getattr(tol, f) for f in TOLERANCE_NAMES if getattr(tol, f) != getattr(default, f)}
    if not isinstance(tol, Mapping):
        raise TypeError(f"tolerances must be a dict or an esopt.Tolerances, got {type(tol).__name__}")
    twice = sorted(set(tol) & set(flat))
    if twice:
        raise ValueError(f"{twice} given both in tolerances and as options; give each once")
    return {**flat, **tol}


def check_options(method: str, options: Mapping[str, Any] | None, *, restarts: str | None = None) -> dict[str, Any]:
    """Validate a flat mapping of options for ``method`` (optionally wrapped in ``restarts``).

    Keys may be ``method``'s options (``STRATEGIES[method].options``), :class:`esopt.Tolerances`
    names and, with ``restarts``, the wrapper's options.  Nothing is constructed; range checks
    that need ``n`` or ``popsize`` happen in :func:`build`.

    Returns
    -------
    dict
        A new flat dict of the validated options (numpy scalars and dtypes normalized to Python
        values and dtype names).

    Raises
    ------
    ValueError
        Unknown ``method`` or ``restarts`` name, unknown key (the message names it and lists the
        known keys), or a value out of range (e.g. ``max_restarts < 0``, negative ``tolfun``).
    TypeError
        ``options`` not a mapping, or a value of the wrong type (e.g. ``active="yes"``).
    """
    strat, tol, wrap = split_options(method, options, restarts=restarts)
    return {**strat, **tol, **wrap}


def build(
    method: str,
    x0,
    sigma0: float,
    *,
    restarts: str | None = None,
    popsize: int | None = None,
    seed=None,
    bounds=None,
    options: Mapping[str, Any] | None = None,
    surrogate: str | None = None,
):
    """Construct ``method`` (a ``STRATEGIES`` name), optionally inside ``restarts``, optionally
    pre-screened by ``surrogate``.

    Parameters
    ----------
    method : str
        Strategy name.
    x0 : array_like (n,)
        Initial mean.
    sigma0 : float > 0
        Initial step size, units of ``x``.
    restarts : {"ipop", "bipop"} or None
        Restart wrapper (:mod:`esopt.restarts`).
    popsize, seed, bounds
        As :class:`esopt.base.EvolutionStrategy` (the first run's popsize for a wrapper).
    options : mapping, optional
        Flat options, see :func:`check_options`.
    surrogate : {"lq"} or None
        Wrap the result in :class:`esopt.surrogate.LQSurrogate` (lq-CMA-ES pre-screening, Hansen,
        GECCO 2019); ``maxfevals`` then counts true evaluations and goes to the wrapper.

    Returns
    -------
    Strategy

    Raises
    ------
    ValueError, TypeError
        As :func:`check_options`, for an unknown ``surrogate``, and whatever the constructor
        rejects (``sigma0 <= 0``, ...).
    """
    if surrogate is not None and (not isinstance(surrogate, str) or surrogate not in SURROGATES):
        raise ValueError(f"unknown surrogate {surrogate!r}; known: {sorted(SURROGATES)} or None")
    strat, tol, wrap = split_options(method, options, restarts=restarts)
    maxfevals = tol.pop("maxfevals", None) if surrogate is not None else None
    common = dict(popsize=popsize, seed=seed, bounds=bounds, tolerances=Tolerances(**tol))
    if restarts is None:
        es = STRATEGIES[method].load()(x0, sigma0, **common, **strat)
    else:
        es = RESTARTS[restarts].load()(method, x0, sigma0, **common, **wrap, **strat)
    if surrogate is None:
        return es
    return SURROGATES[surrogate].load()(es, maxfevals=maxfevals)


def make_strategy(method: str, x0, sigma0: float, *, restarts: str | None = None, **kwargs: Any):
    """Construct ``method`` with constructor keywords (``popsize``, ``seed``, ``bounds``,
    ``tolerances``, strategy and wrapper options); kept for 0.1.0 callers, :func:`build` is the
    checked entry point.

    Raises ``ValueError`` for unknown names, and whatever the constructor rejects.
    """
    _check_names(method, restarts)
    if restarts is None:
        return STRATEGIES[method].load()(x0, sigma0, **kwargs)
    return RESTARTS[restarts].load()(method, x0, sigma0, **kwargs)


# ----- the built-in strategies -------------------------------------------------------------------
register(
    StrategyInfo(
        "cmaes",
        "esopt.cma:CMAES",
        (
            OptionSpec("active", bool, True, "negative weights for the worst candidates (active CMA, tutorial Eq. 46)"),
            OptionSpec(
                "sampling",
                str,
                "sqrt",
                "'sqrt': candidates m + sigma C^{1/2} z, the same on every BLAS kernel; 'eigen': m + sigma B D z, "
                "as esopt sampled before this option (its older checkpoints continue with it)",
                choices=("sqrt", "eigen"),
            ),
        ),
        "CMA-ES, full covariance (Hansen's tutorial, arXiv 1604.00772; pycma 4.5 defaults)",
    )
)
register(
    StrategyInfo(
        "sepcmaes",
        "esopt.sepcma:SepCMAES",
        (
            OptionSpec(
                "constants",
                str,
                "pycma",
                "'pycma': the CMA constants shared with cmaes (esopt.cmaconst); '0.1.0': esopt 0.1.0's",
                choices=("pycma", "0.1.0"),
            ),
        ),
        "diagonal CMA-ES (Ros and Hansen, PPSN 2008), O(n) per candidate",
    )
)
register(
    StrategyInfo(
        "lmmaes",
        "esopt.lmmaes:LMMAES",
        (
            OptionSpec("m", int, None, "number of direction vectors; default 4 + floor(3 ln n)", minimum=0),
            OptionSpec(
                "dtype",
                str,
                "float64",
                "precision of samples, direction vectors and paths",
                choices=("float64", "float32"),
                normalize=_dtype_name,
            ),
            OptionSpec("mirrored", bool, True, "mirrored sampling z, -z (the authors' C code)"),
            OptionSpec("damps", float, 2.0, "step-size damping: 2 as Algorithm 1, 1 as the authors' C code"),
        ),
        "limited-memory MA-ES (Loshchilov, Glasmachers and Beyer, TEVC 2019, Algorithm 1)",
    )
)
register(
    StrategyInfo(
        "canonical",
        "esopt.canonical:CanonicalES",
        (
            OptionSpec("mu", int, None, "parents recombined, 1 <= mu <= popsize; default popsize // 2", minimum=1),
            OptionSpec("csa", bool, False, "cumulative step-size adaptation of the authors' code"),
            OptionSpec("mirrored", bool, False, "antithetic sampling eps, -eps"),
            OptionSpec("lr", float, 1.0, "learning rate of the mean update (1 in the paper)"),
        ),
        "canonical (mu/mu_W, lambda)-ES (Chrabaszcz, Loshchilov and Hutter 2018, Algorithm 1)",
    )
)
register(
    StrategyInfo(
        "catcmawm",
        "esopt.mixed:CatCMAwM",
        (
            OptionSpec("integers", (list, tuple, np.ndarray), None, "coordinates that are integers (indices)"),
            OptionSpec(
                "categories",
                (dict, list, tuple, np.ndarray),
                None,
                "categorical coordinates: {index: number of categories K >= 2} or (index, K) pairs",
            ),
            OptionSpec(
                "stds",
                (list, tuple, np.ndarray),
                None,
                "initial standard deviations per coordinate, multiples of sigma0 (C0 = diag(stds^2))",
            ),
        ),
        "CatCMA with margin, continuous + integer + categorical (Hamano et al., GECCO 2024, arXiv 2405.09962)",
    )
)
_WRAPPER_OPTIONS = (
    OptionSpec("max_restarts", int, 9, "restarts after the first run (large-regime ones for BIPOP)", minimum=0),
    OptionSpec("incpopsize", float, 2.0, "population size factor per restart", minimum=1),
)
register(
    StrategyInfo("ipop", "esopt.restarts:IPOP", _WRAPPER_OPTIONS, "IPOP restarts (Auger and Hansen, CEC 2005)"),
    restart=True,
)
register(
    StrategyInfo(
        "bipop", "esopt.restarts:BIPOP", _WRAPPER_OPTIONS, "BIPOP restarts (Hansen, GECCO BBOB workshop 2009)"
    ),
    restart=True,
)
SURROGATES["lq"] = StrategyInfo(
    "lq",
    "esopt.surrogate:LQSurrogate",
    (),
    "lq-CMA-ES surrogate pre-screening around any strategy (Hansen, GECCO 2019, doi 10.1145/3321707.3321842)",
)
