"""CMA-ES with full covariance matrix, active (negative) weights and lazy eigendecomposition.

Follows N. Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772 (2016/2023);
equation numbers in the comments refer to it.  Default parameters follow pycma 4.5.0
(``CMAParameters`` in ``options_parameters.py``, ``RecombinationWeights``,
``CMAAdaptSigmaCSA`` in ``sigma_adaptation.py``) wherever pycma differs from the tutorial's
Table 1; each such place is marked "pycma".

One generation::

    z_k ~ N(0, I)                                 Eq. (38)   one (popsize, n) draw
    y_k = B D z_k ~ N(0, C)                       Eq. (39)   one matrix product Z @ (B D)^T
    x_k = m + sigma y_k ~ N(m, sigma^2 C)         Eq. (40)
    <y>_w = sum_{i<=mu} w_i y_{i:lambda}          Eq. (41)
    m <- m + c_m sigma <y>_w                      Eq. (42)
    p_s <- (1-c_s) p_s + sqrt(c_s(2-c_s)mueff) C^{-1/2} <y>_w          Eq. (43)
    sigma <- sigma exp(c_s/d_s (|p_s| / E|N(0,I)| - 1))                  Eq. (44)
    p_c <- (1-c_c) p_c + h_s sqrt(c_c(2-c_c)mueff) <y>_w                Eq. (45)
    w°_i = w_i (w_i >= 0) or w_i n / |C^{-1/2} y_{i:lambda}|^2 (w_i < 0) Eq. (46)
    C <- (1 + c1 delta(h_s) - c1 - cmu sum w) C + c1 p_c p_c^T
                                    + cmu sum_i w°_i y_{i:lambda} y_{i:lambda}^T    Eq. (47)

``C^{-1/2} y_k = B z_k`` because B and D are those used for sampling (they are only
recomputed at the end of a ``tell``), so Eq. (43) and (46) cost no extra linear solve.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from scipy.linalg.blas import dsyrk as _dsyrk
from scipy.linalg.lapack import dsyevd as _dsyevd
from scipy.special import gammaln

from .base import EvolutionStrategy
from .weights import finalize_negative_weights, recombination_weights

__all__ = ["CMAES", "CMAParameters", "cma_parameters", "expected_norm"]

#: sigma is never allowed above ``sigma0 * SIGMA_CAP_FACTOR`` (beyond ``tolupsigma = 1e20``, so a
#: run that honours ``stop()`` never meets the cap; it keeps the arithmetic finite otherwise).
SIGMA_CAP_FACTOR = 1e30
#: per-generation bound of ``|log(sigma_new / sigma)|`` (pycma's ``max_delta_log_sigma``).
MAX_DELTA_LOG_SIGMA = 1.0
#: eigenvalues of C are clamped to at least ``EIG_FLOOR * max eigenvalue``.
EIG_FLOOR = 1e-20


def expected_norm(n: int) -> float:
    """``E|N(0, I_n)| = sqrt(2) Gamma((n+1)/2) / Gamma(n/2)`` (tutorial, below Eq. (44)).

    Exact (log-gamma); pycma's ``Mh.chiN`` tabulates the exact value for ``n <= 100`` and uses
    ``sqrt(n) (1 - 1/(4n) + 1/(32 n^2))`` above (relative difference < 1e-7).
    """
    return float(math.sqrt(2.0) * math.exp(gammaln((n + 1) / 2.0) - gammaln(n / 2.0)))


def _eigh(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of the symmetric matrix given by the
    upper triangle of ``C`` (LAPACK ``dsyevd`` called directly: less overhead than
    ``numpy.linalg.eigh`` at small n)."""
    w, v, info = _dsyevd(C, compute_v=1, lower=0)
    if info != 0:
        return np.linalg.eigh(C, UPLO="U")
    return w, v


class CMAParameters:
    """Frozen strategy parameters of CMA-ES for dimension ``n`` and ``popsize`` (pycma 4.5.0 defaults).

    Attributes (Hansen's names)
    ---------------------------
    n, popsize, mu : int
    weights : ndarray (popsize,)
        Recombination weights, ``weights[:mu] > 0`` summing to 1; the rest negative (active CMA,
        Eq. (49)-(53), as pycma's ``RecombinationWeights``) or zero when ``active=False``.
    mueff : float
        ``1 / sum(weights[:mu]**2)`` (Table 1).
    cm : float
        Mean learning rate, 1 (Eq. (54)).
    cs : float
        pycma: ``min(1/2, (mueff + 2) / (n + mueff + 3))`` (the tutorial's Eq. (55) has ``+ 5``).
    damps : float
        pycma: ``1 + 2 max(0, a sqrt((mueff - 1)/(n + 1)) - 1) + cs`` with
        ``a = max(1, 3 (1 - 2**(-n/9)))`` (tutorial Eq. (55) has ``a = 1``); the constant 1 is
        pycma's ``1/2 + min(1, (lam_mirr/(0.159 popsize) - 1)^2) / 2`` without mirrored sampling.
    cc : float
        ``(4 + mueff/n) / (n + 4 + 2 mueff/n)`` (Eq. (56)).
    c1 : float
        ``min(1, popsize/6) * 2 / ((n + 1.3)^2 + mueff)`` (Eq. (57); the factor is pycma's).
    cmu : float
        ``min(1 - c1, 2 (1/4 + mueff - 2 + 1/mueff) / ((n + 2)^2 + mueff))`` (Eq. (58)).
    chiN : float
        ``E|N(0, I)|`` (:func:`expected_norm`).
    lazy_gap : float
        Generations between eigendecompositions, ``1 / (10 n (c1 + cmu))`` (pycma's
        ``lazy_update_gap``; the tutorial's implementation notes postpone the O(n^3) update of B and
        D so that the cost per generation is O(n^2)).

    Raises ``ValueError`` for ``n < 1`` or ``popsize < 2``.
    """

    def __init__(self, n: int, popsize: int, active: bool = True):
        if n < 1:
            raise ValueError(f"dimension n must be >= 1, got {n}")
        if popsize < 2:
            raise ValueError(f"popsize must be >= 2, got {popsize}")
        self.n, self.popsize, self.active = int(n), int(popsize), bool(active)
        w, mu = recombination_weights(popsize)  # Eq. (49)
        self.mu = mu
        self.mueff = float(1.0 / np.sum(w[:mu] ** 2))
        mueff = self.mueff
        self.cm = 1.0  # Eq. (54)
        self.cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)  # Eq. (56)
        self.c1 = min(1.0, popsize / 6) * 2 / ((n + 1.3) ** 2 + mueff)  # Eq. (57)
        self.cmu = min(1 - self.c1, 2 * (0.25 + mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))  # Eq. (58)
        if active:
            w = finalize_negative_weights(w, mu, n, self.c1, self.cmu)  # Eq. (50)-(53)
        else:
            w[mu:] = 0.0
        self.weights = w
        self.cs = min(0.5, (mueff + 2) / (n + mueff + 3))  # Eq. (55), pycma
        a = max(1.0, 3 * (1 - 0.5 ** (n / 9)))
        self.damps = 1.0 + 2 * max(0.0, a * ((mueff - 1) / (n + 1)) ** 0.5 - 1) + self.cs  # Eq. (55), pycma
        self.chiN = expected_norm(n)
        self.lazy_gap = 1.0 / (self.c1 + self.cmu + 1e-23) / n / 10


def cma_parameters(n: int, popsize: int, active: bool = True) -> CMAParameters:
    """The :class:`CMAParameters` for dimension ``n`` and ``popsize``."""
    return CMAParameters(n, popsize, active)


class CMAES(EvolutionStrategy):
    """CMA-ES (Hansen's tutorial, arXiv 1604.00772) with pycma 4.5.0's default parameters.

    Parameters
    ----------
    x0 : array_like (n,)
        Initial mean (inside ``bounds`` if given).
    sigma0 : float > 0
        Initial step size, in units of ``x``; about a quarter of the search range is a
        reasonable choice.
    popsize : int >= 2, optional
        lambda, default ``4 + floor(3 ln n)`` (Eq. (48)); ``mu = popsize // 2``.
    seed : int, numpy.random.Generator or None
        All randomness comes from it.
    bounds : (lower, upper), optional
        Box constraints handled by periodic reflection (:class:`esopt.bounds.BoxBounds`): the
        distribution lives in unbounded internal coordinates, ``ask()`` returns the reflected
        points, which always lie inside the box.
    active : bool
        Use negative weights for the worst ``popsize - mu`` candidates (active CMA, Eq. (46)-(53)).
    tolerances : esopt.Tolerances or dict, optional
        Termination thresholds (pycma's names and defaults), see :meth:`stop`.

    Attributes
    ----------
    mean : ndarray (n,)  distribution mean (internal coordinates)
    sigma : float  step size
    C : ndarray (n, n)  covariance matrix, exactly symmetric and positive definite; the update
        works in place on its upper triangle (BLAS ``syrk``) and reading ``C`` mirrors it
    pc, ps : ndarray (n,)  evolution paths of C and of sigma
    B : ndarray (n, n), D : ndarray (n,)  eigenvectors (columns) and sqrt of eigenvalues
        (ascending) of C at the last eigendecomposition; sampling uses them
    weights, mu, mueff, cc, cs, c1, cmu, damps, chiN, lazy_gap : see :class:`CMAParameters`

    Raises
    ------
    ValueError, TypeError
        As :class:`esopt.base.EvolutionStrategy` (``sigma0 <= 0``, non-finite or mis-shaped
        ``x0``, ``x0`` outside bounds, ``lower >= upper``, bad ``popsize``/tolerances).

    Notes
    -----
    Safeguards, each a named method: :meth:`_symmetrize`, :meth:`_clamp_eigenvalues`,
    :meth:`_eigendecompose` (lazy, every ``lazy_gap`` generations), :meth:`_cap_sigma`.
    Differences to pycma: C starts as the identity (pycma perturbs its diagonal by ``1e-4``
    relative to break ties); hsig is pycma's test ``|p_s|^2 / (1-(1-c_s)^(2g)) / n < 2 + 4/(n+1)``;
    no mirrored sampling (pycma mirrors for ``popsize < 6``).
    """

    name: ClassVar[str] = "cmaes"
    _state_attrs: ClassVar[tuple[str, ...]] = (
        "mean",
        "sigma",
        "C",
        "pc",
        "ps",
        "B",
        "D",
        "eigen_iter",
        "_Z",
    )

    def __init__(self, x0, sigma0, *, popsize=None, seed=None, bounds=None, active=True, tolerances=None):
        if not isinstance(active, (bool, np.bool_)):
            raise TypeError(f"active must be a bool, got {active!r}")
        super().__init__(x0, sigma0, popsize=popsize, seed=seed, bounds=bounds, tolerances=tolerances)
        n = self.n
        self.active = bool(active)
        p = CMAParameters(n, self.popsize, self.active)
        self.params = p
        self.mu, self.weights, self.mueff = p.mu, p.weights, p.mueff
        self.cm, self.cc, self.cs, self.c1, self.cmu = p.cm, p.cc, p.cs, p.c1, p.cmu
        self.damps, self.chiN, self.lazy_gap = p.damps, p.chiN, p.lazy_gap
        # frozen helpers for tell
        self._wpos = np.ascontiguousarray(self.weights[: self.mu])
        wneg = self.weights[self.mu :]
        self._has_neg = bool(np.any(wneg < 0))
        self._sum_w = float(np.sum(self.weights))
        self._ps_wpos = math.sqrt(self.cs * (2 - self.cs) * self.mueff) * self._wpos
        self._pc_fac = math.sqrt(self.cc * (2 - self.cc) * self.mueff)
        self._sqrt_c1 = math.sqrt(self.c1)
        self._sqrt_cmu_wpos = np.sqrt(self.cmu * self._wpos)[:, None]
        self._sqrt_cmu_n_wneg = np.sqrt(-self.cmu * n * np.minimum(wneg, 0.0))
        self._cs_damps = self.cs / self.damps
        self._hsig_bound = 2 + 4.0 / (n + 1)
        # evolving state
        self.mean = self.x0.copy()
        self.sigma = self.sigma0
        self.C = np.eye(n)
        self.pc = np.zeros(n)
        self.ps = np.zeros(n)
        self.B = np.asfortranarray(np.eye(n))  # Fortran order, as dsyevd returns it
        self.D = np.ones(n)
        self.eigen_iter = 0  # countiter of the last eigendecomposition
        self._no_Z = np.empty((0, n))
        self._Z = self._no_Z  # N(0, I) draws of the pending ask
        self._BD = self.B * self.D
        self._V = np.empty((self.mu + 1, n))

    def _init_options(self) -> dict[str, Any]:
        return {"active": self.active}

    def _after_load(self) -> None:
        # eigh returns B in Fortran order; state_dict() copies it in C order, and `B @ z` rounds
        # differently for the two layouts, so restore the live layout (bit-for-bit resume)
        self.B = np.asfortranarray(self.B)
        self._BD = self.B * self.D

    # ----- sampling ----------------------------------------------------------------------------
    def _sample(self) -> np.ndarray:
        Z = self._rng.standard_normal((self.popsize, self.n))  # Eq. (38): z_k ~ N(0, I)
        self._Z = Z
        Y = Z @ self._BD.T  # Eq. (39): y_k = B D z_k ~ N(0, C)
        Y *= self.sigma
        Y += self.mean  # Eq. (40): x_k = m + sigma y_k ~ N(m, sigma^2 C)
        return Y

    # ----- update ------------------------------------------------------------------------------
    def _update(self, Y: np.ndarray, f: np.ndarray) -> None:
        n, mu, sigma, mean = self.n, self.mu, self.sigma, self.mean
        order = f.argsort(kind="stable")
        Z = self._Z if (Y is self._asked_Y and self._Z.shape == Y.shape) else self._pending_z(Y, mean, sigma)
        zs = Z[order]
        ys = Y[order]
        ys -= mean
        ys /= sigma  # y_{i:lambda} = (x_{i:lambda} - m) / sigma, sorted
        yw = self._wpos @ ys[:mu]  # Eq. (41)
        self.mean = mean + (self.cm * sigma) * yw  # Eq. (42)
        ps = self.ps  # Eq. (43), with C^{-1/2} <y>_w = B <z>_w
        ps *= 1 - self.cs
        ps += self.B @ (self._ps_wpos @ zs[:mu])
        ps2 = float(ps @ ps)
        hsig = ps2 / (1 - (1 - self.cs) ** (2 * self.countiter)) / n < self._hsig_bound  # pycma's h_sigma
        self.pc *= 1 - self.cc  # Eq. (45)
        if hsig:
            self.pc += self._pc_fac * yw
        self._update_C(ys, zs, hsig)
        # Eq. (44), change of log(sigma) clipped to [-1, 1] as pycma, then capped
        s = (math.sqrt(ps2) / self.chiN - 1) * self._cs_damps
        s = min(MAX_DELTA_LOG_SIGMA, max(-MAX_DELTA_LOG_SIGMA, s))
        self.sigma = self._cap_sigma(sigma * math.exp(s))
        self._Z = self._no_Z
        if self.countiter - self.eigen_iter >= self.lazy_gap:
            self._eigendecompose()

    def _pending_z(self, Y: np.ndarray, mean: np.ndarray, sigma: float) -> np.ndarray:
        """The ``z`` of each row of ``Y``: the draw kept from ``ask`` or, for injected rows,
        ``D^-1 B^T (x - m) / sigma``."""
        asked, Z = self._asked_Y, self._Z
        if Y is asked and Z.shape == Y.shape:
            return Z
        Zy = ((Y - mean) / sigma) @ self.B / self.D
        if asked is not None and Z.shape == Y.shape:
            same = np.all(Y == asked, axis=1)
            Zy[same] = Z[same]
        return Zy

    def _update_C(self, ys: np.ndarray, zs: np.ndarray, hsig: bool) -> None:
        """Eq. (46)-(47) in place on the upper triangle of C (two BLAS ``syrk`` calls)."""
        mu, V = self.mu, self._V
        c1a = self.c1 * (1 - (1 - hsig) * self.cc * (2 - self.cc))  # c1 - c1 delta(h_sigma)
        decay = 1 - c1a - self.cmu * self._sum_w  # decay factor of Eq. (47)
        np.multiply(self.pc, self._sqrt_c1, out=V[0])  # rows of V: sqrt(c1) p_c, sqrt(cmu w_i) y_i
        np.multiply(ys[:mu], self._sqrt_cmu_wpos, out=V[1:])
        # C <- decay C + c1 p_c p_c^T + cmu sum_{i<=mu} w_i y_i y_i^T
        _dsyrk(1.0, V.T, beta=decay, c=self._C, trans=0, lower=0, overwrite_c=1)
        if self._has_neg:
            zn = zs[mu:]
            # Eq. (46): |C^{-1/2} y_i|^2 = |z_i|^2; w°_i = w_i n / (|z_i| + 1e-9)^2 as pycma
            norm = np.sqrt(np.add.reduce(zn * zn, axis=1))
            norm += 1e-9
            Vn = ys[mu:] * (self._sqrt_cmu_n_wneg / norm)[:, None]
            # C <- C + cmu sum_{i>mu} w°_i y_i y_i^T   (w°_i < 0)
            _dsyrk(-1.0, Vn.T, beta=1.0, c=self._C, trans=0, lower=0, overwrite_c=1)

    # ----- safeguards --------------------------------------------------------------------------
    def _cap_sigma(self, sigma: float) -> float:
        """Cap sigma at ``sigma0 * SIGMA_CAP_FACTOR``."""
        return min(sigma, self.sigma0 * SIGMA_CAP_FACTOR)

    def _symmetrize(self) -> None:
        """Make C exactly symmetric by mirroring its upper triangle (the one the updates keep)."""
        C = self._C
        self._C = np.asfortranarray(np.triu(C) + np.triu(C, 1).T)

    def _clamp_eigenvalues(self, eigvals: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Clamp eigenvalues to ``>= EIG_FLOOR * max`` (called when the smallest is below) and
        rebuild C from them, so that C stays positive definite; returns the clamped values."""
        floor = max(float(eigvals[-1]), 1e-300) * EIG_FLOOR
        eigvals = np.maximum(eigvals, floor)
        self._C = np.asfortranarray((B * eigvals) @ B.T)
        self._symmetrize()
        return eigvals

    def _eigendecompose(self) -> None:
        """Lazy update of B and D from C (every ``lazy_gap`` generations): ``eigh`` of the matrix
        defined by C's upper triangle (the lower one is only mirrored on access), then clamp."""
        eigvals, B = _eigh(self._C)  # ascending
        if not eigvals[0] >= max(eigvals[-1], 1e-300) * EIG_FLOOR:  # also catches NaN
            eigvals = self._clamp_eigenvalues(eigvals, B)
        self.B = B
        self.D = np.sqrt(eigvals)
        self._BD = B * self.D
        self.eigen_iter = self.countiter

    @property
    def C(self) -> np.ndarray:
        """Covariance matrix ``(n, n)``, exactly symmetric (the stored array; do not modify)."""
        self._symmetrize()
        return self._C

    @C.setter
    def C(self, value) -> None:
        self._C = np.asfortranarray(np.array(value, dtype=float))

    # ----- termination view --------------------------------------------------------------------
    def _search_view_parts(self) -> dict[str, Any]:
        return {
            "stds": self.sigma * np.sqrt(np.diag(self._C)),
            "pc": self.pc,
            "eigvals": self.D**2,
            "B": self.B,
        }
