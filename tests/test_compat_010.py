"""Checkpoints written by esopt 0.1.0 load with today's code and continue as 0.1.0 did.

The files ``tests/data/v010_*.npz`` were written by ``tests/data/make_010_checkpoints.py`` run
against esopt 0.1.0 (commit 242f0f9); ``v010_continuations.npz`` holds the ``ask()`` arrays that
0.1.0 itself produced after loading each checkpoint (each population told ``f(X)``), and
``v010_cases.json`` how every case was made.  Today's code must reproduce those arrays: exactly on
a machine with the BLAS kernel that wrote them (OpenBLAS ``Haswell``; run with
``OPENBLAS_CORETYPE=Haswell`` to see it), and to rounding elsewhere: with the ``SkylakeX`` kernel
the arrays differ by up to 1.7e-10 relative after three generations (float64; 1.2e-6 in the
float32 case), because the kernels sum in other orders.  A checkpoint re-saved and loaded again
must continue bit-for-bit on the same machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import esopt
from esopt import testfunctions as tf

DATA = Path(__file__).resolve().parent / "data"
META = json.loads((DATA / "v010_cases.json").read_text())
CASES = sorted(META["cases"])


@pytest.fixture(scope="module")
def continuations():
    with np.load(DATA / "v010_continuations.npz", allow_pickle=False) as z:
        return {k: np.array(z[k]) for k in z.files}


# The strategies and wrappers that esopt 0.1.0 had (and so could have written checkpoints of);
# strategies added later have no 0.1.0 files.
STRATEGIES_010 = {"cmaes", "sepcmaes", "lmmaes", "canonical"}
RESTARTS_010 = {"ipop", "bipop"}


def test_every_strategy_and_wrapper_of_010_is_covered():
    cases = META["cases"].values()
    assert STRATEGIES_010 <= set(esopt.STRATEGIES) and RESTARTS_010 <= set(esopt.RESTARTS)
    assert {c["method"] for c in cases} == STRATEGIES_010
    assert {c["restarts"] for c in cases} - {None} == RESTARTS_010
    assert {(c["restarts"], c["method"]) for c in cases} >= {(r, m) for r in RESTARTS_010 for m in STRATEGIES_010}
    assert META["esopt_version"] == "0.1.0"


def _pending_X(es) -> np.ndarray | None:
    inner = es.inner if hasattr(es, "inner") else es
    return None if inner._asked_X is None else inner._asked_X.copy()


def _close(X: np.ndarray, expected: np.ndarray) -> bool:
    """Equal to rounding: 1e-8 relative (float64) or 1e-4 (float32) of the array's scale."""
    tol = 1e-4 if expected.dtype == np.float32 else 1e-8
    return bool(np.all(np.abs(X - expected) <= tol * max(1.0, float(np.max(np.abs(expected))))))


@pytest.mark.parametrize("case", CASES)
def test_010_checkpoint_continues_as_010_did(case, continuations, tmp_path):
    spec = META["cases"][case]
    fun = getattr(tf, spec["function"])
    es = esopt.load(DATA / f"v010_{case}.npz")
    assert es.name == (spec["restarts"] or spec["method"])
    if spec["pending_ask"]:
        X = _pending_X(es)
        assert _close(X, continuations[f"{case}/pending"])
        es.tell(X, fun(X))
    else:
        assert _pending_X(es) is None
    # re-saving with today's format and loading again must not change the continuation
    again = esopt.load(esopt.save(es, tmp_path / "resaved.npz"))
    for k in range(META["n_continue"]):
        expected = continuations[f"{case}/ask{k}"]
        X, X2 = es.ask(), again.ask()
        assert X.dtype == expected.dtype and X.shape == expected.shape
        assert _close(X, expected), f"{case}: ask {k} differs from esopt 0.1.0 by more than rounding"
        assert np.array_equal(X2, X), f"{case}: ask {k} after re-saving differs from before"
        es.tell(X, fun(X))
        again.tell(X2, fun(X2))
