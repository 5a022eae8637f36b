"""SGDW and AdamW's weight decay against the update rules of arXiv 1711.05101 (Algorithms 1 and 2)."""

import numpy as np
import pytest
import torch

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


@pytest.mark.parametrize("name", ["adamw", "sgdw"])
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
