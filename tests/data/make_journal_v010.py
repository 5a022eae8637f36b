"""Write ``journal_v010/campaign.db``: a campaign journal written by esopt 0.1.0 (commit 242f0f9).

Run with the pristine 0.1.0 code first on the path, from the repository root::

    RAY_USAGE_STATS_ENABLED=0 PYTHONPATH=/work/v010:/work/v010/tests python tests/data/make_journal_v010.py

The campaign: 4 hyperparameters (linear, log10, int) on the deterministic sphere of
``tests/helpers_objectives.py``, CMA-ES with popsize 4, seed 3, budget 4 generations.  It is
interrupted (a KeyboardInterrupt from the progress object, as Ctrl-C does) after the second trial
of generation 3 finished, so the journal holds two told generations and one open generation
with done and cancelled trials: what a resume must continue.  ``journal_v010/expected.json``
records what the 0.1.0 driver saw (config, trial objectives, generation states as hex), so the
test compares today's reading against values written by 0.1.0 itself; its ``resumed`` entry is
what 0.1.0 itself got by resuming a copy of the journal to completion (trials and state hashes),
so a resume by today's code can be checked to continue bit-for-bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "journal_v010"

CONFIG = {
    "name": "v010-sphere",
    "objective": "helpers_objectives:sphere",
    "space": {
        "a": {"lower": -1.0, "upper": 1.0},
        "b": {"lower": 0.01, "upper": 10.0, "scale": "log10"},
        "n": {"lower": 1, "upper": 6, "type": "int"},
        "c": {"lower": 0.0, "upper": 2.0, "init": 0.5},
    },
    "strategy": {"name": "cmaes", "popsize": 4, "seed": 3, "sigma0": 0.3},
    "budget": {"max_generations": 4},
    "resources": {"num_cpus": 1, "max_concurrent": 1},
    "ray": {"num_cpus": 1},
}


class InterruptAt:
    """Progress object: Ctrl-C after ``done`` trials of ``generation`` finished."""

    def __init__(self, generation: int, done: int):
        self.at = (generation, done)

    def on_trial_finished(self, generation, row, counts):
        if (generation, counts["done"]) == self.at:
            raise KeyboardInterrupt


def _read(db: Path) -> tuple[str, dict, list[dict], list[dict]]:
    conn = sqlite3.connect(db)
    trials = [
        dict(zip(("generation", "idx", "status", "objective", "x_json", "params_json"), r))
        for r in conn.execute(
            "SELECT generation, idx, status, objective, x_json, params_json FROM trials ORDER BY generation, idx"
        )
    ]
    gens = [
        {
            "generation": g,
            "told": t is not None,
            "sigma": sigma,
            "mean_json": mean,
            "best_objective": best,
            "state_sha256": hashlib.sha256(s).hexdigest() if s else None,
        }
        for g, t, sigma, mean, best, s in conn.execute(
            "SELECT generation, told_at, sigma, mean_json, best_objective, state FROM generations ORDER BY generation"
        )
    ]
    config_json = json.loads(conn.execute("SELECT config_json FROM campaign").fetchone()[0])
    status = conn.execute("SELECT status FROM campaign").fetchone()[0]
    conn.close()
    return status, config_json, trials, gens


def main() -> None:
    import esopt
    from cluster import Campaign, parse_config

    assert esopt.__version__ == "0.1.0", esopt.__version__
    assert "/work/v010" in str(Path(esopt.__file__).resolve()), esopt.__file__
    if OUT.exists():
        shutil.rmtree(OUT)
    cfg = parse_config(CONFIG)
    result = Campaign(cfg, OUT).run(progress=InterruptAt(3, 2))
    print("status:", result.status, result.message)
    for extra in ("ray_local.json", "campaign.lock", "campaign.db-wal", "campaign.db-shm"):
        (OUT / extra).unlink(missing_ok=True)
    db = OUT / "campaign.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=DELETE")  # one self-contained file for the repository
    conn.close()
    status, config_json, trials, gens = _read(db)
    copy = Path(tempfile.mkdtemp()) / "resumed"
    shutil.copytree(OUT, copy)
    resumed = Campaign.resume(copy).run()
    r_status, _, r_trials, r_gens = _read(copy / "campaign.db")
    print("resumed:", resumed.status, resumed.message)
    expected = {
        "esopt_version": esopt.__version__,
        "python": sys.version.split()[0],
        "campaign_status": status,
        "config": config_json,
        "trials": trials,
        "generations": gens,
        "resumed": {"campaign_status": r_status, "message": resumed.message, "trials": r_trials, "generations": r_gens},
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(json.dumps({k: expected[k] for k in ("campaign_status", "generations")}, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    main()
