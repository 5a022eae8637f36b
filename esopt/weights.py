"""Recombination weights.

Hansen's tutorial (arXiv 1604.00772), Eq. (49)-(53): preliminary weights
``w'_i = ln((lambda+1)/2) - ln i``; the positive ones are normalized to sum to one, the negative
ones (active CMA) are scaled so that their sum is ``-min(alpha_mu, alpha_mueff, alpha_posdef)``.
The functions below reproduce pycma 4.5.0's ``RecombinationWeights`` (``recombination_weights.py``)
including the order in which the three limits are applied.
"""

from __future__ import annotations

import numpy as np

__all__ = ["log_weights", "mueff", "recombination_weights", "finalize_negative_weights"]


def log_weights(mu: int) -> np.ndarray:
    """Positive log weights for the ``mu`` best of a population, shape ``(mu,)``, summing to 1.

    ``w_i = (ln(mu + 0.5) - ln i) / sum_j (ln(mu + 0.5) - ln j)``, ``i = 1..mu``: Hansen's
    tutorial Eq. (49) with ``(lambda+1)/2 = mu + 1/2``, also the weights of Chrabaszcz et al.
    2018 (arXiv 1802.08842, Algorithm 1).

    Raises ``ValueError`` if ``mu < 1``.
    """
    if mu < 1:
        raise ValueError(f"mu must be >= 1, got {mu}")
    w = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    return w / w.sum()


def mueff(weights: np.ndarray) -> float:
    """Variance-effective selection mass ``(sum w)^2 / sum w^2`` (tutorial, Table 1)."""
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / (w**2).sum())


def recombination_weights(popsize: int) -> tuple[np.ndarray, int]:
    """Raw weights of all ``popsize`` ranks before the active-CMA scaling, and ``mu``.

    Tutorial Eq. (49): ``w'_i = ln((popsize + 1) / 2) - ln i`` for ``i = 1..popsize``.  The
    positive weights (``mu = floor(popsize / 2)`` of them; the middle one of an odd population
    is exactly zero) are normalized to sum to 1, the non-positive ones to sum to -1 (pycma's
    ``RecombinationWeights.__init__``).  Use :func:`finalize_negative_weights` to scale the
    negative part.

    Returns
    -------
    weights : ndarray (popsize,)
        Non-increasing; ``weights[:mu] > 0 >= weights[mu:]``.
    mu : int
        Number of positive weights.

    Raises ``ValueError`` if ``popsize < 2``.
    """
    if popsize < 2:
        raise ValueError(f"popsize must be >= 2 for recombination weights, got {popsize}")
    w = np.log((popsize + 1) / 2.0) - np.log(np.arange(1, popsize + 1))  # Eq. (49)
    mu = int(np.sum(w > 0))
    w = w / w[:mu].sum()
    sneg = w[mu:].sum()
    if sneg != 0:
        w[mu:] /= -sneg
    return w, mu


def finalize_negative_weights(weights: np.ndarray, mu: int, n: int, c1: float, cmu: float) -> np.ndarray:
    """Scale the negative weights as pycma's ``RecombinationWeights.finalize_negative_weights``.

    In this order (tutorial Eq. (50)-(53)): set ``sum |w^-| = alpha_mu = 1 + c1/cmu`` (no decay
    of C, Eq. (50)); then limit it to ``alpha_posdef = (1 - c1 - cmu) / (n cmu)`` (Eq. (52));
    then to ``alpha_mueff = 1 + 2 mueff^- / (mueff + 2)`` (Eq. (51)).  The result equals the
    tutorial's ``min(alpha_mu, alpha_mueff, alpha_posdef) / sum |w'^-|`` scaling (Eq. (53)).

    Parameters
    ----------
    weights : ndarray (popsize,)
        Output of :func:`recombination_weights` (not modified).
    mu : int
        Number of positive weights.
    n : int
        Dimension.
    c1, cmu : float
        Learning rates of the rank-one and rank-mu updates (Eq. (57), (58)).

    Returns
    -------
    ndarray (popsize,)
        A new array; the positive part is unchanged.

    Raises ``ValueError`` if ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"dimension n must be >= 1, got {n}")
    w = np.array(weights, dtype=float, copy=True)
    neg = w[mu:]  # a view: scaling it scales w
    if neg.size == 0 or not neg[-1] < 0:
        return w
    mueff_plus = 1.0 / np.sum(w[:mu] ** 2)
    mueff_minus = neg.sum() ** 2 / np.sum(neg**2)
    if cmu > 0:
        neg *= abs((1 + c1 / cmu) / neg.sum())  # Eq. (50)
        _limit_negative_sum(neg, (1 - c1 - cmu) / cmu / n)  # Eq. (52)
    _limit_negative_sum(neg, 1 + 2 * mueff_minus / (mueff_plus + 2))  # Eq. (51)
    return w


def _limit_negative_sum(neg: np.ndarray, value: float) -> None:
    """Scale ``neg`` (in place) down so that ``sum |neg| <= |value|``."""
    value = abs(value)
    s = neg.sum()
    if s >= -value:
        return
    factor = abs(value / s)
    if factor < 1:
        neg *= factor
