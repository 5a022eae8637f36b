"""SGDR (arXiv 1608.03983) against its closed form, the paper's stepwise procedure and torch's scheduler."""

import math

import pytest
import torch

from trials.schedules import make_sgdr, sgdr_multiplier, sgdr_period, sgdr_restarts


def _stepwise_reference(T_0, T_mult, eta_min, steps_per_epoch, n_steps):
    """The paper's procedure: T_cur grows by 1/steps_per_epoch per batch; at T_cur >= T_i restart
    (T_cur -= T_i, T_i *= T_mult); eta_t from Eq. (5)."""
    out, T_cur, T_i = [], 0.0, float(T_0)
    for _ in range(n_steps):
        out.append(eta_min + 0.5 * (1 - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)))
        T_cur += 1.0 / steps_per_epoch
        if T_cur >= T_i - 1e-12:
            T_cur -= T_i
            T_i *= T_mult
    return out


@pytest.mark.parametrize("T_0,T_mult,eta_min,spe", [(1.5, 1.0, 0.0, 4), (0.5, 2.0, 0.1, 6), (2.0, 1.5, 0.05, 5)])
def test_lambda_schedule_matches_paper_procedure(T_0, T_mult, eta_min, spe):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.3)
    sched = make_sgdr(opt, T_0, T_mult, eta_min, spe)
    lrs = []
    for _ in range(60):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ref = _stepwise_reference(T_0, T_mult, eta_min, spe, 60)
    assert lrs == pytest.approx([0.3 * r for r in ref], rel=1e-9, abs=1e-12)


def test_matches_torch_cosine_warm_restarts_for_integer_periods():
    # torch's scheduler, stepped once per batch, needs T_0 and T_mult as integers (in steps)
    spe, T_0, T_mult, lr, eta_min = 5, 2, 2, 0.1, 0.2
    p1, p2 = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    o1, o2 = torch.optim.SGD([p1], lr=lr), torch.optim.SGD([p2], lr=lr)
    ours = make_sgdr(o1, T_0, T_mult, eta_min, spe)
    ref = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o2, T_0=T_0 * spe, T_mult=T_mult, eta_min=eta_min * lr)
    for _ in range(70):
        assert o1.param_groups[0]["lr"] == pytest.approx(o2.param_groups[0]["lr"], rel=1e-9)
        for x in (o1, o2, ours, ref):
            x.step()


def test_closed_form_values_and_restarts():
    # restarts at T_0, T_0(1+T_mult), T_0(1+T_mult+T_mult^2)
    assert sgdr_restarts(1.5, 2.0, 20.0) == pytest.approx([1.5, 4.5, 10.5])
    for t in (0.0, 1.5, 4.5, 10.5):
        assert sgdr_multiplier(t, 1.5, 2.0, 0.1) == pytest.approx(1.0)
    # middle of period 1 (from 1.5 to 4.5): multiplier (1 + eta_min)/2
    assert sgdr_multiplier(3.0, 1.5, 2.0, 0.1) == pytest.approx(0.55)
    # just before a restart it is close to eta_min
    assert sgdr_multiplier(4.5 - 1e-9, 1.5, 2.0, 0.1) == pytest.approx(0.1, abs=1e-6)
    assert sgdr_period(4.5, 1.5, 2.0) == (2, 0.0, 6.0)


@pytest.mark.parametrize("args", [(1.0, 0.0, 1.0), (1.0, -1.0, 1.0), (1.0, 2.0, 0.5), (-0.1, 1.0, 1.0)])
def test_invalid_parameters_raise(args):
    t, T_0, T_mult = args
    with pytest.raises(ValueError):
        sgdr_multiplier(t, T_0, T_mult)
