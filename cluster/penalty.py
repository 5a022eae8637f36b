"""The value told to the strategy for a trial that produced no usable objective.

A failed, timed-out or non-finite trial must not stop a campaign, and it must rank below every
trial that worked.  ``penalize`` replaces those entries by

    worst + max(|worst|, 1)

where ``worst`` is the largest finite objective of the generation (``1.0`` if there is none), so
a penalized value is strictly worse than anything seen in the generation, finite (it keeps the
termination criteria and the journal meaningful), and penalized trials tie with each other
(ranked in sampling order).
"""

from __future__ import annotations

import numpy as np

__all__ = ["penalize"]


def penalize(f, failed=None) -> np.ndarray:
    """Return a copy of ``f`` (shape ``(popsize,)``) with failed and non-finite entries penalized.

    Parameters
    ----------
    f : array_like, shape (popsize,)
        Objective values; entries for failed trials may be anything (e.g. NaN).
    failed : array_like of bool, shape (popsize,), optional
        True where the trial failed; non-finite entries are penalized in any case.

    Raises
    ------
    ValueError
        If ``failed`` does not have the shape of ``f``.
    """
    f = np.array(f, dtype=float, copy=True).reshape(-1)
    bad = ~np.isfinite(f)
    if failed is not None:
        failed = np.asarray(failed, dtype=bool).reshape(-1)
        if failed.shape != f.shape:
            raise ValueError(f"failed must have shape {f.shape}, got {failed.shape}")
        bad |= failed
    if bad.any():
        good = f[~bad]
        worst = float(good.max()) if good.size else 1.0
        f[bad] = worst + max(abs(worst), 1.0)
    return f
