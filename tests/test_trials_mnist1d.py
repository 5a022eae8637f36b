"""MNIST-1D (Greydanus & Kobak, ICML 2024): generated locally, split like digits, the paper's 1-D CNN."""

import random
import time

import numpy as np
import pytest
import torch

import trials
from trials.data import dataset_files, load_dataset
from trials.hparams import resolve_hparams
from trials.models import CNN1d, build_model


def test_mnist1d_is_generated_locally_with_the_papers_split_and_leaves_global_rngs_alone():
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    raw = load_dataset("mnist1d", data_dir="/nonexistent")  # data_dir ignored: nothing is read or downloaded
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before  # noqa: NPY002
    assert raw.x_train.shape == (4000, 1, 1, 40) and raw.x_test.shape == (1000, 1, 1, 40)
    assert raw.x_train.dtype == np.float32 and raw.y_train.dtype == np.int64 and raw.n_classes == 10
    assert set(np.unique(raw.y_train)) == set(range(10)) and np.bincount(raw.y_test).min() > 70
    assert abs(float(raw.x_train.mean())) < 0.05 and abs(float(raw.x_train.std()) - 1.0) < 0.05
    assert dataset_files("mnist1d", None) == []
    from mnist1d.data import get_dataset_args, make_dataset

    ref = make_dataset(get_dataset_args())  # the package's generator, default arguments (seed 42)
    np.testing.assert_array_equal(raw.x_test[:, 0, 0], ref["x_test"].astype(np.float32))
    np.testing.assert_array_equal(raw.y_train, ref["y"])


def test_auto_model_is_the_papers_cnn_with_its_parameter_count():
    spec = trials.TrialSpec(dataset="mnist1d")
    assert spec.resolved_model() == "cnn1d"
    hp = resolve_hparams({}, None, spec.optimizer, "cnn1d")
    assert (hp["filters1"], hp["filters2"], hp["filters3"], hp["lr"]) == (25, 25, 25, 0.01)
    assert "dense_units" not in hp
    model = build_model("cnn1d", 1, 10, 40, hp, torch.Generator().manual_seed(0))
    # ConvBase of the paper's code: Conv1d(1,25,5) + Conv1d(25,25,3) x2 + Linear(125, 10); 40 -> 19 -> 10 -> 5
    assert sum(p.numel() for p in model.parameters()) == (5 * 25 + 25) + 2 * (3 * 25 * 25 + 25) + (125 * 10 + 10)
    x = torch.randn(7, 1, 1, 40, generator=torch.Generator().manual_seed(0))
    assert model(x).shape == (7, 10) and torch.equal(model(x), model(x.reshape(7, 1, 40)))
    with pytest.raises(ValueError, match="too short"):
        CNN1d(1, 10, 2)
    with pytest.raises(ValueError, match="dense_units"):
        resolve_hparams({"dense_units": 64}, None, "adamw", "cnn1d")
    with pytest.raises(ValueError, match="smaller than the image side"):  # no 2-D shifts of a 1-D signal
        trials.train_and_evaluate({"shift": 1}, {"dataset": "mnist1d", "epochs": 1})


def test_default_trial_reaches_the_papers_cnn_accuracy():
    """Greydanus & Kobak report 94% test accuracy for this CNN on MNIST-1D (the benchmark table of
    arXiv 2011.14439 / ICML 2024, repeated in the README of github.com/greydanus/mnist1d: "CNN 94%"),
    trained with Adam, lr 1e-2, batch 100, 8,000 steps on all 4,000 training signals.  Their protocol
    on the locally generated data gives 93.1-93.6% here (steps 3,000-8,000, seed 42).

    A default trial (default hyperparameters: AdamW lr 0.01, decoupled weight decay 5e-4 per step,
    one cosine period; batch 64) with 10% of the training signals held out for validation (3,600
    training signals) and 80 epochs (4,560 steps), seeded: the test accuracy must be within 2
    percentage points of the paper's 94% (test error <= 8%), a tolerance for the 400 signals held
    out and the different schedule (seeds 0 and 1 at 60 epochs gave 93.0% and 92.1%, at 100 epochs
    93.5%); this seed measured 92.9% (validation error 8.0%).  Takes ~25 s on one CPU thread, the
    mnist1d import and generation included (~40 s on a loaded 2-core machine).
    """
    t0 = time.perf_counter()
    spec = {"dataset": "mnist1d", "epochs": 80, "valid_fraction": 0.1, "threads": 1, "device": "cpu"}
    r = trials.train_and_evaluate({}, spec)
    assert r.status == "ok", r.reason
    assert r.n_params == 5210 and r.train_size == 3600 and r.valid_size == 400
    assert r.test_error <= 0.06 + 0.02, (r.test_error, r.objective)
    assert r.objective <= 0.10  # the validation error agrees (400 signals: +-1.3% standard error)
    assert time.perf_counter() - t0 < 90


@pytest.mark.parametrize(
    "dataset, model, fits",
    [("digits", "cnn1d", ["cnn", "resnet20"]), ("mnist1d", "cnn", ["cnn1d"]), ("mnist1d", "resnet20", ["cnn1d"])],
)
def test_a_model_that_does_not_fit_the_dataset_is_refused_by_the_spec(dataset, model, fits):
    """Every trial of such a campaign failed on a shape error ("mat1 and mat2 shapes cannot be
    multiplied"); the spec, and so the config, now says which models fit."""
    with pytest.raises(ValueError) as e:
        trials.TrialSpec(dataset=dataset, model=model)
    assert str(e.value).startswith(f"TrialSpec.model='{model}': does not fit dataset '{dataset}'")
    assert str(e.value).endswith(f"use 'auto' or one of {fits}")
    assert trials.TrialSpec(dataset=dataset, model="auto").resolved_model() in fits
