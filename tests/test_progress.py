"""cluster.progress: what the progress bar shows (running trials, one final line per generation, restarts)."""

from __future__ import annotations

import io

from cluster.progress import TqdmProgress
from cluster.status import TrialStatus
from cluster.trialrow import TrialRow


def _finished(p: TqdmProgress, generation: int, trial_id: int, counts: dict, objective: float | None = 0.5):
    status = "done" if objective is not None else "failed"
    p.on_trial_finished(generation, {"id": trial_id, "status": status, "objective": objective}, counts)


def test_run_counts_started_trials_not_submitted_ones():
    """8 trials submitted to Ray at once (the campaign counts them 'running'), 2 CPUs: only the trials the
    executor reported started are running."""
    buf = io.StringIO()
    p = TqdmProgress(buf)
    p.on_generation_start(1, 8)
    p.on_trial_started(1, 101)
    p.on_trial_started(1, 102)
    assert p.running == 2 and " run=2 " in p.postfix()
    _finished(p, 1, 101, {"done": 1, "running": 7, "failed": 0, "pending": 0})
    assert p.running == 1 and p.postfix().startswith("done=1 run=1 fail=0 best=0.5")
    p.on_trial_started(1, 103)
    _finished(p, 1, 102, {"done": 1, "running": 6, "failed": 1, "pending": 0}, objective=None)
    assert p.running == 1 and p.postfix().startswith("done=1 run=1 fail=1 best=0.5")
    assert "run=7" not in buf.getvalue() and "run=6" not in buf.getvalue()
    # a new generation starts with nothing running
    p.on_generation_end(1, 0.5)
    p.on_generation_start(2, 8)
    assert p.running == 0


def test_start_of_another_generation_is_ignored():
    p = TqdmProgress(io.StringIO(), disable=True)
    p.on_generation_start(3, 4)
    p.on_trial_started(2, 7)  # a late event of generation 2
    assert p.running == 0


def test_each_generation_writes_its_complete_line_once():
    buf = io.StringIO()
    p = TqdmProgress(buf)
    for g in (1, 2):
        p.on_generation_start(g, 3)
        for k in range(3):
            p.on_trial_started(g, 10 * g + k)
        for k in range(3):
            _finished(p, g, 10 * g + k, {"done": k + 1, "running": 2 - k, "failed": 0, "pending": 0}, 1.0 / (k + g))
        p.on_generation_end(g, 1.0 / (2 + g))
    text = buf.getvalue()
    assert text.count("3/3") == 2 and text.count("100%") == 2
    assert text.count("generation 1: 100%") == 1 and text.count("generation 2: 100%") == 1
    # the final line shows the best reported at the generation's end and nothing running
    final = [seg for seg in text.replace("\n", "\r").split("\r") if "generation 2: 100%" in seg][0]
    assert "done=3 run=0 fail=0 best=0.25" in final


def test_an_interrupted_generation_keeps_its_last_state_once():
    buf = io.StringIO()
    p = TqdmProgress(buf)
    p.on_generation_start(1, 4)
    p.on_trial_started(1, 1)
    _finished(p, 1, 1, {"done": 1, "running": 3, "failed": 0, "pending": 0})
    p.close()
    text = buf.getvalue()
    last = text.rstrip().split("\r")[-1]
    assert "1/4" in last and "done=1" in last and text.endswith("\n") and "100%" not in text


def test_restart_line_names_the_criteria_and_the_new_popsize():
    buf = io.StringIO()
    p = TqdmProgress(buf, disable=True)  # --no-progress: no bars, but restarts are still reported
    p.on_generation_start(4, 8)
    p.on_generation_end(4, 0.1)
    p.on_restart(4, {"tolfun": 1e-11, "tolflatfitness": 1}, 16)
    text = buf.getvalue()
    assert text.count("\n") == 1 and "|" not in text  # the restart line only, no bar
    assert "generation 4" in text and "tolfun=1e-11, tolflatfitness=1" in text
    assert "restart 1 (IPOP): popsize 8 -> 16" in text
    p.on_generation_start(5, 16)
    p.on_generation_end(5, 0.1)
    p.on_restart(5, {"tolx": 1e-11}, 32)
    assert "restart 2 (IPOP): popsize 16 -> 32" in buf.getvalue() and len(p.restarts) == 2


def _trial_row(trial_id: int, status: str, objective: float | None) -> TrialRow:
    """A journal trial as the campaign hands it to ``on_trial_finished`` (``Journal.trial``)."""
    return TrialRow(
        id=trial_id,
        generation=1,
        idx=trial_id,
        x=[0.5],
        params={"lr": 0.01},
        status=TrialStatus(status),
        objective=objective,
        result=None,
        error=None if status == "done" else "exception: ValueError: boom",
        attempts=1,
        node_id="n",
        worker_id="w",
        started_at=1.0,
        finished_at=2.0,
    )


def test_journal_rows_are_read_by_attribute():
    p = TqdmProgress(io.StringIO(), disable=True)
    p.on_generation_start(1, 2)
    p.on_trial_started(1, 5)
    p.on_trial_started(1, 6)
    p.on_trial_finished(1, _trial_row(5, "done", 0.25), {"done": 1, "running": 1})
    assert p.best == 0.25 and p.running == 1
    p.on_trial_finished(1, _trial_row(6, "failed", None), {"done": 1, "failed": 1, "running": 0})
    assert p.best == 0.25 and p.running == 0


def test_error_fractions_are_shown_in_percent():
    p = TqdmProgress(io.StringIO(), best=0.012, percent=True)
    assert " best=1.2% " in p.postfix()
    assert " best=0.012 " in TqdmProgress(io.StringIO(), best=0.012).postfix()
