"""Which esopt strategy an :class:`cluster.tune.ESSearcher` searches a Tune space with.

The campaigns' rule (:func:`cluster.configmodel.default_strategy`): the strategy named, or when
none is named the mixed strategy :data:`cluster.configmodel.MIXED_STRATEGY` (``"catcmawm"``,
:class:`esopt.CatCMAwM`) for a space with an integer or categorical domain and ``"cmaes"``
otherwise; a categorical needs one of :func:`cluster.configmodel.mixed_strategies` (the registered
strategies with a ``categories`` option, :mod:`esopt.registry`).
"""

from __future__ import annotations

import esopt

from .configmodel import MIXED_STRATEGY, mixed_strategies
from .tunespace import TuneSpace

__all__ = ["check_strategy_options", "resolve_strategy", "same_space"]


def check_strategy_options(strategy: str | None, options: dict, restarts: str | None) -> None:
    """Check ``options`` (flat, :func:`esopt.registry.flat_options`) for ``strategy`` and ``restarts``.

    ``strategy`` None (chosen from the space later): the options must suit ``"cmaes"`` or the
    mixed strategy.  Raises ``ValueError``/``TypeError`` as :func:`esopt.check_options`.
    """
    if strategy is not None:
        esopt.check_options(strategy, options, restarts=restarts)
        return
    try:
        esopt.check_options("cmaes", options, restarts=restarts)
    except (TypeError, ValueError) as e:
        try:
            esopt.check_options(MIXED_STRATEGY, options, restarts=restarts)
        except (TypeError, ValueError):
            raise type(e)(
                f"{e} (no strategy named: the options must suit 'cmaes' or, for a space with integer or "
                f"categorical domains, {MIXED_STRATEGY!r})"
            ) from e


def resolve_strategy(requested: str | None, tspace: TuneSpace) -> str:
    """The strategy for ``tspace``: ``requested``, or when None :data:`MIXED_STRATEGY` for a space
    with an integer or categorical domain and ``"cmaes"`` otherwise (the campaigns' rule,
    :func:`cluster.configmodel.default_strategy`).  Raises ``ValueError`` for a categorical with a
    strategy that cannot handle one."""
    able = mixed_strategies()
    name = requested if requested is not None else (MIXED_STRATEGY if tspace.discrete else "cmaes")
    cats = tspace.categoricals
    if cats and name not in able:
        raise ValueError(
            f"strategy {name!r} cannot search the categorical param_space[{cats[0]!r}] (tune.choice); use one of "
            f"{able} or leave strategy out (the default for such a space is {MIXED_STRATEGY!r})"
        )
    return name


def same_space(ours: TuneSpace, theirs: TuneSpace) -> bool:
    """True if both describe the same space, whatever coordinates each was converted to
    (:meth:`TuneSpace.with_mixed`: ESSearcher adapts a space to its strategy)."""
    try:
        return ours.same_as(theirs.with_mixed(ours.space.mixed))
    except ValueError:
        return False
