"""cluster.report: the curves behind the plots, the PNGs, trials.csv, and a report of a real campaign."""

from __future__ import annotations

import csv
import math
import struct

import numpy as np
import pytest

from cluster import report
from cluster.space import Space

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails if the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


SPACE = Space({"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}, "T_0": {"lower": 1, "upper": 20, "type": "int"}})


def _row(g, i, status, objective=None, **extra):
    row = {
        "id": 10 * g + i,
        "generation": g,
        "idx": i,
        "status": status,
        "objective": objective,
        "params": {"lr": 10.0 ** -(i + 1), "T_0": i + 1},
        "result": None,
        "error": None,
        "attempts": 1,
        "node_id": "n1",
        "worker_id": "w1",
        "started_at": 100.0 + g,
        "finished_at": 101.0 + g,
    }
    row.update(extra)
    return row


# the journal hands trials in any order; (generation, idx) order is what the strategy saw
TRIALS = [  # generations are numbered from 1, as in the journal
    _row(2, 2, "running"),
    _row(1, 1, "failed", None, error="ValueError: boom"),
    _row(2, 0, "done", 0.4),
    _row(1, 0, "done", 0.5, result={"objective": 0.5, "test_error": 0.55, "wall_time_s": 1.5}),
    _row(2, 1, "done", 0.1),
    _row(1, 2, "done", 0.3),
]
GENERATIONS = [
    {"generation": 1, "popsize": 3, "sigma": 0.3, "mean": [0.5, 0.5], "told_at": 1.0},
    {"generation": 2, "popsize": 3, "sigma": 0.2, "mean": [1.7, -0.2], "told_at": None},  # mean off the box
]


def test_objective_curves_order_best_and_medians():
    c = report.objective_curves(TRIALS)
    np.testing.assert_array_equal(c["evaluation"], [1, 2, 3, 4, 5])  # running trial not counted
    np.testing.assert_array_equal(c["objective"], [0.5, np.nan, 0.3, 0.4, 0.1])
    np.testing.assert_array_equal(c["best"], [0.5, 0.5, 0.3, 0.3, 0.1])
    np.testing.assert_array_equal(c["failed"], [False, True, False, False, False])
    np.testing.assert_array_equal(c["median_at"], [3, 5])  # last evaluation of generations 1 and 2
    np.testing.assert_allclose(c["median"], [0.4, 0.25])


def test_objective_curves_before_any_success():
    c = report.objective_curves([_row(1, 0, "failed"), _row(1, 1, "running")])
    np.testing.assert_array_equal(c["evaluation"], [1])
    assert np.isnan(c["best"]).all() and c["median"].size == 0


@pytest.mark.parametrize("trials,generations", [(TRIALS, GENERATIONS), ([], [])], ids=["data", "empty"])
def test_plots_are_pngs_of_the_figure_size(tmp_path, trials, generations):
    assert png_size(report.plot_objective(trials, tmp_path / "o.png")) == (800, 450)
    assert png_size(report.plot_sigma(generations, tmp_path / "s.png")) == (800, 350)
    # one 2.6-inch panel per hyperparameter at 100 dpi
    assert png_size(report.plot_params(trials, generations, SPACE, tmp_path / "p.png")) == (800, 520)


def test_trials_csv_one_row_per_trial_in_own_units(tmp_path):
    path = report.write_trials_csv(TRIALS, SPACE.names, tmp_path / "trials.csv")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(r["generation"]), int(r["idx"])) for r in rows] == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    first = rows[0]
    assert first["status"] == "done" and float(first["objective"]) == 0.5
    assert float(first["test_error"]) == 0.55 and float(first["wall_time_s"]) == 1.5
    assert float(first["duration_s"]) == 1.0  # finished_at - started_at
    assert rows[5]["duration_s"] == ""  # still running
    assert float(first["lr"]) == 0.1 and first["T_0"] == "1"  # ints stay ints
    assert rows[1]["status"] == "failed" and rows[1]["objective"] == "" and "boom" in rows[1]["error"]
    assert rows[5]["status"] == "running"


def test_sampling_means_start_at_x0_then_follow_the_tells():
    means = report.sampling_means(GENERATIONS, SPACE)
    assert [g for g, _ in means] == [1, 2, 3]  # x0 for generation 1, then after each tell
    np.testing.assert_array_equal(means[0][1], SPACE.x0)
    np.testing.assert_array_equal(means[2][1], [1.7, -0.2])  # raw; plot_params clips to the box
    open_only = [{"generation": 1, "popsize": 3, "sigma": None, "mean": None, "told_at": None}]
    assert [g for g, _ in report.sampling_means(open_only, SPACE)] == [1]
    assert report.sampling_means([], SPACE) == []


def test_space_of_accepts_config_or_raw_dict():
    assert report.space_of({"space": SPACE.to_dict()}) == SPACE
    with pytest.raises(ValueError, match="no search space"):
        report.space_of({"name": "x"})


# -- a real campaign's journal ----------------------------------------------------------------
OBJECTIVE_MODULE = '''
import math

def objective(params):
    """Deterministic; fails for the smallest learning rates (to exercise failed rows)."""
    if params["lr"] < 3e-4:
        raise ValueError("lr too small for this test")
    return {"objective": (math.log10(params["lr"]) + 2.0) ** 2 + 0.01 * params["T_0"], "test_error": 0.5}
'''


@pytest.fixture(scope="module")
def campaign_dir(tmp_path_factory):
    import os
    import sys

    from cluster.campaign import Campaign
    from cluster.config import parse_config

    mod_dir = tmp_path_factory.mktemp("objmod")
    (mod_dir / "report_test_objective.py").write_text(OBJECTIVE_MODULE)
    sys.path.insert(0, str(mod_dir))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(mod_dir), old) if p)  # for Ray workers
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        cfg = parse_config(
            {
                "name": "report-test",
                "objective": "report_test_objective:objective",
                "space": {
                    "lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10", "init": 3e-4},
                    "T_0": {"lower": 1, "upper": 20, "type": "int"},
                },
                "strategy": {"name": "cmaes", "popsize": 6, "seed": 3, "sigma0": 0.3},
                "budget": {"max_generations": 3},
                "resources": {"num_cpus": 1},
                "failures": {"on_error": "penalty"},
                "ray": {"num_cpus": 2},
            }
        )
        d = tmp_path_factory.mktemp("campaign")
        result = Campaign(cfg, d).run()
        assert result.status == "done"
    finally:
        sys.path.remove(str(mod_dir))
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    return d


def test_report_of_a_real_campaign(campaign_dir, tmp_path):
    from cluster.store import Journal

    files = report.write_report(campaign_dir, tmp_path / "out")
    assert set(files) == set(report.REPORT_FILES)
    for name in ("objective.png", "sigma.png", "params.png"):
        w, h = png_size(files[name])
        assert w > 0 and h > 0 and files[name].stat().st_size > 1000
    j = Journal(campaign_dir, readonly=True)
    try:
        trials = {(t["generation"], t["idx"]): t for t in j.trials()}
    finally:
        j.close()
    with files["trials.csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(trials) == 18
    failed = 0
    for r in rows:
        t = trials[(int(r["generation"]), int(r["idx"]))]
        assert r["status"] == t["status"]
        assert math.isclose(float(r["lr"]), t["params"]["lr"], rel_tol=1e-12)
        assert int(r["T_0"]) == t["params"]["T_0"] and 1 <= int(r["T_0"]) <= 20
        if t["status"] == "done":
            assert math.isclose(float(r["objective"]), t["objective"]) and float(r["test_error"]) == 0.5
        else:
            failed += 1
            assert "lr too small" in r["error"]
    assert failed >= 1  # init at 3e-4 with sigma0 0.3 samples below the failing threshold


def test_report_default_out_is_inside_the_campaign(campaign_dir):
    files = report.write_report(campaign_dir)
    assert all(p.parent == campaign_dir / "report" and p.stat().st_size > 0 for p in files.values())
