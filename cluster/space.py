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

__all__ = ["Param", "Space"]

_SCALES = ("linear", "log10")
_TYPES = ("float", "int")


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
    type : {"float", "int"}
    init : float or None
        Starting value in own units (default: the centre of the scaled range).

    Raises
    ------
    ValueError
        On any violation above, naming the parameter.
    """

    name: str
    lower: float
    upper: float
    scale: str = "linear"
    type: str = "float"
    init: float | None = None

    def __post_init__(self):
        where = f"space.{self.name}"
        if self.scale not in _SCALES:
            raise ValueError(f"{where}.scale must be one of {list(_SCALES)}, got {self.scale!r}")
        if self.type not in _TYPES:
            raise ValueError(f"{where}.type must be one of {list(_TYPES)}, got {self.type!r}")
        for key in ("lower", "upper"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{where}.{key} must be a finite number, got {v!r}")
        if not self.lower < self.upper:
            raise ValueError(f"{where}.lower must be < upper, got lower={self.lower!r} >= upper={self.upper!r}")
        if self.scale == "log10" and self.lower <= 0:
            raise ValueError(f"{where}.lower must be > 0 on the log10 scale, got {self.lower!r}")
        if self.type == "int":
            if self.lower != int(self.lower) or self.upper != int(self.upper):
                raise ValueError(f"{where}: an int parameter needs integer bounds, got [{self.lower}, {self.upper}]")
            if self.scale == "log10" and self.lower < 1:
                raise ValueError(f"{where}.lower must be >= 1 for an int on the log10 scale, got {self.lower!r}")
        if self.init is not None:
            if isinstance(self.init, bool) or not isinstance(self.init, (int, float)):
                raise ValueError(f"{where}.init must be a number, got {self.init!r}")
            if not self.lower <= self.init <= self.upper:
                raise ValueError(f"{where}.init={self.init!r} lies outside [{self.lower}, {self.upper}]")

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
            items = []
            for name, spec in params.items():
                if not isinstance(spec, Mapping):
                    raise ValueError(f"space.{name} must be a mapping with lower/upper, got {spec!r}")
                unknown = sorted(set(spec) - {"lower", "upper", "scale", "type", "init"})
                if unknown:
                    raise ValueError(f"space.{name}: unknown key(s) {unknown}; known: lower, upper, scale, type, init")
                for key in ("lower", "upper"):
                    if key not in spec:
                        raise ValueError(f"space.{name}.{key} is required")
                items.append(Param(name=str(name), **dict(spec)))
            params = items
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
