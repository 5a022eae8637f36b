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

Mixed spaces (``Space(..., mixed=True)``, what a campaign with the mixed strategy
:class:`esopt.CatCMAwM` uses; its ask() returns integers as integer values and categoricals as
category indices):

* a float keeps its unit coordinate in ``[0, 1]``;
* a linear int gets an *integer coordinate* holding the integer itself, bounds ``[lower, upper]``;
  its initial standard deviation is ``sigma0 * (upper - lower + 1)`` (the strategy's ``stds``,
  :meth:`Space.strategy_options`), so that ``sigma0`` is the same fraction of its range as on a
  unit coordinate, whose range also gives every integer one equal share;
* a log10 int keeps its continuous unit coordinate, rounded at decode as above (an integer
  coordinate cannot be log-spaced);
* a categorical (``choices: [...]``) gets a *categorical coordinate* holding the index
  ``0..K-1`` of the choice in ``choices``, bounds ``[0, K-1]``; decode returns the choice itself.

Without ``mixed`` (cmaes and the other continuous strategies) the map is exactly the unit cube
above, and a categorical is refused (only the mixed strategy handles one).

Choices must be JSON scalars of one kind (all strings, all booleans, or all finite numbers: ints
and floats may mix), at least two, no duplicates (``1`` and ``1.0`` are the same number), so that
the journal stores them exactly.  ``None`` (YAML ``null``) may be one of them beside any kind, as
in ``tune.choice([None, 3, 5])`` for "no limit", but not beside the string ``"null"`` (how
trials.csv spells ``None``); since ``init: null`` means "not given", ``None`` is the starting
choice only when it is listed first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Param", "ParamError", "Space"]

_SCALES = ("linear", "log10")
_SCALE_ALIASES = {"log": "log10"}  # the unit-cube map does not depend on the log's base
_TYPES = ("float", "int")
NULL_TEXT = "null"  # how a None choice is written as text (YAML's spelling): trials.csv, read back by simulate
_FIELDS = ("lower", "upper", "scale", "type", "init", "choices")
_NUMERIC_FIELDS = ("lower", "upper", "scale", "type")  # not with choices


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _exponent_hint(v: Any) -> str:
    """For a string such as ``"1e-4"`` (PyYAML reads an exponent without a dot as text, YAML
    1.1): the spelling YAML reads as a number; else ``""``."""
    if not isinstance(v, str):
        return ""
    try:
        x = float(v)
    except ValueError:
        return ""
    m, sep, e = v.strip().lower().partition("e")
    if not sep or not math.isfinite(x):
        return ""
    # YAML 1.1 floats need a dot in the mantissa and a sign in the exponent: 1e-4 -> 1.0e-4, 1e3 -> 1.0e+3
    spelled = f"{m if '.' in m else m + '.0'}e{e if e[:1] in '+-' else '+' + e}"
    return f" (YAML reads {v} as text: write {spelled})"


def _choice_kind(v: Any) -> str | None:
    """``"str"``, ``"bool"``, ``"number"``, ``"null"`` (for ``None``) for a journal-safe choice, else None."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, str):
        return "str"
    if isinstance(v, (int, float)) and math.isfinite(v):
        return "number"
    return None


def _same_choice(a: Any, b: Any) -> bool:
    """``a == b`` without ``True == 1``."""
    return _choice_kind(a) == _choice_kind(b) and a == b


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
    lower, upper : float (None for a categorical)
        Bounds in the hyperparameter's own units (``lower < upper``; both > 0 on the log10
        scale; for ints, integers with ``lower >= 1`` on the log10 scale).
    scale : {"linear", "log10"}
        ``"log"`` is accepted as another name of ``"log10"`` (stored as ``"log10"``).
    type : {"float", "int"}
    init : float, or a choice, or None
        Starting value in own units (default: the centre of the scaled range); for a
        categorical one of ``choices`` (default: the first).
    choices : tuple or None
        A categorical: its values (str, bool or finite numbers, one kind, and ``None`` beside any
        kind; >= 2, no duplicates);
        ``lower``, ``upper`` must then be None and ``scale``, ``type`` their defaults.

    Raises
    ------
    ParamError
        (a ``ValueError``) On any violation above, naming the parameter and the key.
    """

    name: str
    lower: float | None = None
    upper: float | None = None
    scale: str = "linear"
    type: str = "float"
    init: Any = None
    choices: tuple | None = None

    def __post_init__(self):
        if self.choices is not None:
            self._check_categorical()
            return
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

    @property
    def is_categorical(self) -> bool:
        """True for a ``choices`` parameter."""
        return self.choices is not None

    def _check_categorical(self) -> None:
        c = self.choices
        if isinstance(c, (str, bytes, Mapping)) or not isinstance(c, Sequence):
            self._fail("choices", f"must be a list of at least two values, got {_show(c)}")
        c = tuple(v.item() if isinstance(v, np.generic) else v for v in c)
        object.__setattr__(self, "choices", c)
        if len(c) < 2:
            self._fail(
                "choices", f"must hold at least two values, got {len(c)}; a constant belongs in trial: or the objective"
            )
        for v in c:
            if _choice_kind(v) is None:
                self._fail(
                    "choices",
                    f"must be strings, numbers, booleans or null/None (journaled as JSON), got {_show(v)} in {list(c)}",
                )
        kinds = sorted({_choice_kind(v) for v in c} - {"null"})
        if len(kinds) > 1:
            self._fail(
                "choices",
                "must all be of one kind (strings, numbers or booleans; null/None may join any), "
                f"got {kinds} in {list(c)}",
            )
        dup = [v for i, v in enumerate(c) if any(_same_choice(v, w) for w in c[:i])]
        if dup:
            self._fail("choices", f"has duplicates {dup} in {list(c)}; list each choice once")
        if None in c and NULL_TEXT in c:  # trials.csv (and simulate --durations) spell both so
            self._fail(
                "choices",
                f"holds both null and the string {NULL_TEXT!r}, which trials.csv cannot tell apart; rename the string",
            )
        for key, default in zip(_NUMERIC_FIELDS, (None, None, "linear", "float")):
            if getattr(self, key) != default:
                self._fail(key, "cannot be given together with choices (a categorical has no range, scale or type)")
        if self.init is not None and self.index(self.init) is None:
            self._fail("init", f"{_show(self.init)} is not one of the choices {list(c)}")

    def index(self, value: Any) -> int | None:
        """Position of ``value`` in ``choices`` (None if absent; ``True`` is not ``1``)."""
        for i, v in enumerate(self.choices or ()):
            if _same_choice(v, value.item() if isinstance(value, np.generic) else value):
                return i
        return None

    def _check_choices(self) -> None:
        if self.scale not in _SCALES:
            self._fail("scale", f"must be one of {list(_SCALES)}, got {_show(self.scale)}")
        if self.type not in _TYPES:
            self._fail("type", f"must be one of {list(_TYPES)}, got {_show(self.type)}")

    def _check_bounds(self) -> None:
        for key in ("lower", "upper"):
            v = getattr(self, key)
            if not _is_number(v) or not math.isfinite(v):
                self._fail(key, f"must be a finite number, got {_show(v)}{_exponent_hint(v)}")
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
        if self.type == "int" and self.init != int(self.init):  # (a float init would be rounded unseen)
            self._fail("init", f"must be an integer for a type: int parameter, got {_show(self.init)}")

    @classmethod
    def from_mapping(cls, name: str, spec: Any) -> Param:
        """``Param(name, **spec)`` for a config mapping ``{lower, upper[, scale, type, init]}``.

        Raises :class:`ParamError` (a ``ValueError`` naming ``space.<name>[.<key>]``) for a
        non-mapping, an unknown key, a missing bound or any check of the class.
        """
        where = f"space.{name}"
        if not isinstance(spec, Mapping):
            raise ParamError(where, f"must be a mapping with lower and upper (or choices), got {_show(spec)}")
        unknown = sorted(set(spec) - set(_FIELDS))
        if unknown:
            detail = f"unknown key; known keys of {where}: {list(_FIELDS)}"
            raise ParamError(
                f"{where}.{unknown[0]}", detail, f"{where}: unknown key(s) {unknown}; known: {', '.join(_FIELDS)}"
            )
        if "choices" in spec:
            both = [k for k in _NUMERIC_FIELDS if k in spec]
            if both:
                raise ParamError(
                    f"{where}.{both[0]}",
                    "cannot be given together with choices (a categorical has no range, scale or type); remove it",
                )
            choices = spec["choices"]
            if isinstance(choices, (list, tuple)):
                choices = tuple(choices)
            return cls(name=str(name), choices=choices, init=spec.get("init"))
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

    def coordinate_kind(self, mixed: bool) -> str:
        """``"unit"``, ``"integer"`` or ``"categorical"``: this parameter's coordinate (module docstring)."""
        if self.is_categorical:
            return "categorical"
        if mixed and self.type == "int" and self.scale == "linear":
            return "integer"
        return "unit"

    def to_dict(self) -> dict[str, Any]:
        """Config mapping (JSON/YAML-safe): ``{choices[, init]}`` or ``{lower, upper, scale, type[, init]}``."""
        if self.is_categorical:
            d: dict[str, Any] = {"choices": list(self.choices)}
        else:
            d = {"lower": self.lower, "upper": self.upper, "scale": self.scale, "type": self.type}
        if self.init is not None:
            d["init"] = self.init
        return d


class Space:
    """An ordered set of :class:`Param`; the search space of a campaign.

    Parameters
    ----------
    params : sequence of Param, or mapping name -> dict of Param fields
        E.g. ``{"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}}``.
    mixed : bool
        The coordinates of the mixed strategy (integer and categorical coordinates, see the
        module docstring) instead of the unit cube.

    Raises
    ------
    ValueError
        Empty space, duplicate names, unknown field names, invalid bounds, or a categorical
        without ``mixed`` (:class:`ParamError` at ``space.<name>.choices``).
    """

    def __init__(self, params: Sequence[Param] | Mapping[str, Mapping[str, Any]], *, mixed: bool = False):
        if isinstance(params, Mapping):
            params = [Param.from_mapping(name, spec) for name, spec in params.items()]
        params = list(params)
        if not params:
            raise ValueError("space must name at least one hyperparameter")
        names = [p.name for p in params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"space has duplicate names {dup}")
        if not mixed:
            for p in params:
                if p.is_categorical:
                    raise ParamError(
                        f"space.{p.name}.choices",
                        "needs the mixed strategy (strategy.name: catcmawm): the unit cube has no categorical "
                        "coordinate",
                    )
        self.params: tuple[Param, ...] = tuple(params)
        self.mixed = bool(mixed)
        self.kinds: tuple[str, ...] = tuple(p.coordinate_kind(self.mixed) for p in self.params)

    @property
    def names(self) -> list[str]:
        """Hyperparameter names in vector order."""
        return [p.name for p in self.params]

    @property
    def dim(self) -> int:
        """Number of hyperparameters ``d``."""
        return len(self.params)

    @property
    def integers(self) -> list[int]:
        """Indices of the integer coordinates (``mixed`` linear ints; the strategy's ``integers``)."""
        return [i for i, k in enumerate(self.kinds) if k == "integer"]

    @property
    def categories(self) -> dict[int, int]:
        """``{index: K}`` of the categorical coordinates (the strategy's ``categories``)."""
        return {i: len(p.choices) for i, (p, k) in enumerate(zip(self.params, self.kinds)) if k == "categorical"}

    @property
    def stds(self) -> np.ndarray:
        """Initial standard deviations ``(d,)`` in multiples of ``sigma0``: ``upper - lower + 1``
        (the number of integers) on integer coordinates, 1 elsewhere (the unit cube's range, and
        ignored on categorical coordinates)."""
        return np.array(
            [p.upper - p.lower + 1.0 if k == "integer" else 1.0 for p, k in zip(self.params, self.kinds)], dtype=float
        )

    def strategy_options(self) -> dict[str, Any]:
        """The options that describe this space to the mixed strategy :class:`esopt.CatCMAwM`:
        ``integers`` (list of int, :attr:`integers`), ``categories`` ({index: K},
        :attr:`categories`) and ``stds`` (ndarray ``(d,)``, :attr:`stds`), each only where it says
        something (no integer coordinate: no ``integers`` and no ``stds``); ``{}`` without
        ``mixed``, so callers may pass it to any strategy's options.  Raises nothing."""
        if not self.mixed:
            return {}
        out: dict[str, Any] = {}
        if self.integers:
            out["integers"] = self.integers
            out["stds"] = self.stds
        if self.categories:
            out["categories"] = self.categories
        return out

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The box handed to the strategy, two ``(d,)`` arrays: ``[0, 1]`` on unit coordinates,
        ``[lower, upper]`` on integer ones, ``[0, K-1]`` on categorical ones."""
        lo, up = np.zeros(self.dim), np.ones(self.dim)
        for i, (p, k) in enumerate(zip(self.params, self.kinds)):
            if k == "integer":
                lo[i], up[i] = p.lower, p.upper
            elif k == "categorical":
                up[i] = len(p.choices) - 1
        return lo, up

    def _to_coordinate(self, i: int, value: Any) -> float:
        p, k = self.params[i], self.kinds[i]
        if k == "categorical":
            j = p.index(value)
            if j is None:
                raise ValueError(f"{p.name}={_show(value)} is not one of the choices {list(p.choices)}")
            return float(j)
        if k == "integer":
            return float(value)
        return p.to_unit(value)

    def _from_coordinate(self, i: int, u: float) -> Any:
        p, k = self.params[i], self.kinds[i]
        if k == "categorical":
            return p.choices[int(min(max(round(u), 0), len(p.choices) - 1))]
        if k == "integer":
            return int(min(max(round(u), p.lower), p.upper))
        return p.from_unit(u)

    @property
    def x0(self) -> np.ndarray:
        """Initial vector, shape ``(d,)``: ``init`` (or the centre of the range / the first
        choice) in the strategy's coordinates (``[0, 1]`` without ``mixed``)."""
        out = []
        for i, (p, k) in enumerate(zip(self.params, self.kinds)):
            if k == "categorical":
                out.append(0.0 if p.init is None else self._to_coordinate(i, p.init))
            elif k == "integer":
                out.append((p.lower + p.upper) / 2 if p.init is None else float(p.init))
            else:
                out.append(p.x0)
        return np.array(out, dtype=float)

    def encode(self, params: Mapping[str, float]) -> np.ndarray:
        """Dict of values in own units (choices themselves) -> vector ``(d,)`` in the strategy's
        coordinates (unit coordinates without ``mixed``).

        Raises ``ValueError`` for missing or unknown names, or a value not among a categorical's choices.
        """
        missing = [n for n in self.names if n not in params]
        extra = sorted(set(params) - set(self.names))
        if missing or extra:
            raise ValueError(f"params do not match the space: missing {missing}, unknown {extra}")
        return np.array([self._to_coordinate(i, params[p.name]) for i, p in enumerate(self.params)], dtype=float)

    def decode(self, x: Sequence[float]) -> dict[str, float | int]:
        """Vector ``(d,)`` -> dict of plain Python values in own units (ints rounded; a categorical's
        index rounded, clipped into ``0..K-1`` and replaced by the choice itself)."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.dim,):
            raise ValueError(f"vector must have shape ({self.dim},), got {x.shape}")
        return {p.name: self._from_coordinate(i, u) for i, (p, u) in enumerate(zip(self.params, x))}

    def decode_many(self, X: np.ndarray) -> list[dict[str, float | int]]:
        """``(k, d)`` array -> list of ``k`` dicts."""
        return [self.decode(row) for row in np.asarray(X, dtype=float)]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: {lower, upper, scale, type[, init]} or {choices[, init]}}`` (JSON/YAML-safe;
        ``mixed`` is not part of it: it follows from the strategy)."""
        return {p.name: p.to_dict() for p in self.params}

    def __repr__(self) -> str:
        return f"Space({self.to_dict()!r}{', mixed=True' if self.mixed else ''})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.params == other.params and self.mixed == other.mixed
