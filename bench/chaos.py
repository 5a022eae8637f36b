"""Longer fault schedules than CI runs: faults survived by kind, trials lost, re-executions, recovery.

Runs campaigns through the ``esopt`` command line on a three-node ``ray start`` cluster (a head
and two workers, 1 CPU each; tests/chaos.py) while SIGKILLing the driver (then ``esopt resume``),
the Ray worker of a running trial, a worker node's raylet (a replacement node joins), and
SIGSTOPping a trial past ``resources.timeout_s``, at moments drawn from
``numpy.random.default_rng(seed)``.  Campaigns of ``--per-run`` faults follow one another (each
with its own seed, scheduler modes alternating) until ``--faults`` have been injected; after each,
every invariant of ``chaos.check_all`` is checked.  Prints, per kind of fault: injected, how many
of them were in campaigns that ended with every invariant holding, recovery time (from the fault until every
trial in flight then is journaled done) median and max; and in total: trials lost (must be 0),
re-executions (executions beyond one per trial) and the violations, if any.

    nice -n 10 python bench/chaos.py --faults 60 --seed 1

Heading: bench/provenance.py's lines (commit, uncommitted paths, package versions, BLAS, CPU) and
the SQLite version.  A campaign with violations is copied to ``--keep`` (journal, execution log,
driver outputs, the faults) so that they can be explained.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import chaos  # noqa: E402

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def _heading(argv: list[str]) -> str:
    """Provenance lines (bench/provenance.py: commit, dirty paths, packages, BLAS, CPU) plus SQLite."""
    sys.path.insert(0, str(REPO / "bench"))
    from provenance import markdown, provenance

    prov = provenance(command="python bench/chaos.py " + " ".join(argv))
    return markdown(prov) + f"\nSQLite {sqlite3.sqlite_version}; command: {prov.get('command')}  "


def one_run(cluster, work: Path, k: int, seed: int, n_faults: int, args) -> dict:
    """One campaign under ``n_faults`` faults; its figures and violations."""
    mode = args.modes[k % len(args.modes)]
    config = chaos.chaos_config(
        mode=mode, seed=seed, generations=args.generations, popsize=args.popsize, timeout_s=args.timeout_s
    )
    run = chaos.ChaosRun(cluster, work / f"run{k}", config, chaos.make_schedule(seed, n_faults), seed=seed)
    try:
        run.run()
    except RuntimeError as e:
        run.close()
        return {"mode": mode, "faults": run.faults, "violations": [f"run failed: {e}"[:2000]], "ok": False}
    run.close()
    violations = chaos.check_all(run)
    if violations:  # keep what explains them: journal, execution log, driver outputs
        keep = Path(args.keep) / f"run{k}"
        shutil.copytree(run.work, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.lock"))
        faults = [(f.kind, round(f.t, 3), f.pid, f.node, len(f.exposed)) for f in run.faults]
        (keep / "faults.txt").write_text("\n".join(map(str, faults)) + "\n")
        violations = [*violations, f"kept in {keep}"]
    rows, log = chaos.journal_rows(run.directory), chaos.read_log(run.log)
    expected = args.generations * args.popsize
    done = sum(r["status"] == "done" for r in rows)
    lost = max(0, expected - done) + len(chaos.check_rows_kept(run.snapshots, rows))
    starts = sum(r["event"] == "start" for r in log)
    return {
        "mode": mode,
        "faults": run.faults,
        "skipped": run.skipped,
        "violations": violations,
        "ok": not violations,
        "lost": lost,
        "trials": len(rows),
        "reexecutions": starts - len({r["key"] for r in log if r["event"] == "start"}),
        "recovery": chaos.recovery_times(run, rows),
        "elapsed_s": run.elapsed_s,
        "hurried": run.hurried,
        "resubmitted": chaos.resubmissions(rows, log, run.faults),
    }


def _table(results: list[dict]) -> str:
    head = "| fault | injected | in campaigns without violations | recovery median (s) | recovery max (s) |"
    lines = [head, "|---|---:|---:|---:|---:|"]
    for kind in chaos.KINDS:
        n = sum(f.kind == kind for r in results for f in r["faults"])
        ok = sum(f.kind == kind for r in results if r["ok"] for f in r["faults"])
        rec = [s for r in results for kk, s in r.get("recovery", []) if kk == kind]
        med = f"{np.median(rec):.1f}" if rec else "-"
        mx = f"{max(rec):.1f}" if rec else "-"
        lines.append(f"| {kind} | {n} | {ok} | {med} | {mx} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--faults", type=int, default=40, help="faults to inject in total")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-run", type=int, default=10, help="faults per campaign")
    p.add_argument("--generations", type=int, default=24)
    p.add_argument("--popsize", type=int, default=4)
    p.add_argument("--timeout-s", type=float, default=5.0, help="resources.timeout_s of the campaigns")
    p.add_argument("--keep", default="/tmp/esopt-chaos-violations", help="where runs with violations are copied")
    p.add_argument("--modes", nargs="+", default=["sync", "async"], choices=["sync", "async"])
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    if args.faults < 1 or args.per_run < 1:
        p.error("--faults and --per-run must be >= 1")
    print(_heading(argv), flush=True)
    root = Path(tempfile.mkdtemp(prefix="esbc", dir="/tmp"))
    seeds = np.random.default_rng(args.seed).integers(0, 2**31, size=args.faults)
    results: list[dict] = []
    t0 = time.monotonic()
    cluster = chaos.RayStartCluster(root, n_workers=2, num_cpus=1)
    try:
        k = 0
        while sum(len(r["faults"]) for r in results) < args.faults:
            left = args.faults - sum(len(r["faults"]) for r in results)
            res = one_run(cluster, root / "work", k, int(seeds[k]), min(args.per_run, left), args)
            results.append(res)
            kinds = ",".join(f.kind for f in res["faults"])
            print(
                f"run {k} ({res['mode']}): {len(res['faults'])} faults [{kinds}], "
                f"{'ok' if res['ok'] else 'VIOLATIONS'}, {res.get('elapsed_s', 0):.0f} s",
                flush=True,
            )
            for v in res["violations"]:
                print("   ", v, flush=True)
            k += 1
            if k >= len(seeds):
                break
    finally:
        cluster.stop()
        left = chaos.processes_naming(str(root))
        shutil.rmtree(root, ignore_errors=True)
    n_faults = sum(len(r["faults"]) for r in results)
    print()
    print(_table(results))
    print()
    print(
        f"{len(results)} campaigns ({', '.join(sorted({r['mode'] for r in results}))}), {n_faults} faults, "
        f"{sum(r.get('trials', 0) for r in results)} trials; trials lost: {sum(r.get('lost', 0) for r in results)}; "
        f"re-executions: {sum(r.get('reexecutions', 0) for r in results)}; "
        f"violations: {sum(len(r['violations']) for r in results)}; "
        f"faults brought forward to fit the budget: {sum(r.get('hurried', 0) for r in results)}; "
        f"trials resubmitted that no fault found executing: "
        f"{sum(r.get('resubmitted', {}).get('not_started', 0) for r in results)} not yet started at a driver kill, "
        f"{sum(r.get('resubmitted', {}).get('timeouts', 0) for r in results)} timeouts not injected; "
        f"processes left after the cluster stopped: {len(left)}; wall {time.monotonic() - t0:.0f} s"
    )
    return 0 if all(r["ok"] for r in results) and not left else 1


if __name__ == "__main__":
    sys.exit(main())
