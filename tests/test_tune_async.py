"""ESSearcher(scheduling="async") in real Ray Tune runs (issue 13 item 4).

Eight Tune slots on the 2-CPU test instance (``num_cpus=0.25`` per trial), ``popsize`` 4 and
``max_concurrent_trials`` 8: a synchronous searcher can never run more than 4 trials at once; an
asynchronous one must keep all 8 slots busy, never return None while budget and slots remain,
tell every finished trial (``popsize`` at a time, in completion order, stale samples as injected
rows) and continue exactly after ``Tuner.restore``.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.tune")

from ray import tune  # noqa: E402

from cluster.tune import ESSearcher  # noqa: E402

SPACE = {"x": tune.uniform(-1.0, 2.0), "lr": tune.loguniform(1e-4, 1e-1)}
POPSIZE, SLOTS, SEED = 4, 8, 0
DURATION = 1.0  # s
N_TRIALS = 24
RESTORE_SLOTS = 3  # fewer actors to stop and restart: this test is about the checkpoint


def loss(config) -> float:
    return (config["x"] - 1.2) ** 2 + (math.log10(config["lr"]) + 3.5) ** 2


def sleepy(config):
    """Reports its own start and end.  It first waits until SLOTS trials have started (a file per
    trial in ``config["barrier"]``; at most 60 s), so that Tune has started an actor for every slot
    even on a busy machine where starting one takes longer than a trial (with ``reuse_actors`` Tune
    would otherwise keep reusing the first actors); then it runs for DURATION x 1-1.5, a duration
    unrelated to the suggestion order, so that trials finish out of order."""
    t0 = time.time()
    barrier = Path(config["barrier"])
    (barrier / f"{os.getpid()}-{t0}").touch()
    while len(os.listdir(barrier)) < SLOTS and time.time() < t0 + 60:
        time.sleep(0.02)
    time.sleep(DURATION * (1.0 + 0.5 * ((config["x"] * 7919.0) % 1.0)))
    return {"loss": loss(config), "t0": t0, "t1": time.time()}


class Recorder(ESSearcher):
    """Logs every suggest (trial id, config or None, trials out before it), completion and tell.

    ``events`` is its own attribute: pickled into ESSearcher's checkpoints, so after
    ``Tuner.restore`` it holds exactly the events the restored state has seen."""

    def __init__(self, *args, **kw):
        self.events: list[tuple] = []
        super().__init__(*args, **kw)

    def suggest(self, trial_id):
        out = len(self.pending_trial_ids) if self.space is not None else 0
        c = super().suggest(trial_id)
        self.events.append(("suggest", trial_id, c if isinstance(c, dict) else c, out, self.generation))
        return c

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.events.append(("complete", trial_id, None if error else (result or {}).get("loss")))
        super().on_trial_complete(trial_id, result, error)

    def _fitness(self, values, levels):
        self.events.append(("tell", sorted(v for v in values if v is not None)))
        return super()._fitness(values, levels)


def searcher(**kw) -> Recorder:
    return Recorder(popsize=POPSIZE, seed=SEED, scheduling="async", **kw)


def barrier(tmp: Path) -> Path:
    path = Path(tmp) / "barrier"
    path.mkdir(parents=True, exist_ok=True)
    return path


def tuner(s, tmp, name, num_samples, callbacks=None, slots=SLOTS):
    return tune.Tuner(
        tune.with_resources(sleepy, {"cpu": 2.0 / slots}),
        param_space={**SPACE, "barrier": str(barrier(tmp))},
        tune_config=tune.TuneConfig(
            search_alg=s,
            metric="loss",
            mode="min",
            num_samples=num_samples,
            max_concurrent_trials=slots,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp), verbose=0, callbacks=callbacks),
    )


@pytest.fixture(scope="module")
def run(ray_tune_local, tmp_path_factory):
    s = searcher()
    results = tuner(s, tmp_path_factory.mktemp("async"), "async", N_TRIALS).fit()
    return s, results


def running_over_time(results) -> tuple[int, float]:
    """Most trials running at once, and the mean number running between the moment the SLOTS-th
    trial started and the moment the SLOTS-th last trial ended (ramp-up and ramp-down cut off),
    from the trainables' own start/end timestamps."""
    t0 = np.array([r.metrics["t0"] for r in results])
    t1 = np.array([r.metrics["t1"] for r in results])
    at = np.sort(t0)
    running_at_starts = [int(np.sum((t0 <= t) & (t < t1))) for t in at]
    lo, hi = at[SLOTS - 1], np.sort(t1)[-SLOTS]
    grid = np.linspace(lo, hi, 2001)
    running = ((t0[:, None] <= grid) & (grid < t1[:, None])).sum(axis=0)
    return max(running_at_starts), float(running.mean())


def test_every_slot_is_busy_above_popsize(run):
    s, results = run
    assert len(results) == N_TRIALS and results.num_errors == 0
    peak, mean = running_over_time(results)
    assert peak == SLOTS  # a synchronous searcher: at most POPSIZE = 4
    assert mean > 0.7 * SLOTS, f"mean running {mean:.2f} of {SLOTS} slots"  # (measured: 6.8)


def test_suggest_never_returns_none_while_budget_and_slots_remain(run):
    s, _ = run
    suggests = [e for e in s.events if e[0] == "suggest"]
    handed = [e for e in suggests if isinstance(e[2], dict)]
    assert len(handed) == N_TRIALS
    refused = [e for e in suggests if e[2] is None and e[3] < SLOTS]
    assert refused == []  # None only when all SLOTS trials were out
    assert any(e[3] >= POPSIZE for e in handed)  # configs handed out with a whole generation out


def test_every_finished_trial_is_told_in_completion_order(run):
    s, _ = run
    done = [e for e in s.events if e[0] == "complete"]
    tells = [e[1] for e in s.events if e[0] == "tell"]
    assert len(done) == N_TRIALS
    assert len(tells) * POPSIZE == s.n_told == s.strategy.countevals == N_TRIALS - s.n_finished_untold
    assert s.n_finished_untold < POPSIZE and s.n_finished_untold == N_TRIALS % POPSIZE
    for k, told in enumerate(tells):  # tell k = the k-th popsize completions, whatever was suggested when
        assert told == sorted(e[2] for e in done[k * POPSIZE : (k + 1) * POPSIZE])
    # trials sampled from an older distribution were told (injected): none dropped
    generation_of = {e[1]: e[4] for e in s.events if e[0] == "suggest" and isinstance(e[2], dict)}
    stale = [i for i, e in enumerate(done) if generation_of[e[1]] < i // POPSIZE]
    assert len(stale) >= POPSIZE
    assert s.pending_trial_ids == ()


class InterruptAfter(tune.Callback):
    """SIGUSR1 (Tune's Ctrl-C path) once ``n`` trials completed, the first time only."""

    def __init__(self, n: int, marker: Path):
        self.n, self.marker, self.count = n, marker, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.count += 1
        if self.count == self.n and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGUSR1)


def replay(events) -> Recorder:
    """A fresh searcher fed the logged events (suggest ids and completion values) in order."""
    s = searcher(metric="loss", mode="min")
    s.set_search_properties("loss", "min", SPACE)
    s.set_max_concurrency(RESTORE_SLOTS)  # as Tune's max_concurrent_trials did
    for e in events:
        if e[0] == "suggest":
            c = s.suggest(e[1])
            if e[2] is None:
                assert c is None, e
            else:
                assert {k: c[k] for k in SPACE} == {k: e[2][k] for k in SPACE}, e
        elif e[0] == "complete":
            s.on_trial_complete(e[1], None if e[2] is None else {"loss": e[2]}, error=e[2] is None)
    return s


def test_restore_in_the_middle_of_an_async_run_is_exact(ray_tune_local, tmp_path):
    n_total = 16
    for i in range(SLOTS):  # no waiting for all slots: this test is about the checkpoint
        (barrier(tmp_path) / f"prefilled-{i}").touch()
    cut = [InterruptAfter(6, tmp_path / "marker")]
    first = tuner(searcher(), tmp_path, "cut", n_total, cut, slots=RESTORE_SLOTS).fit()
    assert (tmp_path / "marker").exists()
    assert len([r for r in first if r.metrics and "loss" in r.metrics]) < n_total
    saved = Recorder(scheduling="async", metric="loss", mode="min")
    saved.restore(next((tmp_path / "cut").glob("searcher-state-*")))
    assert saved.pending_trial_ids  # interrupted with trials out
    trainable = tune.with_resources(sleepy, {"cpu": 2.0 / RESTORE_SLOTS})
    results = tune.Tuner.restore(str(tmp_path / "cut"), trainable=trainable).fit()
    assert len(results) == n_total and results.num_errors == 0
    final = Recorder(scheduling="async", metric="loss", mode="min")
    final.restore(sorted((tmp_path / "cut").glob("searcher-state-*"))[-1])
    # every trial of the experiment was told exactly once (or waits for the next popsize), none re-run twice
    assert final.pending_trial_ids == ()
    assert final.n_told + final.n_finished_untold == n_total and final.n_finished_untold < POPSIZE
    # the restored searcher continued exactly as one that never stopped, fed the same events
    twin = replay(final.events)
    assert twin.n_told == final.n_told and twin.n_finished_untold == final.n_finished_untold
    assert np.array_equal(twin.strategy.mean, final.strategy.mean) and twin.strategy.sigma == final.strategy.sigma
    assert {r.config["x"] for r in results} == {e[2]["x"] for e in final.events if e[0] == "suggest" and e[2]}
