"""One numpy-aware converter to JSON-ready Python values, used by every JSON writer of the project.

:func:`to_jsonable` turns numpy scalars, arrays and dtypes, tuples, ``pathlib`` paths and
nested dicts/lists into plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``;
:func:`dumps` is ``json.dumps`` of it.  Non-finite floats are kept by default (Python's ``json``
writes and reads ``NaN``/``Infinity``); ``nonfinite="null"`` maps them to ``None`` for readers
that need strict JSON.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

__all__ = ["to_jsonable", "dumps", "json_default", "plain"]


def _scalar(v: Any, null: bool) -> Any:
    if isinstance(v, float) and null and not math.isfinite(v):
        return None
    return v


def to_jsonable(obj: Any, *, nonfinite: str = "keep") -> Any:
    """``obj`` as plain JSON-ready Python values (a new object; ``obj`` is not modified).

    Parameters
    ----------
    obj : Any
        ``None``, ``bool``, ``int``, ``float``, ``str``; numpy scalars (``.item()``), arrays of any
        shape (nested lists), dtypes and scalar types (their name, e.g. ``'float32'``);
        ``os.PathLike`` (``str``); dicts (keys become ``str``), lists and tuples (lists), nested.
    nonfinite : {"keep", "null"}
        Keep NaN/inf floats (default) or map them to ``None``.

    Raises
    ------
    TypeError
        For any other type (naming it), or object arrays.
    ValueError
        For an unknown ``nonfinite``.
    """
    if nonfinite not in ("keep", "null"):
        raise ValueError(f"nonfinite must be 'keep' or 'null', got {nonfinite!r}")
    return _convert(obj, nonfinite == "null")


def _convert(v: Any, null: bool) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return _scalar(v, null)
    if isinstance(v, np.generic):
        return _scalar(v.item(), null)
    if isinstance(v, dict):
        return {str(k): _convert(x, null) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_convert(x, null) for x in v]
    if isinstance(v, np.ndarray):
        if v.dtype == object:
            raise TypeError("object arrays are not JSON serializable; use numeric arrays")
        return _convert(v.tolist(), null) if null else v.tolist()
    if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
        return np.dtype(v).name
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    raise TypeError(f"value of type {type(v).__name__} is not JSON serializable")


def json_default(o: Any) -> Any:
    """``default=`` hook for ``json.dump(s)``: :func:`to_jsonable` of ``o`` (NaN/inf kept).

    Raises ``TypeError`` for unsupported types, as ``json`` expects.
    """
    return _convert(o, False)


def dumps(obj: Any, *, nonfinite: str = "keep", **kwargs: Any) -> str:
    """``json.dumps(to_jsonable(obj, nonfinite=nonfinite), **kwargs)``.

    With ``nonfinite="null"`` the output is strict JSON (``allow_nan=False`` is then safe).
    Raises as :func:`to_jsonable`.
    """
    return json.dumps(to_jsonable(obj, nonfinite=nonfinite), **kwargs)


def plain(v: Any) -> Any:
    """A numpy scalar as the Python scalar it holds (anything else unchanged), so that error
    messages show ``1.0`` rather than ``np.float64(1.0)``.  Never raises."""
    return v.item() if isinstance(v, np.generic) else v
