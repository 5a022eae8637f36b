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
  eta 3) stopping trials, told the lexicographic (rung, value) fitness of :meth:`ASHA.fitness`;
* ``cmaes-asha-min3``: the same with the first rung at step 3 (rungs ``3, 9, 27``);
* ``random-full`` / ``random-asha``: i.i.d. Gaussian samples around the centre (the first
  generation's distribution), without / with ASHA (Ray Tune's ASHA + random search, in miniature).

Measures per ``rho`` (median over seeds): the final best ``f`` among trials that reached ``R``;
the resource (steps) until a method first reaches the target = the median final best of
``cmaes-full``, as a fraction of the budget.

``--study correlation`` (minutes on 2 cores)::

    nice -n 10 python bench/multifidelity.py --study correlation --epochs 16 --samples 24 --workers 2 --save-results

How well each epoch ranks ``digits-highdim`` configurations as epoch ``--epochs`` does (Spearman),
for uniform samples of the box and for samples of CMA-ES's first generation: the number the
synthetic study says decides whether successive halving pays.

``--study digits`` (the issue's benchmark; minutes to hours; esopt rows need the campaign
driver's fidelity support)::

    nice -n 10 python bench/multifidelity.py --study digits --seeds 5 --workers 2 --epochs 16 \
        --worker-seconds 1200 --methods esopt-sync esopt-async esopt-fidelity tune-asha optuna-sha dehb

Task: ``cluster/configs/digits-highdim.yaml`` with ``trial.epochs = --epochs``.  Methods: esopt
CMA-ES full budget (sync, and async), esopt async + ``fidelity: {min: 1, eta: 3}``, all through
:class:`cluster.campaign.Campaign` on a local Ray instance of ``--workers`` CPUs; Ray Tune's
``ASHAScheduler`` (grace 1, eta 3) with Tune's random search; Optuna TPE with
``SuccessiveHalvingPruner`` (min resource 1, reduction factor 3), ``n_jobs = --workers``; DEHB (the
``dehb`` package) when installed.  Every method samples the same ``[0, 1]^d`` box decoded by the
config's :class:`cluster.space.Space` and trains with ``trials.train_and_evaluate`` (report after
every epoch).  Measures: the best validation error of trials that reached the full budget against
cumulative worker-seconds (each trial's own ``wall_time_s`` summed in completion order), worker-seconds
to the target (today's full-budget CMA-ES median final best), the final best at equal
worker-seconds, and each final best retrained with 3 fresh training seeds.  BLAS and torch threads
are pinned to 1 per trial.
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
    r_min = 3 if method.endswith("min3") else 1
    asha = ASHA(r_min, args.r_max, args.eta) if use_asha else None
    es = CMAES(x0, sigma0, seed=seed) if method.startswith("cmaes") else None
    popsize = es.popsize if es is not None else 10
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


SYNTHETIC_METHODS = ("cmaes-full", "cmaes-asha", "cmaes-asha-min3", "random-full", "random-asha")


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
    """Markdown: one row per rho, the methods' median final best and resource to the target."""
    out = [
        f"d = {args.dim}, R = {args.r_max} steps, rungs {ASHA(1, args.r_max, args.eta).rungs}, eta {args.eta:g}, "
        f"budget {args.budget} full-budget trials ({args.budget * args.r_max} steps), {args.seeds} seeds; "
        "median final best f over seeds (full-budget trials only; optimum 0); 'to target': the target is the median "
        "final best of cmaes-full, shown as the seeds that reached it within the budget and the median fraction of "
        "the budget they used until then",
        "",
        "| rho | Spearman step 1 / step 3 | "
        + " | ".join(f"{m} final best" for m in SYNTHETIC_METHODS)
        + " | "
        + " | ".join(f"{m} to target" for m in SYNTHETIC_METHODS)
        + " | trials (full / asha) |",
        "|" + "---|" * (3 + 2 * len(SYNTHETIC_METHODS)),
    ]
    for rho in args.rhos:
        by = {r["method"]: r for r in rows if r["rho"] == rho}
        any_row = next(iter(by.values()))
        finals = " | ".join(f"{by[m]['median_final_best']:.2e}" for m in SYNTHETIC_METHODS)
        reach = " | ".join(_reach(by[m]) for m in SYNTHETIC_METHODS)
        out.append(
            f"| {rho:g} | {any_row['spearman_step1']:.2f} / {any_row['spearman_step3']:.2f} | {finals} | {reach} | "
            f"{by['cmaes-full']['median_trials']:.0f} / {by['cmaes-asha']['median_trials']:.0f} |"
        )
    return "\n".join(out)


def _reach(row: dict) -> str:
    frac = row["median_resource_to_target"]
    return f"{row['reached_target']}/{row['seeds']}" + (f" at {frac:.2f}" if frac is not None else "")


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


# ============================================================================ digits study
def _digits_config(args, method: str) -> dict:
    """digits-highdim with ``--epochs``, ``--workers`` CPUs, and the method's scheduler/fidelity."""
    import yaml

    raw = yaml.safe_load((ROOT / "cluster" / "configs" / "digits-highdim.yaml").read_text())
    raw["trial"] = {**raw["trial"], "epochs": args.epochs, "threads": 1}
    raw["budget"] = {"max_time_s": args.worker_seconds / args.workers}
    raw["ray"] = {"num_cpus": args.workers}
    raw["scheduler"] = {"mode": "sync" if method == "esopt-sync" else "async"}
    if method == "esopt-fidelity":
        raw["fidelity"] = {"resource": "epochs", "min": 1, "eta": args.eta}
    return raw


def _unit_params(space, u: np.ndarray) -> dict:
    """Decode a point of ``[0, 1]^d`` (the peers' search box) with the config's Space."""
    return space.decode(np.clip(u, 0.0, 1.0))


def run_esopt(method: str, seed: int, args) -> list[dict]:
    """One esopt campaign through :class:`cluster.campaign.Campaign`; trials in completion order."""
    import tempfile

    from cluster.campaign import Campaign
    from cluster.config import parse_config
    from cluster.status import TrialStatus
    from cluster.store import Journal

    raw = _digits_config(args, method)
    raw["strategy"] = {**raw["strategy"], "seed": seed}
    cfg = parse_config(raw, base_dir=ROOT / "cluster" / "configs")
    with tempfile.TemporaryDirectory() as d:
        with Campaign(cfg, Path(d) / "run") as c:
            c.run()
        with Journal(Path(d) / "run", readonly=True) as j:
            rows, reports = j.trials(), j.reports()
    if cfg.fidelity is not None and not reports:
        raise RuntimeError("the campaign driver ignored fidelity: no report was journaled (driver support pending)")
    out = []
    for t in sorted(rows, key=lambda t: t.finished_at or np.inf):
        if t.status not in (TrialStatus.DONE, TrialStatus.STOPPED, TrialStatus.FAILED):
            continue
        res = t.result or {}
        out.append(
            {
                "worker_s": float(res.get("wall_time_s") or 0.0),
                "value": t.objective,
                "full": t.status is TrialStatus.DONE,
                "params": t.params,
            }
        )
    return out


def _train(params: dict, args, seed: int, report=None) -> dict:
    import trials

    spec = {**_digits_config(args, "x")["trial"], "seed": seed}
    r = trials.train_and_evaluate(params, spec, report=report)
    return {"value": r.objective, "worker_s": r.wall_time_s, "full": r.stopped_at is None, "params": params}


def run_tune_asha(seed: int, args, space) -> list[dict]:
    """Ray Tune ASHAScheduler (grace 1, eta, max_t = epochs) + Tune's random search on ``[0, 1]^d``."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    names = [f"u{i}" for i in range(space.dim)]
    log: list[dict] = []

    def trainable(config):
        params = _unit_params(space, np.array([config[n] for n in names]))

        def report(epoch, value):
            tune.report({"valid_error": value, "epoch": epoch})
            return True

        _train(params, args, 0, report)  # Tune stops it inside tune.report when ASHA says so

    ray.init(address="local", num_cpus=args.workers, include_dashboard=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={n: tune.uniform(0.0, 1.0) for n in names},
            tune_config=tune.TuneConfig(
                metric="valid_error",
                mode="min",
                scheduler=ASHAScheduler(
                    time_attr="epoch", max_t=args.epochs, grace_period=1, reduction_factor=args.eta
                ),
                num_samples=100_000,
                time_budget_s=args.worker_seconds / args.workers,
                search_alg=tune.search.BasicVariantGenerator(random_state=seed),
            ),
        )
        grid = tuner.fit()
        for r in grid:
            df = r.metrics_dataframe
            if df is None or df.empty:
                continue
            last = df.iloc[-1]
            log.append(
                {
                    "worker_s": float(last.get("time_total_s", 0.0)),
                    "value": float(last["valid_error"]),
                    "full": int(last.get("epoch", 0)) >= args.epochs,
                    "params": _unit_params(space, np.array([r.config[n] for n in names])),
                    "end": float(last.get("timestamp", 0.0)),
                }
            )
    finally:
        ray.shutdown()
    return sorted(log, key=lambda r: r["end"])


def run_optuna_sha(seed: int, args, space) -> list[dict]:
    """Optuna TPE + SuccessiveHalvingPruner (min resource 1, reduction factor eta), ``n_jobs`` workers."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    log: list[dict] = []

    def objective(trial):
        u = np.array([trial.suggest_float(f"u{i}", 0.0, 1.0) for i in range(space.dim)])
        params = _unit_params(space, u)

        def report(epoch, value):
            trial.report(value, epoch)
            return not trial.should_prune()

        res = _train(params, args, 0, report)
        log.append(res)
        if not res["full"]:
            raise optuna.TrialPruned()
        return res["value"]

    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=int(args.eta))
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    study.optimize(objective, n_jobs=args.workers, timeout=args.worker_seconds / args.workers)
    return log


def run_dehb(seed: int, args, space) -> list[dict]:
    """DEHB (the ``dehb`` package) on ``[0, 1]^d`` with fidelity = epochs; raises ImportError when absent."""
    import ConfigSpace as CS
    from dehb import DEHB

    cs = CS.ConfigurationSpace(seed=seed)
    cs.add([CS.Float(f"u{i}", (0.0, 1.0)) for i in range(space.dim)])
    log: list[dict] = []

    def f(config, fidelity, **kwargs):
        params = _unit_params(space, np.array([config[f"u{i}"] for i in range(space.dim)]))
        spec_epochs = max(1, round(fidelity))
        stop_after = spec_epochs

        def report(epoch, value):
            return epoch < stop_after

        res = _train(params, args, 0, report)
        res["full"] = spec_epochs >= args.epochs
        log.append(res)
        return {"fitness": res["value"], "cost": res["worker_s"]}

    dehb = DEHB(f=f, cs=cs, min_fidelity=1, max_fidelity=args.epochs, eta=args.eta, n_workers=1, seed=seed)
    dehb.run(total_cost=args.worker_seconds)
    return log


def _curve(log: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative worker-seconds, best full-budget value so far) over a run's trials in completion order."""
    ws = np.cumsum([r["worker_s"] for r in log])
    vals = [r["value"] if r["full"] and r["value"] is not None else np.inf for r in log]
    return ws, np.minimum.accumulate(np.array(vals, dtype=float)) if vals else np.array([])


def digits_study(args) -> list[dict]:
    """Each method x seed; one summary row per method (see the module docstring)."""
    from cluster.config import load_config

    space = load_config(ROOT / "cluster" / "configs" / "digits-highdim.yaml", check_objective=False).space
    runners = {
        "esopt-sync": lambda s: run_esopt("esopt-sync", s, args),
        "esopt-async": lambda s: run_esopt("esopt-async", s, args),
        "esopt-fidelity": lambda s: run_esopt("esopt-fidelity", s, args),
        "tune-asha": lambda s: run_tune_asha(s, args, space),
        "optuna-sha": lambda s: run_optuna_sha(s, args, space),
        "dehb": lambda s: run_dehb(s, args, space),
    }
    logs: dict[str, list] = {}
    walls: dict[str, list] = {}
    for m in args.methods:
        logs[m], walls[m] = [], []
        for s in range(args.seeds):
            t0 = time.perf_counter()
            try:
                logs[m].append(runners[m](s))
            except (ImportError, RuntimeError) as e:
                print(f"{m}: skipped ({type(e).__name__}: {e})", flush=True)
                break
            walls[m].append(time.perf_counter() - t0)
            print(f"{m} seed {s}: {len(logs[m][-1])} trials in {walls[m][-1]:.0f} s", flush=True)
    ref = "esopt-sync" if logs.get("esopt-sync") else next((m for m in logs if logs[m]), None)
    finals = {m: [(_curve(lg)[1][-1] if lg else np.inf) for lg in runs] for m, runs in logs.items()}
    target = float(np.median(finals[ref])) if ref else np.inf
    rows = []
    for m, runs in logs.items():
        if not runs:
            rows.append({"method": m, "skipped": True})
            continue
        to_target = []
        for lg in runs:
            ws, best = _curve(lg)
            hit = np.nonzero(best <= target)[0]
            to_target.append(float(ws[hit[0]]) if hit.size else np.inf)
        retrain = [
            np.mean([_train(min(lg, key=_full_key)["params"], args, 10_000 + k)["value"] for k in range(3)])
            for lg in runs
            if any(r["full"] for r in lg)
        ]
        rows.append(
            {
                "method": m,
                "seeds": len(runs),
                "target": target,
                "median_final_best": float(np.median(finals[m])),
                "median_worker_s_to_target": float(np.median(to_target)),
                "median_retrained": float(np.median(retrain)) if retrain else None,
                "median_trials": float(np.median([len(lg) for lg in runs])),
                "median_wall_s": float(np.median(walls[m])),  # the whole run, startup and overheads included
            }
        )
    return rows


def _full_key(r: dict) -> float:
    return r["value"] if r["full"] and r["value"] is not None else np.inf


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
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--study", choices=("synthetic", "digits", "correlation"), default="synthetic")
    p.add_argument("--samples", type=int, default=24, help="correlation: configurations per distribution")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--dim", type=int, default=10)
    p.add_argument("--r-max", type=int, default=27, help="synthetic: full budget in steps")
    p.add_argument("--eta", type=float, default=3.0)
    p.add_argument("--budget", type=int, default=100, help="synthetic: total resource, in full-budget trials")
    p.add_argument("--rhos", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.35, 0.25, 0.1, 0.0])
    p.add_argument("--epochs", type=int, default=16, help="digits: full budget in epochs")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker-seconds", type=float, default=1200.0, help="digits: worker-seconds per run")
    p.add_argument("--methods", nargs="+", default=["esopt-sync", "esopt-async", "esopt-fidelity", "tune-asha"])
    p.add_argument("--save-results", action="store_true")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    if args.study == "synthetic":
        rows = synthetic_study(args)
        table = synthetic_table(rows, args)
    elif args.study == "correlation":
        rows = correlation_study(args)
        table = correlation_table(rows, args)
    else:
        rows = digits_study(args)
        table = "\n".join(json.dumps(r) for r in rows)
    print(table)
    print(f"\n({time.perf_counter() - t0:.1f} s)")
    if args.save_results:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"multifidelity-{args.study}.json").write_text(json.dumps(rows, indent=1))
        command = "python bench/multifidelity.py " + " ".join(sys.argv[1:] if argv is None else argv)
        (RESULTS / f"multifidelity-{args.study}.md").write_text(f"`{command}`\n\n{table}\n")
        if args.study == "synthetic":
            synthetic_plot(rows, RESULTS / "multifidelity-synthetic.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
