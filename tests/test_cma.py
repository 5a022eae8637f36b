"""CMAES: defaults against pycma, the update, safeguards, bounds, bad input."""

import warnings

import cma
import numpy as np
import pytest
from cma.utilities.math import Mh
from helpers_pycma import PYCMA_VERSION, pycma

import esopt
from esopt import CMAES
from esopt import testfunctions as tf
from esopt.cma import CMAParameters, expected_norm
from esopt.weights import finalize_negative_weights, recombination_weights


def test_pycma_version_is_the_recorded_one():
    assert cma.__version__ == PYCMA_VERSION, "reference values below were checked against pycma 4.5.0"


@pytest.mark.parametrize("n", [2, 10, 100])
def test_defaults_matchpycma(n):
    es = CMAES(np.ones(n), 1.0, seed=1)
    ref = pycma(n)
    sp = ref.sp
    assert es.popsize == sp.popsize == 4 + int(3 * np.log(n))
    assert es.mu == sp.weights.mu == es.popsize // 2
    np.testing.assert_allclose(es.weights, np.asarray(sp.weights), rtol=1e-12, atol=1e-15)
    assert es.weights.sum() == pytest.approx(sum(sp.weights), rel=1e-12)
    assert es.weights[es.mu :].sum() == pytest.approx(sum(sp.weights[sp.weights.mu :]), rel=1e-12)
    assert es.mueff == pytest.approx(sp.weights.mueff, rel=1e-13)
    assert es.cc == pytest.approx(sp.cc, rel=1e-13)
    assert es.c1 == pytest.approx(sp.c1, rel=1e-13)
    assert es.cmu == pytest.approx(sp.cmu, rel=1e-13)
    # the rates pycma uses in tell() come from its sampler
    used = ref.sm.parameters(mueff=sp.weights.mueff, lam=sp.weights.lambda_)
    assert (es.c1, es.cmu) == pytest.approx((used["c1"], used["cmu"]), rel=1e-13)
    assert es.cs == pytest.approx(ref.adapt_sigma.cs, rel=1e-13)
    assert es.damps == pytest.approx(ref.adapt_sigma.damps, rel=1e-13)
    assert es.chiN == pytest.approx(Mh.chiN(n), rel=1e-10)
    assert es.lazy_gap == pytest.approx(ref.sm.lazy_update_gap, rel=1e-13)
    assert es.cm == sp.cmean == 1.0


@pytest.mark.parametrize("n,popsize", [(10, 7), (10, 40), (3, 100)])
def test_weights_match_pycma_for_other_popsizes(n, popsize):
    es = CMAES(np.ones(n), 1.0, popsize=popsize, seed=1)
    ref = pycma(n, popsize=popsize)
    np.testing.assert_allclose(es.weights, np.asarray(ref.sp.weights), rtol=1e-12, atol=1e-15)
    assert (es.cs, es.damps, es.c1, es.cmu) == pytest.approx(
        (ref.adapt_sigma.cs, ref.adapt_sigma.damps, ref.sp.c1, ref.sp.cmu), rel=1e-13
    )


def test_passive_weights_match_pycma_without_active():
    es = CMAES(np.ones(10), 1.0, active=False)
    ref = pycma(10, CMA_active=False)
    np.testing.assert_allclose(es.weights, np.asarray(ref.sp.weights), rtol=1e-12, atol=0)
    assert np.all(es.weights[es.mu :] == 0)


def test_negative_weight_limits():
    # Eq. (50)-(53): sum |w^-| = min(alpha_mu, alpha_mueff, alpha_posdef)
    for n, lam in [(2, 6), (10, 10), (10, 200), (100, 17), (1000, 24)]:
        p = CMAParameters(n, lam)
        raw, mu = recombination_weights(lam)
        neg = raw[mu:]
        mueff_minus = neg.sum() ** 2 / (neg**2).sum()
        alphas = (1 + p.c1 / p.cmu, 1 + 2 * mueff_minus / (p.mueff + 2), (1 - p.c1 - p.cmu) / (n * p.cmu))
        assert -p.weights[mu:].sum() == pytest.approx(min(alphas), rel=1e-12)
        assert p.weights[:mu].sum() == pytest.approx(1.0, rel=1e-14)
        assert np.all(np.diff(p.weights) <= 0)
    w, mu = recombination_weights(9)
    assert np.array_equal(finalize_negative_weights(w, mu, 5, 0.1, 0.0)[:mu], w[:mu])


def test_expected_norm_is_exact():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200000, 3))
    assert expected_norm(3) == pytest.approx(np.linalg.norm(z, axis=1).mean(), rel=5e-3)
    assert expected_norm(1) == pytest.approx(np.sqrt(2 / np.pi), rel=1e-14)


def test_ask_shape_and_distribution():
    es = CMAES(np.full(4, 2.0), 0.5, popsize=20000, seed=0)
    X = es.ask()
    assert X.shape == (20000, 4) and X.dtype == np.float64
    np.testing.assert_allclose(X.mean(0), 2.0, atol=0.02)
    np.testing.assert_allclose(np.cov(X.T), 0.25 * np.eye(4), atol=0.01)


def test_ask_is_one_draw_and_one_product():
    es = CMAES(np.zeros(5), 2.0, seed=3)
    for _ in range(3):
        X = es.ask()
        es.tell(X, tf.rosenbrock(X))
    rng = np.random.default_rng()
    rng.bit_generator.state = es._rng.bit_generator.state
    X = es.ask()
    Z = rng.standard_normal((es.popsize, es.n))
    sqrtC = (es.B * es.D) @ es.B.T  # C^{1/2} = B D B^T, symmetric
    np.testing.assert_allclose(X, es.mean + es.sigma * Z @ sqrtC, rtol=1e-14, atol=1e-14)


def test_sampling_eigen_is_the_earlier_b_d_z():
    es = CMAES(np.zeros(5), 2.0, seed=3, sampling="eigen")
    for _ in range(3):
        X = es.ask()
        es.tell(X, tf.rosenbrock(X))
    rng = np.random.default_rng()
    rng.bit_generator.state = es._rng.bit_generator.state
    X = es.ask()
    Z = rng.standard_normal((es.popsize, es.n))
    np.testing.assert_allclose(X, es.mean + es.sigma * Z @ (es.B * es.D).T, rtol=1e-14, atol=1e-14)
    with pytest.raises(ValueError, match="sampling must be one of"):
        CMAES(np.zeros(5), 2.0, sampling="cholesky")


@pytest.mark.parametrize("sampling", ["sqrt", "eigen"])
@pytest.mark.parametrize("inject", [False, True])
def test_ps_update_uses_the_inverse_square_root_of_the_sampling_covariance(sampling, inject):
    """Eq. (43) on a rotated, non-isotropic C: p_s <- (1-c_s) p_s + sqrt(c_s(2-c_s)mueff) C^{-1/2}
    (m' - m) / (c_m sigma), with C^{-1/2} computed independently (scipy's sqrtm) from the C that
    sampled this generation, for both sampling transforms and with an injected row."""
    from scipy.linalg import sqrtm

    n = 6
    es = CMAES(np.ones(n), 0.5, seed=11, sampling=sampling)
    for _ in range(6):
        X = es.ask()
        es.tell(X, tf.ellipsoid(X @ np.linalg.qr(np.arange(n * n).reshape(n, n) % 7 + np.eye(n))[0]))
    Cs = (es.B * es.D**2) @ es.B.T  # the covariance this generation is sampled with
    inv_sqrt = np.linalg.inv(np.real(sqrtm(Cs)))
    m, sigma, ps = es.mean.copy(), es.sigma, es.ps.copy()
    X = es.ask()
    if inject:  # a step towards the optimum of Mahalanobis length 1.5 (not clipped)
        X[2] = m - 1.5 * sigma * np.real(sqrtm(Cs)) @ (m / np.linalg.norm(m))
    f = tf.sphere(X)
    assert not inject or 2 in np.argsort(f)[: es.mu]  # the injected row enters <y>_w
    es.tell(X, f)
    expected = (1 - es.cs) * ps + np.sqrt(es.cs * (2 - es.cs) * es.mueff) * inv_sqrt @ (es.mean - m) / (es.cm * sigma)
    np.testing.assert_allclose(es.ps, expected, rtol=1e-9, atol=1e-12)


def test_first_update_follows_the_tutorial_equations():
    """One generation computed by hand from Eq. (41)-(47) with pycma's hsig and weights."""
    n = 4
    es = CMAES(np.ones(n), 0.7, seed=5)
    X = es.ask()
    Z = es._Z.copy()
    f = tf.ellipsoid(X)
    es.tell(X, f)
    order = np.argsort(f)
    y = (X[order] - 1.0) / 0.7
    z = Z[order]
    w, mu = es.weights, es.mu
    yw = w[:mu] @ y[:mu]
    np.testing.assert_allclose(es.mean, 1.0 + 0.7 * yw, rtol=1e-14)
    ps = np.sqrt(es.cs * (2 - es.cs) * es.mueff) * (w[:mu] @ z[:mu])  # C = I: C^-1/2 <y>_w = <y>_w
    np.testing.assert_allclose(es.ps, ps, rtol=1e-12)
    hsig = (ps @ ps) / (1 - (1 - es.cs) ** 2) / n < 2 + 4 / (n + 1)
    pc = hsig * np.sqrt(es.cc * (2 - es.cc) * es.mueff) * yw
    np.testing.assert_allclose(es.pc, pc, rtol=1e-12)
    wo = np.where(w >= 0, w, w * n / (np.linalg.norm(y, axis=1) + 1e-9) ** 2)
    c1a = es.c1 * (1 - (1 - hsig) * es.cc * (2 - es.cc))
    C = (1 - c1a - es.cmu * w.sum()) * np.eye(n) + es.c1 * np.outer(pc, pc) + es.cmu * (y.T * wo) @ y
    np.testing.assert_allclose(es.C, C, rtol=1e-12, atol=1e-15)
    sigma = 0.7 * np.exp(es.cs / es.damps * (np.linalg.norm(ps) / es.chiN - 1))
    assert es.sigma == pytest.approx(sigma, rel=1e-13)


def test_lazy_eigendecomposition_interval():
    n = 1000
    p = CMAParameters(n, 4 + int(3 * np.log(n)))
    assert 5 < p.lazy_gap < 12  # ~ 1/(10 n (c1 + cmu))
    es = CMAES(np.ones(80), 1.0, popsize=4, seed=2)
    assert 3 < es.lazy_gap < 4
    iters = []
    for _ in range(30):
        X = es.ask()
        es.tell(X, tf.sphere(X))
        if es.eigen_iter == es.countiter:
            iters.append(es.countiter)
    gaps = np.diff(iters)
    assert len(iters) >= 6 and np.all(gaps == 4)
    # between decompositions B, D are frozen while C moves
    X = es.ask()
    B = es.B.copy()
    es.tell(X, tf.sphere(X))
    if es.eigen_iter != es.countiter:
        assert np.array_equal(es.B, B)


def test_C_stays_symmetric_and_matches_its_eigendecomposition():
    es = CMAES(np.ones(6), 1.0, seed=4)
    for _ in range(60):
        X = es.ask()
        es.tell(X, tf.rotated_ellipsoid(X))
    C = es.C
    assert np.array_equal(C, C.T)
    es._eigendecompose()
    np.testing.assert_allclose((es.B * es.D**2) @ es.B.T, C, rtol=1e-10, atol=1e-14 * np.abs(C).max())
    assert np.all(np.diff(es.D) >= 0)


def test_clamp_eigenvalues_keeps_C_positive_definite():
    es = CMAES(np.ones(3), 1.0, seed=0)
    es.C = np.diag([1.0, 1e-30, -1e-3])  # broken C, as after round-off disasters
    es._eigendecompose()
    assert np.all(es.D > 0)
    assert np.linalg.eigvalsh(es.C).min() > 0
    assert np.array_equal(es.C, es.C.T)


def test_sigma_is_capped_and_change_is_bounded():
    es = CMAES(np.zeros(3), 1.0, seed=0)
    assert es._cap_sigma(1e40) == pytest.approx(1e30)
    # a linear function drives sigma up by at most exp(1) per generation
    for _ in range(50):
        s = es.sigma
        X = es.ask()
        es.tell(X, X[:, 0])
        assert es.sigma <= s * np.e * (1 + 1e-12)
    assert es.sigma > 1e3


def test_search_view_parts():
    es = CMAES(np.ones(5), 0.3, seed=1)
    for _ in range(5):
        X = es.ask()
        es.tell(X, tf.ellipsoid(X))
    v = es.search_view()
    np.testing.assert_allclose(v.stds, es.sigma * np.sqrt(np.diag(es.C)))
    np.testing.assert_allclose(v.eigvals, es.D**2)
    assert np.all(np.diff(v.eigvals) >= 0)
    assert v.B is es.B and v.pc is es.pc


@pytest.mark.parametrize(
    "f,x0,target",
    [
        (tf.sphere, 3 * np.ones(8), 1e-10),
        (tf.cigar, np.ones(6), 1e-10),
        (tf.discus, np.ones(6), 1e-10),
        (tf.diffpowers, np.ones(6), 1e-10),
    ],
)
def test_converges(f, x0, target):
    r = esopt.minimize(f, x0, 1.0, seed=1, vectorized=True, options={"ftarget": target})
    assert r.fun <= target and r.stop == {"ftarget": target}


def test_active_false_converges_too():
    r = esopt.minimize(
        tf.ellipsoid, np.ones(5), 1.0, seed=1, vectorized=True, options={"ftarget": 1e-10, "active": False}
    )
    assert r.success and r.fun <= 1e-10


def test_result_fields():
    es = CMAES(np.ones(3), 1.0, seed=0)
    r0 = es.result
    assert r0.x is None and r0.f == np.inf and r0.nfev == 0 and r0.nit == 0
    best = np.inf
    for _ in range(4):
        X = es.ask()
        f = tf.sphere(X)
        best = min(best, f.min())
        es.tell(X, f)
    r = es.result
    assert r.f == best and tf.sphere(r.x) == best
    assert r.nfev == 4 * es.popsize and r.nit == 4
    np.testing.assert_array_equal(r.mean, es.mean)
    assert r.sigma == es.sigma


def test_bounds_candidates_inside_and_optimum_on_boundary():
    lower, upper = np.array([1.0, -5, -5]), np.array([5.0, 5, 0.5])
    es = CMAES([3.0, 0.0, 0.0], 2.0, seed=0, bounds=(lower, upper))
    for _ in range(150):
        X = es.ask()
        assert np.all(X >= lower) and np.all(X <= upper)
        es.tell(X, tf.sphere(X - np.array([0.0, 2.0, 2.0])))
    np.testing.assert_allclose(es.result.x, [1.0, 2.0, 0.5], atol=1e-4)


def test_nonfinite_fitness_ranks_worst_with_one_warning():
    es = CMAES(np.ones(4), 1.0, seed=0)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        X = es.ask()
        f = tf.sphere(X)
        f[:3] = [np.nan, np.inf, -np.inf]
        es.tell(X, f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(100):
            X = es.ask()
            f = tf.sphere(X)
            f[X[:, 0] > 1.5] = np.nan
            es.tell(X, f)
    assert np.isfinite(es.result.f) and es.result.f < 1e-3
    assert np.all(np.isfinite(es.C)) and np.isfinite(es.sigma)


def test_injected_candidates_are_used():
    es = CMAES(np.full(3, 5.0), 0.1, seed=0)
    X = es.ask()
    X[0] = 0.0  # inject the optimum
    es.tell(X, tf.sphere(X))
    assert np.array_equal(es.result.x, np.zeros(3))
    # the mean moved towards it, but the injected step (86 sigma long) was clipped to the length of a
    # typical sample, c_y = sqrt(n) + 2n/(n+2) (Hansen, arXiv 1110.4181, Sec. 2), so by at most sigma*c_y
    moved = 5 * np.sqrt(3) - np.linalg.norm(es.mean)
    assert 0 < moved <= 0.1 * esopt.injection.clip_length(3)


def _snapshot(es):
    return es.state_dict()


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert np.array_equal(a[k], b[k]), k
        else:
            assert a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]), k


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(x0=np.ones(3), sigma0=0.0), "sigma0"),
        (dict(x0=np.ones(3), sigma0=-1.0), "sigma0"),
        (dict(x0=np.ones(3), sigma0=np.inf), "sigma0"),
        (dict(x0=[1.0, np.nan, 0.0], sigma0=1.0), "x0"),
        (dict(x0=[1.0, np.inf], sigma0=1.0), "x0"),
        (dict(x0=np.ones((2, 2)), sigma0=1.0), "x0"),
        (dict(x0=[2.0, 0.0], sigma0=1.0, bounds=(-1, 1)), "x0"),
        (dict(x0=[0.0, 0.0], sigma0=1.0, bounds=(1, -1)), "lower"),
        (dict(x0=[0.0, 0.0], sigma0=1.0, bounds=([-1, 1], [1, 1])), "lower"),
        (dict(x0=[0.0, 0.0], sigma0=1.0, bounds=(np.zeros(3), np.ones(3))), "bounds"),
        (dict(x0=[0.0, 0.0], sigma0=1.0, popsize=1), "popsize"),
        (dict(x0=[0.0, 0.0], sigma0=1.0, tolerances={"tolfoo": 1}), "tolfoo"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    x0, sigma0 = kwargs.pop("x0"), kwargs.pop("sigma0")
    with pytest.raises(ValueError, match=match):
        CMAES(x0, sigma0, **kwargs)


def test_bad_tell_inputs_leave_state_unchanged():
    es = CMAES(np.ones(4), 1.0, seed=0, bounds=(-10, 10))
    X = es.ask()
    es.tell(X, tf.sphere(X))
    X = es.ask()
    f = tf.sphere(X)
    before = _snapshot(es)
    bad = [
        (X[:-1], f[:-1], "shape"),
        (X[:, :-1], f, "shape"),
        (X, f[:-1], "shape"),
        (X, f[:, None], "shape"),
        (np.where(np.arange(4) == 1, np.nan, X), f, "NaN or inf"),
        (np.where(np.arange(4) == 0, np.inf, X), f, "NaN or inf"),
        (np.vstack([X[:-1], np.full(4, 20.0)]), f, "outside the bounds"),
    ]
    for Xb, fb, match in bad:
        with pytest.raises(ValueError, match=match):
            es.tell(Xb, fb)
        _assert_same_state(before, _snapshot(es))
    es.tell(X, f)  # the pending ask is still there
    after = _snapshot(es)
    with pytest.raises(ValueError, match="pending ask"):
        es.tell(X, f)  # tell twice for one ask
    _assert_same_state(after, _snapshot(es))


def test_tell_without_ask():
    es = CMAES(np.ones(2), 1.0, seed=0)
    with pytest.raises(ValueError, match="ask"):
        es.tell(np.zeros((es.popsize, 2)), np.zeros(es.popsize))


def test_bad_option_types():
    with pytest.raises(TypeError, match="active"):
        CMAES(np.ones(2), 1.0, active="yes")
    with pytest.raises(TypeError, match="sigma0"):
        CMAES(np.ones(2), "1")
    with pytest.raises(TypeError, match="seed"):
        CMAES(np.ones(2), 1.0, seed=1.5)


def test_dimension_one_works():
    r = esopt.minimize(lambda x: float((x[0] - 2) ** 2), [0.0], 1.0, seed=0, options={"ftarget": 1e-12})
    assert r.success and abs(r.x[0] - 2) < 1e-5
