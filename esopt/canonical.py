"""Placeholder: CanonicalES is being written (see issues)."""

from .base import EvolutionStrategy


class CanonicalES(EvolutionStrategy):  # pragma: no cover - placeholder
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("CanonicalES is not implemented yet")
