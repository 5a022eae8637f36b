"""Exact, pickle-free checkpoints: one ``.npz`` file with JSON metadata inside.

Layout of the file (``numpy.savez``, read back with ``allow_pickle=False`` so that loading a
checkpoint never runs code):

* ``__meta__``: a 0-d unicode array holding JSON ``{"format": "esopt-checkpoint",
  "format_version": 1, "class": ..., "scalars": {...}, "arrays": [...]}``; ``scalars`` holds every
  non-array entry of the state dict (ints, floats incl. inf/nan, bools, strings, None);
* one array per array entry of the state dict, under its key.

The container's ``format_version`` (1) is unchanged since esopt 0.1.0; the state dict inside
carries its own ``version`` (2 today, 1 from 0.1.0; both are read, see :mod:`esopt.statedict`).
Files are written by :func:`atomic_write_bytes` (temporary file, ``fsync``, rename, ``fsync`` of
the directory), which other writers of the project use too.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .base import Strategy

__all__ = ["save", "load", "read_state", "state_to_npz_bytes", "atomic_write_bytes", "CHECKPOINT_FORMAT_VERSION"]

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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one.

    The bytes go to a temporary file in the same directory, which is flushed and ``fsync``-ed,
    renamed over ``path`` (``os.replace``, atomic on POSIX), and then the directory is
    ``fsync``-ed so that the rename itself survives a power loss.  Returns ``Path(path)``.

    Raises
    ------
    TypeError
        If ``data`` is not bytes-like.
    OSError
        If the directory does not exist or is not writable (the temporary file is removed).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    path = Path(path)
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
    return path


def _fsync_directory(directory: Path) -> None:
    """``fsync`` a directory (makes a rename in it durable); a no-op where the OS cannot."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open directories
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(dfd)


def save(strategy: Strategy | dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``strategy.state_dict()`` (or a state dict) to ``path`` atomically
    (:func:`atomic_write_bytes`: a crash never leaves a half-written checkpoint under ``path``).
    A ``.npz`` suffix is not added.  Returns the path.

    Raises
    ------
    TypeError
        If the state holds values that are neither arrays nor plain scalars.
    IsADirectoryError
        If ``path`` is a directory (the message suggests a file name in it); nothing is written.
    """
    if Path(path).is_dir():
        raise IsADirectoryError(
            f"checkpoint path {str(path)!r} is a directory; give a file name, e.g. {str(Path(path) / 'es.npz')!r}"
        )
    state = strategy if isinstance(strategy, dict) else strategy.state_dict()
    return atomic_write_bytes(path, state_to_npz_bytes(state))


def state_to_npz_bytes(state: dict[str, Any]) -> bytes:
    """Serialize a state dict to the bytes of a checkpoint file (for storing in a database).

    Raises ``TypeError`` if the state holds values that are neither arrays nor plain scalars.
    """
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
