"""IPOP and BIPOP restart wrappers: the restart rules, budgets, results, and BIPOP-CMA-ES on
Rastrigin against pycma's ``fmin2(..., restarts=9, bipop=True)`` measured in the same run."""

from __future__ import annotations

import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import esopt
from esopt import BIPOP, IPOP, SepCMAES
from esopt.testfunctions import rastrigin, sphere


def run_to_stop(es, f=rastrigin, limit=100_000):
    for _ in range(limit):
        if es.stop():
            return
        X = es.ask()
        assert X.shape == (es.popsize, es.n)
        es.tell(X, f(X))
    raise AssertionError("did not stop")


def test_ipop_doubles_popsize_and_counts_restarts():
    es = IPOP("sepcmaes", np.full(4, 3.0), 1.0, seed=1, max_restarts=3, tolerances={"maxiter": 5})
    run_to_stop(es)
    hist = es.result.restart_history
    assert [h["popsize"] for h in hist] == [es.popsize0 * 2**k for k in range(4)]
    assert [h["regime"] for h in hist] == ["first", "large", "large", "large"]
    assert all(h["iterations"] == 5 and h["stop"] == {"maxiter": 5} for h in hist)
    assert es.stop() == {"maxiter": 5, "maxrestarts": 3}
    assert es.result.nfev == sum(h["evals"] for h in hist) == es.countevals
    assert es.result.f == min(h["best_f"] for h in hist)
    assert es.result.f == pytest.approx(rastrigin(es.result.x))


def test_incpopsize_and_explicit_first_popsize():
    es = IPOP(SepCMAES, np.zeros(3), 1.0, popsize=6, incpopsize=1.5, max_restarts=2, seed=0, tolerances={"maxiter": 2})
    run_to_stop(es, lambda X: sphere(X - 1))
    assert [h["popsize"] for h in es.restart_history] == [6, 9, 14]


def test_global_maxfevals_and_ftarget_end_all_restarts():
    es = IPOP("sepcmaes", np.full(5, 3.0), 1.0, seed=2, tolerances={"maxiter": 4, "maxfevals": 100})
    run_to_stop(es)
    assert "maxfevals" in es.stop() and 100 <= es.countevals < 100 + es.popsize
    assert len(es.restart_history) > 1  # the budget spans several runs
    es = BIPOP("sepcmaes", np.full(5, 0.3), 0.1, seed=2, tolerances={"ftarget": 1e-3})
    run_to_stop(es, sphere)
    assert "ftarget" in es.stop() and es.result.f <= 1e-3 and len(es.restart_history) == 1


def test_bipop_regimes_and_budgets_follow_hansen_2009():
    sigma0 = 2.0
    es = BIPOP("sepcmaes", np.full(6, 3.0), sigma0, seed=3, max_restarts=4, tolerances={"maxiter": 30})
    run_to_stop(es)
    hist = es.result.restart_history
    lam0 = es.popsize0
    assert hist[0]["regime"] == "first" and hist[0]["popsize"] == lam0
    small_budget, large_budget, last_large = hist[0]["evals"], 0, lam0
    n_large = 1
    for h in hist[1:]:
        if h["regime"] == "small":
            # chosen while the small budget (first run included) was below the large one
            assert small_budget < large_budget
            assert lam0 <= h["popsize"] <= last_large
            assert sigma0 / 100 <= h["sigma0"] <= sigma0
            assert h["iterations"] <= 0.5 * large_budget / h["popsize"] + 1
            small_budget += h["evals"]
        else:
            assert small_budget >= large_budget and h["sigma0"] == sigma0
            assert h["popsize"] == lam0 * 2**n_large
            last_large = h["popsize"]
            n_large += 1
            large_budget += h["evals"]
    assert n_large == 5 and "maxrestarts" in es.stop()  # max_restarts counts large runs only
    assert any(h["regime"] == "small" for h in hist)
    assert len({h["sigma0"] for h in hist if h["regime"] == "small"}) > 1


def test_method_errors():
    with pytest.raises(ValueError):
        IPOP("ipop", np.zeros(3), 1.0)
    with pytest.raises(TypeError):
        IPOP(dict, np.zeros(3), 1.0)
    with pytest.raises(ValueError):
        IPOP("cmaes", np.zeros(3), 1.0, max_restarts=-1)
    with pytest.raises(ValueError):
        BIPOP("cmaes", np.zeros(3), 1.0, incpopsize=0.5)
    with pytest.raises(TypeError):
        IPOP("lmmaes", np.zeros(3), 1.0, dtype=object())  # not checkpointable
    with pytest.raises(TypeError):
        IPOP("cmaes", np.zeros(3), 1.0, no_such_option=1)


def test_strategy_options_reach_every_run_and_survive_checkpoints(tmp_path):
    es = IPOP("lmmaes", np.full(5, 2.0), 1.0, seed=4, dtype=np.float32, mirrored=False, tolerances={"maxiter": 3})
    for _ in range(8):
        X = es.ask()
        es.tell(X, sphere(X))
    assert len(es.history) == 2 and es.inner.dtype == np.float32 and es.inner.mirrored is False
    loaded = esopt.load(esopt.save(es, tmp_path / "ipop.npz"))
    assert loaded.inner.dtype == np.float32 and loaded.options == {"dtype": "float32", "mirrored": False}


def _mixed_objective(X):
    """Integer x0 (optimum 3 in 0..8), a wavy continuous x1, a categorical x2 (best index 2)."""
    return (X[:, 0] - 3) ** 2 + (X[:, 1] - 0.3) ** 2 + np.sin(5 * X[:, 1]) ** 2 + (X[:, 2] != 2)


@pytest.mark.parametrize("wrapper", [IPOP, BIPOP])
def test_restarts_of_the_mixed_strategy_keep_its_variables_and_resume_bit_for_bit(wrapper, tmp_path):
    kw = dict(integers=[0], categories={2: 4}, stds=[4.0, 1.0, 1.0], bounds=([0, -2, 0], [8, 2, 3]))
    es = wrapper("catcmawm", np.zeros(3), 0.5, seed=1, max_restarts=3, tolerances={"maxiter": 8}, **kw)
    assert es.options["categories"].tolist() == [[2, 4]] and es.options["stds"].dtype == float
    twin = None
    for g in range(30):
        X = es.ask()
        assert np.array_equal(X[:, 0], np.round(X[:, 0])) and set(X[:, 2]) <= {0.0, 1.0, 2.0, 3.0}
        es.tell(X, _mixed_objective(X))
        if g == 14:  # a checkpoint after restarts, in the middle of a run
            twin = esopt.load(esopt.save(es, tmp_path / "mixed.npz"))
    runs = es.restart_history
    assert len(runs) >= 3 and len({r["popsize"] for r in runs}) >= 2
    p = es.inner.params  # the run of today has the variables of the first
    assert p.int_idx.tolist() == [0] and p.cat_idx.tolist() == [2] and p.stds.tolist() == [4.0, 1.0, 1.0]
    assert es.result.x[2] == 2.0 and es.result.x[0] == 3.0
    for _ in range(15):
        X = twin.ask()
        twin.tell(X, _mixed_objective(X))
    assert np.array_equal(twin.ask(), es.ask())
    assert twin.restart_history == es.restart_history


@pytest.mark.parametrize(
    "option",
    [{"categories": {"a": 2}}, {"categories": {0: 2.5}}, {"integers": ["x"]}, {"stds": [[1.0], [1.0, 2.0]]}],
)
def test_options_that_cannot_be_checkpointed_are_refused_by_name(option):
    with pytest.raises(TypeError, match=f"strategy option {next(iter(option))}="):
        IPOP("catcmawm", np.zeros(3), 0.5, **option)


# ----- BIPOP-CMA-ES against pycma --------------------------------------------------------------
N_RASTRIGIN = 10


def _pin_threads():
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _bipop_evals(job):
    """Evaluations of BIPOP-CMA-ES to f <= 1e-8 on Rastrigin (n = 10) within 2e6, or inf.

    x0 ~ U[-4, 4]^n (fixed per seed, the same for both), sigma0 = 2 (Hansen 2009's setting)."""
    who, seed = job
    x0 = np.random.default_rng(100 + seed).uniform(-4, 4, N_RASTRIGIN)
    if who == "pycma":
        import cma

        # pycma draws BIPOP's regime parameters from numpy's global RNG: seed it (this runs in
        # a worker process) and restore it afterwards
        state = np.random.get_state()  # noqa: NPY002
        np.random.seed(seed)  # noqa: NPY002
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, es = cma.fmin2(
                    rastrigin,
                    x0,
                    2.0,
                    {"ftarget": 1e-8, "maxfevals": 2e6, "seed": seed + 1, "verbose": -9},
                    restarts=9,
                    bipop=True,
                )
        finally:
            np.random.set_state(state)  # noqa: NPY002
        return es.result.evaluations if es.result.fbest <= 1e-8 else np.inf
    res = esopt.minimize(
        rastrigin,
        x0,
        2.0,
        method="cmaes",
        vectorized=True,
        seed=seed,
        restarts="bipop",
        max_restarts=9,
        options={"ftarget": 1e-8, "maxfevals": 2e6},
    )
    return res.nfev if res.fun <= 1e-8 else np.inf


@pytest.mark.slow
def test_bipop_cmaes_solves_rastrigin_like_pycma():
    seeds = range(5)
    jobs = [("pycma", s) for s in seeds] + [("esopt", s) for s in seeds]
    with ProcessPoolExecutor(
        max_workers=2, initializer=_pin_threads, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        evals = dict(zip(jobs, pool.map(_bipop_evals, jobs)))
    ours = [evals["esopt", s] for s in seeds]
    theirs = [evals["pycma", s] for s in seeds]
    print(f"\nBIPOP on rastrigin n=10, evaluations to 1e-8: esopt {ours}, pycma {theirs}")
    assert sum(np.isfinite(ours)) >= 4
    assert np.median(ours) <= 2 * np.median(theirs)
