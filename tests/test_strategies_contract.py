"""The Strategy contract, checked over every registered strategy and every restart wrapper.

Adding a strategy to ``esopt.registry.STRATEGIES`` adds it here (alone and inside IPOP and BIPOP).
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest

import esopt
from esopt.registry import RESTARTS, STRATEGIES, make_strategy
from esopt.testfunctions import sphere

N = 6
CONFIGS = [(None, m) for m in sorted(STRATEGIES)]
CONFIGS += [(r, m) for r in sorted(RESTARTS) for m in sorted(STRATEGIES)]
IDS = [m if r is None else f"{r}-{m}" for r, m in CONFIGS]
PLAIN = [c for c in CONFIGS if c[0] is None]
PLAIN_IDS = [m for _, m in PLAIN]


def make(config, x0=None, sigma0=0.5, **kwargs):
    restarts, method = config
    x0 = np.linspace(0.2, 1.0, N) if x0 is None else x0
    if restarts is not None and "tolerances" not in kwargs:
        kwargs["tolerances"] = {"maxiter": 6}  # restart every 6 generations
    return make_strategy(method, x0, sigma0, restarts=restarts, **kwargs)


def assert_states_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
            va, vb = np.asarray(va), np.asarray(vb)
            assert va.dtype == vb.dtype and va.shape == vb.shape, k
            assert np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"), k
        elif isinstance(va, float) and isinstance(vb, float) and np.isnan(va):
            assert np.isnan(vb), k
        else:
            assert va == vb, k


def run(es, generations: int, f=sphere) -> None:
    for _ in range(generations):
        X = es.ask()
        es.tell(X, f(X))


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_ask_returns_fresh_population_of_current_popsize(config):
    es, twin = make(config, seed=3), make(config, seed=3)
    for _ in range(8):
        X, Xt = es.ask(), twin.ask()
        assert X.shape == (es.popsize, N) and np.issubdtype(X.dtype, np.floating)
        assert np.array_equal(X, Xt)
        f = sphere(X)
        kept = X.copy()
        X += 100.0  # the caller may scribble on the returned array
        es.tell(kept, f)
        twin.tell(Xt, f)
    assert_states_equal(es.state_dict(), twin.state_dict())


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_candidates_stay_inside_bounds(config):
    es = make(config, x0=np.zeros(N), sigma0=3.0, seed=1, bounds=(-1.0, np.linspace(0.5, 2.0, N)))
    upper = np.linspace(0.5, 2.0, N)
    for _ in range(15):
        X = es.ask()
        assert np.all(X >= -1.0) and np.all(X <= upper)
        es.tell(X, sphere(X - 0.7))
    assert np.all(es.result.x >= -1.0) and np.all(es.result.x <= upper)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_nonfinite_values_rank_worst_and_warn_once(config):
    es, twin = make(config, seed=5), make(config, seed=5)
    for g in range(4):
        X = es.ask()
        assert np.array_equal(X, twin.ask())
        f = sphere(X)
        bad = f.copy()
        bad[[0, 2]] = [np.nan, np.inf]
        worst = f.copy()
        worst[[0, 2]] = f.max() + [1.0, 2.0]  # same ranking, finite
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            es.tell(X, bad)
        assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == (1 if g == 0 else 0)
        twin.tell(X, worst)
    assert np.array_equal(es.ask(), twin.ask())
    assert np.isfinite(es.result.f)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_bad_tell_raises_before_any_state_change(config):
    es = make(config, seed=7, bounds=(-5.0, 5.0))
    with pytest.raises(ValueError):
        es.tell(np.zeros((es.popsize, N)), np.zeros(es.popsize))  # no pending ask
    run(es, 3)
    X = es.ask()
    before = es.state_dict()
    f = sphere(X)
    bad_inputs = [
        (X[:-1], f[:-1]),  # wrong number of rows
        (X[:, :-1], f),  # wrong n
        (X, f[:-1]),  # f too short
        (X, f[:, None]),  # f of wrong rank
        (np.where(np.arange(N) == 1, np.nan, X), f),  # non-finite X
        (np.vstack([X[:-1], np.full(N, 9.0)]), f),  # injected row outside the bounds
    ]
    for Xb, fb in bad_inputs:
        with pytest.raises(ValueError):
            es.tell(Xb, fb)
        assert_states_equal(before, es.state_dict())
    es.tell(X, f)
    with pytest.raises(ValueError):
        es.tell(X, f)  # one tell per ask


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_bad_constructor_arguments(config):
    x0 = np.linspace(0.2, 1.0, N)
    for sigma0 in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            make(config, x0=x0, sigma0=sigma0)
    with pytest.raises(ValueError):
        make(config, x0=np.where(np.arange(N) == 2, np.nan, x0))
    with pytest.raises(ValueError):
        make(config, x0=np.ones((2, N)))
    with pytest.raises(ValueError):
        make(config, x0=x0, popsize=1)
    with pytest.raises(TypeError):
        make(config, x0=x0, popsize=4.5)
    for flag in (True, np.True_):  # a bool is not a number here, although bool subclasses int
        with pytest.raises(TypeError, match="popsize"):
            make(config, x0=x0, popsize=flag)
        with pytest.raises(TypeError, match="sigma0"):
            make(config, x0=x0, sigma0=flag)
    with pytest.raises(ValueError):
        make(config, x0=x0, bounds=(1.0, 1.0))
    with pytest.raises(ValueError):
        make(config, x0=x0, bounds=(-1.0, 0.5))  # x0 outside
    with pytest.raises(ValueError):
        make(config, x0=x0, tolerances={"no_such_criterion": 1})


@pytest.mark.parametrize("pending_ask", [False, True], ids=["between-generations", "pending-ask"])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_resume_is_bit_exact(config, pending_ask, tmp_path):
    rng = np.random.default_rng(zlib.crc32(str(config).encode()))
    es = make(config, seed=11, bounds=(-4.0, 4.0))
    generations = int(rng.integers(1, 20))
    if config[0] is not None:  # land in the middle of a restart
        while len(es.history) == 0 or es.inner.countiter == 0:
            run(es, 1)
    run(es, generations)
    X = es.ask() if pending_ask else None
    path = esopt.save(es, tmp_path / "ckpt.npz")
    loaded = esopt.load(path)
    assert type(loaded) is type(es)
    assert_states_equal(es.state_dict(), loaded.state_dict())
    if pending_ask:
        f = sphere(X)
        es.tell(X, f)
        loaded.tell(X, f)
    for _ in range(25):
        X1, X2 = es.ask(), loaded.ask()
        assert np.array_equal(X1, X2)
        f = sphere(X1)
        es.tell(X1, f)
        loaded.tell(X2, f)
        assert es.stop() == loaded.stop()
    assert_states_equal(es.state_dict(), loaded.state_dict())
    assert es.result.f == loaded.result.f


@pytest.mark.parametrize("config", PLAIN, ids=PLAIN_IDS)
def test_only_the_ranking_matters(config):
    a, b = make(config, seed=2), make(config, seed=2)
    for _ in range(12):
        X = a.ask()
        assert np.array_equal(X, b.ask())
        f = sphere(X)
        a.tell(X, f)
        b.tell(X, np.exp(f) * 3.0 - 1.0)
    assert np.array_equal(a.ask(), b.ask())


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_stop_result_and_maxfevals(config):
    es = make(config, seed=4, tolerances={"maxfevals": 120})
    assert es.stop() == {}
    assert es.result.x is None and es.result.f == np.inf and es.result.nfev == 0
    while not es.stop():
        run(es, 1)
    r = es.result
    assert "maxfevals" in r.stop and 120 <= r.nfev < 120 + es.popsize
    assert r.f == pytest.approx(sphere(r.x)) and r.f <= sphere(np.linspace(0.2, 1.0, N))
    assert r.mean.shape == (N,) and r.sigma > 0


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_repr_shows_the_progress(config):
    es = make(config, seed=4)
    run(es, 2)
    r = es.result
    name = type(es).__name__
    assert repr(es) == (
        f"{name}(n={N}, popsize={es.popsize}, nit=2, nfev={r.nfev}, sigma={r.sigma:.4g}, f_best={r.f:.6g}, stop={{}})"
    )


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_injected_rows_outside_the_box_are_named_in_the_error(config):
    es = make(config, seed=8, bounds=(-3.0, 3.0))
    X = es.ask()
    X[1, 4] = 3.5
    before = es.state_dict()
    with pytest.raises(
        ValueError, match=r"rows \[1\] of X .* coordinates \[4\] \(coordinate 4 must lie in \[-3.0, 3.0\]\)"
    ):
        es.tell(X, sphere(X))
    assert_states_equal(before, es.state_dict())


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_injected_candidates_are_accepted(config):
    es = make(config, seed=8, bounds=(-3.0, 3.0))
    run(es, 2)
    twin = make(config, seed=8, bounds=(-3.0, 3.0))
    run(twin, 2)
    X = es.ask()
    assert np.array_equal(X, twin.ask())
    told_as_asked = X.copy()
    X[0] = 0.0  # inject the optimum
    es.tell(X, sphere(X))
    twin.tell(told_as_asked, sphere(told_as_asked))
    assert es.result.f == 0.0 and np.array_equal(es.result.x, np.zeros(N))
    assert not np.array_equal(es.result.mean, twin.result.mean)  # the injected row was used
    run(es, 3)
    assert np.all(np.isfinite(es.result.mean))


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_injected_population_sets_the_mean(config):
    """Every row replaced by the same point: the weights sum to one, so the new mean is that point
    (the update used the injected rows, not the asked ones).  The point lies well inside the search
    distribution, so clipping of injected steps (arXiv 1110.4181) does not shorten it."""
    es = make(config, seed=9, bounds=(-3.0, 3.0))
    run(es, 2)
    X = es.ask()
    target = es.result.mean + 0.1 * es.sigma * np.linspace(-1.0, 0.5, N)
    X[:] = target
    es.tell(X, sphere(X))
    np.testing.assert_allclose(es.result.mean, target, rtol=0, atol=1e-12)


def _minimize_sphere(config, options: dict):
    """``esopt.minimize`` of the vectorized sphere from ``linspace(0.2, 1, N)``, sigma0 0.5, seed 1."""
    restarts, method = config
    return esopt.minimize(
        sphere,
        np.linspace(0.2, 1.0, N),
        0.5,
        method=method,
        vectorized=True,
        seed=1,
        restarts=restarts,
        options=options,
    )


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_minimize_runs_every_method(config):
    res = _minimize_sphere(config, {"maxfevals": 300})
    assert res.nfev >= 300 and res.fun < sphere(np.linspace(0.2, 1.0, N))
    assert res.fun == pytest.approx(sphere(res.x))


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_minimize_converges_on_the_sphere(config):
    """Every method reaches f <= 1e-8 on the 6-d sphere well within 5000 evaluations (700-900
    measured); a strategy whose step size is fixed by default (canonical ES, as in its paper) is
    run with its step-size adaptation option ``csa``."""
    options = {"ftarget": 1e-8, "maxfevals": 5000}
    if "csa" in STRATEGIES[config[1]].option_names:
        options["csa"] = True
    res = _minimize_sphere(config, options)
    assert res.success and "ftarget" in res.stop
    assert res.fun <= 1e-8 and np.all(np.abs(res.x) < 1e-3)
