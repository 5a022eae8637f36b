"""bench/async_scheduling.py measures what it says: its journal-based utilization agrees with the
simulator's own count, and its objectives' durations are deterministic and log-normal as documented.

The benchmark's numbers themselves are not asserted here (speed claims live in bench/results/).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers_bench import load_bench


def _load(name: str):
    return load_bench(name, name)  # async_scheduling pins the thread variables on import: restored


def test_lognormal_duration_is_deterministic_with_the_documented_median():
    ao = _load("async_objectives")
    d = np.array([ao.lognormal_duration({"a": i, "b": 0.5}, 0.35) for i in range(4000)])
    assert ao.lognormal_duration({"b": 0.5, "a": 3}, 0.35) == d[3]  # key order does not matter
    assert np.median(d) == pytest.approx(0.35, rel=0.05)
    assert np.std(np.log(d)) == pytest.approx(ao.SLEEP_LOG_SD, rel=0.05)
    with pytest.raises(ValueError, match="median_s"):
        ao.lognormal_duration({"a": 1}, 0.0)


def test_replay_returns_a_recorded_trial_and_sleeps_its_scaled_time(monkeypatch):
    ao = _load("async_objectives")
    monkeypatch.setenv(ao.REPLAY_SCALE_ENV, "0.001")
    space, table = ao._replay_table()
    i = 17
    params = space.decode(table.X[i])
    out = ao.digits_replay(params)
    f, seconds = table.lookup(table.X[i])
    assert out == {"objective": f, "duration_s": seconds * 0.001}
    monkeypatch.setenv(ao.REPLAY_SCALE_ENV, "-1")
    with pytest.raises(ValueError, match=ao.REPLAY_SCALE_ENV):
        ao.replay_scale()


def test_timed_rotated_ellipsoid_has_its_optimum_at_zero():
    ao = _load("async_objectives")
    zero = {f"x{i}": 0.0 for i in range(ao.ELLIPSOID_DIM)}
    one = {f"x{i}": 1.0 for i in range(ao.ELLIPSOID_DIM)}
    assert ao.timed_rotated_ellipsoid(zero)["objective"] == 0.0
    assert ao.timed_rotated_ellipsoid(one)["objective"] > 1.0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_journal_utilization_matches_the_simulators_count(tmp_path, mode):
    bench = _load("async_scheduling")
    from cluster.simulate import simulate

    cfg = bench._parse(bench.sim_config(4, 64, 8, mode, 0))
    res = simulate(cfg, tmp_path / mode, workers=8)
    st = bench.journal_stats(tmp_path / mode, 8)
    assert st["n"] == res.n_trials == 64
    assert st["wall_s"] == pytest.approx(res.virtual_time_s, rel=1e-9)
    assert st["utilization"] == pytest.approx(res.utilization, rel=1e-9)
    assert st["steady_utilization"] == pytest.approx(res.steady_utilization, rel=1e-9)
    assert (st["injected"] > 0) == (mode == "async")
    from cluster import Journal

    with Journal(tmp_path / mode, readonly=True) as j:
        ends = sorted(t.finished_at for t in j.trials())
    assert bench.target_hit(tmp_path / mode, math.inf) == (ends[0], 1)  # the first trial to finish
    assert bench.target_hit(tmp_path / mode, -1.0) == (None, None)  # a sphere never goes below 0
