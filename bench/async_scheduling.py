"""Asynchronous vs synchronous campaigns (issue 13's benchmark): utilization, wall time, scaling of
the driver to 4,096 workers, convergence with stale samples, and tuning quality.

Usage (from the repository root; results and the exact commands in bench/results/async_scheduling.md)::

    nice -n 10 python bench/async_scheduling.py --parts ray sim profile --save-results
    nice -n 10 python bench/async_scheduling.py --parts quality --quality-seeds 5 --quality-trials 96 --save-results
    python bench/async_scheduling.py --parts ray sim --ray-trials 32 --sim-workers 8 64 \
        --ellipsoid-seeds 1 --ellipsoid-popsizes 10                    # smoke test, ~2 min

Parts
-----
``ray``: real Ray, a local instance of 2 CPUs (``ray.init(address="local", num_cpus=2)``),
``resources.num_cpus: 0.25`` so that 8 trials run at once, CMA-ES popsize 8, ``--ray-trials``
trials per campaign, ``scheduler.mode`` sync vs async, on two objectives of
``bench/async_objectives.py``: the heavy-tailed sleep (log-normal, median 0.35 s, 4
hyperparameters) and the replay of the recorded ``digits-highdim`` trials (19 hyperparameters;
the nearest recorded trial's wall time is slept, scaled by ``--replay-scale``).  First a warm-up
campaign on each objective starts Ray's 8 workers (about 1.5 s each on 2 cores) and loads the
replay table in them.  From each journal: utilization = sum of trial times (``finished_at -
started_at``) / (8 slots x wall), wall = last end - first start, and the same up to the last
trial's start ("steady": without the drain at the end of the budget); beside it the simulated
cluster's figures for the same campaign (:func:`cluster.simulate.simulate`, 8 workers, the
same durations: the scheduler's share without Ray's overhead).

``sim``: the simulated cluster (production driver, virtual clock), the heavy-tailed objective
(``duration_s`` only, 10 hyperparameters), P = ``--sim-workers`` with the default popsize (10)
and with popsize = P, sync and async; budget ``--sim-trials-per-worker`` (a dict P -> trials per
worker, default 100/40/16/10 for 8/64/512/4096): utilization (whole run and steady), virtual wall
time and the driver's CPU time per trial (process time without the objective's).  Then the
rotated ellipsoid (n = 10, condition 1e6; box [-4, 6]^10, start at its centre 1, sigma0 0.2 of
the range, optimum 0) with log-normal evaluation times (median 1 s), P = popsize for each
``--ellipsoid-popsizes``, ``--ellipsoid-seeds`` seeds, ``ftarget: 1e-8``: virtual time to the
target and evaluations finished by then, median over seeds, and the share of told rows that were
injected (sampled from an older distribution than the one they were told to).

``profile``: the top functions of a cProfile of the driver at P = 4,096 (async, default popsize,
``--profile-trials-per-worker`` trials per worker, the process CPU clock as the profiler's timer).

``quality``: ``cluster/configs/digits-highdim.yaml`` as shipped (2 slots: ``num_cpus: 1`` per
trial on the same 2-CPU Ray instance), ``--quality-trials`` trials, seeds ``r = 0..S-1``
(``strategy.seed = trial.seed = r``: both modes of seed r tune the same function), the two
modes one after the other (sync first for even r, async first for odd r, since the load of a
shared machine drifts), after a warm-up campaign: best validation error, journal wall time,
sum of trial times and utilization; medians over seeds.  ``quality-sim``: the same comparison on
the simulated cluster (2 workers), replaying the recorded trials of
``bench/results/hpo_quality-digits-highdim.csv`` (nearest recorded trial's objective and wall
time), ``--quality-sim-seeds`` seeds.

Threads: BLAS/OpenMP pinned to 1 in this process; Ray trials pin theirs to their CPU allotment.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(HERE), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import async_objectives as ao  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MD = RESULTS / "async_scheduling.md"
SLOTS = 8  # part 1: 2 CPUs / 0.25 CPU per trial
DEFAULT_TPW = {8: 100, 64: 40, 512: 16, 4096: 10}
RAY_LEGEND = (
    "Utilization: sum of journaled trial times / (8 slots x wall), wall = first start to last end; steady: the same "
    "up to the last trial's start; sim: the simulated cluster on the same config and durations (deterministic, no "
    "Ray); injected: told trials sampled from an older distribution than the one they were told to; worker gap: "
    "median idle time of a worker between two of its trials; median of `repeats` campaigns per row."
)
PART_TITLES = {
    "ray": "Part 1: real Ray, 8 slots on 2 cores",
    "sim": "Part 2: simulated cluster",
    "profile": "Part 2c: driver hot spots at 4,096 workers",
    "quality": "Part 3: tuning quality, digits-highdim",
    "quality-sim": "Part 3b: tuning quality on the simulated cluster (recorded digits-highdim trials replayed)",
}


# ----------------------------------------------------------------------------------- journals
def journal_stats(directory: Path, slots: int) -> dict:
    """Utilization figures of the campaign journaled in ``directory`` run on ``slots`` slots.

    Returns ``{"gap_ms", "n", "wall_s", "busy_s", "utilization", "steady_utilization", "injected"}``:
    ``gap_ms`` = median idle time of a worker between two consecutive trials (milliseconds),
    ``wall_s`` = last ``finished_at`` - first ``started_at`` (seconds, the journal's clock),
    ``busy_s`` = sum of ``finished_at - started_at``, ``utilization`` = busy / (slots x wall),
    ``steady_utilization`` the same over [first start, last start], ``injected`` the share of told
    trials whose ``generation < told_generation`` (sampled from an older distribution).
    Raises ValueError if no trial has both times.
    """
    from cluster import Journal

    with Journal(directory, readonly=True) as j:
        rows = [t for t in j.trials() if t.started_at is not None and t.finished_at is not None]
    if not rows:
        raise ValueError(f"{directory}: no trial with started_at and finished_at")
    spans = [(float(t.started_at), float(t.finished_at)) for t in rows]
    t0, t1 = min(s for s, _ in spans), max(e for _, e in spans)
    t_last = max(s for s, _ in spans)
    busy = sum(e - s for s, e in spans)
    steady_busy = sum(max(0.0, min(e, t_last) - s) for s, e in spans)
    told = [t for t in rows if t.told_generation is not None]
    by_worker: dict[str, list] = {}
    for t in rows:
        by_worker.setdefault(str(t.worker_id), []).append((float(t.started_at), float(t.finished_at)))
    gaps = []
    for spans_w in by_worker.values():
        spans_w.sort()
        gaps += [b[0] - a[1] for a, b in zip(spans_w, spans_w[1:])]
    return {
        "gap_ms": 1e3 * statistics.median(gaps) if gaps else None,
        "n": len(rows),
        "wall_s": t1 - t0,
        "busy_s": busy,
        "utilization": busy / (slots * (t1 - t0)) if t1 > t0 else 0.0,
        "steady_utilization": steady_busy / (slots * (t_last - t0)) if t_last > t0 else 0.0,
        "injected": sum(t.generation < t.told_generation for t in told) / len(told) if told else 0.0,
    }


def run_campaign(cfg: dict, directory: Path):
    """Run the campaign of config dict ``cfg`` in ``directory`` (on the Ray instance of this
    process); returns ``(CampaignResult, seconds of run())``."""
    from cluster import Campaign, parse_config

    t0 = time.perf_counter()
    with Campaign(parse_config(cfg), directory) as c:
        result = c.run()
    return result, time.perf_counter() - t0


# ----------------------------------------------------------------------------------- part 1
def _box(n: int, lower: float = -1.0, upper: float = 1.0) -> dict:
    return {f"x{i}": {"lower": lower, "upper": upper} for i in range(n)}


def ray_configs(trials: int, seed: int) -> dict[str, dict]:
    """The two part-1 campaigns (without ``scheduler``): ``{"sleep": cfg, "replay": cfg}``."""
    import yaml

    highdim = yaml.safe_load(ao.REPLAY_CONFIG.read_text())
    common = {"budget": {"max_trials": trials}, "resources": {"num_cpus": 0.25}}
    return {
        "sleep": {
            "name": "async-bench-sleep",
            "objective": "async_objectives:heavy_tailed_sleep",
            "space": _box(4),
            "strategy": {"name": "cmaes", "popsize": 8, "seed": seed, "sigma0": 0.3},
            **common,
        },
        "replay": {
            "name": "async-bench-replay",
            "objective": "async_objectives:digits_replay",
            "space": highdim["space"],
            "strategy": {"name": "cmaes", "popsize": 8, "seed": seed, "sigma0": 0.2},
            **common,
        },
    }


def part_ray(args, work: Path) -> list[dict]:
    """Part 1 (see the module docstring); rows of the table."""
    from cluster.simulate import simulate

    cfgs = ray_configs(args.ray_trials, args.seed)
    print(f"warm-up: {warm_workers(SLOTS)} Ray workers", flush=True)
    for name, cfg in cfgs.items():  # warm-up: start the 8 workers, load the replay table in each
        warm = {**cfg, "name": cfg["name"] + "-warm", "budget": {"max_trials": 2 * SLOTS}}
        run_campaign(warm, work / f"warm-{name}")
    rows = []
    for rep in range(args.repeats):
        for name, cfg in cfgs.items():
            for mode in ("sync", "async"):
                c = {**cfg, "scheduler": {"mode": mode}}
                d = work / f"ray-{name}-{mode}-{rep}"
                res, run_s = run_campaign(c, d)
                st = journal_stats(d, SLOTS)
                sim_d = work / f"sim-{name}-{mode}-{rep}"
                sim_cfg = c if name == "replay" else {**c, "objective": "async_objectives:heavy_tailed_timed"}
                sim = simulate(
                    _parse(sim_cfg), sim_d, workers=SLOTS, durations=ao.REPLAY_CSV if name == "replay" else None
                )
                rows.append(
                    {
                        "objective": name,
                        "mode": mode,
                        "repeat": rep,
                        "trials": st["n"],
                        "status": res.status,
                        "best": res.best_objective,
                        "wall_s": st["wall_s"],
                        "run_s": run_s,
                        "busy_s": st["busy_s"],
                        "utilization": st["utilization"],
                        "steady_utilization": st["steady_utilization"],
                        "injected": st["injected"],
                        "gap_ms": st["gap_ms"],
                        "soft_limit": args.current_soft_limit,
                        "sim_utilization": sim.utilization,
                        "sim_steady_utilization": sim.steady_utilization,
                    }
                )
                print(_fmt_row(rows[-1]), flush=True)
    return rows


def _parse(cfg: dict):
    from cluster import parse_config

    return parse_config(cfg)


def start_ray(replay_scale: float, soft_limit: int) -> None:
    """Start the private local Ray instance of parts 1 and 3 (2 CPUs, no dashboard); workers
    inherit ``PYTHONPATH`` (bench/ and the repository) and the replay scale.

    ``soft_limit`` > 0 sets Ray's ``num_workers_soft_limit`` (``_system_config``): by default it is
    the CPU count (2), and Ray kills idle workers beyond it after
    ``idle_worker_killing_time_threshold_ms`` (1 s), so with 0.25 CPU per trial 6 of the 8 workers
    die whenever they wait a second (a generation barrier, the gap between two campaigns) and are
    started again (about 1-1.5 s each on 2 cores).  0 keeps Ray's default."""
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    os.environ[ao.REPLAY_SCALE_ENV] = repr(replay_scale)
    system = {"num_workers_soft_limit": soft_limit} if soft_limit > 0 else {}
    ray.init(
        address="local",
        num_cpus=2,
        num_gpus=0,
        include_dashboard=False,
        logging_level=logging.WARNING,
        _system_config=system,
    )


def warm_workers(slots: int, rounds: int = 20) -> int:
    """Run rounds of ``slots`` concurrent tasks of ``1/4`` CPU (each imports the driver's trial
    code and loads the replay table) until ``slots`` distinct worker processes answered or
    ``rounds`` passed (Ray starts workers one or two at a time, only while tasks queue); returns
    the number of distinct workers seen."""
    import ray

    @ray.remote(num_cpus=0.25)
    def _warm() -> int:
        import async_objectives

        import cluster.executor  # noqa: F401  (the trial wrapper's imports)

        async_objectives._replay_table()
        time.sleep(0.3)
        return os.getpid()

    seen: set[int] = set()
    for _ in range(rounds):
        pids = set(ray.get([_warm.remote() for _ in range(slots)]))
        seen |= pids
        if len(pids) >= slots:
            break
    return len(seen)


# ----------------------------------------------------------------------------------- part 2
def sim_config(n: int, trials: int, popsize: int | None, mode: str, seed: int) -> dict:
    """The part-2 utilization campaign: heavy-tailed durations, ``n`` hyperparameters."""
    strategy = {"name": "cmaes", "seed": seed, "sigma0": 0.3}
    if popsize is not None:
        strategy["popsize"] = popsize
    return {
        "name": "async-bench-sim",
        "objective": "async_objectives:heavy_tailed_timed",
        "space": _box(n),
        "strategy": strategy,
        "budget": {"max_trials": trials},
        "scheduler": {"mode": mode},
    }


def part_sim_utilization(args, work: Path) -> list[dict]:
    """Part 2a: utilization and driver CPU per trial against P."""
    from cluster.simulate import simulate

    rows = []
    tpw = {**DEFAULT_TPW, **dict(args.sim_trials_per_worker)}
    for P in args.sim_workers:
        per = tpw.get(P, 10)
        for popsize in (None, P):
            if popsize is not None and popsize < 2:
                continue
            for mode in ("sync", "async"):
                d = work / f"simu-{P}-{popsize}-{mode}"
                t0 = time.perf_counter()
                r = simulate(_parse(sim_config(10, P * per, popsize, mode, args.seed)), d, workers=P)
                rows.append(
                    {
                        "workers": P,
                        "popsize": popsize or "default (10)",
                        "mode": mode,
                        "trials": r.n_trials,
                        "utilization": r.utilization,
                        "steady_utilization": r.steady_utilization,
                        "virtual_time_s": r.virtual_time_s,
                        "driver_ms_per_trial": 1e3 * r.driver_cpu_per_trial_s,
                        "real_s": time.perf_counter() - t0,
                    }
                )
                print(_fmt_row(rows[-1]), flush=True)
    return rows


def ellipsoid_config(popsize: int, mode: str, seed: int, max_trials: int) -> dict:
    """The part-2 convergence campaign: rotated ellipsoid n = 10 on [-4, 6]^10, to f < 1e-8."""
    return {
        "name": "async-bench-ellipsoid",
        "objective": "async_objectives:timed_rotated_ellipsoid",
        "space": _box(ao.ELLIPSOID_DIM, -4.0, 6.0),
        "strategy": {"name": "cmaes", "popsize": popsize, "seed": seed, "sigma0": 0.2},
        "budget": {"max_trials": max_trials, "ftarget": 1e-8},
        "scheduler": {"mode": mode},
    }


def target_hit(directory: Path, target: float) -> tuple[float | None, int | None]:
    """``(virtual time, evaluations finished by then)`` when the best objective first fell below
    ``target`` (None, None if never)."""
    from cluster import Journal

    with Journal(directory, readonly=True) as j:
        rows = [t for t in j.trials() if t.finished_at is not None]
    rows.sort(key=lambda t: (t.finished_at, t.finish_seq or 0, t.id))
    for k, t in enumerate(rows, 1):
        if t.objective is not None and t.objective < target:
            return float(t.finished_at), k
    return None, None


def part_sim_ellipsoid(args, work: Path) -> list[dict]:
    """Part 2b: virtual time and evaluations to f < 1e-8, async vs sync, P = popsize."""
    from cluster.simulate import simulate

    rows = []
    for popsize in args.ellipsoid_popsizes:
        for seed in range(args.ellipsoid_seeds):
            for mode in ("sync", "async"):
                d = work / f"ell-{popsize}-{seed}-{mode}"
                r = simulate(
                    _parse(ellipsoid_config(popsize, mode, seed, args.ellipsoid_max_trials)), d, workers=popsize
                )
                t_hit, evals = target_hit(d, 1e-8)
                st = journal_stats(d, popsize)
                rows.append(
                    {
                        "popsize": popsize,
                        "seed": seed,
                        "mode": mode,
                        "time_to_target_s": t_hit,
                        "evals_to_target": evals,
                        "utilization": r.utilization,
                        "injected": st["injected"],
                        "driver_ms_per_trial": 1e3 * r.driver_cpu_per_trial_s,
                    }
                )
                print(_fmt_row(rows[-1]), flush=True)
    return rows


def profile_driver(workers: int, per_worker: int, work: Path, top: int = 15) -> tuple[list, list, int]:
    """cProfile, with the process CPU clock as its timer (a wall-clock profile on a loaded
    machine blames whatever call was running when the process was descheduled), of one async
    simulation (default popsize).  Returns ``(by own time, by cumulative time, trials)``: lists
    of ``(function, calls, own s, cumulative s)``, the ``top`` functions each; the second only
    functions of esopt/ and cluster/."""
    import cProfile
    import pstats

    from cluster.simulate import simulate

    cfg = _parse(sim_config(10, workers * per_worker, None, "async", 0))
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    res = simulate(cfg, work / "profile", workers=workers)
    prof.disable()
    st = pstats.Stats(prof)
    out = []
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in st.stats.items():
        out.append((f"{Path(file).parent.name}/{Path(file).name}:{line}({fn})", nc, tt, ct))
    own = sorted(out, key=lambda r: -r[2])[:top]
    ours = [r for r in out if r[0].split("/", 1)[0] in ("esopt", "cluster")]
    cum = sorted(ours, key=lambda r: -r[3])[:top]
    return own, cum, res.n_trials


# ----------------------------------------------------------------------------------- part 3
def part_quality(args, work: Path) -> list[dict]:
    """Part 3: digits-highdim, sync vs async, ``--quality-seeds`` seeds."""
    import yaml

    base = yaml.safe_load((ROOT / "cluster" / "configs" / "digits-highdim.yaml").read_text())
    # warm-up: both workers import torch and load digits before the first timed campaign
    warm = {**base, "name": "async-bench-quality-warm", "budget": {"max_trials": 4}}
    warm["trial"] = {**base["trial"], "epochs": 1}
    run_campaign(warm, work / "quality-warm")
    rows = []
    for r in range(args.quality_seeds):
        # alternate which mode runs first: on a shared machine the load drifts within a pair
        for mode in ("sync", "async") if r % 2 == 0 else ("async", "sync"):
            cfg = dict(base)
            cfg["strategy"] = {**base["strategy"], "seed": r}
            cfg["trial"] = {**base["trial"], "seed": r}
            cfg["budget"] = {"max_trials": args.quality_trials}
            cfg["scheduler"] = {"mode": mode}
            cfg["ray"] = {"address": None}
            d = work / f"quality-{r}-{mode}"
            res, run_s = run_campaign(cfg, d)
            st = journal_stats(d, 2)
            rows.append(
                {
                    "seed": r,
                    "mode": mode,
                    "trials": st["n"],
                    "status": res.status,
                    "best_valid_error": res.best_objective,
                    "wall_s": st["wall_s"],
                    "run_s": run_s,
                    "busy_s": st["busy_s"],
                    "utilization": st["utilization"],
                    "injected": st["injected"],
                }
            )
            print(_fmt_row(rows[-1]), flush=True)
            with open(work / "quality-rows.jsonl", "a") as fh:  # kept with --out: --quality-rows renders it
                fh.write(json.dumps(rows[-1]) + "\n")
    return rows


def part_quality_sim(args, work: Path) -> list[dict]:
    """Part 3 on the simulated cluster: the digits-highdim space and strategy, the recorded
    trials replayed (:class:`cluster.simulate.DurationTable`: nearest recorded trial's objective
    and wall time), 2 workers, ``--quality-trials`` trials, ``--quality-sim-seeds`` seeds
    (``strategy.seed = r``), sync and async."""
    import yaml

    from cluster.simulate import simulate

    base = yaml.safe_load(ao.REPLAY_CONFIG.read_text())
    rows = []
    for r in range(args.quality_sim_seeds):
        for mode in ("sync", "async"):
            cfg = {
                "name": "async-bench-quality-sim",
                "objective": "async_objectives:digits_replay",
                "space": base["space"],
                "strategy": {**base["strategy"], "seed": r},
                "budget": {"max_trials": args.quality_trials},
                "scheduler": {"mode": mode},
            }
            d = work / f"quality-sim-{r}-{mode}"
            res = simulate(_parse(cfg), d, workers=2, durations=ao.REPLAY_CSV)
            rows.append({"seed": r, "mode": mode, "best": res.campaign.best_objective, "virtual_s": res.virtual_time_s})
    return rows


def quality_sim_table(rows: list[dict]) -> str:
    """Part 3 simulated: medians and the paired count of async worse / better / equal."""
    by = {(r["seed"], r["mode"]): r["best"] for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    pairs = [(by[(s, "sync")], by[(s, "async")]) for s in seeds]
    worse = sum(a > b for b, a in pairs)
    better = sum(a < b for b, a in pairs)
    out = []
    for mode in ("sync", "async"):
        vals = [r["best"] for r in rows if r["mode"] == mode]
        vt = [r["virtual_s"] for r in rows if r["mode"] == mode]
        out.append([mode, str(len(vals)), f"{100 * _median(vals):.2f}%", f"{_median(vt):.0f}"])
    note = f"\n\nPaired by seed: async worse on {worse}, better on {better}, equal on {len(pairs) - worse - better}."
    return table(["mode", "seeds", "best objective, median", "virtual wall s, median"], out) + note


# ----------------------------------------------------------------------------------- tables
def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def _fmt_row(row: dict) -> str:
    return "  ".join(f"{k}={_fmt(v)}" for k, v in row.items())


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _median(values) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return "\n".join(lines)


def ray_table(rows: list[dict]) -> str:
    """Part 1's table: one line per (objective, mode), medians over repeats."""
    out = []
    keys = dict.fromkeys((r["soft_limit"], r["objective"]) for r in rows)
    for limit, name in keys:
        for mode in ("sync", "async"):
            rs = [r for r in rows if r["objective"] == name and r["mode"] == mode and r["soft_limit"] == limit]
            out.append(
                [
                    str(limit or "Ray default (2)"),
                    name,
                    mode,
                    str(rs[0]["trials"]),
                    f"{_median(r['wall_s'] for r in rs):.1f}",
                    f"{_median(r['run_s'] for r in rs):.1f}",
                    _pct(_median(r["utilization"] for r in rs)),
                    _pct(_median(r["steady_utilization"] for r in rs)),
                    _pct(_median(r["sim_utilization"] for r in rs)),
                    _pct(_median(r["sim_steady_utilization"] for r in rs)),
                    _pct(_median(r["injected"] for r in rs)),
                    _fmt(_median(r["gap_ms"] for r in rs)),
                    str(len(rs)),
                ]
            )
    header = ["worker soft limit", "objective", "mode", "trials", "wall (s)", "run() (s)", "utilization", "steady"]
    return table(header + ["sim util.", "sim steady", "injected", "worker gap ms", "repeats"], out)


def sim_table(rows: list[dict]) -> str:
    """Part 2a's table."""
    out = [
        [
            str(r["workers"]),
            str(r["popsize"]),
            r["mode"],
            str(r["trials"]),
            _pct(r["utilization"]),
            _pct(r["steady_utilization"]),
            f"{r['virtual_time_s']:.1f}",
            f"{r['driver_ms_per_trial']:.3f}",
            f"{r['real_s']:.1f}",
        ]
        for r in rows
    ]
    header = ["P", "popsize", "mode", "trials", "utilization", "steady", "virtual time (s)", "driver ms/trial"]
    return table(header + ["real s"], out)


def ellipsoid_table(rows: list[dict]) -> str:
    """Part 2b's table: medians over seeds, async/sync ratios."""
    out = []
    for popsize in dict.fromkeys(r["popsize"] for r in rows):
        med = {}
        for mode in ("sync", "async"):
            rs = [r for r in rows if r["popsize"] == popsize and r["mode"] == mode]
            hit = sum(r["time_to_target_s"] is not None for r in rs)
            med[mode] = (
                _median(r["time_to_target_s"] for r in rs),
                _median(r["evals_to_target"] for r in rs),
                _median(r["utilization"] for r in rs),
                _median(r["injected"] for r in rs),
                f"{hit}/{len(rs)}",
            )
        for mode in ("sync", "async"):
            t, e, u, inj, hit = med[mode]
            ratio_t = t / med["sync"][0] if t and med["sync"][0] else None
            ratio_e = e / med["sync"][1] if e and med["sync"][1] else None
            out.append(
                [
                    f"{popsize} = P",
                    mode,
                    hit,
                    _fmt(t),
                    _fmt(ratio_t),
                    _fmt(e),
                    _fmt(ratio_e),
                    _pct(u),
                    _pct(inj),
                ]
            )
    header = ["popsize", "mode", "reached", "virtual time to 1e-8 (s)", "vs sync", "evaluations", "vs sync"]
    return table(header + ["utilization", "injected"], out)


def quality_table(rows: list[dict]) -> str:
    """Part 3's table: per mode, median (min-max) over seeds."""
    out = []
    for mode in ("sync", "async"):
        rs = [r for r in rows if r["mode"] == mode]
        errs = [r["best_valid_error"] for r in rs if r["best_valid_error"] is not None]
        walls = [r["wall_s"] for r in rs]
        out.append(
            [
                mode,
                str(len(rs)),
                str(rs[0]["trials"]) if rs else "-",
                f"{100 * _median(errs):.2f}% ({100 * min(errs):.2f}-{100 * max(errs):.2f})",
                f"{_median(walls):.0f} ({min(walls):.0f}-{max(walls):.0f})",
                _pct(_median(r["utilization"] for r in rs)),
                _pct(_median(r["injected"] for r in rs)),
            ]
        )
    header = ["mode", "seeds", "trials", "best valid. error, median (min-max)", "wall s, median (min-max)"]
    return table(header + ["utilization", "injected"], out)


def per_seed_table(rows: list[dict]) -> str:
    """Part 3's per-seed lines (paired comparison)."""
    seeds = sorted({r["seed"] for r in rows})
    out = []
    for s in seeds:
        by = {r["mode"]: r for r in rows if r["seed"] == s}
        if set(by) == {"sync", "async"}:
            out.append(
                [
                    str(s),
                    f"{100 * by['sync']['best_valid_error']:.2f}%",
                    f"{100 * by['async']['best_valid_error']:.2f}%",
                    f"{by['sync']['wall_s']:.0f}",
                    f"{by['async']['wall_s']:.0f}",
                    _fmt(by["sync"].get("busy_s")),
                    _fmt(by["async"].get("busy_s")),
                ]
            )
    header = ["seed", "sync error", "async error", "sync wall s", "async wall s"]
    return table(header + ["sync busy s", "async busy s"], out)


# ----------------------------------------------------------------------------------- output
def write_csv(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` (dicts with the same keys) as CSV."""
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def update_markdown(part: str, body: str, path: Path = MD) -> None:
    """Replace (or add) the section ``## <PART_TITLES[part]>`` of ``path`` with ``body``, keeping
    the other parts' sections (they may come from other runs: each carries its provenance)."""
    title = f"## {PART_TITLES[part]}"
    text = (
        path.read_text() if path.exists() else "# Asynchronous vs synchronous campaigns (bench/async_scheduling.py)\n"
    )
    sections: dict[str, str] = {}
    head, *rest = text.split("\n## ")
    for chunk in rest:
        name = "## " + chunk.split("\n", 1)[0]
        sections[name] = "## " + chunk.rstrip() + "\n"
    sections[title] = f"{title}\n\n{body.rstrip()}\n"
    order = [f"## {t}" for t in PART_TITLES.values()]
    keys = [k for k in order if k in sections] + [k for k in sections if k not in order]
    path.write_text(head.rstrip() + "\n\n" + "\n".join(sections[k] for k in keys))


def provenance_lines(command: str) -> str:
    """Markdown lines: commit (+dirty), packages, BLAS kernel, CPU (bench/provenance.py)."""
    from provenance import markdown, provenance

    return markdown(provenance(command=command))


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--parts", nargs="+", choices=list(PART_TITLES), default=["ray", "sim"])
    p.add_argument("--seed", type=int, default=0, help="strategy seed of parts 1 and 2a")
    p.add_argument("--ray-trials", type=int, default=96)
    p.add_argument("--repeats", type=int, default=1, help="part 1: campaigns per (objective, mode)")
    p.add_argument("--replay-scale", type=float, default=ao.REPLAY_SCALE, help="recorded wall times x this")
    p.add_argument(
        "--ray-soft-limit",
        type=int,
        nargs="+",
        default=[SLOTS],
        help="Ray's num_workers_soft_limit, one Ray instance per value; 0: Ray's default (the CPU count)",
    )
    p.add_argument("--sim-workers", type=int, nargs="+", default=[8, 64, 512, 4096])
    p.add_argument(
        "--sim-trials-per-worker",
        type=lambda s: tuple(int(v) for v in s.split("=")),
        nargs="*",
        default=[],
        metavar="P=K",
        help="budget of part 2a: K trials per worker at P workers (default 8=100 64=40 512=16 4096=10)",
    )
    p.add_argument("--ellipsoid-popsizes", type=int, nargs="*", default=[10, 40])
    p.add_argument("--ellipsoid-seeds", type=int, default=5)
    p.add_argument("--ellipsoid-max-trials", type=int, default=40_000)
    p.add_argument("--profile-trials-per-worker", type=int, default=4)
    p.add_argument("--quality-seeds", type=int, default=5)
    p.add_argument("--quality-trials", type=int, default=96)
    p.add_argument("--quality-sim-seeds", type=int, default=20)
    p.add_argument("--quality-rows", type=Path, default=None, help="part 3: render this quality-rows.jsonl only")
    p.add_argument("--out", type=Path, default=None, help="campaign directories (default: a temporary one)")
    p.add_argument("--save-results", action="store_true", help="write bench/results/async_scheduling.{md,csv}")
    args = p.parse_args(argv)
    if args.ray_trials < 8 or args.quality_trials < 2 or args.ellipsoid_seeds < 1:
        p.error("--ray-trials >= 8, --quality-trials >= 2 and --ellipsoid-seeds >= 1 are needed")
    return args


def _emit(part: str, body: str, rows: dict[str, list[dict]], args, command: str) -> None:
    print(f"\n## {PART_TITLES[part]}\n\n{body}\n", flush=True)
    if args.save_results:
        for suffix, rs in rows.items():
            write_csv(RESULTS / f"async_scheduling-{suffix}.csv", rs)
        update_markdown(part, f"Command: `{command}`  \n{provenance_lines(command)}\n\n{body}")


def main(argv=None) -> int:
    """Run the selected parts; print (and with ``--save-results`` write) their tables."""
    args = parse_args(argv)
    command = "python bench/async_scheduling.py " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="esopt-async-bench-") as tmp:
        work = Path(args.out) if args.out else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if "sim" in args.parts:
            util = part_sim_utilization(args, work)
            ell = part_sim_ellipsoid(args, work) if args.ellipsoid_popsizes else []
            body = "### Utilization and driver CPU against P (heavy-tailed durations)\n\n" + sim_table(util)
            if ell:
                body += "\n\n### Rotated ellipsoid n = 10 to f < 1e-8, P = popsize (medians over seeds)\n\n"
                body += ellipsoid_table(ell)
            _emit("sim", body, {"sim": util, "ellipsoid": ell}, args, command)
        if "profile" in args.parts:
            own, cum, n = profile_driver(4096, args.profile_trials_per_worker, work)
            head = ["function", "calls", "own CPU s", "cumulative CPU s"]
            body = f"cProfile with the process CPU clock as timer, P = 4096, async, default popsize, {n} trials.\n\n"
            body += "By own time:\n\n" + table(head, [list(r) for r in own])
            body += "\n\nBy cumulative time (esopt/, cluster/; includes the simulated objective and the final "
            body += "journal reads of `simulate`):\n\n" + table(head, [list(r) for r in cum])
            _emit("profile", body, {}, args, command)
        if "quality-sim" in args.parts:
            rows = part_quality_sim(args, work)
            _emit("quality-sim", quality_sim_table(rows), {"quality-sim": rows}, args, command)
        if "ray" in args.parts or "quality" in args.parts:
            import ray  # noqa: F401

            if "ray" in args.parts:
                rows = []
                for limit in args.ray_soft_limit:
                    args.current_soft_limit = limit
                    start_ray(args.replay_scale, limit)
                    try:
                        rows += part_ray(args, work / f"limit-{limit}")
                    finally:
                        ray.shutdown()
                note = f"Replay: recorded wall times x {args.replay_scale:g}. " + RAY_LEGEND
                _emit("ray", ray_table(rows) + "\n\n" + note, {"ray": rows}, args, command)
            if "quality" in args.parts:
                if args.quality_rows is not None:  # render rows journaled by an earlier (cut) run
                    rows = [json.loads(ln) for ln in args.quality_rows.read_text().splitlines() if ln.strip()]
                else:
                    start_ray(args.replay_scale, args.ray_soft_limit[0])
                    try:
                        rows = part_quality(args, work)
                    finally:
                        ray.shutdown()
                body = quality_table(rows) + "\n\nPer seed:\n\n" + per_seed_table(rows)
                _emit("quality", body, {"quality": rows}, args, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
