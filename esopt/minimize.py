"""Placeholder: minimize is being written."""


def minimize(*args, **kwargs):  # pragma: no cover - placeholder
    raise NotImplementedError
