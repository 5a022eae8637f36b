"""Names of the strategies, for configs, checkpoints and ``minimize(method=...)``.

``STRATEGIES`` maps a name to ``"module:Class"``; classes are imported on first use.  Adding a
strategy = one module + one entry here (the registry-parametrized tests then cover it).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["STRATEGIES", "RESTARTS", "strategy_class", "make_strategy"]

STRATEGIES: dict[str, str] = {
    "cmaes": "esopt.cma:CMAES",
    "sepcmaes": "esopt.sepcma:SepCMAES",
    "lmmaes": "esopt.lmmaes:LMMAES",
    "canonical": "esopt.canonical:CanonicalES",
}
RESTARTS: dict[str, str] = {
    "ipop": "esopt.restarts:IPOP",
    "bipop": "esopt.restarts:BIPOP",
}


def strategy_class(name: str) -> type:
    """The class registered under ``name`` (a key of ``STRATEGIES`` or ``RESTARTS``).

    Raises ``ValueError`` listing the known names for an unknown one.
    """
    target = STRATEGIES.get(name) or RESTARTS.get(name)
    if target is None:
        raise ValueError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES) + sorted(RESTARTS)}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_strategy(method: str, x0, sigma0: float, *, restarts: str | None = None, **kwargs: Any):
    """Construct ``method`` (a ``STRATEGIES`` name), optionally wrapped in ``restarts``
    (``"ipop"`` or ``"bipop"``).  ``kwargs`` go to the constructor (``popsize``, ``seed``,
    ``bounds``, ``tolerances``, strategy options; ``max_restarts`` etc. for the wrapper).

    Raises ``ValueError`` for unknown names.
    """
    if method not in STRATEGIES:
        raise ValueError(f"unknown method {method!r}; known: {sorted(STRATEGIES)}")
    if restarts is None:
        return strategy_class(method)(x0, sigma0, **kwargs)
    if restarts not in RESTARTS:
        raise ValueError(f"unknown restarts {restarts!r}; known: {sorted(RESTARTS)} or None")
    return strategy_class(restarts)(method, x0, sigma0, **kwargs)
