"""Exact, pickle-free checkpoints: one ``.npz`` file with JSON metadata inside.

Layout of the file (``numpy.savez``, read back with ``allow_pickle=False`` so that loading a
checkpoint never runs code):

* ``__meta__``: a 0-d unicode array holding JSON ``{"format": "esopt-checkpoint",
  "format_version": 1, "class": ..., "scalars": {...}, "arrays": [...]}``; ``scalars`` holds every
  non-array entry of the state dict (ints, floats incl. inf/nan, bools, strings, None);
* one array per array entry of the state dict, under its key.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .base import Strategy

__all__ = ["save", "load", "state_to_npz_bytes", "CHECKPOINT_FORMAT_VERSION"]

CHECKPOINT_FORMAT_VERSION = 1
_FORMAT = "esopt-checkpoint"


def _split(state: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    for k, v in state.items():
        if k == "__meta__":
            raise ValueError("state dict key '__meta__' is reserved")
        if isinstance(v, np.ndarray):
            if v.dtype == object:
                raise TypeError(f"state entry {k!r} is an object array; only numeric arrays can be saved")
            arrays[k] = v
        elif isinstance(v, np.generic):
            scalars[k] = v.item()
        elif v is None or isinstance(v, (bool, int, float, str)):
            scalars[k] = v
        else:
            raise TypeError(f"state entry {k!r} has type {type(v).__name__}; expected array, scalar, str or None")
    return arrays, scalars


def save(strategy: Strategy | dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``strategy.state_dict()`` (or a state dict) to ``path`` atomically.

    The file is written to ``path + '.tmp'`` and renamed, so a crash never leaves a half-written
    checkpoint under ``path``.  A ``.npz`` suffix is not added.  Returns the path.

    Raises
    ------
    TypeError
        If the state holds values that are neither arrays nor plain scalars.
    """
    state = strategy if isinstance(strategy, dict) else strategy.state_dict()
    arrays, scalars = _split(state)
    meta = {
        "format": _FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "class": state.get("class"),
        "scalars": scalars,
        "arrays": sorted(arrays),
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, __meta__=np.array(json.dumps(meta)), **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def state_to_npz_bytes(state: dict[str, Any]) -> bytes:
    """Serialize a state dict to the bytes of a checkpoint file (for storing in a database)."""
    import io

    arrays, scalars = _split(state)
    meta = {
        "format": _FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "class": state.get("class"),
        "scalars": scalars,
        "arrays": sorted(arrays),
    }
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **arrays)
    return buf.getvalue()


def read_state(source: str | os.PathLike | bytes) -> dict[str, Any]:
    """Read a state dict from a checkpoint file path or its bytes, without building a strategy.

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    ValueError
        If the file is truncated/corrupt, not an esopt checkpoint, or of another format version.
    """
    import io

    where = "checkpoint bytes" if isinstance(source, bytes) else f"checkpoint {os.fspath(source)!r}"
    fh = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with np.load(fh, allow_pickle=False) as z:
            if "__meta__" not in z.files:
                raise ValueError(f"{where} is not an esopt checkpoint (no __meta__ entry)")
            meta = json.loads(str(z["__meta__"]))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{where} is not an esopt checkpoint (format {meta.get('format')!r})")
            if meta.get("format_version") != CHECKPOINT_FORMAT_VERSION:
                raise ValueError(
                    f"{where} has format version {meta.get('format_version')}; this esopt reads version "
                    f"{CHECKPOINT_FORMAT_VERSION}"
                )
            state: dict[str, Any] = dict(meta["scalars"])
            for k in meta["arrays"]:
                state[k] = np.array(z[k])
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, json.JSONDecodeError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{where} is truncated or corrupt ({type(e).__name__}: {e})") from e
    except ValueError as e:
        if str(e).startswith(where):
            raise
        raise ValueError(f"{where} is truncated or corrupt ({e})") from e
    return state


def load(source: str | os.PathLike | bytes, expected_class: type[Strategy] | None = None) -> Strategy:
    """Rebuild the strategy saved by :func:`save` (class looked up in :mod:`esopt.registry`).

    Parameters
    ----------
    source : path or bytes
    expected_class : Strategy subclass, optional
        If given, a checkpoint of another class raises ``ValueError``.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_state`; also for an unknown or unexpected class.
    """
    from .registry import strategy_class

    state = read_state(source)
    cls = strategy_class(str(state.get("class")))
    if expected_class is not None and cls is not expected_class:
        raise ValueError(f"checkpoint holds a {cls.__name__}, expected {expected_class.__name__}")
    return cls.from_state_dict(state)
