"""The strategy registry: options, the one builder, and a toy strategy registered in ONE place
(the ``toy`` fixture) and used from ``esopt.minimize``, a campaign config run on a local Ray
instance, and ``cluster.tune.ESSearcher``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

import esopt
from esopt.base import EvolutionStrategy, param_field
from esopt.registry import OptionSpec, StrategyInfo, build, check_options, flat_options, split_options
from esopt.testfunctions import sphere


# ----- the toy strategy ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ToyParams:
    """Frozen parameters: ``mu`` parents (the best ``mu`` candidates are averaged), ``decay`` (the
    factor applied to sigma every generation)."""

    mu: int
    decay: float


@dataclass
class ToyState:
    """Evolving state: ``mean`` (n,), ``sigma``."""

    mean: np.ndarray
    sigma: float


class ToyES(EvolutionStrategy):
    """(mu/mu, lambda)-ES with a geometric step-size schedule: x ~ N(mean, sigma^2 I), mean <- the
    average of the mu best, sigma <- decay * sigma.  Options ``mu`` (default popsize // 2) and
    ``decay`` (default 0.9)."""

    name: ClassVar[str] = "toy"
    mu = param_field()
    decay = param_field()

    def __init__(self, x0, sigma0, *, popsize=None, seed=None, bounds=None, tolerances=None, mu=None, decay=0.9):
        super().__init__(x0, sigma0, popsize=popsize, seed=seed, bounds=bounds, tolerances=tolerances)
        if not 0 < decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {decay!r}")
        self.params = ToyParams(self.popsize // 2 if mu is None else int(mu), float(decay))
        self.state = ToyState(mean=self.x0.copy(), sigma=self.sigma0)

    def _init_options(self) -> dict[str, Any]:
        return {"mu": self.params.mu, "decay": self.params.decay}

    def _sample(self) -> np.ndarray:
        return self.state.mean + self.state.sigma * self._rng.standard_normal((self.popsize, self.n))

    def _update(self, Y, f, order, injected) -> None:
        st = self.state
        st.mean = Y[order[: self.params.mu]].mean(axis=0)
        st.sigma = st.sigma * self.params.decay

    def _search_view_parts(self) -> dict[str, Any]:
        return {"stds": np.full(self.n, self.state.sigma), "pc": None, "eigvals": None, "B": None}


TOY = StrategyInfo(
    "toy",
    f"{__name__}:ToyES",
    (
        OptionSpec("mu", int, None, "parents averaged; default popsize // 2", minimum=1),
        OptionSpec("decay", float, 0.9, "sigma factor per generation"),
    ),
    "toy (mu/mu, lambda)-ES with a geometric step-size schedule (tests only)",
)


@pytest.fixture
def toy():
    """The one place the toy strategy is registered (removed again afterwards)."""
    esopt.register(TOY)
    try:
        yield TOY
    finally:
        esopt.registry.unregister("toy")


# ----- the registry itself ------------------------------------------------------------------------
def test_every_strategy_lists_its_constructor_options():
    import inspect

    common = {"self", "x0", "sigma0", "popsize", "seed", "bounds", "tolerances"}
    for name, info in esopt.STRATEGIES.items():
        cls = info.load()
        assert cls.name == name
        params = inspect.signature(cls.__init__).parameters
        assert set(params) - common == set(info.option_names), name
        for o in info.options:
            assert params[o.name].default == o.default or (
                o.name == "dtype" and np.dtype(params[o.name].default).name == o.default
            )
            assert o.doc
    for name, info in esopt.RESTARTS.items():
        assert info.load().name == name and set(info.option_names) == {"max_restarts", "incpopsize"}


def test_check_options_names_the_bad_key_and_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'nosuch'.*\['active', 'sampling'\].*tolfun"):
        check_options("cmaes", {"nosuch": 1})
    with pytest.raises(ValueError, match="restarts"):
        check_options("cmaes", {"max_restarts": 3})  # a wrapper option without a wrapper
    with pytest.raises(TypeError, match="'active'"):
        check_options("cmaes", {"active": "yes"})
    with pytest.raises(TypeError, match="'m'"):
        check_options("lmmaes", {"m": 2.5})
    with pytest.raises(ValueError, match="'dtype'.*float32"):
        check_options("lmmaes", {"dtype": "float16"})
    with pytest.raises(ValueError, match="max_restarts"):
        check_options("cmaes", {"max_restarts": -1}, restarts="ipop")
    with pytest.raises(ValueError, match="tolfun"):
        check_options("cmaes", {"tolfun": -1.0})
    with pytest.raises(ValueError, match="unknown method"):
        check_options("nelder-mead", {})
    with pytest.raises(ValueError, match="unknown restarts"):
        check_options("cmaes", {}, restarts="sometimes")
    with pytest.raises(TypeError, match="mapping"):
        check_options("cmaes", [("tolfun", 1.0)])


def test_check_options_normalizes_and_splits():
    opts = {"dtype": np.float32, "m": np.int64(3), "tolfun": 1e-6, "incpopsize": 3}
    assert check_options("lmmaes", opts, restarts="bipop") == {
        "dtype": "float32",
        "m": 3,
        "tolfun": 1e-6,
        "incpopsize": 3,
    }
    strat, tol, wrap = split_options("lmmaes", opts, restarts="bipop")
    assert strat == {"dtype": "float32", "m": 3} and tol == {"tolfun": 1e-6} and wrap == {"incpopsize": 3}
    assert flat_options({"active": False, "tolerances": {"tolx": 1e-3}}) == {"active": False, "tolx": 1e-3}
    assert flat_options({"tolerances": esopt.Tolerances(maxiter=7)}) == {"maxiter": 7}
    with pytest.raises(ValueError, match="both"):
        flat_options({"tolx": 1.0, "tolerances": {"tolx": 2.0}})


def test_build_passes_every_kind_of_option():
    es = build(
        "lmmaes",
        np.ones(5),
        0.5,
        restarts="ipop",
        popsize=8,
        seed=1,
        bounds=(-2.0, 2.0),
        options={"m": 2, "mirrored": False, "maxiter": 7, "max_restarts": 3, "incpopsize": 1.5},
    )
    assert isinstance(es, esopt.IPOP) and es.max_restarts == 3 and es.incpopsize == 1.5
    assert es.inner.params.m == 2 and es.inner.params.mirrored is False and es.popsize == 8
    assert es.tolerances_given.maxiter == 7 and es.bounds is not None
    twin = build(
        "lmmaes",
        np.ones(5),
        0.5,
        restarts="ipop",
        popsize=8,
        seed=1,
        bounds=(-2.0, 2.0),
        options={"m": 2, "mirrored": False, "maxiter": 7, "max_restarts": 3, "incpopsize": 1.5},
    )
    assert np.array_equal(es.ask(), twin.ask())


def test_register_rejects_clashes():
    with pytest.raises(ValueError, match="already registered"):
        esopt.register(StrategyInfo("cmaes", "esopt.cma:CMAES"))
    with pytest.raises(ValueError, match="clash"):
        esopt.register(StrategyInfo("bad", "x:Y", (OptionSpec("tolfun", float, 1.0, "no"),)))
    with pytest.raises(TypeError):
        esopt.register("cmaes")
    assert "bad" not in esopt.STRATEGIES


# ----- the toy strategy from minimize, ESSearcher and a campaign ------------------------------------
def test_toy_from_minimize(toy):
    res = esopt.minimize(
        sphere, np.full(3, 2.0), 1.0, method="toy", vectorized=True, seed=0, options={"decay": 0.95, "maxiter": 150}
    )
    assert res.nit == 150 and isinstance(res.strategy, ToyES) and res.strategy.params.decay == 0.95
    assert res.strategy.sigma == pytest.approx(0.95**150, rel=1e-12)  # the option reached the strategy
    assert res.fun < 1e-6  # from f(x0) = 12 (1e-8 .. 1e-7 measured over 5 seeds)
    with pytest.raises(ValueError, match="'nosuch'.*decay"):
        esopt.minimize(sphere, np.ones(3), 1.0, method="toy", options={"nosuch": 1})
    # checkpoints name the registered class and continue bit-for-bit
    es = res.strategy
    loaded = esopt.load(esopt.checkpoint.state_to_npz_bytes(es.state_dict()))
    assert type(loaded) is ToyES and loaded.params == es.params
    assert np.array_equal(es.ask(), loaded.ask())


def test_toy_inside_a_restart_wrapper(toy):
    es = build("toy", np.ones(3), 1.0, restarts="ipop", seed=2, options={"mu": 2, "maxiter": 3, "max_restarts": 2})
    while not es.stop():
        X = es.ask()
        es.tell(X, sphere(X))
    assert [h["popsize"] for h in es.restart_history] == [
        7,
        14,
        28,
    ] and es.inner.params.mu == 2  # 4 + floor(3 ln 3) = 7


def test_toy_from_essearcher(toy):
    from ray import tune

    from cluster.tune import ESSearcher

    space = {"x": tune.uniform(-1.0, 1.0), "y": tune.uniform(0.0, 2.0)}
    searcher = ESSearcher(space, "toy", metric="loss", mode="min", popsize=4, seed=3, decay=0.5, mu=1)
    configs = [searcher.suggest(f"t{i}") for i in range(4)]
    assert all(-1 <= c["x"] <= 1 and 0 <= c["y"] <= 2 for c in configs)
    assert searcher._strategy.name == "toy" and searcher._strategy.params.decay == 0.5
    for i, c in enumerate(configs):
        searcher.on_trial_complete(f"t{i}", {"loss": (c["x"] - 0.2) ** 2 + (c["y"] - 1.0) ** 2})
    assert searcher._strategy.countiter == 1 and searcher._strategy.sigma == pytest.approx(0.15)
    assert searcher.suggest("t4") is not None  # the next generation
    with pytest.raises(ValueError, match="decay"):
        ESSearcher(space, "toy", nosuch=1)


def test_toy_from_a_campaign_config(toy, ray_local, tmp_path):
    from cluster import Campaign, Journal, parse_config

    raw = {
        "name": "toy",
        "objective": "helpers_objectives:sphere",
        "space": {"a": {"lower": -1.0, "upper": 1.0}, "b": {"lower": 0.0, "upper": 2.0}},
        "strategy": {"name": "toy", "popsize": 3, "seed": 1, "sigma0": 0.3, "options": {"decay": 0.5, "mu": 1}},
        "budget": {"max_generations": 2},
        "resources": {"num_cpus": 1},
    }
    result = Campaign(parse_config(raw), tmp_path / "c").run()
    assert result.n_generations == 2 and result.n_trials == 6
    with Journal(tmp_path / "c", readonly=True) as j:
        gens = j.generations()
        assert [g["sigma"] for g in gens] == pytest.approx([0.15, 0.075])  # sigma0 * decay^g
    bad = {**raw, "strategy": {**raw["strategy"], "options": {"nosuch": 1}}}
    with pytest.raises(Exception, match="nosuch"):
        parse_config(bad)
