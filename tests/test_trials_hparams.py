"""The hyperparameter registry, its validation, and TrialSpec validation."""

import dataclasses
import json

import pytest

import trials
from trials import HPARAMS, TrialSpec, resolve_hparams

RICH = {  # 21 hyperparameters tuned at once (AdamW + CNN)
    "lr": 3e-3,
    "weight_decay_norm": 0.05,
    "T_0": 0.5,
    "T_mult": 2.0,
    "eta_min": 0.01,
    "log10_one_minus_beta1": -1.3,
    "log10_one_minus_beta2": -2.5,
    "filters1": 6,
    "filters2": 10.0,
    "filters3": 12,
    "dense_units": 20,
    "dropout1": 0.05,
    "dropout2": 0.1,
    "dropout3": 0.15,
    "dropout_dense": 0.2,
    "log2_batch_size": 5,
    "label_smoothing": 0.05,
    "shift": 1,
    "grad_clip": 2.0,
}


def test_registry_documents_every_name():
    for name, h in HPARAMS.items():
        assert h.name == name and h.unit and h.doc and h.low <= h.high
    table = trials.describe_hparams()
    assert all(f"`{n}`" in table for n in HPARAMS)
    usable = [n for n, h in HPARAMS.items() if h.alias_of is None and set(h.applies_to) <= {"adamw", "cnn"}]
    assert len(usable) >= 15


def test_many_hyperparameters_reach_the_network():
    r = trials.train_and_evaluate(RICH, {"epochs": 1, "threads": 1})
    assert r.status == "ok"
    hp = r.hparams
    assert hp["beta1"] == pytest.approx(1 - 10**-1.3) and hp["beta2"] == pytest.approx(1 - 10**-2.5)
    assert r.batch_size == 32 and hp["filters2"] == 10 and isinstance(hp["filters2"], int)
    # lambda = lambda_norm * sqrt(b / (B T)) with b=32, B=900, T=1
    assert hp["weight_decay"] == pytest.approx(0.05 * (32 / 900) ** 0.5)
    f1, f2, f3, d = 6, 10, 12, 20  # CNN on 8x8: conv, conv, pool, conv, pool -> 2x2 map
    expected = (9 * f1 + f1) + (9 * f1 * f2 + f2) + (9 * f2 * f3 + f3) + (4 * f3 * d + d) + (d * 10 + 10)
    assert r.n_params == expected
    # the hparams as used reproduce the run
    r2 = trials.train_and_evaluate(r.hparams, {"epochs": 1, "threads": 1})
    assert r2.curves == r.curves
    json.dumps(r.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "bad",
    [
        {"lr": -1.0},
        {"lr": 0.0},
        {"T_0": 0.0},
        {"T_mult": 0.5},
        {"eta_min": 1.5},
        {"dropout1": 1.0},
        {"filters1": 2.5},
        {"filters1": 0},
        {"lr": float("nan")},
        {"lr": "0.1"},
        {"lr": True},
        {"log2_batch_size": 15},
        {"shift": -1},
        {"grad_clip": 0.0},
        {"beta2": 1.0},
    ],
)
def test_out_of_range_values_raise(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        resolve_hparams(bad, None, "adamw", "cnn")


def test_unknown_and_conflicting_names_raise():
    with pytest.raises(ValueError, match="known:.*'lr'"):
        trials.train_and_evaluate({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="momentum"):
        resolve_hparams({"momentum": 0.9}, None, "adamw", "cnn")  # SGDW only
    with pytest.raises(ValueError, match="dense_units"):
        resolve_hparams({"dense_units": 64}, None, "sgdw", "resnet20")
    with pytest.raises(ValueError, match="not both"):
        resolve_hparams({"beta1": 0.9, "log10_one_minus_beta1": -1}, None, "adamw", "cnn")
    with pytest.raises(ValueError, match="not both"):
        resolve_hparams({"weight_decay": 1e-4, "weight_decay_norm": 0.05}, None, "adamw", "cnn")
    with pytest.raises(ValueError, match="both tuned"):
        resolve_hparams({"lr": 0.1}, {"lr": 0.2}, "adamw", "cnn")
    with pytest.raises(ValueError, match="smaller than the image side"):
        trials.train_and_evaluate({"shift": 8})


def test_sgdw_names_and_defaults():
    hp = resolve_hparams({"log10_one_minus_momentum": -2}, {"lr": 0.1}, "sgdw", "cnn")
    assert hp["momentum"] == pytest.approx(0.99) and hp["lr"] == 0.1
    assert "beta1" not in hp and hp["T_0"] is None and hp["weight_decay"] == HPARAMS["weight_decay"].default


def test_trial_spec_from_dict_and_validation():
    spec = TrialSpec.from_dict({"epochs": 3, "fixed": {"lr": 0.01}, "threads": 1})
    assert dataclasses.asdict(spec)["fixed"] == {"lr": 0.01}
    assert TrialSpec.from_dict(dataclasses.asdict(spec)) == spec
    with pytest.raises(ValueError, match="epoch_count"):
        TrialSpec.from_dict({"epoch_count": 3})
    for bad in (
        {"epochs": 0},
        {"dataset": "svhn"},
        {"optimizer": "adam"},
        {"valid_fraction": 1.0},
        {"device": "gpu"},
        {"threads": 0},
        {"fixed": {"nope": 1}},
        {"batch_size": 2.0},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrialSpec(**bad)


def test_readme_table_is_describe_hparams():
    """The README's hyperparameter table is ``describe_hparams()`` verbatim, so the two cannot drift."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert trials.describe_hparams().strip("\n") in readme
