"""Placeholder: SepCMAES is being written (see issues)."""

from .base import EvolutionStrategy


class SepCMAES(EvolutionStrategy):  # pragma: no cover - placeholder
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("SepCMAES is not implemented yet")
