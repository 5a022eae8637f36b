"""The constants and step-size rules shared by CMAES and SepCMAES: one source.

Hansen's tutorial (arXiv 1604.00772, equation numbers below) as implemented by pycma 4.5.0
(``CMAAdaptSigmaCSA`` in ``cma/sigma_adaptation.py``, ``Mh.chiN`` in ``cma/utilities/math.py``),
which both strategies follow; pycma uses the same values with ``CMA_diagonal=True``
(``tests/test_sepcma.py`` compares them at n = 2, 10, 100):

* ``cs = min(1/2, (mueff + 2)/(n + mueff + 3))`` (the tutorial's Eq. (55) has ``+ 5``);
* ``damps = 1 + 2 max(0, a sqrt((mueff - 1)/(n + 1)) - 1) + cs``, ``a = max(1, 3 (1 - 2^(-n/9)))``
  (the tutorial's Eq. (55) has ``a = 1``);
* ``chiN = E|N(0, I_n)|`` exactly (pycma tabulates the exact value up to n = 100);
* ``hsig``: ``|ps|^2 / (1 - (1 - cs)^(2 g)) / n < 2 + 4/(n + 1)`` (pycma's ``hsig``; the
  tutorial's footnote to Eq. (45) tests ``|ps| / sqrt(...) / chiN < 1.4 + 2/(n + 1)``);
* Eq. (44) with the change of ``log(sigma)`` clipped to ``[-1, 1]`` per generation (pycma's
  ``max_delta_log_sigma``), then sigma capped at ``sigma0 * SIGMA_CAP_FACTOR``.

Recombination weights come from :mod:`esopt.weights` (tutorial Eq. (49)-(53)).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

__all__ = [
    "SIGMA_CAP_FACTOR",
    "MAX_DELTA_LOG_SIGMA",
    "expected_norm",
    "mueff",
    "csa_cs",
    "csa_damps",
    "hsig",
    "csa_sigma",
]

#: sigma is never allowed above ``sigma0 * SIGMA_CAP_FACTOR`` (beyond ``tolupsigma = 1e20``, so a
#: run that honours ``stop()`` never meets the cap; it keeps the arithmetic finite otherwise).
SIGMA_CAP_FACTOR = 1e30
#: per-generation bound of ``|log(sigma_new / sigma)|`` (pycma's ``max_delta_log_sigma``).
MAX_DELTA_LOG_SIGMA = 1.0


def expected_norm(n: int) -> float:
    """``chiN = E|N(0, I_n)| = sqrt(2) Gamma((n+1)/2) / Gamma(n/2)`` (tutorial, below Eq. (44)).

    Exact (log-gamma); pycma's ``Mh.chiN`` tabulates the exact value for ``n <= 100`` and uses
    ``sqrt(n) (1 - 1/(4n) + 1/(32 n^2))`` above (relative difference < 1e-7).
    """
    return float(math.sqrt(2.0) * math.exp(gammaln((n + 1) / 2.0) - gammaln(n / 2.0)))


def mueff(positive_weights: np.ndarray) -> float:
    """Variance-effective selection mass ``1 / sum(w_i^2)`` of the ``(mu,)`` positive weights
    summing to one (tutorial, Table 1; pycma's ``RecombinationWeights.mueff``)."""
    return float(1.0 / np.sum(positive_weights**2))


def csa_cs(n: int, mueff: float) -> float:
    """Cumulation constant of the step-size path, pycma: ``min(1/2, (mueff + 2)/(n + mueff + 3))``."""
    return min(0.5, (mueff + 2) / (n + mueff + 3))  # Eq. (55), pycma


def csa_damps(n: int, mueff: float, cs: float) -> float:
    """Step-size damping, pycma: ``1 + 2 max(0, a sqrt((mueff-1)/(n+1)) - 1) + cs`` with
    ``a = max(1, 3 (1 - 2^(-n/9)))``; the constant 1 is pycma's
    ``1/2 + min(1, (lam_mirr/(0.159 popsize) - 1)^2) / 2`` without mirrored sampling."""
    a = max(1.0, 3 * (1 - 0.5 ** (n / 9)))
    return 1.0 + 2 * max(0.0, a * ((mueff - 1) / (n + 1)) ** 0.5 - 1) + cs  # Eq. (55), pycma


def hsig(ps2: float, cs: float, countiter: int, n: int) -> bool:
    """pycma's Heaviside ``h_sigma`` of Eq. (45): ``ps2 / (1 - (1-cs)^(2 g)) / n < 2 + 4/(n+1)``
    with ``ps2 = |ps|^2`` after this generation's update and ``g = countiter`` (this one included)."""
    return ps2 / (1 - (1 - cs) ** (2 * countiter)) / n < 2 + 4.0 / (n + 1)


def csa_sigma(sigma: float, ps_norm: float, chiN: float, cs_over_damps: float, sigma_cap: float) -> float:
    """Eq. (44): ``sigma exp((cs/damps)(|ps|/chiN - 1))``, the exponent clipped to
    ``[-MAX_DELTA_LOG_SIGMA, MAX_DELTA_LOG_SIGMA]`` as pycma, the result capped at ``sigma_cap``."""
    s = (ps_norm / chiN - 1) * cs_over_damps
    s = min(MAX_DELTA_LOG_SIGMA, max(-MAX_DELTA_LOG_SIGMA, s))
    return min(sigma * math.exp(s), sigma_cap)
