"""Per-generation overhead of CMA-ES implementations: esopt CMAES vs pycma vs cmaes.CMA.

Prints one table: median (and mean) microseconds per ask+tell generation on the sphere with
the default population size, at n = 10, 100, 1000, and the ratios peer / esopt (> 1 means
esopt is faster).  The timed generation includes evaluating the sphere (a few µs; cmaes.CMA's
API asks one candidate at a time).  Each optimizer starts at x0 = 3 * ones, sigma0 = 1 and is
restarted (untimed) once f < 1e-8, so all are timed in the regime of a run in progress.  The
implementations run interleaved, and BLAS threads are pinned to 1 (threadpoolctl), so that the
ratios compare the algorithms, not the load of the machine or the thread pools.

Usage::

    python bench/overhead.py [--dims 10 100 1000] [--seconds 3]

Each n runs for about ``--seconds`` (at least 20 generations per implementation).  esopt and
pycma decompose C only every ``1/(10 n (c1 + cmu))`` generations (every generation at n = 10,
every 2nd at n = 100, every 8th at n = 1000): the mean includes that cost, the median mostly
not; cmaes.CMA decomposes every generation.
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


class _Stepper:
    """Times one ask+tell generation; restarts the optimizer (untimed) once f < 1e-8, so that
    every implementation is measured in the same regime (a run in progress, not a converged
    distribution with underflowing f values)."""

    def __init__(self, make, n: int, seed: int):
        self.make, self.n, self.seed = make, n, seed
        self.restart()

    def restart(self):
        self.seed += 1
        self.es = self.make(self.n, self.seed)
        self.fbest = np.inf

    def __call__(self) -> float:
        if self.fbest < 1e-8:
            self.restart()
        t0 = time.perf_counter()
        f = self.generation(self.es)
        dt = time.perf_counter() - t0
        self.fbest = min(self.fbest, f)
        return dt * 1e6


def _new_esopt(n: int, seed: int):
    from esopt import CMAES

    return CMAES(np.full(n, 3.0), 1.0, seed=seed)


def _gen_esopt(es) -> float:
    X = es.ask()
    f = _sphere(X)
    es.tell(X, f)
    return float(f.min())


def _new_pycma(n: int, seed: int):
    import cma

    return cma.CMAEvolutionStrategy(np.full(n, 3.0), 1.0, {"seed": seed, "verbose": -9})


def _gen_pycma(es) -> float:
    X = es.ask()
    f = _sphere(np.asarray(X))
    es.tell(X, f.tolist())
    return float(f.min())


def _new_cmaes(n: int, seed: int):
    from cmaes import CMA

    return CMA(mean=np.full(n, 3.0), sigma=1.0, seed=seed)


def _gen_cmaes(es) -> float:
    sols = []
    for _ in range(es.population_size):
        x = es.ask()
        sols.append((x, float(x @ x)))
    es.tell(sols)
    return min(v for _, v in sols)


def _stepper(new, gen):
    def make(n, seed):
        s = _Stepper(new, n, seed)
        s.generation = gen
        return s

    return make


IMPLEMENTATIONS = {
    "esopt": _stepper(_new_esopt, _gen_esopt),
    "pycma": _stepper(_new_pycma, _gen_pycma),
    "cmaes": _stepper(_new_cmaes, _gen_cmaes),
}


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
                times[name].append(step())
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

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"pycma {cma.__version__}, cmaes {cmaes.__version__}, numpy {np.__version__}; BLAS threads = 1; "
        f"{os.cpu_count()} CPUs, load average {load:.1f} (µs grow with load, the interleaved ratios less)"
    )
    head = (
        f"{'n':>5} | {'median µs: esopt':>16} {'pycma':>8} {'cmaes':>10} | {'pycma/esopt':>11} "
        f"{'cmaes/esopt':>11} || {'mean µs: esopt':>14} {'pycma':>8} {'cmaes':>10} | "
        f"{'pycma/esopt':>11} {'cmaes/esopt':>11}"
    )
    print(head)
    print("-" * len(head))
    with threadpool_limits(limits=1):
        for n in args.dims:
            t = measure(n, args.seconds)
            med = {k: float(np.median(v)) for k, v in t.items()}
            mean = {k: float(np.mean(v)) for k, v in t.items()}
            print(
                f"{n:>5} | {med['esopt']:>16.0f} {med['pycma']:>8.0f} {med['cmaes']:>10.0f} | "
                f"{med['pycma'] / med['esopt']:>11.1f} {med['cmaes'] / med['esopt']:>11.1f} || "
                f"{mean['esopt']:>14.0f} {mean['pycma']:>8.0f} {mean['cmaes']:>10.0f} | "
                f"{mean['pycma'] / mean['esopt']:>11.1f} {mean['cmaes'] / mean['esopt']:>11.1f}"
            )
    print("µs per ask+tell generation (default popsize, sphere); ratios > 1: esopt is faster")


if __name__ == "__main__":
    main()
