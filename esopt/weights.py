"""Recombination weights.

Hansen's tutorial (arXiv 1604.00772), Eq. (49)-(53): preliminary weights
``w'_i = ln((lambda+1)/2) - ln i``; the positive ones are normalized to sum to one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["log_weights", "mueff"]


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
