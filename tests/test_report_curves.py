"""curves.png, stopped trials in the report and the resource accounting of esopt status, from a real
journal (cluster.store.Journal) that an ASHA-driven campaign-shaped writer filled."""

from __future__ import annotations

import csv
import struct

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from cluster import report
from cluster.config import parse_config
from cluster.fidelity import ASHA
from cluster.fidelityreport import (
    curve_data,
    curves_figure,
    fidelity_status_lines,
    resource_summary,
    rung_correlations,
    spearman,
)
from cluster.status import TrialStatus
from cluster.store import Journal

CONFIG = {
    "name": "curves",
    "objective": "trials:train_and_evaluate",
    "trial": {"epochs": 9, "device": "cpu"},
    "space": {"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}},
    "strategy": {"name": "cmaes", "popsize": 6},
    "fidelity": {"min": 1, "eta": 3},
    "budget": {"max_resource": 200},
}
# per trial: the asymptote its curve decays to (value at step s: q + 0.5 / s), in trial order
QUALITY = [0.10, 0.40, 0.05, 0.50, 0.30, 0.45]


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def campaign(tmp_path):
    """A journal as a fidelity campaign writes it: trials run one after another, each report
    journaled before ASHA's decision; the last trial fails at step 2, one is still running."""
    cfg = parse_config(CONFIG, check_objective=False)
    j = Journal.create(tmp_path / "run", name="curves", config=cfg.raw)
    asha = ASHA.from_config(cfg.fidelity)
    ids = j.add_generation(1, [[0.1 * i] for i in range(7)], [{"lr": 10.0 ** -(i + 1)} for i in range(7)])
    j.mark_submitted(ids)
    for tid, q in zip(ids, QUALITY):
        for step in range(1, 10):
            v = q + 0.5 / step
            j.add_report(tid, step, v, rung=asha.rung_of(step))
            if not asha.on_report(tid, step, v):
                j.finish_trial(tid, status=TrialStatus.STOPPED, objective=v)
                break
        else:
            j.finish_trial(tid, status="done", objective=v)
    j.add_report(ids[6], 1, 0.2, rung=0)
    j.add_report(ids[6], 2, 0.19)
    j.close()
    return tmp_path / "run", ids, asha


def test_status_lines_and_resource_summary_count_stopped_trials_and_savings(campaign):
    directory, ids, asha = campaign
    with Journal(directory, readonly=True) as j:
        trials, cfg = j.trials(), j.campaign_config()
    status = {t.id: t.status for t in trials}
    # ASHA with eta 3 on these curves: 1st goes on, 2nd (0.9 > 0.6) stops at 1, 3rd goes on (best), 4th stops,
    # 5th (0.8 vs percentile 33 of [0.6, 0.9, 0.55, 1.0]) stops at 1 too, 6th stops at 1
    assert [status[i] for i in ids[:6]] == ["done", "stopped", "done", "stopped", "stopped", "stopped"]
    assert [t.rung for t in trials[:6]] == [2, 0, 2, 0, 0, 0] and trials[1].resource == 1.0
    s = resource_summary(trials, cfg.fidelity.rungs)
    assert s["n_stopped"] == 4 and s["stopped_at"] == {1: 4} and s["n_full"] == 2
    assert s["used"] == 9 + 1 + 9 + 1 + 1 + 1 and s["full"] == 9 * 6 and s["saved"] == 54 - 22
    assert s["saved_fraction"] == pytest.approx(32 / 54) and s["running_used"] == 2
    assert s["saved"] == asha.resource_saved  # the live accounting agrees with the journal's
    lines = fidelity_status_lines(trials, cfg.fidelity, max_resource=cfg.budget.max_resource)
    assert lines == [
        "fidelity: rungs 1, 3, 9 epochs (eta 3); 2 trials reached 9 epochs, 4 stopped (at 1: 4)",
        "resource: 22 epochs used by finished trials, 32 saved (59% of 54 at the full budget); "
        "2 by running trials; 24 of budget 200",
    ]
    assert fidelity_status_lines(trials, None) == []


def test_curves_figure_draws_each_trial_with_its_status_colour_and_the_rungs(campaign):
    directory, ids, _ = campaign
    with Journal(directory, readonly=True) as j:
        trials, reports = j.trials(), j.reports()
    data = curve_data(reports)
    assert list(data[ids[0]][0]) == list(range(1, 10)) and list(data[ids[1]][0]) == [1]
    np.testing.assert_allclose(data[ids[0]][1], [0.1 + 0.5 / s for s in range(1, 10)])
    fig = curves_figure(reports, trials, [1, 3, 9], label="validation error", resource="epochs")
    ax = fig.axes[0]
    curves = [ln for ln in ax.lines if ln.get_linestyle() != "--"]
    rung_lines = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert sorted(float(ln.get_xdata()[0]) for ln in rung_lines) == [1.0, 3.0, 9.0]
    expected = {"done": "C0", "stopped": "0.65", "running": "C1"}
    kinds = ["done", "stopped", "done", "stopped", "stopped", "stopped", "running"]
    assert [to_rgba(ln.get_color())[:3] for ln in curves] == [to_rgba(expected[k])[:3] for k in kinds]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["full budget (2)", "stopped (4)", "running (1)", "rungs"]
    assert ax.get_xlabel() == "epochs"


def test_write_report_adds_curves_png_and_stopped_trials_to_the_table_and_objective(campaign):
    directory, ids, _ = campaign
    files = report.write_report(directory)
    assert set(files) == set(report.REPORT_FILES) | {"curves.png"}
    assert _png_size(files["curves.png"]) == (800, 450)
    with files["trials.csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["done", "stopped", "done", "stopped", "stopped", "stopped", "running"]
    assert [r["rung"] for r in rows] == ["2", "0", "2", "0", "0", "0", "0"]
    assert [r["resource"] for r in rows] == ["9.0", "1.0", "9.0", "1.0", "1.0", "1.0", "2.0"]
    with Journal(directory, readonly=True) as j:
        c = report.objective_curves(j.trials())
    np.testing.assert_array_equal(c["stopped"], [False, True, False, True, True, True])
    np.testing.assert_allclose(c["stopped_value"][c["stopped"]], [0.9, 1.0, 0.8, 0.95])
    assert np.isnan(c["objective"][c["stopped"]]).all()  # never the best: they did not reach max
    np.testing.assert_allclose(c["best"][-1], 0.05 + 0.5 / 9)


def test_a_campaign_without_fidelity_gets_no_curves_png(tmp_path):
    cfg = parse_config({k: v for k, v in CONFIG.items() if k not in ("fidelity", "budget")}, check_objective=False)
    with Journal.create(tmp_path / "plain", name="plain", config=cfg.raw) as j:
        assert j.reports() == []
    files = report.write_report(tmp_path / "plain")
    assert set(files) == set(report.REPORT_FILES) and not (tmp_path / "plain" / "report" / "curves.png").exists()


def test_spearman_and_the_rung_correlations_of_full_budget_trials(tmp_path):
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(np.corrcoef([0.5, 0.5, 2, 3], [0, 1, 2, 3])[0, 1])
    assert np.isnan(spearman([1, 2], [1, 2])) and np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2, 3], [1, 2])
    # six trials trained to the end: their step-1 order is the reverse of the final one, step 3 keeps it
    cfg = parse_config(CONFIG, check_objective=False)
    j = Journal.create(tmp_path / "full", name="full", config=cfg.raw)
    ids = j.add_generation(1, [[0.1 * i] for i in range(6)], [{"lr": 0.01}] * 6)
    j.mark_submitted(ids)
    for k, tid in enumerate(ids):
        for step in range(1, 10):
            j.add_report(tid, step, (1.0 - 0.1 * k) if step == 1 else 0.1 * k + 0.5 / step)
        j.finish_trial(tid, status="done", objective=0.1 * k + 0.5 / 9)
    trials, reports = j.trials(), j.reports()
    j.close()
    corr = rung_correlations(reports, trials, cfg.fidelity.rungs)
    assert corr == {1: (pytest.approx(-1.0), 6), 3: (pytest.approx(1.0), 6)}
    lines = fidelity_status_lines(trials, cfg.fidelity, reports=reports)
    assert (
        lines[2] == "rank correlation with 9 epochs (Spearman, trials that reached it): at 1: -1.00 (6), at 3: 1.00 (6)"
    )
    assert len(fidelity_status_lines(trials[:4], cfg.fidelity, reports=reports)) == 2  # fewer than 5: no line


def test_a_failed_trial_unused_steps_are_not_counted_as_saved(campaign):
    """A trial that crashed at step 2 used 2 of 9 epochs; its other 7 were not saved by stopping
    (a campaign whose every trial crashed showed "32 saved (89%)")."""
    directory, ids, asha = campaign
    with Journal(directory) as j:
        j.finish_trial(ids[6], status="failed", error="RuntimeError: boom")
        trials, cfg = j.trials(), j.campaign_config()
    s = resource_summary(trials, cfg.fidelity.rungs)
    assert s["used"] == 22 + 2 and s["full"] == 9 * 7 and s["running_used"] == 0
    assert s["saved"] == 32 == asha.resource_saved and s["saved_fraction"] == pytest.approx(32 / 63)
