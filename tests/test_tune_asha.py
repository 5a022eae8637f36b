"""ESSearcher with trials stopped early by a Tune scheduler (issue 14 item 4): ranked, not penalized."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("ray.tune")

from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402

from cluster.fidelity import lexicographic_fitness  # noqa: E402
from cluster.penalty import penalize  # noqa: E402
from cluster.tune import ESSearcher  # noqa: E402

SPACE = {"x": tune.uniform(-1.0, 2.0), "lr": tune.loguniform(1e-4, 1e-1)}
MAX_T, POPSIZE, GENERATIONS = 9, 6, 3


def loss(config) -> float:
    return (config["x"] - 1.2) ** 2 + (math.log10(config["lr"]) + 3.5) ** 2


def curve(config):
    """A learning curve: the final loss plus 1/epoch (better with every epoch, as training is)."""
    for epoch in range(1, MAX_T + 1):
        tune.report({"loss": loss(config) + 1.0 / epoch})


class Recorder(ESSearcher):
    """Keeps every tell's (values, levels, fitness told) (its own attribute)."""

    def __init__(self, *args, **kw):
        self.tells: list[tuple[list, list, np.ndarray]] = []
        super().__init__(*args, **kw)

    def _fitness(self, values, levels):
        f = super()._fitness(values, levels)
        self.tells.append((list(values), list(levels), f.copy()))
        return f


# ------------------------------------------------------------------------------------------------
# unit level
# ------------------------------------------------------------------------------------------------
def result(value, iteration):
    return {"loss": value, "training_iteration": iteration}


@pytest.mark.parametrize("scheduling", ["sync", "async"])
def test_stopped_trials_rank_below_every_trial_that_got_further(scheduling):
    s = Recorder(SPACE, metric="loss", mode="min", popsize=5, seed=0, max_t=9, scheduling=scheduling)
    configs = {f"t{i}": s.suggest(f"t{i}") for i in range(5)}
    # t1 was stopped at iteration 1 with the lowest value of all; t3 at 3; t4 failed
    outcomes = {"t0": result(0.5, 9), "t1": result(0.01, 1), "t2": result(0.2, 9), "t3": result(0.3, 3)}
    for tid, r in outcomes.items():
        s.on_trial_complete(tid, r)
    s.on_trial_complete("t4", error=True)
    assert s.n_told == 5 and len(s.tells) == 1
    values, levels, f = s.tells[0]
    by = dict(zip((v for v in values), f))
    assert by[0.2] == 0.2 and by[0.5] == 0.5  # full budget: their own values
    assert by[0.5] < by[0.3] < by[0.01]  # iteration 3 below 9, iteration 1 below 3, whatever the values
    assert np.isfinite(f).all()
    failed = values.index(None)
    assert f[failed] == f.max() and f[failed] > by[0.01]  # the failure ranks below the stopped trials
    assert np.array_equal(f, penalize(lexicographic_fitness([9 if v is None else v for v in levels], values)))
    best = s.best_result
    assert best["metric"] == 0.2 and best["trial_id"] == "t2" and best["level"] == 9.0  # not t1's 0.01
    assert best["config"] == configs["t2"]


def test_without_max_t_every_trial_is_told_its_last_value():
    s = Recorder(SPACE, metric="loss", mode="min", popsize=4, seed=0)
    for i in range(4):
        s.suggest(f"t{i}")
    for i, (v, it) in enumerate([(0.5, 9), (0.01, 1), (0.2, 9), (0.3, 3)]):
        s.on_trial_complete(f"t{i}", result(v, it))
    values, levels, f = s.tells[0]
    assert levels == [None] * 4 and list(f) == values  # as before max_t existed
    assert s.best_result["metric"] == 0.01 and s.best_result["level"] is None  # every trial counts


def test_mode_max_flips_the_value_not_the_level():
    s = Recorder(SPACE, metric="acc", mode="max", popsize=3, seed=0, max_t=4)
    for i in range(3):
        s.suggest(f"t{i}")
    for i, (v, it) in enumerate([(0.9, 4), (0.99, 2), (0.7, 4)]):
        s.on_trial_complete(f"t{i}", {"acc": v, "training_iteration": it})
    values, _, f = s.tells[0]
    by = dict(zip(values, f))
    assert by[0.9] == -0.9 and by[0.7] == -0.7 and by[0.99] > by[0.7]  # stopped: below, though its acc is best
    assert s.best_result["metric"] == 0.9


def test_auto_takes_the_largest_level_seen_and_a_custom_time_attr():
    s = Recorder(SPACE, metric="loss", mode="min", popsize=3, seed=0, max_t="auto", time_attr="epochs")
    for i in range(3):
        s.suggest(f"t{i}")
    s.on_trial_complete("t0", {"loss": 0.1, "epochs": 2})
    assert s.best_result["metric"] == 0.1  # the largest level so far
    s.on_trial_complete("t1", {"loss": 0.4, "epochs": 5})
    assert s.best_result["metric"] == 0.4 and s.best_result["level"] == 5.0  # t0 no longer counts
    s.on_trial_complete("t2", {"loss": 0.3, "epochs": 5})
    values, levels, f = s.tells[0]
    assert levels == [2.0, 5.0, 5.0] and f[0] > max(f[1:]) and list(f[1:]) == [0.4, 0.3]
    assert s.best_result["trial_id"] == "t2"


def test_levels_and_best_survive_save_restore(tmp_path):
    a = ESSearcher(SPACE, metric="loss", mode="min", popsize=3, seed=0, max_t=9)
    out = [a.suggest(f"t{i}") for i in range(3)]
    a.on_trial_complete("t0", result(0.01, 1))
    a.on_trial_complete("t1", result(0.5, 9))
    a.save(tmp_path / "ck")
    b = ESSearcher(SPACE, metric="loss", mode="min", popsize=3, seed=0, max_t=9)
    b.restore(tmp_path / "ck")
    for s in (a, b):
        s.on_trial_complete("t2", result(0.2, 9))
    assert np.array_equal(a.strategy.mean, b.strategy.mean) and a.strategy.sigma == b.strategy.sigma
    assert a.best_result == b.best_result and b.best_result["metric"] == 0.2 and len(out) == 3
    assert [a.suggest("n0"), a.suggest("n1")] == [b.suggest("n0"), b.suggest("n1")]


@pytest.mark.parametrize("kw", [{"max_t": 0}, {"max_t": "all"}, {"max_t": True}, {"max_t": 2.5}, {"time_attr": ""}])
def test_bad_fidelity_arguments_raise(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        ESSearcher(SPACE, metric="loss", mode="min", **kw)


# ------------------------------------------------------------------------------------------------
# a real Tune run with ASHAScheduler
# ------------------------------------------------------------------------------------------------


def test_asha_stopped_trials_are_told_ranked_not_penalized(ray_tune_local, tmp_path):
    searcher = Recorder(popsize=POPSIZE, seed=1, max_t=MAX_T)
    scheduler = ASHAScheduler(max_t=MAX_T, grace_period=1, reduction_factor=3)
    results = tune.Tuner(
        curve,
        param_space=SPACE,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            metric="loss",
            mode="min",
            num_samples=POPSIZE * GENERATIONS,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name="asha", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert len(results) == POPSIZE * GENERATIONS and results.num_errors == 0
    reached = [r.metrics["training_iteration"] for r in results]
    assert min(reached) < MAX_T and max(reached) == MAX_T  # ASHA stopped some trials, others ran to the end
    assert searcher.generation == GENERATIONS and searcher.n_told == POPSIZE * GENERATIONS  # all told
    n_stopped = 0
    for values, levels, f in searcher.tells:
        assert all(v is not None for v in values)  # no trial counted as failed
        full = [fi for fi, lv in zip(f, levels) if lv == MAX_T]
        stopped = [(fi, lv, v) for fi, lv, v in zip(f, levels, values) if lv < MAX_T]
        n_stopped += len(stopped)
        assert [fi for fi, lv in zip(f, levels) if lv == MAX_T] == [v for v, lv in zip(values, levels) if lv == MAX_T]
        for fi, lv, _ in stopped:
            assert all(fi > g for g in full)  # below every full-budget trial of its tell
            assert all(fi > g for g, l2, _ in stopped if l2 > lv)  # and below those stopped later
        assert np.array_equal(f, lexicographic_fitness(levels, values))  # never the failure penalty
    assert n_stopped == sum(r < MAX_T for r in reached) > 0
    full_results = [r for r in results if r.metrics["training_iteration"] == MAX_T]
    best = min(full_results, key=lambda r: r.metrics["loss"])
    assert searcher.best_result["metric"] == best.metrics["loss"] and searcher.best_result["level"] == MAX_T
    assert searcher.best_result["config"] == {k: best.config[k] for k in SPACE}
