"""Keep a hyperparameter search going until its budget: restart a strategy whose criteria fired.

For tuning, the budget (trials, time, ``num_samples``) is the stop.  An evolution strategy's own
termination criteria (pycma's ``tolfun``, ``tolflatfitness``, ``tolx``, ...) fire long before it in
two common cases: a flat generation (every trial at chance level, or every trial penalized) and a
search that converged on a noisy plateau.  Campaigns (:mod:`cluster.campaign`) and
:class:`cluster.tune.ESSearcher` then call :func:`restart_after_convergence` instead of ending,
unless the user asked for the old behaviour (``strategy.stop_on_convergence: true``).

The restart is IPOP-style (Auger and Hansen, "A Restart CMA Evolution Strategy With Increasing
Population Size", CEC 2005): the population size is multiplied by ``incpopsize`` (2), the step size
starts afresh at ``sigma0``, and the new run starts **from the mean of the stopped run**, not from
the best trial.  Why the mean: a tuning objective is noisy (a retrained configuration moves by
0.3-1.6 points of validation error on the bundled digits, ``bench/results/hpo_quality.md``), so the
best trial is a minimum over noisy draws, biased towards lucky noise, whereas the mean is the
strategy's recombined estimate of where the good region is; with a fresh ``sigma0`` the larger
population re-explores around it (and, for a flat first generation, around the start point).

The restart is a pure function of the stopped strategy, the campaign's seed and the number of
evaluations told so far, so a resumed driver that finds the same stopped state restarts it the
same way (bit-for-bit resume needs nothing else in the journal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["restart_after_convergence", "restart_seed", "describe_stop", "MAX_POPSIZE_INCREASES"]

#: Restarts that multiply the population size; later ones keep it.  pycma's IPOP stops after 9
#: restarts (its ``restarts`` option), i.e. at 2**9 = 512 times the first population: a campaign,
#: which goes on until its budget, keeps restarting at that size instead of doubling without bound
#: (a cheap objective under ``max_time_s`` reached popsize 8192 in 30 s, 2**20 would follow).
MAX_POPSIZE_INCREASES = 9


def restart_seed(seed: int, n_told: int) -> int:
    """Seed of the run started after ``n_told`` evaluations of a search seeded with ``seed``.

    Derived with :class:`numpy.random.SeedSequence` from ``(seed, n_told)``, so it is the same
    every time the same point of the same search is reached (resume) and differs between restarts.
    Returns an int in ``[0, 2**63)``.  Raises ``ValueError`` for a negative ``seed`` or ``n_told``.
    """
    if int(seed) < 0 or int(n_told) < 0:
        raise ValueError(f"seed and n_told must be >= 0, got seed={int(seed)}, n_told={int(n_told)}")
    return int(np.random.SeedSequence([int(seed), int(n_told)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def describe_stop(stop: dict[str, Any]) -> str:
    """``{'tolfun': 1e-11, 'tolflatfitness': 1}`` -> ``"tolfun=1e-11, tolflatfitness=1"``."""
    return ", ".join(f"{k}={_plain(v)}" for k, v in stop.items()) or "nothing"


def restart_after_convergence(
    strategy: Any,
    build: Callable[[np.ndarray, int, int], Any],
    *,
    seed: int,
    n_told: int,
    incpopsize: int = 2,
    max_popsize: int | None = None,
    n_restarts: int = 0,
) -> Any:
    """A fresh strategy continuing the search of ``strategy``, whose ``stop()`` fired.

    Parameters
    ----------
    strategy : esopt strategy
        The stopped strategy; only ``strategy.result.mean`` (``(n,)``, the mean mapped into the
        bounds, in the search space's coordinates, e.g. the unit cube of a
        :class:`cluster.space.Space`) and ``strategy.popsize`` are read.
    build : callable ``(x0, popsize, seed) -> strategy``
        Builds the new run with the campaign's (or searcher's) own settings: same method, bounds,
        options and ``sigma0`` (the step size starts afresh).
    seed : int
        The search's seed (``strategy.seed`` of the config).
    n_told : int
        Evaluations told so far; with ``seed`` it fixes the new run's seed (:func:`restart_seed`).
    incpopsize : int
        Factor on the population size (IPOP; Auger and Hansen 2005 use 2).
    max_popsize : int or None
        Cap on the new population size (e.g. the remaining trial budget); ``None``: no cap.
    n_restarts : int
        Restarts of this search before this one; from the :data:`MAX_POPSIZE_INCREASES`-th on
        the population size is kept instead of multiplied.

    Returns the new strategy.  Raises ``ValueError`` for ``incpopsize < 1``, ``max_popsize < 2``
    or ``n_restarts < 0``.
    """
    if int(incpopsize) < 1:
        raise ValueError(f"incpopsize must be >= 1, got {incpopsize}")
    if max_popsize is not None and int(max_popsize) < 2:
        raise ValueError(f"max_popsize must be >= 2 or None, got {max_popsize}")
    if int(n_restarts) < 0:
        raise ValueError(f"n_restarts must be >= 0, got {n_restarts}")
    factor = int(incpopsize) if int(n_restarts) < MAX_POPSIZE_INCREASES else 1
    popsize = int(strategy.popsize) * factor
    if max_popsize is not None:
        popsize = max(2, min(popsize, int(max_popsize)))
    x0 = np.array(strategy.result.mean, dtype=float, copy=True)
    return build(x0, popsize, restart_seed(seed, n_told))


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v
