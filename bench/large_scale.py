"""Seconds per generation and peak RSS of the large-scale strategies against their peers.

Rows: esopt ``LMMAES`` (float64 default, mirrored; and float32) beside pypop7 0.0.82's ``LMMAES``,
and esopt ``SepCMAES`` beside pycma 4.5.0 with ``CMA_diagonal=True``, at n = 1e3 .. 1e6 on the
sphere.  Every measurement runs in a fresh subprocess (so ``ru_maxrss`` is that run's peak RSS)
with BLAS/OpenMP threads pinned (``--threads``, default 1).

One generation = ask + sphere on the population + tell (pypop7: its ``iterate`` and
``_update_distribution``).  For both LM-MA-ES implementations the generation counter is set to
``m`` before timing, so the transform uses all ``m`` direction vectors (its cost does not depend
on their values).  The time of a configuration is the median over timed generations (at least
3, until 5 s have passed, at most 30) of the process CPU time, which for single-threaded code
equals the wall time on an idle core and is less sensitive to other jobs on a shared machine
(the median wall time is printed beside it); each row is the best of ``--repeats`` fresh
processes.  The ``+stop()`` column is esopt's termination check averaged over 10 generations
(LMMAES recomputes the coordinate-wise standard deviations, ``O(m^2 n)``, every 1..10
generations).  A configuration is skipped where one generation would exceed
``--max-gen-seconds`` (estimated from the previous size).

Usage: ``python bench/large_scale.py [--sizes 1e3 1e4 1e5 1e6] [--threads 1] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _measure(impl: str, n: int) -> dict:
    """Runs inside the child process; returns timings and peak RSS."""
    import resource

    import numpy as np

    rng_x0 = np.ones(n)
    times, cpu_times, stop_times = [], [], []

    def timed(step, budget_s=5.0, min_gens=3, max_gens=30):
        t_start = time.perf_counter()
        while len(times) < max_gens and (len(times) < min_gens or time.perf_counter() - t_start < budget_s):
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)

    if impl.startswith("esopt-lmmaes") or impl == "esopt-sepcmaes":
        import esopt

        if impl == "esopt-sepcmaes":
            es = esopt.SepCMAES(rng_x0, 1.0, seed=1)
        else:
            dtype = np.float32 if impl.endswith("f32") else np.float64
            es = esopt.LMMAES(rng_x0, 1.0, seed=1, dtype=dtype)
            es.countiter = es.m  # transform with all m vectors from the start

        def step():
            X = es.ask()
            es.tell(X, np.einsum("ij,ij->i", X, X))

        step()  # warm-up
        timed(step)
        for _ in range(10):  # LMMAES recomputes diag(C) every 1..10 generations: amortize
            step()
            c0 = time.process_time()
            es.stop()
            stop_times.append(time.process_time() - c0)
        popsize = es.popsize
    elif impl == "pypop7-lmmaes":
        from pypop7.optimizers.es.es import ES
        from pypop7.optimizers.es.lmmaes import LMMAES

        problem = {
            "fitness_function": lambda x: float(np.dot(x, x)),
            "ndim_problem": n,
            "lower_boundary": -5.0 * np.ones(n),
            "upper_boundary": 5.0 * np.ones(n),
        }
        opt = LMMAES(
            problem,
            {
                "max_function_evaluations": np.inf,
                "seed_rng": 1,
                "mean": rng_x0,
                "sigma": 1.0,
                "verbose": False,
                "saving_fitness": 0,
            },
        )
        ES.optimize(opt)
        state = list(opt.initialize())  # z, d, mean, s, tm, y
        opt._n_generations = opt.n_evolution_paths  # all m vectors

        def step():
            z, d, mean, s, tm, y = state
            z, d, y = opt.iterate(z, d, mean, tm, y)
            opt._n_generations += 1
            mean, s, tm = opt._update_distribution(z, d, mean, s, tm, y)
            state[:] = [z, d, mean, s, tm, y]

        step()
        timed(step, budget_s=1.0, min_gens=2, max_gens=10)
        popsize = opt.n_individuals
    elif impl == "pycma-diagonal":
        import warnings

        import cma

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            es = cma.CMAEvolutionStrategy(rng_x0, 1.0, {"CMA_diagonal": True, "verbose": -9, "seed": 1})

        def step():
            X = es.ask()
            es.tell(X, [float(np.dot(x, x)) for x in X])

        step()
        timed(step)
        popsize = es.popsize
    else:
        raise ValueError(impl)
    return {
        "impl": impl,
        "n": n,
        "popsize": popsize,
        "gens": len(times),
        "s_per_gen": float(np.median(cpu_times)),
        "wall_s_per_gen": float(np.median(times)),
        "stop_s": float(np.mean(stop_times)) if stop_times else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def run_child(impl: str, n: int, threads: int, repeats: int) -> dict:
    """Best (lowest CPU s/gen) of ``repeats`` fresh processes; RSS is the largest seen."""
    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS})
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--child", impl, str(n)], env=env, capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            return {"impl": impl, "n": n, "error": out.stderr.strip().splitlines()[-1:]}
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = dict(min(runs, key=lambda r: r["s_per_gen"]))
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def fit_exponent(ns, ts) -> float:
    import numpy as np

    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e3, 1e4, 1e5, 1e6])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per row; the fastest counts")
    ap.add_argument("--max-gen-seconds", type=float, default=60.0)
    ap.add_argument("--child", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child[0], int(args.child[1]))))
        return
    import numpy as np

    sizes = [int(s) for s in args.sizes]
    impls = ["esopt-lmmaes", "esopt-lmmaes-f32", "pypop7-lmmaes", "esopt-sepcmaes", "pycma-diagonal"]
    rows: dict[tuple[str, int], dict] = {}
    for impl in impls:
        prev = None
        for n in sizes:
            expected = prev["s_per_gen"] * (n / prev["n"]) ** 1.2 if prev and "s_per_gen" in prev else 0.0
            if expected > args.max_gen_seconds:
                why = f"skipped: ~{expected:.0f} s/gen expected (> {args.max_gen_seconds:.0f})"
                rows[impl, n] = {"impl": impl, "n": n, "skipped": why}
                continue
            rows[impl, n] = prev = run_child(impl, n, args.threads, args.repeats)
            print(f"  measured {impl} n={n}: {prev}", file=sys.stderr, flush=True)

    print(
        f"\nSphere, one generation = ask + f + tell; BLAS threads = {args.threads}; best of {args.repeats} "
        f"fresh processes per row (peak RSS: largest of them)"
    )
    print(
        f"{'implementation':18s} {'n':>8s} {'lambda':>6s} {'s/gen':>10s} {'wall s':>9s} {'+stop()':>9s} "
        f"{'RSS MB':>8s} {'vs peer':>8s}"
    )
    peer = {"esopt-lmmaes": "pypop7-lmmaes", "esopt-lmmaes-f32": "pypop7-lmmaes", "esopt-sepcmaes": "pycma-diagonal"}
    for impl in impls:
        for n in sizes:
            r = rows[impl, n]
            if "s_per_gen" not in r:
                print(f"{impl:18s} {n:8d} {'':>6s} {r.get('skipped') or r.get('error')}")
                continue
            stop = f"{r['stop_s']:.4f}" if r.get("stop_s") is not None else ""
            ratio = ""
            p = rows.get((peer.get(impl), n))
            if p and "s_per_gen" in p:
                ratio = f"{p['s_per_gen'] / r['s_per_gen']:.1f}x"
            print(
                f"{impl:18s} {n:8d} {r['popsize']:6d} {r['s_per_gen']:10.4f} {r['wall_s_per_gen']:9.4f} "
                f"{stop:>9s} {r['peak_rss_mb']:8.0f} {ratio:>8s}"
            )
    print(
        "\ns/gen = median CPU seconds (process time) per generation, single BLAS thread: equal to the\n"
        "wall time on an idle core and robust to other load; 'wall s' = median wall seconds.\n"
        "'vs peer' = peer's s/gen / this row's s/gen (pypop7 LMMAES resp. pycma CMA_diagonal)."
    )
    ref = fit_exponent(sizes, [n * np.log(n) for n in sizes]) if len(sizes) > 1 else float("nan")
    print(
        f"Time exponent alpha in s/gen ~ n^alpha (least squares over n = {sizes}); "
        f"n log n over the same sizes has alpha = {ref:.3f}:"
    )
    for impl in impls:
        pts = [(n, rows[impl, n]["s_per_gen"]) for n in sizes if "s_per_gen" in rows[impl, n]]
        if len(pts) > 1:
            print(f"  {impl:18s} alpha = {fit_exponent(*zip(*pts)):.3f}  (n = {[p[0] for p in pts]})")


if __name__ == "__main__":
    main()
