"""ESSearcher on mixed Tune spaces: tune.choice and the integer/quantized domains (issue 15 item 3)."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest

pytest.importorskip("ray.tune")

from ray import tune  # noqa: E402

from cluster.tune import ESSearcher, convert_search_space  # noqa: E402

BASE = {"adam": 2.0, "sgd": 3.0, "rmsprop": 0.0, "adagrad": 1.0}  # rmsprop (index 2) is best
SPACE = {
    "opt": {"name": tune.choice(list(BASE)), "lr": tune.loguniform(1e-4, 1e-1)},
    "x": tune.uniform(0.0, 1.0),
    "layers": tune.randint(1, 9),
    "width": tune.qrandint(16, 128, 16),
    "const": "kept",
}


def loss(c) -> float:
    return (
        BASE[c["opt"]["name"]]
        + (c["x"] - 0.3) ** 2
        + 0.1 * (math.log10(c["opt"]["lr"]) + 2.5) ** 2
        + 0.01 * (c["layers"] - 3) ** 2
        + 1e-4 * (c["width"] - 64) ** 2
    )


def make(space=SPACE, **kw):
    args = dict(metric="loss", mode="min", popsize=6, seed=0)
    args.update(kw)
    return ESSearcher(space, **args)


def drive(s, n: int, prefix: str = "t", fun=loss) -> list[dict]:
    """Suggest ``n`` configs, completing the outstanding ones (in order) whenever ``popsize`` are out
    or ``suggest`` returns None (a synchronous generation waits); returns the configs in order."""
    configs, out, i = [], {}, 0

    def complete():
        for tid, c in out.items():
            s.on_trial_complete(tid, {"loss": fun(c)})
        out.clear()

    while len(configs) < n:
        c = s.suggest(f"{prefix}{i}")
        if c is None:
            assert out, "suggest returned None with nothing outstanding"
            complete()
            continue
        assert isinstance(c, dict)
        out[f"{prefix}{i}"], i = c, i + 1
        configs.append(c)
        if len(out) >= s.popsize:
            complete()
    complete()
    return configs


# ------------------------------------------------------------------------------------------------
# the mapping of each domain
# ------------------------------------------------------------------------------------------------
DOMAINS = {
    "c": tune.choice(["a", "b", "c"]),
    "r": tune.randint(2, 7),
    "qr": tune.qrandint(0, 10, 5),
    "lr": tune.lograndint(1, 10),
    "qlr": tune.qlograndint(1, 100, 5),
    "qu": tune.quniform(0.0, 1.0, 0.25),
    "qlu": tune.qloguniform(1e-3, 1.0, 1e-3),
}


def reachable(ts, name: str) -> set:
    """Every value our decoding can give for ``name`` (integer/categorical coordinates: every
    index of the bounds; unit coordinates: a fine grid of [0, 1])."""
    i = ts.space.names.index(name)
    lo, up = ts.space.bounds[0][i], ts.space.bounds[1][i]
    grid = np.arange(lo, up + 1) if ts.space.kinds[i] != "unit" else np.linspace(0, 1, 20001)
    x = ts.space.x0.copy()
    out = set()
    for u in grid:
        x[i] = u
        v = ts.decode(x)[name]
        out.add(round(v, 9) if isinstance(v, float) else v)
    return out


def test_each_domain_reaches_exactly_the_values_tune_samples():
    ts = convert_search_space(DOMAINS, mixed=True)
    assert dict(zip(ts.space.names, ts.space.kinds)) == {
        "c": "categorical",
        "r": "integer",
        "qr": "integer",  # grid index k, value 5 k
        "lr": "unit",  # log-spaced ints stay unit coordinates, rounded
        "qlr": "unit",
        "qu": "unit",
        "qlu": "unit",
    }
    for name, domain in DOMAINS.items():
        tune_values = {round(v, 9) if isinstance(v, float) else v for v in domain.sample(size=3000)}
        ours = reachable(ts, name)
        if name == "qlu":  # 1000 grid values: Tune's 3000 draws do not hit them all
            assert tune_values <= ours and all(abs(v / 1e-3 - round(v / 1e-3)) < 1e-6 for v in ours)
            assert min(ours) == pytest.approx(1e-3) and max(ours) == pytest.approx(1.0)
        else:
            assert ours == tune_values, name  # Tune's own bounds (q > 1: upper included)
    assert reachable(ts, "qr") == {0, 5, 10} and reachable(ts, "qlr") == set(range(5, 101, 5))
    rng = np.random.default_rng(0)
    lo, up = ts.space.bounds
    for _ in range(200):
        x = rng.uniform(lo, up)
        c = ts.to_config(ts.decode(x))
        assert isinstance(c["r"], int) and isinstance(c["qr"], int) and isinstance(c["qlr"], int)
        assert type(c["c"]) is str and c["c"] in ("a", "b", "c")
    # log scale: qlograndint's grid index k = 1..20 (value 5 k) owns [0.5, 20.5] on the log10 scale,
    # so the values 5 and 10 (k < 2.5) take log(5)/log(41) = 43% of the unit coordinate (linear: 10%)
    x, i, below = ts.space.x0.copy(), ts.space.names.index("qlr"), 0
    for u in np.linspace(0, 1, 10001):
        x[i] = u
        below += ts.decode(x)["qlr"] <= 10
    assert below / 10001 == pytest.approx(math.log(5) / math.log(41), abs=2e-4)


def test_numeric_and_boolean_choices_come_back_as_themselves():
    ts = convert_search_space({"bs": tune.choice([16, 32, 64]), "flag": tune.choice([True, False])})
    assert ts.space.mixed
    values = {(ts.decode([i, j])["bs"], ts.decode([i, j])["flag"]) for i in range(3) for j in range(2)}
    assert values == {(b, f) for b in (16, 32, 64) for f in (True, False)}
    assert all(type(b) is int and type(f) is bool for b, f in values)


def test_none_is_a_choice_as_in_tunes_own_searchers():
    """``tune.choice(["relu", None])`` and ``tune.choice([None, 3, 5])`` are common in Tune scripts
    (OptunaSearch takes them); they were refused."""
    ts = convert_search_space({"act": tune.choice(["relu", None]), "depth": tune.choice([None, 3, 5])})
    assert {ts.decode([i, j])["act"] for i in range(2) for j in range(3)} == {"relu", None}
    assert {ts.decode([i, j])["depth"] for i in range(2) for j in range(3)} == {None, 3, 5}
    s = ESSearcher(
        {"act": tune.choice(["relu", None]), "x": tune.uniform(0, 1)},
        metric="loss",
        mode="min",
        popsize=4,
        seed=1,
        points_to_evaluate=[{"act": None, "x": 0.5}],
    )
    seen = []
    for i in range(12):
        c = s.suggest(str(i))
        seen.append(c["act"])
        s.on_trial_complete(str(i), {"loss": (c["act"] is None) + c["x"]})
    assert seen[0] is None and None in seen[1:] and "relu" in seen and s.n_told == 12


# ------------------------------------------------------------------------------------------------
# which strategy
# ------------------------------------------------------------------------------------------------
def test_discrete_spaces_get_the_mixed_strategy_unless_one_is_named():
    assert make().strategy_name == "catcmawm" and make().space.mixed
    ints = {"n": tune.randint(1, 5), "x": tune.uniform(0, 1)}
    assert make(ints).strategy_name == "catcmawm"
    assert make({"x": tune.uniform(0, 1)}).strategy_name == "cmaes"
    named = make(ints, strategy="cmaes")  # a continuous strategy rounds the int at decode, as before
    assert named.strategy_name == "cmaes" and not named.space.mixed
    assert named.strategy.popsize == 6 and np.array_equal(named.space.bounds[1], [1.0, 1.0])
    for name in ("cmaes", "sepcmaes", "lmmaes", "canonical"):
        with pytest.raises(ValueError, match=r"cannot search the categorical param_space\['opt/name'\].*catcmawm"):
            make(strategy=name)
    s = ESSearcher(strategy="sepcmaes")  # the space arrives from the Tuner
    with pytest.raises(ValueError, match="catcmawm"):
        s.set_search_properties("loss", "min", SPACE)
    wrapped = make(restarts="ipop")  # the wrapper's every run gets the space's variables
    assert wrapped.strategy.method == "catcmawm"
    assert list(wrapped.strategy.inner.variable_kinds) == ["k", "c", "c", "i", "i"]
    with pytest.raises(ValueError, match="integers"):
        make(integers=[0])  # set from the space
    with pytest.raises(ValueError, match="stds"):
        make(stds=[1.0] * 5)  # set from the space too


def test_mixed_strategy_sees_integer_and_category_coordinates():
    s = make()
    names = s.space.names
    assert names == ["opt/name", "opt/lr", "x", "layers", "width"]
    assert list(s.strategy.variable_kinds) == ["k", "c", "c", "i", "i"]
    # sigma0 is a fraction of each range on the integer coordinates too (8 integers each)
    assert s.strategy.params.stds.tolist() == [1.0, 1.0, 1.0, 8.0, 8.0]
    X = s.strategy.ask()
    assert np.all(X[:, 0] == np.round(X[:, 0])) and set(X[:, 0]) <= {0, 1, 2, 3}  # category indices
    assert np.all(X[:, 3:] == np.round(X[:, 3:]))  # layers 1..8, width index 1..8 (value 16 k)
    c = s.suggest("a")
    assert c["const"] == "kept" and c["width"] % 16 == 0 and 16 <= c["width"] <= 128


# ------------------------------------------------------------------------------------------------
# refused domains and bad input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "domain, message",
    [
        (tune.sample_from(lambda c: 1), "tune.sample_from"),
        (tune.grid_search([1, 2]), "tune.grid_search"),
        (tune.choice([]), "0 choice"),
        (tune.choice(["adam"]), "1 choice"),
        (tune.choice(["adam", "sgd", "adam"]), "duplicates"),
        (tune.choice([1, 1.0]), "duplicates"),
        (tune.choice([[1], [2]]), "strings, numbers, booleans or null"),
        (tune.choice([{"a": 1}, {"a": 2}]), "strings, numbers, booleans or null"),
        (tune.choice(["adam", 1]), "one kind"),
        (tune.choice([None, "adam", 1]), "one kind"),
        (tune.choice([1.0, float("nan")]), "strings, numbers, booleans or null"),
        (tune.qrandint(1, 3, 4), "0 value"),
    ],
)
def test_bad_domains_raise_naming_the_parameter(domain, message):
    space = {"x": tune.uniform(0, 1), "opt": {"name": domain}}
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        ESSearcher(space, metric="loss", mode="min")
    assert "opt/name" in str(e.value)
    s = ESSearcher(metric="loss", mode="min")
    with pytest.raises(ValueError, match="opt/name"):
        s.set_search_properties("loss", "min", space)
    assert s.space is None and s.strategy is None  # nothing set up


# ------------------------------------------------------------------------------------------------
# points_to_evaluate
# ------------------------------------------------------------------------------------------------
POINT = {"opt": {"name": "sgd", "lr": 1e-3}, "x": 0.5, "layers": 4, "width": 32}


def test_points_with_categories_are_handed_out_as_given_and_told_as_injected():
    flat = {"opt/name": "adagrad", "opt/lr": 1e-2, "x": 0.1, "layers": 8, "width": 128}
    s = make(points_to_evaluate=[POINT, flat])
    a, b = s.suggest("p0"), s.suggest("p1")
    assert a == {**POINT, "const": "kept"}
    assert b == {"opt": {"name": "adagrad", "lr": 1e-2}, "x": 0.1, "layers": 8, "width": 128, "const": "kept"}
    assert list(s._X[0]) == [1.0, s.space.params[1].to_unit(1e-3), 0.5, 4.0, 2.0]  # sgd = index 1, 32 = 2 x 16
    rest = [s.suggest(f"r{i}") for i in range(4)]
    for tid, c in zip(["p0", "p1", "r0", "r1", "r2", "r3"], [a, b, *rest]):
        s.on_trial_complete(tid, {"loss": loss(c)})
    assert s.generation == 1 and s.strategy.countevals == 6  # the injected rows were accepted


@pytest.mark.parametrize(
    "change, message",
    [
        ({"opt": {"name": "lion", "lr": 1e-3}}, r"\['opt/name'\] = 'lion' is not one of the choices"),
        ({"layers": 2.5}, r"\['layers'\] = 2.5 is not an integer"),
        ({"layers": 9}, r"\['layers'\] = 9 is not a number in \[1, 8\]"),
        ({"width": 40}, r"\['width'\] = 40 is not a multiple of q=16"),
        ({"opt": {"name": 1, "lr": 1e-3}}, r"\['opt/name'\] = 1 is not one of the choices"),
    ],
)
def test_points_outside_the_space_raise_before_anything_runs(change, message):
    point = {**POINT, **change}
    with pytest.raises(ValueError, match=message):
        make(points_to_evaluate=[POINT, point])
    s = ESSearcher(points_to_evaluate=[point], popsize=6, seed=0)
    with pytest.raises(ValueError, match=r"points_to_evaluate\[0\]"):
        s.set_search_properties("loss", "min", SPACE)
    assert s.strategy is None


def test_known_results_with_categories_are_told():
    s = make(points_to_evaluate=[POINT], evaluated_rewards=[loss(POINT)])
    s.add_evaluated_point({**POINT, "opt": {"name": "rmsprop", "lr": 1e-3}}, 0.5)
    configs = drive(s, 4)  # the two known results hold rows 0 and 1 of the first generation
    assert s.generation == 1 and s.n_told == 6 and s.strategy.countevals == 6
    assert list(s.strategy.ask()[:, 0]) != []  # the strategy goes on after the injected rows
    assert len(configs) == 4
    with pytest.raises(ValueError, match=r"\['opt/name'\] = 'lion'"):
        s.add_evaluated_point({**POINT, "opt": {"name": "lion", "lr": 1e-3}}, 0.5)


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheduling", ["sync", "async"])
def test_save_restore_in_the_middle_of_a_mixed_search_is_exact(tmp_path, scheduling):
    a = make(scheduling=scheduling, points_to_evaluate=[POINT])
    drive(a, 12)
    out = {f"m{i}": a.suggest(f"m{i}") for i in range(3)}  # a generation in progress
    a.on_trial_complete("m1", {"loss": loss(out["m1"])})
    a.save(tmp_path / "ck")
    saved_told = a.n_told
    b = ESSearcher(SPACE, metric="loss", mode="min", scheduling=scheduling)
    b.restore(tmp_path / "ck")
    assert b.strategy_name == "catcmawm" and b.space.mixed and b.pending_trial_ids == a.pending_trial_ids
    bare = ESSearcher(metric="loss", mode="min", scheduling=scheduling)  # space and strategy from the checkpoint
    bare.restore(tmp_path / "ck")
    assert bare.strategy_name == "catcmawm" and bare.space == b.space and bare.n_told == saved_told
    c = copy.deepcopy(a)  # what Tune does with a searcher
    for s in (a, b, c):
        for tid in ("m0", "m2"):
            s.on_trial_complete(tid, {"loss": loss(out[tid])})
    ca, cb, cc = drive(a, 18, "n"), drive(b, 18, "n"), drive(c, 18, "n")
    assert ca == cb == cc and a.n_told == b.n_told == c.n_told >= 24
    assert np.array_equal(a.strategy.mean, b.strategy.mean) and a.strategy.sigma == b.strategy.sigma
    assert np.array_equal(a.strategy.q, b.strategy.q)  # the categorical distribution too
    assert a.best_result == b.best_result
    named = make(strategy="catcmawm", scheduling=scheduling)
    named.restore(tmp_path / "ck")
    assert named.n_told == saved_told and named.pending_trial_ids == ("m0", "m2")
    other = make({**SPACE, "x": tune.uniform(0.0, 2.0)}, scheduling=scheduling)
    with pytest.raises(ValueError, match="was written for the space"):
        other.restore(tmp_path / "ck")


def test_a_cmaes_checkpoint_of_an_int_space_restores_into_an_unnamed_searcher(tmp_path):
    ints = {"n": tune.randint(1, 9), "x": tune.uniform(0, 1)}
    a = make(ints, strategy="cmaes")
    drive(a, 6, fun=lambda c: (c["n"] - 3) ** 2 + c["x"])
    a.save(tmp_path / "ck")
    b = make(ints)  # would pick catcmawm; the checkpoint's cmaes wins
    assert b.strategy_name == "catcmawm"
    b.restore(tmp_path / "ck")
    assert b.strategy_name == "cmaes" and not b.space.mixed
    assert drive(a, 12, "n", fun=lambda c: c["x"]) == drive(b, 12, "n", fun=lambda c: c["x"])
    with pytest.raises(ValueError, match="holds strategy='cmaes'"):
        make(ints, strategy="catcmawm").restore(tmp_path / "ck")


def test_restart_after_convergence_on_a_mixed_space():
    s = make(tolflatfitness=1)
    configs = drive(s, 6 + 12, fun=lambda c: 1.0)  # flat: tolflatfitness fires after each generation
    assert [r["popsize"] for r in s.restart_history] == [12, 24] and s.strategy_name == "catcmawm"
    assert s.strategy.popsize == 24 and s.strategy.variable_kinds[0] == "k"
    configs += drive(s, 24, "n")  # the restarted mixed strategy learns again
    assert s.n_told == 42 and len(s.restart_history) == 2
    lo, hi = s.space.bounds
    assert np.all(s.strategy.mean >= lo - 1e-12) and np.all(s.strategy.mean <= hi + 1e-12)
    assert all(c["opt"]["name"] in BASE and 1 <= c["layers"] <= 8 for c in configs)


# ------------------------------------------------------------------------------------------------
# a real Tune run
# ------------------------------------------------------------------------------------------------
class Recording(ESSearcher):
    """Keeps the configs it suggested, in order (its own attribute: pickled into checkpoints)."""

    def __init__(self, *args, **kw):
        self.suggested = []
        super().__init__(*args, **kw)

    def suggest(self, trial_id):
        c = super().suggest(trial_id)
        if isinstance(c, dict):
            self.suggested.append(c)
        return c


def objective(config):
    return {"loss": loss(config)}


def test_tuner_learns_which_category_is_best(ray_tune_local, tmp_path):
    popsize, generations = 6, 7
    searcher = Recording(popsize=popsize, seed=0, points_to_evaluate=[POINT])
    tuner = tune.Tuner(
        objective,
        param_space=SPACE,
        tune_config=tune.TuneConfig(
            search_alg=searcher, metric="loss", mode="min", num_samples=popsize * generations, reuse_actors=True
        ),
        run_config=tune.RunConfig(name="mixed", storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == popsize * generations and results.num_errors == 0
    assert searcher.strategy_name == "catcmawm" and searcher.generation == generations
    configs = searcher.suggested
    assert configs[0] == {**POINT, "const": "kept"}  # the point ran as given
    names = [c["opt"]["name"] for c in configs]
    late = names[-2 * popsize :]
    share = late.count("rmsprop") / len(late)
    assert share >= 0.5 and max(BASE, key=late.count) == "rmsprop"  # chance: 0.25
    assert names[:popsize].count("rmsprop") < share * popsize  # learned, not drawn so from the start
    best = results.get_best_result().config
    assert best["opt"]["name"] == "rmsprop" and searcher.best_result["config"]["opt"]["name"] == "rmsprop"
    assert searcher.best_result["metric"] == pytest.approx(results.get_best_result().metrics["loss"])
    assert int(np.argmax(searcher.strategy.q[0])) == 2 and searcher.strategy.mean[0] == 2  # rmsprop
    for r in results:
        c = r.config
        assert c["opt"]["name"] in BASE and isinstance(c["layers"], int) and 1 <= c["layers"] <= 8
        assert c["width"] in range(16, 129, 16) and c["const"] == "kept"


def test_converted_space_is_accepted_and_matches_tunes_param_space():
    converted = ESSearcher.convert_search_space(SPACE)  # Ray's convention: a staticmethod
    s = ESSearcher(converted, metric="loss", mode="min", popsize=6, seed=0)
    assert s.strategy_name == "catcmawm" and s.space == make().space
    assert s.set_search_properties("loss", "min", SPACE) is True  # the same space, constants adopted
    assert s.suggest("a")["const"] == "kept"
    assert s.set_search_properties("loss", "min", {**SPACE, "layers": tune.randint(1, 5)}) is False
    ints = convert_search_space({"n": tune.randint(1, 9)})
    assert not ints.space.mixed  # converted for any strategy; the searcher adapts it to its own
    assert ESSearcher(ints, metric="loss", mode="min").space.mixed
    assert not ESSearcher(ints, "cmaes", metric="loss", mode="min").space.mixed


def test_a_searcher_unpickled_from_an_older_esopt_restores(tmp_path):
    # Tuner.restore unpickles the searcher object of the experiment, then restores its checkpoint:
    # an object pickled before this change lacks the newer attributes
    a = make({"x": tune.uniform(0, 1)})
    drive(a, 3, fun=lambda c: c["x"])
    a.save(tmp_path / "ck")
    old = make({"x": tune.uniform(0, 1)})
    for name in ("_strategy_arg", "_fidelity_args", "_fidelity", "_levels", "_done_levels"):
        delattr(old, name)
    old.restore(tmp_path / "ck")
    assert old.strategy_name == "cmaes" and old.best_result == a.best_result
    assert drive(old, 9, "n", fun=lambda c: c["x"]) == drive(a, 9, "n", fun=lambda c: c["x"])
