"""train_and_evaluate end to end on the bundled digits (CPU), plus one GPU epoch when CUDA is present."""

import json
import math

import numpy as np
import pytest
import torch

import trials
import trials.train as train_mod
from trials.data import load_dataset, split_indices
from trials.schedules import sgdr_multiplier

CPU = {"threads": 1, "device": "cpu"}


def _majority_error(spec=None):
    spec = trials.TrialSpec(**(spec or {}))
    y = load_dataset("digits").y_train
    _, va = split_indices(len(y), spec.valid_fraction, spec.split_seed)
    return 1.0 - np.bincount(y[va]).max() / len(va)


def test_default_hparams_reach_3_percent_within_30_epochs():
    r = trials.train_and_evaluate({}, {**CPU, "epochs": 30})
    assert r.status == "ok", r.reason
    assert r.objective <= 0.03
    assert r.valid_size == 600 and r.train_size == 900 and r.epochs_run == 30
    assert 0.0 <= r.test_error <= 0.05  # reported, never the objective
    # lr curve follows SGDR (one cosine period over all epochs by default): lr at each epoch's last batch
    steps = math.ceil(900 / 64)
    lr = r.hparams["lr"]
    expected = [lr * sgdr_multiplier(e + 1 - 1 / steps, 30.0) for e in range(30)]
    assert r.curves["lr"] == pytest.approx(expected, rel=1e-9)
    assert r.curves["train_loss"][-1] < r.curves["train_loss"][0]


def test_huge_lr_diverges_and_tiny_lr_stays_bad_without_raising():
    big = trials.train_and_evaluate({"lr": 10.0}, CPU)
    assert big.status == "diverged" and "loss" in big.reason
    assert big.objective == pytest.approx(_majority_error())
    assert big.epochs_run < 15 and big.test_error is None
    json.dumps(big.to_dict(), allow_nan=False)
    tiny = trials.train_and_evaluate({"lr": 1e-7}, CPU)
    assert tiny.status == "ok" and tiny.objective > 0.5
    sgdw = trials.train_and_evaluate({"lr": 10.0}, {**CPU, "optimizer": "sgdw"})
    assert sgdw.status == "diverged"


def test_seeded_cpu_runs_are_deterministic_and_leave_global_state_alone():
    rng_before = torch.random.get_rng_state()
    threads_before = torch.get_num_threads()
    hp = {"dropout2": 0.2, "shift": 1}
    a = trials.train_and_evaluate(hp, {**CPU, "epochs": 3, "seed": 5})
    b = trials.train_and_evaluate(hp, {**CPU, "epochs": 3, "seed": 5})
    c = trials.train_and_evaluate(hp, {**CPU, "epochs": 3, "seed": 6})
    assert a.curves == b.curves and a.objective == b.objective and a.test_error == b.test_error
    assert c.curves["train_loss"] != a.curves["train_loss"]
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert torch.get_num_threads() == threads_before


def test_fixed_values_act_like_hparams_and_sgdw_trains():
    a = trials.train_and_evaluate({"lr": 0.003}, {**CPU, "epochs": 2})
    b = trials.train_and_evaluate({}, {**CPU, "epochs": 2, "fixed": {"lr": 0.003}})
    assert a.curves == b.curves
    s = trials.train_and_evaluate({}, {**CPU, "optimizer": "sgdw"})
    assert s.status == "ok" and s.objective <= 0.05 and s.hparams["momentum"] == 0.9


def test_exception_during_training_is_reported_as_failed(monkeypatch):
    real = train_mod.build_model

    def broken(*args, **kwargs):
        model = real(*args, **kwargs)

        def forward(x):
            raise RuntimeError("simulated out of memory")

        model.forward = forward
        return model

    monkeypatch.setattr(train_mod, "build_model", broken)
    r = trials.train_and_evaluate({}, CPU)
    assert r.status == "failed" and "simulated out of memory" in r.reason and math.isnan(r.objective)
    assert json.loads(json.dumps(r.to_dict(), allow_nan=False))["objective"] is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_one_epoch_on_gpu():
    r = trials.train_and_evaluate({}, {"device": "cuda", "epochs": 1})
    assert r.status == "ok", r.reason
    assert r.device.startswith("cuda") and r.epochs_run == 1 and r.objective < 0.5


def test_result_status_is_an_enum_and_to_dict_is_plain():
    from trials.train import ResultStatus, TrialResult

    r = TrialResult(
        objective=math.nan,
        status="diverged",
        reason="loss nan",
        curves={"train_loss": [1.0, math.inf], "valid_error": [0.5, 0.4], "lr": [0.1, 0.1]},
        test_error=None,
        wall_time_s=1.0,
        epochs_run=2,
        device="cpu",
        torch_version=torch.__version__,
        hparams={"lr": 0.1},
        valid_size=10,
    )
    assert r.status is ResultStatus.DIVERGED and r.status == "diverged"
    d = r.to_dict()
    assert type(d["status"]) is str and d["status"] == "diverged"
    assert d["objective"] is None and d["curves"]["train_loss"] == [1.0, None]
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    with pytest.raises(ValueError):
        TrialResult(**{**r.__dict__, "status": "exploded"})
