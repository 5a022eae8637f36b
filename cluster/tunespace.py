"""Tune search spaces for :class:`cluster.tune.ESSearcher`: Tune domains <-> esopt's unit cube.

:func:`convert_search_space` turns a Ray Tune ``param_space`` dict (possibly nested) into a
:class:`TuneSpace`: a :class:`cluster.space.Space` (what the strategy searches, in the unit cube
``[0, 1]^d``) plus where each parameter lives in the nested config, the quantization steps and
the constants.  :func:`as_tune_space` accepts a :class:`Space` as well; its ``"a/b"`` names
become nested configs ``{"a": {"b": ...}}``, as the names of a converted ``param_space`` do.

Split out of :mod:`cluster.tune` (which re-exports ``TuneSpace`` and ``convert_search_space``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ray.tune.search.sample import Domain, Float, Integer, LogUniform, Quantized, Uniform
from ray.tune.search.variant_generator import parse_spec_vars

from .space import Param, Space

__all__ = ["TuneSpace", "convert_search_space", "as_tune_space"]


@dataclass(frozen=True)
class TuneSpace:
    """A :class:`Space` plus what is needed to turn its vectors into Tune configs.

    Attributes
    ----------
    space : Space
        The hyperparameters the strategy searches, in vector order (unit cube ``[0, 1]^d``).
    paths : dict name -> tuple of str
        Where each hyperparameter lives in the (nested) config; ``("lr",)`` for a flat one.
    q : dict name -> float
        Quantization step of ``tune.qloguniform`` / ``tune.quniform`` parameters.  The strategy
        searches the continuous range; the value is rounded to the nearest multiple of ``q`` only
        when a config is decoded, then clipped to the multiples of ``q`` inside ``[lower, upper]``
        (Tune's own rule: quantization makes ``upper`` inclusive).
    template : dict or None
        The Tune ``param_space`` the space came from; its non-domain entries (constants) are
        copied unchanged into every suggested config.  None for a :class:`Space`.
    """

    space: Space
    paths: dict[str, tuple[str, ...]]
    q: dict[str, float] = field(default_factory=dict)
    template: dict | None = None

    def decode(self, x) -> dict[str, float | int]:
        """Vector ``(d,)`` in unit coordinates -> flat ``{name: value}`` in own units
        (ints rounded by :meth:`Space.decode`, quantized floats rounded to ``q``)."""
        values = self.space.decode(x)
        for name, q in self.q.items():
            p = self.space.params[self.space.names.index(name)]
            lo, up = _grid_index(p.lower, q, math.ceil) * q, _grid_index(p.upper, q, math.floor) * q
            values[name] = float(min(max(round(values[name] / q) * q, lo), up))
        return values

    def to_config(self, values: Mapping[str, Any]) -> dict:
        """Flat ``{name: value}`` -> the nested config a trainable receives (constants included)."""
        by_path = {self.paths[name]: v for name, v in values.items()}
        if self.template is None:
            return _nest(by_path)
        return _fill(self.template, (), by_path)

    def flat_values(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A (nested or flat-keyed) config -> flat ``{name: value}`` of this space's parameters.

        Raises ``ValueError`` naming a parameter that the config lacks.
        """
        out = {}
        for name, path in self.paths.items():
            node: Any = config
            try:
                for key in path:
                    node = node[key]
            except (KeyError, TypeError, IndexError):
                if name not in config:
                    raise ValueError(f"config {dict(config)!r} has no value for parameter {name!r}") from None
                node = config[name]
            out[name] = node
        return out

    def check_point(self, point: Mapping[str, Any], where: str) -> dict[str, Any]:
        """A config (nested or flat ``"a/b"`` keys; constants ignored) -> flat ``{name: value}``.

        ``where`` names the point in messages (e.g. ``"points_to_evaluate[0]"``).  Raises
        ``ValueError`` naming the parameter if a value is missing, not a number, or outside
        ``[lower, upper]`` (own units).  numpy scalars come back as Python numbers.
        """
        flat = self.flat_values(point)
        for p in self.space.params:
            v = flat[p.name]
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float, np.integer, np.floating))
                or not (p.lower <= v <= p.upper)
            ):
                raise ValueError(f"{where}[{p.name!r}] = {v!r} is not a number in [{p.lower}, {p.upper}]")
            flat[p.name] = v.item() if isinstance(v, np.generic) else v
        return flat

    def same_as(self, other: TuneSpace) -> bool:
        """True if both describe the same vector space and decoding (templates' constants aside)."""
        return self.space == other.space and self.paths == other.paths and self.q == other.q

    def to_json(self) -> dict:
        """JSON-safe description (no constants)."""
        return {"space": self.space.to_dict(), "paths": {k: list(v) for k, v in self.paths.items()}, "q": dict(self.q)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TuneSpace:
        """Inverse of :meth:`to_json` (the rebuilt space has no constants)."""
        return cls(Space(d["space"]), {k: tuple(v) for k, v in d["paths"].items()}, dict(d["q"]))


def _grid_index(bound: float, q: float, round_fn) -> int:
    # index of `bound` on the grid of multiples of q, rounded inwards (as Tune's Quantized does)
    s = bound / q
    r = round(s)
    return int(r) if math.isclose(s, r) else int(round_fn(s))


def _nest(by_path: Mapping[tuple, Any]) -> dict:
    # {("a", "b"): 1, ("c",): 2} -> {"a": {"b": 1}, "c": 2}
    out: dict = {}
    for path, v in by_path.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = v
    return out


def _fill(node, path: tuple, by_path: Mapping[tuple, Any]):
    if isinstance(node, Mapping):
        return {k: _fill(v, path + (k,), by_path) for k, v in node.items()}
    if isinstance(node, Domain):
        return by_path[path]
    return node


def convert_search_space(param_space: Mapping[str, Any]) -> TuneSpace:
    """Convert a Tune ``param_space`` dict into a :class:`TuneSpace`.

    Supported domains (``lower``/``upper`` as Tune defines them):

    ==============================  ==============================================================
    ``tune.uniform(lo, up)``        float, linear scale, ``[lo, up]``
    ``tune.quniform(lo, up, q)``    as uniform, rounded to a multiple of ``q`` at decode time
    ``tune.loguniform(lo, up)``     float, log10 scale, ``[lo, up]``
    ``tune.qloguniform(lo, up, q)`` as loguniform, rounded to a multiple of ``q`` at decode time
    ``tune.randint(lo, up)``        int, linear scale, ``lo .. up - 1`` (Tune excludes ``up``)
    ``tune.lograndint(lo, up)``     int, log10 scale, ``lo .. up - 1``
    ==============================  ==============================================================

    Nested dicts are allowed; a parameter at ``{"opt": {"lr": ...}}`` is named ``"opt/lr"``.
    Entries that are not domains (numbers, strings, objects) are constants: they are copied
    unchanged into every suggested config.

    Raises
    ------
    TypeError
        If ``param_space`` is not a mapping.
    ValueError
        Naming the parameter, for any other domain (``tune.choice``, ``tune.randn``,
        ``tune.qrandint``, ``tune.sample_from``, ``tune.grid_search``, ...), for a domain inside a
        list, for empty or infinite ranges, and if the space has no domain at all.
    """
    if not isinstance(param_space, Mapping):
        raise TypeError(f"param_space must be a dict of Tune domains, got {type(param_space).__name__}")
    _, domain_vars, grid_vars = parse_spec_vars(dict(param_space))
    for path, _ in grid_vars:
        raise ValueError(
            f"param_space[{_name(path)!r}] is a tune.grid_search; ESSearcher cannot search a "
            "grid. Use tune.uniform/loguniform/randint/qloguniform, or fix the value."
        )
    if not domain_vars:
        raise ValueError("param_space has no tune.uniform/loguniform/randint/qloguniform domain to search")
    params, paths, q = [], {}, {}
    for path, domain in domain_vars:
        name = _name(path)
        if not all(isinstance(k, str) for k in path):
            raise ValueError(
                f"param_space[{name!r}]: ESSearcher supports domains in (nested) dicts with "
                "string keys only, not inside lists"
            )
        param, step = _param_from_domain(name, domain)
        params.append(param)
        paths[name] = tuple(path)
        if step is not None:
            q[name] = step
    return TuneSpace(Space(params), paths, q, dict(param_space))


def _name(path) -> str:
    return "/".join(str(k) for k in path)


def _param_from_domain(name: str, domain: Domain) -> tuple[Param, float | None]:
    where = f"param_space[{name!r}]"
    sampler = domain.get_sampler()
    step = None
    if isinstance(sampler, Quantized):
        if not isinstance(domain, Float):
            raise ValueError(
                f"{where}: quantized integer domains (tune.qrandint/qlograndint) are not "
                "supported; use tune.randint or tune.lograndint"
            )
        step = float(sampler.q)
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"{where}: quantization step q must be a positive number, got {sampler.q!r}")
        sampler = sampler.get_sampler()
    if isinstance(sampler, LogUniform):
        scale = "log10"
    elif isinstance(sampler, Uniform):
        scale = "linear"
    else:
        raise ValueError(
            f"{where}: {type(domain).__name__} domain with a {sampler} sampler is not "
            "supported; ESSearcher takes tune.uniform, tune.loguniform, tune.randint, "
            "tune.qloguniform (and quniform, lograndint)"
        )
    if isinstance(domain, Integer):
        lower, upper = domain.lower, domain.upper - 1  # Tune's randint excludes `upper`
        if upper <= lower:
            raise ValueError(
                f"{where}: tune.randint({domain.lower}, {domain.upper}) holds a single value; "
                "put the constant in param_space instead"
            )
        return Param(name, lower=int(lower), upper=int(upper), scale=scale, type="int"), None
    if isinstance(domain, Float):
        lower, upper = float(domain.lower), float(domain.upper)
        if not (math.isfinite(lower) and math.isfinite(upper)):
            raise ValueError(f"{where}: needs finite bounds, got [{lower}, {upper}]")
        if step is not None and _grid_index(lower, step, math.ceil) > _grid_index(upper, step, math.floor):
            raise ValueError(f"{where}: no multiple of q={step} lies in [{lower}, {upper}]")
        return Param(name, lower=lower, upper=upper, scale=scale, type="float"), step
    raise ValueError(
        f"{where}: {type(domain).__name__} domains (e.g. tune.choice, tune.sample_from) are "
        "not supported; ESSearcher takes tune.uniform, tune.loguniform, tune.randint, "
        "tune.qloguniform"
    )


def as_tune_space(space) -> TuneSpace:
    """A :class:`TuneSpace` from a ``TuneSpace`` (itself), a :class:`Space` or a Tune ``param_space``.

    A :class:`Space` parameter named ``"a/b"`` lives at ``config["a"]["b"]`` of the configs (as a
    converted ``param_space``'s nested parameters do).

    Raises
    ------
    TypeError
        For any other type.
    ValueError
        As :func:`convert_search_space`; for a :class:`Space` whose names collide once nested
        (``"a"`` and ``"a/b"``) or hold an empty part (``"a//b"``, ``"/a"``).
    """
    if isinstance(space, TuneSpace):
        return space
    if isinstance(space, Space):
        return TuneSpace(space, _paths_of_names(space.names))
    if isinstance(space, Mapping):
        return convert_search_space(space)
    raise TypeError(f"space must be a cluster.Space or a Tune param_space dict, got {type(space).__name__}")


def _paths_of_names(names: list[str]) -> dict[str, tuple[str, ...]]:
    paths = {name: tuple(name.split("/")) for name in names}
    for name, path in paths.items():
        if not all(path):
            raise ValueError(f"space.{name}: a '/' in a name separates nested config keys; no part may be empty")
        for other, opath in paths.items():
            if other != name and opath[: len(path)] == path:
                raise ValueError(
                    f"space.{name} and space.{other} collide: {other!r} would be nested inside the value of {name!r}"
                )
    return paths
