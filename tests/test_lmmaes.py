"""LMMAES: the fast transform, its state, memory, and evaluation counts against pypop7's LMMAES.

Reference: pypop7 0.0.82 ``pypop7.optimizers.es.lmmaes.LMMAES`` (Algorithm 1 of Loshchilov,
Glasmachers and Beyer 2019 with ``exp((c_sigma/2)(|p|^2/n - 1))``, no mirrored sampling), run in
this test session.  The paper's own figures could not be read here; an earlier measurement of
pypop7 0.0.82 on these 2-core machines gave 12.6k evaluations on the sphere (44.8k at n = 512)
and 431k on Rosenbrock at n = 128 (x0 = 3 * ones, resp. 0, sigma0 = 1, target 1e-8).
"""

from __future__ import annotations

import multiprocessing
import tracemalloc
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from esopt import LMMAES
from esopt.lmmaes import transform_blas, transform_sequential
from esopt.testfunctions import ellipsoid, rosenbrock, sphere


# ----- the transform ---------------------------------------------------------------------------
@pytest.mark.parametrize("n,k,lam", [(2, 6, 3), (40, 1, 5), (40, 7, 9), (300, 25, 12)])
def test_blas_transform_equals_sequential(n, k, lam):
    rng = np.random.default_rng(n * 100 + k)
    M = rng.standard_normal((k, n)) * rng.uniform(0.1, 3.0, size=(k, 1)) * np.sqrt(n)
    cd = 1.0 / (1.5 ** np.arange(k) * n)
    Z = rng.standard_normal((lam, n))
    ref = transform_sequential(Z, M, cd)
    fast = transform_blas(Z, M, M @ M.T, cd)
    assert np.max(np.abs(fast - ref)) <= 1e-13 * np.max(np.abs(ref))
    fast32 = transform_blas(Z.astype(np.float32), M.astype(np.float32), M @ M.T, cd)
    assert fast32.dtype == np.float32
    assert np.max(np.abs(fast32 - ref)) <= 1e-5 * np.max(np.abs(ref))


def test_no_vectors_is_identity():
    Z = np.random.default_rng(0).standard_normal((4, 7))
    assert np.array_equal(transform_blas(Z, np.zeros((0, 7)), np.zeros((0, 0)), np.zeros(0)), Z)


def run(es, generations, f=sphere):
    for _ in range(generations):
        X = es.ask()
        es.tell(X, f(X))


def dense_transform(es) -> np.ndarray:
    """``A`` with ``d = A z`` for the current state, built by transforming unit vectors."""
    k = es.n_vectors_used
    M = es.M[:k].astype(np.float64)
    return transform_sequential(np.eye(es.n), M, es.cd[:k]).T


def test_gram_matrix_tracks_direction_vectors():
    es = LMMAES(np.full(30, 2.0), 1.0, seed=1)
    run(es, 400, lambda X: ellipsoid(X, 1e4))
    M = es.M.astype(np.float64)
    exact = M @ M.T
    assert np.max(np.abs(es.G - exact)) <= 1e-11 * np.max(np.abs(exact))


def test_coordinate_stds_equal_dense_covariance_diagonal():
    es = LMMAES(np.full(12, 2.0), 0.7, seed=2)
    run(es, 60, rosenbrock)
    A = dense_transform(es)
    assert np.allclose(es.coordinate_stds(), es.sigma * np.sqrt(np.diag(A @ A.T)), rtol=1e-12)


def test_diag_cache_is_refreshed_on_schedule_and_checkpointed(monkeypatch):
    import esopt.lmmaes as mod

    n, m = 20, 5
    monkeypatch.setattr(mod, "DIAG_REFRESH_FLOPS", m * m * n / 4)  # refresh every 4 generations
    es = LMMAES(np.full(n, 2.0), 0.7, m=m, seed=6)
    assert es._diag_refresh == 4
    run(es, 10, rosenbrock)
    es.stop()
    computed_at = es._diagC_iter
    run(es, 2, rosenbrock)
    es.stop()
    assert es._diagC_iter == computed_at  # cached: C changed little in 2 generations
    twin = LMMAES.from_state_dict(es.state_dict())
    run(es, 2, rosenbrock)
    run(twin, 2, rosenbrock)
    assert np.array_equal(es.coordinate_stds(), twin.coordinate_stds())
    assert es._diagC_iter == computed_at + 4
    A = dense_transform(es)
    assert np.allclose(es.coordinate_stds(), es.sigma * np.sqrt(np.diag(A @ A.T)), rtol=1e-12)


def test_sampled_directions_have_covariance_A_At():
    es = LMMAES(np.zeros(4), 1.0, popsize=10, seed=3)
    run(es, 40, lambda X: ellipsoid(X, 100.0))
    A = dense_transform(es)
    D = np.vstack([(es.ask() - es.mean) / es.sigma for _ in range(3000)])  # 30000 samples
    C_emp = D.T @ D / D.shape[0]
    C = A @ A.T
    assert np.max(np.abs(C_emp - C)) < 0.05 * np.max(np.diag(C))


def test_mirrored_rows_are_antithetic_and_odd_popsize_leaves_one():
    es = LMMAES(np.ones(8), 0.5, popsize=7, seed=4)
    run(es, 5)
    D = es.ask() - es.mean
    assert np.allclose(D[1::2], -D[0:6:2], atol=1e-15)
    assert not np.allclose(D[6], -D[5])
    es2 = LMMAES(np.ones(8), 0.5, popsize=7, seed=4, mirrored=False)
    run(es2, 5)
    D2 = es2.ask() - es2.mean
    assert not np.allclose(D2[1], -D2[0])


def test_inverse_transform_recovers_z():
    es = LMMAES(np.full(20, 1.0), 1.0, seed=5)
    run(es, 30, rosenbrock)
    Z = np.random.default_rng(1).standard_normal((3, 20))
    k = es.n_vectors_used
    D = transform_sequential(Z, es.M[:k], es.cd[:k])
    assert np.allclose(es._inverse_transform(D), Z, atol=1e-10)


def test_parameters_follow_algorithm_1_and_are_capped():
    n = 1000
    es = LMMAES(np.zeros(n), 1.0)
    lam = 4 + int(3 * np.log(n))
    assert es.popsize == lam and es.m == lam and es.mu == lam // 2
    assert es.cs == pytest.approx(2 * lam / n)
    assert np.allclose(es.cd, 1 / (1.5 ** np.arange(es.m) * n))
    assert np.allclose(es.cc, lam / (4.0 ** np.arange(es.m) * n))
    w = np.log(es.mu + 0.5) - np.log(np.arange(1, es.mu + 1))
    assert np.allclose(es.weights, w / w.sum())
    small = LMMAES(np.ones(5), 1.0, popsize=20, seed=1)  # popsize > n: rates would exceed 1
    assert small.cs == 1.0 and small.cc[0] == 1.0 and np.all(small.cc <= 1.0)
    run(small, 40)
    assert np.isfinite(small.sigma) and small.result.f < 1e-3


@pytest.mark.parametrize("kwargs", [{"m": -1}, {"dtype": np.int64}, {"damps": 0.0}, {"mirrored": 1}])
def test_bad_options_raise(kwargs):
    with pytest.raises((ValueError, TypeError)):
        LMMAES(np.zeros(5), 1.0, **kwargs)
    with pytest.raises(ValueError):
        LMMAES(np.zeros(1), 1.0)  # n = 1


@pytest.mark.parametrize("kwargs", [{"dtype": np.float32}, {"damps": 1.0}, {"mirrored": False, "m": 2}])
def test_options_converge_on_sphere(kwargs):
    es = LMMAES(np.full(64, 3.0), 1.0, seed=1, tolerances={"ftarget": 1e-8, "maxfevals": 3e4}, **kwargs)
    while not es.stop():
        run(es, 1)
    assert "ftarget" in es.stop()
    if "dtype" in kwargs:
        assert es.M.dtype == np.float32 and es.ask().dtype == np.float32


def test_peak_memory_stays_linear_in_n():
    """n = 200000: no n x n array (it would take 320 GB); float32 takes about half the memory."""
    peaks = {}
    for dtype in (np.float64, np.float32):
        tracemalloc.start()
        es = LMMAES(np.ones(200_000), 1.0, seed=0, dtype=dtype)
        for _ in range(3):
            X = es.ask()
            es.tell(X, sphere(X))
            es.stop()
        del X
        peaks[dtype] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del es
    assert peaks[np.float64] < 1e9
    assert peaks[np.float32] < 0.65 * peaks[np.float64]


# ----- evaluation counts against pypop7 --------------------------------------------------------
PROBLEMS = {
    "sphere": (sphere, 128, 3.0),
    "rosenbrock": (rosenbrock, 128, 0.0),
    "ellipsoid1e4": (lambda x: ellipsoid(x, 1e4), 64, 3.0),
}
_SCALES64 = 1e4 ** (np.arange(64) / 63)
SCALAR = {  # the same functions for one (n,) vector, without the population wrapper's overhead
    "sphere": lambda x: float(x @ x),
    "rosenbrock": lambda x: float(100 * np.sum((x[1:] - x[:-1] ** 2) ** 2) + np.sum((1 - x[:-1]) ** 2)),
    "ellipsoid1e4": lambda x: float(_SCALES64 @ (x * x)),
}


def _pin_threads():
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _evals_to_target(job):
    """Evaluations to reach f < 1e-8 (x0 = const, sigma0 = 1), or inf."""
    who, problem, seed, mirrored = job
    fun, n, x0 = PROBLEMS[problem]
    if who == "pypop7":
        from pypop7.optimizers.es.lmmaes import LMMAES as PLMMAES

        prob = {
            "fitness_function": SCALAR[problem],
            "ndim_problem": n,
            "lower_boundary": -5.0 * np.ones(n),
            "upper_boundary": 5.0 * np.ones(n),
        }
        opts = {
            "max_function_evaluations": 2e6,
            "seed_rng": seed,
            "mean": np.full(n, x0),
            "sigma": 1.0,
            "fitness_threshold": 1e-8,
            "verbose": False,
            "saving_fitness": 0,
        }
        res = PLMMAES(prob, opts).optimize()
        return res["n_function_evaluations"] if res["best_so_far_y"] < 1e-8 else np.inf
    es = LMMAES(np.full(n, x0), 1.0, seed=seed, mirrored=mirrored, tolerances={"ftarget": 1e-8, "maxfevals": 2e6})
    while not es.stop():
        X = es.ask()
        es.tell(X, fun(X))
    return es.evals_at_best if es.best_f < 1e-8 else np.inf


def test_scalar_forms_equal_population_forms():
    x = np.random.default_rng(0).standard_normal((2, 128))
    for p, (fun, n, _) in PROBLEMS.items():
        assert SCALAR[p](x[0, :n]) == pytest.approx(fun(x[:, :n])[0], rel=1e-12)


@pytest.mark.slow
def test_evaluations_match_pypop7():
    """3 seeds each.  Default (mirrored) esopt: median <= 1.25 x pypop7's.  Algorithm 1 verbatim
    (``mirrored=False``, the same algorithm as pypop7): median within 25% both ways (sphere and
    ellipsoid; Rosenbrock is left out of this check: pypop7 already needs ~40 s CPU per run there)."""
    seeds = (1, 2, 3)
    jobs = [("pypop7", p, s, False) for p in PROBLEMS for s in seeds]
    jobs += [("esopt", p, s, True) for p in PROBLEMS for s in seeds]
    jobs += [("esopt-alg1", p, s, False) for p in ("sphere", "ellipsoid1e4") for s in seeds]
    cost = {"rosenbrock": 3, "ellipsoid1e4": 2, "sphere": 1}
    jobs.sort(key=lambda j: (j[0] == "pypop7", cost[j[1]]), reverse=True)  # longest first
    with ProcessPoolExecutor(
        max_workers=2, initializer=_pin_threads, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        evals = dict(
            zip(jobs, pool.map(_evals_to_target, [(w if w == "pypop7" else "esopt", p, s, m) for w, p, s, m in jobs]))
        )
    med = {}
    for who, p, _, _ in jobs:
        med[who, p] = float(np.median([evals[j] for j in jobs if j[0] == who and j[1] == p]))
    print("\nmedian evaluations to 1e-8 (3 seeds):")
    for p in PROBLEMS:
        line = f"  {p:13s} pypop7 {med['pypop7', p]:9.0f}  esopt {med['esopt', p]:9.0f}"
        if ("esopt-alg1", p) in med:
            line += f"  esopt(mirrored=False) {med['esopt-alg1', p]:9.0f}"
        print(line)
    for j, e in evals.items():
        assert np.isfinite(e), f"{j} did not reach 1e-8"
    for p in PROBLEMS:
        assert med["esopt", p] <= 1.25 * med["pypop7", p]
    for p in ("sphere", "ellipsoid1e4"):
        assert 0.8 <= med["esopt-alg1", p] / med["pypop7", p] <= 1.25
