"""Write the esopt 0.1.0 compatibility data used by ``tests/test_compat_010.py``.

MUST be run against esopt 0.1.0 (commit 242f0f9), never against today's code, e.g.::

    cd /path/to/checkout-of-242f0f9 && PYTHONPATH=. python /path/to/tests/data/make_010_checkpoints.py

For each case (every registered strategy alone and inside IPOP and BIPOP, plus option variants,
bounds, and a checkpoint taken with an ask pending) it runs a seeded strategy for a few
generations on a test function, writes ``esopt.save`` output to ``tests/data/v010_<case>.npz``,
then loads that file with the same 0.1.0 code and records the next ``ask()`` arrays of the
continuation (each told ``f(X)``) in ``tests/data/v010_continuations.npz`` under
``<case>/ask<k>``.  ``tests/data/v010_cases.json`` lists the cases with how they were made.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import esopt
from esopt import testfunctions as tf

OUT = Path(__file__).resolve().parent  # tests/data: *.npz there is not git-ignored
PREFIX = "v010_"
N_CONTINUE = 3

# name -> (restarts, method, n, options, bounds, generations, pending_ask, function name)
CASES: dict[str, tuple] = {}
for m in ("cmaes", "sepcmaes", "lmmaes", "canonical"):
    CASES[m] = (None, m, 8, {}, None, 7, False, "ellipsoid")
    CASES[f"ipop-{m}"] = ("ipop", m, 6, {"maxiter": 5}, None, 9, False, "rastrigin")
    CASES[f"bipop-{m}"] = ("bipop", m, 6, {"maxiter": 5}, None, 12, False, "rastrigin")
CASES["cmaes-n40-lazy"] = (None, "cmaes", 40, {}, None, 11, False, "ellipsoid")
CASES["cmaes-passive-bounds"] = (None, "cmaes", 5, {"active": False}, (-2.0, 3.0), 6, False, "rosenbrock")
CASES["cmaes-pending-ask"] = (None, "cmaes", 8, {}, None, 5, True, "ellipsoid")
CASES["sepcmaes-bounds-pending"] = (None, "sepcmaes", 8, {}, (-2.0, 3.0), 5, True, "rosenbrock")
CASES["lmmaes-float32-unmirrored"] = (
    None,
    "lmmaes",
    12,
    {"dtype": "float32", "mirrored": False, "m": 3},
    None,
    8,
    False,
    "ellipsoid",
)
CASES["lmmaes-pending-ask"] = (None, "lmmaes", 12, {"damps": 1.0}, None, 6, True, "ellipsoid")
CASES["canonical-csa-mirrored"] = (
    None,
    "canonical",
    8,
    {"csa": True, "mirrored": True, "mu": 3},
    None,
    6,
    False,
    "sphere",
)
CASES["canonical-pending-bounds"] = (None, "canonical", 8, {"lr": 0.5}, (-1.0, 4.0), 4, True, "sphere")
CASES["ipop-cmaes-pending"] = ("ipop", "cmaes", 6, {"maxiter": 5, "max_restarts": 4}, (-4.0, 4.0), 8, True, "rastrigin")


def _split(options: dict) -> tuple[dict, dict]:
    tol_names = {"maxiter", "tolfun", "maxfevals"}
    return {k: v for k, v in options.items() if k in tol_names}, {
        k: v for k, v in options.items() if k not in tol_names
    }


def make(case: tuple):
    restarts, method, n, options, bounds, _, _, _ = case
    tol, opts = _split(options)
    x0 = np.linspace(0.5, 2.0, n)
    return esopt.make_strategy(method, x0, 0.7, restarts=restarts, seed=20240, bounds=bounds, tolerances=tol, **opts)


def main() -> None:
    assert esopt.__version__ == "0.1.0" and isinstance(esopt.STRATEGIES["cmaes"], str), "run this against esopt 0.1.0"
    continuations: dict[str, np.ndarray] = {}
    for name, case in CASES.items():
        fun = getattr(tf, case[7])
        es = make(case)
        for _ in range(case[5]):
            X = es.ask()
            es.tell(X, fun(X))
        if case[6]:
            es.ask()
        path = esopt.save(es, OUT / f"{PREFIX}{name}.npz")
        loaded = esopt.load(path)
        if case[6]:  # tell the pending population first
            X = loaded._asked_X.copy() if loaded.name not in ("ipop", "bipop") else loaded.inner._asked_X.copy()
            continuations[f"{name}/pending"] = X
            loaded.tell(X, fun(X))
        for k in range(N_CONTINUE):
            X = loaded.ask()
            continuations[f"{name}/ask{k}"] = X
            loaded.tell(X, fun(X))
    np.savez(OUT / f"{PREFIX}continuations.npz", **continuations)
    meta = {
        "esopt_version": esopt.__version__,
        "numpy_version": np.__version__,
        "n_continue": N_CONTINUE,
        "cases": {
            k: dict(zip(("restarts", "method", "n", "options", "bounds", "generations", "pending_ask", "function"), c))
            for k, c in CASES.items()
        },
    }
    (OUT / f"{PREFIX}cases.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {len(CASES)} checkpoints and {len(continuations)} arrays to {OUT}")


if __name__ == "__main__":
    main()
