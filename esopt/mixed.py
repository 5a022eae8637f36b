"""CatCMA with margin: CMA-ES for continuous, integer and categorical variables together.

Hamano, Saito, Nomura, Uchida, Shirakawa, "CatCMA: Stochastic Optimization for Mixed-Category
Problems", GECCO 2024 (arXiv 2405.09962), with the margin of "CMA-ES with Margin" (GECCO 2022,
arXiv 2205.13482) for the integers, as combined in "CatCMA with Margin" (arXiv 2504.07884; cmaes
0.13.1's ``CatCMAwM`` was read as the reference).  The search distribution is the product of a
Gaussian ``N(m, sigma^2 A C A)`` over the continuous and integer coordinates (``A`` diagonal, 1 on
continuous ones) and independent categorical distributions ``q_j`` over the categorical ones; one
joint ranking of the candidates updates both (CatCMA's natural-gradient update).  The discrete
rules (integer encoding, centering, margin correction, ASNG update, categorical margin) are in
:mod:`esopt.margin`.
Equation numbers below are those of Hansen's tutorial (arXiv 1604.00772); the Hamano et al. rules
are cited by name (see :mod:`esopt.margin` for why).

Encoding of a candidate: ``ask()`` returns a ``(popsize, n)`` float array in which

* continuous coordinates are reals (reflected into ``bounds`` as every strategy, :mod:`esopt.bounds`);
* integer coordinates (``integers=[i, ...]``) are integer values (as floats): the Gaussian
  coordinate rounded to the nearest integer (ties down), clipped to ``[ceil(lower), floor(upper)]``;
* categorical coordinates (``categories={j: K_j, ...}``) are the category index ``0..K_j-1`` (as a
  float).  The order of the index means nothing to the strategy.

``x0`` gives the Gaussian mean on continuous and integer coordinates (an integer coordinate may
start off-integer); on a categorical coordinate it must be a valid index, which is only what
``mean`` reports before the first update: the categorical distributions start uniform (as in the
paper), and ``mean`` then reports each one's most probable category.  ``sigma0`` is the step size
of the Gaussian part and does not act on categoricals.  ``C`` starts as ``I``, or with ``stds``
as ``diag(stds^2)`` on the Gaussian coordinates: variables with different search intervals
``Delta s_i`` get ``c_ii = (Delta s_i)^2`` in ``C^(0)``, the initialization Hansen's tutorial
(arXiv 1604.00772, Appendix B, initial values) gives for this case (pycma's ``CMA_stds`` serves
the same purpose).  The campaigns use it so that ``sigma0`` is the same fraction of every range
on integer coordinates, which hold the integer itself, as on the unit-cube ones
(:meth:`cluster.space.Space.strategy_options`).

``tell(X, f)``: rows equal to the asked ones use the Gaussian sample kept at ask time; an
injected row (any other row) must hold integer values in integer coordinates and valid indices in
categorical ones; it enters the Gaussian update at its own value (the pre-image of an integer is
the integer itself) and the categorical update as the one-hot vector of its index.

Learning rates and CSA constants are esopt's (:class:`esopt.cma.CMAParameters`: pycma 4.5's
``cs``, ``damps``, ``c1``, ``cmu``, active weights; :mod:`esopt.cmaconst`), where cmaes uses the
tutorial's ``cs``/``damps``; the covariance is eigendecomposed every generation (the discrete
coordinates need the current ``diag C``).  The Gaussian sample is ``C^{1/2} z`` with the
symmetric square root (as :class:`esopt.CMAES`), not cmaes's ``B D z``: the same distribution, but
unique, so a seed gives the same candidates on every BLAS kernel (checkpoints written while this
class sampled ``B D z`` continue with ``C^{1/2} z``, i.e. not bit-for-bit).  Termination: esopt's
criteria with pycma's names over the Gaussian part; a categorical coordinate reports the std
``sqrt(1 - max_k q_jk)``, which the margin keeps away from 0, so ``tolx`` fires only without
categoricals (``tolfun``, ``tolflatfitness``, ``ftarget``, ``maxfevals`` ... apply to all).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import cmaconst
from . import margin as mg
from .base import EvolutionStrategy, param_field, state_field
from .cma import CMAParameters, sampling_transform
from .jsonutil import plain
from .numtypes import is_int
from .weights import mueff as _mueff
from .weights import recombination_weights

__all__ = ["CatCMAwM", "MixedParams", "MixedState", "parse_variables", "EIG_FLOOR"]

#: eigenvalues of C are clamped to ``>= EIG_FLOOR * max eigenvalue`` (condition <= 1e14, pycma's
#: ``tolconditioncov``): on integer plateaus the integer variances grow while the continuous ones
#: shrink, and beyond that condition ``C^{-1/2}`` turns rounding noise into divergence.
EIG_FLOOR = 1e-14


def _index_list(values, n: int, what: str) -> list[int]:
    out = []
    for v in values:
        if not is_int(v):
            raise TypeError(f"{what}: coordinate indices must be ints, got {plain(v)!r}")
        if not 0 <= int(v) < n:
            raise ValueError(f"{what}: coordinate index {int(v)} is outside 0..{n - 1}")
        out.append(int(v))
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: duplicate coordinate indices in {out}")
    return out


def _category_pairs(categories) -> list[tuple[Any, Any]]:
    if isinstance(categories, Mapping):
        return list(categories.items())
    arr = np.asarray(categories)
    if arr.size == 0:
        return []
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            "categories must be a mapping {coordinate: number of categories} or (index, K) pairs, "
            f"got an array of shape {arr.shape}"
        )
    return [(a, b) for a, b in arr.tolist()]


def parse_variables(n: int, integers=None, categories=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the variable description of :class:`CatCMAwM`.

    Parameters
    ----------
    n : int
        Dimension.
    integers : sequence of int, optional
        Coordinates that are integers.
    categories : mapping {int: int} or sequence of (int, int) pairs, optional
        Categorical coordinates and their number of categories ``K >= 2``.

    Returns
    -------
    (int_idx, cat_idx, K) : int64 ndarrays, sorted by coordinate.

    Raises
    ------
    TypeError
        Non-integer indices or ``K``, or a description of the wrong type.
    ValueError
        Index out of range or given twice (also in both), ``K < 2`` (an empty or one-category choice).
    """
    int_idx = sorted(_index_list([] if integers is None else list(np.ravel(integers)), n, "integers"))
    pairs = [] if categories is None else _category_pairs(categories)
    cat_idx = _index_list([p[0] for p in pairs], n, "categories")
    for j, k in pairs:
        if not is_int(k):
            raise TypeError(f"categories: the number of categories of coordinate {j} must be an int, got {plain(k)!r}")
        if k < 2:
            raise ValueError(f"categories: coordinate {j} has {int(k)} categories; a categorical needs at least 2")
    both = sorted(set(int_idx) & set(cat_idx))
    if both:
        raise ValueError(f"coordinates {both} are given both as integers and as categories; give each one kind")
    order = np.argsort(cat_idx, kind="stable")
    K = np.array([int(pairs[i][1]) for i in order], dtype=np.int64)
    return np.array(int_idx, dtype=np.int64), np.array(cat_idx, dtype=np.int64)[order], K


@dataclass(frozen=True, eq=False)
class MixedParams:
    """Frozen parameters of :class:`CatCMAwM`.

    Attributes
    ----------
    n, popsize, mu : int
    g_idx : ndarray (n_g,)
        Coordinates of the Gaussian part (continuous and integer), ascending.
    int_pos : ndarray (n_int,)
        Positions of the integer coordinates inside the Gaussian vector.
    int_idx, cat_idx : ndarray
        Integer and categorical coordinates.
    int_lo, int_hi : ndarray (n_int,)
        Integer range, ``ceil(lower)``, ``floor(upper)`` (``-inf``/``inf`` if unbounded).
    K : ndarray (n_cat,)
        Number of categories.
    cma : CMAParameters or None
        Gaussian learning rates, weights, CSA constants for ``n_g`` (None when ``n_g == 0``).
    wpos : ndarray (mu,)
        Positive recombination weights (sum 1), used by the categorical update.
    alpha : float
        Margin ``1 - 0.73^(1/(n_int + n_cat))`` (:func:`esopt.margin.margin_alpha`).
    qmin : ndarray (n_cat,)
        ``alpha / (K - 1)``, the least probability of a category.
    param_sum : int
        ``sum(K - 1)``, free parameters of the categorical distributions.
    stds : ndarray (n,)
        Initial standard deviations in multiples of ``sigma0`` (1 on categorical coordinates):
        ``C^(0) = diag(stds[g_idx]^2)``.
    Delta_min : float
        Lower bound of ASNG's ``Delta``: ``delta_init / sqrt(param_sum)`` (0 without
        categoricals), so that the step ``delta = delta_init / Delta`` keeps the cumulation rate
        ``beta = delta / sqrt(param_sum) <= 1`` (the update needs ``beta < 2``).  The ASNG paper
        and cmaes 0.13.1 bound ``Delta`` only above; with a categorical held at its margin by a
        large population the gradient direction repeats every generation and ``Delta`` falls
        geometrically (9.4 to 0.02 in 7 generations at popsize 80), until ``beta`` passed 2 and
        ``tell`` raised ``ValueError`` (cmaes's ``np.sqrt`` gives NaN there).  A run whose
        ``beta`` stays <= 1 is unchanged by the bound.
    alpha_snr, delta_init : float
        ASNG's constants 1.5 and 1 (Akimoto et al., ICML 2019).
    """

    n: int
    popsize: int
    mu: int
    g_idx: np.ndarray
    int_pos: np.ndarray
    int_idx: np.ndarray
    cat_idx: np.ndarray
    int_lo: np.ndarray
    int_hi: np.ndarray
    K: np.ndarray
    cma: CMAParameters | None
    wpos: np.ndarray
    alpha: float
    qmin: np.ndarray
    param_sum: int
    stds: np.ndarray
    Delta_min: float
    alpha_snr: float = 1.5
    delta_init: float = 1.0


@dataclass
class MixedState:
    """Evolving state of :class:`CatCMAwM`.

    Attributes
    ----------
    mean : ndarray (n,)
        Gaussian mean on continuous/integer coordinates (internal); most probable category on
        categorical ones (``x0``'s index before the first update).
    sigma : float
    C : ndarray (n_g, n_g); B : ndarray (n_g, n_g); D : ndarray (n_g,)
        Covariance, its eigenvectors (columns) and sqrt eigenvalues (ascending).
    pc, ps : ndarray (n_g,)
    A : ndarray (n_g,)
        Margin scaling (1 on continuous coordinates).
    pmut : ndarray (n_int,)
        Mutation probabilities of the last margin correction.
    q : ndarray (n_cat, Kmax)
        Category probabilities, zero-padded beyond ``K``.
    delta, Delta, gamma : float; s : ndarray (param_sum,)
        ASNG's trust region and its accumulation (learning-rate adaptation of CatCMA).
    """

    mean: np.ndarray
    sigma: float
    C: np.ndarray
    B: np.ndarray
    D: np.ndarray
    pc: np.ndarray
    ps: np.ndarray
    A: np.ndarray
    pmut: np.ndarray
    q: np.ndarray
    delta: float
    Delta: float
    gamma: float
    s: np.ndarray


class CatCMAwM(EvolutionStrategy):
    """CatCMA with margin for continuous, integer and categorical coordinates (see module docstring).

    Parameters
    ----------
    x0 : array_like (n,)
        Start: Gaussian mean on continuous and integer coordinates, a category index on
        categorical ones.
    sigma0 : float > 0
        Initial step size of the Gaussian part, units of ``x``.
    integers : sequence of int, optional
        Integer coordinates.
    categories : mapping {int: int} or (index, K) pairs, optional
        Categorical coordinates and their number of categories ``K >= 2``.
    stds : array_like (n,), optional
        Initial standard deviations of the coordinates in multiples of ``sigma0`` (finite, > 0):
        ``C^(0) = diag(stds^2)`` on the Gaussian coordinates (tutorial Appendix B); entries at
        categorical coordinates are ignored.  Default: all 1 (``C^(0) = I``).
    popsize, seed, bounds, tolerances
        As :class:`esopt.base.EvolutionStrategy`.  On an integer coordinate the bounds must hold
        at least two integers; on a categorical one they must contain ``[0, K-1]``.

    Raises
    ------
    ValueError, TypeError
        As :class:`esopt.base.EvolutionStrategy`, and for a bad variable description
        (:func:`parse_variables`), bounds that do not match it, an ``x0`` whose categorical
        entries are not valid indices, or ``stds`` of the wrong shape or with entries that are not
        finite and positive.
    """

    name: ClassVar[str] = "catcmawm"
    pc = state_field()
    ps = state_field()
    C = state_field()
    B = state_field()
    D = state_field()
    A = state_field()
    q = state_field()
    alpha = param_field()

    def __init__(
        self,
        x0,
        sigma0,
        *,
        integers=None,
        categories=None,
        stds=None,
        popsize=None,
        seed=None,
        bounds=None,
        tolerances=None,
    ):
        super().__init__(x0, sigma0, popsize=popsize, seed=seed, bounds=bounds, tolerances=tolerances)
        n = self.n
        int_idx, cat_idx, K = parse_variables(n, integers, categories)
        lo, hi = self._integer_range(int_idx)
        self._check_categorical_start(cat_idx, K)
        g_idx = np.setdiff1d(np.arange(n), cat_idx)  # the Gaussian (continuous and integer) coordinates
        stds = self._check_stds(stds, g_idx)
        self.params = self._make_params(int_idx, cat_idx, g_idx, K, lo, hi, stds)
        self.state = self._initial_state()

    # ----- construction ------------------------------------------------------------------------
    def _integer_range(self, int_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.bounds is None:
            return np.full(int_idx.size, -np.inf), np.full(int_idx.size, np.inf)
        lo, hi = np.ceil(self.bounds.lower[int_idx]), np.floor(self.bounds.upper[int_idx])
        bad = int_idx[~(hi - lo >= 1)]
        if bad.size:
            raise ValueError(
                f"bounds of integer coordinates {bad.tolist()} hold fewer than two integers; widen them or "
                "make the coordinate a constant"
            )
        return lo, hi

    def _check_categorical_start(self, cat_idx: np.ndarray, K: np.ndarray) -> None:
        x = self.x0[cat_idx]
        bad = cat_idx[(x != np.round(x)) | (x < 0) | (x > K - 1)]
        if bad.size:
            raise ValueError(
                f"x0 at categorical coordinates {bad.tolist()} must be a category index 0..K-1, got "
                f"{self.x0[bad].tolist()}"
            )
        if self.bounds is not None:
            b = self.bounds
            bad = cat_idx[(b.lower[cat_idx] > 0) | (b.upper[cat_idx] < K - 1)]
            if bad.size:
                raise ValueError(
                    f"bounds of categorical coordinates {bad.tolist()} must contain 0..K-1 (the category "
                    "indices); leave them unbounded (-inf, inf)"
                )

    def _check_stds(self, stds, g_idx: np.ndarray) -> np.ndarray:
        """``stds`` (array_like (n,) or None) as a float ``(n,)`` array: ones if None; entries
        outside the Gaussian coordinates ``g_idx`` ((n_g,) ints: the categorical ones) set to 1.
        ``TypeError`` if not numeric, ``ValueError`` for another shape or a Gaussian entry that
        is not finite and > 0."""
        if stds is None:
            return np.ones(self.n)
        try:
            arr = np.array(stds, dtype=float)
        except (TypeError, ValueError) as e:
            raise TypeError(f"stds must be an array of {self.n} positive numbers, got {plain(stds)!r}") from e
        if arr.shape != (self.n,):
            raise ValueError(f"stds must have shape ({self.n},) (one entry per coordinate), got {arr.shape}")
        bad = g_idx[~(np.isfinite(arr[g_idx]) & (arr[g_idx] > 0))]
        if bad.size:
            raise ValueError(f"stds must be finite and > 0; coordinates {bad.tolist()} hold {arr[bad].tolist()}")
        out = np.ones(self.n)
        out[g_idx] = arr[g_idx]
        return out

    def _make_params(self, int_idx, cat_idx, g_idx, K, lo, hi, stds) -> MixedParams:
        n, lam = self.n, self.popsize
        w, mu = recombination_weights(lam)
        wpos = w[:mu].copy()
        alpha = mg.margin_alpha(int_idx.size, cat_idx.size)
        param_sum = int(np.sum(K - 1))
        return MixedParams(
            n=n,
            popsize=lam,
            mu=mu,
            g_idx=g_idx,
            int_pos=np.searchsorted(g_idx, int_idx),
            int_idx=int_idx,
            cat_idx=cat_idx,
            int_lo=lo,
            int_hi=hi,
            K=K,
            cma=CMAParameters(g_idx.size, lam, True) if g_idx.size else None,
            wpos=wpos,
            alpha=alpha,
            qmin=alpha / (K - 1.0),
            param_sum=param_sum,
            stds=stds,
            Delta_min=MixedParams.delta_init / math.sqrt(param_sum) if param_sum else 0.0,
        )

    def _initial_state(self) -> MixedState:
        p = self.params
        ng, Kmax = p.g_idx.size, int(p.K.max()) if p.K.size else 0
        valid = np.arange(Kmax)[None, :] < p.K[:, None]
        d0 = p.stds[p.g_idx]
        order = np.argsort(d0, kind="stable")  # eigenvalues ascending, as eigh returns them
        return MixedState(
            mean=self.x0.copy(),
            sigma=self.sigma0,
            C=np.diag(d0**2),
            B=np.eye(ng)[:, order],
            D=d0[order],
            pc=np.zeros(ng),
            ps=np.zeros(ng),
            A=np.ones(ng),
            pmut=np.full(p.int_idx.size, 0.5 - mg.EPS),
            q=np.where(valid, 1.0 / np.maximum(p.K[:, None], 1), 0.0),
            delta=p.delta_init,
            Delta=1.0,
            gamma=0.0,
            s=np.zeros(p.param_sum),
        )

    def _init_options(self) -> dict[str, Any]:
        p = self.params
        out = {"integers": p.int_idx.copy(), "categories": np.stack([p.cat_idx, p.K], axis=1).reshape(-1, 2)}
        if np.any(p.stds != 1.0):  # absent when all 1: checkpoints of earlier versions rebuild as before
            out["stds"] = p.stds.copy()
        return out

    @property
    def variable_kinds(self) -> np.ndarray:
        """``(n,)`` array of ``'c'`` (continuous), ``'i'`` (integer) and ``'k'`` (categorical)."""
        kinds = np.full(self.n, "c")
        kinds[self.params.int_idx] = "i"
        kinds[self.params.cat_idx] = "k"
        return kinds

    # ----- sampling ----------------------------------------------------------------------------
    def _sample(self) -> np.ndarray:
        """Internal candidates ``(popsize, n)``: the Gaussian sample ``m + sigma A C^{1/2} z``
        (``N(m, sigma^2 A C A)`` of CMA-ES with margin; ``C^{1/2} = B D B^T``, unique, so the
        candidates do not depend on which eigenvectors LAPACK returns for nearly equal eigenvalues:
        :func:`esopt.cma.sampling_transform`) on continuous/integer coordinates, the sampled
        category index on categorical ones."""
        p, st = self.params, self.state
        Y = np.empty((self.popsize, self.n))
        if p.g_idx.size:
            Z = self._rng.standard_normal((self.popsize, p.g_idx.size))  # z_k ~ N(0, I), Eq. (38)
            sqrtC = sampling_transform(st.B, st.D, "sqrt")  # symmetric
            Y[:, p.g_idx] = st.mean[p.g_idx] + (st.sigma * st.A) * (Z @ sqrtC)  # Eq. (39)-(40)
        if p.cat_idx.size:
            u = self._rng.random((self.popsize, p.cat_idx.size))
            Y[:, p.cat_idx] = mg.categorical_sample(st.q, p.K, u)
        return Y

    def _encode(self, Y: np.ndarray) -> np.ndarray:
        """External candidates: integer coordinates rounded into their range, continuous ones
        reflected into the bounds (categorical indices unchanged)."""
        p = self.params
        X = Y.copy()
        X[:, p.int_idx] = mg.discretize(Y[:, p.int_idx], p.int_lo, p.int_hi)
        return self.bounds.transform(X) if self.bounds is not None else X

    def ask(self) -> np.ndarray:
        """Sample a new population.

        Returns
        -------
        ndarray, shape (popsize, n)
            Candidates in the encoding of the module docstring (a fresh array), inside the bounds.
        """
        Y = self._sample()
        X = self._encode(Y)
        self.progress.asked_Y, self.progress.asked_X = Y, X
        return X.copy()

    def _check_tell(self, X, f):
        X, f, same = super()._check_tell(X, f)
        if same is not None:
            self._check_injected(X[~same])
        return X, f, same

    def _check_injected(self, Xi: np.ndarray) -> None:
        p = self.params
        Zi = Xi[:, p.int_idx]
        if np.any(Zi != np.round(Zi)):
            raise ValueError(f"injected rows of X hold non-integer values in integer coordinates {p.int_idx.tolist()}")
        if np.any((Zi < p.int_lo) | (Zi > p.int_hi)):
            raise ValueError("injected rows of X hold integers outside the bounds of integer coordinates")
        Ci = Xi[:, p.cat_idx]
        if np.any((Ci != np.round(Ci)) | (Ci < 0) | (Ci > p.K - 1)):
            raise ValueError(
                f"injected rows of X hold invalid category indices in coordinates {p.cat_idx.tolist()} "
                f"(valid: 0..K-1, K = {p.K.tolist()})"
            )

    # ----- update ------------------------------------------------------------------------------
    def _update(self, Y: np.ndarray, f: np.ndarray, order: np.ndarray, injected: np.ndarray | None) -> None:
        p = self.params
        Ys = Y[order]
        if p.g_idx.size:
            self._update_gaussian(Ys[:, p.g_idx])
        if p.cat_idx.size:
            self._update_categorical(Ys[:, p.cat_idx])

    def _update_gaussian(self, V: np.ndarray) -> None:
        """Integer centering, CMA update of ``m, ps, pc, C, sigma`` from the A-unscaled samples
        (tutorial Eq. (41)-(47), as CatCMA), then the margin correction."""
        p, st, cp = self.params, self.state, self.params.cma
        m = st.mean[p.g_idx]
        succ = np.zeros(p.int_idx.size, dtype=bool)
        if p.int_idx.size:
            Vi, succ = mg.integer_centering(V[:, p.int_pos], m[p.int_pos], p.int_lo, p.int_hi, p.mu)
            V = V.copy()
            V[:, p.int_pos] = Vi
        sigma = st.sigma
        ys = (V - m) / (st.A * sigma)  # (x_k - m)/sigma with x_k = m + (v_k - m)/A ~ N(m, sigma^2 C)
        yw = cp.weights[: p.mu] @ ys[: p.mu]  # Eq. (41)
        m = m + cp.cm * sigma * yw  # Eq. (42)
        inv_sqrt = (st.B / st.D) @ st.B.T  # C^{-1/2}
        st.ps = (1 - cp.cs) * st.ps + math.sqrt(cp.cs * (2 - cp.cs) * cp.mueff) * (inv_sqrt @ yw)  # Eq. (43)
        ps2 = float(st.ps @ st.ps)
        hsig = cmaconst.hsig(ps2, cp.cs, self.countiter, cp.n)
        st.pc = (1 - cp.cc) * st.pc + hsig * math.sqrt(cp.cc * (2 - cp.cc) * cp.mueff) * yw  # Eq. (45)
        zn2 = np.sum((ys @ inv_sqrt) ** 2, axis=1)
        w = np.where(cp.weights >= 0, cp.weights, cp.weights * cp.n / (zn2 + 1e-9))  # Eq. (46)
        c1a = cp.c1 * (1 - (1 - hsig) * cp.cc * (2 - cp.cc))
        C = (1 - c1a - cp.cmu * float(np.sum(cp.weights))) * st.C  # Eq. (47)
        C += cp.c1 * np.outer(st.pc, st.pc) + cp.cmu * (ys.T * w) @ ys
        st.sigma = cmaconst.csa_sigma(
            sigma, math.sqrt(ps2), cp.chiN, cp.cs / cp.damps, self.sigma0 * cmaconst.SIGMA_CAP_FACTOR
        )  # Eq. (44)
        self._set_covariance((C + C.T) / 2)
        if p.int_idx.size:
            sd = st.sigma * np.sqrt(np.diag(st.C))[p.int_pos]
            mi, Ai, st.pmut = mg.margin_correction(
                m[p.int_pos], sd, st.A[p.int_pos], p.int_lo, p.int_hi, p.alpha, st.pmut, succ
            )
            m[p.int_pos] = mi
            A = st.A.copy()
            A[p.int_pos] = Ai
            st.A = A
        mean = st.mean.copy()
        mean[p.g_idx] = m
        st.mean = mean

    def _set_covariance(self, C: np.ndarray) -> None:
        """Store C with its eigendecomposition, eigenvalues clamped to ``>= EIG_FLOOR * max``."""
        st = self.state
        eigvals, B = np.linalg.eigh(C)
        if not eigvals[0] >= max(eigvals[-1], 1e-300) * EIG_FLOOR:  # also catches NaN
            eigvals = np.maximum(eigvals, max(float(eigvals[-1]), 1e-300) * EIG_FLOOR)
            C = (B * eigvals) @ B.T
            C = (C + C.T) / 2
        st.C = np.ascontiguousarray(C)
        st.B = np.ascontiguousarray(B)
        st.D = np.sqrt(eigvals)

    def _update_categorical(self, Cs: np.ndarray) -> None:
        """Natural-gradient update of ``q`` with ASNG's adaptive step (CatCMA), then
        the categorical margin; ``Cs`` (popsize, n_cat) are the sorted indices."""
        p, st = self.params, self.state
        Kmax = st.q.shape[1]
        onehot = (Cs[: p.mu, :, None] == np.arange(Kmax)[None, None, :]).astype(float)
        ngrad = np.tensordot(p.wpos, onehot - st.q[None], axes=1)  # natural gradient, positive weights
        sq = mg.sqrt_fisher_gradient(st.q, p.K, ngrad)
        pnorm = float(np.sqrt(sq @ sq))
        q = st.q + (st.delta / (pnorm + mg.EPS)) * ngrad  # step delta / |F^{1/2} grad|
        st.delta = p.delta_init / st.Delta
        beta = st.delta / math.sqrt(p.param_sum)
        st.s = (1 - beta) * st.s + math.sqrt(beta * (2 - beta)) * sq / max(pnorm, 1e-300)
        st.gamma = (1 - beta) ** 2 * st.gamma + beta * (2 - beta)
        Delta = st.Delta * math.exp(beta * (st.gamma - float(st.s @ st.s) / p.alpha_snr))
        st.Delta = float(max(Delta, p.Delta_min))  # keeps the next beta <= 1 (MixedParams.Delta_min)
        st.q = mg.categorical_margin(q, p.K, p.qmin)
        mean = st.mean.copy()
        mean[p.cat_idx] = np.argmax(st.q, axis=1)
        st.mean = mean

    # ----- termination view --------------------------------------------------------------------
    def _search_view_parts(self) -> dict[str, Any]:
        p, st = self.params, self.state
        stds = np.empty(self.n)
        pc = np.zeros(self.n)
        stds[p.g_idx] = st.sigma * st.A * np.sqrt(np.diag(st.C))
        pc[p.g_idx] = st.pc
        stds[p.cat_idx] = np.sqrt(np.maximum(1.0 - st.q.max(axis=1), 0.0)) if p.cat_idx.size else 0.0
        full = p.g_idx.size == self.n
        return {
            "stds": stds,
            "pc": pc,
            "eigvals": st.D**2 if p.g_idx.size else None,
            "B": st.B if full else None,
        }

    @property
    def mueff(self) -> float:
        """Variance-effective selection mass of the positive weights."""
        return _mueff(self.params.wpos)
