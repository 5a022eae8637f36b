"""Named hyperparameters <-> the strategy's vector.

Every hyperparameter is mapped to one coordinate in ``[0, 1]``: its value in its own units is
first put on its scale (``log10`` or ``linear``), then normalized by the scaled range.  The
strategy therefore searches the unit cube ``[0, 1]^d`` (``Space.bounds``), and a step size
``sigma0`` means "this fraction of every range".

Integers (``type: int``) are kept continuous by the optimizer and rounded only at decode time.
Their continuous range is widened by half a unit on each side (``[lower - 0.5, upper + 0.5]`` on
the linear scale, the log of those on the log10 scale) so that every integer of ``[lower, upper]``
owns an interval of the same width on the chosen scale.  Decoding rounds half to even and clips
into ``[lower, upper]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Param", "ParamError", "Space"]

_SCALES = ("linear", "log10")
_SCALE_ALIASES = {"log": "log10"}  # the unit-cube map does not depend on the log's base
_TYPES = ("float", "int")
_FIELDS = ("lower", "upper", "scale", "type", "init")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _show(v: Any) -> str:
    """``repr`` without numpy's type wrapper (``np.float64(1.0)`` -> ``1.0``)."""
    return repr(v.item()) if isinstance(v, np.generic) else repr(v)


class ParamError(ValueError):
    """An invalid hyperparameter.

    ``path`` is the key path at fault (``space.<name>.<key>``, or ``space.<name>`` when no single
    key is), ``detail`` the message without it (what :class:`cluster.config.ConfigError` shows),
    ``str(e)`` the full message (``text``, default ``"<path> <detail>"``).
    """

    def __init__(self, path: str, detail: str, text: str | None = None):
        super().__init__(text if text is not None else f"{path} {detail}")
        self.path = path
        self.detail = detail


@dataclass(frozen=True)
class Param:
    """One hyperparameter.

    Attributes
    ----------
    name : str
    lower, upper : float
        Bounds in the hyperparameter's own units (``lower < upper``; both > 0 on the log10
        scale; for ints, integers with ``lower >= 1`` on the log10 scale).
    scale : {"linear", "log10"}
        ``"log"`` is accepted as another name of ``"log10"`` (stored as ``"log10"``).
    type : {"float", "int"}
    init : float or None
        Starting value in own units (default: the centre of the scaled range).

    Raises
    ------
    ParamError
        (a ``ValueError``) On any violation above, naming the parameter and the key.
    """

    name: str
    lower: float
    upper: float
    scale: str = "linear"
    type: str = "float"
    init: float | None = None

    def __post_init__(self):
        # "log" (the name trials.HParam used) is the same scale: the unit-cube map ignores the base
        if isinstance(self.scale, str) and self.scale in _SCALE_ALIASES:
            object.__setattr__(self, "scale", _SCALE_ALIASES[self.scale])
        for key in ("lower", "upper", "init"):  # numpy scalars -> Python numbers (JSON-safe to_dict)
            v = getattr(self, key)
            if isinstance(v, (np.integer, np.floating)):
                object.__setattr__(self, key, v.item())
        self._check_choices()
        self._check_bounds()
        if self.type == "int":
            self._check_int()
        if self.init is not None:
            self._check_init()

    def _fail(self, key: str, detail: str) -> None:
        raise ParamError(f"space.{self.name}.{key}", detail)

    def _check_choices(self) -> None:
        if self.scale not in _SCALES:
            self._fail("scale", f"must be one of {list(_SCALES)}, got {_show(self.scale)}")
        if self.type not in _TYPES:
            self._fail("type", f"must be one of {list(_TYPES)}, got {_show(self.type)}")

    def _check_bounds(self) -> None:
        for key in ("lower", "upper"):
            v = getattr(self, key)
            if not _is_number(v) or not math.isfinite(v):
                self._fail(key, f"must be a finite number, got {_show(v)}")
        if not self.lower < self.upper:
            self._fail("lower", f"must be < upper, got lower={_show(self.lower)} >= upper={_show(self.upper)}")
        if self.scale == "log10" and self.lower <= 0:
            self._fail("lower", f"must be > 0 on the log10 scale, got {_show(self.lower)}")

    def _check_int(self) -> None:
        if self.lower != int(self.lower) or self.upper != int(self.upper):
            where = f"space.{self.name}"
            detail = f"an int parameter needs integer bounds, got [{_show(self.lower)}, {_show(self.upper)}]"
            raise ParamError(where, detail, f"{where}: {detail}")
        if self.scale == "log10" and self.lower < 1:
            self._fail("lower", f"must be >= 1 for an int on the log10 scale, got {_show(self.lower)}")

    def _check_init(self) -> None:
        if not _is_number(self.init):
            self._fail("init", f"must be a number, got {_show(self.init)}")
        if not self.lower <= self.init <= self.upper:
            path, bounds = f"space.{self.name}.init", f"[{_show(self.lower)}, {_show(self.upper)}]"
            text = f"{path}={_show(self.init)} lies outside {bounds}"
            raise ParamError(path, f"{_show(self.init)} lies outside {bounds}; give a value within the bounds", text)

    @classmethod
    def from_mapping(cls, name: str, spec: Any) -> Param:
        """``Param(name, **spec)`` for a config mapping ``{lower, upper[, scale, type, init]}``.

        Raises :class:`ParamError` (a ``ValueError`` naming ``space.<name>[.<key>]``) for a
        non-mapping, an unknown key, a missing bound or any check of the class.
        """
        where = f"space.{name}"
        if not isinstance(spec, Mapping):
            raise ParamError(where, f"must be a mapping with lower and upper, got {_show(spec)}")
        unknown = sorted(set(spec) - set(_FIELDS))
        if unknown:
            detail = f"unknown key; known keys of {where}: {list(_FIELDS)}"
            raise ParamError(
                f"{where}.{unknown[0]}", detail, f"{where}: unknown key(s) {unknown}; known: {', '.join(_FIELDS)}"
            )
        for key in ("lower", "upper"):
            if key not in spec:
                raise ParamError(f"{where}.{key}", "is required")
        return cls(name=str(name), **dict(spec))

    # continuous range on the chosen scale
    def _scaled_range(self) -> tuple[float, float]:
        lo, up = float(self.lower), float(self.upper)
        if self.type == "int":
            lo, up = lo - 0.5, up + 0.5
        if self.scale == "log10":
            return math.log10(lo), math.log10(up)
        return lo, up

    def to_unit(self, value: float) -> float:
        """Own units -> ``[0, 1]`` coordinate."""
        a, b = self._scaled_range()
        s = math.log10(value) if self.scale == "log10" else float(value)
        return (s - a) / (b - a)

    def from_unit(self, u: float) -> float | int:
        """``[0, 1]`` coordinate -> own units (ints rounded, values clipped into the bounds)."""
        a, b = self._scaled_range()
        s = a + float(u) * (b - a)
        v = 10.0**s if self.scale == "log10" else s
        if self.type == "int":
            return int(min(max(round(v), self.lower), self.upper))
        return float(min(max(v, self.lower), self.upper))

    @property
    def x0(self) -> float:
        """Initial unit coordinate: ``init`` if given, else the centre (0.5)."""
        return 0.5 if self.init is None else self.to_unit(self.init)


class Space:
    """An ordered set of :class:`Param`; the search space of a campaign.

    Parameters
    ----------
    params : sequence of Param, or mapping name -> dict of Param fields
        E.g. ``{"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}}``.

    Raises
    ------
    ValueError
        Empty space, duplicate names, unknown field names, or invalid bounds.
    """

    def __init__(self, params: Sequence[Param] | Mapping[str, Mapping[str, Any]]):
        if isinstance(params, Mapping):
            params = [Param.from_mapping(name, spec) for name, spec in params.items()]
        params = list(params)
        if not params:
            raise ValueError("space must name at least one hyperparameter")
        names = [p.name for p in params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"space has duplicate names {dup}")
        self.params: tuple[Param, ...] = tuple(params)

    @property
    def names(self) -> list[str]:
        """Hyperparameter names in vector order."""
        return [p.name for p in self.params]

    @property
    def dim(self) -> int:
        """Number of hyperparameters ``d``."""
        return len(self.params)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(zeros(d), ones(d))``: the box handed to the strategy."""
        return np.zeros(self.dim), np.ones(self.dim)

    @property
    def x0(self) -> np.ndarray:
        """Initial vector, shape ``(d,)``, in ``[0, 1]``."""
        return np.array([p.x0 for p in self.params])

    def encode(self, params: Mapping[str, float]) -> np.ndarray:
        """Dict of values in own units -> vector ``(d,)`` in unit coordinates.

        Raises ``ValueError`` for missing or unknown names.
        """
        missing = [n for n in self.names if n not in params]
        extra = sorted(set(params) - set(self.names))
        if missing or extra:
            raise ValueError(f"params do not match the space: missing {missing}, unknown {extra}")
        return np.array([p.to_unit(params[p.name]) for p in self.params])

    def decode(self, x: Sequence[float]) -> dict[str, float | int]:
        """Vector ``(d,)`` -> dict of plain Python floats/ints in own units (ints rounded)."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.dim,):
            raise ValueError(f"vector must have shape ({self.dim},), got {x.shape}")
        return {p.name: p.from_unit(u) for p, u in zip(self.params, x)}

    def decode_many(self, X: np.ndarray) -> list[dict[str, float | int]]:
        """``(k, d)`` array -> list of ``k`` dicts."""
        return [self.decode(row) for row in np.asarray(X, dtype=float)]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: {lower, upper, scale, type[, init]}}`` (JSON/YAML-safe)."""
        out = {}
        for p in self.params:
            d = asdict(p)
            d.pop("name")
            if d["init"] is None:
                d.pop("init")
            out[p.name] = d
        return out

    def __repr__(self) -> str:
        return f"Space({self.to_dict()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.params == other.params
