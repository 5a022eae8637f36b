"""One row of the journal's ``trials`` table, decoded: :class:`TrialRow`.

Built from a ``sqlite3.Row`` (:meth:`TrialRow.from_row`): the ``*_json`` columns are decoded and
named without the suffix (``x_json`` -> ``x``), ``status`` is a :class:`cluster.status.TrialStatus`.
Until esopt 0.3 a row also reads like the dict :meth:`cluster.store.Journal.trials` returned in
0.1.0 (``row["status"]``, ``row.get("objective")``, ``dict(row)``); new code should use the
attributes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .journalschema import columns
from .status import FailureKind, TrialStatus, failure_reason

__all__ = ["TrialRow", "TRIAL_COLUMNS"]

#: The ``trials`` columns in the order :class:`TrialRow` reads them (``SELECT`` list).
TRIAL_COLUMNS: tuple[str, ...] = tuple(columns("trials"))


def _field(column: str) -> str:
    return column[: -len("_json")] if column.endswith("_json") else column


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class TrialRow(Mapping):
    """A trial as stored.

    Attributes
    ----------
    id, generation, idx : int
        Journal id; generation (from 1); row in the population (from 0).
    x : list of float, length d
        The candidate in the strategy's coordinates (exact float round trip): the unit cube for
        continuous strategies; with ``catcmawm``, integers and category indices for integer and
        categorical hyperparameters (:class:`cluster.space.Space`).
    params : dict
        Decoded hyperparameters in their own units.
    status : TrialStatus
    objective : float or None
        Set only for ``done`` trials with a finite value.
    result : dict or None
        The objective's full result (NaN/inf kept as Python floats).
    error : str or None
        Why it failed, starting with its :class:`cluster.status.FailureKind` (or why it was cancelled).
    attempts : int
        Submissions so far.
    node_id, worker_id : str or None
        Ray ids of where it (last) ran.
    started_at, finished_at : float or None
        Unix seconds (driver clock; the virtual clock in a simulated campaign).
    told_generation, told_pos : int or None
        The tell (1-based) whose ``(popsize, d)`` array held it, and its row there; None while
        untold (and in journals of esopt 0.1, where a trial was told with its ``generation`` at row
        ``idx``).  In an asynchronous campaign ``generation`` is the generation whose distribution
        produced the candidate, which may be older than ``told_generation``.
    finish_seq : int or None
        Completion order over the campaign (1, 2, ...).
    rung, resource : int, float or None
        With ``fidelity``: the highest rung reached (0 = first) and the last step reported.
    """

    id: int
    generation: int
    idx: int
    x: list
    params: dict
    status: TrialStatus
    objective: float | None
    result: dict | None
    error: str | None
    attempts: int
    node_id: str | None
    worker_id: str | None
    started_at: float | None
    finished_at: float | None
    told_generation: int | None = None
    told_pos: int | None = None
    finish_seq: int | None = None
    rung: int | None = None
    resource: float | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row | tuple) -> TrialRow:
        """Decode one row selected with ``TRIAL_COLUMNS`` (a ``sqlite3.Row`` or a plain tuple).

        Raises ``ValueError`` for a status that is not a :class:`TrialStatus` value.
        """
        values = dict(zip(TRIAL_COLUMNS, tuple(row)))
        for col in ("x_json", "params_json", "result_json"):
            values[col] = _loads(values[col])
        values["status"] = TrialStatus(values["status"])
        values["attempts"] = values["attempts"] or 0
        return cls(**{_field(c): v for c, v in values.items()})

    @property
    def failure_kind(self) -> FailureKind | None:
        """The kind of failure of a ``failed`` trial (from its ``error``), else None."""
        return FailureKind.of(self.error) if self.status is TrialStatus.FAILED else None

    @property
    def failure_reason(self) -> str | None:
        """The first line of the error of a ``failed`` trial without its kind prefix where the
        rest names the error (``"ValueError: ..."``), see :func:`cluster.status.failure_reason`."""
        return failure_reason(self.error) if self.status is TrialStatus.FAILED else None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the fields (``status`` as its string), JSON-ready."""
        d = asdict(self)
        d["status"] = self.status.value
        return d

    # dict-style reading, kept for 0.1.0 callers (deprecated; use the attributes)
    def __getitem__(self, key: str) -> Any:
        if key not in _NAMES:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_NAMES)

    def __len__(self) -> int:
        return len(_NAMES)


_NAMES: tuple[str, ...] = tuple(f.name for f in fields(TrialRow))
