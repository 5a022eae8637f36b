"""esopt.minimize: result fields, evaluation modes, options, callback, errors."""

import numpy as np
import pytest
from scipy.optimize import OptimizeResult

import esopt
from esopt import CMAES
from esopt import testfunctions as tf
from esopt.minimize import SUCCESS_CRITERIA, is_success


def test_result_fields_and_success():
    r = esopt.minimize(tf.sphere, np.full(5, 2.0), 1.0, seed=1, options={"ftarget": 1e-9})
    assert isinstance(r, OptimizeResult)
    assert r.success and r.stop == {"ftarget": 1e-9} and "ftarget" in r.message
    assert r.fun <= 1e-9 and tf.sphere(r.x) == r.fun and r.x.shape == (5,)
    assert isinstance(r.strategy, CMAES)
    assert r.nfev == r.strategy.countevals == r.nit * r.strategy.popsize


def test_convergence_by_tolfun_is_success():
    r = esopt.minimize(tf.sphere, np.ones(3), 1.0, seed=2)
    assert r.success and set(r.stop) & SUCCESS_CRITERIA
    assert r.fun < 1e-10


def test_budget_stop_is_not_success():
    r = esopt.minimize(tf.rosenbrock, np.zeros(6), 0.5, seed=0, options={"maxfevals": 200})
    assert not r.success and "maxfevals" in r.stop
    assert 200 <= r.nfev < 200 + r.strategy.popsize


def test_vectorized_calls_once_per_generation():
    calls = []

    def fun(X):
        calls.append(X.shape)
        return tf.ellipsoid(X)

    r = esopt.minimize(fun, np.ones(4), 1.0, seed=3, vectorized=True, options={"maxiter": 7})
    assert r.nit == 7 and calls == [(r.strategy.popsize, 4)] * 7


def test_scalar_mode_calls_once_per_candidate_and_same_result_as_vectorized():
    calls = []

    def fun(x):
        calls.append(x.shape)
        return float(tf.ellipsoid(x))

    a = esopt.minimize(fun, np.ones(4), 1.0, seed=3, options={"maxiter": 20})
    b = esopt.minimize(tf.ellipsoid, np.ones(4), 1.0, seed=3, vectorized=True, options={"maxiter": 20})
    assert len(calls) == a.nfev and set(calls) == {(4,)}
    assert np.array_equal(a.x, b.x) and a.fun == b.fun


def test_args_are_passed_as_in_scipy():
    def shifted(x, c, scale):
        return float(scale * np.sum((x - c) ** 2))

    def shifted_pop(X, c, scale):
        return scale * np.sum((X - c) ** 2, axis=1)

    a = esopt.minimize(shifted, np.zeros(3), 0.5, args=(1.5, 2.0), seed=4)
    b = esopt.minimize(shifted_pop, np.zeros(3), 0.5, args=(1.5, 2.0), seed=4, vectorized=True)
    np.testing.assert_allclose(a.x, 1.5, atol=1e-5)
    assert np.array_equal(a.x, b.x) and a.fun == b.fun


def test_seed_reproducible():
    a = esopt.minimize(tf.rastrigin, np.full(3, 2.0), 1.0, seed=5, options={"maxiter": 30})
    b = esopt.minimize(tf.rastrigin, np.full(3, 2.0), 1.0, seed=5, options={"maxiter": 30})
    assert np.array_equal(a.x, b.x)


def test_callback_sees_strategy_and_can_stop():
    seen = []

    def cb(es):
        seen.append(es.countiter)
        return es.countiter >= 5

    r = esopt.minimize(tf.sphere, np.ones(3), 1.0, seed=0, callback=cb)
    assert seen == [1, 2, 3, 4, 5]
    assert r.stop == {"callback": True} and not r.success and r.nit == 5


def test_options_go_to_tolerances_and_strategy():
    options = {"active": False, "maxiter": 3, "tolx": 1e-3}
    r = esopt.minimize(tf.sphere, np.ones(3), 1.0, seed=0, options=options)
    assert r.strategy.active is False and np.all(r.strategy.weights >= 0)
    assert r.strategy.tolerances.tolx == 1e-3 and r.stop == {"maxiter": 3}


def test_bounds_and_popsize_passed():
    r = esopt.minimize(tf.sphere, np.full(2, 2.0), 1.0, seed=0, bounds=(1.0, 3.0), popsize=9, options={"maxiter": 60})
    assert r.strategy.popsize == 9
    np.testing.assert_allclose(r.x, [1.0, 1.0], atol=1e-6)


def test_nothing_evaluated_returns_the_initial_mean():
    r = esopt.minimize(tf.sphere, [1.0, 2.0], 1.0, options={"maxiter": 0})
    assert r.nfev == 0 and np.array_equal(r.x, [1.0, 2.0]) and r.fun == np.inf and not r.success


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(options={"tolfoo": 1}), ValueError, "tolfoo"),
        (dict(options={"m": 3}), ValueError, "unknown option"),
        (dict(options=[("tolx", 1)]), TypeError, "options"),
        (dict(method="nelder-mead"), ValueError, "unknown method"),
        (dict(restarts="sometimes"), ValueError, "restarts"),
        (dict(callback=3), TypeError, "callback"),
        (dict(args=[1.0]), TypeError, "args must be a tuple"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        esopt.minimize(tf.sphere, np.ones(2), 1.0, **kwargs)


def test_bad_fun_and_outputs():
    with pytest.raises(TypeError, match="callable"):
        esopt.minimize("sphere", np.ones(2), 1.0)
    with pytest.raises(TypeError, match="scalar"):
        esopt.minimize(lambda x: x, np.ones(2), 1.0)
    with pytest.raises(ValueError, match="vectorized"):
        esopt.minimize(lambda X: X, np.ones(2), 1.0, vectorized=True)
    with pytest.raises(ValueError, match="sigma0"):
        esopt.minimize(tf.sphere, np.ones(2), -1.0)


def test_success_definition():
    assert is_success({"ftarget": 0.0}) and is_success({"ftarget": 0.0, "maxfevals": 10})
    assert is_success({"tolfun": 1e-11}) and is_success({"tolx": 1e-11, "noeffectaxis": True})
    assert not is_success({"tolfun": 1e-11, "maxrestarts": 3})
    assert not is_success({"tolfun": 1e-11, "maxiter": 100})
    assert not is_success({"tolstagnation": 10}) and not is_success({"tolflatfitness": 1})
    assert not is_success({})


def test_restarts_wrapper_is_used():
    r = esopt.minimize(
        tf.rastrigin,
        np.full(3, 3.0),
        2.0,
        seed=1,
        vectorized=True,
        restarts="ipop",
        max_restarts=2,
        options={"tolfun": 1e-6},
    )
    assert type(r.strategy).__name__ == "IPOP"
    assert r.stop.get("maxrestarts") == 2 or "ftarget" in r.stop
    assert r.success == is_success(r.stop)
    assert r.nfev == r.strategy.result.nfev and tf.rastrigin(r.x) == r.fun


def test_max_restarts_without_restarts_is_refused():
    calls = []
    with pytest.raises(ValueError, match="max_restarts=2 needs a restart scheme"):
        esopt.minimize(lambda x: calls.append(1) or float(x @ x), np.ones(2), 0.5, max_restarts=2)
    assert calls == []  # refused before anything ran


def test_max_restarts_is_passed_on_without_options():
    r = esopt.minimize(lambda x: float(x @ x) + 1.0, np.ones(2), 0.5, restarts="ipop", max_restarts=1, seed=0)
    assert r.stop.get("maxrestarts") == 1  # was the wrapper's default 9 when options was left out
