"""The discrete parts of CatCMA with margin, as pure functions on arrays (used by :mod:`esopt.mixed`).

Sources (equation numbers of the papers; cmaes 0.13.1's ``cmaes/_catcmawm.py`` was read as the
reference implementation, this is an independent vectorized writing of the same rules):

* Hamano, Saito, Nomura, Shirakawa, "CMA-ES with Margin: Lower-Bounding Marginal Probability for
  Mixed-Integer Black-Box Optimization", GECCO 2022, arXiv 2205.13482: integer coordinates are the
  Gaussian coordinate rounded to the nearest integer (the encoding); after each update the mean
  and the diagonal scaling ``A`` are corrected so that the marginal probability of leaving the
  current integer stays ``>= alpha`` (the "margin correction").
* Hamano, Saito, Nomura, Uchida, Shirakawa, "CatCMA: Stochastic Optimization for Mixed-Category
  Problems", GECCO 2024, arXiv 2405.09962: the categorical distribution ``q`` is updated by the
  natural gradient with the adaptive step of ASNG (Akimoto et al., "Adaptive Stochastic Natural
  Gradient Method for One-Shot Neural Architecture Search", ICML 2019, Appendix B, for the square
  root of the Fisher matrix), and each probability is kept ``>= qmin = alpha / (K - 1)`` (the
  margin for categoricals).
* Hamano et al., "CatCMA with Margin" (arXiv 2504.07884): the shared margin
  ``alpha = 1 - 0.73^(1/(N_int + N_cat))``, integer centering of the selected samples and the
  margin correction that keeps the mutation probability of integers without a successful mutation
  from growing (``pmut``).

Equation numbers: only the abstracts of the three Hamano et al. papers could be consulted while
writing this (offline), so their rules are cited by name, not by equation number; the formulas
follow cmaes 0.13.1's implementation.  All functions are vectorized over the integer (or
categorical) coordinates and never modify their inputs.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = [
    "EPS",
    "margin_alpha",
    "discretize",
    "thresholds",
    "integer_centering",
    "margin_correction",
    "categorical_sample",
    "sqrt_fisher_gradient",
    "categorical_margin",
]

#: numerical floor of the probabilities in the margin correction (cmaes's ``_EPS``)
EPS = 1e-8


def margin_alpha(n_int: int, n_cat: int) -> float:
    """The margin ``alpha = 1 - 0.73^(1/(N_int + N_cat))`` of CatCMA with margin (arXiv 2504.07884);
    ``0.0`` when there is no discrete coordinate."""
    m = n_int + n_cat
    return 0.0 if m == 0 else float(1.0 - 0.73 ** (1.0 / m))


def discretize(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Nearest integer of ``v`` (ties to the lower one), clipped to ``[lo, hi]`` (integer-valued
    floats, possibly infinite); the encoding of CMA-ES with margin.  Shapes broadcast:
    ``v`` (..., k), ``lo``/``hi`` (k,)."""
    return np.clip(np.ceil(v - 0.5), lo, hi) + 0.0  # + 0.0: no negative zeros


def thresholds(m: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Discretization thresholds ``(low, up)`` around the integer of the mean ``m`` (k,): ``k -/+
    1/2`` clipped to the thresholds that exist; at the end values of a bounded range both are the
    one threshold next to it (``l^low``, ``l^up`` of arXiv 2205.13482)."""
    k = discretize(m, lo, hi)
    return np.clip(k - 0.5, lo + 0.5, hi - 0.5), np.clip(k + 0.5, lo + 0.5, hi - 0.5)


def integer_centering(
    V: np.ndarray, m: np.ndarray, lo: np.ndarray, hi: np.ndarray, mu: int
) -> tuple[np.ndarray, np.ndarray]:
    """Integer centering of the ``mu`` best samples (CatCMA with margin, arXiv 2504.07884).

    Parameters
    ----------
    V : ndarray (popsize, k)
        Internal integer coordinates of the samples, sorted best first.
    m : ndarray (k,)
        Current mean of those coordinates.
    lo, hi : ndarray (k,)
        Integer range (floats, possibly infinite).
    mu : int
        Number of selected samples.

    Returns
    -------
    V_new : ndarray (popsize, k)
        Samples whose integer differs from the mean's ("mutated") moved onto that integer; the
        others moved towards their integer (by at most the distance to it) so that the bias the
        first move introduced into the mean is cancelled.
    succ : ndarray (k,) bool
        Whether some selected sample mutated the coordinate.
    """
    V = np.array(V, dtype=float, copy=True)
    top = V[:mu]
    int_m = discretize(m, lo, hi)
    Z = discretize(top, lo, hi)
    mutated = Z != int_m
    succ = mutated.any(axis=0)
    gap = np.where(mutated, 0.0, Z - top)  # moves still available to non-mutated samples
    mpos = np.where(gap > 0, gap, 0.0).sum(axis=0)
    mneg = np.where(gap < 0, gap, 0.0).sum(axis=0)
    new_top = np.where(mutated, Z, top)
    bias = (new_top - top).sum(axis=0)
    scale = np.zeros_like(m, dtype=float)
    for moves in (mpos, mneg):
        use = bias * moves < 0
        scale[use] = np.minimum(1.0, -bias[use] / moves[use])
    delta = Z - top  # distance of every selected sample to its integer (before the move)
    indic = (bias * delta < 0) & (discretize(new_top, lo, hi) == int_m)
    V[:mu] = new_top + indic * scale * delta
    return V, succ


def _edge_case(m, sd, A, low, up, lo, hi, alpha, pmut, succ):
    """Mean and A for coordinates whose mean lies beyond a threshold (the end of a bounded range):
    the probability of moving back is ``max(min(low, up), alpha)`` (capped by ``pmut`` without a
    successful mutation); arXiv 2205.13482, 2504.07884."""
    p_low, p_up = low
    p = np.maximum(np.minimum(p_low, p_up), alpha)
    p = np.where(succ, p, np.minimum(p, pmut))
    p = np.clip(p, EPS, 0.5 - EPS)
    a_lower = np.abs(discretize(m, lo, hi) - up) / (sd * ndtri(1.0 - alpha))  # sqrt(chi2_1(1-2 alpha))
    A_new = np.maximum(A, a_lower)
    m_new = up + np.sign(m - up) * (sd * A_new * ndtri(1.0 - p))
    return m_new, A_new, p


def _side_case(low_t, up_t, sd, cdfs, alpha, pmut, succ):
    """Mean and A for coordinates between two thresholds: the probabilities of moving down and up
    are raised to ``>= alpha/2`` each (arXiv 2205.13482), the probability of
    staying kept ``>= 1 - pmut`` without a successful mutation, and the mean and A solved so that
    the Gaussian marginal has exactly these probabilities."""
    p_low, p_up, p_mid = cdfs
    p_low = np.maximum(p_low, alpha / 2)
    p_up = np.maximum(p_up, alpha / 2)
    p_mid = np.where(succ, p_mid, np.maximum(p_mid, 1.0 - pmut))
    excess = np.where(succ, p_low + p_up + p_mid - 1.5 * alpha, p_low + p_up + p_mid - alpha - (1.0 - pmut))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(excess > 0, (1.0 - p_low - p_up - p_mid) / excess, 0.0)
    p_low = np.clip(p_low + ratio * (p_low - alpha / 2), EPS, 0.5 - EPS)
    p_up = np.clip(p_up + ratio * (p_up - alpha / 2), EPS, 0.5 - EPS)
    c_low, c_up = ndtri(1.0 - p_low), ndtri(1.0 - p_up)  # sqrt(chi2_1 quantile(1 - 2p))
    A_new = (up_t - low_t) / ((c_low + c_up) * sd)
    m_new = (low_t * c_up + up_t * c_low) / (c_low + c_up)
    return m_new, A_new, p_low + p_up


def margin_correction(
    m: np.ndarray,
    sd: np.ndarray,
    A: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    alpha: float,
    pmut: np.ndarray,
    succ: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The margin correction of the integer coordinates after the Gaussian update.

    Parameters
    ----------
    m : ndarray (k,)
        Updated mean of the integer coordinates.
    sd : ndarray (k,)
        ``sigma * sqrt(diag C)`` of those coordinates (the marginal std is ``A * sd``).
    A : ndarray (k,)
        Current margin scaling (> 0).
    lo, hi : ndarray (k,)
        Integer range.
    alpha : float
        The margin, in (0, 1/2).
    pmut : ndarray (k,)
        Last generation's mutation probabilities.
    succ : ndarray (k,) bool
        Successful mutations of this generation (:func:`integer_centering`).

    Returns
    -------
    (m, A, pmut) : three new ndarrays (k,)
        After the correction the probability that a sample's integer differs from the mean's is
        ``>= alpha`` (up to the clipping at ``EPS``) in every coordinate.
    """
    low_t, up_t = thresholds(m, lo, hi)
    scale = A * sd
    p_low = ndtr((low_t - m) / scale)  # Pr(X <= low threshold)
    p_up = 1.0 - ndtr((up_t - m) / scale)  # Pr(X > up threshold)
    p_mid = 1.0 - (p_low + p_up)
    edge = np.maximum(p_low, p_up) > 0.5
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        me, Ae, pe = _edge_case(m, sd, A, (p_low, p_up), up_t, lo, hi, alpha, pmut, succ)
        ms, As, ps = _side_case(low_t, up_t, sd, (p_low, p_up, p_mid), alpha, pmut, succ)
    return np.where(edge, me, ms), np.where(edge, Ae, As), np.where(edge, pe, ps)


def categorical_sample(q: np.ndarray, K: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Category indices ``(popsize, n_cat)`` (floats) from uniforms ``u`` (popsize, n_cat) by
    inverting the cumulative probabilities of ``q`` (n_cat, Kmax) (zero-padded beyond ``K``)."""
    cum = np.cumsum(q, axis=1)
    idx = (cum[None, :, :] <= u[:, :, None]).sum(axis=2)
    return np.minimum(idx, K - 1).astype(float)


def sqrt_fisher_gradient(q: np.ndarray, K: np.ndarray, ngrad: np.ndarray) -> np.ndarray:
    """``F^{1/2}``-scaled natural gradient of the categorical parameters, flattened over the first
    ``K_i - 1`` entries of each row (Akimoto et al., ICML 2019, Appendix B; used by CatCMA's
    learning-rate adaptation).

    ``q``, ``ngrad`` : (n_cat, Kmax); returns ``(sum(K - 1),)``.
    """
    Kmax = q.shape[1]
    rows = np.arange(q.shape[0])
    free = np.arange(Kmax)[None, :] < (K - 1)[:, None]
    q_last = q[rows, K - 1]
    g = np.where(free, ngrad, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = g / np.sqrt(q) + np.sqrt(q) * (g.sum(axis=1) / (q_last + np.sqrt(q_last)))[:, None]
    return s[free]


def categorical_margin(q: np.ndarray, K: np.ndarray, qmin: np.ndarray) -> np.ndarray:
    """Lower-bound every probability of row ``i`` by ``qmin[i]`` and renormalize so that the row
    sums to one while the bound holds (CatCMA's margin, arXiv 2405.09962); padding stays 0."""
    valid = np.arange(q.shape[1])[None, :] < K[:, None]
    lo = qmin[:, None]
    q = np.where(valid, np.maximum(q, lo), 0.0)
    total = q.sum(axis=1, keepdims=True)
    room = total - lo * K[:, None]  # mass above the floors; > 0 for rows summing to ~1
    shift = np.divide(total - 1.0, room, out=np.zeros_like(room), where=room > 0)
    q = np.where(valid, q - shift * (q - lo), 0.0)
    return q / q.sum(axis=1, keepdims=True)
