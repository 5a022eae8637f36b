"""esopt: evolution strategies for black-box minimization, with exact, pickle-free checkpoints.

Public names: the strategies :class:`CMAES`, :class:`SepCMAES`, :class:`LMMAES`,
:class:`CanonicalES`, the mixed-variable :class:`CatCMAwM` (continuous, integer and categorical
coordinates), the restart wrappers :class:`IPOP` and :class:`BIPOP`, the surrogate pre-screening wrapper
:class:`LQSurrogate` (lq-CMA-ES), :func:`minimize`,
:func:`save` / :func:`load`, :class:`Tolerances`, the registry (:func:`build`,
:func:`check_options`, :func:`register`, :class:`StrategyInfo`, :class:`OptionSpec`; see
:mod:`esopt.registry`), and the module :mod:`esopt.testfunctions`.  Helpers shared with the other layers:
:func:`esopt.jsonutil.to_jsonable` (numpy values to JSON) and
:func:`esopt.checkpoint.atomic_write_bytes`; :mod:`esopt.cmaconst` holds the CMA constants that
CMAES and SepCMAES share.
This package imports only numpy and scipy (never torch or ray).
"""

from . import testfunctions
from .base import EvolutionStrategy, Result, Strategy
from .bounds import BoxBounds
from .canonical import CanonicalES
from .checkpoint import load, read_state, save
from .cma import CMAES
from .lmmaes import LMMAES
from .minimize import minimize
from .mixed import CatCMAwM
from .registry import (
    RESTARTS,
    STRATEGIES,
    SURROGATES,
    OptionSpec,
    StrategyInfo,
    build,
    check_options,
    make_strategy,
    register,
    strategy_class,
)
from .restarts import BIPOP, IPOP
from .sepcma import SepCMAES
from .surrogate import LQSurrogate
from .termination import Tolerances

__version__ = "0.1.0"

__all__ = [
    "BIPOP",
    "CMAES",
    "CatCMAwM",
    "IPOP",
    "LMMAES",
    "LQSurrogate",
    "RESTARTS",
    "STRATEGIES",
    "SURROGATES",
    "BoxBounds",
    "OptionSpec",
    "StrategyInfo",
    "CanonicalES",
    "EvolutionStrategy",
    "Result",
    "SepCMAES",
    "Strategy",
    "Tolerances",
    "build",
    "check_options",
    "load",
    "make_strategy",
    "minimize",
    "read_state",
    "register",
    "save",
    "strategy_class",
    "testfunctions",
    "__version__",
]
