"""Campaign configuration: one YAML file, validated before anything starts.

Schema (key names are the contract; every key optional unless marked)::

    name: digits-cmaes                      # required; campaign name (letters, digits, - _ .)
    objective: trials:train_and_evaluate    # required; "module:function"
    trial: {dataset: digits, epochs: 30}    # TrialSpec fields, only with trials:train_and_evaluate
    space:                                  # required; see cluster.space.Param
      lr: {lower: 3.0e-5, upper: 0.1, scale: log10}
    strategy: {name: cmaes, popsize: null, sigma0: 0.3, seed: 0, restarts: null, max_restarts: 9, options: {}}
    budget: {max_trials: 64, max_generations: null, ftarget: null, max_time_s: null}
    resources: {num_cpus: 1, num_gpus: 0, max_concurrent: null, timeout_s: null, fresh_process: null}
    failures: {on_error: penalty, max_retries: 2}
    ray: {address: null, num_cpus: null, num_gpus: null}

Every error is a :class:`ConfigError` (a ``ValueError``) whose message starts with the key path,
e.g. ``space.lr.lower: must be < upper``.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .space import Space

__all__ = [
    "BudgetConfig",
    "CampaignConfig",
    "ConfigError",
    "FailuresConfig",
    "RayConfig",
    "ResourcesConfig",
    "StrategyConfig",
    "load_config",
    "parse_config",
    "import_callable",
    "TRIALS_OBJECTIVE",
]

TRIALS_OBJECTIVE = "trials:train_and_evaluate"
_STRATEGY_NAMES = ("cmaes", "sepcmaes", "lmmaes", "canonical")


class ConfigError(ValueError):
    """Invalid campaign config; ``path`` is the dotted key path (e.g. ``space.lr.lower``)."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True)
class StrategyConfig:
    """``strategy:`` section. ``sigma0`` is a fraction of every hyperparameter's (scaled) range."""

    name: str = "cmaes"  # a key of esopt.registry.STRATEGIES
    popsize: int | None = None  # offspring per generation; None = 4 + floor(3 ln d)
    sigma0: float = 0.3  # initial step size, fraction of each range (unit cube)
    seed: int = 0  # seed of the strategy's numpy Generator
    restarts: str | None = None  # None, "ipop" or "bipop"
    max_restarts: int = 9  # with restarts only
    options: dict = field(default_factory=dict)  # extra strategy options / esopt.Tolerances names


@dataclass(frozen=True)
class BudgetConfig:
    """``budget:`` section; the campaign stops at the first limit reached (None = no limit)."""

    max_trials: int | None = None  # evaluations (trials told to the strategy)
    max_generations: int | None = None  # tells
    ftarget: float | None = None  # stop when the best objective <= ftarget
    max_time_s: float | None = None  # wall-clock seconds of the driver (summed over resumes)


@dataclass(frozen=True)
class ResourcesConfig:
    """``resources:`` section: Ray resources of each trial."""

    num_cpus: float = 1.0  # CPUs per trial (also torch threads for CPU trials)
    num_gpus: float = 0.0  # GPUs per trial; fractions pack trials on one GPU (e.g. 0.25)
    max_concurrent: int | None = None  # trials running at once; None = what the resources allow
    timeout_s: float | None = None  # per-trial wall-clock limit in seconds; None = no limit
    fresh_process: bool | None = None  # run each trial in a new worker; None = yes iff num_gpus > 0


@dataclass(frozen=True)
class FailuresConfig:
    """``failures:`` section: what an exception in the objective does."""

    on_error: str = "penalty"  # "penalty" (worst value of the generation, campaign goes on), "retry", "abort"
    max_retries: int = 2  # retries of a trial (system failures always, exceptions with on_error=retry)


@dataclass(frozen=True)
class RayConfig:
    """``ray:`` section."""

    address: str | None = None  # None: start a local Ray instance; "auto" or "ray://host:port": join
    num_cpus: float | None = None  # CPUs of a local instance; None = all of the machine's
    num_gpus: float | None = None  # GPUs of a local instance; None = detected


@dataclass(frozen=True)
class CampaignConfig:
    """A validated campaign config. ``raw`` is the normalized dict (stored in the journal)."""

    name: str
    objective: str
    space: Space
    trial: dict = field(default_factory=dict)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    failures: FailuresConfig = field(default_factory=FailuresConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    @property
    def raw(self) -> dict[str, Any]:
        """Normalized, JSON/YAML-safe dict; ``parse_config(cfg.raw) == cfg``."""
        return {
            "name": self.name,
            "objective": self.objective,
            "trial": dict(self.trial),
            "space": self.space.to_dict(),
            "strategy": asdict(self.strategy),
            "budget": asdict(self.budget),
            "resources": asdict(self.resources),
            "failures": asdict(self.failures),
            "ray": asdict(self.ray),
        }

    @property
    def uses_trials(self) -> bool:
        """True when the objective is ``trials:train_and_evaluate``."""
        return self.objective == TRIALS_OBJECTIVE

    def load_objective(self) -> Callable[..., Any]:
        """Import the objective callable (raises ConfigError if it is not importable)."""
        return import_callable(self.objective, "objective")


def import_callable(spec: str, path: str = "objective") -> Callable[..., Any]:
    """Import ``"module:function"`` (dots allowed in both parts).

    Raises :class:`ConfigError` naming ``path`` if the form is wrong or the import fails.
    """
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ConfigError(path, f"must be 'module:function', got {spec!r}")
    mod_name, attr = spec.split(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as e:  # noqa: BLE001 - report any import failure as a config error
        raise ConfigError(path, f"cannot import module {mod_name!r}: {type(e).__name__}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(path, f"module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(path, f"{spec!r} is not callable")
    return obj


# ---------------------------------------------------------------------------------------------
def _section(raw: Mapping, key: str) -> Mapping:
    v = raw.get(key)
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ConfigError(key, f"must be a mapping, got {type(v).__name__}")
    return v


def _check_keys(d: Mapping, allowed: set[str], path: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}.{unknown[0]}" if path else unknown[0],
            f"unknown key; known keys{' of ' + path if path else ''}: {sorted(allowed)}",
        )


def _num(d: Mapping, key: str, path: str, *, kind=float, minimum=None, positive=False, allow_none=True):
    v = d.get(key)
    p = f"{path}.{key}"
    if v is None:
        if allow_none:
            return None
        raise ConfigError(p, "is required")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(p, f"must be a{'n integer' if kind is int else ' number'}, got {v!r}")
    if kind is int and float(v) != int(v):
        raise ConfigError(p, f"must be an integer, got {v!r}")
    if isinstance(v, float) and math.isnan(v):
        raise ConfigError(p, "must not be NaN")
    v = kind(v)
    if positive and not v > 0:
        raise ConfigError(p, f"must be > 0, got {v!r}")
    if minimum is not None and v < minimum:
        raise ConfigError(p, f"must be >= {minimum}, got {v!r}")
    return v


def _dataclass_fields(cls) -> set[str]:
    return set(cls.__dataclass_fields__)


def parse_config(raw: Mapping[str, Any], *, check_objective: bool = True) -> CampaignConfig:
    """Validate a config dict and return a :class:`CampaignConfig`.

    ``check_objective`` imports the objective (and validates ``trial`` against ``trials.TrialSpec``
    and the space's names against ``trials.HPARAMS`` when the objective is
    ``trials:train_and_evaluate``).

    Raises
    ------
    ConfigError
        The first problem found, its message starting with the key path.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError("", f"a campaign config must be a mapping at the top level, got {type(raw).__name__}")
    _check_keys(raw, {"name", "objective", "trial", "space", "strategy", "budget", "resources", "failures", "ray"}, "")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
        raise ConfigError("name", f"must be a non-empty name of letters, digits, '-', '_' or '.', got {name!r}")
    objective = raw.get("objective")
    if not isinstance(objective, str):
        raise ConfigError("objective", f"is required: 'module:function', got {objective!r}")
    if check_objective:
        import_callable(objective, "objective")
    elif objective.count(":") != 1:
        raise ConfigError("objective", f"must be 'module:function', got {objective!r}")

    # space
    space_raw = raw.get("space")
    if not isinstance(space_raw, Mapping) or not space_raw:
        raise ConfigError("space", "is required: a mapping of hyperparameter name -> {lower, upper, ...}")
    for pname, spec in space_raw.items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"space.{pname}", f"must be a mapping with lower and upper, got {spec!r}")
        _check_keys(spec, {"lower", "upper", "scale", "type", "init"}, f"space.{pname}")
        for key in ("lower", "upper"):
            _num(spec, key, f"space.{pname}", allow_none=False)
        if "init" in spec and spec["init"] is not None:
            _num(spec, "init", f"space.{pname}")
        for key, choices in (("scale", ("linear", "log10")), ("type", ("float", "int"))):
            if key in spec and spec[key] not in choices:
                raise ConfigError(f"space.{pname}.{key}", f"must be one of {list(choices)}, got {spec[key]!r}")
        if float(spec["lower"]) >= float(spec["upper"]):
            raise ConfigError(
                f"space.{pname}.lower", f"must be < upper, got lower={spec['lower']!r} >= upper={spec['upper']!r}"
            )
        if spec.get("scale") == "log10" and float(spec["lower"]) <= 0:
            raise ConfigError(f"space.{pname}.lower", f"must be > 0 on the log10 scale, got {spec['lower']!r}")
    try:
        space = Space(space_raw)
    except ValueError as e:
        msg = str(e)
        path = msg.split(" ", 1)[0].rstrip(":") if msg.startswith("space.") else "space"
        raise ConfigError(path, msg.split(" ", 1)[1] if path != "space" else msg) from e

    # trial
    trial = raw.get("trial") or {}
    if not isinstance(trial, Mapping):
        raise ConfigError("trial", f"must be a mapping of TrialSpec fields, got {type(trial).__name__}")
    trial = dict(trial)
    if trial and objective != TRIALS_OBJECTIVE:
        raise ConfigError("trial", f"is only used with objective {TRIALS_OBJECTIVE!r}; remove it or change objective")
    if objective == TRIALS_OBJECTIVE and check_objective:
        _check_trials(trial, space)

    # strategy
    s = _section(raw, "strategy")
    _check_keys(s, _dataclass_fields(StrategyConfig), "strategy")
    sname = s.get("name", "cmaes")
    if sname not in _STRATEGY_NAMES:
        raise ConfigError("strategy.name", f"must be one of {list(_STRATEGY_NAMES)}, got {sname!r}")
    restarts = s.get("restarts")
    if restarts not in (None, "ipop", "bipop"):
        raise ConfigError("strategy.restarts", f"must be null, 'ipop' or 'bipop', got {restarts!r}")
    options = s.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError("strategy.options", "must be a mapping")
    seed = _num(s, "seed", "strategy", kind=int, minimum=0)
    sigma0 = _num(s, "sigma0", "strategy", positive=True)
    if sigma0 is not None and sigma0 > 1:
        raise ConfigError("strategy.sigma0", f"is a fraction of each range and must be <= 1, got {sigma0}")
    strategy = StrategyConfig(
        name=sname,
        popsize=_num(s, "popsize", "strategy", kind=int, minimum=2),
        sigma0=0.3 if sigma0 is None else sigma0,
        seed=0 if seed is None else seed,
        restarts=restarts,
        max_restarts=_num(s, "max_restarts", "strategy", kind=int, minimum=0) if "max_restarts" in s else 9,
        options=dict(options),
    )

    # budget
    b = _section(raw, "budget")
    _check_keys(b, _dataclass_fields(BudgetConfig), "budget")
    budget = BudgetConfig(
        max_trials=_num(b, "max_trials", "budget", kind=int, minimum=1),
        max_generations=_num(b, "max_generations", "budget", kind=int, minimum=1),
        ftarget=_num(b, "ftarget", "budget"),
        max_time_s=_num(b, "max_time_s", "budget", positive=True),
    )
    if all(v is None for v in asdict(budget).values()) and strategy.restarts is None:
        pass  # the strategy's own termination criteria end the campaign

    # resources
    r = _section(raw, "resources")
    _check_keys(r, _dataclass_fields(ResourcesConfig), "resources")
    num_cpus = _num(r, "num_cpus", "resources", minimum=0)
    num_gpus = _num(r, "num_gpus", "resources", minimum=0)
    if num_gpus is not None and num_gpus > 1 and num_gpus != int(num_gpus):
        raise ConfigError("resources.num_gpus", f"above 1 must be a whole number, got {num_gpus}")
    fresh = r.get("fresh_process")
    if fresh is not None and not isinstance(fresh, bool):
        raise ConfigError("resources.fresh_process", f"must be true, false or null, got {fresh!r}")
    resources = ResourcesConfig(
        num_cpus=1.0 if num_cpus is None else num_cpus,
        num_gpus=0.0 if num_gpus is None else num_gpus,
        max_concurrent=_num(r, "max_concurrent", "resources", kind=int, minimum=1),
        timeout_s=_num(r, "timeout_s", "resources", positive=True),
        fresh_process=fresh,
    )

    # failures
    f = _section(raw, "failures")
    _check_keys(f, _dataclass_fields(FailuresConfig), "failures")
    on_error = f.get("on_error", "penalty")
    if on_error not in ("penalty", "retry", "abort"):
        raise ConfigError("failures.on_error", f"must be 'penalty', 'retry' or 'abort', got {on_error!r}")
    mr = _num(f, "max_retries", "failures", kind=int, minimum=0)
    failures = FailuresConfig(on_error=on_error, max_retries=2 if mr is None else mr)

    # ray
    rc = _section(raw, "ray")
    _check_keys(rc, _dataclass_fields(RayConfig), "ray")
    address = rc.get("address")
    if address is not None and (not isinstance(address, str) or not address):
        raise ConfigError("ray.address", f"must be null, 'auto', 'host:port' or 'ray://host:port', got {address!r}")
    ray_cfg = RayConfig(
        address=address,
        num_cpus=_num(rc, "num_cpus", "ray", minimum=1),
        num_gpus=_num(rc, "num_gpus", "ray", minimum=0),
    )

    return CampaignConfig(
        name=name,
        objective=objective,
        space=space,
        trial=trial,
        strategy=strategy,
        budget=budget,
        resources=resources,
        failures=failures,
        ray=ray_cfg,
    )


def _check_trials(trial: dict, space: Space) -> None:
    try:
        import trials
    except Exception as e:  # noqa: BLE001
        raise ConfigError("objective", f"cannot import the trials package: {e}") from e
    spec_cls = getattr(trials, "TrialSpec", None)
    if spec_cls is not None and hasattr(spec_cls, "from_dict"):
        try:
            spec_cls.from_dict(trial)
        except (TypeError, ValueError) as e:
            raise ConfigError("trial", str(e)) from e
    known = getattr(trials, "HPARAMS", None)
    if known:
        for pname in space.names:
            if pname not in known:
                raise ConfigError(
                    f"space.{pname}", f"is not a hyperparameter of {TRIALS_OBJECTIVE}; known: {sorted(known)}"
                )


def load_config(path: str | Path) -> CampaignConfig:
    """Read a YAML file with ``yaml.safe_load`` and validate it (see :func:`parse_config`).

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, or fails validation.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError("", f"cannot read config {str(p)!r}: {e.strerror or e}") from e
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError("", f"{str(p)!r} is not valid YAML: {e}") from e
    return parse_config(raw or {})
