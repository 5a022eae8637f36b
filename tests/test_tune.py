"""Tests of cluster.tune.ESSearcher: unit level (no Tune run) and on a real local Ray Tune."""

from __future__ import annotations

import math
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
import ray.cloudpickle  # noqa: E402
import ray.train.constants  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.search import ConcurrencyLimiter, Searcher  # noqa: E402

import esopt  # noqa: E402
from cluster.penalty import penalize  # noqa: E402
from cluster.space import Param, Space  # noqa: E402
from cluster.tune import ESSearcher, convert_search_space  # noqa: E402

PARAM_SPACE = {"x": tune.uniform(-1.0, 2.0), "lr": tune.loguniform(1e-4, 1e-1)}
OPT_X, OPT_LOG_LR = 1.2, -3.5  # minimum of `loss`, inside the space (unit coords 0.73, 0.17)
POPSIZE, GENERATIONS, SEED = 6, 6, 0


def loss(config) -> float:
    return (config["x"] - OPT_X) ** 2 + (math.log10(config["lr"]) - OPT_LOG_LR) ** 2


def objective(config):
    return {"loss": loss(config)}


def neg_objective(config):
    return {"score": -loss(config)}


def key(config) -> tuple:
    return (config["x"], config["lr"])


# ------------------------------------------------------------------------------------------------
# unit level: space conversion
# ------------------------------------------------------------------------------------------------
def test_convert_search_space_bounds_scales_and_types():
    ts = convert_search_space(
        {
            "lr": tune.loguniform(1e-4, 1e-1),
            "n": tune.randint(2, 6),
            "w": tune.uniform(-1, 1),
            "q": tune.qloguniform(1e-3, 1.0, 5e-4),
            "k": tune.lograndint(1, 100),
            "opt": {"eps": tune.uniform(0, 1), "name": "adam"},
            "const": [1, 2],
        }
    )
    by = {p.name: p for p in ts.space.params}
    assert by["lr"] == Param("lr", 1e-4, 1e-1, scale="log10")
    assert by["n"] == Param("n", 2, 5, type="int")  # randint excludes its upper bound
    assert by["w"] == Param("w", -1.0, 1.0)
    assert by["k"] == Param("k", 1, 99, scale="log10", type="int")
    assert ts.paths["opt/eps"] == ("opt", "eps")
    lo = ts.to_config(ts.decode(np.zeros(ts.space.dim)))
    hi = ts.to_config(ts.decode(np.ones(ts.space.dim)))
    assert (lo["n"], hi["n"], lo["k"], hi["k"]) == (2, 5, 1, 99)
    assert lo["lr"] == pytest.approx(1e-4) and hi["lr"] == pytest.approx(1e-1)
    assert lo["opt"] == {"eps": 0.0, "name": "adam"} and lo["const"] == [1, 2]  # constants pass through
    rng = np.random.default_rng(0)
    for u in rng.uniform(0, 1, (200, ts.space.dim)):
        c = ts.to_config(ts.decode(u))
        assert isinstance(c["n"], int) and isinstance(c["k"], int)
        assert c["q"] == pytest.approx(round(c["q"] / 5e-4) * 5e-4, abs=1e-15)  # a multiple of q
        assert 1e-3 - 1e-15 <= c["q"] <= 1.0 + 1e-15


@pytest.mark.parametrize(
    "name, domain",
    [
        ("act", tune.choice(["relu", "tanh"])),
        ("noise", tune.randn(0, 1)),
        ("steps", tune.qrandint(1, 10, 2)),
        ("f", tune.sample_from(lambda c: 1)),
        ("grid", tune.grid_search([1, 2])),
        ("single", tune.randint(3, 4)),
    ],
)
def test_unsupported_domains_raise_naming_the_parameter(name, domain):
    with pytest.raises(ValueError, match=re.escape(name)):
        convert_search_space({"x": tune.uniform(0, 1), name: domain})
    with pytest.raises(ValueError, match="blocks/0"):
        convert_search_space({"blocks": [tune.uniform(0, 1)]})


# ------------------------------------------------------------------------------------------------
# unit level: suggest / on_trial_complete / tell
# ------------------------------------------------------------------------------------------------
def make(**kw):
    args = dict(metric="loss", mode="min", popsize=4, seed=3)
    args.update(kw)
    return ESSearcher(PARAM_SPACE, **args)


def twin(searcher_kw=None):
    """The strategy ESSearcher builds, driven by hand."""
    kw = dict(popsize=4, seed=3)
    kw.update(searcher_kw or {})
    space = convert_search_space(PARAM_SPACE).space
    return esopt.make_strategy("cmaes", space.x0, 0.3, bounds=space.bounds, **kw)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_generation_is_told_once_complete_with_penalty_and_max_flipped(mode):
    s = make(mode=mode, metric="m")
    es = twin()
    X = es.ask()
    configs = [s.suggest(f"t{i}") for i in range(4)]
    assert s.suggest("t4") is None  # generation handed out, waiting for results
    space = convert_search_space(PARAM_SPACE)
    assert configs == [space.to_config(space.decode(x)) for x in X]
    # results arrive out of order; one errors, one lacks the metric, one is NaN
    s.on_trial_complete("t2", {"m": 2.5})
    s.on_trial_complete("t0", None, error=True)
    s.on_trial_complete("t3", {"other": 1.0})
    assert s.generation == 0 and s.suggest("t5") is None
    s.on_trial_complete("t1", {"m": float("nan")})
    assert s.generation == 1
    metric = np.array([np.nan, np.nan, 2.5, np.nan])
    f = penalize(-metric if mode == "max" else metric, [True, True, False, True])
    es.tell(X, f)
    assert s.suggest("t6") == space.to_config(space.decode(es.ask()[0]))  # same state as the twin


def test_unknown_trial_ids_are_ignored_and_concurrency_is_limited():
    s = make()
    assert s.set_max_concurrency(2) is True
    a, b = s.suggest("a"), s.suggest("b")
    assert a and b and s.suggest("c") is None  # two live trials
    s.on_trial_complete("someone-else", {"loss": -1e9})
    s.on_trial_complete("a", {"loss": 1.0})
    assert s.suggest("c") is not None and s.suggest("d") is None


def test_finished_after_max_trials_and_after_stop():
    s = make(max_trials=6)
    ids = [f"t{i}" for i in range(4)]
    for i in ids:
        s.suggest(i)
    for i in ids:
        s.on_trial_complete(i, {"loss": 1.0})
    assert s.suggest("t4") is not None and s.suggest("t5") is not None
    assert s.suggest("t6") == Searcher.FINISHED
    s = make(tolerances={"maxiter": 2})
    for g in range(2):
        ids = [f"g{g}t{i}" for i in range(4)]
        assert all(s.suggest(i) is not None for i in ids)
        for j, i in enumerate(ids):
            s.on_trial_complete(i, {"loss": float(j)})
    assert s.stop_reason == {"maxiter": 2.0}
    assert s.suggest("x") == Searcher.FINISHED


def test_points_to_evaluate_come_first_exactly():
    pts = [{"x": 1.5, "lr": 1e-3}, {"x": -0.5, "lr": 0.05}]
    s = make(points_to_evaluate=pts)
    assert [s.suggest("a"), s.suggest("b")] == pts
    with pytest.raises(ValueError, match="lr"):
        make(points_to_evaluate=[{"x": 0.0, "lr": 1.0}])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="strategy"):
        ESSearcher(PARAM_SPACE, "nope")
    with pytest.raises(ValueError, match="mode"):
        ESSearcher(PARAM_SPACE, mode="maximize")
    for kw in ({"popsize": 1}, {"seed": -1}, {"sigma0": 0.0}, {"max_trials": 0}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            ESSearcher(PARAM_SPACE, **kw)
    with pytest.raises(TypeError, match="space"):
        ESSearcher([1, 2])
    with pytest.raises(ValueError, match="bounds"):
        ESSearcher(PARAM_SPACE, bounds=(0, 1))
    with pytest.raises(TypeError, match="active"):  # strategy options reach the strategy's checks
        ESSearcher(PARAM_SPACE, active="yes")
    with pytest.raises(RuntimeError, match="metric"):
        ESSearcher(PARAM_SPACE).suggest("t")
    with pytest.raises(RuntimeError, match="search space"):
        ESSearcher(metric="loss", mode="min").suggest("t")


def test_set_search_properties_takes_space_metric_mode():
    s = ESSearcher(popsize=4, seed=3)
    assert s.set_search_properties("loss", "max", {"a": 1, **PARAM_SPACE}) is True
    assert (s.metric, s.mode, s.space) == ("loss", "max", convert_search_space(PARAM_SPACE).space)
    assert s.suggest("t")["a"] == 1
    other = {"x": tune.uniform(0, 1)}
    assert s.set_search_properties(None, None, other) is False  # Tune then raises its own error


def test_cluster_space_is_accepted():
    space = Space({"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}, "n": {"lower": 1, "upper": 4, "type": "int"}})
    s = ESSearcher(space, metric="loss", mode="min", popsize=3, seed=0)
    c = s.suggest("t")
    assert set(c) == {"lr", "n"} and isinstance(c["n"], int) and 1e-4 <= c["lr"] <= 0.1


# ------------------------------------------------------------------------------------------------
# unit level: checkpoints
# ------------------------------------------------------------------------------------------------
def drive(s, ids, values):
    configs = [s.suggest(i) for i in ids]
    for i, c, v in zip(ids, configs, values):
        if v is not None:
            s.on_trial_complete(i, {"loss": v(c)} if callable(v) else v)
    return configs


def test_save_restore_mid_generation_gives_the_same_suggestions(tmp_path):
    a = make()
    drive(a, ["a0", "a1", "a2", "a3"], [loss] * 4)
    drive(a, ["b0", "b1", "b2"], [loss, {"nope": 1}, None])  # b2 still running, b3 not handed out
    assert a.pending_trial_ids == ("b2",)
    path = tmp_path / "searcher-state-x.pkl"  # Tune's file name; the content is an npz, not a pickle
    a.save(path)
    with np.load(path, allow_pickle=False) as z:  # readable without unpickling
        assert z["tune.X"].shape == (4, 2)
    restored = [make(seed=99), ESSearcher(metric="loss", mode="min")]  # state and space from the file
    for b in restored:
        b.restore(path)
    via_state = make(seed=7)
    via_state.set_state(a.get_state())
    copies = [a, *restored, via_state]
    seqs = []
    for s in copies:
        seq = [s.suggest("b3")]
        s.on_trial_complete("b2", {"loss": 0.5})
        s.on_trial_complete("b3", None, error=True)
        seq += [s.suggest(f"c{i}") for i in range(4)]
        seqs.append(seq)
        assert s.generation == 2 and None not in seq
    assert all(seq == seqs[0] for seq in seqs)


def test_restore_rejects_another_space_and_leaves_state(tmp_path):
    a = make()
    drive(a, ["a0", "a1"], [loss, loss])
    a.save(tmp_path / "ck")
    b = ESSearcher({"x": tune.uniform(0, 1)}, metric="loss", mode="min", popsize=4, seed=3)
    before = b.get_state()
    with pytest.raises(ValueError, match="space"):
        b.restore(tmp_path / "ck")
    with pytest.raises(ValueError, match="mode"):
        make(mode="max").restore(tmp_path / "ck")
    assert b.get_state() == before
    (tmp_path / "bad").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt"):
        b.restore(tmp_path / "bad")


# ------------------------------------------------------------------------------------------------
# real Ray Tune
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    # Ray workers cannot import this test module (tests/ is not on their path): ship its functions by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def fit(trainable, searcher, tmp, name, num_samples, metric="loss", mode="min", callbacks=None, param_space=None):
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=searcher, metric=metric, mode=mode, num_samples=num_samples, reuse_actors=True
        ),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp), verbose=0, callbacks=callbacks),
    )
    return tuner.fit()


@pytest.fixture(scope="module")
def reference(ray_local, tmp_path_factory):
    """Uninterrupted mode="min" run: the space comes through Tune's param_space."""
    searcher = ESSearcher(popsize=POPSIZE, seed=SEED)
    results = fit(
        objective, searcher, tmp_path_factory.mktemp("ref"), "ref", POPSIZE * GENERATIONS, param_space=PARAM_SPACE
    )
    return searcher, results


def test_tuner_finds_the_minimum(reference):
    searcher, results = reference
    assert len(results) == POPSIZE * GENERATIONS and results.num_errors == 0
    assert searcher.generation == GENERATIONS
    best = results.get_best_result().config
    start = loss({"x": 0.5, "lr": 10**-2.5})  # the centre of the space, where the ES starts: 1.49
    assert loss(best) < 0.1 < start
    assert abs(best["x"] - OPT_X) < 0.3 and abs(math.log10(best["lr"]) - OPT_LOG_LR) < 0.3


def test_mode_max_on_the_negated_function_gives_the_same_points(reference, tmp_path):
    searcher = ESSearcher(PARAM_SPACE, metric="score", mode="max", popsize=POPSIZE, seed=SEED)
    results = fit(neg_objective, searcher, tmp_path, "max", POPSIZE * GENERATIONS, metric="score", mode="max")
    assert sorted(key(r.config) for r in results) == sorted(key(r.config) for r in reference[1])
    assert results.get_best_result().metrics["score"] == -reference[1].get_best_result().metrics["loss"]


class InterruptAfter(tune.Callback):
    """Interrupts the experiment (SIGUSR1, Tune's Ctrl-C path) once ``n`` trials completed,
    the first time only (a marker file survives the pickled copy that Tuner.restore loads)."""

    def __init__(self, n: int, marker: Path):
        self.n, self.marker, self.count = n, marker, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.count += 1
        if self.count == self.n and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGUSR1)


def test_interrupted_experiment_resumes_the_es_exactly(reference, tmp_path):
    searcher = ESSearcher(popsize=POPSIZE, seed=SEED)
    n_total = POPSIZE * GENERATIONS
    first = fit(
        objective,
        searcher,
        tmp_path,
        "interrupted",
        n_total,
        param_space=PARAM_SPACE,
        callbacks=[InterruptAfter(POPSIZE + 2, tmp_path / "interrupted.marker")],
    )
    done = [r for r in first if r.metrics and "loss" in r.metrics]
    assert (tmp_path / "interrupted.marker").exists() and len(done) < n_total
    # the searcher checkpoint Tune wrote holds generation 2 in progress, >= 2 of its results buffered
    saved = ESSearcher(metric="loss", mode="min")
    saved.restore(next((tmp_path / "interrupted").glob("searcher-state-*")))
    assert saved.generation == 1 and len(saved.completed_trial_ids) >= 2
    tuner = tune.Tuner.restore(str(tmp_path / "interrupted"), trainable=objective)
    results = tuner.fit()
    assert len(results) == n_total and results.num_errors == 0
    assert sorted(key(r.config) for r in results) == sorted(key(r.config) for r in reference[1])


def flaky(config):
    if config["lr"] > 0.02:
        raise RuntimeError("diverged")  # Tune marks the trial ERROR
    if config["x"] < 0.0:
        # (a result without the metric would abort the whole experiment in Tune's strict metric
        # checking, before any searcher sees it; the unit tests cover that case)
        return {"loss": float("nan")}
    return {"loss": loss(config)}


def test_erroring_trainable_does_not_stop_the_search(ray_local, tmp_path):
    searcher = ESSearcher(PARAM_SPACE, metric="loss", mode="min", popsize=4, seed=2)
    results = fit(flaky, searcher, tmp_path, "flaky", 12)
    assert len(results) == 12 and results.num_errors >= 1
    assert any(r.error is None and math.isnan(r.metrics["loss"]) for r in results)
    assert searcher.generation == 3  # every generation was told, errors included
    ok = [r.metrics["loss"] for r in results if r.error is None and "loss" in (r.metrics or {})]
    assert searcher.strategy.result.f == min(ok)  # penalties never count as the best


def test_max_trials_finishes_the_experiment(ray_local, tmp_path):
    searcher = ESSearcher(PARAM_SPACE, metric="loss", mode="min", popsize=4, seed=0, max_trials=8)
    results = fit(objective, ConcurrencyLimiter(searcher, max_concurrent=2), tmp_path, "budget", 100)
    assert len(results) == 8 and searcher.generation == 2


def test_readme_snippet_runs(ray_local, tmp_path, monkeypatch, capsys):
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "ESSearcher" in b]
    assert len(blocks) == 1, "README.md must hold exactly one python block with ESSearcher"
    code = blocks[0]
    assert "ESSearcher" in code and code.count("num_samples=64") == 1
    code = code.replace("num_samples=64", "num_samples=16")  # two generations of 8
    monkeypatch.setattr(ray.train.constants, "DEFAULT_STORAGE_PATH", str(tmp_path))
    ns = {"__name__": "docs_tune_snippet"}
    exec(compile(code, "README.md", "exec"), ns)
    results, searcher = ns["results"], ns["searcher"]
    assert len(results) == 16 and results.num_errors == 0 and searcher.generation == 2
    assert all(isinstance(r.config["layers"], int) and 1 <= r.config["layers"] <= 8 for r in results)
    assert str(results.get_best_result().config["x"]) in capsys.readouterr().out
    assert any(tmp_path.iterdir())  # results went to the patched default storage path


def test_ipop_restarts_grow_the_generation_and_finish():
    """With restarts="ipop" the searcher follows the wrapper's growing popsize and ends with FINISHED."""
    space = Space({"x": {"lower": -2, "upper": 2}, "y": {"lower": -2, "upper": 2}})
    searcher = ESSearcher(space, "cmaes", metric="loss", mode="min", popsize=4, seed=0, restarts="ipop", max_restarts=2)
    tid, sizes, suggestion = 0, [], None
    for _ in range(5000):
        batch = []
        while True:
            suggestion = searcher.suggest(str(tid))
            if suggestion is None or suggestion == Searcher.FINISHED:
                break
            batch.append((str(tid), suggestion))
            tid += 1
        if not batch:
            break
        sizes.append(len(batch))
        for trial_id, cfg in batch:
            searcher.on_trial_complete(trial_id, {"loss": (cfg["x"] - 0.5) ** 2 + (cfg["y"] + 0.3) ** 2})
    assert suggestion == Searcher.FINISHED
    assert sorted(set(sizes)) == [4, 8, 16]  # popsize doubled at each of the 2 restarts
    assert "maxrestarts" in searcher.stop_reason
    assert searcher.strategy.result.f < 1e-10
