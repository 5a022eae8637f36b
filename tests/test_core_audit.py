"""Regression tests of an audit of the optimizer core as a library user meets it.

Each test failed before its fix: a strategy rebuilt from its checkpoint resolved the default
``maxiter`` and ``tolstagnation`` with the rounded popsize (7775 -> 8116 iterations for n = 10),
so a restored run stopped later than the uninterrupted one; a generator on another numpy bit
generator than PCG64 could not be checkpointed (TypeError) or loaded (ValueError); thresholds given
as strings or bools were taken (``maxiter=True`` stopped after one iteration); ``seed=True`` was
taken as seed 1; a failed ``IPOP(...)`` had already advanced the Generator passed in; and
``minimize`` dropped ``max_restarts`` when ``options`` was a read-only mapping; a complex or string
``x0`` was cast to floats (the imaginary part dropped with a warning), and so were a complex ``f``
or ``X`` given to ``tell``.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

import esopt
from cluster.config import parse_config
from esopt.testfunctions import rastrigin, sphere

CLASSES = [esopt.CMAES, esopt.SepCMAES, esopt.LMMAES, esopt.CanonicalES]


def run(es, generations):
    for _ in range(generations):
        X = es.ask()
        es.tell(X, sphere(X))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_rebuilt_strategy_resolves_the_default_tolerances_as_the_original(cls):
    es = cls(np.ones(10), 0.5, seed=1)
    clone = cls.from_state_dict(es.state_dict())
    assert clone.tolerances == es.tolerances
    # pycma's default uses the unrounded popsize 4 + 3 ln n, a given popsize uses itself
    assert es.tolerances.maxiter == float(100 + 150 * 13**2 // (4 + 3 * np.log(10)) ** 0.5)
    given = cls(np.ones(10), 0.5, seed=1, popsize=10)
    assert cls.from_state_dict(given.state_dict()).tolerances == given.tolerances != es.tolerances


@pytest.mark.parametrize("wrapper", [esopt.IPOP, esopt.BIPOP])
def test_a_restored_restart_wrapper_stops_when_the_uninterrupted_one_does(tmp_path, wrapper):
    """maxiter of the inner run decides when it ends; the restored one ran on to the rounded default."""
    es = wrapper("cmaes", np.ones(3), 0.5, seed=2, tolerances={"tolfun": 0, "tolfunhist": 0, "tolx": 0})
    run(es, 3)
    clone = esopt.load(esopt.save(es, tmp_path / "w.npz"))
    assert clone.inner.tolerances == es.inner.tolerances
    for a in (es, clone):
        while a.result.nfev < 6000 and not a.stop():
            X = a.ask()
            a.tell(X, rastrigin(X))
    assert clone.result.nfev == es.result.nfev and clone.restart_history == es.restart_history


@pytest.mark.parametrize("bit_generator", ["PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937"])
@pytest.mark.parametrize("cls", [esopt.CMAES, esopt.IPOP], ids=lambda c: c.__name__)
def test_checkpoints_hold_every_numpy_bit_generator(tmp_path, bit_generator, cls):
    rng = np.random.Generator(getattr(np.random, bit_generator)(7))
    es = cls(np.ones(4), 0.5, seed=rng) if cls is esopt.CMAES else cls("cmaes", np.ones(4), 0.5, seed=rng)
    run(es, 4)
    clone = esopt.load(esopt.save(es, tmp_path / "s.npz"))
    assert type(clone._rng.bit_generator).__name__ == bit_generator
    for _ in range(3):
        X = es.ask()
        assert np.array_equal(X, clone.ask())
        es.tell(X, sphere(X))
        clone.tell(X, sphere(X))


def test_a_state_dict_naming_an_unknown_bit_generator_is_refused():
    d = esopt.CMAES(np.ones(3), 0.5, seed=1).state_dict()
    state = json.loads(d["rng"])
    state["bit_generator"] = "RandomState"
    with pytest.raises(ValueError, match="rng entry names bit generator 'RandomState'; readable: .*PCG64"):
        esopt.CMAES.from_state_dict({**d, "rng": json.dumps(state)})


@pytest.mark.parametrize(
    "tolerances, message",
    [
        ({"maxiter": True}, "tolerances.maxiter must be a number, got True"),
        ({"tolfun": "1e-3"}, "tolerances.tolfun must be a number, got '1e-3'"),
        ({"maxfevals": np.bool_(True)}, "tolerances.maxfevals must be a number"),
        ({"noeffectaxis": 1}, "tolerances.noeffectaxis must be True or False, got 1"),
    ],
)
def test_thresholds_that_are_not_numbers_are_refused_everywhere(tolerances, message):
    with pytest.raises(TypeError, match=message):
        esopt.CMAES(np.ones(3), 0.5, tolerances=tolerances)
    with pytest.raises(TypeError, match=message):
        esopt.check_options("cmaes", tolerances)
    with pytest.raises(TypeError, match=message):
        esopt.minimize(lambda x: float(x @ x), np.ones(3), 0.5, options=tolerances)
    assert esopt.CMAES(np.ones(3), 0.5, tolerances={"noeffectaxis": np.bool_(False)}).tolerances.noeffectaxis is False


def test_a_campaign_config_takes_a_threshold_that_yaml_read_as_a_string():
    """PyYAML reads `tolfun: 1e-3` (no dot) as the string '1e-3'; the config takes the number."""
    raw = {
        "name": "t",
        "objective": "tests.helpers_objectives:sphere",
        "space": {"x": {"lower": 0.0, "upper": 1.0}},
        "strategy": {"options": {"tolfun": "1e-3", "maxiter": "40"}},
        "budget": {"max_trials": 8},
    }
    cfg = parse_config(raw, check_objective=False)
    assert cfg.strategy.options == {"tolfun": 0.001, "maxiter": 40.0}
    with pytest.raises(ValueError, match=r"strategy\.options.*tolerances\.tolfun must be a number, got 'small'"):
        parse_config({**raw, "strategy": {"options": {"tolfun": "small"}}}, check_objective=False)


@pytest.mark.parametrize("seed", [True, False, np.bool_(True)])
def test_a_bool_seed_is_refused(seed):
    with pytest.raises(TypeError, match="seed must be an int, a numpy.random.Generator or None, got bool"):
        esopt.CMAES(np.ones(3), 0.5, seed=seed)


def test_a_failed_restart_wrapper_leaves_the_generator_passed_in_as_it_was():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    with pytest.raises(ValueError, match="sigma0"):
        esopt.IPOP("cmaes", np.ones(3), -1.0, seed=rng)
    with pytest.raises(ValueError, match="tolfun"):
        esopt.BIPOP("cmaes", np.ones(3), 0.5, seed=rng, tolerances={"tolfun": -1.0})
    assert rng.bit_generator.state == before
    # and a wrapper built from it afterwards is the one built from a fresh default_rng(0)
    a = esopt.IPOP("cmaes", np.ones(3), 0.5, seed=rng).ask()
    assert np.array_equal(a, esopt.IPOP("cmaes", np.ones(3), 0.5, seed=np.random.default_rng(0)).ask())


def test_minimize_passes_max_restarts_on_with_read_only_options():
    opts = types.MappingProxyType({"tolfun": 1e-3})
    r = esopt.minimize(
        rastrigin, np.full(2, 3.0), 1.0, restarts="ipop", max_restarts=0, seed=1, vectorized=True, options=opts
    )
    assert r.strategy.max_restarts == 0 and len(r.strategy.restart_history) == 1
    assert r.stop.get("maxrestarts") == 0


@pytest.mark.parametrize("x0", [np.ones(2) + 1j, ["1", "2"], "12", [True, False], np.array([1.0, None])])
def test_an_x0_that_is_not_real_numbers_is_refused_not_cast(x0):
    """complex x0 lost its imaginary part (a ComplexWarning), strings were parsed as numbers."""
    with pytest.raises(TypeError, match="x0 must be an array of real numbers"):
        esopt.CMAES(x0, 0.5)
    with pytest.raises(TypeError, match="x0 must be an array of real numbers"):
        esopt.minimize(lambda x: float(x @ x), x0, 0.5)
    assert np.array_equal(esopt.CMAES(np.array([1, 2], dtype=np.int8), 0.5).x0, [1.0, 2.0])


@pytest.mark.parametrize("wrapper", ["ipop", "bipop"])
def test_a_restart_wrapper_reports_the_maxfevals_the_user_set(wrapper):
    """each run after the first gets the budget left; its stop (529.0) was reported as the search's."""
    r = esopt.minimize(
        rastrigin, np.full(3, 3.0), 1.0, restarts=wrapper, seed=2, vectorized=True, options={"maxfevals": 3000}
    )
    assert len(r.strategy.restart_history) > 1 and r.stop == {"maxfevals": 3000.0} and r.nfev >= 3000


def test_a_restart_wrapper_warns_once_about_non_finite_values():
    es = esopt.IPOP("cmaes", np.ones(2), 0.5, seed=1, tolerances={"tolfun": 1e-2})
    with pytest.warns(RuntimeWarning) as record:
        for _ in range(300):
            X = es.ask()
            f = sphere(X)
            f[0] = np.nan
            es.tell(X, f)
    assert len(es.restart_history) > 2
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1


@pytest.mark.parametrize("kw", [{"tau_threshold": "x"}, {"tau_threshold": True}, {"maxfevals": True}])
def test_the_surrogate_refuses_a_threshold_that_is_not_a_number_with_type_error(kw):
    with pytest.raises(TypeError, match="must be a number"):
        esopt.LQSurrogate(esopt.CMAES(np.ones(3), 0.5, seed=1), **kw)
    with pytest.raises(ValueError, match="tau_threshold must be a number in"):
        esopt.LQSurrogate(esopt.CMAES(np.ones(3), 0.5, seed=1), tau_threshold=1.5)


def _strategies_for_complex():
    yield esopt.CMAES(np.ones(3), 0.5, seed=1)
    yield esopt.CatCMAwM(np.array([0.5, 1.0, 0.0]), 0.5, integers=[1], categories={2: 3}, seed=1)
    yield esopt.IPOP(esopt.CMAES, np.ones(3), 0.5, seed=1)
    yield esopt.LQSurrogate(esopt.CMAES(np.ones(3), 0.5, seed=1))


@pytest.mark.parametrize("which", ["X", "f"])
@pytest.mark.parametrize("k", range(4))
def test_tell_refuses_complex_values_before_any_change(which, k):
    """A complex f (or X) was cast to floats with only numpy's ComplexWarning: the strategy
    learned from the real parts and never said so."""
    es = list(_strategies_for_complex())[k]
    X = es.ask()
    f = sphere(X)
    before = json.dumps(es.state_dict(), default=str)
    args = (X + 0j, f) if which == "X" else (X, f + 1j)
    with pytest.raises(TypeError, match=f"{which} must be real, got a complex array"):
        es.tell(*args)
    assert json.dumps(es.state_dict(), default=str) == before
    es.tell(X, f)  # the pending ask is still there
