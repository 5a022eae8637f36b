"""Tests of cluster.tune.ESSearcher: unit level (no Tune run) and on a real local Ray Tune."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
import ray.cloudpickle  # noqa: E402
import ray.train.constants  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.result import DEFAULT_METRIC  # noqa: E402
from ray.tune.search import ConcurrencyLimiter, Searcher  # noqa: E402

import esopt  # noqa: E402
from cluster.continuation import restart_seed  # noqa: E402
from cluster.penalty import penalize  # noqa: E402
from cluster.space import Param, Space  # noqa: E402
from cluster.tune import ESSearcher, TuneSpace, convert_search_space  # noqa: E402

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
        ("act", tune.choice(["relu"])),
        ("noise", tune.randn(0, 1)),
        ("steps", tune.qrandint(1, 3, 4)),
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
# unit level: Ray's conventions (default metric, convert_search_space, warm start)
# ------------------------------------------------------------------------------------------------
def test_mode_without_metric_uses_rays_default_metric():
    s = ESSearcher(PARAM_SPACE, mode="max", popsize=4, seed=3)
    assert s.suggest("t0") is not None and s.metric == DEFAULT_METRIC == "_metric"
    s = ESSearcher(popsize=4, seed=3)  # Tune passes mode only (TuneConfig(mode="max"), no metric)
    assert s.set_search_properties(None, "max", PARAM_SPACE) is True
    assert (s.metric, s.mode) == ("_metric", "max")
    configs = [s.suggest(f"t{i}") for i in range(4)]
    for i, c in enumerate(configs):
        s.on_trial_complete(f"t{i}", {"_metric": -loss(c)})
    assert s.generation == 1 and s.strategy.result.f == min(loss(c) for c in configs)  # max of -loss
    s = ESSearcher(PARAM_SPACE, metric="loss", popsize=4)
    with pytest.raises(RuntimeError, match="metric"):  # a metric without a mode stays an error
        s.suggest("t")


def test_convert_search_space_is_a_staticmethod_and_its_result_a_space():
    nested = {"opt": {"lr": tune.loguniform(1e-4, 1e-1), "name": "adam"}, "x": tune.uniform(-1.0, 2.0)}
    converted = ESSearcher.convert_search_space(nested)
    assert isinstance(converted, TuneSpace) and converted.space.names == ["opt/lr", "x"]
    a = ESSearcher(converted, metric="loss", mode="min", popsize=4, seed=5)
    b = ESSearcher(nested, metric="loss", mode="min", popsize=4, seed=5)
    c = ESSearcher(popsize=4, seed=5)
    c.set_search_properties("loss", "min", nested)
    ca, cb, cc = ([s.suggest(f"t{i}") for i in range(4)] for s in (a, b, c))
    assert ca == cb == cc
    assert all(1e-4 <= x["opt"]["lr"] <= 0.1 and -1.0 <= x["x"] <= 2.0 and x["opt"]["name"] == "adam" for x in ca)
    # the native form (test_sample.py's searcher1/searcher2 check): a cluster.Space with "a/b" names
    native = Space({"opt/lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}, "x": {"lower": -1.0, "upper": 2.0}})
    d = ESSearcher(space=native, metric="loss", mode="min", popsize=4, seed=5)
    assert [d.suggest(f"t{i}") for i in range(4)] == [{"opt": {"lr": x["opt"]["lr"]}, "x": x["x"]} for x in ca]


def test_cluster_space_with_slash_names_gives_nested_configs():
    space = Space({"opt/lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}, "opt/wd": {"lower": 0, "upper": 1}})
    s = ESSearcher(space, metric="loss", mode="min", popsize=3, seed=0)
    c = s.suggest("t")
    assert set(c) == {"opt"} and set(c["opt"]) == {"lr", "wd"} and 1e-4 <= c["opt"]["lr"] <= 0.1
    s.on_trial_complete("t", {"loss": 1.0})
    pts = [{"opt": {"lr": 1e-3, "wd": 0.5}}, {"opt/lr": 1e-2, "opt/wd": 0.1}]  # nested or flat keys
    s = ESSearcher(space, metric="loss", mode="min", popsize=3, seed=0, points_to_evaluate=pts)
    assert [s.suggest("a"), s.suggest("b")] == [{"opt": {"lr": 1e-3, "wd": 0.5}}, {"opt": {"lr": 1e-2, "wd": 0.1}}]
    with pytest.raises(ValueError, match="collide"):
        ESSearcher(Space({"a": {"lower": 0, "upper": 1}, "a/b": {"lower": 0, "upper": 1}}))


def twin_told(searcher_kw, rows: dict[int, dict], values):
    """A hand-driven twin whose first generation has ``rows`` replaced (injected) and ``values`` told."""
    es = twin(searcher_kw)
    space = convert_search_space(PARAM_SPACE)
    X = es.ask()
    for i, point in rows.items():
        X[i] = space.space.encode(point)
    es.tell(X, values)
    return es, space


@pytest.mark.parametrize("mode", ["min", "max"])
def test_evaluated_rewards_are_told_as_injected_solutions_and_not_run(mode):
    pts = [{"x": 1.5, "lr": 1e-3}, {"x": -0.5, "lr": 0.05}]
    sign = -1.0 if mode == "max" else 1.0
    s = make(mode=mode, points_to_evaluate=pts, evaluated_rewards=[sign * 0.25, sign * 3.0], max_trials=6)
    es = twin()
    X = es.ask()
    space = convert_search_space(PARAM_SPACE)
    first = [s.suggest("t0"), s.suggest("t1")]
    assert first == [space.to_config(space.decode(x)) for x in X[2:]]  # the known points are not run again
    assert s.suggest("t2") is None and s.completed_trial_ids == ("esopt-known-0", "esopt-known-1")
    s.on_trial_complete("t0", {"loss": sign * 1.0})
    s.on_trial_complete("t1", {"loss": sign * 2.0})
    assert s.generation == 1 and s.n_told == 4
    X[:2] = [space.space.encode(p) for p in pts]
    es.tell(X, [0.25, 3.0, 1.0, 2.0])
    assert s.strategy.result.f == es.result.f == 0.25
    assert s.suggest("t2") == space.to_config(space.decode(es.ask()[0]))  # same state as the twin
    # max_trials counts Tune trials only (as num_samples does): 4 more suggestions, then FINISHED
    assert [s.suggest(f"t{i}") is not None for i in range(3, 6)] == [True, True, True]
    assert s.suggest("t6") == Searcher.FINISHED


def test_add_evaluated_point_fills_the_next_free_row_and_failures_get_the_penalty():
    s = make()
    es = twin()
    X = es.ask()
    space = convert_search_space(PARAM_SPACE)
    a, b = s.suggest("a"), s.suggest("b")
    point = {"x": 0.3, "lr": 3e-3, "ignored": "constant"}
    s.add_evaluated_point(point, 0.75, intermediate_values=[2.0, 1.0])  # row 2 of this generation
    s.add_evaluated_point({"x": 0.1, "lr": 1e-2}, 5.0, error=True)  # row 3: failed -> penalty
    assert s.suggest("c") is None and s.generation == 0  # no free row left
    s.on_trial_complete("b", {"loss": loss(b)})
    s.on_trial_complete("a", {"loss": loss(a)})
    assert s.generation == 1 and s.n_told == 4
    X[2] = space.space.encode({"x": 0.3, "lr": 3e-3})
    X[3] = space.space.encode({"x": 0.1, "lr": 1e-2})
    es.tell(X, penalize(np.array([loss(a), loss(b), 0.75, np.nan]), [False, False, False, True]))
    assert s.suggest("c") == space.to_config(space.decode(es.ask()[0]))
    # pruned (stopped by a scheduler): its value is told as it is
    p = make()
    p.add_evaluated_point({"x": 0.3, "lr": 3e-3}, 0.5, pruned=True)
    ids = [f"p{i}" for i in range(3)]
    assert all(p.suggest(i) is not None for i in ids) and p.suggest("p3") is None
    for i in ids:
        p.on_trial_complete(i, {"loss": 10.0})
    assert p.generation == 1 and p.strategy.result.f == 0.5


def test_add_evaluated_point_rejects_bad_input_before_any_change():
    s = make()
    before = s.get_state()
    with pytest.raises(ValueError, match="lr"):
        s.add_evaluated_point({"x": 0.0, "lr": 1.0}, 1.0)  # lr outside [1e-4, 0.1]
    with pytest.raises(ValueError, match="lr"):
        s.add_evaluated_point({"x": 0.0}, 1.0)
    with pytest.raises(TypeError, match="value"):
        s.add_evaluated_point({"x": 0.0, "lr": 1e-3}, "good")
    assert s.get_state() == before
    with pytest.raises(RuntimeError, match="mode"):
        ESSearcher(PARAM_SPACE).add_evaluated_point({"x": 0.0, "lr": 1e-3}, 1.0)
    with pytest.raises(ValueError, match="evaluated_rewards"):
        make(points_to_evaluate=[{"x": 0.0, "lr": 1e-3}], evaluated_rewards=[1.0, 2.0])
    with pytest.raises(ValueError, match="evaluated_rewards"):
        make(evaluated_rewards=[1.0])
    with pytest.raises(TypeError, match="evaluated_rewards"):
        make(points_to_evaluate=[{"x": 0.0, "lr": 1e-3}], evaluated_rewards=["a"])
    with pytest.raises(TypeError, match="stop_on_convergence"):
        make(stop_on_convergence="yes")


@pytest.mark.parametrize("scheduling", ["sync", "async"])
def test_reissue_pending_hands_the_outstanding_candidates_out_again(tmp_path, scheduling):
    """A checkpoint continued in a new experiment: its running trials never report there."""
    a = make(scheduling=scheduling, max_trials=16)
    drive(a, ["a0", "a1", "a2", "a3"], [loss] * 4)
    running = drive(a, ["b0", "b1", "b2"], [loss, None, None])  # b1, b2 were running
    a.save(tmp_path / "ck")
    b = make(scheduling=scheduling, max_trials=16)
    b.restore(tmp_path / "ck")
    assert b.reissue_pending() == ("b1", "b2") and b.pending_trial_ids == ()
    assert b.reissue_pending() == ()  # nothing outstanding any more
    b.on_trial_complete("b1", {"loss": 0.0})  # a late result of the old experiment changes nothing
    again = [b.suggest("n1"), b.suggest("n2")]
    assert again == running[1:]  # the same candidates, in the same order
    # the rest of the run is the uninterrupted one's: same generation, same tells, same next suggestions
    for s, ids in ((a, ("b1", "b2")), (b, ("n1", "n2"))):
        for i, c in zip(ids, running[1:]):
            s.on_trial_complete(i, {"loss": loss(c)})
    seqs = []
    for s in (a, b):
        seq = drive(s, ["c0"], [loss])  # the last row of generation 2
        for g in range(2):
            seq += drive(s, [f"d{g}{i}" for i in range(4)], [loss] * 4)
        seqs.append(seq + [s.suggest("e0")])
    assert seqs[0] == seqs[1] and a.n_told == b.n_told == 16 and None not in seqs[1][:-1]
    assert seqs[1][-1] is Searcher.FINISHED  # max_trials counted each reissued candidate once


def test_known_results_survive_save_restore_and_deepcopy(tmp_path):
    rng = np.random.default_rng(1)
    known = [
        ({"x": float(u), "lr": float(10**v)}, float(w)) for u, v, w in rng.uniform([-1, -4, 0], [2, -1, 5], (6, 3))
    ]
    a = make()
    for p, v in known:  # 6 known results, popsize 4: one full generation plus 2 rows of the next
        a.add_evaluated_point(p, v)
    assert a.generation == 0  # nothing asked yet: told when the next generation is asked
    b = copy.deepcopy(a)
    a.save(tmp_path / "ck")
    c = make(seed=11)
    c.restore(tmp_path / "ck")
    seqs = []
    for s in (a, b, c):
        seq = [s.suggest("t0"), s.suggest("t1"), s.suggest("t2")]
        assert s.generation == 1 and s.n_told == 4 and seq[2] is None
        assert s.completed_trial_ids == ("esopt-known-4", "esopt-known-5")
        s.on_trial_complete("t0", {"loss": 1.0})
        s.on_trial_complete("t1", {"loss": 2.0})
        seqs.append(seq + [s.suggest("t3")])
        assert s.generation == 2 and s.n_told == 8
        assert s.strategy.result.f == min(v for _, v in known)
    assert seqs[0] == seqs[1] == seqs[2]


# ------------------------------------------------------------------------------------------------
# unit level: restart after convergence
# ------------------------------------------------------------------------------------------------
def run_flat(s, n, value=1.0, start=0):
    """Hand ``n`` trials of a flat objective to ``s`` generation by generation; returns the suggestions."""
    out, tid = [], start
    while len(out) < n:
        batch = []
        while len(out) + len(batch) < n:
            c = s.suggest(f"f{tid}")
            if c is None or c == Searcher.FINISHED:
                break
            batch.append((f"f{tid}", c))
            tid += 1
        if not batch:
            break
        for trial_id, _ in batch:
            s.on_trial_complete(trial_id, {"loss": value})
        out += [c for _, c in batch]
    return out


def test_flat_generations_restart_from_the_mean_with_twice_the_popsize(caplog):
    caplog.set_level(logging.WARNING, logger="cluster.tune")
    s = make(popsize=4, seed=3)
    configs = run_flat(s, 40)
    assert len(configs) == 40 and s.stop_reason == {}
    history = s.restart_history
    assert history, "a flat objective must fire the strategy's criteria"
    first = history[0]
    assert {"tolfun", "tolflatfitness"} & set(first["stop"])
    assert first["popsize"] == 8 and first["seed"] == restart_seed(3, first["n_told"])
    assert first["n_told"] == 4 * first["generation"]
    assert [h["popsize"] for h in history] == [8 * 2**i for i in range(len(history))]
    messages = [r.getMessage() for r in caplog.records if r.name == "cluster.tune"]
    assert any("restarted" in m and "tolf" in m for m in messages)
    # the new run starts from the mean of the stopped one, with a fresh sigma0
    stopped = make(popsize=4, seed=3, stop_on_convergence=True)
    run_flat(stopped, 40)
    assert stopped.stop_reason == first["stop"] and stopped.suggest("x") == Searcher.FINISHED
    assert stopped.n_told == first["n_told"]
    fresh = esopt.build(
        "cmaes", stopped.strategy.result.mean, 0.3, popsize=8, seed=first["seed"], bounds=stopped.space.bounds
    )
    again = make(popsize=4, seed=3)
    run_flat(again, first["n_told"])
    space = convert_search_space(PARAM_SPACE)
    assert again.suggest("n0") == space.to_config(space.decode(fresh.ask()[0]))


def test_restart_caps_the_popsize_to_the_trials_left_and_max_trials_still_ends():
    s = make(popsize=4, seed=3, max_trials=10)
    configs = run_flat(s, 100)
    assert len(configs) == 10 and s.suggest("x") == Searcher.FINISHED
    assert s.restart_history[0]["popsize"] == 10 - s.restart_history[0]["n_told"]


def test_save_restore_across_a_restart_is_exact(tmp_path):
    a = make(popsize=4, seed=3)
    run_flat(a, 4 * 2)  # up to just before the first restart or past it: both must be exact
    n0 = a.n_told
    a.save(tmp_path / "before")
    run_flat(a, 30, start=100)
    assert a.restart_history
    a.save(tmp_path / "after")
    tail_a = run_flat(a, 20, start=200)
    b = make(seed=99)
    b.restore(tmp_path / "before")
    assert b.n_told == n0
    run_flat(b, 30, start=100)
    assert b.restart_history == a.restart_history[: len(b.restart_history)]
    c = ESSearcher(metric="loss", mode="min")
    c.restore(tmp_path / "after")
    assert run_flat(c, 20, start=200) == run_flat(b, 20, start=200) == tail_a


class Tagged(ESSearcher):
    """A subclass with attributes of its own, set before and after ESSearcher.__init__."""

    def __init__(self, *args, **kw):
        self.before_init = "set first"
        super().__init__(*args, **kw)
        self.notes: list = []

    def on_trial_complete(self, trial_id, result=None, error=False):
        super().on_trial_complete(trial_id, result, error)
        self.notes.append(trial_id)
        self.completed_count = getattr(self, "completed_count", 0) + 1


def test_a_subclass_keeps_its_own_attributes_across_save_restore(tmp_path):
    a = Tagged(PARAM_SPACE, metric="loss", mode="min", popsize=4, seed=3)
    drive(a, ["a0", "a1", "a2"], [loss] * 3)
    a.before_init = "changed"
    a.save(tmp_path / "ck")
    with np.load(tmp_path / "ck", allow_pickle=False) as z:  # readable without unpickling
        assert z["tune.subclass_attributes"].dtype == np.uint8  # the subclass's attributes only
    assert json.loads(esopt.read_state(tmp_path / "ck")["tune.searcher"])["n_suggested"] == 3
    b = Tagged(PARAM_SPACE, metric="loss", mode="min", popsize=4, seed=3)
    b.restore(tmp_path / "ck")
    assert (b.notes, b.completed_count, b.before_init) == (["a0", "a1", "a2"], 3, "changed")
    assert b.get_state() == a.get_state()
    plain = make()
    plain.save(tmp_path / "plain")
    assert "tune.subclass_attributes" not in esopt.read_state(tmp_path / "plain")  # ESSearcher never pickles
    a.lock = __import__("threading").Lock()
    with pytest.raises(TypeError, match="lock"):
        a.save(tmp_path / "ck2")


def test_checkpoint_of_esopt_0_1_0_continues_exactly():
    data = Path(__file__).parent / "data"
    expected = json.loads((data / "tune_searcher_v0.1.0.json").read_text())
    s = make(seed=None)
    s.restore(data / "tune_searcher_v0.1.0.npz")  # written by tests/data/make_tune_searcher_v010.py
    assert s.generation == 1 and s.pending_trial_ids == ("b1",) and s.completed_trial_ids == ("b0",)
    b1 = s._tspace.to_config(s._configs[1])
    seq = [s.suggest("b2"), s.suggest("b3")]
    for i, c in (("b1", b1), ("b2", seq[0]), ("b3", seq[1])):
        s.on_trial_complete(i, {"loss": loss(c)})
    seq += [s.suggest(f"c{i}") for i in range(4)]
    assert seq == expected


# ------------------------------------------------------------------------------------------------
# real Ray Tune
# ------------------------------------------------------------------------------------------------


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
def reference(ray_tune_local, tmp_path_factory):
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
    """Also Ray's test_custom_searcher_and_scheduler_restore: a subclass keeps its own attributes."""
    searcher = Tagged(popsize=POPSIZE, seed=SEED)
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
    saved = Tagged(metric="loss", mode="min")
    saved.restore(next((tmp_path / "interrupted").glob("searcher-state-*")))
    assert saved.generation == 1 and len(saved.completed_trial_ids) >= 2
    assert saved.completed_count == len(saved.notes) >= POPSIZE + 2
    tuner = tune.Tuner.restore(str(tmp_path / "interrupted"), trainable=objective)
    results = tuner.fit()
    assert len(results) == n_total and results.num_errors == 0
    assert sorted(key(r.config) for r in results) == sorted(key(r.config) for r in reference[1])
    final = Tagged(metric="loss", mode="min")  # the restored Tagged's last checkpoint (newest session's file)
    final.restore(sorted((tmp_path / "interrupted").glob("searcher-state-*"))[-1])
    assert final.generation == GENERATIONS and final.completed_count == n_total  # counted before and after


def test_a_checkpoint_with_running_trials_continues_in_a_new_experiment(reference, tmp_path):
    """searcher.restore + reissue_pending in a new Tuner (not Tuner.restore): the trials that were
    running at the checkpoint never report there, and their candidates are run again."""
    first = ESSearcher(PARAM_SPACE, metric="loss", mode="min", popsize=POPSIZE, seed=SEED)
    ids = [f"old{i}" for i in range(POPSIZE + 3)]  # generation 1 and three trials of generation 2
    configs = drive(first, ids[:POPSIZE], [loss] * POPSIZE)
    configs += drive(first, ids[POPSIZE:], [loss, None, None])  # the last two still running
    first.save(tmp_path / "ck")
    searcher = ESSearcher(metric="loss", mode="min")
    searcher.restore(tmp_path / "ck")
    assert searcher.reissue_pending() == tuple(ids[-2:])
    n_total = POPSIZE * GENERATIONS
    results = fit(objective, searcher, tmp_path, "new", n_total - (POPSIZE + 1))
    assert len(results) == n_total - (POPSIZE + 1) and results.num_errors == 0
    assert searcher.generation == GENERATIONS
    ran = [key(c) for c in configs[: POPSIZE + 1]] + [key(r.config) for r in results]
    assert sorted(ran) == sorted(key(r.config) for r in reference[1])  # the uninterrupted run's trials


def flaky(config):
    if config["lr"] > 0.02:
        raise RuntimeError("diverged")  # Tune marks the trial ERROR
    if config["x"] < 0.15:  # (seed 2: a trial of generation 1, whatever the later updates)
        # (a result without the metric would abort the whole experiment in Tune's strict metric
        # checking, before any searcher sees it; the unit tests cover that case)
        return {"loss": float("nan")}
    return {"loss": loss(config)}


def test_erroring_trainable_does_not_stop_the_search(ray_tune_local, tmp_path):
    searcher = ESSearcher(PARAM_SPACE, metric="loss", mode="min", popsize=4, seed=2)
    results = fit(flaky, searcher, tmp_path, "flaky", 12)
    assert len(results) == 12 and results.num_errors >= 1
    assert any(r.error is None and math.isnan(r.metrics["loss"]) for r in results)
    assert searcher.generation == 3  # every generation was told, errors included
    ok = [r.metrics["loss"] for r in results if r.error is None and "loss" in (r.metrics or {})]
    assert searcher.strategy.result.f == min(ok)  # penalties never count as the best


def test_max_trials_finishes_the_experiment(ray_tune_local, tmp_path):
    searcher = ESSearcher(PARAM_SPACE, metric="loss", mode="min", popsize=4, seed=0, max_trials=8)
    results = fit(objective, ConcurrencyLimiter(searcher, max_concurrent=2), tmp_path, "budget", 100)
    assert len(results) == 8 and searcher.generation == 2


def test_readme_snippet_runs(ray_tune_local, tmp_path, monkeypatch, capsys):
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "ESSearcher" in b]
    assert len(blocks) == 1, "README.md must hold exactly one python block with ESSearcher"
    code = blocks[0]
    assert "ESSearcher" in code and code.count("num_samples=64") == 1
    assert 'ray.init(address="local"' in code  # never joins a cluster left behind by `ray start`
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


def invalid_objective(config):
    """Ray's InvalidValuesTest objective: inf, -inf, NaN above 4, 3 and 2; reported under Ray's default metric."""
    r = config["report"]
    value = math.inf if r > 4 else -math.inf if r > 3 else math.nan if r > 2 else (r or 0.1)
    return {DEFAULT_METRIC: value}


def test_mode_only_and_invalid_values_in_a_tune_run(ray_tune_local, tmp_path):
    """Ray's InvalidValuesTest, Nevergrad form: TuneConfig(mode="max") without a metric, NaN/inf results."""
    searcher = ESSearcher(popsize=4, seed=1)
    tuner = tune.Tuner(
        invalid_objective,
        param_space={"report": tune.uniform(0.0, 5.0), "list": [1, 2, 3], "num": 4},
        tune_config=tune.TuneConfig(search_alg=searcher, mode="max", num_samples=8, reuse_actors=True),
        run_config=tune.RunConfig(name="invalid", storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 8 and results.num_errors == 0 and searcher.metric == DEFAULT_METRIC
    values = [r.metrics[DEFAULT_METRIC] for r in results]
    assert any(not math.isfinite(v) for v in values) and any(math.isfinite(v) for v in values)
    best = results.get_best_result(metric=DEFAULT_METRIC, mode="max")  # Ray skips NaN/inf
    assert best.config["report"] <= 2.0 and best.config["list"] == [1, 2, 3] and best.config["num"] == 4
    # NaN/inf were told the penalty: the strategy's best is the best finite value (negated: max -> min)
    assert searcher.generation == 2 and -searcher.strategy.result.f == max(v for v in values if math.isfinite(v))
    saved = ESSearcher()
    saved.restore(next((tmp_path / "invalid").glob("searcher-state-*")))  # Tune's checkpoint of it worked
    assert saved.generation == 2 and saved.metric == DEFAULT_METRIC


def flat_objective(config):
    return {"loss": 0.5}  # every trial at the same value (e.g. chance-level accuracy)


def test_flat_objective_restarts_and_runs_the_whole_budget(ray_tune_local, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="cluster.tune")
    searcher = ESSearcher(seed=0)  # popsize 6 (d = 2); with the param_space, Tune passes num_samples too
    results = fit(flat_objective, searcher, tmp_path, "flat", 16, param_space=PARAM_SPACE)
    assert len(results) == 16 and results.num_errors == 0 and searcher.n_told == 16  # the last generation told
    history = searcher.restart_history
    assert history and {"tolfun", "tolflatfitness"} & set(history[0]["stop"]) and searcher.stop_reason == {}
    assert history[0]["popsize"] == min(12, 16 - history[0]["n_told"])  # IPOP x2, capped to the trials left
    assert any("restarted" in r.getMessage() for r in caplog.records if r.name == "cluster.tune")
    stopping = ESSearcher(PARAM_SPACE, metric="loss", mode="min", seed=0, stop_on_convergence=True)
    results = fit(flat_objective, stopping, tmp_path, "flat-stop", 16)
    assert len(results) == history[0]["n_told"] < 16  # 0.1.0's behaviour: the criteria end the search
    assert stopping.stop_reason == history[0]["stop"] and not stopping.restart_history


def test_add_evaluated_trials_of_an_experiment(reference):
    """Ray's AddEvaluatedPointTest: trials of an ExperimentAnalysis, a list of them, one trial."""
    from ray.tune import ExperimentAnalysis

    _, results = reference
    analysis = ExperimentAnalysis(results.experiment_path)
    losses = [t.last_result["loss"] for t in analysis.trials]
    s = ESSearcher(PARAM_SPACE, metric="loss", mode="min", popsize=POPSIZE, seed=1)
    twin_s = copy.deepcopy(s)
    s.add_evaluated_trials(analysis, "loss")
    assert s.suggest("t0") is not None
    assert s.n_told == len(losses) == POPSIZE * GENERATIONS and s.generation == GENERATIONS
    assert s.strategy.result.f == min(losses)
    twin_s.add_evaluated_trials(analysis.trials, "loss")
    assert twin_s.suggest("t0") == s._tspace.to_config(s._configs[0]) and twin_s.n_told == s.n_told
    one = ESSearcher(PARAM_SPACE, metric="loss", mode="min", popsize=POPSIZE, seed=1)
    one.add_evaluated_trials(analysis.trials[0], "loss")
    assert one.suggest("t0") is not None and one.completed_trial_ids == ("esopt-known-0",)


def test_ray_fixture_never_joins_another_cluster(tmp_path):
    """conftest's Ray fixtures start a private instance even where RAY_ADDRESS names a dead cluster
    (as a stale ``ray start`` leaves ``/tmp/ray/ray_current_cluster``: ``ray.init`` without an address joins it)."""
    conftest = str(Path(__file__).with_name("conftest.py"))
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('conftest_copy', {conftest!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "local = mod._LocalRay()\n"
        "resources = local.start(num_cpus=1, env={'ESOPT_FIXTURE_CHECK': '1'})\n"
        "import os, ray\n"
        "print(int(resources['CPU']), ray.get(ray.remote(lambda: os.environ.get('ESOPT_FIXTURE_CHECK')).remote()))\n"
        "local.close()\n"
        "print(ray.is_initialized(), os.environ.get('ESOPT_FIXTURE_CHECK'))\n"
    )
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9", "RAY_USAGE_STATS_ENABLED": "0"}  # port 9: nobody there
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["1", "1", "False", "None"]  # its own 1-CPU instance, env set then restored


# ------------------------------------------------------------------------------------------------
# scheduling="async" (issue 13 item 4)
# ------------------------------------------------------------------------------------------------
def drive_async(s, n_trials: int, rng: np.random.Generator, lag: int = 5) -> list[str]:
    """Suggest ``n_trials`` configs, completing a random outstanding trial whenever ``lag`` are out
    (results in an order unrelated to the suggestion order); returns the trial ids completed."""
    out, completed = {}, []
    for i in range(n_trials):
        config = s.suggest(f"t{i}")
        assert isinstance(config, dict)  # never None just because a generation is incomplete
        out[f"t{i}"] = config
        while len(out) >= lag or (i == n_trials - 1 and out):
            tid = sorted(out)[int(rng.integers(len(out)))]
            s.on_trial_complete(tid, {"loss": loss(out.pop(tid))})
            completed.append(tid)
    return completed


def test_async_suggests_whenever_asked_and_tells_every_finished_trial():
    s = make(scheduling="async")
    configs = [s.suggest(f"t{i}") for i in range(10)]  # 10 > popsize = 4: nobody waits
    assert all(isinstance(c, dict) for c in configs)
    assert len({key(c) for c in configs}) == 10
    for i in (3, 0, 7, 9, 1, 2, 8, 5, 4):  # completion order
        s.on_trial_complete(f"t{i}", {"loss": loss(configs[i])})
    assert s.n_told == 8 and s.generation == 2 and s.n_finished_untold == 1
    assert s.strategy.countevals == 8 and s.pending_trial_ids == ("t6",)
    s.on_trial_complete("t6", {"loss": loss(configs[6])})
    assert s.n_finished_untold == 2 and s.n_told == 8  # told once 4 are in


def test_async_first_tell_is_the_completed_rows_of_the_ask():
    # the first popsize results of the first ask, in any completion order, keep their rows:
    # the strategy sees exactly what a synchronous tell of that ask gives (bit-for-bit)
    s, es = make(scheduling="async"), twin()
    configs = [s.suggest(f"t{i}") for i in range(4)]
    X = es.ask()
    for i in (2, 0, 3, 1):
        s.on_trial_complete(f"t{i}", {"loss": loss(configs[i])})
    space = convert_search_space(PARAM_SPACE)
    es.tell(X, [loss(space.to_config(space.decode(x))) for x in X])
    assert np.array_equal(s.strategy.mean, es.mean) and s.strategy.sigma == es.sigma


def test_async_save_restore_is_exact(tmp_path):
    a = make(scheduling="async")
    drive_async(a, 13, np.random.default_rng(0))
    extra = {f"u{i}": a.suggest(f"u{i}") for i in range(3)}  # outstanding trials and a supply
    a.save(tmp_path / "s.npz")
    b = make(scheduling="async")
    b.restore(tmp_path / "s.npz")
    assert b.pending_trial_ids == a.pending_trial_ids and b.n_finished_untold == a.n_finished_untold
    for s in (a, b):
        for tid, config in extra.items():
            s.on_trial_complete(tid, {"loss": loss(config)})
    ca = drive_async(a, 9, np.random.default_rng(1))
    cb = drive_async(b, 9, np.random.default_rng(1))
    assert ca == cb and a.n_told == b.n_told
    assert np.array_equal(a.strategy.mean, b.strategy.mean) and a.strategy.sigma == b.strategy.sigma
    with pytest.raises(ValueError, match="scheduling"):
        make().restore(tmp_path / "s.npz")  # a sync searcher refuses an async checkpoint


def test_async_restart_tells_results_sampled_before_it_to_the_new_run():
    # a flat objective makes the criteria fire; trials handed out before the restart finish
    # after it and are told to the new run as injected rows (none dropped)
    s = make(scheduling="async", tolflatfitness=1)
    outstanding = {f"t{i}": s.suggest(f"t{i}") for i in range(7)}
    for tid in ("t0", "t1", "t2", "t3"):
        s.on_trial_complete(tid, {"loss": 1.0})
        outstanding.pop(tid)
    assert len(s.restart_history) == 1 and s.popsize == 8
    old = len(outstanding)
    for tid in list(outstanding):
        s.on_trial_complete(tid, {"loss": 1.0})
    assert s.n_finished_untold == old and s.n_told == 4
    more = {f"n{i}": s.suggest(f"n{i}") for i in range(8 - old)}
    for tid, config in more.items():
        s.on_trial_complete(tid, {"loss": 1.0 + config["x"] ** 2})
    assert s.n_told == 12 and s.n_finished_untold == 0  # the old results were told to the new run


def test_bad_scheduling_raises():
    with pytest.raises(ValueError, match="scheduling must be"):
        make(scheduling="eager")


def test_restarts_stop_doubling_the_popsize_after_max_popsize_increases(monkeypatch):
    """With num_samples=-1 (a stopper ends the run) the popsize doubled at every restart without
    bound; after ``MAX_POPSIZE_INCREASES`` restarts it is kept (lowered to 2 here, 9 by default)."""
    import cluster.continuation as cont

    monkeypatch.setattr(cont, "MAX_POPSIZE_INCREASES", 2)
    s = make(popsize=4, seed=3)
    run_flat(s, 4 + 8 + 16 + 16 + 16 + 16)
    assert [h["popsize"] for h in s.restart_history][:5] == [8, 16, 16, 16, 16]
