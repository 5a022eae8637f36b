"""bench/multifidelity_tasks.py counts what its table says: only full-budget trials count for a
best, a stopped trial's worker-seconds count for the cost, the target is esopt-sync's median final
best, and "best at equal worker-seconds" is read at the budget every run reached.

The benchmark's numbers themselves are not asserted here (they live in bench/results/).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from helpers_bench import load_bench


def _load():
    return load_bench("multifidelity_tasks", "multifidelity_tasks")


def _t(worker_s, value, full):
    return {"worker_s": worker_s, "value": value, "full": full, "params": {"lr": 0.1}}


def _run(seed, log, retrained=(0.5, 0.5, 0.5)):
    return {"seed": seed, "wall_s": 1.0, "log": log, "retrained": list(retrained)}


def test_curve_counts_stopped_trials_for_cost_and_only_full_ones_for_the_best():
    mf = _load()
    ws, best = mf.curve([_t(2.0, 0.01, False), _t(5.0, 0.3, True), _t(1.0, None, False), _t(4.0, 0.2, True)])
    assert ws.tolist() == [2.0, 7.0, 8.0, 12.0]
    assert best[0] == math.inf and best[1:].tolist() == [0.3, 0.3, 0.2]  # the stopped 0.01 never counts
    assert mf.final_best([_t(1.0, 0.01, False), _t(1.0, 0.4, True)])["value"] == 0.4
    assert mf.final_best([_t(1.0, 0.01, False)]) is None


def test_summary_target_worker_seconds_to_target_and_equal_budget():
    mf = _load()
    runs = {
        "esopt-sync": [
            _run(0, [_t(10, 0.5, True), _t(10, 0.3, True)]),
            _run(1, [_t(10, 0.4, True), _t(10, 0.2, True)]),
        ],
        "esopt-fidelity": [
            _run(0, [_t(1, 0.9, False), _t(5, 0.25, True), _t(30, 0.1, True)]),
            _run(1, [_t(1, 0.9, False), _t(1, 0.8, False)]),  # never a full trial
        ],
    }
    rows, target, w_eq = mf.summarize(runs)
    assert target == np.median([0.3, 0.2]) == 0.25
    assert w_eq == 2  # the smallest total over all runs
    by = {r["method"]: r for r in rows}
    assert by["esopt-sync"]["worker_s_to_target"] == [math.inf, 20.0]
    assert by["esopt-fidelity"]["worker_s_to_target"] == [6.0, math.inf]
    assert by["esopt-fidelity"]["final_best"] == [0.1, math.inf]
    assert by["esopt-sync"]["best_at_equal_worker_s"] == [math.inf, math.inf]  # nothing full by 2 s
    assert by["esopt-fidelity"]["full_trials"] == [2, 0]
    text = mf.table(
        rows,
        target,
        w_eq,
        type(
            "A",
            (),
            {"study": "digits", "epochs": 16, "worker_seconds": 40, "workers": 2, "fidelity_min": 1, "eta": 3.0},
        )(),
    )
    assert "| esopt-fidelity |" in text and "(1/2)" in text and "25.00%" in text


def test_run_cache_names_hold_every_setting_that_decides_a_run(tmp_path):
    mf = _load()
    A = type(
        "A", (), {"study": "digits", "epochs": 16, "worker_seconds": 200.0, "workers": 2, "fidelity_min": 1, "eta": 3.0}
    )
    B = type("B", (A,), {"fidelity_min": 2})
    C = type("C", (A,), {"epochs": 8})
    names = {mf.run_path(tmp_path, "dehb", 0, k).name for k in (A, B, C)}
    assert len(names) == 3
    assert mf.run_path(tmp_path, "dehb", 0, A) != mf.run_path(tmp_path, "dehb", 1, A)


def test_peers_decode_digits_as_the_committed_runs_did():
    """On digits (no categoricals) a peer's point decodes exactly as ``Space.decode`` of the clipped
    unit vector, the map of the committed digits runs; names stay ``u0..``."""
    mf = _load()
    A = type("A", (), {"study": "digits"})
    space = mf.study_space(A)
    u = np.random.default_rng(3).uniform(-0.2, 1.2, size=len(space.params))
    assert mf.unit_params(space, u) == space.decode(np.clip(u, 0.0, 1.0))
    assert mf.peer_names(space) == [f"u{i}" for i in range(19)]


def test_mnist1d_study_passes_categoricals_as_choices_and_builds_a_mixed_fidelity_campaign():
    mf = _load()
    from cluster.config import parse_config

    A = type("A", (), {"study": "mnist1d", "epochs": 30, "worker_seconds": 600.0, "workers": 2})
    A.fidelity_min, A.eta = 1, 3.0
    space = mf.study_space(A)
    opt = next(p for p in space.params if p.is_categorical)
    values = ["radam" if p.is_categorical else 1.5 for p in space.params]
    hp = mf.unit_params(space, values)
    assert hp[opt.name] == "radam"
    assert all(hp[p.name] == p.upper for p in space.params if not p.is_categorical)  # clipped to 1
    assert mf.default_epochs("mnist1d") == 30 and mf.default_epochs("digits") == 16
    cfg = parse_config(mf.study_config(A, "esopt-fidelity-min2"), base_dir=mf.ROOT / "cluster" / "configs")
    assert cfg.strategy.name == "catcmawm" and cfg.fidelity.min == 2 and cfg.fidelity.max == 30
    assert cfg.trial["dataset"] == "mnist1d" and cfg.budget.max_time_s == 300.0
    win = parse_config(mf.study_config(A, "esopt-fidelity-window"), base_dir=mf.ROOT / "cluster" / "configs")
    assert win.fidelity.min == 2 and win.fidelity.window == 2 * win.strategy.popsize and cfg.fidelity.window is None
    assert mf.study_config(A, "esopt-fidelity")["fidelity"]["min"] == 1  # --fidelity-min
    assert mf.run_path(Path("x"), "dehb", 0, A) != mf.run_path(
        Path("x"), "dehb", 0, type("D", (A,), {"study": "digits"})
    )


def test_plot_draws_runs_that_start_without_a_full_trial_without_warnings(tmp_path):
    """Before a run's first full-budget trial its curve is NaN: no band there, and no all-NaN warning."""
    import warnings

    mf = _load()
    runs = {
        "esopt-sync": [_run(0, [_t(3.0, 0.2, True)]), _run(1, [_t(4.0, 0.3, True)])],
        "esopt-fidelity": [_run(0, [_t(1.0, 0.5, False), _t(6.0, 0.1, True)]), _run(1, [_t(9.0, 0.4, False)])],
    }
    A = type("A", (), {"study": "digits", "epochs": 16, "worker_seconds": 10.0, "workers": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = mf.plot(runs, 0.25, tmp_path / "p.png", A)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_recorded_command_leaves_out_where_the_cached_runs_were_read_from():
    mf = load_bench("multifidelity", "multifidelity_main")
    argv = ["--study", "digits", "--seeds", "5", "--out", "/tmp/x/runs", "--report-only", "--save-results"]
    assert mf.reproducing_command(argv) == "python bench/multifidelity.py --study digits --seeds 5 --save-results"
    assert mf.reproducing_command(["--out=/tmp/x", "--methods", "dehb", "optuna-sha"]) == (
        "python bench/multifidelity.py --methods dehb optuna-sha"
    )
