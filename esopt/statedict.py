"""Flat state dicts from dataclasses, and back: the checkpoint format of every strategy.

A strategy keeps its evolving state in dataclasses (its ``state``, the bookkeeping ``progress``
of :class:`esopt.base.EvolutionStrategy` or of a restart wrapper); :func:`flatten` turns one
into flat ``{prefix + field: value}`` entries (arrays copied, numpy scalars as Python scalars,
fields marked ``metadata={"json": True}`` as JSON strings, nested dataclasses flattened under
the same prefix), and :func:`unflatten` rebuilds it from such entries, taking dtypes and scalar
types from a template instance (the freshly constructed strategy's).  No attribute of the
strategy object itself is looked up by name.

Header and constructor entries shared by strategies and restart wrappers (``class``,
``version``, ``init.*``, ``rng``) are written by :func:`header`, :func:`init_entries`,
:func:`rng_entry` and read by :func:`check_header`, :func:`read_init`, :func:`load_rng`.

Format versions: 2 (this code); 1 is esopt 0.1.0's, read by :func:`check_header` and upgraded
by the strategy's ``_upgrade_v1`` hook (its keys ``state._Z`` etc. lost the underscore).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from .jsonutil import dumps
from .termination import Tolerances

__all__ = [
    "STATE_FORMAT_VERSION",
    "READABLE_VERSIONS",
    "flatten",
    "unflatten",
    "header",
    "check_header",
    "init_entries",
    "read_init",
    "rng_entry",
    "load_rng",
    "nest",
    "unnest",
]

#: Version written into every state dict.
STATE_FORMAT_VERSION = 2
#: Versions :func:`check_header` accepts (1: esopt 0.1.0).
READABLE_VERSIONS = (1, 2)


def _is_json(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("json"))


def flatten(obj: Any, prefix: str) -> dict[str, Any]:
    """``{prefix + name: value}`` for every field of the dataclass instance ``obj``.

    Arrays are copied; numpy scalars become Python scalars; ``json`` fields become JSON strings
    (``None`` stays ``None``); nested dataclass fields are flattened under the same ``prefix``.
    Raises ``TypeError`` for a value that is none of array, scalar, str or None.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            out.update(flatten(v, prefix))
        elif _is_json(f):
            out[prefix + f.name] = None if v is None else dumps(v)
        elif isinstance(v, np.ndarray):
            out[prefix + f.name] = v.copy()
        elif isinstance(v, np.generic):
            out[prefix + f.name] = v.item()
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[prefix + f.name] = v
        else:
            raise TypeError(f"state field {prefix}{f.name} has type {type(v).__name__}; expected an array or a scalar")
    return out


def _coerce(v: Any, cur: Any) -> Any:
    """``v`` with the dtype / scalar type of the template value ``cur``."""
    if isinstance(cur, np.ndarray) or isinstance(v, np.ndarray):
        return np.array(v, dtype=cur.dtype if isinstance(cur, np.ndarray) else None)
    if cur is not None and v is not None:
        return type(cur)(v)
    return v


def unflatten(template: Any, prefix: str, d: Mapping[str, Any]) -> Any:
    """A copy of the dataclass instance ``template`` with every field read from ``d``.

    A field whose key is missing keeps the template's value only if that is ``None`` (0.1.0
    omitted absent arrays); otherwise ``KeyError`` names the key.
    """
    values: dict[str, Any] = {}
    for f in dataclasses.fields(template):
        cur = getattr(template, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(cur):
            values[f.name] = unflatten(cur, prefix, d)
        elif key not in d:
            if cur is not None:
                raise KeyError(key)
        elif _is_json(f):
            values[f.name] = None if d[key] is None else json.loads(str(d[key]))
        else:
            values[f.name] = _coerce(d[key], cur)
    return dataclasses.replace(template, **values)


def header(name: str) -> dict[str, Any]:
    """``{"class": name, "version": STATE_FORMAT_VERSION}``."""
    return {"class": name, "version": STATE_FORMAT_VERSION}


def check_header(d: Any, name: str, cls_name: str) -> int:
    """Check that ``d`` is a state dict of the registered ``name``; return its format version.

    Raises ``TypeError`` if ``d`` is not a dict, ``ValueError`` for another class or an
    unreadable version.
    """
    if not isinstance(d, dict):
        raise TypeError(f"state dict must be a dict, got {type(d).__name__}")
    if "class" not in d or "version" not in d:
        raise ValueError("not an esopt state dict: keys 'class' and 'version' are missing")
    if d["class"] != name:
        raise ValueError(f"state dict is of class {d['class']!r}, cannot load it as {cls_name} ({name!r})")
    version = int(d["version"])
    if version not in READABLE_VERSIONS:
        raise ValueError(
            f"state dict format version {d['version']} is not supported (this esopt reads versions "
            f"{list(READABLE_VERSIONS)})"
        )
    return version


def init_entries(
    x0: np.ndarray, sigma0: float, popsize: int, bounds, tolerances: Tolerances, options: Mapping[str, Any]
) -> dict[str, Any]:
    """``init.*`` entries: constructor arguments from which the frozen parameters are rebuilt.

    ``bounds`` is a :class:`esopt.bounds.BoxBounds` or None; ``options`` plain scalars/strings.
    """
    d: dict[str, Any] = {"init.x0": x0.copy(), "init.sigma0": sigma0, "init.popsize": popsize}
    if bounds is not None:
        d["init.bounds.lower"] = bounds.lower.copy()
        d["init.bounds.upper"] = bounds.upper.copy()
    for k, v in dataclasses.asdict(tolerances).items():
        d[f"init.tolerances.{k}"] = v
    for k, v in options.items():
        d[f"init.options.{k}"] = v
    return d


def _with_prefix(d: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in d.items() if k.startswith(prefix)}


def nest(d: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``{prefix + key: value}``: a wrapped strategy's state dict stored inside its wrapper's."""
    return {prefix + k: v for k, v in d.items()}


def unnest(d: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Inverse of :func:`nest`: the entries of ``d`` under ``prefix``, the prefix removed."""
    return _with_prefix(d, prefix)


def read_init(d: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`init_entries`: ``x0``, ``sigma0``, ``popsize`` (None when the entry
    ``init.popsize_default`` is true: the constructor's default), ``bounds`` (a pair or None),
    ``tolerances`` (:class:`Tolerances`) and ``options`` (dict).  ``KeyError`` if missing."""
    bounds = None
    if "init.bounds.lower" in d:
        bounds = (np.asarray(d["init.bounds.lower"]), np.asarray(d["init.bounds.upper"]))
    return {
        "x0": np.asarray(d["init.x0"]),
        "sigma0": float(d["init.sigma0"]),
        # None: the strategy's default (format 2 since esopt 0.2 says so with init.popsize_default)
        "popsize": None if bool(d.get("init.popsize_default", False)) else int(d["init.popsize"]),
        "bounds": bounds,
        "tolerances": Tolerances(**_with_prefix(d, "init.tolerances.")),
        "options": _with_prefix(d, "init.options."),
    }


#: numpy's bit generators whose state a checkpoint can hold (their states are ints and arrays of ints)
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def rng_entry(rng: np.random.Generator) -> str:
    """The bit generator's state as JSON (the ``rng`` entry; arrays as lists of ints).

    Raises ``ValueError`` for a bit generator other than numpy's :data:`BIT_GENERATORS`.
    """
    if type(rng.bit_generator).__name__ not in BIT_GENERATORS:  # numpy's own (a subclass may hold more state)
        raise ValueError(
            f"cannot checkpoint a generator on bit generator {type(rng.bit_generator).__name__}: "
            f"use one of numpy's {list(BIT_GENERATORS)} (np.random.default_rng(seed) is PCG64)"
        )
    return dumps(rng.bit_generator.state)


def load_rng(d: Mapping[str, Any]) -> np.random.Generator:
    """A new generator in the state of ``d``'s ``rng`` entry, on the bit generator named there
    (``KeyError`` if missing, ``ValueError`` if it names none of :data:`BIT_GENERATORS`)."""
    state = json.loads(str(d["rng"]))
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in BIT_GENERATORS:
        raise ValueError(f"rng entry names bit generator {name!r}; readable: {list(BIT_GENERATORS)}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
