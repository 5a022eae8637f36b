"""Type tests for numeric options: the one place that says a ``bool`` is not a number here.

``bool`` is a subclass of ``int`` in Python, so ``isinstance(True, int)`` holds; an option such as
``popsize=True`` or ``sigma0=False`` is a mistake, not the number 1 or 0.  Every option check of
the strategies uses these two predicates instead of spelling the exclusion out.

``is_int`` and ``is_real`` take any object ``v`` and never raise.  They test scalars only: arrays, even 0-d ones, give
``False``.  Neither tests the range or finiteness (``nan`` and ``inf`` are real-typed); callers
check that and raise their own ``ValueError`` naming the option.  :func:`real_array` is the one
conversion of ``tell``'s arrays (every strategy and :class:`esopt.LQSurrogate`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["is_int", "is_real", "real_array"]

_BOOLS = (bool, np.bool_)


def is_int(v: object) -> bool:
    """True for a Python ``int`` or numpy integer scalar, False for bools and everything else."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, _BOOLS)


def is_real(v: object) -> bool:
    """True for a Python or numpy ``int``/``float`` scalar, False for bools and everything else."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, _BOOLS)


def real_array(a: object, what: str, message: str, keep: tuple = ()) -> np.ndarray:
    """``a`` as a float array (any shape; dtypes in ``keep``, e.g. ``(np.float32,)``, stay as they
    are), for ``tell``'s ``X`` and ``f``.

    Raises ``TypeError``: ``message`` for anything numpy cannot read as numbers (strings, ragged
    lists, objects), and one naming ``what`` for a complex array, which ``astype(float)`` would cut
    to its real part with only numpy's ``ComplexWarning`` (a ``tell`` would have learned from half
    of each value).  O(1) beyond numpy's own conversion: a dtype test.
    """
    try:
        arr = np.asarray(a)
        if arr.dtype.kind != "c" and arr.dtype != np.float64 and arr.dtype not in keep:
            arr = arr.astype(float)
    except (TypeError, ValueError) as e:
        raise TypeError(message) from e
    if arr.dtype.kind == "c":
        raise TypeError(
            f"{what} must be real, got a complex array (dtype {arr.dtype}); pass its .real if that is meant"
        )
    return arr
