"""Readers during writes (issue 16, item 5): the writer's commit latency and the WAL size while
``esopt status``, ``esopt report`` and Journal reads run in loops.

Usage::

    python bench/journal_readers.py [--seconds 60] [--out bench/results/journal_readers.json]

Phases (each a fresh journal; the writer journals generations back to back through the Journal API with
the campaign's commit boundaries, 15 commits per generation of 6, ``busy_timeout=0`` so that a lock
wait would fail the run; see ``tests/helpers_readers.py``):

1. ``alone``: the writer alone;
2. ``tight``: with readers ``esopt status``, ``esopt report``, Journal reads in ``Journal.snapshot()``
   and Journal reads without it (as ``esopt status`` reads today), each reading right after the last;
3. ``dashboard``: the same readers, pausing 50 ms between readings.

Prints per phase: commits, commit latency p50 / p99 / max (ms), commits over 100 ms, the largest time
a commit was blocked (wall minus on-CPU minus waiting for a CPU: I/O, locks) and how many were blocked
over 100 ms, the commits that ran SQLite's auto-checkpoint and the slowest of them, the longest block
of a commit that ran none, the largest ``-wal`` size (MiB: SQLite rewrites the WAL from its start after a complete
checkpoint without shrinking the file, so this is its high-water mark; 4 MiB is the 1000-page
auto-checkpoint); and per reader: readings, half-written views seen (must be 0 in a snapshot),
slowest reading (s).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers_readers import latency_summary, run  # noqa: E402

READERS = ["status", "report", "journal", "journal-nosnapshot"]


def _phase(name: str, seconds: float, readers: list[str], pause: float, work: Path) -> dict:
    w, r = run(work / name, seconds, readers, work, pause=pause, min_views=1 if readers else 0, max_seconds=3 * seconds)
    wal = np.asarray(w["wal_bytes"])
    return {
        "phase": name,
        "generations": w["generations"],
        **latency_summary(w),
        "wal_max_mib": float(wal.max()) / 2**20,
        "readers": {
            k: {
                "views": v["views"],
                "half_written": len(v["violations"]),
                "example": v["violations"][:1],
                "slowest_s": max(v["seconds"], default=0.0),
            }
            for k, v in r.items()
        },
    }


def _print(rows: list[dict]) -> None:
    print(
        f"{'phase':<10} {'commits':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'>100ms':>6} "
        f"{'blocked max ms':>14} {'blocked>100ms':>13} {'ckpts':>5} {'ckpt max ms':>11} {'no-ckpt blocked max':>19} "
        f"{'WAL max MiB':>11}"
    )
    for r in rows:
        print(
            f"{r['phase']:<10} {int(r['n']):>8} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.1f} "
            f"{int(r['over']):>6} {r['blocked_max_ms']:>14.1f} {int(r['blocked_over']):>13} "
            f"{int(r['checkpoints']):>5} {r['ckpt_max_ms']:>11.1f} {r['nockpt_blocked_max_ms']:>19.1f} "
            f"{r['wal_max_mib']:>11.1f}"
        )
    print(f"\n{'phase':<10} {'reader':<22} {'readings':>8} {'half-written':>12} {'slowest s':>9}")
    for r in rows:
        for k, v in r["readers"].items():
            example = f"  e.g. {v['example'][0]}" if v["example"] else ""
            print(f"{r['phase']:<10} {k:<22} {v['views']:>8} {v['half_written']:>12} {v['slowest_s']:>9.2f}{example}")


def main(argv: list[str] | None = None) -> int:
    """Run the three phases and print the tables; returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--seconds", type=float, default=60.0, help="writer time per phase (s; on until every reader read once, <= 3x)"
    )
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = [
            _phase("alone", args.seconds, [], 0.0, work),
            _phase("tight", args.seconds, READERS, 0.0, work),
            _phase("dashboard", args.seconds, READERS, 0.05, work),
        ]
    _print(rows)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
