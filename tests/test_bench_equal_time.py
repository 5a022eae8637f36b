"""bench/equal_time.py: best at the reference method's training time, and which runs compare."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from helpers_bench import load_bench

ROOT = Path(__file__).resolve().parents[1]


def _load():
    """bench/equal_time.py as a module (bench/hpo_quality.py pins thread variables on import: restored)."""
    return load_bench("equal_time", "equal_time_tested")


def _rows(method, seed, times, values):
    return [
        {"method": method, "seed": str(seed), "trial": str(i), "wall_time_s": str(t), "objective": str(v)}
        for i, (t, v) in enumerate(zip(times, values))
    ]


def test_only_the_trials_within_the_reference_time_count_in_proposal_order():
    et = _load()
    rows = (
        _rows("ref", 0, [1, 1, 1], [0.9, 0.8, 0.7])
        + _rows("slow", 0, [2, 2, 2], [0.5, 0.1, 0.05])
        + _rows("ref", 1, [2, 2], [0.4, 0.3])
        + _rows("slow", 1, [1, 3, 0.5], [0.6, 0.2, 0.01])
    )
    E = et.equal_time(rows, "ref")
    # seed 0: budget 3 s, slow's cumulative 2, 4, 6 -> one trial; seed 1: budget 4 s, 1, 4, 4.5 -> two
    np.testing.assert_array_equal(E["slow"]["trials"], [1, 2])
    np.testing.assert_allclose(E["slow"]["best"], [0.5, 0.2])
    np.testing.assert_allclose(E["ref"]["best"], [0.7, 0.3])
    np.testing.assert_allclose(E["ref"]["budget_s"], [3, 4])
    # a method missing a seed has no value there
    E = et.equal_time(rows + _rows("other", 0, [1], [0.1]), "ref")
    assert E["other"]["best"][0] == 0.1 and math.isnan(E["other"]["best"][1])


def test_committed_mnist1d_runs_of_another_commit_are_not_compared(capsys):
    et = _load()
    assert et.main(["--config", str(ROOT / "cluster/configs/mnist1d-mixed.yaml"), "--ref", "catcmawm"]) == 0
    out = capsys.readouterr().out
    # the committed catcmawm and cmaes runs are of one session (12e46f9), the surrogate's of another
    # (1b9ac3e), random's and tpe's of 506c26a
    assert "| catcmawm |" in out and "| cmaes |" in out
    assert "| tpe |" not in out and "| catcmawm:surrogate=lq |" not in out
    assert (
        "Not comparable (runs of another commit or session, other machine): catcmawm:surrogate=lq, random, tpe" in out
    )
    assert et.main(["--config", str(ROOT / "cluster/configs/mnist1d-mixed.yaml"), "--ref", "nope"]) == 2
