"""Length clipping of injected solutions, shared by every continuous strategy.

N. Hansen, "Injecting External Solutions Into CMA-ES", arXiv 1110.4181 (2011), Sec. 2: a
candidate that was not sampled from the current distribution ``N(m, sigma^2 C)`` (an external
solution, or in an asynchronous driver a sample of an older distribution) enters the update
with its step ``y = (x - m) / sigma`` renormalized so that its Mahalanobis length
``|C^{-1/2} y|`` is at most ``c_y = sqrt(n) + 2 n / (n + 2)``: ``y <- alpha_clip(c_y, |C^{-1/2} y|) y``
with ``alpha_clip(c, r) = min(1, c / r)``.  A sample of the current distribution has
``|C^{-1/2} y| ~ chi_n`` (mean about ``sqrt(n - 1/2)``, standard deviation about ``1/sqrt(2)``),
so ``c_y`` (``sqrt(n)`` plus about 2) is exceeded by almost no true sample and the clipping leaves
fair samples untouched while it bounds the influence of a wild one on the mean, the evolution
paths, C and sigma.  pycma applies the same rule (``CMA_injections_threshold_keep_len``).

Each strategy computes the whitened step ``z`` of its injected rows in its own metric (full C,
diagonal C, the LM-MA-ES transform, or the identity for canonical ES) and calls
:func:`clip_factors`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["clip_length", "clip_factors"]


def clip_length(n: int) -> float:
    """``c_y = sqrt(n) + 2 n / (n + 2)``, the largest Mahalanobis length kept for an injected
    step (arXiv 1110.4181, Sec. 2).  ``n``: dimension (>= 1)."""
    return math.sqrt(n) + 2.0 * n / (n + 2.0)


def clip_factors(Z: np.ndarray, n: int) -> np.ndarray:
    """``alpha_clip(c_y, |z|) = min(1, c_y / |z|)`` for each row of ``Z`` (k, n) of whitened steps;
    returns a ``(k,)`` float64 array in ``(0, 1]`` (1 for rows already short enough, and for
    ``z = 0``)."""
    norm = np.sqrt(np.einsum("ij,ij->i", Z, Z, dtype=np.float64))
    c = clip_length(n)
    return np.where(norm > c, c / np.maximum(norm, 1e-300), 1.0)
