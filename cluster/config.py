"""Campaign configuration: one YAML file, validated before anything starts.

Schema (key names are the contract; every key optional unless marked)::

    name: digits-cmaes                      # campaign name (letters, digits, - _ .); default: the file's stem
    objective: trials:train_and_evaluate    # required; "module:function" (a module beside the config is found)
    trial: {dataset: digits, epochs: 30}    # TrialSpec fields, only with trials:train_and_evaluate
    space:                                  # required; see cluster.space.Param
      lr: {lower: 3.0e-5, upper: 0.1, scale: log10}
      T_0: {lower: 1, upper: 20, type: int}                  # integer
      optimizer: {choices: [adamw, sgdw, radam, nadam]}      # categorical: the objective gets the choice
    strategy: {name: cmaes, popsize: null, sigma0: 0.3, seed: 0, restarts: null, max_restarts: 9, options: {},
               stop_on_convergence: false, surrogate: null}   # surrogate: lq (pre-screening; sync only)
    budget: {max_trials: 64, max_generations: null, ftarget: null, max_time_s: null, max_resource: null}
    resources: {num_cpus: 1, num_gpus: 0, max_concurrent: null, timeout_s: null, fresh_process: null}
    failures: {on_error: penalty, max_retries: 2}
    scheduler: {mode: async, max_concurrent: null}       # async (default) or sync; see cluster.asyncdriver
    fidelity: {resource: epochs, min: 1, max: 16, eta: 3}  # optional: stop poor trials at rungs (ASHA)
    ray: {address: null, num_cpus: null, num_gpus: null}

``fidelity`` (absent or null: off) stops trials at the rungs ``min * eta**k`` below ``max`` and
``max`` by asynchronous successive halving (:class:`cluster.configmodel.FidelityConfig`,
:mod:`cluster.fidelity`); the objective must take a keyword parameter ``report``; ``max`` is its
last step (with ``trials:train_and_evaluate``: ``trial.epochs``, filled in when left out).
``budget.max_resource`` (only with ``fidelity``) caps the steps all trials together consume.

``strategy.name`` defaults to ``catcmawm`` (the mixed strategy, :class:`esopt.CatCMAwM`) when
the space holds a ``type: int`` or a ``choices`` parameter, else to ``cmaes``; a categorical with
another named strategy is a ConfigError at ``strategy.name``.  How each parameter maps into the
strategy's coordinates: :mod:`cluster.space`.

The sections, their types and defaults are declared once, as pydantic models, in
:mod:`cluster.configmodel`.  Every error is a :class:`ConfigError` (a ``ValueError``) whose
message starts with the key path, e.g. ``space.lr.lower: must be < upper``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .configmodel import (
    BudgetConfig,
    CampaignModel,
    FailuresConfig,
    FidelityConfig,
    KeyedError,
    RayConfig,
    ResourcesConfig,
    SchedulerConfig,
    StrategyConfig,
    check_name,
    mixed_strategies,
)
from .space import Space, _show

__all__ = [
    "require_stop",
    "BudgetConfig",
    "CampaignConfig",
    "ConfigError",
    "FailuresConfig",
    "FidelityConfig",
    "RayConfig",
    "ResourcesConfig",
    "SchedulerConfig",
    "StrategyConfig",
    "load_config",
    "parse_config",
    "import_callable",
    "upgrade_stored",
    "config_differences",
    "LEGACY_DEFAULTS",
    "TRIALS_OBJECTIVE",
]

TRIALS_OBJECTIVE = "trials:train_and_evaluate"

#: Keys added after esopt 0.1.0, with the value a journal that lacks them gets (its old behaviour):
#: a 0.1.0 campaign resumes as it ran, stopping when the strategy's own criteria fire.
#: A journal without a ``scheduler`` section was written before asynchronous campaigns: it resumes
#: synchronously, generation by generation, as it was started.
LEGACY_DEFAULTS: dict[tuple[str, str], Any] = {
    ("strategy", "stop_on_convergence"): True,
    ("scheduler", "mode"): "sync",
}

#: The config sections that are pydantic models (:mod:`cluster.configmodel`), in journal order.
SECTIONS = ("strategy", "budget", "resources", "failures", "scheduler", "ray")


class ConfigError(ValueError):
    """Invalid campaign config; ``path`` is the dotted key path (e.g. ``space.lr.lower``)."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True)
class CampaignConfig:
    """A validated campaign config. ``raw`` is the normalized dict (stored in the journal).

    ``base_dir`` is the folder of the config file (:func:`load_config`; ``None`` for a dict):
    the objective's module is imported from there first (:func:`import_callable`).  It is not
    part of equality, and journals do not compare it (moving a config file does not change the
    campaign).
    """

    name: str
    objective: str
    space: Space
    trial: dict = field(default_factory=dict)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    failures: FailuresConfig = field(default_factory=FailuresConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    fidelity: FidelityConfig | None = None  # multi-fidelity (successive halving) when set
    base_dir: Path | None = field(default=None, compare=False)

    @property
    def raw(self) -> dict[str, Any]:
        """Normalized, JSON/YAML-safe dict; ``parse_config(cfg.raw) == cfg`` (``base_dir`` is
        included, as a string, when set)."""
        out = {
            "name": self.name,
            "objective": self.objective,
            "trial": dict(self.trial),
            "space": self.space.to_dict(),
            **{k: getattr(self, k).model_dump() for k in SECTIONS},
        }
        if self.fidelity is not None:  # absent when off: journals of campaigns without it are unchanged
            fid = self.fidelity.model_dump()
            if fid["window"] is None:  # plain ASHA: journals written before `window` existed are unchanged
                del fid["window"]
            out["fidelity"] = fid
        if self.base_dir is not None:
            out["base_dir"] = str(self.base_dir)
        return out

    @property
    def uses_trials(self) -> bool:
        """True when the objective is ``trials:train_and_evaluate``."""
        return self.objective == TRIALS_OBJECTIVE

    def load_objective(self) -> Callable[..., Any]:
        """Import the objective callable (``base_dir`` first on ``sys.path``); raises ConfigError
        if it is not importable."""
        return import_callable(self.objective, "objective", base_dir=self.base_dir)


def import_callable(spec: str, path: str = "objective", *, base_dir: str | Path | None = None) -> Callable[..., Any]:
    """Import ``"module:function"`` (dots allowed in both parts).

    ``base_dir`` (the config file's folder), if given, is put first on ``sys.path`` of this
    process (and left there, so that the driver can import the module again later), so that a
    ``myobj.py`` beside the config is found without ``PYTHONPATH``.  Ray workers get the folder
    through the campaign's ``runtime_env``.

    Raises :class:`ConfigError` naming ``path`` if the form is wrong or the import fails.
    """
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ConfigError(path, f"must be 'module:function', got {_show(spec)}")
    if base_dir is not None and str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    mod_name, attr = spec.split(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as e:  # noqa: BLE001 - report any import failure as a config error
        where = f" (looked on sys.path, the config's folder {str(base_dir)!r} first)" if base_dir else ""
        raise ConfigError(path, f"cannot import module {mod_name!r}{where}: {type(e).__name__}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(path, f"module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(path, f"{spec!r} is not callable")
    return obj


# --------------------------------------------------------------------------- pydantic -> ConfigError
_SECTIONS = {
    "": CampaignModel,
    "strategy": StrategyConfig,
    "budget": BudgetConfig,
    "resources": ResourcesConfig,
    "failures": FailuresConfig,
    "scheduler": SchedulerConfig,
    "ray": RayConfig,
    "fidelity": FidelityConfig,
}


def _known_keys(parent: str) -> list[str]:
    model = _SECTIONS.get(parent)
    if model is None:  # space.<name>
        return ["lower", "upper", "scale", "type", "init", "choices"]
    return sorted(k for k in model.model_fields if k != "base_dir")


_REQUIRED_HINT = {
    "objective": "is required: 'module:function', e.g. trials:train_and_evaluate or mymodule:f",
    "space": "is required: a mapping of hyperparameter name -> {lower, upper, ...}",
}


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else _show(v)


def _message(err: dict[str, Any], parent: str) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "missing":
        return _REQUIRED_HINT.get(".".join(str(p) for p in err["loc"]), "is required")
    simple = {
        "extra_forbidden": f"unknown key; known keys{' of ' + parent if parent else ''}: {_known_keys(parent)}",
        "greater_than_equal": f"must be >= {_num(ctx.get('ge'))}, got {_num(value)}",
        "greater_than": f"must be > {_num(ctx.get('gt'))}, got {_num(value)}",
        "literal_error": f"must be one of {ctx.get('expected')}, got {_show(value)}",
        "bool_type": f"must be true or false, got {_show(value)}",
        "string_type": f"must be a string, got {_show(value)}",
    }
    if kind in simple:
        return simple[kind]
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping, got {type(value).__name__}"
    if kind == "value_error" and isinstance(ctx.get("error"), Exception):
        return str(ctx["error"])
    return err["msg"]


def _config_error(exc: ValidationError) -> ConfigError:
    """The first of pydantic's errors as a ConfigError: ``loc`` joined by dots is the key path."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"]]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, KeyedError):
        loc += list(cause.keys)
    path = ".".join(loc)
    return ConfigError(path, _message(err, ".".join(loc[:-1])))


# ------------------------------------------------------------------------------------- parse / load
def parse_config(
    raw: Mapping[str, Any],
    *,
    check_objective: bool = True,
    check_data: bool = True,
    check_values: bool = True,
    base_dir: str | Path | None = None,
    default_name: str | None = None,
) -> CampaignConfig:
    """Validate a config dict and return a :class:`CampaignConfig`.

    ``check_objective`` imports the objective (from ``base_dir`` first, see
    :func:`import_callable`) and, when the objective is ``trials:train_and_evaluate``, validates
    ``trial`` against ``trials.TrialSpec`` and the space's names against ``trials.HPARAMS``.
    ``check_data`` (with ``check_objective``) also checks that a dataset read from files
    (``mnist``, ``cifar10``, ``imagenet32``) has ``trial.data_dir`` and that the folder holds its
    files in their published formats (``trials.data.dataset_files``; headers only): switch it off
    only where the data is on the workers but not on the driver's machine.
    ``check_values`` (with ``check_objective``, for ``trials:train_and_evaluate``) checks every
    value a trial can get, each bound, ``init`` and choice of the space and ``trial.fixed``,
    against ``trials.HPARAMS`` (valid ranges, integers, which optimizer or model a name applies
    to) as each trial checks it (:func:`_check_hparam_values`): without it such a config starts
    and its trials fail one by one.  :meth:`cluster.Campaign.resume` switches it off, so that a
    journal written before this check resumes as it ran.
    ``default_name`` is the name when ``raw`` has none (:func:`load_config` passes the file's stem);
    ``base_dir`` the folder of the config file (``raw["base_dir"]`` if not given).

    Raises
    ------
    ConfigError
        The first problem found, its message starting with the key path.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError("", f"a campaign config must be a mapping at the top level, got {type(raw).__name__}")
    try:
        model = CampaignModel.model_validate(dict(raw))
    except ValidationError as e:
        raise _config_error(e) from None
    name = _resolve_name(model.name, default_name)
    base = base_dir if base_dir is not None else model.base_dir
    base = None if base is None else Path(base)
    if model.trial and model.objective != TRIALS_OBJECTIVE:
        raise ConfigError("trial", f"is only used with objective {TRIALS_OBJECTIVE!r}; remove it or change objective")
    space = Space(list(model.space.values()), mixed=model.strategy.name in mixed_strategies())
    if check_objective:
        fn = import_callable(model.objective, "objective", base_dir=base)
        if model.objective == TRIALS_OBJECTIVE:
            _check_trials(dict(model.trial), space, check_data=check_data, check_values=check_values)
        _check_reports(fn, model)
    fields = {k: getattr(model, k) for k in ("objective", *SECTIONS)}
    return CampaignConfig(
        name=name, space=space, trial=dict(model.trial), base_dir=base, fidelity=model.fidelity, **fields
    )


def require_stop(config: CampaignConfig) -> None:
    """Refuse a new campaign that nothing would stop.

    With ``strategy.stop_on_convergence: false`` (the default) the strategy is restarted whenever
    its own criteria fire (:mod:`cluster.continuation`), so a config without any ``budget`` key
    would run forever.  Checked when a campaign is created (:class:`cluster.Campaign`), not when a
    journal is resumed: a stored config is never refused for it.

    Raises :class:`ConfigError` at ``budget`` when none of ``max_trials``, ``max_generations``,
    ``max_time_s``, ``max_resource`` and ``ftarget`` is set and ``stop_on_convergence`` is false.
    """
    b = config.budget
    limits = (b.max_trials, b.max_generations, b.max_time_s, b.max_resource, b.ftarget)
    if all(v is None for v in limits) and not config.strategy.stop_on_convergence:
        raise ConfigError(
            "budget",
            "nothing would stop this campaign: give budget.max_trials, max_generations or max_time_s "
            "(or ftarget, or max_resource with fidelity), or set strategy.stop_on_convergence: true to end "
            "when the strategy converges; without either the strategy is restarted until it is interrupted",
        )


def _check_reports(fn: Callable[..., Any], model: CampaignModel) -> None:
    """``fidelity`` needs an objective that takes ``report`` (:func:`cluster.fidelity.accepts_report`)."""
    from .fidelity import accepts_report

    if model.fidelity is not None and not accepts_report(fn):
        raise ConfigError(
            "fidelity",
            f"needs an objective that reports progress, but {model.objective} takes no keyword parameter 'report' "
            "(def f(params, report=None): ... call report(step, value) after each step and stop when it returns "
            "False); remove fidelity: to train every trial to the end",
        )


def _resolve_name(name: str | None, default_name: str | None) -> str:
    if name is not None:
        return name
    if default_name is None:
        raise ConfigError(
            "name",
            "is required for a config that is not read from a file (load_config defaults it to the "
            "file's stem): give name: <letters, digits, '-', '_' or '.'>",
        )
    try:
        return check_name(default_name)
    except ValueError as e:
        raise ConfigError(
            "name", f"defaults to the config file's stem {default_name!r}, which is not a valid name: {e}; set name:"
        ) from None


def _check_trials(trial: dict, space: Space, *, check_data: bool, check_values: bool = True) -> None:
    try:
        import trials
        from trials.data import dataset_files
    except Exception as e:  # noqa: BLE001
        raise ConfigError("objective", f"cannot import the trials package: {e}") from e
    try:
        spec = trials.TrialSpec.from_dict(trial)
    except (TypeError, ValueError) as e:
        raise ConfigError("trial", str(e)) from e
    for pname in space.names:
        if pname not in trials.HPARAMS:
            raise ConfigError(
                f"space.{pname}", f"is not a hyperparameter of {TRIALS_OBJECTIVE}; known: {sorted(trials.HPARAMS)}"
            )
    if check_values:
        _check_hparam_values(spec, space)
    if spec.dataset not in ("digits", "mnist1d") and spec.data_dir is None:  # bundled / generated: no files
        raise ConfigError(
            "trial.data_dir",
            f"is required for dataset {spec.dataset!r}: a folder with its published files "
            "(nothing is downloaded; see trials.data for the file names)",
        )
    if check_data:
        try:
            dataset_files(spec.dataset, spec.data_dir)
        except (OSError, ValueError) as e:
            raise ConfigError("trial.data_dir", f"{e} (checked when the config is read)") from e


def _check_hparam_values(spec: Any, space: Space) -> None:
    """Refuse a space or ``trial.fixed`` whose values ``trials.train_and_evaluate`` would reject.

    ``spec`` is the ``trials.TrialSpec`` of ``trial:``.  Each value a trial can get is passed
    through ``trials.resolve_hparams`` with ``spec.fixed``, ``spec.optimizer`` and the resolved
    model, as every trial does before training: ``trial.fixed`` alone, then each parameter at its
    ``init`` and at its start (decoded: the centre / the first choice without ``init``), at
    ``lower`` and ``upper`` (the decoded values include both) and at each of its choices,
    together with the tuned ``optimizer``'s start when the space holds one (a coefficient of
    another optimizer is then only range-checked, as in a trial), then all starts together (pairs
    such as ``weight_decay`` and ``weight_decay_norm``).  An integer hyperparameter
    (``filters1``, ...) needs ``type: int``.

    Raises :class:`ConfigError` at ``trial.fixed``, ``space.<name>.type``, ``.init``, ``.lower``,
    ``.upper``, ``.choices``, ``space.<name>`` or ``space`` with the trial's own message, e.g.
    ``space.lr.upper: hyperparameter 'lr'=1000 is outside its valid range (0, 100] ...``.
    """
    from trials import HPARAMS, resolve_hparams

    model = spec.resolved_model()

    def check(path: str, hparams: dict) -> None:
        try:
            resolve_hparams(hparams, spec.fixed, spec.optimizer, model)
        except ValueError as e:
            raise ConfigError(path, f"{e} (checked when the config is read)") from None

    check("trial.fixed", {})
    start = space.decode(space.x0)
    base = {"optimizer": start["optimizer"]} if "optimizer" in start else {}
    for p in space.params:
        h = HPARAMS[p.name]
        if h.integer and not p.is_categorical and p.type != "int":
            raise ConfigError(
                f"space.{p.name}.type",
                f"must be int: {p.name!r} is an integer hyperparameter ({h.unit}) of {TRIALS_OBJECTIVE}, "
                "and a non-integral value fails the trial; add type: int",
            )
        here = f"space.{p.name}"
        if p.init is not None:
            check(here + ".init", {**base, p.name: p.init})
        check(here, {**base, p.name: start[p.name]})
        values = (
            [(".choices", c) for c in p.choices] if p.is_categorical else [(".lower", p.lower), (".upper", p.upper)]
        )
        for key, v in values:
            check(here + key, {**base, p.name: int(v) if p.type == "int" else v})
    check("space", start)


def upgrade_stored(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict read from a journal, with the keys added since it was written set to their
    :data:`LEGACY_DEFAULTS` (a new dict; ``stored`` is not modified)."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in stored.items()}
    for (section, key), value in LEGACY_DEFAULTS.items():
        sec = out.get(section)
        if sec is None:
            sec = out[section] = {}
        if isinstance(sec, dict):
            sec.setdefault(key, value)
    return out


def config_differences(stored: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """Top-level keys in which config dict ``given`` differs from ``stored`` (a journal's), sorted.

    ``base_dir`` is not compared.  ``stored`` is upgraded first (:func:`upgrade_stored`); a key of
    :data:`LEGACY_DEFAULTS` that ``given`` leaves at its current default, while the journal has
    the legacy value, matches (the journal's value is used: a 0.1.0 journal is not refused
    because a key added since has a default).
    """
    s = upgrade_stored(stored)
    g = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in given.items()}
    for d in (s, g):
        d.pop("base_dir", None)
    for (section, key), legacy in LEGACY_DEFAULTS.items():
        default = _SECTIONS[section].model_fields[key].default
        gsec, ssec = g.get(section), s.get(section)
        if isinstance(gsec, dict) and isinstance(ssec, dict) and ssec.get(key) == legacy and gsec.get(key) == default:
            gsec[key] = legacy
    for d in (s, g):  # keys added to a section since the journal was written read as their defaults
        _fill_defaults(d)
    return sorted(k for k in set(s) | set(g) if s.get(k) != g.get(k))


def _fill_defaults(config: dict[str, Any]) -> None:
    """Set every missing key of the config's section dicts to its model default (in place)."""
    from pydantic_core import PydanticUndefined

    for section in SECTIONS:
        sec = config.get(section)
        if not isinstance(sec, dict):
            continue
        for key, f in _SECTIONS[section].model_fields.items():
            if key not in sec and f.default is not PydanticUndefined and f.default_factory is None:
                sec[key] = f.default


class _DuplicateKey(Exception):
    """A mapping of the config names a key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last
    silently: a second ``scheduler:`` dropped the first one's ``mode``).  Keys brought in by a
    merge (``<<: *defaults``) may still be overridden."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    line0 = first.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: SafeLoader's own error follows
                    continue
                again = key_node.start_mark.line + 1
                if line0 != again:
                    raise _DuplicateKey(
                        f"gives the key {key!r} twice in one mapping (lines {line0} and {again}); "
                        "YAML keeps only the last, so merge the two into one"
                    )
        return super().construct_mapping(node, deep)


def load_config(path: str | Path, *, check_objective: bool = True, check_data: bool = True) -> CampaignConfig:
    """Read a YAML file (``yaml.safe_load``, refusing duplicate keys) and validate it (see
    :func:`parse_config`).

    ``name`` defaults to the file's stem (``runs/cifar10.yaml`` -> ``cifar10``); ``base_dir`` is
    the file's folder, from which the objective's module is imported first.

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, names a key twice in one mapping, or fails
        validation.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError("", f"cannot read config {str(p)!r}: {e.strerror or e}") from e
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except _DuplicateKey as e:
        raise ConfigError("", f"{str(p)!r} {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError("", f"{str(p)!r} is not valid YAML: {e}") from e
    return parse_config(
        raw or {},
        check_objective=check_objective,
        check_data=check_data,
        base_dir=p.resolve().parent,
        default_name=p.stem,
    )
