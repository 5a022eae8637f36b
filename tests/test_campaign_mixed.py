"""Campaigns on a mixed space (float + int + categorical) with the mixed strategy, on local Ray."""

from __future__ import annotations

import csv

import helpers_objectives as ho
import numpy as np
import pytest

from cluster import Campaign, Journal, parse_config
from cluster.report import write_report

CHOICES = ["adamw", "sgdw", "radam", "nadam"]
CONFIG = {
    "name": "mixed",
    "objective": "helpers_objectives:mixed_choice",
    "space": {
        "x": {"lower": -1.0, "upper": 1.0},
        "n": {"lower": 1, "upper": 8, "type": "int"},
        "opt": {"choices": CHOICES, "init": "adamw"},
    },
    "strategy": {"popsize": 8, "seed": 3, "sigma0": 0.3},  # no name: the mixed strategy
    "budget": {"max_generations": 12},
    "resources": {"num_cpus": 1},
}


@pytest.fixture(scope="module")
def ray_log(ray_local_factory, tmp_path_factory):
    """A private local Ray instance (2 CPUs); workers log every objective call to the yielded file."""
    log = tmp_path_factory.mktemp("log") / "calls.jsonl"
    ray_local_factory(env={ho.LOG_ENV: str(log)}, num_cpus=2)
    return log


class InterruptAt:
    """Progress object raising KeyboardInterrupt after the k-th finished trial of generation g."""

    def __init__(self, generation, done):
        self.at = (generation, done)

    def on_generation_start(self, generation, popsize):
        pass

    def on_trial_finished(self, generation, row, counts):
        if self.at == (generation, counts["done"]):
            raise KeyboardInterrupt

    def on_generation_end(self, generation, best):
        pass


def test_the_campaigns_strategy_gets_the_spaces_integer_ranges_as_stds():
    from cluster.config import ConfigError

    es = Campaign._new_strategy_of(parse_config(CONFIG))
    assert es.params.stds.tolist() == [1.0, 8.0, 1.0]  # n: 1..8, 8 integers; x: unit; opt: ignored
    assert np.diag(es.state.C).tolist() == [1.0, 64.0]  # the Gaussian part: x, n
    with pytest.raises(ConfigError, match="stds"):
        parse_config({**CONFIG, "strategy": {**CONFIG["strategy"], "options": {"stds": [1.0, 1.0, 1.0]}}})


def test_mixed_campaign_finds_the_category_and_journals_choices(ray_log, tmp_path):
    cfg = parse_config(CONFIG)
    assert cfg.strategy.name == "catcmawm" and cfg.space.mixed
    ray_log.write_text("")
    result = Campaign(cfg, tmp_path / "c").run()
    assert result.status == "done" and result.n_generations == 12
    assert result.best_params["opt"] == "radam" and result.best_params["n"] == 4
    assert result.best_objective < 0.01
    calls = ho.read_log(ray_log)
    assert len(calls) == result.n_trials == 96
    assert {type(c["params"]["opt"]) for c in calls} == {str} and {c["params"]["opt"] for c in calls} <= set(CHOICES)
    assert len({c["params"]["opt"] for c in calls}) >= 2  # more than the start category was sampled
    with Journal(tmp_path / "c", readonly=True) as j:
        stored = j.campaign_config()
        rows = j.trials()
    assert stored == cfg and stored.raw["space"]["opt"] == {"choices": CHOICES, "init": "adamw"}
    assert all(r["status"] == "done" for r in rows)
    for r in rows:
        x = np.array(r["x"])
        assert x[1] == round(x[1]) and 1 <= x[1] <= 8  # integer coordinate: the integer itself
        assert x[2] in (0.0, 1.0, 2.0, 3.0)  # categorical coordinate: the index
        assert stored.space.decode(x) == r["params"] and r["params"]["opt"] == CHOICES[int(x[2])]
        assert stored.space.encode(r["params"])[1:].tolist() == x[1:].tolist()
    # trials.csv names the categories
    files = write_report(tmp_path / "c", tmp_path / "rep")
    with open(files["trials.csv"]) as fh:
        table = list(csv.DictReader(fh))
    assert [t["opt"] for t in table] == [r["params"]["opt"] for r in rows]


def test_mixed_ctrl_c_then_resume_equals_uninterrupted(ray_log, tmp_path):
    # synchronous: the interrupted-and-resumed journal equals the uninterrupted one trial for trial
    cfg = parse_config({**CONFIG, "budget": {"max_generations": 5}, "scheduler": {"mode": "sync"}})
    full = Campaign(cfg, tmp_path / "full").run()
    interrupted = Campaign(cfg, tmp_path / "int").run(InterruptAt(3, 3))
    assert interrupted.status == "interrupted"
    with Journal(tmp_path / "int", readonly=True) as j:
        info = j.campaign_info()
    assert info["n_generations"] == 2 and info["open_generation"] == 3
    resumed = Campaign.resume(tmp_path / "int").run()
    assert resumed.status == "done"
    assert resumed.best_objective == full.best_objective and resumed.best_params == full.best_params
    with Journal(tmp_path / "int", readonly=True) as a, Journal(tmp_path / "full", readonly=True) as b:
        ta, tb = a.trials(), b.trials()
        assert [(t["x"], t["params"], t["objective"]) for t in ta] == [
            (t["x"], t["params"], t["objective"]) for t in tb
        ]
        assert [g["mean"] for g in a.generations()] == [g["mean"] for g in b.generations()]


def test_mixed_campaign_restarts_after_convergence_in_the_space(ray_log, tmp_path):
    # a flat objective: the strategy's criteria fire at once; the campaign restarts it from its mean
    # (clipped into the space's bounds) with the space's integers and categories, up to the budget
    from cluster.campaign import restarts

    cfg = parse_config({**CONFIG, "objective": "helpers_objectives:flat", "budget": {"max_generations": 4}})
    result = Campaign(cfg, tmp_path / "c").run()
    assert result.status == "done" and result.n_generations == 4 and result.stop["max_generations"] == 4
    with Journal(tmp_path / "c", readonly=True) as j:
        assert len(restarts(j)) >= 1
        for r in j.trials():
            x = np.array(r["x"])
            assert x[1] == round(x[1]) and 1 <= x[1] <= 8 and x[2] in (0.0, 1.0, 2.0, 3.0)
            assert r["params"]["opt"] in CHOICES


def test_mixed_campaign_with_ipop_restarts_resumes_equal_to_uninterrupted(ray_log, tmp_path):
    # strategy.restarts around the mixed strategy: the wrapper restarts on the flat objective with
    # a doubled population and the space's variables; a Ctrl-C in a restarted run resumes exactly
    cfg = parse_config(
        {
            **CONFIG,
            "objective": "helpers_objectives:flat",
            "strategy": {**CONFIG["strategy"], "popsize": 4, "restarts": "ipop", "max_restarts": 2},
            "budget": {"max_generations": 5},
            "scheduler": {"mode": "sync"},
        }
    )
    full = Campaign(cfg, tmp_path / "full").run()
    assert full.status == "done"
    interrupted = Campaign(cfg, tmp_path / "int").run(InterruptAt(4, 2))
    assert interrupted.status == "interrupted"
    assert Campaign.resume(tmp_path / "int").run().status == "done"
    with Journal(tmp_path / "int", readonly=True) as a, Journal(tmp_path / "full", readonly=True) as b:
        sizes = [g["popsize"] for g in b.generations()]
        assert sizes[0] == 4 and max(sizes) >= 8  # the wrapper restarted with a larger population
        assert [g["popsize"] for g in a.generations()] == sizes
        ta, tb = a.trials(), b.trials()
        assert [(t["x"], t["params"]) for t in ta] == [(t["x"], t["params"]) for t in tb]
        for r in tb:
            x = np.array(r["x"])
            assert x[1] == round(x[1]) and 1 <= x[1] <= 8 and x[2] in (0.0, 1.0, 2.0, 3.0)
