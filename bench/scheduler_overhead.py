"""Scheduler overhead: esopt's campaign driver vs Ray Tune, same trials, same machine, one run.

Each of ``--trials`` (200) trials sleeps ``--sleep`` (0.2 s) and returns a sphere value of its
hyperparameters; ``--cpus`` (2) trials run at once (``num_cpus: 1`` each on a local Ray instance of
2 CPUs).  esopt runs the real :class:`cluster.campaign.Campaign` (CMA-ES, popsize 10, journaled
in SQLite); Ray Tune runs ``tune.Tuner`` with a :class:`Searcher` that replays exactly the points
esopt evaluated, in the same order, at the same concurrency.

Printed per system: wall time, utilization = ideal / wall with ideal = trials x sleep / cpus, and
per-trial overhead = (wall x cpus - trials x sleep) / trials, i.e. the slot time per trial not
spent in the trial's own work.  For esopt, "wall" runs from the first generation's start to the
last generation's end (the driver's ``ray.init``/``shutdown`` are shown separately, once per
campaign); for Tune, it is ``Tuner.fit()`` on an already started Ray instance.  Goal (issue 5):
esopt utilization >= 90 % and per-trial overhead >= 5x lower than Tune's.

    OMP_NUM_THREADS=1 python bench/scheduler_overhead.py [--trials 200] [--sleep 0.2] [--cpus 2]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

SLEEP_ENV = "ESOPT_BENCH_SLEEP_S"
DIM = 4


def sleep_trial(params: dict) -> float:
    """The benchmark's trial: sleep ``$ESOPT_BENCH_SLEEP_S`` seconds, return ``sum((x - 0.3)^2)``."""
    time.sleep(float(os.environ.get(SLEEP_ENV, "0.2")))
    return float(sum((float(v) - 0.3) ** 2 for v in params.values()))


def _ts(v) -> float | None:
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return datetime.fromisoformat(str(v)).timestamp()


class _Clock:
    """Progress hooks that time the campaign's generations."""

    def __init__(self):
        self.first_start = self.last_end = None

    def on_generation_start(self, generation, popsize):
        if self.first_start is None:
            self.first_start = time.perf_counter()

    def on_generation_end(self, generation, best_objective):
        self.last_end = time.perf_counter()


def run_esopt(n_trials: int, cpus: int, popsize: int, workdir: Path) -> dict:
    """Run the campaign; return timings and the evaluated points in (generation, idx) order."""
    from cluster.campaign import Campaign
    from cluster.config import parse_config
    from cluster.store import Journal

    cfg = parse_config(
        {
            "name": "bench-overhead",
            "objective": "scheduler_overhead:sleep_trial",
            "space": {f"x{i}": {"lower": 0.0, "upper": 1.0} for i in range(DIM)},
            "strategy": {"name": "cmaes", "popsize": popsize, "seed": 0, "sigma0": 0.3},
            "budget": {"max_trials": n_trials},
            "resources": {"num_cpus": 1},
            "ray": {"num_cpus": cpus},
        }
    )
    clock = _Clock()
    t0 = time.perf_counter()
    result = Campaign(cfg, workdir).run(progress=clock)
    total = time.perf_counter() - t0
    j = Journal(workdir, readonly=True)
    try:
        trials = sorted(j.trials(), key=lambda t: (t["generation"], t["idx"]))
        gens = j.generations()
    finally:
        j.close()
    if result.status != "done" or any(t["status"] != "done" for t in trials):
        raise RuntimeError(f"esopt campaign did not finish cleanly: {result.status} {result.message}")
    return {
        "wall": clock.last_end - clock.first_start,
        "total": total,
        "trials": trials,
        "gens": gens,
        "points": [t["params"] for t in trials],
    }


def run_tune(points: list[dict], cpus: int, workdir: Path) -> dict:
    """Ray Tune on the same points (a replaying Searcher), ``cpus`` trials at once."""
    import ray
    from ray import tune
    from ray.tune.search import Searcher

    class Replay(Searcher):
        """Suggests ``points`` in order, then FINISHED."""

        def __init__(self, pts):
            super().__init__(metric="objective", mode="min")
            self.pts, self.i = list(pts), 0

        def suggest(self, trial_id):
            if self.i >= len(self.pts):
                return Searcher.FINISHED
            self.i += 1
            return dict(self.pts[self.i - 1])

        def on_trial_complete(self, trial_id, result=None, error=False):
            pass

    def trainable(config):
        tune.report({"objective": sleep_trial(config)})

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            tune_config=tune.TuneConfig(search_alg=Replay(points), num_samples=len(points), max_concurrent_trials=cpus),
            run_config=tune.RunConfig(name="bench-overhead", storage_path=str(workdir), verbose=0),
        )
        t0 = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - t0
    finally:
        ray.shutdown()
    errors = sum(1 for r in grid if r.error is not None)
    if len(grid) != len(points) or errors:
        raise RuntimeError(f"Tune ran {len(grid)} trials ({errors} errors), expected {len(points)}")
    return {"wall": wall}


def _breakdown(trials: list[dict], gens: list[dict], sleep: float, cpus: int, wall: float) -> str:
    """Where esopt's slot time goes, from the journal's timestamps (seconds of slot time)."""
    by_gen: dict[int, list[dict]] = {}
    for t in trials:
        by_gen.setdefault(t["generation"], []).append(t)
    asked = {g["generation"]: _ts(g["asked_at"]) for g in gens}
    dur = [_ts(t["finished_at"]) - _ts(t["started_at"]) for t in trials]
    in_trial = sum(dur) - sleep * len(trials)
    startup = dispatch = barrier = turnaround = 0.0
    gaps = []
    order = sorted(by_gen)
    for n, g in enumerate(order):
        rows = by_gen[g]
        s = sorted(_ts(t["started_at"]) for t in rows)
        f = sorted(_ts(t["finished_at"]) for t in rows)
        k0 = min(cpus, len(rows))
        if n == 0:
            startup = sum(x - asked[g] for x in s[:k0])  # ask -> first trials start (worker start-up)
        gaps += [s[k] - f[k - cpus] for k in range(cpus, len(s))]  # a slot freed -> its next trial starts
        barrier += sum(f[-1] - x for x in f[-k0:])  # slots idle while the generation's last trial runs
        if n + 1 < len(order):
            nxt = sorted(_ts(t["started_at"]) for t in by_gen[order[n + 1]])
            turnaround += sum(x - f[-1] for x in nxt[:k0])  # last finish -> next generation's trials start
    dispatch = sum(gaps)
    total_idle = wall * cpus - sleep * len(trials)
    per = 1e3 / len(trials)
    lines = [f"  slot time not sleeping: {total_idle:.2f} s = {per * total_idle:.1f} ms/trial, of which"]
    med = 1e3 * statistics.median(gaps or [0])
    parts = (
        ("worker start-up (first ask -> first starts)", startup),
        ("work in the trial beyond the sleep (objective call, result)", in_trial),
        (f"dispatch gaps inside generations (median {med:.1f} ms)", dispatch),
        ("slots idle at each generation's end (straggler barrier)", barrier),
        ("generation turnaround (last finish -> next starts: tell, ask, journal, submit)", turnaround),
    )
    for name, v in parts:
        lines.append(f"    {name:<80} {v:7.2f} s  {per * v:6.1f} ms/trial")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run both systems and print the table; returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--sleep", type=float, default=0.2)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--popsize", type=int, default=10)
    ap.add_argument("--skip-tune", action="store_true", help="esopt only (quick check)")
    args = ap.parse_args(argv)
    os.environ[SLEEP_ENV] = str(args.sleep)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # so "scheduler_overhead" imports

    ideal = args.trials * args.sleep / args.cpus
    with tempfile.TemporaryDirectory() as tmp:
        es = run_esopt(args.trials, args.cpus, args.popsize, Path(tmp) / "esopt")
        tu = None if args.skip_tune else run_tune(es["points"], args.cpus, Path(tmp) / "tune")

    def row(name, wall):
        util = ideal / wall
        over = (wall * args.cpus - args.trials * args.sleep) / args.trials * 1e3
        print(f"{name:<28} {wall:9.2f} {100 * util:10.1f}% {over:14.1f}")
        return over

    print(
        f"\n{args.trials} trials x {args.sleep} s on {args.cpus} CPUs (ideal {ideal:.1f} s); "
        f"threads pinned to 1; Ray {__import__('ray').__version__}"
    )
    print(f"{'system':<28} {'wall [s]':>9} {'utilization':>11} {'overhead/trial [ms]':>14}")
    o_es = row("esopt (Campaign, CMA-ES)", es["wall"])
    row("esopt incl. ray.init/shutdown", es["total"])
    if tu is not None:
        o_tu = row("Ray Tune (Tuner, replay)", tu["wall"])
        print(f"overhead ratio Tune / esopt: {o_tu / max(o_es, 1e-9):.1f}x")
    print(
        "esopt breakdown (from the journal's timestamps):\n"
        + _breakdown(es["trials"], es["gens"], args.sleep, args.cpus, es["wall"])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
