"""Benchmark functions, vectorized over a population.

Each function takes ``x`` of shape ``(n,)`` and returns a float, or shape ``(popsize, n)`` and
returns an array of shape ``(popsize,)``.  All have their minimum 0 at ``x = 0`` except
``rosenbrock`` (at ``x = 1``).  They are the raw forms of the BBOB functions (Hansen et al.,
"Real-parameter black-box optimization benchmarking 2009: noiseless functions definitions",
INRIA RR-6829): ellipsoid f10, discus f11, bent cigar f12, different powers f14 (without the
square root), rosenbrock f8, rastrigin f3, without shifts, scalings and irregularities.

Each row of a population gives bit-for-bit the value of the single call (no BLAS products whose
rounding depends on the batch size), so scalar and vectorized runs of ``esopt.minimize`` agree.

Raises ``ValueError`` for arrays of other dimensionality or with ``n = 0``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "sphere",
    "ellipsoid",
    "rotated_ellipsoid",
    "cigar",
    "discus",
    "diffpowers",
    "rosenbrock",
    "rastrigin",
    "rotation",
    "FUNCTIONS",
]


def _as2d(x) -> tuple[np.ndarray, bool]:
    a = np.asarray(x, dtype=float)
    if a.ndim not in (1, 2) or a.shape[-1] == 0:
        raise ValueError(f"x must have shape (n,) or (popsize, n) with n >= 1, got {a.shape}")
    return (a[None, :], True) if a.ndim == 1 else (a, False)


def _out(v: np.ndarray, single: bool):
    return float(v[0]) if single else v


def _scales(n: int, cond: float) -> np.ndarray:
    """``cond ** (i / (n-1))``, ``i = 0..n-1`` (all ones for ``n = 1``)."""
    return cond ** (np.arange(n) / max(n - 1, 1))


def sphere(x):
    """``sum x_i^2``."""
    a, single = _as2d(x)
    return _out(np.einsum("ij,ij->i", a, a), single)


def ellipsoid(x, cond: float = 1e6):
    """Axis-parallel ellipsoid ``sum cond^(i/(n-1)) x_i^2`` (condition number ``cond``, default 1e6)."""
    a, single = _as2d(x)
    return _out(np.sum(a * a * _scales(a.shape[1], cond), axis=1), single)


@lru_cache(maxsize=32)
def _rotation(n: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed).standard_normal((n, n))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))  # Haar-distributed orthogonal matrix
    q.setflags(write=False)
    return q


def rotation(n: int, seed: int = 0) -> np.ndarray:
    """The fixed random orthogonal ``(n, n)`` matrix for ``seed`` (QR of a Gaussian matrix from
    ``numpy.random.default_rng(seed)``), cached and read-only."""
    return _rotation(int(n), int(seed))


def rotated_ellipsoid(x, cond: float = 1e6, seed: int = 0):
    """``ellipsoid(x @ R.T)`` with ``R = rotation(n, seed)``: a non-separable ellipsoid."""
    a, single = _as2d(x)
    # einsum without BLAS: each row is computed the same way whatever the batch size
    return _out(ellipsoid(np.einsum("ij,kj->ik", a, rotation(a.shape[1], seed)), cond), single)


def cigar(x, cond: float = 1e6):
    """``x_1^2 + cond * sum_{i>1} x_i^2``."""
    a, single = _as2d(x)
    return _out(a[:, 0] ** 2 + cond * np.einsum("ij,ij->i", a[:, 1:], a[:, 1:]), single)


def discus(x, cond: float = 1e6):
    """``cond * x_1^2 + sum_{i>1} x_i^2``."""
    a, single = _as2d(x)
    return _out(cond * a[:, 0] ** 2 + np.einsum("ij,ij->i", a[:, 1:], a[:, 1:]), single)


def diffpowers(x):
    """Different powers ``sum |x_i|^(2 + 4 i/(n-1))``."""
    a, single = _as2d(x)
    expo = 2 + 4 * np.arange(a.shape[1]) / max(a.shape[1] - 1, 1)
    return _out(np.sum(np.abs(a) ** expo, axis=1), single)


def rosenbrock(x):
    """``sum_{i<n} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2``; minimum 0 at ``x = 1`` (n >= 2)."""
    a, single = _as2d(x)
    if a.shape[1] < 2:
        raise ValueError("rosenbrock needs n >= 2")
    return _out(np.sum(100 * (a[:, 1:] - a[:, :-1] ** 2) ** 2 + (1 - a[:, :-1]) ** 2, axis=1), single)


def rastrigin(x):
    """``10 n + sum (x_i^2 - 10 cos(2 pi x_i))``; multimodal, minimum 0 at 0."""
    a, single = _as2d(x)
    return _out(10 * a.shape[1] + np.sum(a * a - 10 * np.cos(2 * np.pi * a), axis=1), single)


FUNCTIONS = {
    "sphere": sphere,
    "ellipsoid": ellipsoid,
    "rotated_ellipsoid": rotated_ellipsoid,
    "cigar": cigar,
    "discus": discus,
    "diffpowers": diffpowers,
    "rosenbrock": rosenbrock,
    "rastrigin": rastrigin,
}
