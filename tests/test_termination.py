"""Termination criteria (esopt.termination): pycma's names, defaults and semantics."""

import warnings

import cma
import numpy as np
import pytest
from helpers_pycma import PYCMA_VERSION, pycma

from esopt import CMAES, Tolerances
from esopt import testfunctions as tf
from esopt.termination import FitnessHistory, SearchView, check

N, LAM = 3, 7


@pytest.mark.parametrize("n,popsize", [(2, None), (10, None), (100, None), (10, 20)])
def test_resolved_defaults_matchpycma(n, popsize):
    assert cma.__version__ == PYCMA_VERSION
    ours = CMAES(np.ones(n), 1.0, popsize=popsize).tolerances
    ref = pycma(n, **({"popsize": popsize} if popsize else {}))
    for name in (
        "ftarget",
        "maxfevals",
        "maxiter",
        "tolfun",
        "tolfunhist",
        "tolx",
        "tolstagnation",
        "tolupsigma",
        "tolconditioncov",
        "tolflatfitness",
    ):
        assert getattr(ours, name) == ref.opts.eval(name), name
    assert ours.noeffectaxis is True and ours.noeffectcoord is True


def test_tolerances_validation():
    with pytest.raises(ValueError, match="tolfoo"):
        Tolerances.from_dict({"tolfoo": 1.0})
    with pytest.raises(ValueError, match="tolx"):
        Tolerances(tolx=-1.0).resolve(3, 7)
    with pytest.raises(ValueError, match="tolfun"):
        Tolerances(tolfun=float("nan")).resolve(3, 7)
    with pytest.raises(TypeError, match="maxiter"):
        Tolerances(maxiter="many").resolve(3, 7)
    assert Tolerances(ftarget=-5.0).resolve(3, 7).ftarget == -5.0


def _view(**kw):
    hist = FitnessHistory(hist=np.arange(20.0), histbest=np.arange(30.0), histmedian=np.arange(30.0) + 1)
    base = dict(
        n=N,
        popsize=LAM,
        countiter=10,
        countevals=70,
        sigma=1.0,
        sigma0=1.0,
        mean=np.ones(N),
        stds=np.ones(N),
        pc=np.ones(N),
        eigvals=np.array([1.0, 2.0, 3.0]),
        B=np.eye(N),
        f_sorted=np.arange(float(LAM)),
        best_f=0.0,
        evals_at_best=70,
        history=hist,
    )
    base.update(kw)
    return SearchView(**base)


TOL = Tolerances().resolve(N, LAM)


def test_benign_view_fires_nothing():
    assert check(_view(), TOL) == {}


def _hist(**kw):
    d = dict(hist=np.arange(20.0), histbest=np.arange(30.0), histmedian=np.arange(30.0) + 1)
    d.update(kw)
    return FitnessHistory(**d)


@pytest.mark.parametrize(
    "name,view,tol",
    [
        ("ftarget", dict(best_f=-1.0), dict(ftarget=0.0)),
        ("maxfevals", dict(countevals=70), dict(maxfevals=70)),
        ("maxiter", dict(countiter=10), dict(maxiter=10)),
        ("tolx", dict(stds=np.full(N, 1e-12), pc=np.full(N, 1e-12)), {}),
        ("tolfun", dict(f_sorted=np.ones(LAM), history=_hist(hist=np.ones(5))), {}),
        ("tolfunhist", dict(history=_hist(hist=np.ones(10))), {}),
        ("tolupsigma", dict(sigma=1e21, stds=np.full(N, 1e21)), {}),
        ("tolconditioncov", dict(eigvals=np.array([1e-15, 1.0, 1.0])), {}),
        ("noeffectcoord", dict(mean=np.array([1e20, 1.0, 1.0])), {}),
        ("noeffectaxis", dict(mean=np.array([1.0, 1e20, 1.0]), stds=np.array([1.0, 1e10, 1.0])), {}),
        ("tolflatfitness", dict(history=_hist(flat_iterations=2)), {}),
        (
            "tolstagnation",
            dict(
                countiter=1000,
                countevals=7000,
                evals_at_best=0,
                history=_hist(histbest=np.arange(200.0)[::-1], histmedian=np.arange(200.0)[::-1]),
            ),
            {},
        ),
    ],
)
def test_each_criterion_fires_alone(name, view, tol):
    t = Tolerances(**tol).resolve(N, LAM)
    assert check(_view(**view), t) == {name: getattr(t, name)}


def test_criteria_that_must_not_fire():
    # tolx needs sigma*pc small too
    assert "tolx" not in check(_view(stds=np.full(N, 1e-12)), TOL)
    # improving history: no stagnation
    improving = _hist(histbest=np.arange(200.0), histmedian=np.arange(200.0))
    assert check(_view(countiter=1000, countevals=7000, evals_at_best=0, history=improving), TOL) == {}
    # switched off
    off = Tolerances(tolconditioncov=0, noeffectcoord=False).resolve(N, LAM)
    assert check(_view(eigvals=np.array([1e-15, 1.0, 1.0]), mean=np.array([1e20, 1.0, 1.0])), off) == {}


def test_nothing_but_budgets_fire_before_the_first_tell():
    v = _view(countiter=0, countevals=0, best_f=-np.inf, stds=np.zeros(N), pc=np.zeros(N))
    assert check(v, TOL) == {}
    assert check(v, Tolerances(maxiter=0).resolve(N, LAM)) == {"maxiter": 0}


def test_history_lengths_matchpycma():
    for n, lam in [(10, None), (7, None), (10, 7)]:
        ref = pycma(n, **({"popsize": lam} if lam else {}))
        es = CMAES(np.ones(n), 1.0, popsize=lam, seed=1)
        for _ in range(120):
            X = np.asarray(ref.ask())
            ref.tell(list(X), tf.sphere(X).tolist())
            X = es.ask()
            es.tell(X, tf.sphere(X))
        assert len(es.history.hist) == len(ref.fit.hist)
        assert len(es.history.histbest) == len(ref.fit.histbest)


def test_constant_function_stops_likepycma():
    ref = pycma(4)
    X = ref.ask()
    ref.tell(X, len(X) * [1.0])
    es = CMAES(np.ones(4), 1.0, seed=0)
    es.tell(es.ask(), np.ones(es.popsize))
    assert es.stop() == dict(ref.stop()) == {"tolfun": 1e-11}


def test_flat_fitness_stops_at_the_second_flat_iteration_likepycma():
    def plateau(X):
        f = np.zeros(len(X))
        f[0] = 1.0  # the best equals the 75%-quantile: "flat"
        return f

    ref = pycma(4, tolfun=0)
    es = CMAES(np.ones(4), 1.0, seed=0, tolerances={"tolfun": 0})
    stops_ref, stops = [], []
    for _ in range(3):
        X = np.asarray(ref.ask())
        ref.tell(list(X), plateau(X).tolist())
        stops_ref.append(sorted(ref.stop()))
        X = es.ask()
        es.tell(X, plateau(X))
        stops.append(sorted(es.stop()))
    assert stops == stops_ref == [[], ["tolflatfitness"], ["tolflatfitness"]]


def test_sphere_run_ends_by_tolfun_likepycma():
    es = CMAES(np.ones(5), 1.0, seed=3)
    while not es.stop():
        X = es.ask()
        es.tell(X, tf.sphere(X))
    ref = pycma(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.optimize(tf.sphere)
    assert set(es.stop()) == set(ref.stop()) == {"tolfun"}
    assert abs(es.countiter / ref.countiter - 1) < 0.25


def test_all_nonfinite_generation_stops_without_a_numpy_warning():
    """Every value NaN: ``max - min`` of the stored +inf values was ``inf - inf`` (a RuntimeWarning)."""
    import warnings

    es = CMAES(np.ones(3), 1.0, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        es.tell(es.ask(), np.full(es.popsize, np.nan))
        stop = es.stop()
    assert [str(w.message) for w in caught if "invalid value" in str(w.message)] == []
    assert "tolfun" not in stop  # an all-failed generation is not convergence
