"""SGDR: cosine annealing with warm restarts (Loshchilov & Hutter, arXiv 1608.03983), stepped per batch.

The schedule is a *multiplier* ``eta_t`` in ``[eta_min, 1]`` of the peak learning rate (and, as in
arXiv 1711.05101, of the decoupled weight decay).  ``t`` is the fractional epoch: batch ``i`` of
``n`` in epoch ``e`` (0-based) uses ``t = e + i / n``.

Why not ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``: it requires an integer ``T_0``
(in scheduler steps) and an integer ``T_mult`` (checked in its constructor in torch 2.13), and its
``step(epoch)`` form with a float epoch is deprecated.  Tuning ``T_0`` in fractional epochs and a
fractional ``T_mult`` needs neither restriction, so the closed form below drives a ``LambdaLR``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["sgdr_period", "sgdr_multiplier", "sgdr_restarts", "make_sgdr"]


def _check(T_0: float, T_mult: float, eta_min: float) -> None:
    if not (math.isfinite(T_0) and T_0 > 0):
        raise ValueError(f"T_0 must be a finite number of epochs > 0, got {T_0!r}")
    if not (math.isfinite(T_mult) and T_mult >= 1):
        raise ValueError(f"T_mult must be >= 1, got {T_mult!r}")
    if not (0.0 <= eta_min <= 1.0):
        raise ValueError(f"eta_min is a fraction of lr and must be in [0, 1], got {eta_min!r}")


def sgdr_period(t: float, T_0: float, T_mult: float) -> tuple[int, float, float]:
    """Which SGDR period the fractional epoch ``t >= 0`` falls in.

    Returns ``(i, T_cur, T_i)``: period index ``i`` (0-based), epochs since its restart ``T_cur`` in
    ``[0, T_i)``, and its length ``T_i = T_0 * T_mult**i`` (epochs).  Period ``i`` starts at
    ``S_i = T_0 * (T_mult**i - 1) / (T_mult - 1)`` (``= i * T_0`` for ``T_mult = 1``), i.e. restarts
    happen at ``T_0, T_0 * (1 + T_mult), ...`` (Section 3 of arXiv 1608.03983).

    Raises ``ValueError`` for ``t < 0``, ``T_0 <= 0`` or ``T_mult < 1``.
    """
    _check(T_0, T_mult, 0.0)
    if not (math.isfinite(t) and t >= 0):
        raise ValueError(f"epoch t must be finite and >= 0, got {t!r}")
    if T_mult == 1.0:
        i = int(t // T_0)
        start = i * T_0
    else:
        i = int(math.floor(math.log1p(t * (T_mult - 1) / T_0) / math.log(T_mult)))
        start = T_0 * (T_mult**i - 1) / (T_mult - 1)
        # guard against rounding at a period boundary
        while start > t and i > 0:
            i -= 1
            start = T_0 * (T_mult**i - 1) / (T_mult - 1)
        while t - start >= T_0 * T_mult**i:
            start += T_0 * T_mult**i
            i += 1
    T_i = T_0 * T_mult**i
    return i, min(max(t - start, 0.0), T_i), T_i


def sgdr_multiplier(t: float, T_0: float, T_mult: float = 1.0, eta_min: float = 0.0) -> float:
    """SGDR schedule multiplier at fractional epoch ``t`` (Eq. (5) of arXiv 1608.03983).

    ``eta_t = eta_min + (1 - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2``, Eq. (5) with
    ``eta_max = 1`` and ``eta_min`` as a fraction of the peak lr; ``T_cur``/``T_i`` from
    :func:`sgdr_period`.  Equals 1 at each restart and tends to ``eta_min`` at its end.

    Raises ``ValueError`` for ``t < 0``, ``T_0 <= 0``, ``T_mult < 1`` or ``eta_min`` outside [0, 1].
    """
    _check(T_0, T_mult, eta_min)
    _, T_cur, T_i = sgdr_period(t, T_0, T_mult)
    return eta_min + (1.0 - eta_min) * 0.5 * (1.0 + math.cos(math.pi * T_cur / T_i))  # Eq. (5)


def sgdr_restarts(T_0: float, T_mult: float, until: float) -> list[float]:
    """Epochs at which SGDR restarts, up to and including ``until``: ``T_0, T_0*(1+T_mult), ...``."""
    _check(T_0, T_mult, 0.0)
    out, start, length = [], 0.0, T_0
    while start + length <= until:
        start += length
        out.append(start)
        length *= T_mult
    return out


def make_sgdr(
    optimizer: torch.optim.Optimizer, T_0: float, T_mult: float, eta_min: float, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` that sets each group's lr to ``initial_lr * sgdr_multiplier(step / steps_per_epoch)``.

    Call ``scheduler.step()`` after every ``optimizer.step()`` (per batch).  The lr of the first
    batch is the peak lr.  Raises ``ValueError`` for invalid schedule parameters or
    ``steps_per_epoch < 1``.
    """
    _check(T_0, T_mult, eta_min)
    if int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
    n = int(steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: sgdr_multiplier(step / n, T_0, T_mult, eta_min))
