"""esopt: evolution strategies for black-box minimization, with exact, pickle-free checkpoints.

Public names: the strategies :class:`CMAES`, :class:`SepCMAES`, :class:`LMMAES`,
:class:`CanonicalES`, the restart wrappers :class:`IPOP` and :class:`BIPOP`, :func:`minimize`,
:func:`save` / :func:`load`, :class:`Tolerances`, and the module :mod:`esopt.testfunctions`.
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
from .registry import RESTARTS, STRATEGIES, make_strategy, strategy_class
from .restarts import BIPOP, IPOP
from .sepcma import SepCMAES
from .termination import Tolerances

__version__ = "0.1.0"

__all__ = [
    "BIPOP",
    "CMAES",
    "IPOP",
    "LMMAES",
    "RESTARTS",
    "STRATEGIES",
    "BoxBounds",
    "CanonicalES",
    "EvolutionStrategy",
    "Result",
    "SepCMAES",
    "Strategy",
    "Tolerances",
    "load",
    "make_strategy",
    "minimize",
    "read_state",
    "save",
    "strategy_class",
    "testfunctions",
    "__version__",
]
