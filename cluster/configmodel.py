"""The campaign config's sections as declarative pydantic v2 models: each key, type and default once.

:func:`cluster.config.parse_config` validates a YAML mapping with :class:`CampaignModel` and turns
pydantic's errors (``loc`` = the key path) into :class:`cluster.config.ConfigError`.  The section
models are also the public config classes (``CampaignConfig.strategy`` is a
:class:`StrategyConfig`, ...): frozen, unknown keys refused, numbers checked as YAML gives them
(no string-to-number coercion; ``2.0`` is an integer, ``true`` is not a number).

A validator that knows a more precise key than its own field raises :class:`KeyedError`; the
message of any ``ValueError`` raised here is the ``ConfigError`` message (say what is wrong and
how to fix it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator, model_validator

from .space import Param, _show


def _number_text(x: Any) -> Any:
    """``"1e-3"`` -> ``0.001`` (a string that Python reads as a float); anything else unchanged."""
    if not isinstance(x, str):
        return x
    try:
        return float(x)
    except ValueError:
        return x


def _non_finite(x: Any) -> float | None:
    """The first infinite or NaN float in ``x`` (a number, or lists/dicts of them), else None."""
    if isinstance(x, float):
        return None if math.isfinite(x) else x
    if isinstance(x, dict):
        x = list(x.values())
    if isinstance(x, (list, tuple)):
        for v in x:
            bad = _non_finite(v)
            if bad is not None:
                return bad
    return None


__all__ = [
    "check_address",
    "BudgetConfig",
    "CampaignModel",
    "FailuresConfig",
    "FidelityConfig",
    "KeyedError",
    "RayConfig",
    "ResourcesConfig",
    "StrategyConfig",
    "MIXED_STRATEGY",
    "NAME_PATTERN",
    "check_name",
    "default_strategy",
    "mixed_strategies",
]

#: the strategy a campaign uses for a space with integers or categoricals when strategy.name is not given
MIXED_STRATEGY = "catcmawm"
_SPACE_OPTIONS = ("integers", "categories", "stds")  # set by the campaign from the space


def mixed_strategies() -> list[str]:
    """Names of the registered strategies that handle categoricals (a ``categories`` option), sorted."""
    from esopt.registry import STRATEGIES

    return sorted(n for n, info in STRATEGIES.items() if any(o.name == "categories" for o in info.options))


def default_strategy(space: Any) -> str:
    """``strategy.name`` when none is given: :data:`MIXED_STRATEGY` if the raw ``space`` mapping
    holds a ``type: int`` or a ``choices`` parameter, else ``"cmaes"``."""
    specs = space.values() if isinstance(space, Mapping) else ()
    discrete = any(isinstance(v, Mapping) and ("choices" in v or v.get("type") == "int") for v in specs)
    return MIXED_STRATEGY if discrete else "cmaes"


NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"
_NAME_RULE = "letters, digits, '-', '_' or '.' (starting with a letter or digit)"


class KeyedError(ValueError):
    """A validation error at ``keys`` below the validated field (e.g. ``("lower",)`` under
    ``space.lr``); its message is the ConfigError's."""

    def __init__(self, keys: tuple[str, ...], message: str):
        super().__init__(message)
        self.keys = tuple(keys)
        self.message = message


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"must be a number, got {_show(v)}")
    if isinstance(v, float) and math.isnan(v):
        raise ValueError("must not be NaN")
    if isinstance(v, float) and math.isinf(v):  # the journal holds strict JSON; "no limit" is null
        raise ValueError(f"must be finite, got {_show(v)} (leave the key out or write null for no limit)")
    return float(v)


def _integer(v: Any) -> int:
    if isinstance(v, float) and not math.isfinite(v):  # int(inf) raises OverflowError, not a config error
        raise ValueError(f"must be an integer, got {_show(v)}")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or float(v) != int(v):
        raise ValueError(f"must be an integer, got {_show(v)}")
    return int(v)


Number = Annotated[float, BeforeValidator(_number)]
Integer = Annotated[int, BeforeValidator(_integer)]


def check_name(name: Any) -> str:
    """``name`` if it is a valid campaign name, else ``ValueError`` saying the rule."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(f"must be a non-empty name of {_NAME_RULE}, got {_show(name)}")
    return name


def _trial_epochs(trial: Any) -> int | None:
    """``trial.epochs`` of a ``trial:`` mapping (``trials.TrialSpec``'s default when absent); None
    when it is not an integer (``trials.TrialSpec`` reports that)."""
    trial = trial if isinstance(trial, Mapping) else {}
    if "epochs" not in trial:
        try:
            from trials.train import TrialSpec  # only here: a trials config without epochs
        except Exception:  # noqa: BLE001 - without torch the default cannot be read: fidelity.max is then required
            return None
        return int(TrialSpec.epochs)
    v = trial["epochs"]
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DEFAULT_MAX_RESTARTS = 9  # StrategyConfig.max_restarts; stored in every journal's config, so not None


class StrategyConfig(_Section):
    """``strategy:`` section. ``sigma0`` is a fraction of every hyperparameter's (scaled) range.

    ``name`` and ``restarts`` are names of :data:`esopt.registry.STRATEGIES` / ``RESTARTS``;
    ``max_restarts`` other than its default 9 without ``restarts`` is refused (it would be ignored).
    ``name`` may be left out (or null) in a campaign config: :class:`CampaignModel` then sets
    :data:`MIXED_STRATEGY` (``"catcmawm"``) when the space holds an integer or a categorical, else
    ``"cmaes"``; a categorical needs a strategy of :func:`mixed_strategies`.  With the mixed
    strategy the campaign sets its ``integers``/``categories``/``stds`` options from the space
    (:meth:`cluster.space.Space.strategy_options`): they are not config options;
    ``options`` are checked by :func:`esopt.registry.check_options` (strategy options,
    :class:`esopt.Tolerances` names and, with ``restarts``, the wrapper's options).
    ``stop_on_convergence``: ``false`` (default) = when the strategy's own termination criteria
    fire before the budget, restart it IPOP-style (:mod:`cluster.continuation`) and go on until
    the budget; ``true`` = end the campaign there, as esopt 0.1.0 did (journals written by 0.1.0
    resume with ``true``, see :data:`cluster.config.LEGACY_DEFAULTS`).
    ``surrogate: lq``: lq-CMA-ES pre-screening (:class:`esopt.LQSurrogate`, Hansen, GECCO 2019):
    each generation is evaluated in rounds of the candidates a quadratic model of the journaled
    values ranks best, until the model ranks the newest trials well (Kendall's tau >= 0.85); a
    journal generation is then one round.  Needs ``scheduler.mode: sync`` and no ``fidelity``.
    """

    name: str = "cmaes"
    popsize: Integer | None = Field(None, ge=2)  # offspring per generation; None = 4 + floor(3 ln d)
    sigma0: Number = Field(0.3, gt=0)  # initial step size, fraction of each range (unit cube), <= 1
    seed: Integer = Field(0, ge=0)  # seed of the strategy's numpy Generator
    restarts: str | None = None  # None, or a key of esopt.registry.RESTARTS ("ipop", "bipop")
    max_restarts: Integer = Field(_DEFAULT_MAX_RESTARTS, ge=0)  # with restarts only (else only the default)
    options: dict[str, Any] = Field(default_factory=dict)  # strategy options / esopt.Tolerances names
    stop_on_convergence: StrictBool = False  # true: the strategy's criteria end the campaign (0.1.0)
    surrogate: str | None = None  # None, or a key of esopt.registry.SURROGATES ("lq"): pre-screening, sync only

    @field_validator("options")
    @classmethod
    def _yaml_exponent_floats(cls, v: dict[str, Any]) -> dict[str, Any]:
        """A threshold written ``1e-3`` (no dot) is a string to PyYAML (YAML 1.1) and esopt takes
        only numbers: such a string becomes the float it spells (journals of earlier versions
        hold it so, too); any other string stays and is refused by ``check_options``."""
        from esopt.registry import TOLERANCE_NAMES

        return {k: _number_text(x) if k in TOLERANCE_NAMES else x for k, x in v.items()}

    @field_validator("sigma0")
    @classmethod
    def _sigma0_fraction(cls, v: float) -> float:
        if v > 1:
            raise ValueError(f"is a fraction of each range and must be <= 1, got {_show(v)}")
        return v

    @field_validator("name")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        from esopt.registry import STRATEGIES

        if v not in STRATEGIES:
            raise ValueError(f"must be one of {sorted(STRATEGIES)} (esopt.registry.STRATEGIES), got {_show(v)}")
        return v

    @field_validator("restarts", "surrogate")
    @classmethod
    def _known_wrapper(cls, v: str | None, info) -> str | None:
        """``restarts`` names a key of ``esopt.registry.RESTARTS``, ``surrogate`` one of ``SURROGATES``."""
        from esopt import registry

        table = {"restarts": "RESTARTS", "surrogate": "SURROGATES"}[info.field_name]
        known = getattr(registry, table)
        if v is not None and v not in known:
            raise ValueError(f"must be null or one of {sorted(known)} (esopt.registry.{table}), got {_show(v)}")
        return v

    @model_validator(mode="after")
    def _options_of_the_strategy(self) -> StrategyConfig:
        from esopt.registry import check_options

        if self.restarts is None and self.max_restarts != _DEFAULT_MAX_RESTARTS:
            raise KeyedError(
                ("max_restarts",),
                f"{_show(self.max_restarts)} applies only with a restart scheme: set restarts: ipop or bipop, or "
                "remove max_restarts (stop_on_convergence: false already restarts a converged strategy until the "
                "budget)",
            )
        for k, x in self.options.items():
            bad = _non_finite(x)
            if bad is not None:  # the journal stores the config as strict JSON
                raise KeyedError(
                    ("options", k), f"must be finite, got {_show(bad)} (leave the key out for the strategy's default)"
                )
        given = [k for k in _SPACE_OPTIONS if k in self.options]
        if given and self.name in mixed_strategies():
            raise KeyedError(
                ("options", given[0]), "is set by the campaign from the space (type: int, choices); remove it"
            )
        try:
            check_options(self.name, self.options, restarts=self.restarts)
        except (TypeError, ValueError) as e:
            raise KeyedError(("options",), f"{e}") from e
        return self


class BudgetConfig(_Section):
    """``budget:`` section; the campaign stops at the first limit reached (None = no limit)."""

    max_trials: Integer | None = Field(None, ge=1)  # evaluations (trials told to the strategy)
    max_generations: Integer | None = Field(None, ge=1)  # tells
    ftarget: Number | None = None  # stop when the best objective <= ftarget
    max_time_s: Number | None = Field(None, gt=0)  # wall-clock seconds of the driver (summed over resumes)
    max_resource: Number | None = Field(None, gt=0)  # with fidelity: total steps (e.g. epochs) of all trials together


class ResourcesConfig(_Section):
    """``resources:`` section: Ray resources of each trial."""

    num_cpus: Number = Field(1.0, ge=0)  # CPUs per trial (also torch threads for CPU trials)
    num_gpus: Number = Field(0.0, ge=0)  # GPUs per trial; fractions pack trials on one GPU (e.g. 0.25)
    max_concurrent: Integer | None = Field(None, ge=1)  # trials running at once; None = what resources allow
    timeout_s: Number | None = Field(None, gt=0)  # per-trial wall-clock limit in seconds; None = no limit
    fresh_process: StrictBool | None = None  # run each trial in a new worker; None = yes iff num_gpus > 0

    @field_validator("num_gpus")
    @classmethod
    def _whole_above_one(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError(f"above 1 must be a whole number, got {_show(v)} (fractions up to 1 share one GPU)")
        return v


class FailuresConfig(_Section):
    """``failures:`` section: what an exception in the objective does."""

    # "penalty" (worst value of the generation, campaign goes on), "retry", "abort"
    on_error: Literal["penalty", "retry", "abort"] = "penalty"
    max_retries: Integer = Field(2, ge=0)  # retries of a trial (system failures always, exceptions with retry)


class FidelityConfig(_Section):
    """``fidelity:`` section: multi-fidelity campaigns with asynchronous successive halving.

    The objective reports ``(step, value)`` as it trains (a keyword parameter ``report``,
    :func:`cluster.fidelity.accepts_report`; ``trials:train_and_evaluate`` reports its validation
    error after every epoch) and trials are stopped at the rungs ``min * eta**k`` below ``max``
    (and ``max``) unless among the best ``1/eta`` recorded there (:class:`cluster.fidelity.ASHA`;
    Li et al., arXiv 1810.05934; Ray Tune's ``ASHAScheduler``); with ``window`` set, among the best
    ``1/eta`` of the last ``window`` values recorded there.  ``max`` is the full budget, the
    objective's last step: with ``trials:train_and_evaluate`` it is ``trial.epochs`` (set from it
    when left out; another value is an error), for other objectives it is required.  The section
    is off when absent or null (``fidelity: {}`` turns it on with the defaults).  The campaign's
    best counts only trials that reached ``max``.
    """

    resource: str = "epochs"  # name of the step unit (labels in status and report), e.g. epochs, iterations
    min: Integer = Field(1, ge=1)  # first rung, in steps (Ray Tune's grace_period)
    max: Integer | None = Field(None, ge=1)  # full budget: the objective's last step (trials: trial.epochs)
    eta: Number = Field(3.0, gt=1)  # reduction factor: the best 1/eta of each rung go on (Ray Tune: 4)
    window: Integer | None = Field(None, ge=1)  # compare with the last `window` values at a rung (None: all, ASHA)

    @field_validator("resource")
    @classmethod
    def _named(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name the step unit, e.g. 'epochs'")
        return v

    @model_validator(mode="after")
    def _integer_rungs(self) -> FidelityConfig:
        from .fidelity import rungs

        if self.max is None:
            return self
        if self.min >= self.max:
            raise KeyedError(("min",), f"must be < fidelity.max ({self.max}, the full budget), got {self.min}")
        try:
            rungs(self.min, self.max, self.eta)
        except ValueError as e:
            raise KeyedError(("eta",), f"{e} (min {self.min}, eta {self.eta:g})") from None
        return self

    @property
    def rungs(self) -> list[int]:
        """The rungs, increasing steps ending at ``max`` (:func:`cluster.fidelity.rungs`); [] while ``max`` is unset."""
        from .fidelity import rungs

        return [] if self.max is None else rungs(self.min, self.max, self.eta)


class SchedulerConfig(_Section):
    """``scheduler:`` section: how trials are scheduled onto the cluster's slots.

    ``async`` (the default): a slot that frees starts the next candidate at once, results are told
    in completion order ``popsize`` at a time, stale samples as injected solutions (no generation
    barrier, :mod:`cluster.asyncdriver`).  ``sync``: one generation at a time, every trial of it
    finished before the tell (esopt 0.1's behaviour, bit-exact; journals written before this section
    existed resume so).
    """

    mode: Literal["async", "sync"] = "async"
    max_concurrent: Integer | None = Field(None, ge=1)  # trials running at once; None = all the cluster fits


def check_address(address: object) -> None:
    """A Ray address given to :class:`cluster.Campaign` (``--address``, ``ray.address``): None, or a non-empty string
    (``"auto"``, ``"host:port"``, ``"ray://host:port"``), as ``ray.address`` in a config.

    Raises
    ------
    TypeError
        Not a string or None.
    ValueError
        An empty (or all-blank) string: it would otherwise start a local instance silently.
    """
    if address is None:
        return
    if not isinstance(address, str):
        raise TypeError(f"address must be a string or None, got {type(address).__name__}")
    if not address.strip():
        raise ValueError(
            f"address {address!r} is empty: give 'auto', 'host:port' or 'ray://host:port' to join a cluster, "
            "or leave it out to start a local Ray instance"
        )


class RayConfig(_Section):
    """``ray:`` section."""

    address: str | None = None  # None: start a local Ray instance; "auto" or "ray://host:port": join
    num_cpus: Number | None = Field(None, ge=1)  # CPUs of a local instance; None = all of the machine's
    num_gpus: Number | None = Field(None, ge=0)  # GPUs of a local instance; None = detected

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, v: Any) -> Any:
        try:
            check_address(v)  # the rule of Campaign(address=...) and --address
        except (TypeError, ValueError):
            raise ValueError(f"must be null, 'auto', 'host:port' or 'ray://host:port', got {_show(v)}") from None
        return v


def _space(v: Any) -> dict[str, Param]:
    if not isinstance(v, Mapping) or not v:
        raise ValueError("is required: a mapping of hyperparameter name -> {lower, upper, ...}")
    out = {}
    for name, spec in v.items():
        try:
            out[str(name)] = Param.from_mapping(str(name), spec)
        except ValueError as e:  # ParamError: its path is space.<name>[.<key>]
            path = getattr(e, "path", f"space.{name}")
            raise KeyedError(tuple(path.split(".")[1:]), getattr(e, "detail", str(e))) from e
    return out


def _objective(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"is required: 'module:function', got {_show(v)}")
    if v.count(":") != 1 or not all(v.split(":")):
        raise ValueError(f"must be 'module:function', got {_show(v)}")
    return v


class CampaignModel(_Section):
    """The whole config (``name`` may be None here: :func:`cluster.config.parse_config` fills in
    the file's stem).  ``space`` becomes ``{name: Param}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: Annotated[str, BeforeValidator(check_name)] | None = None
    objective: Annotated[str, BeforeValidator(_objective)]
    trial: dict[str, Any] = Field(default_factory=dict)
    space: Annotated[dict[str, Param], BeforeValidator(_space)]
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    failures: FailuresConfig = Field(default_factory=FailuresConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    fidelity: FidelityConfig | None = None  # None (or null): every trial runs to the end
    base_dir: str | None = None  # set by load_config: the config file's folder

    @field_validator("trial", "strategy", "budget", "resources", "failures", "scheduler", "ray", mode="before")
    @classmethod
    def _null_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v

    @model_validator(mode="before")
    @classmethod
    def _default_strategy_name(cls, data: Any) -> Any:
        """``strategy.name`` missing or null -> :func:`default_strategy` of the space."""
        if not isinstance(data, Mapping):
            return data
        strategy = data.get("strategy")
        if strategy is None:
            strategy = {}
        if isinstance(strategy, Mapping) and strategy.get("name") is None:
            data = {**data, "strategy": {**strategy, "name": default_strategy(data.get("space"))}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _fidelity_max_of_trials(cls, data: Any) -> Any:
        """With ``trials:train_and_evaluate``, ``fidelity.max`` missing or null -> the trial's epochs."""
        from .config import TRIALS_OBJECTIVE

        if not isinstance(data, Mapping) or data.get("objective") != TRIALS_OBJECTIVE:
            return data
        fid = data.get("fidelity")
        if not isinstance(fid, Mapping) or fid.get("max") is not None:
            return data
        epochs = _trial_epochs(data.get("trial"))
        return data if epochs is None else {**data, "fidelity": {**fid, "max": epochs}}

    @model_validator(mode="after")
    def _fidelity_budget(self) -> CampaignModel:
        from .config import TRIALS_OBJECTIVE

        fid, budget = self.fidelity, self.budget
        if fid is None:
            if budget.max_resource is not None:
                raise KeyedError(
                    ("budget", "max_resource"),
                    "needs a fidelity: section (its resource is the unit of max_resource); add fidelity: "
                    "{resource: epochs, min: 1, max: ...} or remove max_resource",
                )
            return self
        trials = self.objective == TRIALS_OBJECTIVE
        if fid.max is None:
            why = "the trial's last epoch: give trial.epochs (an integer)" if trials else "the objective's last step"
            raise KeyedError(("fidelity", "max"), f"is required: {why}")
        epochs = _trial_epochs(self.trial) if trials else None
        if epochs is not None and fid.max != epochs:
            raise KeyedError(
                ("fidelity", "max"),
                f"must equal trial.epochs ({epochs}), the last epoch {TRIALS_OBJECTIVE} reports; leave it out to "
                "take trial.epochs, or change trial.epochs",
            )
        if budget.max_resource is not None and budget.max_resource < fid.max:
            raise KeyedError(
                ("budget", "max_resource"),
                f"must be >= fidelity.max ({fid.max} {fid.resource}): one trial at the full budget uses that much, "
                f"got {budget.max_resource:g}",
            )
        return self

    @model_validator(mode="after")
    def _surrogate_needs_sync_rounds(self) -> CampaignModel:
        if self.strategy.surrogate is None:
            return self
        if self.scheduler.mode != "sync":
            raise KeyedError(
                ("strategy", "surrogate"),
                "needs scheduler.mode: sync: each round of a pre-screened generation depends on the values of the "
                "previous round, so results cannot be told one by one as they arrive; add scheduler: {mode: sync} "
                "or remove strategy.surrogate",
            )
        if self.fidelity is not None:
            raise KeyedError(
                ("strategy", "surrogate"),
                "cannot be combined with fidelity: stopped trials are told a rank (rung reached, value there), "
                "which a quadratic model of the objective cannot fit; remove one of the two",
            )
        return self

    @model_validator(mode="after")
    def _categoricals_need_the_mixed_strategy(self) -> CampaignModel:
        cats = [n for n, p in self.space.items() if p.is_categorical]
        able = mixed_strategies()
        if cats and self.strategy.name not in able:
            raise KeyedError(
                ("strategy", "name"),
                f"{self.strategy.name!r} cannot handle the categorical space.{cats[0]} (choices); use one of "
                f"{able} or leave strategy.name out (the default for such a space is {MIXED_STRATEGY!r})",
            )
        return self
