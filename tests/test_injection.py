"""Injected solutions in every registered strategy (issue 13 item 2, esopt side).

An asynchronous driver tells results whose candidates were sampled from an older distribution;
they reach ``tell`` as rows that differ from the asked ones ("injected"), and each strategy clips
their steps (Hansen, arXiv 1110.4181, Sec. 2; :mod:`esopt.injection`).

* (a) rows equal to the asked ones are no injection (bit-for-bit), and a permuted population
  (every row injected, each a fair sample) gives the state of the plain tell, up to rounding;
* (b) populations made of samples 1 or 3 generations stale still converge to 1e-8 on the sphere
  and a rotated ellipsoid at n = 10, within a stated factor of the synchronous evaluations;
* (c) one wildly-off injected row, ranked best, moves the mean and sigma by a bounded amount.

``catcmawm`` (esopt.mixed, mixed-integer) does not clip injected steps yet: it is left out of
(b)/(c) (``CONTINUOUS``); ``lmmaes`` is left out of (b): with stale samples its step size diverges
(its ``cs = 1`` path has no cumulation, so the mean shift contained in every stale step inflates
``|ps|`` each generation; the clipping bounds single steps, not that bias).
"""

from __future__ import annotations

import numpy as np
import pytest

from esopt.injection import clip_length
from esopt.registry import RESTARTS, STRATEGIES, make_strategy
from esopt.testfunctions import rotated_ellipsoid, sphere

N = 10
ALL = sorted(STRATEGIES)
MIXED = {"catcmawm"}  # esopt.mixed: injected steps not clipped (owner: esopt/mixed.py)
CONTINUOUS = [m for m in ALL if m not in MIXED]
OPTIONS = {"canonical": {"csa": True}}  # Algorithm 1 has no step-size adaptation: no 1e-8 without it
#: condition of the rotated ellipsoid per strategy (a diagonal or isotropic model on a rotated
#: 1e6-ellipsoid does not reach 1e-8 in a test's time, with or without injection)
COND = {"sepcmaes": 1e2, "canonical": 1e2}


def make(method, seed=1, **kw):
    return make_strategy(method, np.full(N, 1.0), 0.5, seed=seed, **{**OPTIONS.get(method, {}), **kw})


def flat_state(es) -> dict:
    return {k: v for k, v in es.state_dict().items() if k != "rng"}


@pytest.mark.parametrize("method", ALL)
def test_telling_copies_of_the_asked_rows_is_no_injection_bit_for_bit(method):
    a, b = make(method), make(method)
    for _ in range(12):
        Xa, Xb = a.ask(), b.ask()
        a.tell(Xa, sphere(Xa))
        b.tell(np.array(Xb, copy=True)[::-1][::-1].copy(), sphere(Xb))
    da, db = a.state_dict(), b.state_dict()
    assert da.keys() == db.keys()
    for k in da:
        if isinstance(da[k], np.ndarray):
            assert np.array_equal(da[k], db[k]), k
        else:
            assert da[k] == db[k], k


@pytest.mark.parametrize("method", CONTINUOUS)
def test_fair_samples_told_as_injected_rows_give_the_plain_update(method, monkeypatch):
    # swapping rows makes every row "injected": each z is recovered from x (no stored draw), so the
    # update equals the plain one up to rounding.  A fair sample exceeds c_y with probability
    # ~1% at n = 10 (chi_10 > 4.83) and would then be clipped by design; the clipping (covered by
    # test_a_wild_injected_row_is_clipped) is switched off here to check the recovery of z alone.
    for module in ("esopt.cma", "esopt.sepcma", "esopt.lmmaes", "esopt.canonical"):
        monkeypatch.setattr(f"{module}.clip_factors", lambda Z, n: np.ones(len(Z)))
    a, b = make(method, seed=5), make(method, seed=5)
    for g in range(15):
        Xa, Xb = a.ask(), b.ask()
        perm = np.roll(np.arange(len(Xb)), 1) if g >= 5 else np.arange(len(Xb))
        a.tell(Xa, sphere(Xa))
        b.tell(Xb[perm], sphere(Xb[perm]))
        assert np.abs(a.mean - b.mean).max() <= 1e-9 * np.abs(a.mean).max(), np.abs(a.mean - b.mean).max()
        assert a.sigma == pytest.approx(b.sigma, rel=1e-9)
    sa, sb = flat_state(a), flat_state(b)
    for k, v in sa.items():
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size and not k.startswith("base."):
            assert np.allclose(v, sb[k], rtol=1e-7, atol=1e-12), k


def run_stale(method, f, staleness: int, seed: int, maxfevals: int = 60_000) -> tuple[int, float]:
    """Evaluations until ``best_f < 1e-8`` when every population told (after the first
    ``staleness`` generations) is the one asked ``staleness`` generations earlier, as an
    asynchronous driver with results lagging that far behind tells them."""
    es = make(method, seed=seed, tolerances={"ftarget": 1e-8, "maxfevals": maxfevals})
    asked: list[np.ndarray] = []
    while not es.stop():
        asked.append(es.ask())
        X = asked[-1 - staleness] if len(asked) > staleness else asked[-1]
        es.tell(X, f(X))
        del asked[: -staleness - 1]
    return es.countevals, es.best_f


#: evaluations to 1e-8 with stale samples, as a multiple of the synchronous run's (median of 3
#: seeds); measured on this code (staleness 1 / 3): cmaes sphere 1.5/2.4, ellipsoid 1.2/1.5;
#: sepcmaes sphere 1.6/3.3; canonical sphere 1.4/2.6; sepcmaes and canonical ellipsoid(1e2)
#: 3.2 and 2.4 at staleness 1, no convergence at 3 (not asserted)
PRICE = {1: 4.0, 3: 4.0}
STALE_CASES = [
    (m, fn, s)
    for m in CONTINUOUS
    if m != "lmmaes"
    for fn, s in (("sphere", 1), ("sphere", 3), ("ellipsoid", 1)) + ((("ellipsoid", 3),) if m == "cmaes" else ())
]


@pytest.mark.parametrize(("method", "fname", "staleness"), STALE_CASES)
def test_stale_populations_still_converge(method, fname, staleness):
    cond = COND.get(method, 1e6)
    f = sphere if fname == "sphere" else (lambda X: rotated_ellipsoid(X, cond=cond))
    sync = [run_stale(method, f, 0, seed) for seed in (1, 2, 3)]
    stale = [run_stale(method, f, staleness, seed) for seed in (1, 2, 3)]
    assert all(b < 1e-8 for _, b in sync)
    assert all(b < 1e-8 for _, b in stale), stale
    price = np.median([e for e, _ in stale]) / np.median([e for e, _ in sync])
    assert 1.0 <= price <= PRICE[staleness], price


@pytest.mark.parametrize("far", [1e3, 1e8])
@pytest.mark.parametrize("method", CONTINUOUS)
def test_a_wild_injected_row_is_clipped(method, far):
    es = make(method, seed=4)
    for _ in range(20):
        X = es.ask()
        es.tell(X, sphere(X))
    mean0, sigma0, std0 = es.mean.copy(), float(es.sigma), float(es.search_view().stds.max())
    X = es.ask()
    f = sphere(X)
    X[0] = mean0 + far * sigma0 * np.random.default_rng(0).standard_normal(N)  # far outside
    f[0] = f.min() - 1.0  # and ranked best: the worst case
    es.tell(X, f)
    # the clipped row has Mahalanobis length <= c_y and weight <= 1: the mean moves less than
    # c_y largest standard deviations (unclipped it would move ~ far * sigma)
    assert np.linalg.norm(es.mean - mean0) < clip_length(N) * std0
    assert es.sigma < 3.0 * sigma0  # at most one e-fold as pycma's CSA, a margin for LM-MA-ES
    assert float(es.search_view().stds.max()) < 5.0 * std0


@pytest.mark.parametrize("restarts", sorted(RESTARTS))
@pytest.mark.parametrize("method", CONTINUOUS)
def test_restart_wrappers_pass_injected_rows_to_the_inner_strategy(restarts, method):
    # the wrapper's tell hands X to the current run unchanged: the same stale rows give the run
    # the same state as the bare strategy told them
    opts = OPTIONS.get(method, {})
    w = make_strategy(method, np.full(N, 1.0), 0.5, restarts=restarts, seed=2, **opts)
    inner = type(w.inner).from_state_dict(w.inner.state_dict())
    prev = None
    for _ in range(6):
        X, Xi = w.ask(), inner.ask()
        assert np.array_equal(X, Xi)
        T = X if prev is None else prev
        w.tell(T, sphere(T))
        inner.tell(T, sphere(T))
        prev = X
    assert np.array_equal(w.inner.mean, inner.mean) and w.inner.sigma == inner.sigma
