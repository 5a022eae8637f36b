"""Multi-fidelity tuning (issue 14): when successive halving pays, and worker-seconds to quality.

Two studies; results and the exact commands in bench/results/multifidelity.md.

``--study synthetic`` (runs now, seconds; no Ray, no torch)::

    nice -n 10 python bench/multifidelity.py --study synthetic --seeds 10 --save-results

A synthetic objective with a known optimum and a tunable correlation between low and full
fidelity.  ``x`` in R^d; the full-budget objective is ``f(x) = mean((x - x*)^2)`` (optimum 0 at
``x*``); a *deceptive* low-fidelity objective ``g`` has its optimum
nowhere: a linear trend along a random direction orthogonal to ``x* - 1/2`` (uncorrelated with
``f`` around the start), the "configurations that learn fast" of real training (a large learning
rate looks best after one epoch).  A trial's learning curve at step ``s = 1..R`` is::

    v(x, s) = (1 - w_s) f(x) + w_s g(x) + a / s,      w_s = (1 - rho) (1 - ln s / ln R)

so ``rho = 1`` makes every step rank configurations like the full budget (the ``a / s`` decay is
common to all), ``rho = 0`` makes the first step rank them by ``g`` alone, and the full budget
(``s = R``) is always ``f + a / R``.  The realized Spearman correlation between ``v(., r_0)`` and
``f`` over the first generation's samples is reported for each ``rho``.  Methods, one trial after
another (sequential: asynchronous workers are not simulated), all with the same total resource
``--budget`` x ``R`` steps:

* ``cmaes-full``: esopt CMA-ES (default popsize, sigma0 0.3 from the centre), every trial to ``R``;
* ``cmaes-asha``: the same CMA-ES with :class:`cluster.fidelity.ASHA` (rungs ``1, 3, 9, 27``,
  eta 3; the first rung is ``--fidelity-min``) stopping trials, told the lexicographic (rung,
  value) fitness of :meth:`ASHA.fitness`;
* ``cmaes-asha-min3``: the same with the first rung at step 3 (rungs ``3, 9, 27``);
* ``cmaes-asha-window`` / ``cmaes-asha-window-min3``: ``cmaes-asha`` / ``cmaes-asha-min3`` with
  ``fidelity.window = popsize`` (a rung's cutoff among its last popsize values, the current
  population, not all values ever recorded there; :class:`cluster.fidelity.ASHA`);
* ``random-full`` / ``random-asha``: i.i.d. Gaussian samples around the centre (the first
  generation's distribution), without / with ASHA (Ray Tune's ASHA + random search, in miniature).

Measures per ``rho`` (median over seeds): the final best ``f`` among trials that reached ``R``;
the resource (steps) until a method first reaches the target = the median final best of
``cmaes-full``, as a fraction of the budget, and that fraction over ``cmaes-full``'s own (the
"x of full budget" of the digits study).  ``rho = 1`` is the ceiling of what successive halving
can save CMA-ES: no real task ranks configurations better at its first rung.

With digits-highdim's rungs (16 epochs, first rung 2: rungs ``2, 6, 16``)::

    nice -n 10 python bench/multifidelity.py --study synthetic --seeds 10 --r-max 16 --fidelity-min 2 --save-results

saves ``multifidelity-synthetic-R16-min2.*`` beside the default study's files.

``--study correlation`` (minutes on 2 cores)::

    nice -n 10 python bench/multifidelity.py --study correlation --epochs 16 --samples 24 --workers 2 --save-results

How well each epoch ranks ``digits-highdim`` configurations as epoch ``--epochs`` does (Spearman),
for uniform samples of the box and for samples of CMA-ES's first generation: the number the
synthetic study says decides whether successive halving pays.

``--study digits`` (the issue's benchmark; about 15 minutes per seed on 2 cores)::

    nice -n 10 python bench/multifidelity.py --study digits --seeds 5 --workers 2 --epochs 16 \
        --worker-seconds 200 --save-results

Worker-seconds to quality on ``digits-highdim`` for esopt (sync, async, async + fidelity), Ray
Tune's ASHA, Optuna TPE + successive halving and DEHB: bench/multifidelity_tasks.py.

``--study mnist1d`` (the same methods on ``cluster/configs/mnist1d-mixed.yaml``, 30 epochs, the
optimizer a categorical; the committed run, about 100 minutes on 2 cores; ``esopt-fidelity-min2``
left out because ``--fidelity-min 2`` makes it ``esopt-fidelity``)::

    nice -n 10 python bench/multifidelity.py --study mnist1d --seeds 5 --workers 2 \
        --worker-seconds 300 --fidelity-min 2 --save-results \
        --methods esopt-sync esopt-async esopt-fidelity tune-asha optuna-sha dehb
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cluster.fidelity import ASHA  # noqa: E402
from esopt import CMAES  # noqa: E402

RESULTS = ROOT / "bench" / "results"


# ============================================================================ synthetic study
class SyntheticTask:
    """Learning curves with a known optimum and a tunable low/full-fidelity correlation (module docstring).

    ``x`` arrays of shape ``(d,)``; ``curve(x, s)`` is the value reported at step ``s`` (1..R);
    ``f(x)`` the full-budget objective without the common ``a / R`` offset (optimum 0 at ``x_star``).
    """

    def __init__(self, dim: int, rho: float, r_max: int, rng: np.random.Generator, decay: float = 0.1):
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"rho must be in [0, 1], got {rho}")
        self.dim, self.rho, self.r_max, self.decay = dim, float(rho), int(r_max), float(decay)
        self.x_star = rng.uniform(0.25, 0.75, dim)  # full-budget optimum
        u = rng.standard_normal(dim)
        c = self.x_star - 0.5
        u -= (u @ c) / (c @ c) * c  # orthogonal to the way from the centre to x*: uncorrelated with f there
        self.u = u / np.linalg.norm(u)
        X = 0.5 + 0.3 * rng.standard_normal((2000, dim))  # the first generation's distribution
        self.g_scale = float(np.std([self.f(x) for x in X])) / 0.3  # g as spread out as f there

    def f(self, x: np.ndarray) -> float:
        """Full-budget objective, ``mean((x - x*)^2)``."""
        return float(np.mean((x - self.x_star) ** 2))

    def g(self, x: np.ndarray) -> float:
        """The deceptive early objective: a linear trend ``(x - 1/2) . u`` (a unit vector orthogonal to
        ``x* - 1/2``), scaled to the spread of ``f`` over the first generation's samples."""
        return float(self.g_scale * (x - 0.5) @ self.u)

    def weight(self, s: int) -> float:
        """``w_s = (1 - rho)(1 - ln s / ln R)``: the share of ``g`` at step ``s`` (0 at ``R``)."""
        return (1.0 - self.rho) * (1.0 - np.log(s) / np.log(self.r_max))

    def curve(self, x: np.ndarray, s: int) -> float:
        """The value reported at step ``s``."""
        w = self.weight(s)
        return (1.0 - w) * self.f(x) + w * self.g(x) + self.decay / s


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _run_trial(task: SyntheticTask, x: np.ndarray, tid: int, asha: ASHA | None) -> tuple[int, bool]:
    """Train one synthetic trial; returns (steps consumed, reached the full budget)."""
    if asha is None:
        return task.r_max, True
    for s in range(1, task.r_max + 1):
        if not asha.on_report(tid, s, task.curve(x, s)):
            return s, False
    return task.r_max, True


def synthetic_run(method: str, rho: float, seed: int, args) -> dict:
    """One run: trajectory of (resource consumed, best full-budget f) and the final best."""
    rng = np.random.default_rng(seed)
    task = SyntheticTask(args.dim, rho, args.r_max, rng)
    budget = args.budget * args.r_max
    x0, sigma0 = np.full(args.dim, 0.5), 0.3
    use_asha = "asha" in method
    r_min = 3 if method.endswith("min3") else args.fidelity_min
    es = CMAES(x0, sigma0, seed=seed) if method.startswith("cmaes") else None
    popsize = es.popsize if es is not None else 10
    window = popsize if "window" in method else None
    asha = ASHA(r_min, args.r_max, args.eta, window=window) if use_asha else None
    used, best, tid, traj = 0, np.inf, 0, []
    while used < budget:
        X = es.ask() if es is not None else x0 + sigma0 * rng.standard_normal((popsize, args.dim))
        ids, objectives = [], []
        for x in X:
            steps, full = _run_trial(task, x, tid, asha)
            used += steps
            fx = task.f(x)
            if full:
                best = min(best, fx)
            traj.append((used, best))
            ids.append(tid)
            objectives.append(task.curve(x, task.r_max) if full else None)
            tid += 1
            if used >= budget:
                break
        if es is not None and len(ids) == popsize:
            fit = asha.fitness(ids, objectives) if asha is not None else np.array(objectives, dtype=float)
            es.tell(X, fit)
    return {"method": method, "rho": rho, "seed": seed, "best": best, "traj": traj, "trials": tid}


def _realized_correlation(rho: float, args, n: int = 400) -> tuple[float, float]:
    """Spearman correlation of the step-1 and step-3 values with f over first-generation samples (median of seeds)."""
    out1, out3 = [], []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        task = SyntheticTask(args.dim, rho, args.r_max, rng)
        X = 0.5 + 0.3 * np.random.default_rng(10_000 + seed).standard_normal((n, args.dim))
        f = np.array([task.f(x) for x in X])
        out1.append(_spearman(np.array([task.curve(x, 1) for x in X]), f))
        out3.append(_spearman(np.array([task.curve(x, min(3, args.r_max)) for x in X]), f))
    return float(np.median(out1)), float(np.median(out3))


def _to_target(traj: list[tuple[int, float]], target: float) -> float:
    for used, best in traj:
        if best <= target:
            return float(used)
    return float("inf")


SYNTHETIC_METHODS = (
    "cmaes-full",
    "cmaes-asha",
    "cmaes-asha-min3",
    "cmaes-asha-window",
    "cmaes-asha-window-min3",
    "random-full",
    "random-asha",
)


def synthetic_study(args) -> list[dict]:
    """Every method x rho x seed; returns one summary row per (rho, method)."""
    rows = []
    budget = args.budget * args.r_max
    for rho in args.rhos:
        runs = {m: [synthetic_run(m, rho, s, args) for s in range(args.seeds)] for m in SYNTHETIC_METHODS}
        target = float(np.median([r["best"] for r in runs["cmaes-full"]]))
        c1, c3 = _realized_correlation(rho, args)
        for m, rs in runs.items():
            reach = np.array([_to_target(r["traj"], target) for r in rs])
            hit = reach[np.isfinite(reach)]
            rows.append(
                {
                    "rho": rho,
                    "spearman_step1": c1,
                    "spearman_step3": c3,
                    "method": m,
                    "median_final_best": float(np.median([r["best"] for r in rs])),
                    "target": target,
                    "median_resource_to_target": float(np.median(hit)) / budget if hit.size else None,
                    "reached_target": int(hit.size),
                    "median_trials": float(np.median([r["trials"] for r in rs])),
                    "seeds": len(rs),
                }
            )
    return rows


def synthetic_table(rows: list[dict], args) -> str:
    """Markdown: one row per rho; per method its median final best and its resource to the target
    (seeds that reached it, median fraction of the budget, and that over cmaes-full's)."""
    out = [
        f"d = {args.dim}, R = {args.r_max} steps, rungs {ASHA(args.fidelity_min, args.r_max, args.eta).rungs} (min3: "
        f"{ASHA(3, args.r_max, args.eta).rungs}), eta {args.eta:g}, budget {args.budget} full-budget trials "
        f"({args.budget * args.r_max} steps), {args.seeds} seeds.  Each cell: median final best f over seeds "
        "(full-budget trials only; optimum 0); the seeds that reached the target (the median final best of "
        "cmaes-full) within the budget, the median fraction of the budget they used until then, and in brackets "
        "that fraction over cmaes-full's; the median number of trials",
        "",
        "| rho | Spearman step 1 / step 3 | " + " | ".join(SYNTHETIC_METHODS) + " |",
        "|" + "---|" * (2 + len(SYNTHETIC_METHODS)),
    ]
    for rho in args.rhos:
        by = {r["method"]: r for r in rows if r["rho"] == rho}
        any_row = next(iter(by.values()))
        full = by["cmaes-full"]["median_resource_to_target"]
        cells = " | ".join(
            f"{by[m]['median_final_best']:.2e}; {_reach(by[m], full)}; {by[m]['median_trials']:.0f} trials"
            for m in SYNTHETIC_METHODS
        )
        out.append(f"| {rho:g} | {any_row['spearman_step1']:.2f} / {any_row['spearman_step3']:.2f} | {cells} |")
    return "\n".join(out)


def _reach(row: dict, full: float | None = None) -> str:
    frac = row["median_resource_to_target"]
    if frac is None:
        return f"{row['reached_target']}/{row['seeds']}"
    ratio = f" ({frac / full:.2f}x)" if full else ""
    return f"{row['reached_target']}/{row['seeds']} at {frac:.2f}{ratio}"


def synthetic_plot(rows: list[dict], path: Path) -> Path:
    """Median final best against the realized step-1 Spearman correlation, one line per method (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for m in SYNTHETIC_METHODS:
        pts = sorted((r["spearman_step1"], r["median_final_best"]) for r in rows if r["method"] == m)
        ax.plot(*zip(*pts), marker="o", label=m, ls="--" if m.startswith("random") else "-")
    ax.set_yscale("log")
    ax.set_xlabel("Spearman correlation of step-1 values with the full-budget objective")
    ax.set_ylabel("median final best f (full budget)\n(lower is better)")
    ax.set_title("synthetic multi-fidelity study: successive halving vs low-fidelity correlation")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100)
    return path


# ============================================================================ correlation study
def _curve_of(job: tuple[dict, dict]) -> list[float]:
    """Train one configuration to the end with a report callback; its validation-error curve."""
    import trials

    params, spec = job
    seen: list[float] = []
    r = trials.train_and_evaluate(params, spec, report=lambda e, v: seen.append(v) or True)
    return seen if r.status == "ok" else []


def correlation_study(args) -> list[dict]:
    """How well epoch k ranks digits-highdim configurations as the full budget does (Spearman).

    ``--samples`` configurations from each of two distributions of the unit box: uniform (what
    random search and Ray Tune's ASHA sample) and CMA-ES's first generation (``x0`` of the space,
    sigma 0.2 as in the shipped config, clipped), each trained to ``--epochs`` with
    ``trials.train_and_evaluate``'s report callback; diverged or failed trials are left out.
    """
    from concurrent.futures import ProcessPoolExecutor

    from cluster.config import load_config

    cfg = load_config(ROOT / "cluster" / "configs" / "digits-highdim.yaml", check_objective=False)
    space = cfg.space
    spec = {**cfg.trial, "epochs": args.epochs, "threads": 1}
    rng = np.random.default_rng(0)
    lo, up = space.bounds
    samples = {
        "uniform": rng.uniform(size=(args.samples, space.dim)),
        "cmaes-first-generation": np.clip(
            np.asarray(space.x0) + 0.2 * rng.standard_normal((args.samples, space.dim)), lo, up
        ),
    }
    rows = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for name, U in samples.items():
            jobs = [(space.decode(u), spec) for u in U]
            curves = [c for c in pool.map(_curve_of, jobs) if len(c) == args.epochs]
            C = np.array(curves)
            final = C[:, -1]
            for e in range(args.epochs - 1):
                rows.append(
                    {
                        "distribution": name,
                        "epoch": e + 1,
                        "spearman": _spearman(C[:, e], final),
                        "n": len(curves),
                        "median_final": float(np.median(final)),
                    }
                )
    return rows


def correlation_table(rows: list[dict], args) -> str:
    """Markdown: Spearman of each epoch's validation error with the last epoch's, per distribution."""
    dists = sorted({r["distribution"] for r in rows})
    out = [
        f"digits-highdim, {args.epochs} epochs, {args.samples} configurations per distribution "
        "(trials that diverged or failed left out: n)",
        "",
        "| epoch | "
        + " | ".join(f"{d} (n={next(r['n'] for r in rows if r['distribution'] == d)})" for d in dists)
        + " |",
        "|" + "---|" * (1 + len(dists)),
    ]
    for e in sorted({r["epoch"] for r in rows}):
        vals = [next(r["spearman"] for r in rows if r["distribution"] == d and r["epoch"] == e) for d in dists]
        out.append(f"| {e} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    return "\n".join(out)


# ============================================================================ main
def reproducing_command(argv: list[str]) -> str:
    """The command line that reproduces a study's results: ``argv`` (``sys.argv[1:]``, list of str)
    without ``--report-only`` and ``--out DIR`` / ``--out=DIR``, which choose where cached runs are
    read from, not what they hold (a report of runs cached elsewhere names the command that computes
    them)."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif a != "--report-only" and not a.startswith("--out="):
            kept.append(a)
    return " ".join(["python bench/multifidelity.py", *kept])


def result_stem(args) -> str:
    """Name of a study's saved results under bench/results/: ``multifidelity-<study>``, and for a
    synthetic study with another full budget or first rung than the defaults (27 steps, step 1)
    ``multifidelity-synthetic-R<r_max>-min<first rung>``, so that both can be committed."""
    stem = f"multifidelity-{args.study}"
    if args.study == "synthetic" and (args.r_max, args.fidelity_min) != (27, 1):
        stem += f"-R{args.r_max}-min{args.fidelity_min}"
    return stem


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--study", choices=("synthetic", "digits", "mnist1d", "correlation"), default="synthetic")
    p.add_argument("--samples", type=int, default=24, help="correlation: configurations per distribution")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--dim", type=int, default=10)
    p.add_argument("--r-max", type=int, default=27, help="synthetic: full budget in steps")
    p.add_argument("--eta", type=float, default=3.0)
    p.add_argument("--budget", type=int, default=100, help="synthetic: total resource, in full-budget trials")
    p.add_argument("--rhos", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.35, 0.25, 0.1, 0.0])
    p.add_argument("--epochs", type=int, default=None, help="full budget in epochs (default 16; mnist1d: 30)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker-seconds", type=float, default=200.0, help="digits/mnist1d: training seconds per run")
    p.add_argument(
        "--fidelity-min",
        type=int,
        default=1,
        help="every method's first rung (digits/mnist1d: epochs; synthetic: steps, but for the min3 methods)",
    )
    p.add_argument(
        "--methods", nargs="+", default=None, help="digits/mnist1d: default all (bench/multifidelity_tasks.py)"
    )
    p.add_argument("--out", default=None, help="digits/mnist1d: run cache (default bench/out/multifidelity-<study>)")
    p.add_argument("--report-only", action="store_true", help="digits/mnist1d: tables from the cached runs only")
    p.add_argument("--allow-stale", action="store_true", help="digits/mnist1d: save results from other code's runs")
    p.add_argument("--save-results", action="store_true")
    args = p.parse_args(argv)
    args.command = reproducing_command(list(sys.argv[1:] if argv is None else argv))
    t0 = time.perf_counter()
    import provenance as prov_mod  # bench/provenance.py: of the code as it is before the study runs

    prov = prov_mod.provenance(command=args.command)
    if args.study == "synthetic":
        rows = synthetic_study(args)
        table = synthetic_table(rows, args)
    elif args.study == "correlation":
        import multifidelity_tasks

        args.epochs = args.epochs or multifidelity_tasks.default_epochs("digits")  # digits-highdim's curves
        rows = correlation_study(args)
        table = correlation_table(rows, args)
    else:
        import multifidelity_tasks

        args.epochs = args.epochs or multifidelity_tasks.default_epochs(args.study)
        args.methods = args.methods or list(multifidelity_tasks.METHODS)
        return multifidelity_tasks.task_study(args)
    print(table)
    print(f"\n({time.perf_counter() - t0:.1f} s)")
    if args.save_results:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stem = result_stem(args)
        (RESULTS / f"{stem}.json").write_text(json.dumps(rows, indent=1))
        md = RESULTS / f"{stem}.md"
        md.write_text(f"`{args.command}`\n\n{table}\n\n{prov_mod.markdown(prov)}\n")
        prov_mod.write_sidecar(md, prov)
        if args.study == "synthetic":
            synthetic_plot(rows, RESULTS / f"{stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
