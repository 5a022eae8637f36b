"""The fidelity: config section and budget.max_resource: defaults, the trials objective's max,
key-path errors, the objective's report parameter, and the CLI refusing bad input (exit 2, nothing written)."""

from __future__ import annotations

import pytest
import yaml

from cluster.cli import EXIT_CONFIG, main
from cluster.config import CampaignConfig, ConfigError, FidelityConfig, config_differences, load_config, parse_config

OBJECTIVES = """
def plain(params):
    return params["x"] ** 2

def reporting(params, report=None):
    for step in range(1, 5):
        if report is not None and report(step, params["x"] ** 2 + 1.0 / step) is False:
            break
    return params["x"] ** 2
"""

TRIALS = {
    "name": "fid",
    "objective": "trials:train_and_evaluate",
    "trial": {"epochs": 16, "device": "cpu"},
    "space": {"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}},
}


def _with(base: dict, **over) -> dict:
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    cfg.update(over)
    return cfg


@pytest.fixture
def folder(tmp_path):
    """A config folder with an objective module beside it (imported from the config's folder)."""
    (tmp_path / "fidobj.py").write_text(OBJECTIVES)
    return tmp_path


def _own(objective: str, **over) -> dict:
    return _with(
        {"name": "own", "objective": f"fidobj:{objective}", "space": {"x": {"lower": -1.0, "upper": 1.0}}}, **over
    )


def test_trials_objective_takes_max_from_trial_epochs_and_round_trips():
    cfg = parse_config(_with(TRIALS, fidelity={}))
    assert cfg.fidelity == FidelityConfig(resource="epochs", min=1, max=16, eta=3.0)
    assert cfg.fidelity.rungs == [1, 3, 9, 16]
    assert cfg.raw["fidelity"] == {"resource": "epochs", "min": 1, "max": 16, "eta": 3.0}
    assert parse_config(cfg.raw) == cfg
    assert parse_config(cfg.raw, check_objective=False) == cfg  # a journal's stored config: max already set
    same = parse_config(_with(TRIALS, fidelity={"max": 16, "eta": 2, "min": 2}))
    assert same.fidelity.rungs == [2, 4, 8, 16]
    default_epochs = parse_config(_with(TRIALS, trial={"device": "cpu"}, fidelity={"min": 2}))
    assert default_epochs.fidelity.max == 15  # trials.TrialSpec's default epochs


def test_window_round_trips_and_is_absent_from_the_raw_config_when_unset():
    cfg = parse_config(_with(TRIALS, fidelity={"min": 2, "window": 16}))
    assert cfg.fidelity.window == 16 and cfg.raw["fidelity"]["window"] == 16
    assert parse_config(cfg.raw) == cfg
    plain = parse_config(_with(TRIALS, fidelity={"min": 2}))
    assert plain.fidelity.window is None and "window" not in plain.raw["fidelity"]  # journals as before
    assert config_differences(plain.raw, cfg.raw) == ["fidelity"]  # resuming with another window is refused


def test_without_fidelity_the_raw_config_has_no_fidelity_key_and_old_journals_match():
    cfg = parse_config(TRIALS)
    assert cfg.fidelity is None and "fidelity" not in cfg.raw
    assert parse_config(_with(TRIALS, fidelity=None)) == cfg  # null is off
    assert config_differences(cfg.raw, cfg.raw) == []
    on = parse_config(_with(TRIALS, fidelity={}))
    assert config_differences(cfg.raw, on.raw) == ["fidelity"]  # resuming with fidelity added is refused
    assert CampaignConfig.__dataclass_fields__["fidelity"].default is None


def test_budget_max_resource_with_fidelity(folder):
    cfg = load_config(_write(folder, _own("reporting", fidelity={"max": 4}, budget={"max_resource": 40})))
    assert cfg.budget.max_resource == 40 and cfg.fidelity.rungs == [1, 3, 4]
    assert cfg.fidelity.resource == "epochs"


@pytest.mark.parametrize(
    "edit,path,words",
    [
        (dict(fidelity={"max": 15}), "fidelity.max", "must equal trial.epochs (16)"),
        (dict(fidelity={"min": 16}), "fidelity.min", "must be < fidelity.max (16"),
        (dict(fidelity={"min": 20}), "fidelity.min", "must be < fidelity.max"),
        (dict(fidelity={"eta": 1}), "fidelity.eta", "must be > 1"),
        (dict(fidelity={"eta": 0.5}), "fidelity.eta", "must be > 1"),
        (dict(fidelity={"min": 4, "eta": 1.5}), "fidelity.eta", "13.5, not an integer step"),
        (dict(fidelity={"min": 1.5}), "fidelity.min", "must be an integer"),
        (dict(fidelity={"min": 0}), "fidelity.min", "must be >= 1"),
        (dict(fidelity={"window": 0}), "fidelity.window", "must be >= 1"),
        (dict(fidelity={"window": 2.5}), "fidelity.window", "must be an integer"),
        (dict(fidelity={"resource": " "}), "fidelity.resource", "must name the step unit"),
        (dict(fidelity={"rungs": [1, 2]}), "fidelity.rungs", "unknown key; known keys of fidelity"),
        (dict(fidelity=[1, 16]), "fidelity", "must be a mapping"),
        (dict(budget={"max_resource": 100}), "budget.max_resource", "needs a fidelity: section"),
        (dict(budget={"max_resource": 8}, fidelity={}), "budget.max_resource", "must be >= fidelity.max (16 epochs)"),
        (dict(budget={"max_resource": 0}, fidelity={}), "budget.max_resource", "must be > 0"),
    ],
)
def test_bad_fidelity_input_names_the_key(edit, path, words):
    with pytest.raises(ConfigError) as e:
        parse_config(_with(TRIALS, **edit))
    assert e.value.path == path and words in str(e.value), str(e.value)


def test_other_objectives_need_max_and_the_report_parameter(folder):
    cfg = load_config(_write(folder, _own("reporting", fidelity={"max": 4, "eta": 2})))
    assert cfg.fidelity.rungs == [1, 2, 4]
    with pytest.raises(ConfigError) as e:
        load_config(_write(folder, _own("reporting", fidelity={"min": 1})))
    assert e.value.path == "fidelity.max" and "is required" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(_write(folder, _own("plain", fidelity={"max": 4})))
    assert e.value.path == "fidelity" and "takes no keyword parameter 'report'" in str(e.value)
    # without importing the objective (a journal's config read by esopt status) the check is skipped
    assert parse_config(_own("plain", fidelity={"max": 4}), check_objective=False).fidelity.max == 4


def _write(folder, cfg) -> str:
    p = folder / "config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return str(p)


@pytest.mark.parametrize(
    "cfg,path",
    [
        (_own("plain", fidelity={"max": 4}), "fidelity"),
        (_own("reporting", budget={"max_resource": 10}), "budget.max_resource"),
        (_own("reporting", fidelity={"min": 4, "max": 4}), "fidelity.min"),
        (_own("reporting", fidelity={"max": 4, "eta": 1.0}), "fidelity.eta"),
        (_own("reporting", fidelity={"min": 2, "max": 40, "eta": 1.25}), "fidelity.eta"),
        (_with(TRIALS, fidelity={"max": 8}), "fidelity.max"),
    ],
    ids=[
        "no-report-parameter",
        "max_resource-without-fidelity",
        "min>=max",
        "eta<=1",
        "non-integer-rung",
        "max!=epochs",
    ],
)
def test_cli_exits_2_naming_the_key_and_writes_nothing(folder, capsys, cfg, path):
    run_dir = folder / "run"
    assert main(["tune", _write(folder, cfg), "--dir", str(run_dir), "--no-progress"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("esopt: error: bad config: ") and f"{path}:" in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert not run_dir.exists()
    assert {p.name for p in folder.iterdir()} - {"__pycache__"} == {"fidobj.py", "config.yaml"}
