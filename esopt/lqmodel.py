"""The linear-quadratic global surrogate model of lq-CMA-ES.

Hansen, "A Global Surrogate Assisted CMA-ES", GECCO 2019, pp. 664-672 (doi 10.1145/3321707.3321842,
hal-02143961), Sect. 2: the model of ``f`` is linear in the features ``z(x)``, and as data accrue
it grows from *linear* (``1, x_1..x_p``: ``p + 1`` coefficients) to *diagonal quadratic*
(``+ x_i**2``: ``2p + 1``) to *full quadratic* (``+ x_i x_j, i < j``: ``p(p + 3)/2 + 1``).  A kind
is used once ``truncation_ratio * size >= min_relative_size * dof(kind)``.  The coefficients are
the minimum-norm weighted least-squares solution (the Moore-Penrose pseudoinverse) over the
best ``max(dof + 2, truncation_ratio * (size + 1))`` archived points, weighted linearly from
``max_weight`` (the best) down to 1 by rank, so the fit concentrates where the search is.  The
archive keeps the newest ``max(max_relative_size * dof(full), min_size)`` points.  Constants are
pycma 4.5.0's (``cma.fitness_models.LQModelSettings``, read from its source): truncation ratio
3/4, max weight 20, min relative size 1.1, max relative size 2.

The data are features, not the strategy's coordinates: :func:`features` maps a ``(m, n)`` array
of candidates to ``(m, p)`` (continuous and integer coordinates as they are, each categorical
coordinate as its one-hot block of ``K`` columns).  Non-finite objective values are never added
(a failed evaluation says nothing about the shape of ``f``).

Cost: fitting is ``O(m q^2)`` for ``m`` archived points and ``q`` coefficients (``q ~ p^2/2`` for
the full model), so the model is meant for expensive objectives of up to a few dozen
coordinates, as in the paper (dimensions 2 to 20).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LQModel", "LQArchive", "features", "n_features"]


def n_features(n: int, categories: Mapping[int, int]) -> int:
    """Number of feature columns ``p`` for ``n`` coordinates with ``categories`` ``{j: K_j}``."""
    return n + sum(int(k) - 1 for k in categories.values())


def features(X: np.ndarray, categories: Mapping[int, int]) -> np.ndarray:
    """Feature rows of candidates ``X`` ``(m, n)`` -> ``(m, p)`` floats (see module docstring).

    A categorical coordinate ``j`` holds a category index ``0..K_j-1`` (rounded here); it becomes
    ``K_j`` one-hot columns in its place.  Without categoricals the features are ``X`` itself (a
    float copy).
    """
    X = np.asarray(X, dtype=float)
    if not categories:
        return X.copy()
    cols = []
    for j in range(X.shape[1]):
        k = categories.get(j)
        if k is None:
            cols.append(X[:, j : j + 1])
        else:
            idx = np.clip(np.rint(X[:, j]).astype(int), 0, int(k) - 1)
            cols.append(np.eye(int(k))[idx])
    return np.concatenate(cols, axis=1)


@dataclass
class LQArchive:
    """The model's data (checkpointed as ``surrogate.model.*``).

    Attributes
    ----------
    Z : ndarray (m, p)
        Feature rows, newest first.
    F : ndarray (m,)
        Their finite objective values.
    """

    Z: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    F: np.ndarray = field(default_factory=lambda: np.empty(0))


class LQModel:
    """Linear -> diagonal -> full quadratic surrogate of ``f`` on ``p`` features (module docstring).

    Parameters
    ----------
    p : int >= 1
        Number of features.
    min_size : int >= 0
        The archive keeps at least this many newest points (the wrapper passes the popsize, as
        pycma's ``max_absolute_size``).
    truncation_ratio, max_weight, min_relative_size, max_relative_size : float
        The paper's constants (defaults pycma 4.5.0's).

    Raises
    ------
    ValueError
        For ``p < 1``, ``truncation_ratio`` outside ``(0, 1]`` or ``max_weight < 1``.
    """

    def __init__(
        self,
        p: int,
        *,
        min_size: int = 0,
        truncation_ratio: float = 0.75,
        max_weight: float = 20.0,
        min_relative_size: float = 1.1,
        max_relative_size: float = 2.0,
    ):
        if int(p) < 1:
            raise ValueError(f"the model needs at least one feature, got p={p}")
        if not 0 < truncation_ratio <= 1:
            raise ValueError(f"truncation_ratio must lie in (0, 1], got {truncation_ratio}")
        if max_weight < 1:
            raise ValueError(f"max_weight must be >= 1, got {max_weight}")
        self.p = int(p)
        self.min_size = int(min_size)
        self.truncation_ratio = float(truncation_ratio)
        self.max_weight = float(max_weight)
        self.min_relative_size = float(min_relative_size)
        self.max_relative_size = float(max_relative_size)
        self.archive = LQArchive(np.empty((0, self.p)), np.empty(0))
        self._coef: np.ndarray | None = None

    # ----- size and kind ---------------------------------------------------------------------------
    @staticmethod
    def dof(kind: str, p: int) -> int:
        """Coefficients of ``kind`` (``"linear"``, ``"diagonal"``, ``"full"``) on ``p`` features."""
        return {"linear": p + 1, "diagonal": 2 * p + 1, "full": p * (p + 3) // 2 + 1}[kind]

    @property
    def size(self) -> int:
        """Archived points ``m``."""
        return int(self.archive.F.size)

    @property
    def kind(self) -> str:
        """The most complex kind the archive supports (``truncation_ratio * m >= 1.1 * dof``)."""
        for kind in ("full", "diagonal"):
            if self.truncation_ratio * self.size >= self.min_relative_size * self.dof(kind, self.p):
                return kind
        return "linear"

    @property
    def max_size(self) -> int:
        """Archive limit: ``max(max_relative_size * dof(full), min_size)``."""
        return int(max(self.max_relative_size * self.dof("full", self.p), self.min_size))

    # ----- data ------------------------------------------------------------------------------------
    def add(self, Z: np.ndarray, F: np.ndarray) -> None:
        """Add feature rows ``Z`` ``(k, p)`` with values ``F`` ``(k,)``; non-finite values are skipped;
        the oldest points beyond :attr:`max_size` are dropped.  Raises ``ValueError`` on shapes."""
        Z = np.asarray(Z, dtype=float).reshape(-1, self.p)
        F = np.asarray(F, dtype=float).reshape(-1)
        if Z.shape[0] != F.size:
            raise ValueError(f"Z has {Z.shape[0]} rows but F has {F.size} values")
        keep = np.isfinite(F)
        a = self.archive
        a.Z = np.concatenate([Z[keep][::-1], a.Z])[: self.max_size]
        a.F = np.concatenate([F[keep][::-1], a.F])[: self.max_size]
        self._coef = None

    def reset(self) -> None:
        """Forget every point (after a restart with a larger population, as pycma); the
        :attr:`archive` object stays the same (a strategy's progress refers to it)."""
        self.archive.Z, self.archive.F = np.empty((0, self.p)), np.empty(0)
        self._coef = None

    def expand(self, Z: np.ndarray) -> np.ndarray:
        """Regressors of the current :attr:`kind` for feature rows ``Z`` ``(k, p)`` -> ``(k, dof)``."""
        Z = np.asarray(Z, dtype=float).reshape(-1, self.p)
        parts = [np.ones((Z.shape[0], 1)), Z]
        kind = self.kind
        if kind in ("diagonal", "full"):
            parts.append(Z**2)
        if kind == "full":
            i, j = np.triu_indices(self.p, k=1)
            parts.append(Z[:, i] * Z[:, j])
        return np.concatenate(parts, axis=1)

    @property
    def coefficients(self) -> np.ndarray:
        """Weighted minimum-norm least-squares coefficients ``(dof,)`` (zeros with no data)."""
        if self._coef is None:
            a = self.archive
            A = self.expand(a.Z)
            if self.size == 0:
                self._coef = np.zeros(A.shape[1])
            else:
                n_fit = min(self.size, max(A.shape[1] + 2, int(self.truncation_ratio * (self.size + 1))))
                idx = np.argsort(a.F, kind="stable")[:n_fit]
                w = np.linspace(self.max_weight, 1.0, n_fit)
                self._coef = np.linalg.lstsq(A[idx] * w[:, None], a.F[idx] * w, rcond=None)[0]
        return self._coef

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """Model values ``(k,)`` of feature rows ``Z`` ``(k, p)``."""
        return self.expand(Z) @ self.coefficients

    def kendall(self, number: int) -> float:
        """Kendall's tau between the true values of the ``number`` newest points and the model's
        (0 with fewer than 3 points or when undefined, e.g. all values equal)."""
        from scipy.stats import kendalltau  # deferred: scipy.stats is slow to import

        k = min(int(number), self.size)
        if k < 3:
            return 0.0
        a = self.archive
        tau = kendalltau(a.F[:k], self.predict(a.Z[:k])).statistic
        return float(tau) if np.isfinite(tau) else 0.0
