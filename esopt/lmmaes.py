"""LM-MA-ES: the limited-memory matrix adaptation evolution strategy.

Loshchilov, Glasmachers and Beyer, "Large Scale Black-box Optimization by Limited-Memory Matrix
Adaptation", IEEE TEVC 23(2), 2019 (arXiv 1705.06693), Algorithm 1.  Notation of the paper:
``m`` direction vectors ``M_1..M_m`` (rows of ``M``, shape ``(m, n)``), step-size path ``ps``.
One generation of Algorithm 1 (line numbers counting the ``end for`` lines, as pypop7 and pyribs
cite lines 12 and 13 for the mean and path updates; the step order is that of the paper)::

    z_i ~ N(0, I)                                                     # line 5
    d_i = z_i;  for j = 1..min(t, m):                                 # lines 6-7
        d_i <- (1 - c_d,j) d_i + c_d,j M_j (M_j . d_i)                 # line 8
    f_i = f(mean + sigma d_i)                                         # line 10
    mean <- mean + sigma sum_i w_i d_{i:lambda}                       # line 12
    ps <- (1 - cs) ps + sqrt(mueff cs (2 - cs)) sum_i w_i z_{i:lambda}  # line 13
    M_j <- (1 - c_c,j) M_j + sqrt(mueff c_c,j (2 - c_c,j)) sum_i w_i z_{i:lambda}  # line 15
    sigma <- sigma exp((cs / damps) (|ps|^2 / n - 1))                 # line 17, damps = 2

with ``w_i = (ln(mu + 1/2) - ln i) / sum``, ``mu = floor(lambda/2)``, ``cs = 2 lambda / n``,
``c_d,j = 1 / (1.5^(j-1) n)`` and ``c_c,j = lambda / (4^(j-1) n)`` (Algorithm 1, line 1).
Recombination pairs each weight with the ``i``-th *best* ``z`` and ``d`` (rank order in both;
evosax's current ``LM_MA_ES`` does the same: ``weights_fitness_shaping_fn`` in
``evosax/core/fitness_shaping.py`` gives each candidate the weight of its rank).

Step-size rule.  Algorithm 1 of the paper (as also implemented by pypop7 0.0.82 and pyribs)
multiplies by ``exp((cs/2)(|ps|^2/n - 1))``; the authors' plain-C reference code (supplementary
material of the journal version) uses ``exp(cs (|ps|^2/n - 1))``.  We follow the paper
(``damps=2``); ``damps=1`` reproduces the C code.

Mirrored sampling.  The authors' C code draws ``z`` and uses ``-z`` for the next offspring
(``sample_symmetry = 1``), which halves the normal draws and the transforms.  We make it the
default (``mirrored=True``) because it halves the cost per generation and, measured in
``tests/test_lmmaes.py`` (median of 3 seeds, target 1e-8), it needed fewer evaluations than
pypop7's unmirrored LMMAES: sphere n=128 9.6k vs 12.6k, Rosenbrock n=128 365k vs 432k,
ellipsoid (condition 1e4) n=64 104k vs 152k; pass ``mirrored=False`` for Algorithm 1 verbatim
(12.8k, 150k on the sphere and the ellipsoid, as pypop7).
Rows are ordered ``z_0, -z_0, z_1, -z_1, ...``; with an odd ``popsize`` the last row is unpaired.

Fast transform.  Applying the ``k = min(t, m)`` sequential updates of line 8 to a whole
population block is ``k`` memory-bound passes.  By induction every transformed sample is
``d = a z + sum_j b_j M_j`` with ``a = prod_j (1 - c_d,j)`` and coefficients ``b`` that are a
fixed linear function of the projections ``p = M z``: ``b = W p``, where the ``k x k`` matrix
``W`` follows from the Gram matrix ``G = M M^T`` by a ``k x k`` triangular solve
(``_coefficient_matrix``).
So the block transform is ``D = a Z + (Z M^T) W^T M``: two BLAS-3 products, ``O(lambda m n)``
time, ``O(m n)`` memory.  ``G`` is updated in ``O(m n)`` per generation from line 15 and
recomputed exactly every ``GRAM_REFRESH`` generations.  No ``n x n`` array is ever formed.

Termination.  The criteria need the coordinate-wise standard deviations ``sigma sqrt(diag C)``;
they are computed exactly in ``O(m^2 n)`` (:meth:`LMMAES.coordinate_stds`), refreshed every
generation for small ``n`` and every 10th generation from ``n ~ 1e4`` on (``C`` changes slowly).

Learning rates larger than one (``popsize > n``) are capped at 1 (the paper leaves this case
undefined).  ``dtype=np.float32`` stores ``Z``, ``M``, ``ps`` and the candidates in single
precision (half the memory); the mean, ``G`` and all scalar work stay in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.linalg.blas import dgemm, sgemm
from scipy.linalg.lapack import dtrtrs

from .base import EvolutionStrategy, param_field, state_field
from .injection import clip_factors
from .numtypes import is_int, is_real
from .weights import log_weights, mueff

__all__ = ["LMMAES", "LMMAParams", "LMMAState"]

GRAM_REFRESH = 1000  # generations between exact recomputations of G = M M^T
DIAG_REFRESH_FLOPS = 1e6  # diag(C) (termination) is recomputed every m^2 n / 1e6 generations, 1..10
_DTYPES = {"float64": np.float64, "float32": np.float32}


def _as_dtype_name(dtype) -> str:
    try:
        name = np.dtype(dtype).name
    except TypeError as e:
        raise TypeError(f"dtype must be np.float64 or np.float32, got {dtype!r}") from e
    if name not in _DTYPES:
        raise ValueError(f"dtype must be np.float64 or np.float32, got {dtype!r}")
    return name


def _check_options(m, mirrored, damps) -> None:
    """``TypeError``/``ValueError`` for a bad ``m``, ``mirrored`` or ``damps`` (before any state)."""
    if m is not None and not is_int(m):
        raise TypeError(f"m must be an int >= 0, got {m!r}")
    if m is not None and m < 0:
        raise ValueError(f"m (number of direction vectors) must be >= 0, got {m}")
    if not isinstance(mirrored, (bool, np.bool_)):
        raise TypeError(f"mirrored must be a bool, got {mirrored!r}")
    if not is_real(damps):
        raise TypeError(f"damps must be a positive float, got {damps!r}")
    if not np.isfinite(damps) or damps <= 0:
        raise ValueError(f"damps must be a positive finite float, got {damps!r}")


def _coefficient_matrix(G: np.ndarray, cd: np.ndarray) -> tuple[float, np.ndarray]:
    """Coefficients of the ``k``-step transform in the span of the direction vectors.

    For ``d = T_k ... T_1 z`` with ``T_j = (1 - c_j) I + c_j M_j M_j^T`` (Algorithm 1, line 8),
    ``d = a z + M^T W (M z)``.  Unrolling the steps, ``d = q_k z + sum_j c_j s_j (q_k/q_j) M_j``
    with ``q_j = prod_{l<=j} (1 - c_l)`` and ``s_j = M_j . d_{j-1}``, and the ``s_j`` solve the
    unit lower-triangular system ``s_j = q_{j-1} p_j + sum_{i<j} c_i (q_{j-1}/q_i) G_ij s_i``.

    Parameters
    ----------
    G : ndarray (k, k)
        Gram matrix ``M M^T`` of the first ``k`` direction vectors.
    cd : ndarray (k,)
        Their learning rates ``c_d,j`` (each < 1).

    Returns
    -------
    a : float
        ``q_k = prod_j (1 - c_d,j)``.
    W : ndarray (k, k)
        Lower-triangular coefficient matrix (float64): ``b = W p``.
    """
    k = cd.size
    q = np.cumprod(1.0 - cd)  # q_j, j = 1..k
    q_prev = np.concatenate(([1.0], q[:-1]))  # q_{j-1}
    # L_ji = c_i (q_{j-1} / q_i) G_ij for i < j
    L = np.tril(np.outer(q_prev, cd / q) * G, k=-1)
    S, info = dtrtrs(np.eye(k) - L, np.diag(q_prev), lower=1, unitdiag=1)  # s = S p (forward substitution)
    if info != 0:  # pragma: no cover - a unit triangular system is never singular
        raise np.linalg.LinAlgError(f"LAPACK dtrtrs failed with info={info}")
    W = ((cd * q[-1] / q)[:, None]) * S  # b_j = c_j (q_k / q_j) s_j
    return float(q[-1]), W


def transform_sequential(Z: np.ndarray, M: np.ndarray, cd: np.ndarray) -> np.ndarray:
    """Reference transform: the ``k`` updates of Algorithm 1, line 8, one after the other.

    Parameters
    ----------
    Z : ndarray (lam, n)
        Standard normal samples (rows).
    M : ndarray (k, n)
        Direction vectors, applied in order ``M[0], M[1], ...``.
    cd : ndarray (k,)
        Learning rates ``c_d,j``.

    Returns
    -------
    ndarray (lam, n)
        ``d_i`` for every row (a new array).
    """
    D = np.array(Z, copy=True)
    for j in range(cd.size):
        D = (1.0 - cd[j]) * D + cd[j] * np.outer(D @ M[j], M[j])
    return D


def transform_blas(Z: np.ndarray, M: np.ndarray, G: np.ndarray, cd: np.ndarray) -> np.ndarray:
    """The same transform as :func:`transform_sequential` by two matrix products.

    ``D = a Z + ((Z M^T) W^T) M`` with ``a, W`` from :func:`_coefficient_matrix`; ``G`` must be
    ``M M^T`` (shape ``(k, k)``).  Returns a new ``(lam, n)`` array of ``Z``'s dtype.
    """
    if cd.size == 0:
        return np.array(Z, copy=True)
    a, W = _coefficient_matrix(G, cd)
    return _apply_coefficients(Z, M, a, W)


def _apply_coefficients(
    Z: np.ndarray, M: np.ndarray, a: float, W: np.ndarray, scale: float = 1.0, out: np.ndarray | None = None
) -> np.ndarray:
    """``scale * (a Z + ((Z M^T) W^T) M)`` for ``Z`` (lam, n), ``M`` (k, n), ``W`` (k, k).

    Written into ``out`` (shape and dtype of ``Z``, C-contiguous; a new array if None): one
    scaled copy of ``Z`` and a BLAS ``gemm`` accumulating ``scale B M`` in place (no temporary).
    """
    P = Z @ M.T  # (lam, k) projections M z_i
    B = np.ascontiguousarray((P.astype(np.float64) @ W.T).astype(Z.dtype, copy=False))  # b_i = W p_i
    if out is None:
        out = np.empty_like(Z, order="C")
    np.multiply(Z, Z.dtype.type(scale * a), out=out)
    gemm = dgemm if Z.dtype == np.float64 else sgemm
    # out^T (n, lam) is Fortran-ordered: out^T += scale M^T B^T without a copy
    res = gemm(scale, M.T, B.T, beta=1.0, c=out.T, overwrite_c=1)
    if not np.shares_memory(res, out):  # pragma: no cover - BLAS wrapper copied after all
        out[...] = res.T
    return out


@dataclass(frozen=True)
class LMMAParams:
    """Frozen parameters of :class:`LMMAES` (Algorithm 1, line 1).

    Attributes
    ----------
    n, popsize, m, mu : int
        Dimension, lambda, direction vectors, parents (``floor(lambda/2)``).
    weights : ndarray (mu,)
        ``(ln(mu + 1/2) - ln i) / sum``.
    mueff : float
    cs : float
        ``min(1, 2 lambda / n)``.
    cd, cc : ndarray (m,)
        ``c_d,j = 1 / (1.5^(j-1) n)``, ``c_c,j = min(1, lambda / (4^(j-1) n))``.
    damps : float
        Step-size damping (2: Algorithm 1; 1: the authors' C code).
    mirrored : bool
    dtype : str
        ``"float64"`` or ``"float32"``.
    """

    n: int
    popsize: int
    m: int
    mu: int
    weights: np.ndarray
    mueff: float
    cs: float
    cd: np.ndarray
    cc: np.ndarray
    damps: float
    mirrored: bool
    dtype: str

    @classmethod
    def create(cls, n: int, popsize: int, m: int, damps: float, mirrored: bool, dtype: str) -> LMMAParams:
        """Parameters for dimension ``n`` (arguments validated by the caller)."""
        mu = popsize // 2
        w = log_weights(mu)
        j = np.arange(m)
        return cls(
            n=n,
            popsize=popsize,
            m=m,
            mu=mu,
            weights=w,
            mueff=mueff(w),
            cs=min(1.0, 2.0 * popsize / n),
            cd=1.0 / (1.5**j * n),
            cc=np.minimum(1.0, popsize / (4.0**j * n)),
            damps=damps,
            mirrored=mirrored,
            dtype=dtype,
        )


@dataclass
class LMMAState:
    """Evolving state of :class:`LMMAES`.

    Attributes
    ----------
    mean : ndarray (n,) float64
    sigma : float
    ps : ndarray (n,)
        Step-size path (the strategy's dtype).
    M : ndarray (m, n)
        Direction vectors (rows; the strategy's dtype).
    G : ndarray (m, m) float64
        Gram matrix ``M M^T``.
    Z : ndarray (ceil(lambda/2) or lambda, n) or None
        Fresh normal draws of the pending ask.
    diagC : ndarray (n,) or None
        Cached ``diag(C)`` of generation ``diagC_iter`` (termination; see ``coordinate_stds``).
    diagC_iter : int
    """

    mean: np.ndarray
    sigma: float
    ps: np.ndarray
    M: np.ndarray
    G: np.ndarray
    Z: np.ndarray | None = None
    diagC: np.ndarray | None = None
    diagC_iter: int = -1


class LMMAES(EvolutionStrategy):
    """Limited-memory matrix adaptation ES (Loshchilov, Glasmachers and Beyer 2019, Algorithm 1).

    Parameters
    ----------
    x0 : array_like (n,), n >= 2
        Initial mean.
    sigma0 : float > 0
        Initial step size (units of ``x``).
    popsize : int >= 2, optional
        ``lambda``; default ``4 + floor(3 ln n)``.
    m : int >= 0, optional
        Number of direction vectors; default ``4 + floor(3 ln n)``.
    seed, bounds, tolerances
        As :class:`esopt.base.EvolutionStrategy`.
    dtype : np.float64 or np.float32
        Precision of samples, direction vectors and paths (see module docstring).
    mirrored : bool
        Mirrored sampling ``z, -z`` (default True, as the authors' C code).
    damps : float > 0
        Step-size damping: ``sigma *= exp((cs/damps)(|ps|^2/n - 1))``; 2 as Algorithm 1, 1 as
        the authors' C code.

    Raises
    ------
    ValueError, TypeError
        For the base class's reasons, ``n < 2``, ``m < 0``, an unsupported ``dtype``, a
        non-bool ``mirrored`` or ``damps <= 0``.

    Memory: ``M`` is ``(m, n)``; one generation keeps ``Z`` (``ceil(lambda/2)`` or ``lambda``
    rows of ``n``) and the population.  Time per generation ``O(lambda m n)``.
    """

    name: ClassVar[str] = "lmmaes"
    ps = state_field()
    M = state_field()
    G = state_field()
    _Z = state_field("Z")
    _diagC = state_field("diagC")
    _diagC_iter = state_field("diagC_iter")
    m = param_field()
    mu = param_field()
    weights = param_field()
    mueff = param_field()
    cs = param_field()
    cd = param_field()
    cc = param_field()
    damps = param_field()
    mirrored = param_field()

    def __init__(
        self,
        x0,
        sigma0,
        *,
        popsize=None,
        m=None,
        seed=None,
        bounds=None,
        tolerances=None,
        dtype=np.float64,
        mirrored=True,
        damps=2.0,
    ):
        dtype_name = _as_dtype_name(dtype)
        _check_options(m, mirrored, damps)
        super().__init__(x0, sigma0, popsize=popsize, seed=seed, bounds=bounds, tolerances=tolerances)
        n, lam = self.n, self.popsize
        if n < 2:
            raise ValueError("LMMAES needs n >= 2 variables; use CMAES or SepCMAES for n = 1")
        m = 4 + int(3 * np.log(n)) if m is None else int(m)
        p = self.params = LMMAParams.create(n, lam, m, float(damps), bool(mirrored), dtype_name)
        self.dtype = _DTYPES[dtype_name]
        # frozen helpers derived from the parameters
        self._alpha = 1.0 - p.cc  # line 15 decay
        self._beta = np.sqrt(p.mueff * p.cc * (2.0 - p.cc))  # line 15 gain
        self._alpha2 = np.outer(self._alpha, self._alpha)
        self._beta2 = np.outer(self._beta, self._beta)
        i = np.arange(lam)
        self._sign = np.where(i % 2 == 0, 1.0, -1.0) if p.mirrored else np.ones(lam)
        self._diag_refresh = int(min(10, max(1, m**2 * n / DIAG_REFRESH_FLOPS)))  # generations
        self._coef_cache: tuple[int, float, np.ndarray] | None = None
        self._buffers: dict[str, np.ndarray] = {}
        # Algorithm 1, line 2
        self.state = LMMAState(
            mean=self.x0.copy(),
            sigma=self.sigma0,
            ps=np.zeros(n, dtype=self.dtype),
            M=np.zeros((m, n), dtype=self.dtype),
            G=np.zeros((m, m)),
        )

    def _init_options(self) -> dict[str, Any]:
        p = self.params
        return {"m": p.m, "dtype": p.dtype, "mirrored": p.mirrored, "damps": p.damps}

    # ----- sampling ----------------------------------------------------------------------------
    @property
    def n_vectors_used(self) -> int:
        """``min(t, m)``: direction vectors applied in this generation (Algorithm 1, line 7)."""
        return min(self.countiter, self.params.m)

    def _n_fresh(self) -> int:
        return (self.popsize + 1) // 2 if self.params.mirrored else self.popsize

    def _buffer(self, name: str, rows: int) -> np.ndarray:
        """A work array of shape ``(rows, n)`` reused across generations (no page faults)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] != rows:
            buf = self._buffers[name] = np.empty((rows, self.n), dtype=self.dtype)
        return buf

    def _sample(self) -> np.ndarray:
        # Z, D and Y live in buffers reused every generation: the base class keeps Y only until
        # tell() and hands the caller a copy, and _update() keeps no reference to them.
        st, mirrored = self.state, self.params.mirrored
        st.Z = None
        k, lam, sigma = self.n_vectors_used, self.popsize, st.sigma
        Z = self._buffer("Z", self._n_fresh())
        self._rng.standard_normal(dtype=self.dtype, out=Z)  # line 5
        Y = self._buffer("Y", lam)
        D = self._buffer("D", Z.shape[0]) if mirrored else Y
        if k == 0:
            np.multiply(Z, self.dtype(sigma), out=D)  # line 6
        else:
            a, W = self._coefficients()
            _apply_coefficients(Z, st.M[:k], a, W, scale=sigma, out=D)  # lines 7-8
        mean = st.mean.astype(self.dtype)
        if mirrored:
            np.add(mean, D, out=Y[0::2])  # x = m + sigma d
            np.subtract(mean, D[: lam // 2], out=Y[1::2])  # x = m - sigma d
        else:
            Y += mean
        st.Z = Z
        return Y

    def _coefficients(self) -> tuple[float, np.ndarray]:
        """``(a, W)`` of :func:`_coefficient_matrix` for this generation (cached)."""
        if self._coef_cache is None or self._coef_cache[0] != self.countiter:
            k = self.n_vectors_used
            self._coef_cache = (self.countiter, *_coefficient_matrix(self.state.G[:k, :k], self.params.cd[:k]))
        return self._coef_cache[1], self._coef_cache[2]

    def _inverse_transform(self, D: np.ndarray) -> np.ndarray:
        """``z`` with ``transform(z) = d`` for rows of ``D`` (injected candidates).

        Inverts each step of line 8 by Sherman-Morrison:
        ``T_j^-1 = (I - c M_j M_j^T / (1 - c + c |M_j|^2)) / (1 - c)``.
        """
        Z = np.array(D, dtype=np.float64)
        # called from _update, after the base class counted this generation: the candidates were
        # sampled with min(countiter - 1, m) vectors (n_vectors_used is one ahead by now)
        k, cd, M = min(self.countiter - 1, self.params.m), self.params.cd, self.state.M
        for j in reversed(range(k)):
            c, v = cd[j], M[j].astype(np.float64)
            Z = (Z - np.outer(Z @ v, v) * (c / (1.0 - c + c * float(v @ v)))) / (1.0 - c)
        return Z

    def _clip_injected(self, Y: np.ndarray, injected: np.ndarray) -> np.ndarray:
        """``Y`` (popsize, n) with each injected step shortened so that the LM-MA-ES ``z`` it
        stands for has length at most ``sqrt(n) + 2n/(n+2)``.

        LM-MA-ES (Loshchilov, Glasmachers and Beyer, arXiv 1705.06693, Algorithm 1) adapts from
        the draws ``z_i`` (lines 5-8: ``d_i = T(z_i)``), which an injected row does not have.
        The transform ``T`` is linear and invertible, so its ``z = T^-1((x - m) / sigma)`` is
        recovered exactly (:meth:`_inverse_transform`) rather than clipping in a surrogate
        metric: ``|z|`` is then the Mahalanobis length in the metric the algorithm samples
        with, and Hansen's clipping of injected steps (arXiv 1110.4181, Sec. 2;
        :mod:`esopt.injection`) applies to it as to CMA-ES; ``x - m`` is scaled by the same
        factor (``T(alpha z) = alpha d``).  A new array; rows told as asked are unchanged.
        """
        st = self.state
        Y = np.array(Y)
        steps = Y[injected].astype(np.float64) - st.mean
        alpha = clip_factors(self._inverse_transform(steps / st.sigma), self.n)
        Y[injected] = (st.mean + alpha[:, None] * steps).astype(Y.dtype)
        return Y

    # ----- update ------------------------------------------------------------------------------
    def _weights_on_draws(self, wfull: np.ndarray) -> np.ndarray:
        """Weights on the rows of ``Z`` equivalent to ``wfull`` on the population rows."""
        sw = self._sign * wfull
        if not self.params.mirrored:
            return sw
        wz = sw[0::2].copy()
        wz[: self.popsize // 2] += sw[1::2]
        return wz

    def _recombined_z(self, Y: np.ndarray, best: np.ndarray, injected: np.ndarray | None) -> np.ndarray:
        """``sum_i w_i z_{i:lambda}`` (n,): rows told as asked use the stored ``z``, injected rows
        the ``z`` of the inverse transform."""
        p, st = self.params, self.state
        wfull = np.zeros(self.popsize)
        wfull[best] = p.weights
        if injected is not None:
            w_inj, wfull = wfull[injected], np.where(injected, 0.0, wfull)
        zw = self._weights_on_draws(wfull).astype(self.dtype) @ st.Z
        if injected is not None and injected.any():
            d_inj = (Y[injected].astype(np.float64) - st.mean) / st.sigma
            zw = zw + (w_inj @ self._inverse_transform(d_inj)).astype(self.dtype)
        return zw

    def _recombined_mean(self, Y: np.ndarray, best: np.ndarray) -> np.ndarray:
        """Line 12: ``mean + sigma sum w d = sum w x``, as the weights sum to one."""
        w = self.params.weights
        if Y.dtype == np.float64 and self.params.mu * self.n <= 1 << 20:
            return w @ Y[best]
        mean = np.zeros(self.n)  # no (mu, n) temporary
        for i, wi in zip(best, w):
            mean += wi * Y[i]
        return mean

    def _update_directions(self, zw: np.ndarray) -> None:
        """Line 15, and ``G = M M^T`` updated with the old M: ``G' = aa*G + u b^T + b u^T + |zw|^2 bb``."""
        st, m = self.state, self.params.m
        zw64 = zw.astype(np.float64, copy=False)
        if m * self.n <= 1 << 20:
            v = (st.M @ zw).astype(np.float64, copy=False)  # M_j . zw (old M)
            st.M *= self._alpha[:, None].astype(self.dtype)
            st.M += np.outer(self._beta.astype(self.dtype), zw)
        else:  # row by row, each row read once from memory; no (m, n) temporary
            v = np.empty(m)
            for j in range(m):
                row = st.M[j]
                v[j] = row @ zw
                row *= self.dtype(self._alpha[j])
                row += self.dtype(self._beta[j]) * zw
        T = np.outer(self._alpha * v, self._beta)
        st.G = self._alpha2 * st.G + T + T.T + float(zw64 @ zw64) * self._beta2
        if (self.countiter % GRAM_REFRESH) == 0:
            M64 = st.M.astype(np.float64, copy=False)
            st.G = M64 @ M64.T

    def _update(self, Y: np.ndarray, f: np.ndarray, order: np.ndarray, injected: np.ndarray | None) -> None:
        p, st = self.params, self.state
        best = order[: p.mu]
        if injected is not None:
            Y = self._clip_injected(Y, injected)
        zw = self._recombined_z(Y, best, injected)
        st.mean = self._recombined_mean(Y, best)  # line 12
        # line 13
        st.ps *= self.dtype(1.0 - p.cs)
        st.ps += self.dtype(np.sqrt(p.mueff * p.cs * (2.0 - p.cs))) * zw
        self._update_directions(zw)  # line 15
        # line 17
        st.sigma = float(st.sigma * np.exp(p.cs / p.damps * (float(np.dot(st.ps, st.ps)) / self.n - 1.0)))
        st.Z = None

    # ----- termination view ----------------------------------------------------------------------
    def coordinate_stds(self) -> np.ndarray:
        """``sigma * sqrt(diag(C))`` with ``C = A A^T`` the covariance of ``d`` (shape ``(n,)``).

        With ``A = a I + M^T W M`` (see :func:`_coefficient_matrix`),
        ``diag(C) = a^2 + colsum(M * (K M))``, ``K = a (W + W^T) + W G W^T``, computed in column
        blocks in ``O(m^2 n)`` time.  ``diag(C)`` is recomputed when ``m^2 n / DIAG_REFRESH_FLOPS``
        generations, clipped to 1..10, have passed since the last computation (every generation
        up to ``n ~ 1000``, every 10th from ``n ~ 1e4``): at most a few percent of a generation's
        cost, while the fastest direction vector moves by a fraction ``c_c,1 = lambda / n`` per
        generation in between.  ``sigma`` is always current.
        The cached diagonal is part of the state, so a resumed run sees the same values.
        """
        st = self.state
        if st.diagC is None or self.countiter - st.diagC_iter >= self._diag_refresh or self.countiter < st.diagC_iter:
            k = self.n_vectors_used
            var = np.ones(self.n)
            if k > 0:
                a, W = self._coefficients()
                K = a * (W + W.T) + W @ st.G[:k, :k] @ W.T
                step = 1 << 16
                for s in range(0, self.n, step):
                    Mb = st.M[:k, s : s + step].astype(np.float64, copy=False)
                    KM = K @ Mb
                    KM *= Mb
                    var[s : s + step] = a * a + KM.sum(axis=0)
            st.diagC = np.maximum(var, 0.0)
            st.diagC_iter = self.countiter
        return st.sigma * np.sqrt(st.diagC)

    def _search_view_parts(self) -> dict[str, Any]:
        return {"stds": self.coordinate_stds(), "pc": None, "eigvals": None, "B": None}
