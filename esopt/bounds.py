"""Box bounds by transformation: the search stays unconstrained, candidates are mapped into the box.

esopt uses the *periodic mirror* transformation (reflection at the bounds), in the spirit of
pycma's ``BoundTransform`` (pycma maps with a linear-quadratic periodic function; we use the
piecewise-linear periodic reflection, which is the identity inside the box).  For a
coordinate with bounds ``[l, u]`` and width ``w = u - l``::

    t = (y - l) mod 2w
    x = l + t          if t <= w
    x = l + 2w - t     otherwise

Properties: ``x`` always lies in ``[l, u]``; inside the box the map is the identity, so a
strategy whose distribution stays inside the box behaves exactly as without bounds; the map is
continuous, so rank-based strategies see the objective mirrored at each bound.  Coordinates
with infinite bounds on both sides are passed through unchanged; a coordinate bounded on one
side only is reflected at that side.
"""

from __future__ import annotations

import numpy as np

from .jsonutil import plain

__all__ = ["BoxBounds", "as_box_bounds"]


class BoxBounds:
    """Box constraints ``lower <= x <= upper`` handled by reflection.

    Parameters
    ----------
    lower, upper : float or array_like of shape (n,)
        Bounds; scalars are broadcast to ``n``. ``-inf``/``inf`` mean unbounded.
    n : int
        Dimension.

    Raises
    ------
    ValueError
        If a bound has the wrong shape, is NaN, or ``lower >= upper`` in any coordinate.
    """

    def __init__(self, lower, upper, n: int):
        lo = _as_bound(lower, n, "lower")
        up = _as_bound(upper, n, "upper")
        bad = np.flatnonzero(~(lo < up))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"bounds: lower must be < upper in every coordinate, but lower[{i}]={plain(lo[i])!r} >= "
                f"upper[{i}]={plain(up[i])!r}; pass bounds=(lower, upper) with lower < upper"
            )
        self.lower = lo
        self.upper = up
        self.n = n
        self._lo_fin = np.isfinite(lo)
        self._up_fin = np.isfinite(up)
        self._both = self._lo_fin & self._up_fin

    def outside(self, X: np.ndarray) -> np.ndarray:
        """Boolean mask, the shape of ``X`` (``(n,)`` or ``(k, n)``): True where a coordinate lies
        below ``lower`` or above ``upper`` (or is NaN)."""
        X = np.asarray(X, dtype=float)
        return ~((X >= self.lower) & (X <= self.upper))

    def contains(self, X: np.ndarray) -> np.ndarray:
        """Return a boolean mask over the last axis' rows: True where every coordinate is in the box.

        ``X`` has shape ``(n,)`` or ``(k, n)``; the result has shape ``()`` or ``(k,)``.
        """
        return ~np.any(self.outside(X), axis=-1)

    def transform(self, Y: np.ndarray) -> np.ndarray:
        """Map unconstrained points ``Y`` (shape ``(n,)`` or ``(k, n)``) into the box (same shape).

        Identity inside the box, reflection at the bounds (see module docstring).
        """
        Y = np.asarray(Y, dtype=float)
        X = Y.copy()
        both = self._both
        if both.any():
            lo, w = self.lower[both], (self.upper - self.lower)[both]
            t = np.mod(Y[..., both] - lo, 2.0 * w)
            X[..., both] = lo + np.where(t <= w, t, 2.0 * w - t)
        only_lo = self._lo_fin & ~self._up_fin
        if only_lo.any():
            lo = self.lower[only_lo]
            X[..., only_lo] = lo + np.abs(Y[..., only_lo] - lo)
        only_up = self._up_fin & ~self._lo_fin
        if only_up.any():
            up = self.upper[only_up]
            X[..., only_up] = up - np.abs(up - Y[..., only_up])
        # exact identity inside the box ((y - l) mod 2w + l can differ from y by round-off)
        X = np.where((Y >= self.lower) & (Y <= self.upper), Y, X)
        # guard against round-off pushing a value a hair outside the box
        return np.clip(X, self.lower, self.upper)

    def inverse(self, X: np.ndarray) -> np.ndarray:
        """Pre-image of in-box points ``X`` in the fundamental domain: the identity (a copy)."""
        return np.array(X, dtype=float, copy=True)


def as_box_bounds(bounds, n: int) -> BoxBounds:
    """Build :class:`BoxBounds` from a strategy's ``bounds`` argument.

    Parameters
    ----------
    bounds : pair ``(lower, upper)`` or :class:`scipy.optimize.Bounds`
        ``lower`` and ``upper`` are floats or array_likes of shape ``(n,)`` (pycma's convention);
        any object with ``lb`` and ``ub`` attributes (scipy's ``Bounds``) is read as
        ``(bounds.lb, bounds.ub)``, a ``(1,)`` array standing for a scalar as in scipy.
    n : int
        Dimension.

    Raises
    ------
    ValueError
        If ``bounds`` is neither of the two forms, or the bounds are invalid (:class:`BoxBounds`).
        scipy's other form, a sequence of ``n`` ``(min, max)`` pairs, is not accepted (with
        ``n = 2`` it reads as ``(lower, upper)``); when ``bounds`` has that shape the message says
        how to pass it.
    TypeError
        If a bound is not numeric.
    """
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):
        # scipy stores a scalar bound as a (1,) array; it means the same bound for every coordinate
        lb, ub = (b[0] if np.ndim(b) == 1 and len(b) == 1 else b for b in (bounds.lb, bounds.ub))
        return BoxBounds(lb, ub, n)
    hint = ""
    if _shape_of(bounds) == (n, 2):
        hint = (
            f"; bounds has shape ({n}, 2): if these are scipy-style (min, max) pairs, one per "
            "coordinate, pass bounds=tuple(zip(*pairs)) or scipy.optimize.Bounds(lower, upper)"
        )
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise ValueError(f"bounds must be a pair (lower, upper) of scalars or ({n},) arrays{hint}")
    try:
        return BoxBounds(bounds[0], bounds[1], n)
    except ValueError as e:
        raise ValueError(f"{e}{hint}") from None


def _shape_of(obj) -> tuple | None:
    try:
        return np.shape(obj)
    except ValueError:  # ragged nested sequences
        return None


def _as_bound(b, n: int, name: str) -> np.ndarray:
    try:
        arr = np.asarray(b, dtype=float)
    except (TypeError, ValueError) as e:
        raise TypeError(f"bounds: {name} must be a float or an array of floats, got {b!r}") from e
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"bounds: {name} must be a scalar or have shape ({n},), got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"bounds: {name} contains NaN")
    return arr.copy()
