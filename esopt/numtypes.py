"""Type tests for numeric options: the one place that says a ``bool`` is not a number here.

``bool`` is a subclass of ``int`` in Python, so ``isinstance(True, int)`` holds; an option such as
``popsize=True`` or ``sigma0=False`` is a mistake, not the number 1 or 0.  Every option check of
the strategies uses these two predicates instead of spelling the exclusion out.

``is_int`` and ``is_real`` take any object ``v`` and never raise.  They test scalars only: arrays, even 0-d ones, give
``False``.  Neither tests the range or finiteness (``nan`` and ``inf`` are real-typed); callers
check that and raise their own ``ValueError`` naming the option.
"""

from __future__ import annotations

import numpy as np

__all__ = ["is_int", "is_real", "refuse_complex"]

_BOOLS = (bool, np.bool_)


def is_int(v: object) -> bool:
    """True for a Python ``int`` or numpy integer scalar, False for bools and everything else."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, _BOOLS)


def is_real(v: object) -> bool:
    """True for a Python or numpy ``int``/``float`` scalar, False for bools and everything else."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, _BOOLS)


def refuse_complex(a: np.ndarray, what: str) -> None:
    """Raise ``TypeError`` if the array ``a`` is complex (``what`` names it, e.g. ``"f"``).

    ``np.asarray(z, dtype=float)`` drops the imaginary part of a complex array with only numpy's
    ``ComplexWarning``, so a ``tell`` would have learned from half of each value.  O(1): a dtype test.
    """
    if a.dtype.kind == "c":
        raise TypeError(f"{what} must be real, got a complex array (dtype {a.dtype}); pass its .real if that is meant")
