"""SGDW and AdamW's weight decay against the update rules of arXiv 1711.05101 (Algorithms 1 and 2)."""

import numpy as np
import pytest
import torch

import trials
from trials.hparams import OPTIMIZERS, ignored_hparams, resolve_hparams
from trials.optim import SGDW, make_optimizer, weight_decay_from_norm

ETAS = [1.0, 0.9, 0.5, 0.2, 1.0, 0.7, 0.3, 0.05, 1.0, 0.6]  # an arbitrary schedule multiplier per step


def _quadratic(seed=0, n=4):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, n))
    return M @ M.T + np.eye(n), rng.normal(size=n), rng.normal(size=n)  # A (SPD), b, theta0


def test_sgdw_matches_algorithm_1_on_a_quadratic():
    A, b, theta0 = _quadratic()
    alpha, beta, lam = 0.05, 0.9, 0.01
    # paper, Algorithm 1: m_t = beta m_{t-1} + eta_t alpha g_t
    #                     theta_t = theta_{t-1} - m_t - eta_t lambda theta_{t-1}
    theta, m = theta0.copy(), np.zeros_like(theta0)
    for eta in ETAS:
        g = A @ theta - b  # gradient of 0.5 theta^T A theta - b^T theta
        m = beta * m + eta * alpha * g
        theta = theta - m - eta * lam * theta
    p = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    opt = SGDW([p], lr=alpha, momentum=beta, weight_decay=lam / alpha)
    At, bt = torch.tensor(A), torch.tensor(b)
    for eta in ETAS:
        opt.param_groups[0]["lr"] = alpha * eta  # what the SGDR LambdaLR does
        opt.zero_grad()
        (0.5 * p @ At @ p - bt @ p).backward()
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), theta, rtol=1e-12, atol=1e-14)


def test_sgdw_is_not_torch_sgd_with_l2_when_lr_changes():
    # torch SGD(weight_decay) couples the decay into the gradient; with a changing lr it differs
    A, b, theta0 = _quadratic(1)
    p1 = torch.tensor(theta0, requires_grad=True)
    p2 = torch.tensor(theta0, requires_grad=True)
    o1 = SGDW([p1], lr=0.05, momentum=0.9, weight_decay=0.2)
    o2 = torch.optim.SGD([p2], lr=0.05, momentum=0.9, weight_decay=0.2)
    At, bt = torch.tensor(A), torch.tensor(b)
    for eta in ETAS:
        for o, p in ((o1, p1), (o2, p2)):
            o.param_groups[0]["lr"] = 0.05 * eta
            o.zero_grad()
            (0.5 * p @ At @ p - bt @ p).backward()
            o.step()
    assert not torch.allclose(p1, p2, atol=1e-6)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_make_optimizer_applies_eta_t_times_lambda_to_weights_only(name):
    # with zero gradients the only change is the decoupled decay: theta_t = (1 - eta_t*lambda) theta_{t-1}
    lin = torch.nn.Linear(3, 2)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    alpha, lam = 0.003, 0.02
    opt = make_optimizer(name, lin, alpha, lam)
    expected = w0.clone()
    for eta in ETAS[:5]:
        for g in opt.param_groups:
            g["lr"] = alpha * eta
        opt.zero_grad()
        (0.0 * lin(torch.ones(1, 3)).sum()).backward()
        opt.step()
        expected = expected * (1 - eta * lam)
    torch.testing.assert_close(lin.weight.detach(), expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(lin.bias.detach(), b0)  # biases are not decayed


def test_weight_decay_from_norm_and_errors():
    # lambda = lambda_norm * sqrt(b / (B T)); b=64, B=900, T=16 -> sqrt(64/14400) = 1/15
    assert weight_decay_from_norm(0.3, 64, 900, 16) == pytest.approx(0.02)
    with pytest.raises(ValueError):
        weight_decay_from_norm(-1.0, 64, 900, 16)
    with pytest.raises(ValueError):
        SGDW([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError):
        make_optimizer("adam", torch.nn.Linear(1, 1), 0.1, 0.0)


def test_the_optimizers_are_the_seed_papers_with_decoupled_decay():
    lin = torch.nn.Linear(3, 2)
    built = {name: make_optimizer(name, lin, 1e-3, 1e-2) for name in OPTIMIZERS}
    assert list(OPTIMIZERS) == ["adamw", "sgdw", "radam", "nadam", "amsgrad"]
    assert type(built["adamw"]) is torch.optim.AdamW and not built["adamw"].defaults["amsgrad"]
    assert type(built["amsgrad"]) is torch.optim.AdamW and built["amsgrad"].defaults["amsgrad"]
    assert type(built["radam"]) is torch.optim.RAdam and built["radam"].defaults["decoupled_weight_decay"]
    assert type(built["nadam"]) is torch.optim.NAdam and built["nadam"].defaults["decoupled_weight_decay"]
    assert type(built["sgdw"]) is SGDW
    for opt in built.values():  # lambda / lr on the weights, nothing on the bias
        assert [g["weight_decay"] for g in opt.param_groups] == [pytest.approx(10.0), 0.0]


def test_unknown_optimizer_lists_the_choices():
    choices = r"\['adamw', 'sgdw', 'radam', 'nadam', 'amsgrad'\]"
    with pytest.raises(ValueError, match="unknown optimizer 'adam'.*" + choices):
        make_optimizer("adam", torch.nn.Linear(1, 1), 0.1, 0.0)
    with pytest.raises(ValueError, match="'optimizer'='adam' is not one of " + choices):
        resolve_hparams({"optimizer": "adam"}, None, "adamw", "cnn")
    with pytest.raises(ValueError, match="optimizer.*" + choices):
        trials.TrialSpec(optimizer="adam")
    with pytest.raises(ValueError, match="not one of"):
        resolve_hparams({"optimizer": 1.0}, None, "adamw", "cnn")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_trains_the_digits_cnn(name):
    # chance level on 10 balanced classes is an error of 0.9; 8 epochs (120 steps) of each, at its default
    # lr, get below a third of it (measured: adamw/nadam/amsgrad ~0.03, sgdw 0.06, radam 0.18, whose
    # rectified warm-up is the slowest start)
    r = trials.train_and_evaluate({"optimizer": name}, {"epochs": 8, "threads": 1, "evaluate_test": False})
    assert r.status == "ok", r.reason
    assert r.hparams["optimizer"] == name and r.ignored_hparams == {}
    assert r.objective < 0.3, r.curves


def test_optimizer_hparam_overrides_the_spec_and_takes_its_defaults():
    hp = resolve_hparams({"optimizer": "sgdw"}, None, "adamw", "cnn")
    assert hp["optimizer"] == "sgdw" and hp["lr"] == 0.05 and hp["momentum"] == 0.9 and "beta1" not in hp
    hp = resolve_hparams({}, {"optimizer": "nadam"}, "sgdw", "cnn")  # fixed counts as given
    assert hp["optimizer"] == "nadam" and hp["beta2"] == 0.999 and "momentum" not in hp
    assert resolve_hparams({}, None, "radam", "cnn")["optimizer"] == "radam"  # not tuned: the spec's


def test_betas_with_sgdw_error_when_fixed_and_are_ignored_and_recorded_when_tuned():
    # the optimizer fixed by the spec: an inapplicable coefficient tunes nothing -> ValueError
    with pytest.raises(ValueError, match="'beta1' applies to .*adamw.* not to optimizer='sgdw'"):
        resolve_hparams({"beta1": 0.8}, None, "sgdw", "cnn")
    with pytest.raises(ValueError, match="momentum"):
        resolve_hparams({"momentum": 0.5}, None, "radam", "cnn")
    with pytest.raises(ValueError, match="betas"):
        make_optimizer("sgdw", torch.nn.Linear(2, 2), 0.1, 0.0, betas=(0.8, 0.99))
    with pytest.raises(ValueError, match="momentum"):
        make_optimizer("nadam", torch.nn.Linear(2, 2), 0.1, 0.0, momentum=0.5)
    # the optimizer tuned: a mixed search space carries every coordinate -> ignored, and recorded
    mixed = {"optimizer": "sgdw", "beta1": 0.8, "log10_one_minus_beta2": -2.0, "log10_one_minus_momentum": -1.5}
    hp = resolve_hparams(mixed, None, "adamw", "cnn")
    assert "beta1" not in hp and "beta2" not in hp and hp["momentum"] == pytest.approx(1 - 10**-1.5)
    assert ignored_hparams(mixed, None, "adamw", "cnn") == {"beta1": 0.8, "log10_one_minus_beta2": -2.0}
    assert ignored_hparams({"optimizer": "amsgrad", "momentum": 0.5}, None, "sgdw", "cnn") == {"momentum": 0.5}
    assert ignored_hparams({"beta1": 0.8}, None, "adamw", "cnn") == {}
    with pytest.raises(ValueError, match="beta1"):  # ignored values are still range-checked
        resolve_hparams({"optimizer": "sgdw", "beta1": 1.5}, None, "adamw", "cnn")
    spec = {"epochs": 1, "threads": 1, "evaluate_test": False}
    r = trials.train_and_evaluate(mixed, spec)
    plain = trials.train_and_evaluate({"optimizer": "sgdw", "log10_one_minus_momentum": -1.5}, spec)
    assert r.ignored_hparams == {"beta1": 0.8, "log10_one_minus_beta2": -2.0}
    assert r.curves == plain.curves and r.hparams == plain.hparams  # the betas really changed nothing


def test_describe_hparams_renders_the_categorical_optimizer():
    row = next(line for line in trials.describe_hparams().splitlines() if line.startswith("| `optimizer` |"))
    assert "{adamw, sgdw, radam, nadam, amsgrad} (choice)" in row and "| categorical |" in row
    assert trials.HPARAMS["optimizer"].check("radam") == "radam"
