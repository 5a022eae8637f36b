"""Per-generation overhead of CMA-ES implementations: esopt CMAES vs pycma vs cmaes.CMA.

Prints one table: median (and mean) microseconds per ask+tell generation on the sphere with
the default population size, at n = 10, 100, 1000, and the ratios peer / esopt (> 1 means
esopt is faster).  The objective's cost is excluded (all three get the same precomputed-free
sphere values).  BLAS threads are pinned to 1 (threadpoolctl) so that the numbers compare the
algorithms, not the thread pools.

Usage::

    python bench/overhead.py [--dims 10 100 1000] [--seconds 3]

Each (implementation, n) runs for about ``--seconds`` (at least 20 generations); the
eigendecomposition of the lazy implementations (esopt, pycma) happens only every few
generations, which the mean includes and the median mostly does not.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def _sphere(X: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", X, X)


def gen_esopt(n: int, seed: int):
    from esopt import CMAES

    es = CMAES(np.full(n, 3.0), 1.0, seed=seed)

    def step():
        X = es.ask()
        es.tell(X, _sphere(X))

    return step


def gen_pycma(n: int, seed: int):
    import cma

    es = cma.CMAEvolutionStrategy(np.full(n, 3.0), 1.0, {"seed": seed, "verbose": -9})

    def step():
        X = es.ask()
        es.tell(X, _sphere(np.asarray(X)).tolist())

    return step


def gen_cmaes(n: int, seed: int):
    from cmaes import CMA

    es = CMA(mean=np.full(n, 3.0), sigma=1.0, seed=seed)

    def step():
        sols = [(x := es.ask(), float(x @ x)) for _ in range(es.population_size)]
        es.tell(sols)

    return step


IMPLEMENTATIONS = {"esopt": gen_esopt, "pycma": gen_pycma, "cmaes": gen_cmaes}


def measure(n: int, seconds: float, seed: int = 1, min_gens: int = 20) -> dict[str, np.ndarray]:
    """Per-generation wall times (µs) of each implementation at dimension ``n``.

    The implementations run interleaved, a few generations each in turn, so that load changes on
    the machine affect all of them alike.  cmaes.CMA, which decomposes C every generation, gets
    ``min_gens // 4`` generations at n >= 1000 (each takes seconds there).
    """
    steps = {name: make(n, seed) for name, make in IMPLEMENTATIONS.items()}
    for step in steps.values():  # warm-up
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    caps = {name: (max(min_gens // 4, 3) if name == "cmaes" and n >= 1000 else None) for name in steps}
    t_end = time.perf_counter() + seconds
    while True:
        for name, step in steps.items():
            if caps[name] is not None and len(times[name]) >= caps[name]:
                continue
            for _ in range(5):
                t0 = time.perf_counter()
                step()
                times[name].append((time.perf_counter() - t0) * 1e6)
        if time.perf_counter() > t_end and min(len(t) for t in times.values()) >= min(min_gens, 5):
            if all(len(times[k]) >= min_gens or caps[k] is not None for k in times):
                break
    return {name: np.array(t) for name, t in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import cma
    import cmaes

    print(f"pycma {cma.__version__}, cmaes {cmaes.__version__}, numpy {np.__version__}; BLAS threads = 1")
    head = (f"{'n':>5} | {'esopt med':>10} {'pycma med':>10} {'cmaes med':>10} | {'pycma/esopt':>11} "
            f"{'cmaes/esopt':>11} | {'esopt mean':>10} {'pycma mean':>10} {'cmaes mean':>10}")
    print(head)
    print("-" * len(head))
    with threadpool_limits(limits=1):
        for n in args.dims:
            t = measure(n, args.seconds)
            med = {k: float(np.median(v)) for k, v in t.items()}
            mean = {k: float(np.mean(v)) for k, v in t.items()}
            print(f"{n:>5} | {med['esopt']:>10.0f} {med['pycma']:>10.0f} {med['cmaes']:>10.0f} | "
                  f"{med['pycma'] / med['esopt']:>11.1f} {med['cmaes'] / med['esopt']:>11.1f} | "
                  f"{mean['esopt']:>10.0f} {mean['pycma']:>10.0f} {mean['cmaes']:>10.0f}")
    print("times in µs per ask+tell generation (default popsize, sphere); ratios of medians")


if __name__ == "__main__":
    main()
