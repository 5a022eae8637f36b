"""Regression tests of an audit of ESSearcher as a drop-in for Ray Tune's own searchers.

Each test failed before its fix: a ``tune.sample_from`` in ``Tuner(param_space=...)`` ran
silently (Tune hands it to the searcher as a placeholder), a ``tune.choice`` of objects was
refused with a message about Tune's internal placeholders, ``num_samples=-1`` logged that
``num_samples=9223372036854775807 is not a multiple of popsize``, results of trial ids the
searcher never handed out moved ``max_t="auto"``'s full budget (and crashed a searcher without a
metric), a point without a value for every parameter was reported without saying which point,
and a numpy ``float32`` ``sigma0`` was refused as "not a positive finite float".
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from ray import tune  # noqa: E402

from cluster.tune import ESSearcher  # noqa: E402

SPACE = {"x": tune.uniform(0.0, 1.0), "n": tune.randint(1, 5)}


def objective(config):
    return {"loss": (config["x"] - 0.3) ** 2 + config["n"]}


class Adam:  # objects a Tune script may put in a tune.choice
    pass


class SGD:
    pass


def tuner(searcher, tmp, name, num_samples, param_space):
    return tune.Tuner(
        objective,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=searcher, metric="loss", mode="min", num_samples=num_samples, reuse_actors=True
        ),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp), verbose=0),
    )


# ------------------------------------------------------------------------------------------------
# on a real local Ray Tune
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra, name",
    [
        ({"y": tune.sample_from(lambda spec: spec.config.x * 2)}, "y"),
        ({"opt": {"layers": [3, tune.sample_from(lambda spec: 4)]}}, "opt/layers/1"),
    ],
)
def test_sample_from_in_the_tuners_param_space_is_refused_naming_it(ray_tune_local, tmp_path, extra, name):
    """tune.run replaces a sample_from by a placeholder tuple before the searcher sees the
    param_space; it used to pass through as a constant (Tune resolved it, the ES never searched
    it), although ESSearcher(space) refuses it and the README says it is refused."""
    searcher = ESSearcher(popsize=4, seed=0)
    with pytest.raises(ValueError, match=rf"param_space\['{name}'\] is a tune.sample_from: .* inside the trainable"):
        tuner(searcher, tmp_path, "sample_from", 4, {**SPACE, **extra}).fit()
    assert searcher.space is None  # nothing was set up
    assert not any(p.name.startswith("objective_") for p in (tmp_path / "sample_from").iterdir())  # no trial ran


def test_choice_of_objects_in_the_tuners_param_space_gets_a_message_that_says_what_to_do(ray_tune_local, tmp_path):
    """OptunaSearch takes tune.choice([Adam, SGD]) (Tune resolves the placeholders); ESSearcher
    cannot hold objects in a checkpoint, and said so with Tune's placeholders ('__ref_ph', hash)."""
    searcher = ESSearcher(popsize=4, seed=0)
    with pytest.raises(ValueError) as e:
        tuner(searcher, tmp_path, "objects", 4, {**SPACE, "opt": tune.choice([Adam, SGD])}).fit()
    message = str(e.value)
    assert message.startswith("param_space['opt']: tune.choice of objects")
    assert "tune.choice(['adam', 'sgd'])" in message and "inside the trainable" in message
    assert "__ref_ph" not in message


def test_num_samples_minus_one_logs_no_warning_about_a_multiple_of_popsize(ray_tune_local, tmp_path, caplog):
    """Tune turns num_samples=-1 into sys.maxsize; the searcher warned that
    'num_samples=9223372036854775807 is not a multiple of popsize=4'."""
    searcher = ESSearcher(popsize=4, seed=0, max_trials=8)  # max_trials ends the endless run
    with caplog.at_level(logging.WARNING, logger="cluster.tune"):
        results = tuner(searcher, tmp_path, "endless", -1, SPACE).fit()
    assert len(results) == 8 and results.num_errors == 0 and searcher.generation == 2
    assert not [r.getMessage() for r in caplog.records if "num_samples" in r.getMessage()]
    # a finite num_samples that is not a multiple of popsize still warns
    other = ESSearcher(popsize=4, seed=0)
    with caplog.at_level(logging.WARNING, logger="cluster.tune"):
        other.set_search_properties("loss", "min", SPACE, num_samples=6)
    assert any("num_samples=6 is not a multiple of popsize=4" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------------------
# unit level (the Searcher API as Tune calls it)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheduling", ["sync", "async"])
def test_results_of_trials_never_handed_out_change_nothing(scheduling):
    """on_trial_complete ignores trial ids it did not hand out, but read their result first: a
    stranger's training_iteration=100 became max_t="auto"'s full budget, so best_result turned None
    although two trials had run to the end (level 4)."""
    s = ESSearcher(SPACE, metric="loss", mode="min", popsize=2, seed=0, max_t="auto", scheduling=scheduling)
    for i in range(2):
        c = s.suggest(f"t{i}")
        s.on_trial_complete(f"t{i}", {"loss": objective(c)["loss"], "training_iteration": 4})
    best = s.best_result
    assert best is not None and best["level"] == 4.0 and s.generation == 1
    s.on_trial_complete("stranger", {"loss": -1.0, "training_iteration": 100})
    s.on_trial_complete("stranger2", None, error=True)
    assert s.best_result == best and s.generation == 1 and s.n_told == 2
    # a searcher without a metric yet ignores them too (it raised AttributeError on None.split)
    fresh = ESSearcher(SPACE, popsize=2, seed=0)
    fresh.on_trial_complete("stranger", {"loss": 0.0})
    assert fresh.completed_trial_ids == () and fresh.n_told == 0


def test_a_point_without_every_parameter_names_the_point_and_the_parameters():
    """OptunaSearch refuses such points too (validate_warmstart: 'Dim of point ... do not match');
    ESSearcher's message said 'config {...} has no value ...' without saying which point."""
    with pytest.raises(
        ValueError, match=r"points_to_evaluate\[1\] \{'x': 0.5\} has no value for parameter 'n'; .*\['x', 'n'\]"
    ):
        ESSearcher(SPACE, metric="loss", mode="min", points_to_evaluate=[{"x": 0.1, "n": 2}, {"x": 0.5}])
    s = ESSearcher(SPACE, metric="loss", mode="min", popsize=4, seed=0)
    with pytest.raises(ValueError, match=r"add_evaluated_point parameters \{'n': 2\} has no value for parameter 'x'"):
        s.add_evaluated_point({"n": 2}, 1.0)


def test_sigma0_may_be_a_numpy_float32():
    """np.float64 was taken (a float subclass) but np.float32 refused as 'not a positive finite
    float' (popsize and seed take numpy integers)."""
    s = ESSearcher(SPACE, metric="loss", mode="min", sigma0=np.float32(0.25), popsize=4, seed=0)
    ref = ESSearcher(SPACE, metric="loss", mode="min", sigma0=0.25, popsize=4, seed=0)
    assert s.strategy.sigma == pytest.approx(0.25)
    assert [s.suggest(str(i)) for i in range(4)] == [ref.suggest(str(i)) for i in range(4)]
    for bad in (np.float32(0.0), np.float32("inf"), np.bool_(True), True, "0.3"):
        with pytest.raises(ValueError, match="sigma0 must be a positive finite float"):
            ESSearcher(SPACE, sigma0=bad)


# ------------------------------------------------------------------------------------------------
# a second audit: ftarget with mode="max", the ends of a quantized grid, known results in async
# mode, numpy choices through the Tuner
# ------------------------------------------------------------------------------------------------
UNIT = {"x": tune.uniform(0.0, 1.0), "y": tune.uniform(0.0, 1.0)}


def run_generations(s, metric, n_generations, popsize=4):
    """Suggest and complete ``n_generations`` of ``popsize`` trials (metric = x / 2 + y / 2);
    returns what suggest gave, FINISHED included."""
    out = []
    for i in range(n_generations * popsize):
        c = s.suggest(f"t{i}")
        out.append(c)
        if c == ESSearcher.FINISHED:
            break
        s.on_trial_complete(f"t{i}", {metric: 0.5 * c["x"] + 0.5 * c["y"]})
    return out


@pytest.mark.parametrize("mode_at", ["constructor", "tuner"])
def test_ftarget_with_mode_max_is_read_in_the_metrics_own_sign(mode_at):
    """ftarget was passed to the strategy as given while the searcher minimizes -metric, so with
    mode="max" every accuracy 'reached' ftarget=0.9 and the search ended after one generation."""
    kw = {"metric": "acc", "mode": "max"} if mode_at == "constructor" else {}
    s = ESSearcher(UNIT, popsize=4, seed=0, ftarget=0.9, **kw)
    if mode_at == "tuner":  # Tune passes metric and mode after the searcher was built with its space
        assert s.set_search_properties("acc", "max", {})
    got = run_generations(s, "acc", 3)
    assert ESSearcher.FINISHED not in got and s.generation == 3 and s.stop_reason == {}
    # a target that the metric does reach ends the search
    easy = ESSearcher(UNIT, popsize=4, seed=0, ftarget=0.05, **kw)
    if mode_at == "tuner":
        easy.set_search_properties("acc", "max", {})
    got = run_generations(easy, "acc", 3)
    assert got[-1] == ESSearcher.FINISHED and "ftarget" in easy.stop_reason and easy.generation == 1
    assert easy.best_result["metric"] >= 0.05


def test_a_mode_that_flips_ftarget_after_the_search_started_is_refused_and_changes_nothing():
    s = ESSearcher(UNIT, metric="acc", mode="min", popsize=4, seed=0, ftarget=0.1)
    s.suggest("t0")
    with pytest.raises(ValueError, match="mode='max' arrives after the search started .* pass mode= to ESSearcher"):
        s.set_search_properties("acc", "max", {})
    assert s._mode == "min" and s.strategy.tolerances.ftarget == 0.1
    assert s.set_search_properties("acc", "min", {})  # the same mode is fine


def test_the_ends_of_a_quantized_grid_are_accepted_as_points():
    """decode hands out k * q, which can lie just above upper (0.30000000000000004 for
    quniform(0, 0.3, 0.1)), and so do Tune's own samples; both were refused as points."""
    sp = {"x": tune.quniform(0.0, 0.3, 0.1)}
    s = ESSearcher(sp, metric="loss", mode="min", popsize=4, seed=0, points_to_evaluate=[{"x": 0.1 * 3}])
    assert s.suggest("t0") == {"x": 0.1 * 3}
    sp7 = {"x": tune.quniform(0.0, 0.7, 0.1)}
    samples = sorted(set(sp7["x"].sample(size=2000, random_state=np.random.default_rng(0))))
    assert samples[-1] > 0.7  # Tune's grid end, 7 * 0.1
    s7 = ESSearcher(sp7, metric="loss", mode="min", popsize=4, seed=0)
    for v in samples:
        s7.add_evaluated_point({"x": v}, (v - 0.2) ** 2)
    s7.suggest("t0")  # the known results fill the first generations
    assert len(samples) == 8 and s7.n_told == 8
    for bad in (0.71, -0.01):
        with pytest.raises(ValueError, match=r"is not a number in"):
            s7.add_evaluated_point({"x": bad}, 1.0)


def test_async_tells_a_population_of_evaluated_rewards_before_the_first_suggestion():
    """the async path moved known results to the finished ones but told them only once a trial
    completed, so its first suggestions were those of a searcher without the warm start."""
    pts = [{"x": 0.9 + 0.01 * i, "y": 0.9} for i in range(4)]
    kw = {"metric": "loss", "mode": "min", "popsize": 4, "seed": 0, "scheduling": "async"}
    warm = ESSearcher(UNIT, points_to_evaluate=pts, evaluated_rewards=[0.0, 1.0, 2.0, 3.0], **kw)
    cold = ESSearcher(UNIT, **kw)
    first = warm.suggest("t0")
    assert warm.n_told == 4 and warm.generation == 1
    assert first != cold.suggest("t0")
    # the same as the synchronous searcher, which told them before its first suggestion
    sync = ESSearcher(
        UNIT, points_to_evaluate=pts, evaluated_rewards=[0.0, 1.0, 2.0, 3.0], **{**kw, "scheduling": "sync"}
    )
    assert sync.suggest("t0") == first and sync.n_told == 4


def test_numpy_choices_in_the_tuners_param_space_get_a_message_that_says_how_to_pass_them(ray_tune_local, tmp_path):
    """Tune hands numpy scalars in a tune.choice to the searcher as placeholders; the message
    spoke of 'objects (classes, functions, arrays...)' only."""
    space = {**SPACE, "bs": tune.choice(np.array([16, 32, 64]))}
    with pytest.raises(ValueError) as e:
        tuner(ESSearcher(popsize=4, seed=0), tmp_path, "numpy", 4, space).fit()
    message = str(e.value)
    assert message.startswith("param_space['bs']: tune.choice of objects") and "numpy scalars" in message
    assert "tune.choice(np.array([16, 32]).tolist())" in message
    # passed as Python numbers, the same choice runs
    results = tuner(
        ESSearcher(popsize=4, seed=0), tmp_path, "python", 4, {**SPACE, "bs": tune.choice([16, 32, 64])}
    ).fit()
    assert results.num_errors == 0 and {r.config["bs"] for r in results} <= {16, 32, 64}
