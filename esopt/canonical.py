"""Canonical ES of Chrabaszcz, Loshchilov and Hutter (2018), "Back to Basics: Benchmarking
Canonical Evolution Strategies for Playing Atari", arXiv 1802.08842, Algorithm 1.

From the paper (Algorithm 1)::

    eps_i ~ N(0, I),  x_i = theta + sigma eps_i,  i = 1..lambda
    theta <- theta + lr * sigma * sum_{j=1..mu} w_j eps_{j:lambda},   lr = 1
    w_j = (ln(mu + 0.5) - ln j) / sum_k (ln(mu + 0.5) - ln k)

with ``sigma`` fixed (the paper's experiments; default ``csa=False``).

Options that are *not* Algorithm 1:

* ``csa=True``: the cumulative step-size adaptation kept in the authors' released code
  (``CanonicalESOptimizer.update``): ``cs = (mueff + 2)/(n + mueff + 5)``,
  ``ps <- (1 - cs) ps + sqrt(mueff cs (2 - cs)) sum_j w_j eps_{j:lambda}``,
  ``sigma <- sigma exp((cs/2)(|ps|^2/n - 1))``.
* ``mirrored=True``: antithetic pairs ``eps, -eps`` (rows ``eps_0, -eps_0, eps_1, ...``; an odd
  ``popsize`` leaves the last row unpaired).  The authors use mirrored sampling only in their
  OpenAI-ES optimizer (Salimans et al. 2017), not in canonical ES.
* ``lr`` other than 1 (the released code has the parameter, set to 1 in all experiments).

Defaults for ``popsize`` and ``mu`` are ours (``4 + floor(3 ln n)`` and ``floor(popsize/2)``);
the paper used hundreds of offspring and ``mu = 50``.  With ``sigma`` fixed, ``sigma`` can be
changed between generations by assigning ``es.sigma`` (a schedule is the caller's business).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import EvolutionStrategy, param_field, state_field
from .injection import clip_factors
from .numtypes import is_int, is_real
from .weights import log_weights, mueff

__all__ = ["CanonicalES", "CanonicalParams", "CanonicalState"]


@dataclass(frozen=True)
class CanonicalParams:
    """Frozen parameters of :class:`CanonicalES`.

    Attributes
    ----------
    n, popsize, mu : int
        Dimension, offspring lambda, parents recombined.
    weights : ndarray (mu,)
        Log weights of Algorithm 1 (:func:`esopt.weights.log_weights`), summing to 1.
    mueff : float
        ``1 / sum(weights**2)``.
    cs : float
        ``(mueff + 2)/(n + mueff + 5)`` (the authors' code; used only with ``csa``).
    csa, mirrored : bool
    lr : float
        Learning rate of the mean update.
    """

    n: int
    popsize: int
    mu: int
    weights: np.ndarray
    mueff: float
    cs: float
    csa: bool
    mirrored: bool
    lr: float

    @classmethod
    def create(cls, n: int, popsize: int, mu: int, csa: bool, mirrored: bool, lr: float) -> CanonicalParams:
        """Parameters for dimension ``n`` (arguments already validated)."""
        w = log_weights(mu)  # Algorithm 1 weights
        me = mueff(w)
        return cls(n, popsize, mu, w, me, (me + 2.0) / (n + me + 5.0), csa, mirrored, lr)


@dataclass
class CanonicalState:
    """Evolving state of :class:`CanonicalES`: ``mean`` (n,) theta, ``sigma``, ``ps`` (n,) the
    step-size path (``csa`` only), ``E`` the ``(n_fresh, n)`` draws of the pending ask or None."""

    mean: np.ndarray
    sigma: float
    ps: np.ndarray
    E: np.ndarray | None = None


class CanonicalES(EvolutionStrategy):
    """Canonical (mu/mu_W, lambda)-ES with fixed step size (Chrabaszcz et al. 2018, Algorithm 1).

    Parameters
    ----------
    x0 : array_like (n,)
        Initial parameters ``theta``.
    sigma0 : float > 0
        Noise standard deviation ``sigma`` (units of ``x``); constant unless ``csa=True``.
    popsize : int >= 2, optional
        ``lambda``; default ``4 + floor(3 ln n)``.
    mu : int, optional
        Parents recombined, ``1 <= mu <= popsize``; default ``floor(popsize / 2)``.
    seed, bounds, tolerances
        As :class:`esopt.base.EvolutionStrategy`.
    csa : bool
        Cumulative step-size adaptation of the authors' code (default False).
    mirrored : bool
        Antithetic sampling (default False).
    lr : float > 0
        Learning rate of the mean update (default 1, the paper's value).

    Raises
    ------
    ValueError, TypeError
        For the base class's reasons, ``mu`` out of range, non-bool flags or ``lr <= 0``.
    """

    name: ClassVar[str] = "canonical"
    ps = state_field()
    mu = param_field()
    weights = param_field()
    mueff = param_field()
    cs = param_field()
    csa = param_field()
    mirrored = param_field()
    lr = param_field()

    def __init__(
        self,
        x0,
        sigma0,
        *,
        popsize=None,
        mu=None,
        seed=None,
        bounds=None,
        tolerances=None,
        csa=False,
        mirrored=False,
        lr=1.0,
    ):
        for name, flag in (("csa", csa), ("mirrored", mirrored)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        if not is_real(lr):
            raise TypeError(f"lr must be a positive float, got {lr!r}")
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a positive finite float, got {lr!r}")
        if mu is not None and not is_int(mu):
            raise TypeError(f"mu must be an int, got {mu!r}")
        super().__init__(x0, sigma0, popsize=popsize, seed=seed, bounds=bounds, tolerances=tolerances)
        if mu is not None and not 1 <= mu <= self.popsize:
            raise ValueError(f"mu must satisfy 1 <= mu <= popsize = {self.popsize}, got {mu}")
        self.params = CanonicalParams.create(
            self.n, self.popsize, self.popsize // 2 if mu is None else int(mu), bool(csa), bool(mirrored), float(lr)
        )
        self.state = CanonicalState(mean=self.x0.copy(), sigma=self.sigma0, ps=np.zeros(self.n))

    def _init_options(self) -> dict[str, Any]:
        return {"mu": self.mu, "csa": self.csa, "mirrored": self.mirrored, "lr": self.lr}

    def _sample(self) -> np.ndarray:
        st, lam = self.state, self.popsize
        st.E = None
        n_fresh = (lam + 1) // 2 if self.params.mirrored else lam
        E = self._rng.standard_normal((n_fresh, self.n))  # eps_i ~ N(0, I)
        Y = np.empty((lam, self.n))
        if self.params.mirrored:
            np.add(st.mean, st.sigma * E, out=Y[0::2])  # theta + sigma eps
            np.subtract(st.mean, st.sigma * E[: lam // 2], out=Y[1::2])  # theta - sigma eps
        else:
            np.add(st.mean, st.sigma * E, out=Y)
        st.E = E
        return Y

    def _noise(self, Y: np.ndarray, rows: np.ndarray, injected: np.ndarray | None) -> np.ndarray:
        """``eps`` (len(rows), n) of the population rows ``rows``: the stored draws, or for injected
        rows ``(y - theta) / sigma`` with its length clipped to ``sqrt(n) + 2n/(n+2)``.

        The mean step of Algorithm 1 (Chrabaszcz et al., arXiv 1802.08842) is ``sum w_j eps_j``;
        an injected row has no stored draw, so its ``eps`` is recovered from the candidate.  A
        draw ``eps ~ N(0, I)`` has length ``chi_n`` (mean about ``sqrt(n - 1/2)``, sd about
        0.7), so the bound, Hansen's ``c_y`` for injected CMA-ES steps (arXiv 1110.4181, Sec. 2;
        :mod:`esopt.injection`) with the identity metric, keeps fair samples intact and bounds a
        wild one's pull on the mean (and on ``ps`` with ``csa=True``)."""
        st = self.state
        if self.params.mirrored:
            stored = np.where((rows % 2 == 0)[:, None], 1.0, -1.0) * st.E[rows // 2]
        else:
            stored = st.E[rows]
        if injected is None:
            return stored
        inj = injected[rows]
        if not inj.any():
            return stored
        eps = (Y[rows][inj] - st.mean) / st.sigma
        out = np.array(stored, dtype=float)
        out[inj] = clip_factors(eps, self.n)[:, None] * eps
        return out

    def _update(self, Y: np.ndarray, f: np.ndarray, order: np.ndarray, injected: np.ndarray | None) -> None:
        p, st = self.params, self.state
        best = order[: p.mu]
        step = p.weights @ self._noise(Y, best, injected)  # sum_j w_j eps_{j:lambda}
        st.mean = st.mean + p.lr * st.sigma * step  # Algorithm 1 mean update
        if p.csa:  # authors' code, not Algorithm 1
            st.ps = (1 - p.cs) * st.ps + np.sqrt(p.mueff * p.cs * (2 - p.cs)) * step
            st.sigma = float(st.sigma * np.exp(p.cs / 2 * (float(st.ps @ st.ps) / self.n - 1)))
        st.E = None

    def _search_view_parts(self) -> dict[str, Any]:
        return {"stds": np.full(self.n, self.sigma), "pc": None, "eigvals": None, "B": None}
