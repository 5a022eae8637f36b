"""Multi-fidelity campaigns (``fidelity:`` section): reports journaled before each decision, trials
stopped at rungs by asynchronous successive halving, ranked lexicographically for the strategy,
the best counted over full-budget trials only, ``budget.max_resource``, resume with rungs intact.

The driver is the production one; most tests run it on the simulated cluster (reports replayed on
the virtual clock), one on a real local Ray instance.
"""

from __future__ import annotations

from collections import Counter

import helpers_objectives as ho
import numpy as np
import pytest

from cluster import Campaign, Journal, parse_config
from cluster.fidelity import rungs
from cluster.simulate import simulate

CONFIG = {
    "name": "mf",
    "objective": "helpers_objectives:curve_sphere",
    "space": {f"x{i}": {"lower": -1.0, "upper": 1.0} for i in range(4)},
    "strategy": {"name": "cmaes", "popsize": 8, "seed": 1, "sigma0": 0.3},
    "budget": {"max_trials": 96},
    "fidelity": {"min": 1, "max": 9, "eta": 3},
}


def _cfg(**overrides):
    return parse_config({**CONFIG, **overrides})


def _rows(directory):
    with Journal(directory, readonly=True) as j:
        return j.trials(), j.reports(), j.generations()


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_trials_stop_at_rungs_and_rank_below_those_that_went_further(tmp_path, mode):
    res = simulate(_cfg(scheduler={"mode": mode}), tmp_path / "c", workers=8)
    assert res.campaign.status == "done"
    trials, reports, gens = _rows(tmp_path / "c")
    status = Counter(str(t.status) for t in trials)
    assert status["stopped"] > 20 and status["done"] > 0 and status["failed"] == 0
    assert rungs(1, 9, 3) == [1, 3, 9]
    for t in trials:  # a stopped trial ended at a rung below the top, a done one at the top (step 9)
        steps = [s for tid, s, _ in reports if tid == t.id]
        assert steps == list(range(1, len(steps) + 1)) and t.resource == steps[-1]
        if str(t.status) == "stopped":
            assert t.rung in (0, 1) and steps[-1] in (1, 3)
        else:
            assert t.rung == 2 and steps[-1] == 9
    # the best counts only full-budget trials; stopped ones may have lower partial values
    done = [t.objective for t in trials if str(t.status) == "done"]
    assert res.campaign.best_objective == min(done) and res.campaign.best_trial["status"] == "done"
    # in every tell, each stopped trial ranks below every trial of a higher rung
    from esopt import read_state

    for g in range(1, len(gens) + 1):
        told = sorted((t for t in trials if t.told_generation == g), key=lambda t: t.told_pos)
        assert len(told) == 8
    # saved resource: stopped trials did not train to the full budget
    used = sum(t.resource for t in trials)
    assert used < 0.7 * 9 * len(trials)
    with Journal(tmp_path / "c", readonly=True) as j:
        state = read_state(j.state(1))
    first = sorted((t for t in trials if t.told_generation == 1), key=lambda t: t.told_pos)
    f_sorted = np.asarray(state["base.f_sorted"])
    order = sorted(first, key=lambda t: (-t.rung, t.objective))
    assert [t.rung for t in order] == sorted((t.rung for t in first), reverse=True)
    assert np.all(np.diff(f_sorted) >= 0) and f_sorted[-1] > max(t.objective for t in first)


def test_max_resource_stops_the_campaign(tmp_path):
    cfg = _cfg(budget={"max_trials": 1000, "max_resource": 200})
    res = simulate(cfg, tmp_path / "c", workers=8)
    assert res.campaign.status == "done" and "max_resource" in res.campaign.stop
    trials, _, _ = _rows(tmp_path / "c")
    used = sum(t.resource or 0 for t in trials)
    assert 200 <= used < 200 + 8 * 9  # the trials running when it was reached finish


def test_a_bad_report_fails_that_trial_and_the_campaign_goes_on(tmp_path):
    res = simulate(_cfg(objective="helpers_objectives:curve_bad_report"), tmp_path / "c", workers=4)
    assert res.campaign.status == "done"
    trials, _, _ = _rows(tmp_path / "c")
    bad = [t for t in trials if t.params["x0"] > 0]
    assert bad and all(str(t.status) == "failed" and "bad report" in t.error for t in bad)
    assert any(str(t.status) == "done" for t in trials)


class _InterruptAfter:
    def __init__(self, generation):
        self.generation = generation

    def on_generation_end(self, generation, best):
        if generation == self.generation:
            raise KeyboardInterrupt


def test_resume_keeps_the_rungs_and_stopped_trials(tmp_path):
    cfg = _cfg()
    first = simulate(cfg, tmp_path / "c", workers=8, progress=_InterruptAfter(4))
    assert first.campaign.status == "interrupted"
    before, reports_before, _ = _rows(tmp_path / "c")
    stopped = {t.id: (t.rung, t.resource, t.objective) for t in before if str(t.status) == "stopped"}
    assert stopped
    again = simulate(cfg, tmp_path / "c", workers=8, resume=True)
    assert again.campaign.status == "done"
    after, reports_after, _ = _rows(tmp_path / "c")
    by_id = {t.id: t for t in after}
    for tid, (rung, resource, objective) in stopped.items():  # a stopped trial stays stopped, untouched
        t = by_id[tid]
        assert (str(t.status), t.rung, t.resource, t.objective) == ("stopped", rung, resource, objective)
    kept = [r for r in reports_before if by_id[r[0]].id in stopped]
    assert set(kept) <= set(reports_after)
    # every trial reported steps 1, 2, ... exactly once (re-run trials restarted from step 0)
    per_trial = Counter((tid, s) for tid, s, _ in reports_after)
    assert set(per_trial.values()) == {1}


# ------------------------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray_slow(ray_local_factory):
    ray_local_factory(env={ho.SLEEP_ENV: "0.05"}, num_cpus=2)


def test_ray_campaign_stops_trials_and_cancels_one_that_ignores_the_stop(ray_slow, tmp_path):
    cfg = _cfg(budget={"max_trials": 24}, resources={"num_cpus": 0.5})
    res = Campaign(cfg, tmp_path / "c").run()
    assert res.status == "done"
    trials, reports, _ = _rows(tmp_path / "c")
    assert Counter(str(t.status) for t in trials)["stopped"] > 5
    with Journal(tmp_path / "c", readonly=True) as j:
        at = {(tid, s): when for tid, s, when in j.conn.execute("SELECT trial_id, step, reported_at FROM reports")}
    for t in trials:  # each report was journaled before the trial's end was
        last = max(s for tid, s in at if tid == t.id)
        assert at[(t.id, last)] <= t.finished_at
    ign = _cfg(objective="helpers_objectives:curve_ignoring_stop", budget={"max_trials": 16})
    res = Campaign(ign, tmp_path / "i").run()
    assert res.status == "done"
    trials, reports, _ = _rows(tmp_path / "i")
    cancelled = [t for t in trials if t.error == "cancelled: ignored the stop"]
    assert cancelled and all(str(t.status) == "stopped" for t in cancelled)
    for t in cancelled:  # cancelled a few reports after its stop, well before step 9
        assert t.resource < 9


def test_ray_trial_stopped_at_a_rung_trains_no_step_past_it(ray_slow, tmp_path):
    # the trial waits at each rung (steps 1 and 3) for the driver's decision: a stopped trial
    # returns from the rung's report, not a report or two later (which cost 2-3x the resource of
    # a trial stopped at the first rung before the wait was added)
    cfg = _cfg(objective="helpers_objectives:curve_counting_steps", budget={"max_trials": 16})
    res = Campaign(cfg, tmp_path / "c").run()
    assert res.status == "done"
    trials, reports, _ = _rows(tmp_path / "c")
    stopped = [t for t in trials if str(t.status) == "stopped"]
    assert len(stopped) >= 4
    for t in stopped:
        assert t.result["steps_run"] == rungs(1, 9, 3)[t.rung] == t.resource
    assert all(t.result["steps_run"] == 9 for t in trials if str(t.status) == "done")


def test_ray_stop_board_decides_each_attempt_of_a_trial_apart(ray_slow):
    # a trial resubmitted after its worker died is decided afresh: the stop of attempt 1 does not
    # stop attempt 2 at its first report (the driver's ASHA has forgotten attempt 1)
    import ray

    from cluster.executor import _StopBoard

    board = ray.remote(num_cpus=0)(_StopBoard).remote()
    ray.get(board.decide.remote(7, 1, True))
    ray.get(board.decide.remote(7, 1, False))
    assert ray.get(board.decision.remote(7, 1, 1, 1.0)) is False  # attempt 1 is stopped
    assert ray.get(board.is_stopped.remote(7, 1)) and not ray.get(board.is_stopped.remote(7, 2))
    assert ray.get(board.decision.remote(7, 2, 1, 0.2)) is None  # attempt 2: not decided yet
    ray.get(board.decide.remote(7, 2, True))
    assert ray.get(board.decision.remote(7, 2, 1, 1.0)) is True
