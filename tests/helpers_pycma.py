"""pycma, the reference of the CMA-ES tests: its version and one constructor (no pycma output).

Reference values in the tests were read from this pycma version (the ``test`` extra pins it).
"""

from __future__ import annotations

import warnings

import cma

PYCMA_VERSION = "4.5.0"


def pycma(n: int, x0: float = 1.0, sigma0: float = 1.0, **opts) -> cma.CMAEvolutionStrategy:
    """``cma.CMAEvolutionStrategy(n * [x0], sigma0, {"verbose": -9, "seed": 1, **opts})``, its
    warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cma.CMAEvolutionStrategy(n * [x0], sigma0, {"verbose": -9, "seed": 1, **opts})
