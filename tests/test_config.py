"""Campaign configs: the issue's example parses; each bad config names its key path."""

from __future__ import annotations

import copy
import textwrap

import numpy as np
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
    continuous = {**BASE, "space": {"lr": BASE["space"]["lr"]}}
    assert parse_config(continuous).strategy.name == "cmaes"  # all-continuous space: cmaes
    cfg = parse_config(BASE)  # an int in the space and no strategy.name: the mixed strategy (issue 15)
    assert cfg.strategy.name == "catcmawm" and cfg.strategy.sigma0 == 0.3 and cfg.strategy.seed == 0
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
        (_with("strategy.max_restarts", 3), "strategy.max_restarts"),  # without restarts it would be ignored
        (_with("ray.address", ""), "ray.address"),
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


# ----------------------------------------------------------------------- issue 11 / 12 additions
def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_name_defaults_to_the_file_stem_and_is_validated(tmp_path):
    cfg = load_config(
        _write(
            tmp_path / "my-campaign.v2.yaml",
            """\
            objective: helpers_objectives:sphere
            space: {x: {lower: 0, upper: 1}}
            """,
        )
    )
    assert cfg.name == "my-campaign.v2" and cfg.raw["name"] == "my-campaign.v2"
    assert parse_config(cfg.raw) == cfg  # the journal stores the resolved name
    bad = _write(
        tmp_path / "two words.yaml", "objective: helpers_objectives:sphere\nspace: {x: {lower: 0, upper: 1}}\n"
    )
    with pytest.raises(ConfigError, match="stem 'two words'") as exc:
        load_config(bad)
    assert exc.value.path == "name"
    with pytest.raises(ConfigError, match="give name") as exc:
        parse_config({k: v for k, v in BASE.items() if k != "name"})
    assert exc.value.path == "name"
    with pytest.raises(ConfigError) as exc:  # an explicit name is still checked
        load_config(
            _write(
                tmp_path / "ok.yaml",
                "name: 'a b'\nobjective: helpers_objectives:sphere\nspace: {x: {lower: 0, upper: 1}}\n",
            )
        )
    assert exc.value.path == "name"


def test_objective_module_beside_the_config_is_found(tmp_path, monkeypatch):
    import sys

    (tmp_path / "cfgdir").mkdir()
    mod = "esopt_test_beside_config_obj"
    (tmp_path / "cfgdir" / f"{mod}.py").write_text("def f(params):\n    return 2.0 * params['x']\n")
    raw = {"objective": f"{mod}:f", "space": {"x": {"lower": 0, "upper": 1}}}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # undo the insertion after the test
    with pytest.raises(ConfigError, match="cannot import module") as exc:  # not importable without the file's folder
        parse_config({**raw, "name": "n"})
    assert exc.value.path == "objective"
    p = tmp_path / "cfgdir" / "beside.yaml"
    import yaml

    p.write_text(yaml.safe_dump(raw))
    cfg = load_config(p)
    assert cfg.base_dir == (tmp_path / "cfgdir").resolve() and cfg.name == "beside"
    assert cfg.load_objective()({"x": 0.25}) == 0.5
    assert cfg.raw["base_dir"] == str(cfg.base_dir)  # stored in the journal, so a resume finds it too
    assert parse_config(cfg.raw).base_dir == cfg.base_dir


def _mnist_files(d, bad=False):
    import gzip

    d.mkdir(parents=True, exist_ok=True)
    for stem, ndim in (
        ("train-images-idx3-ubyte", 3),
        ("train-labels-idx1-ubyte", 1),
        ("t10k-images-idx3-ubyte", 3),
        ("t10k-labels-idx1-ubyte", 1),
    ):
        head = bytes([0, 0, 8, ndim]) if not bad else b"<htm"  # e.g. an HTML error page saved as the file
        with gzip.open(d / f"{stem}.gz", "wb") as fh:
            fh.write(head + bytes(4 * ndim))


def _trials_raw(**trial):
    return {
        "name": "t",
        "objective": "trials:train_and_evaluate",
        "trial": trial,
        "space": {"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}},
    }


@pytest.mark.parametrize("dataset", ["mnist", "cifar10", "imagenet32"])
def test_file_datasets_need_data_dir_when_the_config_is_read(dataset):
    with pytest.raises(ConfigError, match=f"dataset '{dataset}'") as exc:
        parse_config(_trials_raw(dataset=dataset))
    assert exc.value.path == "trial.data_dir"


def test_data_dir_must_hold_the_files_in_their_published_format(tmp_path):
    with pytest.raises(ConfigError, match="not a folder") as exc:
        parse_config(_trials_raw(dataset="mnist", data_dir=str(tmp_path / "nope")))
    assert exc.value.path == "trial.data_dir"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte not found") as exc:
        parse_config(_trials_raw(dataset="mnist", data_dir=str(empty)))
    assert exc.value.path == "trial.data_dir"
    _mnist_files(tmp_path / "bad", bad=True)
    with pytest.raises(ConfigError, match="does not start like IDX") as exc:
        parse_config(_trials_raw(dataset="mnist", data_dir=str(tmp_path / "bad")))
    assert exc.value.path == "trial.data_dir"
    _mnist_files(tmp_path / "good" / "MNIST" / "raw")  # torchvision's layout
    cfg = parse_config(_trials_raw(dataset="mnist", data_dir=str(tmp_path / "good")))
    assert cfg.trial["data_dir"] == str(tmp_path / "good")
    # where only the workers have the data, the file check (not the data_dir key) can be switched off
    assert parse_config(_trials_raw(dataset="mnist", data_dir=str(empty)), check_data=False).trial["dataset"] == "mnist"


def test_cli_refuses_a_missing_data_dir_with_exit_2_and_writes_nothing(tmp_path, capsys):
    import yaml

    from cluster.cli import main

    p = tmp_path / "mnist.yaml"
    p.write_text(yaml.safe_dump(_trials_raw(dataset="mnist")))
    d = tmp_path / "runs"
    assert main(["tune", str(p), "--dir", str(d), "--no-progress"]) == 2
    assert "trial.data_dir" in capsys.readouterr().err
    assert not d.exists()


def test_stop_on_convergence_default_and_legacy_journals():
    from cluster.config import LEGACY_DEFAULTS, config_differences, upgrade_stored

    cfg = parse_config(BASE)
    assert cfg.strategy.stop_on_convergence is False and cfg.raw["strategy"]["stop_on_convergence"] is False
    assert parse_config(_with("strategy.stop_on_convergence", True)).strategy.stop_on_convergence is True
    with pytest.raises(ConfigError) as exc:
        parse_config(_with("strategy.stop_on_convergence", "yes"))
    assert exc.value.path == "strategy.stop_on_convergence"
    # a journal written by 0.1.0 has no such key: it resumes as it ran (stopping on the criteria) ...
    old = copy.deepcopy(cfg.raw)
    del old["strategy"]["stop_on_convergence"]
    assert LEGACY_DEFAULTS[("strategy", "stop_on_convergence")] is True
    assert parse_config(upgrade_stored(old)).strategy.stop_on_convergence is True
    assert "stop_on_convergence" not in old["strategy"]  # upgrade_stored copies
    # ... and today's parse of the same YAML (default false) is not refused as a different config
    assert config_differences(old, cfg.raw) == []
    assert config_differences(old, parse_config(_with("budget.max_trials", 8)).raw) == ["budget"]
    assert config_differences(cfg.raw, parse_config(_with("strategy.stop_on_convergence", True)).raw) == ["strategy"]


def test_strategy_names_and_options_come_from_the_registry():
    from esopt import registry

    toy = registry.StrategyInfo(
        name="toy-es-for-config-test",
        target="esopt.cma:CMAES",
        options=(registry.OptionSpec("active", bool, False, "toy option"),),
    )
    registry.register(toy)
    try:
        cfg = parse_config(_with("strategy", {"name": toy.name, "options": {"active": True, "tolfun": 1e-9}}))
        assert cfg.strategy.name == toy.name and cfg.strategy.options == {"active": True, "tolfun": 1e-9}
        with pytest.raises(ConfigError, match="must be bool") as exc:
            parse_config(_with("strategy", {"name": toy.name, "options": {"active": "yes"}}))
        assert exc.value.path == "strategy.options"
    finally:
        del registry.STRATEGIES[toy.name]
    with pytest.raises(ConfigError, match="toy-es-for-config-test") as exc:
        parse_config(_with("strategy.name", toy.name))
    assert exc.value.path == "strategy.name"
    with pytest.raises(ConfigError, match="unknown option 'm'") as exc:  # lmmaes's option is not cmaes's
        parse_config(_with("strategy.options", {"m": 4}))
    assert exc.value.path == "strategy.options"


def test_log_is_an_alias_of_log10_and_errors_show_plain_numbers():
    cfg = parse_config(_with("space.lr", {"lower": 1e-4, "upper": 0.1, "scale": "log"}))
    assert cfg.space.params[0].scale == "log10" and cfg.raw["space"]["lr"]["scale"] == "log10"
    with pytest.raises(ConfigError) as exc:
        parse_config(_with("space.lr", {"lower": np.float64(1.0), "upper": np.float64(0.5)}))
    assert exc.value.path == "space.lr.lower" and "np.float64" not in str(exc.value)


# ------------------------------------------------------------------------------- mixed spaces (issue 15)
OPT = {"choices": ["adamw", "sgdw", "radam", "nadam"]}


def _mixed(**space):
    return {**BASE, "space": {"lr": BASE["space"]["lr"], **space}}


def test_categorical_defaults_to_the_mixed_strategy_and_round_trips():
    cfg = parse_config(_mixed(opt=OPT, k=BASE["space"]["k"]))
    assert cfg.strategy.name == "catcmawm" and cfg.space.mixed
    assert cfg.space.categories == {1: 4} and cfg.space.integers == [2]
    assert cfg.raw["strategy"]["name"] == "catcmawm" and cfg.raw["space"]["opt"] == OPT
    assert parse_config(cfg.raw) == cfg
    # null is the same as leaving it out; naming it explicitly is the same config
    assert parse_config({**_mixed(opt=OPT, k=BASE["space"]["k"]), "strategy": {"name": None}}) == cfg
    assert parse_config({**_mixed(opt=OPT, k=BASE["space"]["k"]), "strategy": {"name": "catcmawm"}}) == cfg
    # a named continuous strategy keeps the unit cube for ints (today's rounding)
    named = parse_config({**BASE, "strategy": {"name": "cmaes"}})
    assert not named.space.mixed and named.space.bounds[1].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("name", ["cmaes", "sepcmaes", "lmmaes", "canonical"])
def test_a_categorical_with_a_continuous_strategy_names_the_ones_that_can(name):
    with pytest.raises(ConfigError) as e:
        parse_config({**_mixed(opt=OPT), "strategy": {"name": name}})
    assert e.value.path == "strategy.name"
    assert str(e.value).startswith(f"strategy.name: {name!r} cannot handle the categorical space.opt")
    assert "['catcmawm']" in str(e.value)


@pytest.mark.parametrize(
    "spec,path,message",
    [
        ({"choices": []}, "space.opt.choices", "must hold at least two values, got 0"),
        ({"choices": ["a"]}, "space.opt.choices", "must hold at least two values, got 1"),
        ({"choices": ["a", "b", "a"]}, "space.opt.choices", "has duplicates ['a']"),
        ({"choices": [1, 1.0]}, "space.opt.choices", "has duplicates [1.0]"),
        ({"choices": ["a", 1]}, "space.opt.choices", "must all be of one kind"),
        ({"choices": [True, 1]}, "space.opt.choices", "must all be of one kind"),
        ({"choices": [[1], [2]]}, "space.opt.choices", "must be strings, numbers, booleans or null"),
        ({"choices": [{"a": 1}, 2]}, "space.opt.choices", "must be strings, numbers, booleans or null"),
        ({"choices": [None, "a", 2]}, "space.opt.choices", "must all be of one kind"),
        ({"choices": [None, None]}, "space.opt.choices", "has duplicates [None]"),
        ({"choices": [float("inf"), 2]}, "space.opt.choices", "must be strings, numbers, booleans or null"),
        ({"choices": "adamw"}, "space.opt.choices", "must be a list of at least two values"),
        ({"choices": ["a", "b"], "lower": 0}, "space.opt.lower", "cannot be given together with choices"),
        ({"choices": ["a", "b"], "scale": "log10"}, "space.opt.scale", "cannot be given together with choices"),
        ({"choices": ["a", "b"], "type": "int"}, "space.opt.type", "cannot be given together with choices"),
        ({"choices": ["a", "b"], "init": "c"}, "space.opt.init", "'c' is not one of the choices ['a', 'b']"),
        ({"choices": [1, 2], "init": True}, "space.opt.init", "True is not one of the choices"),
    ],
)
def test_bad_choices_name_the_key_path(spec, path, message):
    with pytest.raises(ConfigError) as e:
        parse_config(_mixed(opt=spec))
    assert e.value.path == path and str(e.value).startswith(path + ":") and message in str(e.value)


def test_null_is_a_choice_beside_any_kind():
    """``depth: {choices: [null, 3, 5]}`` ("no limit" or a number), as Tune's ``choice([None, 3, 5])``."""
    cfg = parse_config(_mixed(depth={"choices": [None, 3, 5]}, act={"choices": ["relu", None]}))
    assert cfg.space.x0.tolist()[1:] == [0.0, 0.0]  # the first choice (init: null means "not given")
    assert cfg.space.decode([0.5, 0.0, 1.0])["depth"] is None and cfg.space.decode([0.5, 2.0, 1.0])["act"] is None
    for params in ({"lr": 0.01, "depth": None, "act": "relu"}, {"lr": 0.01, "depth": 5, "act": None}):
        assert cfg.space.decode(cfg.space.encode(params))["depth"] == params["depth"]
    assert parse_config(cfg.raw) == cfg  # the journal's JSON (null) parses back to the same space


def test_mixed_choices_of_numbers_and_booleans_are_accepted():
    cfg = parse_config(_mixed(w={"choices": [1, 2.5, 4]}, nesterov={"choices": [True, False], "init": False}))
    assert cfg.space.decode([0.5, 1.0, 1.0]) == {"lr": cfg.space.params[0].from_unit(0.5), "w": 2.5, "nesterov": False}
    assert cfg.space.x0.tolist()[1:] == [0.0, 1.0]  # the first choice, or init's index


def test_space_options_of_the_mixed_strategy_are_not_config_options():
    for key in ("integers", "categories"):
        with pytest.raises(ConfigError) as e:
            parse_config({**_mixed(opt=OPT), "strategy": {"options": {key: [1]}}})
        assert e.value.path == f"strategy.options.{key}" and "set by the campaign from the space" in str(e.value)


@pytest.mark.parametrize("restarts", ["ipop", "bipop"])
def test_restart_wrappers_wrap_the_mixed_strategy_with_the_spaces_variables(restarts):
    from cluster.campaign import Campaign

    cfg = parse_config({**_mixed(opt=OPT, k=BASE["space"]["k"]), "strategy": {"restarts": restarts}})
    assert cfg.strategy.name == "catcmawm" and cfg.strategy.restarts == restarts
    es = Campaign._new_strategy_of(cfg)
    assert es.name == restarts and es.method == "catcmawm"
    p = es.inner.params
    assert p.int_idx.tolist() == [2] and p.cat_idx.tolist() == [1] and p.K.tolist() == [4]
    assert p.stds.tolist() == cfg.space.stds.tolist() and p.stds[2] > 1  # sigma0 a fraction of the int's range
    X = es.ask()
    assert set(X[:, 1]) <= {0.0, 1.0, 2.0, 3.0} and np.array_equal(X[:, 2], np.round(X[:, 2]))


def test_max_restarts_goes_with_a_restart_scheme_and_the_default_round_trips():
    cfg = parse_config(_with("strategy", {"restarts": "ipop", "max_restarts": 3}))
    assert cfg.strategy.max_restarts == 3
    plain = parse_config(BASE)  # the default 9 is in every stored config, with restarts null
    assert plain.raw["strategy"]["max_restarts"] == 9 and parse_config(plain.raw) == plain
