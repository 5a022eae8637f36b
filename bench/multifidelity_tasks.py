"""Worker-seconds to quality on a real training task: esopt with and without multi-fidelity vs Ray
Tune's ASHA, Optuna's successive halving and DEHB (issue 14).  Run through
``bench/multifidelity.py --study digits`` or ``--study mnist1d`` (its module docstring has the
commands)::

    nice -n 10 python bench/multifidelity.py --study digits --seeds 5 --workers 2 --epochs 16 \\
        --worker-seconds 200 --save-results
    nice -n 10 python bench/multifidelity.py --study mnist1d --seeds 5 --workers 2 \\
        --worker-seconds 600 --fidelity-min 2 --save-results

Tasks (:data:`STUDIES`): ``digits`` is ``cluster/configs/digits-highdim.yaml`` (19 continuous and
integer hyperparameters, CMA-ES); ``mnist1d`` is ``cluster/configs/mnist1d-mixed.yaml`` (14, one of
them the optimizer choice: the mixed strategy, CatCMA with margin), each with ``trial.epochs =
--epochs`` (default: 16 for digits, the config's 30 for mnist1d), one torch/BLAS thread per trial,
training seed 0 for every trial of every method (the methods of one seed search the same function;
the method's own seed varies with the run).
Every method is given ``--worker-seconds`` of training (the sum of its trials' own time from the
call of ``trials.train_and_evaluate`` to its return, or for a trial Tune stops, to its last report;
the frameworks' dispatch overheads show in the wall-clock column instead) and
samples the same box: esopt's strategy coordinates, or for the peers ``[0, 1]`` per continuous or
integer hyperparameter decoded by the config's :class:`cluster.space.Param` (``from_unit``) and each
categorical as the framework's own categorical (``tune.choice``, ``suggest_categorical``,
``ConfigSpace.Categorical``).  Methods (``--fidelity-min`` is every method's first rung, eta
``--eta`` for all):

* ``esopt-sync``: today's esopt: the config's strategy, sync generations, every trial to the full
  budget, through :class:`cluster.campaign.Campaign` on a local Ray instance of ``--workers`` CPUs
  (``budget.max_time_s = worker-seconds / workers``);
* ``esopt-async``: the same, ``scheduler: {mode: async}``;
* ``esopt-fidelity``: async + ``fidelity: {resource: epochs, min, eta}`` (ASHA, lexicographic ranks);
* ``esopt-fidelity-min2``: the same with the first rung at epoch 2 whatever ``--fidelity-min``
  (the advice of ``--study correlation``: epoch 1 ranks CMA-ES's candidates poorly, epoch 2 well);
* ``esopt-fidelity-window``: ``esopt-fidelity-min2`` with ``fidelity.window = 2 * popsize``: a
  rung's cutoff is the ``1/eta`` quantile of its last ``2 * popsize`` values, not of all of them
  (:class:`cluster.fidelity.ASHA`);
* ``tune-asha``: Ray Tune ``ASHAScheduler(grace_period=min, reduction_factor=eta, max_t=epochs)``
  with Tune's random search, 1 CPU per trial on ``--workers`` CPUs (``max_concurrent_trials`` is
  passed too, but Tune ignores it with ``BasicVariantGenerator``), ``reuse_actors=True``,
  ``time_budget_s = worker-seconds / workers``;
* ``optuna-sha``: Optuna TPE + ``SuccessiveHalvingPruner(min_resource=min, reduction_factor=eta)``
  in ``--workers`` processes sharing one study (Optuna's ``JournalStorage``; each process's own
  seeded ``TPESampler``), ``timeout = worker-seconds / workers``;
* ``dehb``: the ``dehb`` package (DE + Hyperband, fidelity = epochs, ``min_fidelity = min``),
  ``total_cost = worker-seconds`` with one worker (its parallel mode needs a dask cluster): the
  same worker-seconds, twice the wall-clock.

A trial stopped by a scheduler costs what it trained; only trials that reached ``--epochs`` count
for a method's best.  Measures per method (median over seeds, and how many seeds reached it):
the final best validation error; the worker-seconds until the best first reaches the *target*
(the median final best of ``esopt-sync``); the best at the worker-seconds every run reached; the
final best retrained with 3 fresh training seeds (10000..10002).

Each run (method x seed) is cached as JSON with a provenance sidecar under ``--out``/runs
(default ``bench/out/multifidelity-<study>``); rerunning computes only what is missing, and
``--save-results`` refuses runs from other esopt/trials/cluster code unless ``--allow-stale``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # bench/provenance.py, also when imported
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance as prov_mod  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
METHODS = (
    "esopt-sync",
    "esopt-async",
    "esopt-fidelity",
    "tune-asha",
    "optuna-sha",
    "dehb",
    "esopt-fidelity-min2",
    "esopt-fidelity-window",
)
COLORS = {
    "esopt-sync": "tab:blue",
    "esopt-async": "tab:cyan",
    "esopt-fidelity": "tab:green",
    "tune-asha": "tab:red",
    "optuna-sha": "tab:orange",
    "dehb": "tab:purple",
    "esopt-fidelity-min2": "tab:olive",
    "esopt-fidelity-window": "tab:brown",
}
RETRAIN_SEEDS = (10_000, 10_001, 10_002)
#: folders whose code decides a run's trials: a cached run from other code in them is stale
STALE_DIRS = ("esopt", "trials", "cluster")


# ============================================================================ the methods
#: study -> (campaign config under cluster/configs, default full budget in epochs; None: the config's)
STUDIES = {"digits": ("digits-highdim.yaml", 16), "mnist1d": ("mnist1d-mixed.yaml", None)}


def config_path(study: str) -> Path:
    """The campaign YAML of ``study`` (a key of :data:`STUDIES`; ``KeyError`` otherwise)."""
    return ROOT / "cluster" / "configs" / STUDIES[study][0]


def default_epochs(study: str) -> int:
    """The study's full budget in epochs when ``--epochs`` is not given."""
    import yaml

    epochs = STUDIES[study][1]
    return int(epochs if epochs is not None else yaml.safe_load(config_path(study).read_text())["trial"]["epochs"])


@functools.cache
def _raw_config(study: str) -> str:
    """The study config's YAML text, read once per process (not once per trial)."""
    return config_path(study).read_text()


def trial_spec(study: str, epochs: int) -> dict:
    """The study config's ``trial:`` mapping with ``epochs`` and one thread per trial (a new dict)."""
    import yaml

    return {**yaml.safe_load(_raw_config(study))["trial"], "epochs": epochs, "threads": 1}


def study_config(args, method: str) -> dict:
    """The study's campaign config (raw mapping) with ``--epochs``, one thread per trial,
    ``--workers`` CPUs, a wall-clock budget of ``worker-seconds / workers`` and the method's
    scheduler/fidelity (``args.study``)."""
    import yaml

    raw = yaml.safe_load(_raw_config(args.study))
    raw["trial"] = trial_spec(args.study, args.epochs)
    raw["budget"] = {"max_time_s": args.worker_seconds / args.workers}
    raw["ray"] = {"num_cpus": args.workers}
    raw["scheduler"] = {"mode": "sync" if method == "esopt-sync" else "async"}
    if method.startswith("esopt-fidelity"):
        first = args.fidelity_min if method == "esopt-fidelity" else 2
        raw["fidelity"] = {"resource": "epochs", "min": first, "eta": args.eta}
        if method == "esopt-fidelity-window":  # the cutoff against the last two generations' values
            raw["fidelity"]["window"] = 2 * int(raw["strategy"]["popsize"])
    return raw


def study_space(args):
    """The study config's :class:`cluster.space.Space`."""
    from cluster.config import load_config

    return load_config(config_path(args.study), check_objective=False).space


def peer_names(space) -> list[str]:
    """The peers' names of the space's hyperparameters, in order: ``u0``, ``u1``, ... (the names
    the committed digits runs used; kept so that their sampling order is unchanged)."""
    return [f"u{i}" for i in range(len(space.params))]


def unit_params(space, values) -> dict:
    """A peer's point -> hyperparameters: ``values`` ``(d,)`` in :func:`peer_names` order, ``[0, 1]``
    for a continuous or integer hyperparameter (clipped, then ``Param.from_unit``: log10 scales and
    integer rounding as the config says) and the choice itself for a categorical."""
    out = {}
    for p, v in zip(space.params, values, strict=True):
        out[p.name] = v if p.is_categorical else p.from_unit(min(max(float(v), 0.0), 1.0))
    return out


def train(params: dict, args, seed: int, report=None) -> dict:
    """One ``trials.train_and_evaluate`` call (``args.study``'s trial, ``args.epochs``, training seed
    ``seed``) -> ``{value, worker_s, full, params}``; ``worker_s`` in seconds (the trial's own time)."""
    import trials

    spec = {**trial_spec(args.study, args.epochs), "seed": seed}
    r = trials.train_and_evaluate(params, spec, report=report)
    ok = r.status == "ok" and r.objective is not None and math.isfinite(r.objective)
    return {
        "value": float(r.objective) if ok else None,
        "worker_s": float(r.wall_time_s or 0.0),
        "full": ok and r.stopped_at is None,
        "params": params,
    }


def run_esopt(method: str, seed: int, args, space=None) -> list[dict]:
    """One esopt campaign (:class:`cluster.campaign.Campaign`, strategy seed ``seed``); its
    finished trials in completion order."""
    from cluster.campaign import Campaign
    from cluster.config import parse_config
    from cluster.status import TrialStatus
    from cluster.store import Journal

    raw = study_config(args, method)
    raw["strategy"] = {**raw["strategy"], "seed": seed}
    cfg = parse_config(raw, base_dir=ROOT / "cluster" / "configs")
    with tempfile.TemporaryDirectory() as d:
        with Campaign(cfg, Path(d) / "run") as c:
            c.run()
        with Journal(Path(d) / "run", readonly=True) as j:
            rows = j.trials()
    out = []
    for t in sorted(rows, key=lambda t: t.finished_at or np.inf):
        if t.status not in (TrialStatus.DONE, TrialStatus.STOPPED, TrialStatus.FAILED):
            continue
        res = t.result or {}
        ok = t.objective is not None and math.isfinite(t.objective)
        out.append(
            {
                "value": float(t.objective) if ok else None,
                "worker_s": float(res.get("wall_time_s") or 0.0),
                "full": t.status is TrialStatus.DONE and ok,
                "params": t.params,
            }
        )
    return out


def run_tune_asha(seed: int, args, space) -> list[dict]:
    """Ray Tune ``ASHAScheduler`` + Tune's random search (``BasicVariantGenerator``) on ``[0, 1]^d``."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    names = peer_names(space)

    def trainable(config):
        params = unit_params(space, [config[n] for n in names])
        t0 = time.perf_counter()

        def report(epoch, value):  # train_s: the trial's own time, as the other methods count it
            tune.report({"valid_error": value, "epoch": epoch, "train_s": time.perf_counter() - t0})
            return True  # Tune ends a stopped trial itself

        train(params, args, 0, report)

    log: list[dict] = []
    # this module is not importable in Ray's workers (bench/ is not a package): send it by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False)
    try:
        with tempfile.TemporaryDirectory() as d:
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": 1}),
                param_space={
                    n: tune.choice(list(p.choices)) if p.is_categorical else tune.uniform(0.0, 1.0)
                    for n, p in zip(names, space.params)
                },
                tune_config=tune.TuneConfig(
                    metric="valid_error",
                    mode="min",
                    scheduler=ASHAScheduler(
                        time_attr="epoch", max_t=args.epochs, grace_period=args.fidelity_min, reduction_factor=args.eta
                    ),
                    num_samples=100_000,
                    max_concurrent_trials=args.workers,
                    reuse_actors=True,
                    time_budget_s=args.worker_seconds / args.workers,
                    search_alg=tune.search.BasicVariantGenerator(random_state=seed),
                ),
                run_config=tune.RunConfig(storage_path=d, verbose=0),
            )
            for r in tuner.fit():
                df = r.metrics_dataframe
                if df is None or df.empty:
                    continue
                last = df.iloc[-1]
                value = float(last["valid_error"])
                log.append(
                    {
                        "value": value if math.isfinite(value) else None,
                        "worker_s": float(last["train_s"]),
                        "full": int(last.get("epoch", 0)) >= args.epochs and math.isfinite(value),
                        "params": unit_params(space, [r.config[n] for n in names]),
                        "end": float(last.get("timestamp", 0.0)),
                    }
                )
    finally:
        ray.shutdown()
    return [{k: v for k, v in r.items() if k != "end"} for r in sorted(log, key=lambda r: r["end"])]


def _optuna_worker(job: dict) -> list[dict]:
    """One Optuna process: ``study.optimize`` on the shared journal until the timeout."""
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    A = types.SimpleNamespace(study=job["study"], epochs=job["epochs"])  # what train() and study_space() read
    space = study_space(A)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(job["journal"]))
    study = optuna.load_study(
        study_name="mf",
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=job["sampler_seed"]),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=job["min"], reduction_factor=job["eta"]),
    )
    log: list[dict] = []

    def objective(trial):
        params = unit_params(
            space,
            [
                trial.suggest_categorical(n, list(p.choices)) if p.is_categorical else trial.suggest_float(n, 0.0, 1.0)
                for n, p in zip(peer_names(space), space.params)
            ],
        )

        def report(epoch, value):
            trial.report(value, epoch)
            return not trial.should_prune()

        res = train(params, A, 0, report)
        log.append({**res, "end": time.time()})
        if not res["full"]:
            raise optuna.TrialPruned()
        return res["value"]

    study.optimize(objective, timeout=job["timeout"], catch=(Exception,))
    return log


def run_optuna_sha(seed: int, args, space) -> list[dict]:
    """Optuna TPE + ``SuccessiveHalvingPruner`` in ``--workers`` processes sharing a journal study."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import optuna

    with tempfile.TemporaryDirectory() as d:
        journal = str(Path(d) / "journal.log")
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
        optuna.create_study(study_name="mf", storage=storage, direction="minimize")
        jobs = [
            {
                "journal": journal,
                "study": args.study,
                "sampler_seed": 1000 * seed + w,
                "min": args.fidelity_min,
                "eta": int(args.eta),
                "epochs": args.epochs,
                "timeout": args.worker_seconds / args.workers,
            }
            for w in range(args.workers)
        ]
        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
            logs = list(pool.map(_optuna_worker, jobs))
    merged = sorted((r for lg in logs for r in lg), key=lambda r: r["end"])
    return [{k: v for k, v in r.items() if k != "end"} for r in merged]


def run_dehb(seed: int, args, space) -> list[dict]:
    """DEHB (``dehb`` package) on ``[0, 1]^d``, fidelity = epochs, one worker, ``total_cost =
    worker-seconds``; raises ImportError when the package is absent."""
    import ConfigSpace as CS
    from dehb import DEHB

    cs = CS.ConfigurationSpace(seed=seed)
    names = peer_names(space)
    cs.add(
        [
            CS.Categorical(n, list(p.choices)) if p.is_categorical else CS.Float(n, (0.0, 1.0))
            for n, p in zip(names, space.params)
        ]
    )
    log: list[dict] = []

    def f(config, fidelity, **kwargs):
        params = unit_params(space, [config[n] for n in names])
        epochs = max(1, round(float(fidelity)))
        res = train(params, args, 0, lambda e, v: e < epochs)
        res["full"] = res["value"] is not None and epochs >= args.epochs
        log.append(res)
        return {"fitness": 1.0 if res["value"] is None else res["value"], "cost": res["worker_s"]}

    with tempfile.TemporaryDirectory() as d:
        dehb = DEHB(
            f=f,
            cs=cs,
            min_fidelity=args.fidelity_min,
            max_fidelity=args.epochs,
            eta=args.eta,
            n_workers=1,
            seed=seed,
            output_path=d,
        )
        dehb.run(total_cost=args.worker_seconds)
    return log


RUNNERS = {
    "esopt-sync": lambda s, a, sp: run_esopt("esopt-sync", s, a),
    "esopt-async": lambda s, a, sp: run_esopt("esopt-async", s, a),
    "esopt-fidelity": lambda s, a, sp: run_esopt("esopt-fidelity", s, a),
    "tune-asha": run_tune_asha,
    "optuna-sha": run_optuna_sha,
    "dehb": run_dehb,
    "esopt-fidelity-min2": lambda s, a, sp: run_esopt("esopt-fidelity-min2", s, a),
    "esopt-fidelity-window": lambda s, a, sp: run_esopt("esopt-fidelity-window", s, a),
}


# ============================================================================ runs, cache
def run_path(out: Path, method: str, seed: int, args) -> Path:
    """Cache file of one run: the settings that decide it are in its name."""
    tag = (
        f"{args.study}-e{args.epochs}-w{args.workers}-ws{args.worker_seconds:g}-min{args.fidelity_min}-eta{args.eta:g}"
    )
    return out / "runs" / f"{method}-{tag}-s{seed}.json"


def curve(log: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """``(cumulative worker-seconds, best full-budget value so far)``, both ``(len(log),)``, over a
    run's trials in completion order (``inf`` until the first full-budget trial)."""
    ws = np.cumsum([r["worker_s"] for r in log])
    vals = np.array([r["value"] if r["full"] and r["value"] is not None else np.inf for r in log], dtype=float)
    return ws, np.minimum.accumulate(vals) if vals.size else vals


def final_best(log: list[dict]) -> dict | None:
    """The trial with the lowest full-budget value (None if no trial reached the full budget)."""
    full = [r for r in log if r["full"] and r["value"] is not None]
    return min(full, key=lambda r: r["value"]) if full else None


def run_cached(method: str, seed: int, args, space, out: Path) -> dict:
    """``{"log": [...], "retrained": [...], "wall_s": s}`` of one run, computed unless cached."""
    path = run_path(out, method, seed, args)
    if path.exists():
        return json.loads(path.read_text())
    prov = prov_mod.provenance(command=f"bench/multifidelity.py --study {args.study}: {method} seed {seed}")
    t0 = time.perf_counter()
    log = RUNNERS[method](seed, args, space)
    wall = time.perf_counter() - t0
    best = final_best(log)
    retrained = [train(best["params"], args, s)["value"] for s in RETRAIN_SEEDS] if best else []
    run = {"method": method, "seed": seed, "wall_s": wall, "log": log, "retrained": retrained}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(run))
    tmp.replace(path)
    prov_mod.write_sidecar(path, prov)
    return run


def stale_runs(paths: list[Path], prov: dict) -> list[str]:
    """Names of cached runs without provenance or from other :data:`STALE_DIRS` code than ``prov``."""
    return [p.name for p in paths if prov_mod.code_differs(prov_mod.read_sidecar(p), prov, STALE_DIRS)]


# ============================================================================ report
def summarize(runs: dict[str, list[dict]]) -> tuple[list[dict], float, float]:
    """One row per method; also the target and the worker-seconds every run reached."""
    curves = {m: [curve(r["log"]) for r in rs] for m, rs in runs.items()}  # each run's once
    finals = {m: [float(b[-1]) if b.size else np.inf for _, b in cs] for m, cs in curves.items()}
    ref = "esopt-sync" if runs.get("esopt-sync") else next(iter(runs))
    target = float(np.median(finals[ref]))
    w_eq = min((float(ws[-1]) for cs in curves.values() for ws, _ in cs if ws.size), default=0.0)
    rows = []
    for m, rs in runs.items():
        to_target, at_eq = [], []
        for ws, best in curves[m]:
            hit = np.nonzero(best <= target)[0]
            to_target.append(float(ws[hit[0]]) if hit.size else np.inf)
            k = np.searchsorted(ws, w_eq, side="right") - 1
            at_eq.append(float(best[k]) if k >= 0 else np.inf)
        retr = [float(np.mean(r["retrained"])) for r in rs if r["retrained"] and None not in r["retrained"]]
        rows.append(
            {
                "method": m,
                "seeds": len(rs),
                "final_best": finals[m],
                "worker_s_to_target": to_target,
                "best_at_equal_worker_s": at_eq,
                "retrained": retr,
                "trials": [len(r["log"]) for r in rs],
                "full_trials": [sum(t["full"] for t in r["log"]) for r in rs],
                "worker_s": [float(ws[-1]) if ws.size else 0.0 for ws, _ in curves[m]],
                "wall_s": [r["wall_s"] for r in rs],
            }
        )
    return rows, target, w_eq


def _pct(v: float) -> str:
    return f"{100 * v:.2f}" if math.isfinite(v) else "none"


def _med(a, scale=_pct) -> str:
    a = np.asarray(a, dtype=float)
    return f"{scale(float(np.median(a)))} [{scale(float(a.min()))}-{scale(float(a.max()))}]" if a.size else "n/a"


def _secs(v: float) -> str:
    return f"{v:.0f}" if math.isfinite(v) else "not reached"


def task_title(args) -> str:
    """``"<config name> (d = <hyperparameters>)"`` of the study."""
    return f"{STUDIES[args.study][0].removesuffix('.yaml')} (d = {len(study_space(args).params)})"


def table(rows: list[dict], target: float, w_eq: float, args) -> str:
    """Markdown table of :func:`summarize`'s rows (median [min-max] over seeds)."""
    ref = next((r for r in rows if r["method"] == "esopt-sync"), None)
    ref_ws = float(np.median(ref["worker_s_to_target"])) if ref else math.nan
    out = [
        f"{task_title(args)}, {args.epochs} epochs, {args.worker_seconds:g} worker-seconds per run, "
        f"{args.workers} workers, first rung {args.fidelity_min} epoch(s), eta {args.eta:g}, "
        f"{rows[0]['seeds']} seeds. Validation error %, median [min-max] over seeds. Target: the median final "
        f"best of esopt-sync, {_pct(target)}%. Best at equal worker-seconds: at {w_eq:.0f} worker-seconds, "
        "what every run reached.",
        "",
        "| method | final best | worker-s to target (seeds reaching it) | vs esopt-sync | best at equal worker-s "
        "| retrained final best (3 seeds) | trials (full budget) | wall-clock of a run (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tt = np.asarray(r["worker_s_to_target"])
        reached = int(np.isfinite(tt).sum())
        med_tt = float(np.median(tt))
        ratio = f"{med_tt / ref_ws:.2f}x" if math.isfinite(med_tt) and ref_ws > 0 else "n/a"
        out.append(
            f"| {r['method']} | {_med(r['final_best'])} | {_secs(med_tt)} ({reached}/{len(tt)}) | {ratio} | "
            f"{_med(r['best_at_equal_worker_s'])} | {_med(r['retrained'])} | "
            f"{np.median(r['trials']):.0f} ({np.median(r['full_trials']):.0f}) | {np.median(r['wall_s']):.0f} |"
        )
    return "\n".join(out)


def plot(runs: dict[str, list[dict]], target: float, path: Path, args) -> Path:
    """Best full-budget validation error against cumulative worker-seconds: median over seeds
    (line) and min-max (band) per method, the target dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = np.linspace(0.0, args.worker_seconds, 400)
    fig = Figure(figsize=(8, 4.8))
    ax = fig.add_subplot()
    for m, rs in runs.items():
        Y = []
        for r in rs:
            ws, best = curve(r["log"])
            k = np.searchsorted(ws, grid, side="right") - 1
            y = np.where(k >= 0, best[np.clip(k, 0, None)] if best.size else np.inf, np.inf)
            Y.append(np.where(np.isfinite(y), 100 * y, np.nan))
        Y = np.array(Y)
        with np.errstate(all="ignore"):
            ok = np.isfinite(Y).sum(axis=0) > len(rs) // 2  # the median exists once most seeds have a full trial
            med = np.where(ok, np.nanmedian(np.where(np.isfinite(Y), Y, 1e9), axis=0), np.nan)
        ax.plot(grid, med, color=COLORS.get(m), lw=2, label=f"{m} (median of {len(rs)})")
        lo, hi = np.fmin.reduce(Y, axis=0), np.fmax.reduce(Y, axis=0)  # NaN (no band) before any full trial
        ax.fill_between(grid, lo, hi, color=COLORS.get(m), alpha=0.12, lw=0)
    ax.axhline(100 * target, color="k", ls="--", lw=1, label=f"target {100 * target:.2f}%")
    ax.set_yscale("log")
    ax.set_xlabel("cumulative worker-seconds (training time of all trials)")
    ax.set_ylabel("best validation error of full-budget trials (%)")
    ax.set_title(f"{task_title(args)}, {args.epochs} epochs, {args.workers} workers")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path


def write_trials_csv(runs: dict[str, list[dict]], path: Path) -> Path:
    """Every trial of every run: method, seed, order, worker_s, cumulative worker_s, value, full, params."""
    import csv

    names = sorted({k for rs in runs.values() for r in rs for t in r["log"] for k in t["params"]})
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "seed", "order", "worker_s", "cum_worker_s", "value", "full", *names])
        for m, rs in runs.items():
            for r in rs:
                cum = 0.0
                for i, t in enumerate(r["log"]):
                    cum += t["worker_s"]
                    w.writerow(
                        [m, r["seed"], i, f"{t['worker_s']:.4g}", f"{cum:.6g}", t["value"], int(t["full"])]
                        + [t["params"].get(n, "") for n in names]
                    )
    return path


def task_study(args) -> int:
    """Run (or read) every method x seed of ``args.study``, print the table; with
    ``--save-results`` write ``bench/results/multifidelity-<study>.{md,json,csv,png}`` with
    provenance sidecars."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    prov = prov_mod.provenance()
    space = study_space(args)
    out = Path(args.out) if args.out else ROOT / "bench" / "out" / f"multifidelity-{args.study}"
    methods = [m for m in args.methods if m in RUNNERS]
    unknown = sorted(set(args.methods) - set(RUNNERS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {list(RUNNERS)}")
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for s in range(args.seeds):  # seed-major: an interrupted study has whole seeds
        for m in methods:
            if args.report_only and not run_path(out, m, s, args).exists():
                continue
            t0 = time.perf_counter()
            r = run_cached(m, s, args, space, out)
            runs[m].append(r)
            fb = final_best(r["log"])
            print(
                f"{m} seed {s}: {len(r['log'])} trials, best {_pct(fb['value']) if fb else 'none'}% "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    runs = {m: rs for m, rs in runs.items() if rs}
    rows, target, w_eq = summarize(runs)
    text = table(rows, target, w_eq, args)
    print(text)
    paths = [run_path(out, m, r["seed"], args) for m, rs in runs.items() for r in rs]
    stale = stale_runs(paths, prov)
    if stale:
        print(f"WARNING: {len(stale)} runs came from other esopt/trials/cluster code: {stale[:6]}")
    if args.save_results:
        if stale and not args.allow_stale:
            print("not saving results from stale runs: delete them, or pass --allow-stale")
            return 2
        RESULTS.mkdir(parents=True, exist_ok=True)
        stem = RESULTS / f"multifidelity-{args.study}"
        files = [
            write_trials_csv(runs, stem.with_suffix(".csv")),
            plot(runs, target, stem.with_suffix(".png"), args),
        ]
        js = stem.with_suffix(".json")
        js.write_text(json.dumps({"target": target, "equal_worker_s": w_eq, "rows": rows}, indent=1))
        md = stem.with_suffix(".md")
        md.write_text(
            f"# Multi-fidelity: worker-seconds to quality\n\n`{args.command}`\n\n{text}\n\n{prov_mod.markdown(prov)}\n"
        )
        runs_prov = {p.name: prov_mod.read_sidecar(p) for p in paths}
        for f in [*files, js, md]:
            prov_mod.write_sidecar(f, prov, runs={k: v and v["git"] for k, v in runs_prov.items()}, stale=stale)
    return 0
