"""Optimizers with decoupled weight decay (Loshchilov & Hutter, arXiv 1711.05101).

* :class:`SGDW` -- SGD with momentum and decoupled weight decay, Algorithm 1 of the paper (torch's
  ``SGD`` only has L2 regularization, which the paper shows is a different method once the lr is
  scheduled).
* AdamW -- ``torch.optim.AdamW`` (Algorithm 2); ``amsgrad`` is the same with ``amsgrad=True``
  (Reddi, Kale & Kumar, ICLR 2018, "On the convergence of Adam and beyond", Algorithm 2's max of
  the second moments).
* RAdam -- ``torch.optim.RAdam`` (Liu et al., ICLR 2020, arXiv 1908.03265, Algorithm 2) and NAdam
  -- ``torch.optim.NAdam`` (Dozat, ICLR 2016 workshop, "Incorporating Nesterov momentum into Adam";
  torch's ``momentum_decay=4e-3`` schedule of the momentum), both with
  ``decoupled_weight_decay=True``.

The names are :data:`trials.hparams.OPTIMIZERS` (``"adamw"``, ``"sgdw"``, ``"radam"``, ``"nadam"``,
``"amsgrad"``), the choices of the ``optimizer`` hyperparameter.

Weight-decay convention.  The paper's update is ``theta <- theta - eta_t * lambda * theta`` with
``eta_t`` the schedule multiplier and no factor of the learning rate ``alpha``.  torch's ``AdamW``
(and :class:`SGDW` here, for symmetry) multiply their ``weight_decay`` argument by the *current*
group lr ``alpha * eta_t``, so :func:`make_optimizer` passes ``weight_decay = lambda / alpha``; the
applied decay is then exactly ``eta_t * lambda`` for every optimizer, i.e. the schedule multiplier
applies to the decay as in the paper.  torch 2.13's ``RAdam`` and ``NAdam`` with
``decoupled_weight_decay=True`` do the same ``param.mul_(1 - lr * weight_decay)`` before their
update (``torch/optim/radam.py`` and ``nadam.py``, single-tensor and foreach paths alike), as
``AdamW`` (with or without ``amsgrad``) does, so one conversion serves all five.
"""

from __future__ import annotations

import math

import torch

from .hparams import OPTIMIZERS

__all__ = ["SGDW", "weight_decay_from_norm", "make_optimizer"]


class SGDW(torch.optim.Optimizer):
    """SGD with momentum and decoupled weight decay (Algorithm 1 of arXiv 1711.05101).

    With ``lr_t`` the group's current learning rate (``alpha * eta_t`` under a scheduler), per
    parameter and step:

    * ``m_t = momentum * m_{t-1} + lr_t * g_t``  (Alg. 1, momentum update)
    * ``theta_t = theta_{t-1} - m_t - lr_t * weight_decay * theta_{t-1}``  (Alg. 1, parameter update)

    so ``weight_decay = lambda / alpha`` gives the paper's ``- eta_t * lambda * theta_{t-1}``.  Note
    the lr is folded into the momentum buffer as in the paper (torch's ``SGD`` instead keeps
    ``buf = momentum * buf + g`` and multiplies by the lr afterwards; the two differ when the lr
    changes).  ``m_0 = 0``.

    Parameters: ``params`` (iterable of tensors or param-group dicts), ``lr > 0``,
    ``momentum`` in ``[0, 1)``, ``weight_decay >= 0`` (multiplied by the lr, see above).
    Raises ``ValueError`` for values outside these ranges.
    """

    def __init__(self, params, lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 0.0):
        if not (isinstance(lr, float | int) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if not (0.0 <= momentum < 1.0):
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be finite and >= 0, got {weight_decay!r}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                m = state["momentum_buffer"]
                m.mul_(beta).add_(p.grad, alpha=lr)  # m_t = beta*m_{t-1} + eta_t*alpha*g_t
                if wd != 0.0:
                    p.mul_(1.0 - lr * wd)  # - eta_t*lambda*theta_{t-1}
                p.sub_(m)  # - m_t
        return loss


def weight_decay_from_norm(weight_decay_norm: float, batch_size: int, n_train: int, epochs: float) -> float:
    """Normalized weight decay to the per-step factor: ``lambda = lambda_norm * sqrt(b / (B * T))``.

    arXiv 1711.05101, Appendix B.1: ``b`` batch size, ``B`` number of training images, ``T`` total
    epochs.  Raises ``ValueError`` for a negative ``weight_decay_norm`` or non-positive sizes.
    """
    if not (math.isfinite(weight_decay_norm) and weight_decay_norm >= 0):
        raise ValueError(f"weight_decay_norm must be finite and >= 0, got {weight_decay_norm!r}")
    if batch_size < 1 or n_train < 1 or not epochs > 0:
        raise ValueError(f"need batch_size, n_train >= 1 and epochs > 0, got {batch_size}, {n_train}, {epochs}")
    return weight_decay_norm * math.sqrt(batch_size / (n_train * epochs))


_ADAM_FAMILY = ("adamw", "radam", "nadam", "amsgrad")  # the optimizers that take betas


def _adam_family(name: str, groups: list, lr: float, betas: tuple[float, float], fused: bool | None):
    """torch's Adam-family optimizer ``name`` with decoupled weight decay (``groups`` carry it)."""
    if name == "radam":
        return torch.optim.RAdam(groups, lr=lr, betas=betas, decoupled_weight_decay=True)
    if name == "nadam":
        return torch.optim.NAdam(groups, lr=lr, betas=betas, decoupled_weight_decay=True)
    amsgrad = name == "amsgrad"
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, amsgrad=amsgrad, fused=fused)
    except RuntimeError:  # fused not supported for these tensors/this torch: the foreach version
        return torch.optim.AdamW(groups, lr=lr, betas=betas, amsgrad=amsgrad)


def make_optimizer(
    name: str,
    model: torch.nn.Module,
    lr: float,
    weight_decay: float,
    *,
    momentum: float | None = None,
    betas: tuple[float, float] | None = None,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """Optimizer ``name`` (one of :data:`~trials.hparams.OPTIMIZERS`) over ``model``'s parameters.

    ``"adamw"`` torch AdamW, ``"amsgrad"`` torch AdamW with ``amsgrad=True``, ``"radam"`` /
    ``"nadam"`` torch RAdam / NAdam with ``decoupled_weight_decay=True``, ``"sgdw"`` :class:`SGDW`.

    ``lr`` is the peak learning rate alpha (a scheduler multiplies it by ``eta_t`` per step).
    ``weight_decay`` is the paper's lambda (per step at schedule multiplier 1, not times the lr);
    it applies to parameters with ``dim > 1`` (conv and linear weights), not to biases or
    BatchNorm scales/shifts.  It is passed to the optimizer as ``lambda / lr`` (see module doc), so
    every optimizer shrinks those weights by exactly ``(1 - eta_t * lambda)`` per step on top of its
    gradient update.  ``momentum`` (SGDW only, default 0.9) and ``betas`` (Adam family only,
    default ``(0.9, 0.999)``): ``None`` means the default.  ``fused`` goes to torch's AdamW
    (ignored where torch does not support it, and by RAdam/NAdam, which have no fused version).

    Raises ``ValueError`` for an unknown name (listing the choices), or for ``betas`` given with
    ``"sgdw"`` / ``momentum`` given with an Adam-family optimizer: a direct call names its
    optimizer, so a coefficient that would be silently unused is a mistake.  (A search space that
    tunes the optimizer choice goes through :func:`trials.hparams.resolve_hparams` instead, which
    drops such coefficients and records them in ``TrialResult.ignored_hparams``.)
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choices: {list(OPTIMIZERS)}")
    if name == "sgdw" and betas is not None:
        raise ValueError(f"betas={betas!r} do not apply to 'sgdw' (it has momentum only); leave betas=None")
    if name != "sgdw" and momentum is not None:
        raise ValueError(f"momentum={momentum!r} does not apply to {name!r} (it has betas); leave momentum=None")
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    wd = weight_decay / lr  # torch multiplies by the current lr = lr*eta_t -> eta_t*lambda
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    if name == "sgdw":
        return SGDW(groups, lr=lr, momentum=0.9 if momentum is None else momentum)
    return _adam_family(name, groups, lr, (0.9, 0.999) if betas is None else tuple(betas), fused)
