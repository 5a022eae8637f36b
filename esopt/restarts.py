"""Placeholder: IPOP/BIPOP are being written (see issues)."""

from .base import Strategy


class IPOP(Strategy):  # pragma: no cover - placeholder
    def __init__(self, *args, **kwargs):
        raise NotImplementedError


class BIPOP(IPOP):  # pragma: no cover - placeholder
    pass
