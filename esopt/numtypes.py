"""Type tests for numeric options: the one place that says a ``bool`` is not a number here.

``bool`` is a subclass of ``int`` in Python, so ``isinstance(True, int)`` holds; an option such as
``popsize=True`` or ``sigma0=False`` is a mistake, not the number 1 or 0.  Every option check of
the strategies uses these two predicates instead of spelling the exclusion out.
"""

from __future__ import annotations

import numpy as np

__all__ = ["is_int", "is_real"]


def is_int(v: object) -> bool:
    """True for a Python ``int`` or a numpy integer scalar that is not a ``bool``/``numpy.bool_``.

    Parameters
    ----------
    v : object
        Any value; arrays (even 0-d) are not scalars and give ``False``.

    Returns
    -------
    bool
        Never raises.
    """
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_real(v: object) -> bool:
    """True for a Python or numpy ``int``/``float`` scalar that is not a ``bool``/``numpy.bool_``.

    Finiteness is not tested (``nan`` and ``inf`` are real-typed); callers check the range.

    Parameters
    ----------
    v : object
        Any value; arrays (even 0-d) are not scalars and give ``False``.

    Returns
    -------
    bool
        Never raises.
    """
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
