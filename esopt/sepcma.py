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

Everything else is shared with :class:`esopt.CMAES` through :mod:`esopt.cmaconst`: ``cs``,
``damps``, ``chiN`` (exact), pycma's ``hsig``, the clipped and capped Eq. (44); these are the
values pycma uses with ``CMA_diagonal=True`` (checked in ``tests/test_sepcma.py``).  Weights:
the positive part of :func:`esopt.weights.recombination_weights` (tutorial Eq. (49),
``mu = floor(lambda/2)``).  Deliberate differences to CMAES and to pycma's ``CMA_diagonal``: no
negative (active) weights and the additive Eq. (47) on the diagonal (Ros and Hansen's sep-CMA-ES;
pycma updates the diagonal multiplicatively with active weights), and no lazy eigendecomposition
(there is none to do).

``constants="0.1.0"`` reproduces esopt 0.1.0's SepCMAES (the tutorial's ``cs = (mueff + 2)/(n +
mueff + 5)`` and ``damps`` with ``a = 1``, ``chiN ~ sqrt(n)(1 - 1/(4n) + 1/(21 n^2))``, the
tutorial's ``hsig``, an unclipped, uncapped Eq. (44)); checkpoints written by 0.1.0 load with it,
so that they continue bit-for-bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import cmaconst
from .base import EvolutionStrategy, param_field, state_field
from .injection import clip_factors
from .weights import mueff as _mueff
from .weights import recombination_weights

__all__ = ["SepCMAES", "SepCMAParams", "SepCMAState", "separable_learning_rates", "CONSTANTS"]

#: values of the ``constants`` option: today's shared constants, or esopt 0.1.0's
CONSTANTS = ("pycma", "0.1.0")


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


@dataclass(frozen=True)
class SepCMAParams:
    """Frozen parameters of :class:`SepCMAES` (Hansen's names, see the module docstring).

    Attributes
    ----------
    n, popsize, mu : int
    weights : ndarray (mu,)
        Positive recombination weights, summing to 1.
    mueff, c1, cmu, cc, cs, damps, chiN : float
    sigma_cap : float
        ``sigma0 * SIGMA_CAP_FACTOR`` (``inf`` with ``constants="0.1.0"``).
    constants : str
        ``"pycma"`` or ``"0.1.0"``.
    """

    n: int
    popsize: int
    mu: int
    weights: np.ndarray
    mueff: float
    c1: float
    cmu: float
    cc: float
    cs: float
    damps: float
    chiN: float
    sigma_cap: float
    constants: str

    @classmethod
    def create(cls, n: int, popsize: int, sigma0: float, constants: str = "pycma") -> SepCMAParams:
        """Parameters for dimension ``n``, ``popsize`` and ``sigma0`` (validated by the caller)."""
        w, mu = recombination_weights(popsize)  # Eq. (49)
        weights = w[:mu].copy()
        me = _mueff(weights) if constants == "0.1.0" else cmaconst.mueff(weights)
        r = separable_learning_rates(n, me)
        if constants == "0.1.0":
            cs = (me + 2.0) / (n + me + 5.0)  # tutorial Table 1
            damps = 1.0 + 2.0 * max(0.0, np.sqrt((me - 1.0) / (n + 1.0)) - 1.0) + cs
            chiN = n**0.5 * (1.0 - 1.0 / (4.0 * n) + 1.0 / (21.0 * n**2))
            cap = np.inf
        else:
            cs = cmaconst.csa_cs(n, me)
            damps = cmaconst.csa_damps(n, me, cs)
            chiN = cmaconst.expected_norm(n)
            cap = sigma0 * cmaconst.SIGMA_CAP_FACTOR
        return cls(n, popsize, mu, weights, me, r["c1"], r["cmu"], r["cc"], cs, damps, chiN, cap, constants)


@dataclass
class SepCMAState:
    """Evolving state of :class:`SepCMAES`: ``mean`` (n,), ``sigma``, ``C`` (n,) the diagonal of
    the covariance matrix, ``pc`` and ``ps`` (n,) the evolution paths."""

    mean: np.ndarray
    sigma: float
    C: np.ndarray
    pc: np.ndarray
    ps: np.ndarray


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
    constants : {"pycma", "0.1.0"}
        The shared CMA constants of :mod:`esopt.cmaconst` (default), or esopt 0.1.0's.

    ``es.params`` is a :class:`SepCMAParams`, ``es.state`` a :class:`SepCMAState`; their fields
    are also attributes of ``es``.  Raises as the base class, and ``ValueError`` for another
    ``constants``.
    """

    name: ClassVar[str] = "sepcmaes"
    _V1_OPTIONS: ClassVar[dict[str, Any]] = {"constants": "0.1.0"}
    C = state_field()
    pc = state_field()
    ps = state_field()
    mu = param_field()
    weights = param_field()
    mueff = param_field()
    c1 = param_field()
    cmu = param_field()
    cc = param_field()
    cs = param_field()
    damps = param_field()
    chiN = param_field()

    def __init__(self, x0, sigma0, *, popsize=None, seed=None, bounds=None, tolerances=None, constants="pycma"):
        if constants not in CONSTANTS:
            raise ValueError(f"constants must be one of {list(CONSTANTS)}, got {constants!r}")
        super().__init__(x0, sigma0, popsize=popsize, seed=seed, bounds=bounds, tolerances=tolerances)
        n = self.n
        self.params = SepCMAParams.create(n, self.popsize, self.sigma0, constants)
        self.state = SepCMAState(mean=self.x0.copy(), sigma=self.sigma0, C=np.ones(n), pc=np.zeros(n), ps=np.zeros(n))

    def _init_options(self) -> dict[str, Any]:
        return {"constants": self.params.constants}

    def _sample(self) -> np.ndarray:
        st = self.state
        z = self._rng.standard_normal((self.popsize, self.n))  # Eq. (38)
        return st.mean + st.sigma * (np.sqrt(st.C) * z)  # Eqs. (39)-(40)

    def _update(self, Y: np.ndarray, f: np.ndarray, order: np.ndarray, injected: np.ndarray | None) -> None:
        n, p, st = self.n, self.params, self.state
        if injected is not None:
            Y = self._clip_injected(Y, injected)
        y = (Y[order[: p.mu]] - st.mean) / st.sigma  # y_{i:lambda}
        y_w = p.weights @ y
        st.mean = st.mean + st.sigma * y_w  # Eq. (41)
        D = np.sqrt(st.C)
        st.ps = (1 - p.cs) * st.ps + np.sqrt(p.cs * (2 - p.cs) * p.mueff) * (y_w / D)  # (43)
        g = self.countiter  # generations completed, this one included
        if p.constants == "0.1.0":  # the tutorial's h_sigma
            hsig = np.linalg.norm(st.ps) / np.sqrt(1 - (1 - p.cs) ** (2 * g)) / p.chiN < 1.4 + 2.0 / (n + 1)
        else:
            ps2 = float(st.ps @ st.ps)
            hsig = cmaconst.hsig(ps2, p.cs, g, n)
        st.pc = (1 - p.cc) * st.pc + hsig * np.sqrt(p.cc * (2 - p.cc) * p.mueff) * y_w  # (45)
        delta = (1 - hsig) * p.cc * (2 - p.cc)
        st.C = (
            (1 + p.c1 * delta - p.c1 - p.cmu) * st.C  # Eq. (47)
            + p.c1 * st.pc**2
            + p.cmu * (p.weights @ (y * y))
        )
        if p.constants == "0.1.0":  # Eq. (44), unclipped
            st.sigma = float(st.sigma * np.exp((p.cs / p.damps) * (np.linalg.norm(st.ps) / p.chiN - 1)))
        else:  # Eq. (44), clipped and capped
            st.sigma = cmaconst.csa_sigma(st.sigma, ps2**0.5, p.chiN, p.cs / p.damps, p.sigma_cap)

    def _clip_injected(self, Y: np.ndarray, injected: np.ndarray) -> np.ndarray:
        """``Y`` (popsize, n) with each injected step shortened to the Mahalanobis length
        ``|(x - m) / (sigma sqrt(C))| <= sqrt(n) + 2n/(n+2)`` in the diagonal metric (Hansen, arXiv
        1110.4181, Sec. 2, with ``C^{-1/2} = diag(C)^{-1/2}``; :mod:`esopt.injection`).  A new
        array; rows told as asked are unchanged."""
        st = self.state
        Y = np.array(Y, dtype=float)
        steps = Y[injected] - st.mean
        alpha = clip_factors(steps / (st.sigma * np.sqrt(st.C)), self.n)
        Y[injected] = st.mean + alpha[:, None] * steps
        return Y

    def _search_view_parts(self) -> dict[str, Any]:
        st = self.state
        return {"stds": st.sigma * np.sqrt(st.C), "pc": st.pc, "eigvals": None, "B": None}
