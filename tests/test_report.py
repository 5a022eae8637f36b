"""cluster.report: the curves behind the plots, the PNGs, trials.csv, and a report of a real campaign."""

from __future__ import annotations

import csv
import dataclasses
import math
import re
import struct

import numpy as np
import pytest

from cluster import report
from cluster.space import Space
from cluster.status import TrialStatus
from cluster.trialrow import TrialRow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails if the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


SPACE = Space({"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}, "T_0": {"lower": 1, "upper": 20, "type": "int"}})


def _row(g, i, status, objective=None, **extra) -> TrialRow:
    """A journal trial as ``Journal.trials()`` returns it."""
    row = {
        "id": 10 * g + i,
        "generation": g,
        "idx": i,
        "x": [0.5, 0.5],
        "status": TrialStatus(status),
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
    return TrialRow(**row)


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


def test_trials_csv_writes_a_null_choice_as_null_and_a_missing_value_as_empty(tmp_path):
    rows_in = [
        _row(1, 0, "done", 0.2, params={"depth": None, "act": "relu"}),  # null is one of depth's choices
        _row(1, 1, "done", 0.3, params={"depth": 3, "act": False}),
        _row(1, 2, "failed", None, params={"act": "relu"}),  # no depth recorded
    ]
    path = report.write_trials_csv(rows_in, ["depth", "act"], tmp_path / "trials.csv")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["depth"] for r in rows] == ["null", "3", ""]
    assert [r["act"] for r in rows] == ["relu", "False", "relu"]


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


def _drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig


def _visible_tick_labels(axis) -> list[str]:
    lo, hi = axis.get_view_interval()
    ticks = [*axis.get_major_ticks(), *axis.get_minor_ticks()]
    return [
        t.label1.get_text() for t in ticks if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi
    ]


def test_objective_label_names_the_objective():
    assert report.objective_label("trials:train_and_evaluate") == "validation error"
    assert report.objective_label("mypkg.mod:loss") == "mypkg.mod:loss"
    assert report.objective_label(None) == "objective"


def test_objective_figure_has_a_title_and_names_the_objective():
    fig = _drawn(report.objective_figure(TRIALS, label="mypkg.mod:loss", title="demo: mypkg.mod:loss per evaluation"))
    ax = fig.axes[0]
    assert ax.get_title() == "demo: mypkg.mod:loss per evaluation"
    assert ax.get_ylabel().startswith("mypkg.mod:loss")
    assert report.objective_figure(TRIALS).axes[0].get_title() == "objective per evaluation"


def test_validation_error_axis_is_in_percent():
    fig = _drawn(report.objective_figure(TRIALS, label="validation error"))
    ax = fig.axes[0]
    assert "validation error (%)" in ax.get_ylabel() and "validation error" in ax.get_title()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels and all(t.endswith("%") for t in labels)
    assert "40%" in labels or "40.0%" in labels  # 0.4 is an objective value, shown as 40 %


@pytest.mark.parametrize(
    "trials,text",
    [
        ([], "no trial yet"),
        ([_row(1, 0, "running"), _row(1, 1, "pending")], "no finished trial yet"),
        ([_row(1, 0, "failed"), _row(1, 1, "running")], "1 trial failed, none done yet"),
        ([_row(1, 0, "failed"), _row(1, 1, "failed"), _row(1, 2, "failed")], "all 3 trials failed"),
    ],
    ids=["empty", "running", "failed-so-far", "all-failed"],
)
def test_plot_without_success_says_why(trials, text):
    assert report.no_success_text(trials).startswith(text)
    fig = report.objective_figure(trials)
    shown = [t.get_text() for t in fig.axes[0].texts]
    assert len(shown) == 1 and shown[0].startswith(text)
    if text.startswith("all"):
        assert "trials.csv" in shown[0] and "esopt status" in shown[0]


@pytest.mark.parametrize(
    "sigmas", [[0.3, 0.25, 0.22, 0.2, 0.19], [0.3, 0.1, 0.03, 0.005, 0.001], [0.27]], ids=["narrow", "wide", "one"]
)
def test_sigma_ticks_are_plain_decimals(sigmas):
    gens = [{"generation": g + 1, "sigma": s} for g, s in enumerate(sigmas)]
    fig = _drawn(report.sigma_figure(gens))
    ax = fig.axes[0]
    labels = _visible_tick_labels(ax.yaxis)
    assert len(labels) >= 2, labels
    for text in labels:  # "0.2", "0.05", "1e-05": no mathtext such as "2x10^-1"
        assert re.fullmatch(r"\d+(\.\d+)?(e-\d+)?", text), text
    assert ax.get_title() == "step size per generation"
    xlabels = _visible_tick_labels(ax.xaxis)
    assert all(float(x).is_integer() for x in xlabels) and xlabels  # generations are whole numbers


def test_sigma_figure_marks_restarts():
    gens = [{"generation": g, "sigma": s} for g, s in [(1, 0.3), (2, 0.01), (3, 0.3), (4, 0.2)]]
    ax = report.sigma_figure(gens, restarts=[2]).axes[0]
    marks = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [2.5, 2.5]  # between generations 2 and 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["restart (IPOP)"]
    assert report.sigma_figure(gens).axes[0].get_legend() is None


def _mean_line(ax):
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "sampling mean"]
    return line


def test_params_mean_line_stops_at_the_last_sampled_generation():
    # the open generation 2 was sampled around the mean told after generation 1: drawn; nothing after it
    fig = report.params_figure(TRIALS, GENERATIONS, SPACE)
    for ax in fig.axes:
        assert list(_mean_line(ax).get_xdata()) == [1, 2]
    # a finished campaign: generation 2 told too; its mean (for a generation 3 never asked) is not drawn
    told = [{**GENERATIONS[0]}, {**GENERATIONS[1], "mean": [0.2, 0.8], "told_at": 2.0}]
    finished = [t for t in TRIALS if t["status"] != "running"]
    assert [g for g, _ in report.sampling_means(told, SPACE)] == [1, 2, 3]
    for ax in report.params_figure(finished, told, SPACE).axes:
        assert max(_mean_line(ax).get_xdata()) == 2
        assert ax.get_xlim()[1] < 3


def test_params_figure_has_one_legend_naming_every_series():
    fig = report.params_figure(TRIALS, GENERATIONS, SPACE, title="demo")
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert set(labels) == {"sampled (done)", "failed", "running", "sampling mean", "best"}
    assert fig.get_suptitle() == "demo"


def test_trials_csv_times_are_iso_8601_utc(tmp_path):
    from datetime import datetime, timezone

    path = report.write_trials_csv(TRIALS, SPACE.names, tmp_path / "trials.csv")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        g = int(r["generation"])
        started, finished = datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["finished_at"])
        assert started.utcoffset() == timezone.utc.utcoffset(None)
        assert started.timestamp() == 100.0 + g and finished.timestamp() == 101.0 + g
    assert rows[0]["started_at"] == "1970-01-01T00:01:41.000+00:00"  # 101 s after the epoch


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


# ------------------------------------------------------------------------------- categoricals (issue 15)
MIXED = Space({**SPACE.to_dict(), "opt": {"choices": ["adamw", "sgdw", "radam"]}}, mixed=True)
MIXED_OPTS = {(1, 0): "sgdw", (1, 1): "adamw", (1, 2): "sgdw", (2, 0): "radam", (2, 1): "radam", (2, 2): "sgdw"}
MIXED_GENERATIONS = [  # generation 2 was sampled around the int's mean 30, past its bounds: drawn clipped to 20
    {**GENERATIONS[0], "mean": [0.5, 30.0, 1.0]},
    {**GENERATIONS[1], "mean": [1.7, 12.0, 2.0]},
]


def _with_opt(t: TrialRow) -> TrialRow:
    return dataclasses.replace(t, params={**t.params, "opt": MIXED_OPTS[t.generation, t.idx]}, x=[0.5, 3.0, 0.0])


def test_params_figure_shows_a_categoricals_frequencies_per_generation(tmp_path):
    rows = [_with_opt(t) for t in TRIALS]
    fig = report.params_figure(rows, MIXED_GENERATIONS, MIXED)
    lr_ax, t0_ax, opt_ax = fig.axes[:3]
    # numeric panels as before; x0's centre 10.5 rounds half to even, the mean 30 is clipped into [1, 20]
    assert list(_mean_line(t0_ax).get_ydata()) == [10, 20]
    # one stacked bar per generation and choice: the fraction of that generation's trials (any status)
    heights = {c: [p.get_height() for p in box.patches] for box, c in zip(opt_ax.containers, MIXED.params[2].choices)}
    assert heights == {
        "adamw": pytest.approx([1 / 3, 0.0]),
        "sgdw": pytest.approx([2 / 3, 1 / 3]),
        "radam": pytest.approx([0.0, 2 / 3]),
    }
    bottoms = [p.get_y() for p in opt_ax.containers[2].patches]  # radam stacked on adamw + sgdw
    assert bottoms == pytest.approx([1.0, 1 / 3])
    assert [t.get_text() for t in opt_ax.get_legend().get_texts()] == ["adamw", "sgdw", "radam"]
    best = [ln for ln in opt_ax.get_lines() if ln.get_label() == "best"]
    assert len(best) == 1 and list(best[0].get_xdata()) == [2]  # best trial (2, 1) drew radam
    assert "sampling mean" not in [ln.get_label() for ln in opt_ax.get_lines()]
    assert png_size(report.plot_params(rows, MIXED_GENERATIONS, MIXED, tmp_path / "p.png")) == (800, 780)
    # trials.csv: the choice itself, by name
    path = report.write_trials_csv(rows, MIXED.names, tmp_path / "t.csv")
    with open(path) as fh:
        table = list(csv.DictReader(fh))
    assert [(int(r["generation"]), int(r["idx"]), r["opt"]) for r in table] == sorted(
        (g, i, o) for (g, i), o in MIXED_OPTS.items()
    )


def test_space_of_a_mixed_raw_config():
    raw = {"space": MIXED.to_dict(), "strategy": {"name": "catcmawm"}}
    assert report.space_of(raw) == MIXED and report.space_of({"space": MIXED.to_dict()}) == MIXED
    assert report.space_of({"space": SPACE.to_dict(), "strategy": {"name": "cmaes"}}) == SPACE


def test_a_trials_csv_with_a_null_choice_replays_in_the_simulator(tmp_path):
    """``esopt simulate --durations`` reads the null choice back as None (it skipped such rows)."""
    from cluster.simulate import DurationTable

    space = Space(
        {"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}, "depth": {"choices": [None, 3, 5]}}, mixed=True
    )
    rows_in = [
        _row(1, i, "done", 0.1 * (i + 1), params={"lr": 10.0 ** -(i + 1), "depth": d}, result={"wall_time_s": 2.0 + i})
        for i, d in enumerate([None, 3, 5])
    ]
    path = report.write_trials_csv(rows_in, space.names, tmp_path / "trials.csv")
    table = DurationTable(path, space)
    assert table.X.tolist() == [space.encode(r.params).tolist() for r in rows_in]  # all three rows, None included
    assert table.lookup(space.encode({"lr": 0.1, "depth": None})) == (0.1, 1.0)  # duration_s: finished - started
