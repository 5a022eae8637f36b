"""CMA-ES with full covariance matrix, active (negative) weights and lazy eigendecomposition.

Follows N. Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772 (2016/2023);
equation numbers in the comments refer to it.  Default parameters follow pycma 4.5.0
(``CMAParameters`` in ``options_parameters.py``, ``RecombinationWeights``,
``CMAAdaptSigmaCSA`` in ``sigma_adaptation.py``) wherever pycma differs from the tutorial's
Table 1; each such place is marked "pycma".  The constants and step-size rules shared with
:class:`esopt.SepCMAES` (``cs``, ``damps``, ``chiN``, ``hsig``, the clipped and capped Eq. (44))
come from :mod:`esopt.cmaconst`; the frozen parameters are a :class:`CMAParameters`, the
evolving state a :class:`CMAState`.

One generation::

    z_k ~ N(0, I)                                 Eq. (38)   one (popsize, n) draw
    y_k = C^{1/2} z_k = B D B^T z_k ~ N(0, C)     Eq. (39)   one matrix product Z @ C^{1/2}
    x_k = m + sigma y_k ~ N(m, sigma^2 C)         Eq. (40)
    <y>_w = sum_{i<=mu} w_i y_{i:lambda}          Eq. (41)
    m <- m + c_m sigma <y>_w                      Eq. (42)
    p_s <- (1-c_s) p_s + sqrt(c_s(2-c_s)mueff) C^{-1/2} <y>_w          Eq. (43)
    sigma <- sigma exp(c_s/d_s (|p_s| / E|N(0,I)| - 1))                  Eq. (44)
    p_c <- (1-c_c) p_c + h_s sqrt(c_c(2-c_c)mueff) <y>_w                Eq. (45)
    w°_i = w_i (w_i >= 0) or w_i n / |C^{-1/2} y_{i:lambda}|^2 (w_i < 0) Eq. (46)
    C <- (1 + c1 delta(h_s) - c1 - cmu sum w) C + c1 p_c p_c^T
                                    + cmu sum_i w°_i y_{i:lambda} y_{i:lambda}^T    Eq. (47)

``C^{-1/2} y_k = z_k`` because ``C^{1/2} = B D B^T`` is the one used for sampling (B and D are only
recomputed at the end of a ``tell``), so Eq. (43) and (46) cost no extra linear solve.

Why the symmetric square root and not the tutorial's ``y_k = B D z_k``: both are ``N(0, C)``
(``B^T z ~ N(0, I)``; tutorial Sec. 0.1-0.2: ``C^{1/2} = B D B^T``, ``N(0, C) ~ C^{1/2} N(0, I) ~
B D N(0, I)``), but the eigenvectors B of a C with (nearly) equal eigenvalues are not unique: any
rotation inside a (near-)degenerate eigenspace is as valid, and LAPACK returns different ones for
different BLAS kernels (OpenBLAS's ``OPENBLAS_CORETYPE``).  ``B D z`` then gives other candidates for
the same seed on another CPU (measured: digits-highdim, generation 1, ``lr`` of the first candidate
0.000625 with the Haswell kernel, 0.00517 with Nehalem), whereas ``C^{1/2}`` is unique and depends on
B only up to rounding, so a seeded run gives the same candidates on every machine (to ~1e-15 in the
first generations; tests/test_sampling_blas.py).  Option ``sampling="eigen"`` keeps ``B D z``:
checkpoints written before the option existed (esopt 0.1.0's, and format-2 ones without
``init.options.sampling``) load with it and continue bit-for-bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
from scipy.linalg.blas import dsyrk as _dsyrk
from scipy.linalg.lapack import dsyevd as _dsyevd

from . import cmaconst
from .base import EvolutionStrategy, param_field, state_field
from .cmaconst import MAX_DELTA_LOG_SIGMA, SIGMA_CAP_FACTOR, expected_norm
from .injection import clip_factors
from .weights import finalize_negative_weights, recombination_weights

__all__ = [
    "CMAES",
    "CMAParameters",
    "CMAState",
    "expected_norm",
    "SIGMA_CAP_FACTOR",
    "MAX_DELTA_LOG_SIGMA",
    "EIG_FLOOR",
    "SAMPLINGS",
    "sampling_transform",
]

#: eigenvalues of C are clamped to at least ``EIG_FLOOR * max eigenvalue``.
EIG_FLOOR = 1e-20

#: values of the ``sampling`` option: the symmetric square root (default) and esopt's earlier ``B D``.
SAMPLINGS = ("sqrt", "eigen")


def sampling_transform(B: np.ndarray, D: np.ndarray, sampling: str) -> np.ndarray:
    """The ``(n, n)`` matrix ``T`` with ``y = T z ~ N(0, B D^2 B^T)`` for ``z ~ N(0, I)``.

    ``B`` (n, n): orthonormal eigenvectors (columns); ``D`` (n,): square roots of the eigenvalues.
    ``sampling="sqrt"``: ``T = C^{1/2} = B D B^T`` (tutorial Sec. 0.1), exactly symmetric, unique
    for a given C and so independent (up to rounding) of which eigenvectors LAPACK returned for
    (nearly) equal eigenvalues; ``"eigen"``: ``T = B D`` (tutorial Eq. (39)), which is not.
    Raises ``ValueError`` for another ``sampling``.
    """
    if sampling == "sqrt":
        S = (B * D) @ B.T  # one n x n x n product per eigendecomposition (dsyevd costs 3-15x more, n = 10-1000)
        return (S + S.T) * 0.5  # exactly symmetric
    if sampling == "eigen":
        return B * D
    raise ValueError(f"sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")


def _eigh(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of the symmetric matrix given by the
    upper triangle of ``C`` (LAPACK ``dsyevd`` called directly: less overhead than
    ``numpy.linalg.eigh`` at small n)."""
    w, v, info = _dsyevd(C, compute_v=1, lower=0)
    if info != 0:
        return np.linalg.eigh(C, UPLO="U")
    return w, v


@dataclass(frozen=True, init=False, eq=False)
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
        :func:`esopt.cmaconst.csa_cs`: pycma's ``min(1/2, (mueff + 2) / (n + mueff + 3))``.
    damps : float
        :func:`esopt.cmaconst.csa_damps` (pycma's).
    cc : float
        ``(4 + mueff/n) / (n + 4 + 2 mueff/n)`` (Eq. (56)).
    c1 : float
        ``min(1, popsize/6) * 2 / ((n + 1.3)^2 + mueff)`` (Eq. (57); the factor is pycma's).
    cmu : float
        ``min(1 - c1, 2 (1/4 + mueff - 2 + 1/mueff) / ((n + 2)^2 + mueff))`` (Eq. (58)).
    chiN : float
        ``E|N(0, I)|`` (:func:`esopt.cmaconst.expected_norm`).
    lazy_gap : float
        Generations between eigendecompositions, ``1 / (10 n (c1 + cmu))`` (pycma's
        ``lazy_update_gap``; the tutorial's implementation notes postpone the O(n^3) update of B and
        D so that the cost per generation is O(n^2)).
    sampling : {"sqrt", "eigen"}
        How ``z ~ N(0, I)`` maps to ``y ~ N(0, C)`` (:func:`sampling_transform`): ``"sqrt"``,
        ``y = C^{1/2} z = B D B^T z``, the same on every BLAS kernel (default); ``"eigen"``,
        ``y = B D z``, as esopt did before this option existed (and pycma and cmaes do), which
        depends on the eigenvectors LAPACK picks (module docstring).

    Raises ``ValueError`` for ``n < 1``, ``popsize < 2`` or another ``sampling``.
    """

    n: int
    popsize: int
    active: bool
    mu: int
    weights: np.ndarray
    mueff: float
    cm: float
    cc: float
    c1: float
    cmu: float
    cs: float
    damps: float
    chiN: float
    lazy_gap: float
    sampling: str

    def __init__(self, n: int, popsize: int, active: bool = True, sampling: str = "sqrt"):
        if n < 1:
            raise ValueError(f"dimension n must be >= 1, got {n}")
        if popsize < 2:
            raise ValueError(f"popsize must be >= 2, got {popsize}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
        w, mu = recombination_weights(popsize)  # Eq. (49)
        mueff = cmaconst.mueff(w[:mu])
        cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)  # Eq. (56)
        c1 = min(1.0, popsize / 6) * 2 / ((n + 1.3) ** 2 + mueff)  # Eq. (57)
        cmu = min(1 - c1, 2 * (0.25 + mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))  # Eq. (58)
        if active:
            w = finalize_negative_weights(w, mu, n, c1, cmu)  # Eq. (50)-(53)
        else:
            w[mu:] = 0.0
        cs = cmaconst.csa_cs(n, mueff)  # Eq. (55), pycma
        values = dict(
            n=int(n),
            popsize=int(popsize),
            active=bool(active),
            mu=mu,
            weights=w,
            mueff=mueff,
            cm=1.0,  # Eq. (54)
            cc=cc,
            c1=c1,
            cmu=cmu,
            cs=cs,
            damps=cmaconst.csa_damps(n, mueff, cs),  # Eq. (55), pycma
            chiN=expected_norm(n),
            lazy_gap=1.0 / (c1 + cmu + 1e-23) / n / 10,
            sampling=sampling,
        )
        for k, v in values.items():
            object.__setattr__(self, k, v)


@dataclass
class CMAState:
    """Evolving state of :class:`CMAES`.

    Attributes
    ----------
    mean : ndarray (n,)
    sigma : float
    C : ndarray (n, n), Fortran order
        Covariance matrix; only its upper triangle is kept current (BLAS ``syrk``), the lower
        one may be stale (``CMAES.C`` returns the symmetric matrix).
    pc, ps : ndarray (n,)
        Evolution paths of C and of sigma.
    B : ndarray (n, n), Fortran order; D : ndarray (n,)
        Eigenvectors (columns) and sqrt of eigenvalues (ascending) of C at the last
        eigendecomposition, used for sampling.
    eigen_iter : int
        ``countiter`` of the last eigendecomposition.
    Z : ndarray (popsize, n) or (0, n)
        The N(0, I) draws of the pending ask (empty between generations).
    """

    mean: np.ndarray
    sigma: float
    C: np.ndarray
    pc: np.ndarray
    ps: np.ndarray
    B: np.ndarray
    D: np.ndarray
    eigen_iter: int
    Z: np.ndarray


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
    sampling : {"sqrt", "eigen"}
        ``"sqrt"``: candidates ``m + sigma C^{1/2} z`` (default; the same candidates for a seed on
        every CPU and BLAS kernel); ``"eigen"``: ``m + sigma B D z`` as esopt did before this option
        existed, for continuing the checkpoints written then (they load with it) and reproducing
        their runs.

    Attributes
    ----------
    params : CMAParameters  the frozen strategy parameters
    state : CMAState  the evolving state; its fields are also attributes:
    mean : ndarray (n,)  distribution mean (internal coordinates)
    sigma : float  step size
    C : ndarray (n, n)  covariance matrix, exactly symmetric and positive definite (a new
        array, mirrored from the upper triangle that the update keeps; reading it changes nothing)
    pc, ps : ndarray (n,)  evolution paths of C and of sigma
    B : ndarray (n, n), D : ndarray (n,)  eigenvectors (columns) and sqrt of eigenvalues
        (ascending) of C at the last eigendecomposition; sampling uses ``C^{1/2} = B D B^T``
    weights, mu, mueff, cc, cs, c1, cmu, damps, chiN, lazy_gap : see :class:`CMAParameters`

    Raises
    ------
    ValueError, TypeError
        As :class:`esopt.base.EvolutionStrategy` (``sigma0 <= 0``, non-finite or mis-shaped
        ``x0``, ``x0`` outside bounds, ``lower >= upper``, bad ``popsize``/tolerances); ``sampling``
        not one of ``"sqrt"``, ``"eigen"``.

    Notes
    -----
    Safeguards, each a named helper: :func:`_symmetric`, :meth:`_clamp_eigenvalues`,
    :meth:`_eigendecompose` (lazy, every ``lazy_gap`` generations), :meth:`_cap_sigma`.
    Differences to pycma: C starts as the identity (pycma perturbs its diagonal by ``1e-4``
    relative to break ties); hsig is pycma's test ``|p_s|^2 / (1-(1-c_s)^(2g)) / n < 2 + 4/(n+1)``;
    no mirrored sampling (pycma mirrors for ``popsize < 6``); candidates are ``m + sigma C^{1/2} z``
    (pycma and cmaes: ``m + sigma B D z``, the same distribution; see the module docstring).
    """

    name: ClassVar[str] = "cmaes"
    #: esopt 0.1.0 sampled ``B D z`` (its checkpoints continue with it)
    _V1_OPTIONS: ClassVar[dict[str, Any]] = {"sampling": "eigen"}
    pc = state_field()
    ps = state_field()
    B = state_field()
    D = state_field()
    eigen_iter = state_field()
    _Z = state_field("Z")
    active = param_field()
    mu = param_field()
    weights = param_field()
    mueff = param_field()
    cm = param_field()
    cc = param_field()
    cs = param_field()
    c1 = param_field()
    cmu = param_field()
    damps = param_field()
    chiN = param_field()
    lazy_gap = param_field()

    def __init__(
        self, x0, sigma0, *, popsize=None, seed=None, bounds=None, active=True, tolerances=None, sampling="sqrt"
    ):
        if not isinstance(active, (bool, np.bool_)):
            raise TypeError(f"active must be a bool, got {active!r}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {list(SAMPLINGS)}, got {sampling!r}")
        super().__init__(x0, sigma0, popsize=popsize, seed=seed, bounds=bounds, tolerances=tolerances)
        n = self.n
        p = self.params = CMAParameters(n, self.popsize, bool(active), str(sampling))
        # frozen helpers for tell, derived from the parameters
        self._wpos = np.ascontiguousarray(p.weights[: p.mu])
        wneg = p.weights[p.mu :]
        self._has_neg = bool(np.any(wneg < 0))
        self._sum_w = float(np.sum(p.weights))
        self._ps_wpos = math.sqrt(p.cs * (2 - p.cs) * p.mueff) * self._wpos
        self._pc_fac = math.sqrt(p.cc * (2 - p.cc) * p.mueff)
        self._sqrt_c1 = math.sqrt(p.c1)
        self._sqrt_cmu_wpos = np.sqrt(p.cmu * self._wpos)[:, None]
        self._sqrt_cmu_n_wneg = np.sqrt(-p.cmu * n * np.minimum(wneg, 0.0))
        self._cs_damps = p.cs / p.damps
        self._sigma_cap = self.sigma0 * SIGMA_CAP_FACTOR
        self._no_Z = np.empty((0, n))
        self._V = np.empty((p.mu + 1, n))
        self.state = CMAState(
            mean=self.x0.copy(),
            sigma=self.sigma0,
            C=np.asfortranarray(np.eye(n)),
            pc=np.zeros(n),
            ps=np.zeros(n),
            B=np.asfortranarray(np.eye(n)),  # Fortran order, as dsyevd returns it
            D=np.ones(n),
            eigen_iter=0,  # countiter of the last eigendecomposition
            Z=self._no_Z,  # N(0, I) draws of the pending ask
        )
        self._set_transform()

    def _init_options(self) -> dict[str, Any]:
        return {"active": self.params.active, "sampling": self.params.sampling}

    def _export_state(self) -> CMAState:
        return replace(self.state, C=self.C)  # the symmetric C (the lower triangle may be stale)

    def _after_load(self) -> None:
        # eigh returns B in Fortran order and syrk updates C in place only in Fortran order;
        # state_dict() copies them in C order, and `B @ z` rounds differently for the two
        # layouts, so restore the live layouts (bit-for-bit resume)
        st = self.state
        st.C = np.asfortranarray(st.C)
        st.B = np.asfortranarray(st.B)
        self._set_transform()

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> CMAES:
        """As :meth:`esopt.base.EvolutionStrategy.from_state_dict`; a format-2 dict without
        ``init.options.sampling`` (written before the option existed, when esopt sampled ``B D z``)
        continues with ``sampling="eigen"``, bit-for-bit (format 1 gets it from ``_V1_OPTIONS``).
        Raises as the base class."""
        if isinstance(d, dict) and d.get("version") == 2 and "init.options.sampling" not in d:
            d = {**d, "init.options.sampling": "eigen"}
        return super().from_state_dict(d)

    def _set_transform(self) -> None:
        """Cache ``T^T`` of :func:`sampling_transform` for the current B, D (sampling draws
        ``Y = Z T^T``)."""
        st = self.state
        self._Tt = sampling_transform(st.B, st.D, self.params.sampling).T

    # ----- sampling ----------------------------------------------------------------------------
    def _sample(self) -> np.ndarray:
        st = self.state
        Z = self._rng.standard_normal((self.popsize, self.n))  # Eq. (38): z_k ~ N(0, I)
        st.Z = Z
        Y = Z @ self._Tt  # Eq. (39): y_k = C^{1/2} z_k = B D B^T z_k ~ N(0, C)  ("eigen": B D z_k)
        Y *= st.sigma
        Y += st.mean  # Eq. (40): x_k = m + sigma y_k ~ N(m, sigma^2 C)
        return Y

    # ----- update ------------------------------------------------------------------------------
    def _update(self, Y: np.ndarray, f: np.ndarray, order: np.ndarray, injected: np.ndarray | None) -> None:
        n, p, st = self.n, self.params, self.state
        mu, sigma, mean = p.mu, st.sigma, st.mean
        if injected is not None:
            Y = self._clip_injected(Y, injected)
        zs = self._pending_z(Y, injected)[order]
        ys = Y[order]
        ys -= mean
        ys /= sigma  # y_{i:lambda} = (x_{i:lambda} - m) / sigma, sorted
        yw = self._wpos @ ys[:mu]  # Eq. (41)
        st.mean = mean + (p.cm * sigma) * yw  # Eq. (42)
        ps = st.ps  # Eq. (43), with C^{-1/2} <y>_w = <z>_w  ("eigen": B <z>_w)
        ps *= 1 - p.cs
        if p.sampling == "sqrt":
            ps += self._ps_wpos @ zs[:mu]
        else:
            ps += st.B @ (self._ps_wpos @ zs[:mu])
        ps2 = float(ps @ ps)
        hsig = cmaconst.hsig(ps2, p.cs, self.countiter, n)
        st.pc *= 1 - p.cc  # Eq. (45)
        if hsig:
            st.pc += self._pc_fac * yw
        self._update_C(ys, zs, hsig)
        # Eq. (44), change of log(sigma) clipped to [-1, 1] as pycma, then capped
        st.sigma = cmaconst.csa_sigma(sigma, math.sqrt(ps2), p.chiN, self._cs_damps, self._sigma_cap)
        st.Z = self._no_Z
        if self.countiter - st.eigen_iter >= p.lazy_gap:
            self._eigendecompose()

    def _clip_injected(self, Y: np.ndarray, injected: np.ndarray) -> np.ndarray:
        """``Y`` (popsize, n) with each injected step ``x - m`` shortened so that its Mahalanobis
        length ``|C^{-1/2} (x - m)| / sigma`` is at most ``sqrt(n) + 2n/(n+2)`` (Hansen, arXiv
        1110.4181, Sec. 2; :mod:`esopt.injection`); ``C^{-1/2} = B D^-1 B^T`` of the sampling
        eigendecomposition, so ``|C^{-1/2} y| = |D^-1 B^T y|``.  A new array; rows told as asked
        are unchanged."""
        st = self.state
        Y = np.array(Y, dtype=float)
        steps = Y[injected] - st.mean
        alpha = clip_factors((steps / st.sigma) @ st.B / st.D, self.n)
        Y[injected] = st.mean + alpha[:, None] * steps
        return Y

    def _pending_z(self, Y: np.ndarray, injected: np.ndarray | None) -> np.ndarray:
        """The ``z`` of each row of ``Y``: the draw kept from ``ask`` or, for ``injected`` rows,
        the inverse of the sampling transform, ``C^{-1/2} (x - m) / sigma = B D^-1 B^T (x - m) /
        sigma`` (``"eigen"``: ``D^-1 B^T (x - m) / sigma``)."""
        st = self.state
        Z = st.Z
        if injected is None and Z.shape == Y.shape:
            return Z
        Zy = ((Y - st.mean) / st.sigma) @ st.B / st.D
        if self.params.sampling == "sqrt":
            Zy = Zy @ st.B.T
        if injected is not None and Z.shape == Y.shape:
            Zy[~injected] = Z[~injected]
        return Zy

    def _update_C(self, ys: np.ndarray, zs: np.ndarray, hsig: bool) -> None:
        """Eq. (46)-(47) in place on the upper triangle of C (two BLAS ``syrk`` calls)."""
        p, C = self.params, self.state.C
        mu, V = p.mu, self._V
        c1a = p.c1 * (1 - (1 - hsig) * p.cc * (2 - p.cc))  # c1 - c1 delta(h_sigma)
        decay = 1 - c1a - p.cmu * self._sum_w  # decay factor of Eq. (47)
        np.multiply(self.state.pc, self._sqrt_c1, out=V[0])  # rows of V: sqrt(c1) p_c, sqrt(cmu w_i) y_i
        np.multiply(ys[:mu], self._sqrt_cmu_wpos, out=V[1:])
        # C <- decay C + c1 p_c p_c^T + cmu sum_{i<=mu} w_i y_i y_i^T
        _dsyrk(1.0, V.T, beta=decay, c=C, trans=0, lower=0, overwrite_c=1)
        if self._has_neg:
            zn = zs[mu:]
            # Eq. (46): |C^{-1/2} y_i|^2 = |z_i|^2; w°_i = w_i n / (|z_i| + 1e-9)^2 as pycma
            norm = np.sqrt(np.add.reduce(zn * zn, axis=1))
            norm += 1e-9
            Vn = ys[mu:] * (self._sqrt_cmu_n_wneg / norm)[:, None]
            # C <- C + cmu sum_{i>mu} w°_i y_i y_i^T   (w°_i < 0)
            _dsyrk(-1.0, Vn.T, beta=1.0, c=C, trans=0, lower=0, overwrite_c=1)

    # ----- safeguards --------------------------------------------------------------------------
    def _cap_sigma(self, sigma: float) -> float:
        """Cap sigma at ``sigma0 * SIGMA_CAP_FACTOR``."""
        return min(sigma, self._sigma_cap)

    def _clamp_eigenvalues(self, eigvals: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Clamp eigenvalues to ``>= EIG_FLOOR * max`` (called when the smallest is below) and
        rebuild C from them, so that C stays positive definite; returns the clamped values."""
        floor = max(float(eigvals[-1]), 1e-300) * EIG_FLOOR
        eigvals = np.maximum(eigvals, floor)
        self.state.C = _symmetric((B * eigvals) @ B.T)
        return eigvals

    def _eigendecompose(self) -> None:
        """Lazy update of B and D from C (every ``lazy_gap`` generations): ``eigh`` of the matrix
        defined by C's upper triangle (the lower one may be stale), then clamp."""
        st = self.state
        eigvals, B = _eigh(st.C)  # ascending
        if not eigvals[0] >= max(eigvals[-1], 1e-300) * EIG_FLOOR:  # also catches NaN
            eigvals = self._clamp_eigenvalues(eigvals, B)
        st.B = B
        st.D = np.sqrt(eigvals)
        self._set_transform()
        st.eigen_iter = self.countiter

    @property
    def C(self) -> np.ndarray:
        """Covariance matrix ``(n, n)``, exactly symmetric: a new array mirrored from the upper
        triangle of ``state.C`` (reading it changes no state)."""
        return _symmetric(self.state.C)

    @C.setter
    def C(self, value) -> None:
        self.state.C = np.asfortranarray(np.array(value, dtype=float))

    # ----- termination view --------------------------------------------------------------------
    def _search_view_parts(self) -> dict[str, Any]:
        st = self.state
        return {
            "stds": st.sigma * np.sqrt(np.diag(st.C)),
            "pc": st.pc,
            "eigvals": st.D**2,
            "B": st.B,
        }


def _symmetric(C: np.ndarray) -> np.ndarray:
    """The exactly symmetric matrix given by the upper triangle of ``C`` (a new Fortran-order
    array; ``C`` is not modified)."""
    return np.asfortranarray(np.triu(C) + np.triu(C, 1).T)
