"""lq-CMA-ES pre-screening (esopt.LQSurrogate): evaluations against pycma's implementation,
exact checkpoints mid-generation, what the inner strategy is told, and bad input."""

import warnings

import numpy as np
import pytest

import esopt
from esopt import testfunctions as tf
from esopt.lqmodel import LQModel, features

SEEDS = range(10)


def _scalar(fun):
    return lambda x: float(fun(np.asarray(x)[None, :])[0])


def _esopt_evals(fun, n, seed):
    r = esopt.minimize(_scalar(fun), np.ones(n), 1.0, seed=seed, surrogate="lq", options={"ftarget": 1e-8})
    assert r.fun <= 1e-8, r.message
    return r.nfev


def _pycma_evals(fun, n, seed):
    import cma
    import cma.fitness_models as fm

    count = [0]

    def f(x):
        count[0] += 1
        return _scalar(fun)(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        surr = fm.SurrogatePopulation(f)
        surr.settings.logging_push = False
        es = cma.CMAEvolutionStrategy(n * [1.0], 1.0, {"ftarget": 1e-8, "verbose": -9, "seed": seed + 1})
        while not es.stop():
            X = es.ask()
            es.tell(X, surr(X))
    assert es.result[1] <= 1e-8
    return count[0]


@pytest.mark.parametrize("fun", [tf.sphere, tf.ellipsoid], ids=["sphere", "ellipsoid"])
def test_evaluations_to_target_match_pycma_lq(fun):
    """Median true evaluations to f = 1e-8 in 5-D within 25% of pycma 4.5.0's lq-CMA-ES
    (SurrogatePopulation) over 10 seeds, and under a third of plain CMA-ES's."""
    ours = np.median([_esopt_evals(fun, 5, s) for s in SEEDS])
    ref = np.median([_pycma_evals(fun, 5, s) for s in SEEDS])
    plain = np.median(
        [esopt.minimize(_scalar(fun), np.ones(5), 1.0, seed=s, options={"ftarget": 1e-8}).nfev for s in SEEDS]
    )
    assert abs(ours - ref) <= 0.25 * ref, (ours, ref)
    assert ours < plain / 3, (ours, plain)


def _run(es, rounds, fun, log=None):
    for _ in range(rounds):
        X = es.ask()
        if log is not None:
            log.append(X.copy())
        es.tell(X, fun(X))


def _mixed_objective(X):
    # continuous sphere + integer distance to 2 + category 1 best
    return np.sum((X[:, :3] - 0.3) ** 2, axis=1) + (X[:, 3] - 2) ** 2 + (X[:, 4] != 1)


def _make(kind):
    if kind == "cmaes":
        return esopt.LQSurrogate(esopt.CMAES(np.ones(4), 0.5, seed=3))
    if kind == "catcmawm":
        inner = esopt.CatCMAwM(
            [0.5, 0.5, 0.5, 3.0, 0.0],
            0.3,
            seed=4,
            integers=[3],
            categories={4: 3},
            bounds=([0] * 4 + [0], [1] * 3 + [6, 2]),
        )
        return esopt.LQSurrogate(inner)
    return esopt.LQSurrogate(esopt.IPOP("cmaes", np.ones(4), 0.5, seed=5, tolerances={"tolfun": 1e-3}), maxfevals=400)


def _objective(kind):
    return _mixed_objective if kind == "catcmawm" else tf.rosenbrock


@pytest.mark.parametrize("kind", ["cmaes", "catcmawm", "ipop"])
@pytest.mark.parametrize("cut", ["between_rounds", "pending_ask"])
def test_checkpoint_mid_generation_continues_bit_for_bit(kind, cut, tmp_path):
    """Save in the middle of a generation (some of its rows evaluated, the model's tau below the
    threshold; or with an ask pending), load, and the next 40 rounds ask exactly the same rows as
    the uninterrupted wrapper."""
    fun = _objective(kind)
    a, b = _make(kind), _make(kind)
    rounds = 0
    while rounds < 20 or a.progress.P is None:  # stop inside a generation after 20 rounds
        _run(a, 1, fun)
        rounds += 1
        assert rounds < 500
    _run(b, rounds, fun)
    assert 0 < b.progress.evaluated.sum() < b.popsize
    pending = None
    if cut == "pending_ask":
        pending = b.ask()
    path = esopt.save(b, tmp_path / "lq.npz")
    c = esopt.load(path, expected_class=esopt.LQSurrogate)
    if cut == "pending_ask":
        np.testing.assert_array_equal(c.ask(), pending)  # the same pending rows, nothing redrawn
    np.testing.assert_array_equal(c.progress.evaluated, a.progress.evaluated)
    la, lc = [], []
    _run(a, 40, fun, la)
    _run(c, 40, fun, lc)
    for x, y in zip(la, lc):
        np.testing.assert_array_equal(x, y)
    assert a.result.f == c.result.f and a.result.nfev == c.result.nfev
    assert type(c.inner) is type(a.inner)
    assert c.categories == a.categories


def test_a_half_evaluated_generation_tells_model_values_shifted_to_the_best_true_value():
    """With a good model most of a generation is never evaluated; the inner strategy is told all
    popsize values, the smallest equal to the generation's best true value, and a failed (NaN)
    evaluation ranks last as inf."""
    es = esopt.LQSurrogate(esopt.CMAES(np.ones(3), 0.5, seed=1, popsize=12))
    for _ in range(60):  # enough data for the quadratic model
        X = es.ask()
        es.tell(X, tf.sphere(X))
    seen, fail_once = [], True
    while True:
        gen = es.inner.countiter
        X = es.ask()
        f = tf.sphere(X)
        if fail_once and X.shape[0] >= 2:
            f[-1] = np.nan
            fail_once = False
        seen.extend(f)
        es.tell(X, f)
        if es.inner.countiter > gen:
            break
    assert len(seen) < es.popsize  # pre-screened: part of the generation was never evaluated
    told = es.inner.progress.f_sorted
    assert told.shape == (12,)
    assert told[0] == np.nanmin(seen)
    if not fail_once:
        assert np.isinf(told[-1])
    assert es.result.nfev < es.inner.countevals


def test_maxfevals_counts_true_evaluations():
    r = esopt.minimize(_scalar(tf.rosenbrock), np.zeros(4), 0.5, seed=2, surrogate="lq", options={"maxfevals": 60})
    assert r.stop == {"maxfevals": 60}
    assert 60 <= r.nfev < 60 + r.strategy.popsize
    assert r.strategy.inner.countevals > r.nfev  # the inner strategy counts surrogate-valued rows too


def test_bad_tells_are_refused_before_any_change():
    es = _make("catcmawm")
    with pytest.raises(ValueError, match="without a pending ask"):
        es.tell(np.zeros((1, 5)), [0.0])
    _run(es, 5, _mixed_objective)
    X = es.ask()
    before = es.state_dict()
    for bad_X, bad_f, msg in [
        (X[:-1] if len(X) > 1 else np.vstack([X, X]), _mixed_objective(X)[:1], "asked shape"),
        (X, np.zeros(len(X) + 1), "one value per asked row"),
        (X + 1e-9, _mixed_objective(X), "differs from the asked rows"),
    ]:
        with pytest.raises(ValueError, match=msg):
            es.tell(bad_X, bad_f)
    with pytest.raises(TypeError):
        es.tell(X, ["a"] * len(X))
    after = es.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        if isinstance(before[k], np.ndarray):
            np.testing.assert_array_equal(before[k], after[k], err_msg=k)
        else:
            assert before[k] == after[k], k
    es.tell(X, _mixed_objective(X))  # the pending ask is still good


def test_bad_arguments():
    with pytest.raises(TypeError, match="esopt Strategy"):
        esopt.LQSurrogate("cmaes")
    with pytest.raises(ValueError, match="tau_threshold"):
        esopt.LQSurrogate(esopt.CMAES(np.ones(2), 1.0), tau_threshold=1.5)
    with pytest.raises(ValueError, match="maxfevals"):
        esopt.LQSurrogate(esopt.CMAES(np.ones(2), 1.0), maxfevals=0)
    with pytest.raises(ValueError, match="unknown surrogate 'gp'"):
        esopt.minimize(_scalar(tf.sphere), np.ones(2), 1.0, surrogate="gp")


def test_features_one_hot_categoricals():
    X = np.array([[0.5, 2.0, 1.0], [0.1, 0.0, 3.0]])
    Z = features(X, {1: 3})
    np.testing.assert_array_equal(Z, [[0.5, 0, 0, 1, 1.0], [0.1, 1, 0, 0, 3.0]])
    np.testing.assert_array_equal(features(X, {}), X)


def test_model_grows_from_linear_to_full_and_recovers_a_quadratic():
    rng = np.random.default_rng(0)
    H = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 3.0]])

    def q(Z):
        return 1.0 + Z @ [1.0, -2.0, 0.5] + 0.5 * np.einsum("ij,jk,ik->i", Z, H, Z)

    m = LQModel(3)
    kinds = []
    for _ in range(40):
        Z = rng.normal(size=(1, 3))
        m.add(Z, q(Z))
        kinds.append(m.kind)
    # linear until 0.75 m >= 1.1 * 7 (m = 11), diagonal until 0.75 m >= 1.1 * 10 (m = 15)
    assert kinds[9] == "linear" and kinds[10] == "diagonal" and kinds[14] == "full"
    Zt = rng.normal(size=(20, 3))
    np.testing.assert_allclose(m.predict(Zt), q(Zt), rtol=1e-8, atol=1e-8)
    m.add(np.zeros((1, 3)), [np.nan])  # a failed evaluation is not data
    assert m.size == m.max_size == 20  # the newest 2 * dof(full) points
    assert m.kendall(15) == pytest.approx(1.0)
