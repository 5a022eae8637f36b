"""Placeholder: LMMAES is being written (see issues)."""

from .base import EvolutionStrategy


class LMMAES(EvolutionStrategy):  # pragma: no cover - placeholder
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("LMMAES is not implemented yet")
