"""sep-CMA-ES: CMA-ES with a diagonal covariance matrix, O(n) time and memory per candidate.

Ros and Hansen, "A Simple Modification in CMA-ES Achieving Linear Time and Space Complexity",
PPSN X, 2008: the covariance matrix ``C`` of CMA-ES is restricted to its diagonal, so that
``B = I`` and ``D = sqrt(diag C)``; every other line is the CMA-ES of Hansen's tutorial
(arXiv 1604.00772, Eqs. (38)-(47), equation numbers below), with positive log weights only.
Sampling (Eqs. (38)-(40)) and updates::

    z_k ~ N(0, I),  y_k = D * z_k,  x_k = mean + sigma y_k
    y_w = sum_i w_i y_{i:lambda};  mean <- mean + sigma y_w                      # (41)
    ps <- (1 - cs) ps + sqrt(cs (2 - cs) mueff) y_w / D                        # (43)
    pc <- (1 - cc) pc + hsig sqrt(cc (2 - cc) mueff) y_w                       # (45)
    C  <- (1 + c1 delta(hsig) - c1 - cmu) C + c1 pc^2 + cmu sum_i w_i y_{i:lambda}^2   # (47)
    sigma <- sigma exp((cs / damps) (|ps| / E|N(0,I)| - 1))                      # (44)

Learning rates: Ros and Hansen (2008) scale the full-CMA rates by ``(n + 2)/3``; we use pycma's
separable rates instead (pycma 4.5.0, ``cma/options_parameters.py``, ``CMAParameters.set``,
read from the installed source):

* ``c1_sep = 1 / (n + 2 sqrt(n) + mueff / n)``
* ``cmu_sep = min(1 - c1_sep, (0.25 + mueff + 1/mueff - 2) / (n + 4 sqrt(n) + mueff / 2))``
* ``cc_sep = (1 + 1/n + mueff/n) / (sqrt(n) + 1/n + 2 mueff/n)``

and the tutorial's ``cs = (mueff + 2)/(n + mueff + 5)``,
``damps = 1 + 2 max(0, sqrt((mueff - 1)/(n + 1)) - 1) + cs``, ``hsig`` as the tutorial's
Eq. (45) footnote: ``|ps| / sqrt(1 - (1 - cs)^(2 (g+1))) / chiN < 1.4 + 2/(n + 1)``.
Weights ``w_i = ln((lambda + 1)/2) - ln i`` normalized over ``mu = floor(lambda/2)``
(tutorial Eq. (49) as pycma).  Unlike pycma's ``CMA_diagonal=True`` (which updates the diagonal
multiplicatively with active weights), the update of ``C`` here is the additive Eq. (47).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import EvolutionStrategy
from .weights import mueff as _mueff

__all__ = ["SepCMAES", "separable_learning_rates"]


def separable_learning_rates(n: int, mueff: float) -> dict[str, float]:
    """pycma 4.5.0's separable learning rates ``c1_sep``, ``cmu_sep`` and ``cc_sep``.

    Parameters
    ----------
    n : int >= 1
        Dimension.
    mueff : float >= 1
        Variance-effective selection mass.

    Returns
    -------
    dict with keys ``c1``, ``cmu``, ``cc`` (floats in (0, 1]).
    """
    c1 = 1.0 / (n + 2.0 * n**0.5 + mueff / n)
    cmu = min(1.0 - c1, (0.25 + mueff + 1.0 / mueff - 2.0) / (n + 4.0 * n**0.5 + mueff / 2.0))
    cc = (1.0 + 1.0 / n + mueff / n) / (n**0.5 + 1.0 / n + 2.0 * mueff / n)
    return {"c1": c1, "cmu": cmu, "cc": min(1.0, cc)}


class SepCMAES(EvolutionStrategy):
    """Diagonal CMA-ES (Ros and Hansen 2008) with pycma's separable learning rates.

    Parameters
    ----------
    x0 : array_like (n,)
        Initial mean.
    sigma0 : float > 0
        Initial step size (units of ``x``).
    popsize : int >= 2, optional
        ``lambda``; default ``4 + floor(3 ln n)``.
    seed, bounds, tolerances
        As :class:`esopt.base.EvolutionStrategy`.

    State: ``mean`` (n,), ``sigma``, ``C`` (n,) the diagonal of the covariance matrix, ``pc`` and
    ``ps`` (n,).  Raises as the base class.
    """

    name: ClassVar[str] = "sepcmaes"
    _state_attrs: ClassVar[tuple[str, ...]] = ("mean", "sigma", "C", "pc", "ps")

    def __init__(self, x0, sigma0, *, popsize=None, seed=None, bounds=None, tolerances=None):
        super().__init__(x0, sigma0, popsize=popsize, seed=seed, bounds=bounds, tolerances=tolerances)
        n, lam = self.n, self.popsize
        self.mu = lam // 2
        w = np.log((lam + 1) / 2.0) - np.log(np.arange(1, self.mu + 1))  # Eq. (49)
        self.weights = w / w.sum()
        self.mueff = _mueff(self.weights)
        rates = separable_learning_rates(n, self.mueff)
        self.c1, self.cmu, self.cc = rates["c1"], rates["cmu"], rates["cc"]
        self.cs = (self.mueff + 2.0) / (n + self.mueff + 5.0)  # Table 1
        self.damps = 1.0 + 2.0 * max(0.0, np.sqrt((self.mueff - 1.0) / (n + 1.0)) - 1.0) + self.cs
        self.chiN = n**0.5 * (1.0 - 1.0 / (4.0 * n) + 1.0 / (21.0 * n**2))
        self.mean = self.x0.copy()
        self.sigma = self.sigma0
        self.C = np.ones(n)
        self.pc = np.zeros(n)
        self.ps = np.zeros(n)

    def _sample(self) -> np.ndarray:
        z = self._rng.standard_normal((self.popsize, self.n))  # Eq. (38)
        return self.mean + self.sigma * (np.sqrt(self.C) * z)  # Eqs. (39)-(40)

    def _update(self, Y: np.ndarray, f: np.ndarray) -> None:
        n = self.n
        order = np.argsort(f, kind="stable")[: self.mu]
        y = (Y[order] - self.mean) / self.sigma  # y_{i:lambda}
        y_w = self.weights @ y
        self.mean = self.mean + self.sigma * y_w  # Eq. (41)
        D = np.sqrt(self.C)
        self.ps = (1 - self.cs) * self.ps + np.sqrt(self.cs * (2 - self.cs) * self.mueff) * (y_w / D)  # (43)
        g = self.countiter  # generations completed, this one included
        hsig = np.linalg.norm(self.ps) / np.sqrt(1 - (1 - self.cs) ** (2 * g)) / self.chiN < 1.4 + 2.0 / (n + 1)
        self.pc = (1 - self.cc) * self.pc + hsig * np.sqrt(self.cc * (2 - self.cc) * self.mueff) * y_w  # (45)
        delta = (1 - hsig) * self.cc * (2 - self.cc)
        self.C = (
            (1 + self.c1 * delta - self.c1 - self.cmu) * self.C  # Eq. (47)
            + self.c1 * self.pc**2
            + self.cmu * (self.weights @ (y * y))
        )
        self.sigma = float(
            self.sigma * np.exp((self.cs / self.damps) * (np.linalg.norm(self.ps) / self.chiN - 1))
        )  # Eq. (44)

    def _search_view_parts(self) -> dict[str, Any]:
        return {"stds": self.sigma * np.sqrt(self.C), "pc": self.pc, "eigvals": None, "B": None}
