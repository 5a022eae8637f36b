"""A seeded run gives the same candidates whichever BLAS kernel the CPU selects.

The eigenvectors B of a covariance matrix with equal eigenvalues are not unique, and LAPACK returns
different ones for different OpenBLAS kernels (``OPENBLAS_CORETYPE``).  After the first update of
CMA-ES with ``n > popsize + 1``, C is ``decay * I`` plus an update of rank at most ``popsize + 1``,
so ``n - popsize - 1`` eigenvalues are equal: sampling ``B D z`` (``sampling="eigen"``, esopt's
earlier transform, and pycma's and cmaes's) then gives other candidates on another kernel, while
``C^{1/2} z = B D B^T z`` (the default, and CatCMAwM's) is unique and agrees to rounding.

Each kernel runs in a subprocess (the kernel is chosen when OpenBLAS loads); the child reports
the kernels its BLAS libraries actually use (threadpoolctl), so that the comparison is known to
span different kernels.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

#: kernels with x86-64 code paths of decreasing age (AVX2+FMA, AVX, SSE4.2, generic SSE)
KERNELS = ("Haswell", "Sandybridge", "Nehalem", "Katmai")
GENERATIONS = 5
RTOL = 1e-12

CHILD = r"""
import json, sys
import numpy as np
import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS too)
from threadpoolctl import threadpool_info
import esopt
from esopt import testfunctions as tf

info = threadpool_info()
out = {"kernels": sorted({i.get("architecture", "?") for i in info if i.get("internal_api") == "openblas"})}
G = int(sys.argv[2])
for sampling in ("sqrt", "eigen"):
    # n = 12 > popsize + 1 = 7: five exactly equal eigenvalues after the first update
    es = esopt.CMAES(np.full(12, 0.5), 0.3, popsize=6, seed=4, sampling=sampling)
    asks = []
    for _ in range(G):
        X = es.ask()
        asks.append(X.tolist())
        es.tell(X, tf.ellipsoid(X - 0.2))
    out["cmaes-" + sampling] = asks
# CatCMAwM: 10 continuous, 2 integer, 1 categorical coordinate, popsize 6
es = esopt.CatCMAwM(np.r_[np.full(10, 0.5), 2.0, 3.0, 1.0], 0.3, integers=[10, 11], categories={12: 3},
                    popsize=6, seed=4, bounds=(np.r_[np.full(12, -5.0), 0.0], np.r_[np.full(12, 5.0), 2.0]))
asks = []
for _ in range(G):
    X = es.ask()
    asks.append(X.tolist())
    es.tell(X, tf.ellipsoid(X[:, :12] - 0.2) + (X[:, 12] != 2))
out["catcmawm"] = asks
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh)
"""


def _blas_is_openblas() -> bool:
    import scipy.linalg  # noqa: F401

    return any(i.get("internal_api") == "openblas" for i in threadpoolctl.threadpool_info())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    """``{kernel: child output}`` for every kernel of ``KERNELS``."""
    if not _blas_is_openblas():
        pytest.skip("numpy/scipy are not linked to OpenBLAS: OPENBLAS_CORETYPE selects nothing")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"the kernels {KERNELS} are x86-64 ones; this machine is {platform.machine()}")
    tmp = tmp_path_factory.mktemp("blas")
    procs = {}
    for k in KERNELS:
        env = dict(os.environ, OPENBLAS_CORETYPE=k, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        procs[k] = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp / f"{k}.json"), str(GENERATIONS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    out = {}
    for k, p in procs.items():
        log, _ = p.communicate(timeout=120)
        assert p.returncode == 0, f"{k}: {log.decode()[-2000:]}"
        out[k] = json.loads((tmp / f"{k}.json").read_text())
    return out


def test_the_children_ran_on_different_kernels(runs):
    used = {tuple(r["kernels"]) for r in runs.values()}
    assert len(used) >= 2, f"every child reported the same BLAS kernels {used}; the comparison would be vacuous"


@pytest.mark.parametrize("key", ["cmaes-sqrt", "catcmawm"])
def test_candidates_agree_across_kernels_to_rounding(runs, key):
    ref_kernel = KERNELS[0]
    ref = np.array(runs[ref_kernel][key])
    assert ref.shape[0] == GENERATIONS
    for k in KERNELS[1:]:
        X = np.array(runs[k][key])
        for g in range(GENERATIONS):
            scale = max(1.0, float(np.max(np.abs(ref[g]))))
            err = float(np.max(np.abs(X[g] - ref[g]))) / scale
            assert err <= RTOL, f"{key}, generation {g}: {k} differs from {ref_kernel} by {err:.3g} (relative)"


def test_b_d_z_sampling_differs_across_kernels(runs):
    """The control: with the earlier ``B D z`` the same runs disagree from generation 1 on (by far
    more than rounding), so the agreement above is the square root's doing."""
    ref = np.array(runs[KERNELS[0]]["cmaes-eigen"])
    errs = [float(np.max(np.abs(np.array(runs[k]["cmaes-eigen"]) - ref)[1])) for k in KERNELS[1:]]
    assert np.array_equal(np.array(runs[KERNELS[1]]["cmaes-eigen"])[0], ref[0])  # C = I: B = I everywhere
    assert max(errs) > 1e-3, f"B D z agreed across kernels too (max difference {max(errs):.3g})"
