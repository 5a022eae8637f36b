"""Campaign configs: the issue's example parses; each bad config names its key path."""

from __future__ import annotations

import copy
import textwrap

import pytest

from cluster import ConfigError, load_config, parse_config
from cluster.objective import make_objective, normalize_result

EXAMPLE_YAML = textwrap.dedent("""\
    name: digits-cmaes
    objective: trials:train_and_evaluate   # or any module:function(params) -> float | {"objective": ...}
    trial: {dataset: digits, epochs: 30}
    space:
      lr:           {lower: 3.0e-5, upper: 0.1, scale: log10}
      weight_decay: {lower: 1.0e-6, upper: 0.1, scale: log10}
      T_0:          {lower: 1, upper: 20, type: int}
    strategy: {name: cmaes, popsize: 8, sigma0: 0.3, seed: 0, restarts: null}
    budget: {max_trials: 64, max_generations: null, ftarget: null, max_time_s: null}
    resources: {num_cpus: 1, num_gpus: 0, max_concurrent: null, timeout_s: 600, fresh_process: null}
    failures: {on_error: penalty, max_retries: 2}
    ray: {address: null}
    """)

BASE = {
    "name": "t",
    "objective": "helpers_objectives:sphere",
    "space": {
        "lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"},
        "k": {"lower": 1, "upper": 4, "type": "int"},
    },
}


def test_issue_example_parses(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(EXAMPLE_YAML)
    cfg = load_config(p)
    assert cfg.name == "digits-cmaes" and cfg.uses_trials
    assert cfg.space.names == ["lr", "weight_decay", "T_0"]
    assert cfg.strategy.popsize == 8 and cfg.budget.max_trials == 64 and cfg.resources.timeout_s == 600
    assert cfg.failures.on_error == "penalty" and cfg.ray.address is None
    assert parse_config(cfg.raw) == cfg  # the normalized dict stored in the journal round-trips
    obj = make_objective(cfg)
    spec = obj.spec()
    assert spec.dataset == "digits" and spec.epochs == 30
    assert spec.threads == 1  # defaults to the trial's CPUs
    assert spec.device == "cpu"  # no GPU in resources: "auto" must not pick one


def test_defaults():
    cfg = parse_config(BASE)
    assert cfg.strategy.name == "cmaes" and cfg.strategy.sigma0 == 0.3 and cfg.strategy.seed == 0
    assert cfg.resources.num_cpus == 1.0 and cfg.resources.num_gpus == 0.0
    assert cfg.failures.on_error == "penalty" and cfg.failures.max_retries == 2
    assert cfg.budget.max_trials is None and cfg.ray.address is None


def _with(path: str, value):
    raw = copy.deepcopy(BASE)
    keys = path.split(".")
    d = raw
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value
    return raw


@pytest.mark.parametrize(
    "raw, path",
    [
        (_with("colour", "red"), "colour"),
        (_with("strategy.flavour", 1), "strategy.flavour"),
        (_with("budget.max_trials", "ten"), "budget.max_trials"),
        (_with("budget.max_trials", 2.5), "budget.max_trials"),
        (_with("space.lr.lower", 1.0), "space.lr.lower"),  # lower >= upper
        (_with("space.lr.lower", -1.0), "space.lr.lower"),  # log scale, non-positive bound
        (_with("space.lr.scale", "ln"), "space.lr.scale"),
        (_with("space.k.type", "integer"), "space.k.type"),
        (_with("space.lr", 0.3), "space.lr"),
        (_with("objective", "helpers_objectives:no_such_function"), "objective"),
        (_with("objective", "no_such_module_xyz:f"), "objective"),
        (_with("objective", "not-a-spec"), "objective"),
        (_with("strategy.name", "nelder-mead"), "strategy.name"),
        (_with("strategy.sigma0", 0), "strategy.sigma0"),
        (_with("strategy.sigma0", 2.0), "strategy.sigma0"),
        (_with("strategy.restarts", "lots"), "strategy.restarts"),
        (_with("resources.num_gpus", 1.5), "resources.num_gpus"),
        (_with("resources.num_cpus", -1), "resources.num_cpus"),
        (_with("resources.fresh_process", "yes"), "resources.fresh_process"),
        (_with("failures.on_error", "ignore"), "failures.on_error"),
        (_with("failures.max_retries", -1), "failures.max_retries"),
        (_with("ray.address", 5), "ray.address"),
        (_with("trial", {"epochs": 3}), "trial"),  # trial without trials objective
        (_with("name", ""), "name"),
        ({k: v for k, v in BASE.items() if k != "space"}, "space"),
    ],
)
def test_bad_config_names_the_key_path(raw, path):
    with pytest.raises(ConfigError) as exc:
        parse_config(raw)
    assert exc.value.path == path
    assert str(exc.value).startswith(f"{path}: ")


def test_trials_config_errors():
    raw = {
        "name": "t",
        "objective": "trials:train_and_evaluate",
        "trial": {"epochs": "many"},
        "space": {"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}},
    }
    with pytest.raises(ConfigError) as exc:
        parse_config(raw)
    assert exc.value.path == "trial"
    raw = {
        "name": "t",
        "objective": "trials:train_and_evaluate",
        "space": {"learning_rate": {"lower": 1e-4, "upper": 0.1}},
    }
    with pytest.raises(ConfigError) as exc:
        parse_config(raw)
    assert exc.value.path == "space.learning_rate"


def test_yaml_errors_and_safe_load(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    p.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):  # safe_load refuses to build objects
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_normalize_result():
    assert normalize_result(1)["objective"] == 1.0
    r = normalize_result({"objective": 0.5, "acc": 0.9})
    assert r == {"objective": 0.5, "status": "ok", "reason": None, "result": {"objective": 0.5, "acc": 0.9}}
    r = normalize_result({"objective": float("nan"), "status": "diverged", "reason": "loss nan"})
    assert r["status"] == "diverged" and r["reason"] == "loss nan"
    for bad in ("oops", True, {"acc": 1.0}, None, [1.0]):
        with pytest.raises(TypeError):
            normalize_result(bad)
