"""Campaigns with ``strategy.surrogate: lq`` (lq-CMA-ES pre-screening) on local Ray: rounds as
journal generations, fewer trials than plain CMA-ES to the same quality, exact resume, the
config's refusals."""

from __future__ import annotations

import numpy as np
import pytest

from cluster import Campaign, Journal, parse_config
from cluster.config import ConfigError

CONFIG = {
    "name": "lq",
    "objective": "helpers_objectives:sphere",
    "space": {f"x{i}": {"lower": -1.0, "upper": 1.0} for i in range(4)},
    "strategy": {"popsize": 8, "seed": 1, "sigma0": 0.3, "surrogate": "lq"},
    "budget": {"max_trials": 60},
    "resources": {"num_cpus": 0.5},
    "scheduler": {"mode": "sync"},
}


def _rows(path):
    with Journal(path, readonly=True) as j:
        return j.trials(), j.generations()


def test_a_surrogate_campaign_journals_rounds_and_beats_plain_cmaes(ray_local, tmp_path, capsys):
    cfg = parse_config(CONFIG)
    res = Campaign(cfg, tmp_path / "lq").run()
    plain = Campaign(parse_config({**CONFIG, "strategy": {**CONFIG["strategy"], "surrogate": None}}), tmp_path / "p")
    ref = plain.run()
    assert res.status == ref.status == "done"
    trials, gens = _rows(tmp_path / "lq")
    sizes = [g["popsize"] for g in gens]
    assert sum(sizes) == len(trials) >= 60 and max(sizes) <= 8
    assert min(sizes) < 8  # rounds smaller than a generation: the model ranked the rest
    assert res.best_objective < ref.best_objective / 100, (res.best_objective, ref.best_objective)
    from cluster.cli import main

    assert main(["status", str(tmp_path / "lq")]) == 0
    status = capsys.readouterr().out
    assert "strategy cmaes (popsize 8, seed 1, surrogate lq)" in status
    assert f"generations: {len(gens)} asked, {len(gens)} told" in status


def test_a_killed_surrogate_campaign_resumes_equal_to_the_uninterrupted_one(ray_local, tmp_path):
    from test_campaign_mixed import InterruptAt

    cfg = parse_config({**CONFIG, "budget": {"max_trials": 30}})
    Campaign(cfg, tmp_path / "full").run()
    _, gens = _rows(tmp_path / "full")
    big = next(g["generation"] for g in gens if g["popsize"] >= 2)  # a round of several trials
    interrupted = Campaign(cfg, tmp_path / "int").run(InterruptAt(big, 1))
    assert interrupted.status == "interrupted"
    assert Campaign.resume(tmp_path / "int").run().status == "done"
    (ta, ga), (tb, gb) = _rows(tmp_path / "int"), _rows(tmp_path / "full")
    assert [(t["x"], t["objective"]) for t in ta] == [(t["x"], t["objective"]) for t in tb]
    assert [g["popsize"] for g in ga] == [g["popsize"] for g in gb]
    assert [g["mean"] for g in ga] == [g["mean"] for g in gb]


def test_failed_rounds_end_the_campaign_only_after_a_generations_worth(ray_local, tmp_path):
    cfg = parse_config({**CONFIG, "objective": "helpers_objectives:always_raising", "failures": {"max_retries": 0}})
    res = Campaign(cfg, tmp_path / "c").run()
    assert res.status == "failed"
    trials, gens = _rows(tmp_path / "c")
    assert len(trials) >= 8 and all(t["status"] == "failed" for t in trials)
    assert len(gens) >= 2  # the first round (5 trials) alone did not end it


@pytest.mark.parametrize(
    "change, message",
    [
        ({"scheduler": {"mode": "async"}}, "strategy.surrogate: needs scheduler.mode: sync"),
        ({"strategy": {**CONFIG["strategy"], "surrogate": "gp"}}, "strategy.surrogate"),
        (
            {"fidelity": {"resource": "epochs", "min": 1, "max": 4}, "objective": "helpers_objectives:curve_sphere"},
            "strategy.surrogate: cannot be combined with fidelity",
        ),
    ],
)
def test_the_config_refuses_what_the_surrogate_cannot_do(change, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config({**CONFIG, **change})


def test_the_strategy_of_a_surrogate_config_is_prescreened():
    import esopt

    es = Campaign._new_strategy_of(parse_config(CONFIG))
    assert isinstance(es, esopt.LQSurrogate) and isinstance(es.inner, esopt.CMAES)
    X = es.ask()
    assert X.shape == (5, 4) and np.all((X >= 0) & (X <= 1))  # the first round: 1 + 3 / (3/4) rows
