"""cluster.fidelity: rungs, the ASHA stopping rule (checked against Ray Tune's own _Bracket), its
rebuild from a real journal, the (rung, value) ranking and the resource accounting."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

import trials
from cluster.config import parse_config
from cluster.fidelity import ASHA, FidelityError, accepts_report, lexicographic_fitness, rank_fitness, rungs
from cluster.status import TrialStatus
from cluster.store import Journal


# ------------------------------------------------------------------------------------------- rungs
@pytest.mark.parametrize(
    "args,expected",
    [
        ((1, 16, 3), [1, 3, 9, 16]),
        ((1, 9, 3), [1, 3, 9]),
        ((2, 16, 2), [2, 4, 8, 16]),
        ((1, 2, 3), [1, 2]),
        ((1, 27, 3), [1, 3, 9, 27]),
        ((3, 20, 4.0), [3, 12, 20]),
    ],
)
def test_rungs_are_min_times_powers_of_eta_below_max_then_max(args, expected):
    assert rungs(*args) == expected
    assert all(isinstance(r, int) for r in rungs(*args))


@pytest.mark.parametrize(
    "args,match",
    [
        ((16, 16, 3), "min must be < max"),
        ((20, 16, 3), "min must be < max"),
        ((0, 16, 3), "min must be >= 1"),
        ((1, 16, 1), "eta must be a number > 1"),
        ((1, 16, 0.5), "eta must be a number > 1"),
        ((1, 16, float("nan")), "eta must be a number > 1"),
        ((1.5, 16, 3), "min must be an integer"),
        ((1, 16.5, 3), "max must be an integer"),
        ((4, 100, 1.5), r"rung 3 is min \* eta\*\*3 = 13.5, not an integer"),
        ((True, 16, 3), "min must be an integer"),
    ],
)
def test_bad_rungs_raise_saying_what(args, match):
    with pytest.raises(ValueError, match=match):
        rungs(*args)
    with pytest.raises(ValueError, match=match):
        ASHA(*args)


# --------------------------------------------------------------------------------- the stop rule
def test_first_trial_at_a_rung_goes_on_then_the_best_third_of_those_before():
    a = ASHA(1, 16, 3)
    assert a.on_report(1, 1, 0.5)  # nobody recorded at rung 0 yet
    assert not a.on_report(2, 1, 0.6)  # cutoff = percentile([0.5], 33.3) = 0.5
    assert a.on_report(3, 1, 0.5)  # ties go on (Ray: reward >= cutoff)
    assert a.on_report(4, 1, 0.1)
    # recorded at rung 0: 0.5, 0.6, 0.5, 0.1 -> percentile 33.3 = 0.5 (linear interpolation)
    assert np.percentile([0.5, 0.6, 0.5, 0.1], 100 / 3) == pytest.approx(0.5)
    assert not a.on_report(5, 1, 0.51)
    assert a.recorded(0) == {1: 0.5, 2: 0.6, 3: 0.5, 4: 0.1, 5: 0.51}
    assert a.is_stopped(2) and a.is_stopped(5) and not a.is_stopped(1)
    assert a.on_report(1, 2, 0.45)  # between rungs: nothing recorded, goes on
    assert a.level(1) == (0, 0.5)
    assert a.on_report(1, 3, 0.4) and a.level(1) == (1, 0.4)  # first at rung 1 (step 3)


def test_a_report_jumping_rungs_is_recorded_at_the_highest_only_and_max_always_completes():
    a = ASHA(1, 16, 3)
    for t, v in enumerate([0.1, 0.2, 0.3]):
        assert a.on_report(t, 9, v) is (t == 0)  # 0.2 > percentile([0.1]) etc.
    assert a.recorded(0) == {} and a.recorded(1) == {} and set(a.recorded(2)) == {0, 1, 2}
    assert a.on_report(0, 16, 0.05) and a.on_report(9, 16, 0.9)  # at max the trial is complete: never stopped
    assert a.reached_max(9) and a.reached_max(0) and not a.reached_max(1)
    assert a.level(9) == (3, 0.9)


def test_stopped_trials_late_reports_count_as_resource_but_are_not_recorded():
    a = ASHA(1, 16, 3)
    a.on_report(1, 1, 0.1)
    assert not a.on_report(2, 1, 0.9)
    assert not a.on_report(2, 2, 0.8) and not a.on_report(2, 3, 0.01)  # the decision arrived late
    assert 2 not in a.recorded(1) and a.level(2) == (0, 0.9)
    assert a.resource_used == 1 + 3
    assert a.resource_saved == 16 - 3 and a.n_stopped == 1


class _RayTrial(SimpleNamespace):
    """What Ray's ``_Bracket.on_result`` reads of a trial: its ``trial_id``."""


def test_decisions_match_ray_tunes_asha_bracket_under_random_interleaving():
    """Ray Tune's own ``_Bracket`` (ray 2.60, one bracket, rewards = -values) on the same reports."""
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.schedulers.async_hyperband import _Bracket

    for seed, (r_min, r_max, eta) in enumerate([(1, 16, 3), (1, 16, 4), (2, 32, 2), (1, 27, 3)]):
        rng = np.random.default_rng(seed)
        ray_bracket, ours = _Bracket(r_min, r_max, eta, 0), ASHA(r_min, r_max, eta)
        n = 60
        quality = rng.normal(size=n)  # per trial; curves decay towards it with noise
        step = np.zeros(n, dtype=int)
        running = set(range(n))
        stops = 0
        while running:
            t = int(rng.choice(sorted(running)))
            step[t] += int(rng.integers(1, 3))  # sometimes skips a step (and so may jump a rung)
            s = int(min(step[t], r_max))
            value = float(quality[t] + 2.0 / s + 0.3 * rng.normal())
            go = ours.on_report(t, s, value)
            if s >= r_max:
                running.discard(t)
                continue
            ray_go = ray_bracket.on_result(_RayTrial(trial_id=t), s, -value) != TrialScheduler.STOP
            assert go == ray_go, (seed, t, s)
            if not go:
                running.discard(t)
                stops += 1
        assert 0 < stops < n  # the comparison exercised both decisions


# ------------------------------------------------------------------------------------- bad reports
@pytest.mark.parametrize(
    "step,value,match",
    [
        (3, 0.1, "after step 3: steps must increase"),
        (2, 0.1, "after step 3: steps must increase"),
        (0, 0.1, "positive integers"),
        (4.5, 0.1, "positive integers"),
        (True, 0.1, "positive integers"),
        ("5", 0.1, "positive integers"),
        (17, 0.1, "beyond fidelity.max = 16"),
        (5, float("nan"), "values must be finite"),
        (5, float("inf"), "values must be finite"),
        (5, None, "values must be finite"),
        (5, "0.1", "values must be finite"),
    ],
)
def test_bad_reports_raise_fidelity_error_before_any_state_changes(step, value, match):
    a = ASHA(1, 16, 3)
    a.on_report(0, 1, 0.2)
    a.on_report(7, 3, 0.3)
    before = ([a.recorded(k) for k in range(len(a.rungs))], a.resource_used, a.level(7))
    with pytest.raises(FidelityError, match=match):
        a.on_report(7, step, value)
    assert isinstance(FidelityError("x"), ValueError)  # the driver turns it into a failed trial
    assert ([a.recorded(k) for k in range(len(a.rungs))], a.resource_used, a.level(7)) == before
    assert a.on_report(7, 4.0, np.float64(0.25))  # integral floats and numpy values are fine


# -------------------------------------------------------------------------------------- rebuilding
def _random_reports(seed: int, asha: ASHA, n: int = 30) -> list[tuple[int, int, float]]:
    rng = np.random.default_rng(seed)
    step = {t: 0 for t in range(n)}
    out = []
    while step:
        t = int(rng.choice(sorted(step)))
        step[t] += 1
        v = float(rng.normal() + 1.0 / step[t])
        out.append((t, step[t], v))
        if not asha.on_report(t, step[t], v) or step[t] == asha.r_max:
            del step[t]
    return out


def _state(a: ASHA):
    return (
        [a.recorded(k) for k in range(len(a.rungs))],
        a.resource_used,
        a.resource_saved,
        sorted(t for t in range(100) if a.is_stopped(t)),
    )


def test_from_reports_replays_to_the_live_state_and_forget_drops_a_trial():
    live = ASHA(1, 16, 3)
    reports = _random_reports(3, live)
    assert _state(ASHA.from_reports(1, 16, 3, reports)) == _state(live)
    stopped = {t: live.level(t)[0] for t in range(30) if live.is_stopped(t)}
    assert stopped  # some were stopped
    assert _state(ASHA.from_reports(1, 16, 3, reports, stopped=stopped)) == _state(live)
    t = next(iter(stopped))
    live.forget(t)
    assert all(t not in live.recorded(k) for k in range(4)) and not live.is_stopped(t)
    assert live.on_report(t, 1, -100.0)  # it starts again from step 0


def test_window_compares_with_the_last_values_recorded_at_the_rung_only():
    reports = [(1, 1, 0.1), (2, 1, 0.2), (3, 1, 0.8), (4, 1, 0.9)]
    plain, windowed = ASHA.from_reports(1, 16, 3, reports), ASHA.from_reports(1, 16, 3, reports, window=2)
    # all four: the 1/3 quantile is 0.2 and 0.5 stops; the last two (0.8, 0.9): 0.833, and 0.5 goes on
    assert not plain.on_report(5, 1, 0.5) and windowed.on_report(5, 1, 0.5)
    assert windowed.recorded(0) == {1: 0.1, 2: 0.2, 3: 0.8, 4: 0.9, 5: 0.5}  # every value is kept
    assert not windowed.on_report(6, 1, 0.85)  # last two now 0.9, 0.5: cutoff 0.633
    assert ASHA(1, 16, 3, window=100).rungs == ASHA(1, 16, 3).rungs
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="window must be an integer >= 1"):
            ASHA(1, 16, 3, window=bad)


def test_from_reports_with_a_window_replays_to_the_live_state():
    live = ASHA(1, 16, 3, window=4)
    reports = _random_reports(5, live)
    assert _state(ASHA.from_reports(1, 16, 3, reports, window=4)) == _state(live)
    stopped = {t: live.level(t)[0] for t in range(30) if live.is_stopped(t)}
    assert _state(ASHA.from_reports(1, 16, 3, reports, stopped=stopped, window=4)) == _state(live)
    assert _state(ASHA.from_reports(1, 16, 3, reports)) != _state(live)  # the window changed decisions


def test_from_reports_with_the_journals_stops_ignores_late_reports_and_recomputes_nothing():
    reports = [(1, 1, 0.1), (2, 1, 0.9), (2, 3, 0.05), (3, 1, 0.95)]  # trial 2's step 3: after its stop
    a = ASHA.from_reports(1, 16, 3, reports, stopped={2: 0})
    assert a.recorded(0) == {1: 0.1, 2: 0.9, 3: 0.95} and a.recorded(1) == {}
    assert a.is_stopped(2) and not a.is_stopped(3)  # 3 would be stopped by the rule; the journal says not
    assert a.resource_used == 1 + 3 + 1


def _fidelity_journal(tmp_path, n: int, **fidelity) -> tuple[Journal, list[int]]:
    cfg = parse_config(
        {
            "name": "fid",
            "objective": "trials:train_and_evaluate",
            "trial": {"epochs": 16, "device": "cpu"},
            "space": {"lr": {"lower": 1e-4, "upper": 0.1, "scale": "log10"}},
            "fidelity": {"min": 1, "eta": 3, **fidelity},
        },
        check_objective=False,
    )
    j = Journal.create(tmp_path / "run", name="fid", config=cfg.raw)
    ids = j.add_generation(1, [[0.5]] * n, [{"lr": 0.01}] * n)
    j.mark_submitted(ids)
    return j, ids


def test_from_journal_takes_the_window_of_the_stored_config(tmp_path):
    j, ids = _fidelity_journal(tmp_path, 5, window=2)
    live = ASHA.from_config(j.campaign_config().fidelity)
    assert live.window == 2
    for i, v in enumerate([0.1, 0.2, 0.8, 0.9]):
        j.add_report(ids[i], 1, v, rung=0)
        assert live.on_report(ids[i], 1, v) == (i == 0)  # each later one is above the cutoff
        if i:
            j.finish_trial(ids[i], status=TrialStatus.STOPPED, objective=v)
    j.finish_trial(ids[0], status="failed", error="exception: RuntimeError: boom")  # finished: its report stays
    j.close()
    with Journal(tmp_path / "run") as j:
        rebuilt = ASHA.from_journal(j)
    assert rebuilt.window == 2 and rebuilt.recorded(0) == live.recorded(0)
    assert rebuilt.on_report(ids[4], 1, 0.5)  # against (0.8, 0.9) only; all four would stop it


def test_from_journal_keeps_rungs_and_stops_and_leaves_out_trials_that_restart(tmp_path):
    j, ids = _fidelity_journal(tmp_path, 4)
    live = ASHA.from_config(j.campaign_config().fidelity)
    assert live.rungs == [1, 3, 9, 16]
    plan = [(0, 1, 0.2), (1, 1, 0.8), (2, 1, 0.1), (0, 2, 0.15), (0, 3, 0.12), (3, 1, 0.15), (2, 3, 0.09)]
    for i, step, v in plan:
        j.add_report(ids[i], step, v, rung=live.rung_of(step))  # journaled before the decision
        if not live.on_report(ids[i], step, v):
            j.finish_trial(ids[i], status=TrialStatus.STOPPED, objective=v)
    assert live.is_stopped(ids[1]) and not live.is_stopped(ids[3])
    j.finish_trial(ids[2], status="failed", error="exception: RuntimeError: boom")
    # ids[0] and ids[3] are still running: a resume restarts them from step 0
    assert j.reports(ids[0]) == [(ids[0], 1, 0.2), (ids[0], 2, 0.15), (ids[0], 3, 0.12)]
    assert j.trial(ids[0]).rung == 1 and j.trial(ids[0]).resource == 3.0 and j.trial(ids[1]).rung == 0
    j.close()

    j = Journal(tmp_path / "run")
    rebuilt = ASHA.from_journal(j)
    assert rebuilt.recorded(0) == {ids[1]: 0.8, ids[2]: 0.1} and rebuilt.recorded(1) == {ids[2]: 0.09}
    assert rebuilt.is_stopped(ids[1]) and rebuilt.resource_used == 1 + 3
    with pytest.raises(ValueError, match=r"reset_reports"):
        j.add_report(ids[0], 1, 0.3)  # a restarted trial reports step 1 again
    assert j.reset_reports(ids[0]) == 3
    assert j.reports(ids[0]) == [] and j.trial(ids[0]).rung is None and j.trial(ids[0]).resource is None
    j.add_report(ids[0], 1, 0.3, rung=0)
    assert j.reports()[-1] == (ids[0], 1, 0.3)
    j.close()


@pytest.mark.parametrize(
    "args,match",
    [
        ((0, 0.1), "step must be an integer >= 1"),
        ((1.5, 0.1), "step must be an integer >= 1"),
        ((1, float("nan")), "value must be a finite number"),
        ((1, 0.1, -1), "rung must be None or an integer >= 0"),
    ],
)
def test_add_report_refuses_bad_rows_and_writes_nothing(tmp_path, args, match):
    j, ids = _fidelity_journal(tmp_path, 1)
    step, value, *rung = args
    with pytest.raises(ValueError, match=match):
        j.add_report(ids[0], step, value, rung=rung[0] if rung else None)
    with pytest.raises(ValueError, match="no trial 999"):
        j.add_report(999, 1, 0.1)
    assert j.reports() == [] and j.trial(ids[0]).resource is None
    j.close()


def test_from_journal_without_fidelity_says_so(tmp_path):
    cfg = parse_config(
        {"name": "plain", "objective": "m:f", "space": {"x": {"lower": 0.0, "upper": 1.0}}}, check_objective=False
    )
    with Journal.create(tmp_path / "run", name="plain", config=cfg.raw) as j:
        with pytest.raises(ValueError, match="no fidelity section"):
            ASHA.from_journal(j)


# ---------------------------------------------------------------------------------------- ranking
def test_rank_fitness_orders_by_rung_then_value_and_keeps_failures_nan():
    f = rank_fitness([3, 0, 1, 0, None, 3, 1], [0.30, 0.05, 0.20, 0.50, 0.01, 0.25, None])
    order = [int(i) for i in np.argsort(f[np.isfinite(f)])]
    finite_ids = [i for i in range(7) if np.isfinite(f[i])]
    assert [finite_ids[i] for i in order] == [5, 0, 2, 1, 3, 4]  # max rung, then rung 1, rung 0, no rung
    assert math.isnan(f[6])
    assert f[0] == 0.30 and f[5] == 0.25  # the trials at the top rung keep their own values
    np.testing.assert_array_equal(
        f, lexicographic_fitness([3, 0, 1, 0, -1, 3, 1], [0.3, 0.05, 0.2, 0.5, 0.01, 0.25, None])
    )
    with pytest.raises(ValueError, match="rung indices must be integers"):
        rank_fitness([0.5], [0.1])


def test_asha_fitness_ranks_stopped_trials_below_the_ones_that_went_further():
    a = ASHA(1, 9, 3)
    a.on_report(1, 1, 0.5)
    a.on_report(1, 3, 0.4)
    a.on_report(1, 9, 0.3)  # trial 1 complete
    assert not a.on_report(2, 1, 0.6)  # stopped at rung 0 (0.6 > 0.5)
    a.on_report(3, 1, 0.2)
    assert not a.on_report(3, 3, 0.45)  # stopped at rung 1 (0.45 > 0.4)
    f = a.fitness([1, 2, 3, 4], [0.29, 0.6, 0.45, None])  # 4 failed before any rung
    assert f[0] == 0.29  # at max: its objective
    assert f[0] < f[2] < f[1] and math.isnan(f[3])
    with pytest.raises(ValueError, match="4 trial ids but 1 objectives"):
        a.fitness([1, 2, 3, 4], [0.1])


# ----------------------------------------------------------------------------- accepts_report
def _plain(params):
    return 0.0


def _keyword(params, report=None):
    return 0.0


def _keyword_only(params, *, report):
    return 0.0


def _positional_only(params, report, /):
    return 0.0


def _kwargs(params, **kwargs):
    return 0.0


@pytest.mark.parametrize(
    "fn,expected",
    [
        (_plain, False),
        (_keyword, True),
        (_keyword_only, True),
        (_positional_only, False),
        (_kwargs, False),
        (len, False),
        (trials.train_and_evaluate, True),
    ],
)
def test_accepts_report_reads_the_signature(fn, expected):
    assert accepts_report(fn) is expected
