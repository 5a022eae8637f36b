"""Placeholder: CMAES is being written (see issues)."""

from .base import EvolutionStrategy


class CMAES(EvolutionStrategy):  # pragma: no cover - placeholder
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("CMAES is not implemented yet")
