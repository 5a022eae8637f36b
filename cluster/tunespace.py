"""Tune search spaces for :class:`cluster.tune.ESSearcher`: Tune domains <-> the strategy's vectors.

:func:`convert_search_space` turns a Ray Tune ``param_space`` dict (possibly nested) into a
:class:`TuneSpace`: a :class:`cluster.space.Space` (what the strategy searches) plus where each
parameter lives in the nested config, the quantization steps and the constants.
:func:`as_tune_space` accepts a :class:`Space` as well; its ``"a/b"`` names become nested configs
``{"a": {"b": ...}}``, as the names of a converted ``param_space`` do.  The coordinates are those
of :class:`cluster.space.Space` (the campaigns' code, reused): the unit cube ``[0, 1]^d`` for the
continuous strategies, and with ``mixed=True`` (the mixed strategy ``catcmawm``,
:class:`esopt.CatCMAwM`) integer coordinates holding integer values and categorical coordinates
holding category indices.

Supported Tune domains and how each is mapped (``lower``/``upper`` as Tune defines them; the
integer domains follow Tune's bounds: ``upper`` excluded, except for ``q > 1`` where it is
included, as Ray 2.60's ``Quantized`` sampler does):

=================================  ======================  ==============================================
Tune domain                        ``Param`` (own units)   coordinate: continuous strategy / mixed strategy
=================================  ======================  ==============================================
``uniform(lo, up)``                float, linear           unit / unit
``quniform(lo, up, q)``            float, linear           unit / unit; value rounded to a multiple of q
``loguniform(lo, up)``             float, log10            unit / unit
``qloguniform(lo, up, q)``         float, log10            unit / unit; value rounded to a multiple of q
``randint(lo, up)``                int ``lo..up-1``        unit, rounded / integer coordinate (the int)
``qrandint(lo, up, q)``            int grid index ``k``    unit, rounded / integer coordinate ``k``;
                                   ``ceil(lo/q)..          value ``k * q`` (q = 1: as randint)
                                   floor(up/q)``
``lograndint(lo, up)``             int ``lo..up-1``, log   unit, rounded / unit, rounded (log-spaced)
``qlograndint(lo, up, q)``         int grid index, log     unit, rounded / unit, rounded; value ``k * q``
``choice([c0, c1, ...])``          categorical             refused / categorical coordinate (index 0..K-1);
                                                           the config gets the choice itself
``sample_from``, ``grid_search``,  --                      refused with a ``ValueError`` naming the parameter
``randn``, ``qrandn``
=================================  ======================  ==============================================

Quantized floats are searched continuously and rounded only when a config is decoded (then clipped
to the multiples of ``q`` inside ``[lower, upper]``, Tune's rule).  Quantized integers are searched
on their grid index, so that the mixed strategy's margin moves them from one multiple of ``q`` to
the next.  Choices must be JSON scalars of one kind (strings, booleans, or finite numbers;
``None`` may join any kind), at least two, no duplicates (:class:`cluster.space.Param`'s rule, so
that checkpoints hold them exactly).

Split out of :mod:`cluster.tune` (which re-exports ``TuneSpace`` and ``convert_search_space``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from ray.tune.search.sample import Categorical, Domain, Float, Function, Integer, LogUniform, Quantized, Uniform
from ray.tune.search.variant_generator import parse_spec_vars

try:  # the tokens of the placeholders Tune puts in a param_space (private Ray API, hence the fallback)
    from ray.tune.impl.placeholder import _FunctionResolver, _RefResolver

    _FN_TOKEN, _REF_TOKEN = _FunctionResolver.TOKEN, _RefResolver.TOKEN
except (ImportError, AttributeError):  # pragma: no cover - Ray moved them: the tokens of Ray 2.x
    _FN_TOKEN, _REF_TOKEN = "__fn_ph", "__ref_ph"

from .space import Param, ParamError, Space

__all__ = ["TuneSpace", "convert_search_space", "as_tune_space"]


@dataclass(frozen=True)
class TuneSpace:
    """A :class:`Space` plus what is needed to turn its vectors into Tune configs.

    Attributes
    ----------
    space : Space
        The hyperparameters the strategy searches, in vector order (``space.bounds``: the unit
        cube, or with ``space.mixed`` integer and category-index coordinates too).
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
    iq : dict name -> int
        Quantization step (an int >= 2) of ``tune.qrandint`` / ``tune.qlograndint`` parameters:
        their ``Param`` holds the grid index ``k`` and the config the value ``k * q``.
    """

    space: Space
    paths: dict[str, tuple[str, ...]]
    q: dict[str, float] = field(default_factory=dict)
    template: dict | None = None
    iq: dict[str, int] = field(default_factory=dict)

    @property
    def discrete(self) -> list[str]:
        """Names of the integer and categorical parameters (what makes the mixed strategy the default)."""
        return [p.name for p in self.space.params if p.is_categorical or p.type == "int"]

    @property
    def categoricals(self) -> list[str]:
        """Names of the categorical (``tune.choice``) parameters."""
        return [p.name for p in self.space.params if p.is_categorical]

    def with_mixed(self, mixed: bool) -> TuneSpace:
        """The same space in the coordinates of the mixed strategy (``mixed=True``) or of the
        continuous strategies (``False``, the unit cube).  Raises :class:`cluster.space.ParamError`
        (a ``ValueError``) for ``False`` when the space holds a categorical."""
        if self.space.mixed == bool(mixed):
            return self
        return replace(self, space=Space(self.space.params, mixed=mixed))

    def decode(self, x) -> dict[str, Any]:
        """Vector ``(d,)`` in the strategy's coordinates -> flat ``{name: value}`` in own units
        (ints rounded by :meth:`Space.decode` and multiplied by their ``iq``, quantized floats
        rounded to ``q``, categoricals the choice itself)."""
        values = self.space.decode(x)
        for name, q in self.q.items():
            p = self._param(name)
            lo, up = _grid_index(p.lower, q, math.ceil) * q, _grid_index(p.upper, q, math.floor) * q
            values[name] = float(min(max(round(values[name] / q) * q, lo), up))
        for name, q in self.iq.items():
            values[name] = int(values[name]) * q
        return values

    def encode(self, values: Mapping[str, Any]) -> np.ndarray:
        """Flat ``{name: value}`` in own units (as :meth:`check_point` returns) -> vector ``(d,)``
        in the strategy's coordinates, clipped into ``space.bounds``.  Raises ``ValueError`` as
        :meth:`Space.encode`."""
        v = dict(values)
        for name, q in self.iq.items():
            v[name] = round(v[name] / q)
        return np.clip(self.space.encode(v), *self.space.bounds)

    def _param(self, name: str) -> Param:
        return self.space.params[self.space.names.index(name)]

    def to_config(self, values: Mapping[str, Any]) -> dict:
        """Flat ``{name: value}`` -> the nested config a trainable receives (constants included)."""
        by_path = {self.paths[name]: v for name, v in values.items()}
        if self.template is None:
            return _nest(by_path)
        return _fill(self.template, (), by_path)

    def flat_values(self, config: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
        """A (nested or flat-keyed) config -> flat ``{name: value}`` of this space's parameters.

        Raises ``ValueError`` naming a parameter that the config lacks (and the config: ``where``,
        e.g. ``"points_to_evaluate[0]"``).
        """
        out = {}
        for name, path in self.paths.items():
            node: Any = config
            try:
                for key in path:
                    node = node[key]
            except (KeyError, TypeError, IndexError):
                if name not in config:
                    raise ValueError(
                        f"{where} {dict(config)!r} has no value for parameter {name!r}; give every "
                        f"parameter of the space a value: {list(self.paths)}"
                    ) from None
                node = config[name]
            out[name] = node
        return out

    def check_point(self, point: Mapping[str, Any], where: str) -> dict[str, Any]:
        """A config (nested or flat ``"a/b"`` keys; constants ignored) -> flat ``{name: value}``.

        ``where`` names the point in messages (e.g. ``"points_to_evaluate[0]"``).  Raises
        ``ValueError`` naming the parameter if a value is missing, not one of a ``tune.choice``'s
        choices, not a number, outside ``[lower, upper]`` (own units), not an integer for an
        integer domain, or not a multiple of ``q`` for ``qrandint``/``qlograndint``.  numpy
        scalars come back as Python values.
        """
        flat = self.flat_values(point, where)
        for p in self.space.params:
            flat[p.name] = self._check_value(p, flat[p.name], f"{where}[{p.name!r}]")
        return flat

    def _check_value(self, p: Param, v: Any, where: str) -> Any:
        if p.is_categorical:
            j = p.index(v)
            if j is None:
                raise ValueError(f"{where} = {v!r} is not one of the choices {list(p.choices)}")
            return p.choices[j]
        q = self.iq.get(p.name, 1)
        lo, up = p.lower * q, p.upper * q
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"{where} = {v!r} is not a number in [{lo}, {up}]")
        v = v.item() if isinstance(v, np.generic) else v
        if p.name in self.q:  # the grid's ends (k * q, as Tune and decode make them) may lie just outside
            g = self.q[p.name]
            lo, up = min(lo, _grid_index(p.lower, g, math.ceil) * g), max(up, _grid_index(p.upper, g, math.floor) * g)
        if not lo <= v <= up:
            raise ValueError(f"{where} = {v!r} is not a number in [{lo}, {up}]")
        if p.type == "int" and (v != round(v) or round(v) % q):
            what = "an integer" if q == 1 else f"a multiple of q={q}"
            raise ValueError(f"{where} = {v!r} is not {what} (the domain is an integer domain)")
        return int(round(v)) if p.type == "int" else v

    def same_as(self, other: TuneSpace) -> bool:
        """True if both describe the same vector space and decoding (templates' constants aside)."""
        return self.space == other.space and self.paths == other.paths and self.q == other.q and self.iq == other.iq

    def to_json(self) -> dict:
        """JSON-safe description (no constants); ``iq`` and ``mixed`` only when set (so that a
        continuous space's description is what esopt 0.1.0 wrote)."""
        d: dict[str, Any] = {
            "space": self.space.to_dict(),
            "paths": {k: list(v) for k, v in self.paths.items()},
            "q": dict(self.q),
        }
        if self.iq:
            d["iq"] = dict(self.iq)
        if self.space.mixed:
            d["mixed"] = True
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TuneSpace:
        """Inverse of :meth:`to_json` (the rebuilt space has no constants)."""
        space = Space(d["space"], mixed=bool(d.get("mixed", False)))
        iq = {str(k): int(v) for k, v in d.get("iq", {}).items()}
        return cls(space, {k: tuple(v) for k, v in d["paths"].items()}, dict(d["q"]), None, iq)


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


def convert_search_space(param_space: Mapping[str, Any], *, mixed: bool | None = None) -> TuneSpace:
    """Convert a Tune ``param_space`` dict into a :class:`TuneSpace`.

    Domains and their mapping: the table of the module docstring.  Nested dicts are allowed; a
    parameter at ``{"opt": {"lr": ...}}`` is named ``"opt/lr"``.  Entries that are not domains
    (numbers, strings, objects) are constants: they are copied unchanged into every suggested
    config.

    Parameters
    ----------
    param_space : dict
        Tune's ``param_space``.
    mixed : bool, optional
        The coordinates of the mixed strategy (:mod:`cluster.space`).  None (default): mixed if
        the space holds a ``tune.choice`` (which only the mixed strategy can search); ESSearcher
        adapts the space to its strategy anyway (:meth:`TuneSpace.with_mixed`).

    Raises
    ------
    TypeError
        If ``param_space`` is not a mapping.
    ValueError
        Naming the parameter, for ``tune.sample_from`` (also in the placeholder form that
        ``tune.Tuner(param_space=...)`` hands to the searcher), ``tune.grid_search``,
        ``tune.randn`` and any other domain not in the table, for a domain inside a list, for
        empty, single-valued or infinite ranges, for bad choices (empty, one, duplicates,
        unhashable or mixed kinds, objects such as classes, values a checkpoint cannot hold
        exactly), for ``mixed=False`` with a ``tune.choice``, and if the space has no domain at all.
    """
    if not isinstance(param_space, Mapping):
        raise TypeError(f"param_space must be a dict of Tune domains, got {type(param_space).__name__}")
    _, domain_vars, grid_vars = parse_spec_vars(dict(param_space))
    for path, _ in grid_vars:
        raise ValueError(
            f"param_space[{_name(path)!r}] is a tune.grid_search; ESSearcher cannot search a grid "
            "(Tune would run every grid value once per sample). Use tune.choice for a categorical, "
            "tune.uniform/loguniform/randint for a range, or fix the value."
        )
    fn_path = next(_placeholder_paths(param_space, (), _FN_TOKEN), None)
    if fn_path is not None:
        raise ValueError(_sample_from_message(f"param_space[{_name(fn_path)!r}]"))
    if not domain_vars:
        raise ValueError("param_space has no Tune domain (tune.uniform, tune.choice, ...) to search")
    params, paths, q, iq = [], {}, {}, {}
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
            (iq if param.type == "int" else q)[name] = step
    cats = [p.name for p in params if p.is_categorical]
    if mixed is False and cats:
        raise ValueError(
            f"param_space[{cats[0]!r}] is a tune.choice: only the mixed strategy (catcmawm) can search a "
            "categorical; convert with mixed=True"
        )
    return TuneSpace(Space(params, mixed=bool(cats) if mixed is None else mixed), paths, q, dict(param_space), iq)


def _name(path) -> str:
    return "/".join(str(k) for k in path)


def _is_placeholder(v: Any, token: str) -> bool:
    # Tune's tune.run replaces a tune.sample_from (token "__fn_ph") and any object that is not a
    # primitive (token "__ref_ph") by a placeholder tuple (token, hash) before it hands the
    # param_space to the searcher, and resolves the placeholders in each trial's config
    # (ray/tune/impl/placeholder.py)
    return isinstance(v, tuple) and len(v) == 2 and v[0] == token and isinstance(v[1], str)


def _placeholder_paths(node: Any, path: tuple, token: str):
    # paths of the placeholders with ``token`` among the constants of a param_space (dicts, lists, tuples)
    if _is_placeholder(node, token):
        yield path
    elif isinstance(node, Mapping):
        for k, v in node.items():
            yield from _placeholder_paths(v, path + (k,), token)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _placeholder_paths(v, path + (i,), token)


def _sample_from_message(where: str) -> str:
    return (
        f"{where} is a tune.sample_from: its value is computed from the rest of the config, so "
        "ESSearcher cannot search it. Use a domain (tune.uniform, tune.choice, ...) or compute the "
        "value inside the trainable."
    )


def _param_from_domain(name: str, domain: Domain) -> tuple[Param, float | int | None]:
    where = f"param_space[{name!r}]"
    if isinstance(domain, Function):
        raise ValueError(_sample_from_message(where))
    if isinstance(domain, Categorical):
        return _categorical(where, name, domain), None
    sampler = domain.get_sampler()
    step = None
    if isinstance(sampler, Quantized):
        step = sampler.q
        sampler = sampler.get_sampler()
    if isinstance(sampler, LogUniform):
        scale = "log10"
    elif isinstance(sampler, Uniform):
        scale = "linear"
    else:
        raise ValueError(
            f"{where}: {type(domain).__name__} domain with a {sampler} sampler is not supported; "
            "ESSearcher takes tune.uniform, quniform, loguniform, qloguniform, randint, qrandint, "
            "lograndint, qlograndint and choice"
        )
    if isinstance(domain, Integer):
        return _integer(where, name, domain, scale, step)
    if isinstance(domain, Float):
        return _float(where, name, domain, scale, step)
    raise ValueError(
        f"{where}: {type(domain).__name__} domains are not supported; ESSearcher takes tune.uniform, "
        "quniform, loguniform, qloguniform, randint, qrandint, lograndint, qlograndint and choice"
    )


def _categorical(where: str, name: str, domain: Categorical) -> Param:
    choices = list(domain.categories)
    if not isinstance(domain.get_sampler(), Uniform):
        raise ValueError(
            f"{where}: a categorical with a {domain.get_sampler()} sampler is not supported; use tune.choice"
        )
    if len(choices) < 2:
        raise ValueError(
            f"{where}: tune.choice({choices!r}) has {len(choices)} choice(s); a categorical needs at least "
            "two (put a single value in param_space as a constant)"
        )
    if any(_is_placeholder(c, _REF_TOKEN) for c in choices):
        raise ValueError(
            f"{where}: tune.choice of objects (classes, functions, arrays, and numpy scalars such as "
            "np.int64(16) or the items of a numpy array: Tune hands all of them to the searcher as "
            "placeholders): ESSearcher's choices must be Python strings, numbers, booleans or None. "
            "Pass numbers as Python values, e.g. tune.choice(np.array([16, 32]).tolist()); for "
            "objects choose among names, e.g. tune.choice(['adam', 'sgd']), and look the object up "
            "inside the trainable."
        )
    try:
        return Param(name, choices=tuple(choices))
    except ParamError as e:
        raise ValueError(f"{where}: tune.choice {e.detail}") from None


def _integer(where: str, name: str, domain: Integer, scale: str, step) -> tuple[Param, int | None]:
    lower, upper = int(domain.lower), int(domain.upper)
    if step is not None and step != 1:
        if isinstance(step, bool) or not isinstance(step, (int, float, np.integer, np.floating)) or step != int(step):
            raise ValueError(f"{where}: the quantization step q of an integer domain must be an int >= 1, got {step!r}")
        if step < 1:
            raise ValueError(f"{where}: the quantization step q of an integer domain must be an int >= 1, got {step!r}")
        q = int(step)
        lo, up = _grid_index(lower, q, math.ceil), _grid_index(upper, q, math.floor)  # q > 1: upper included
    else:
        q, lo, up = None, lower, upper - 1  # Tune's randint (and q = 1) excludes `upper`
    if up <= lo:
        raise ValueError(
            f"{where}: the integer domain [{domain.lower}, {domain.upper}) with q={step or 1} holds "
            f"{max(up - lo + 1, 0)} value(s); put a constant in param_space instead"
        )
    try:
        return Param(name, lower=lo, upper=up, scale=scale, type="int"), q
    except ParamError as e:
        raise ValueError(f"{where}: {e.detail}") from None


def _float(where: str, name: str, domain: Float, scale: str, step) -> tuple[Param, float | None]:
    lower, upper = float(domain.lower), float(domain.upper)
    if not (math.isfinite(lower) and math.isfinite(upper)):
        raise ValueError(f"{where}: needs finite bounds, got [{lower}, {upper}]")
    if step is not None:
        step = float(step)
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"{where}: quantization step q must be a positive number, got {step!r}")
        if _grid_index(lower, step, math.ceil) > _grid_index(upper, step, math.floor):
            raise ValueError(f"{where}: no multiple of q={step} lies in [{lower}, {upper}]")
    try:
        return Param(name, lower=lower, upper=upper, scale=scale, type="float"), step
    except ParamError as e:
        raise ValueError(f"{where}: {e.detail}") from None


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
