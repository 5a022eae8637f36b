"""trials.train_and_evaluate's report callback: called after every epoch with the recorded
validation error; False stops training there (status ok, stopped_at); exceptions fail the trial."""

from __future__ import annotations

import numpy as np
import pytest

import trials

SPEC = {"threads": 1, "device": "cpu", "epochs": 3, "evaluate_test": True}
HP = {"filters1": 8, "filters2": 8, "filters3": 8, "dense_units": 16}  # a tiny CNN: a few seconds on one core


@pytest.fixture(scope="module")
def full():
    """The unstopped 3-epoch run every test compares with (seeded, so bit-for-bit repeatable on CPU)."""
    seen = []
    r = trials.train_and_evaluate(HP, SPEC, report=lambda e, v: seen.append((e, v)) or True)
    return r, seen


def test_report_is_called_after_every_epoch_with_the_curve_it_records(full):
    r, seen = full
    assert r.status == "ok" and r.stopped_at is None and r.epochs_run == 3
    assert seen == list(zip([1, 2, 3], r.curves["valid_error"]))
    assert all(isinstance(e, int) and isinstance(v, float) for e, v in seen)
    assert r.objective == r.curves["valid_error"][-1] and r.test_error is not None


def test_false_stops_after_that_epoch_with_its_value_and_the_same_curve_so_far(full):
    r_full, _ = full
    calls = []

    def report(epoch, value):
        calls.append(epoch)
        return epoch < 2  # numpy bools work too: np.bool_(False) stops

    r = trials.train_and_evaluate(HP, SPEC, report=report)
    assert calls == [1, 2]
    assert r.status == "ok" and r.reason == "" and r.stopped_at == 2 and r.epochs_run == 2
    assert r.curves["valid_error"] == r_full.curves["valid_error"][:2]  # the same training, cut short
    assert r.objective == r.curves["valid_error"][-1]
    assert r.test_error is None  # the final model's only
    assert r.to_dict()["stopped_at"] == 2
    r0 = trials.train_and_evaluate(HP, {**SPEC, "epochs": 2}, report=lambda e, v: np.bool_(False))
    assert r0.stopped_at == 1 and r0.epochs_run == 1


def test_none_goes_on_and_without_report_the_run_is_unchanged(full):
    r_full, _ = full
    r_none = trials.train_and_evaluate(HP, SPEC, report=lambda e, v: None)
    plain = trials.train_and_evaluate(HP, SPEC)
    for r in (r_none, plain):
        assert r.stopped_at is None and r.curves == r_full.curves and r.objective == r_full.objective


def test_an_exception_in_report_fails_the_trial_with_the_reason():
    def report(epoch, value):
        raise ValueError("step 1 reported twice")

    r = trials.train_and_evaluate(HP, {**SPEC, "epochs": 2}, report=report)
    assert r.status == "failed" and np.isnan(r.objective)
    assert (
        "ValueError: step 1 reported twice" in r.reason and "(in epoch 1)" in r.reason
    )  # its report is part of epoch 1
