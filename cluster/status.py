"""The states a campaign and its trials go through, and the kinds of trial failure.

One definition each (as Optuna's ``TrialState``).  Every enum is a ``str`` enum: a member
compares equal to the string stored in the journal (``TrialStatus.DONE == "done"``), so readers
that still compare strings keep working, and ``TrialStatus(row_value)`` parses a stored value.

Failure kinds are stored in the journal's ``error`` column as the prefix of the message
(``"exception: ValueError: ..."``, ``"timeout"``, ``"system: ..."``), the format esopt 0.1.0
wrote; :meth:`FailureKind.of` reads that prefix back and :meth:`FailureKind.message` writes it.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["CampaignStatus", "TrialStatus", "FailureKind", "failure_reason"]


class CampaignStatus(str, Enum):
    """``campaign.status`` in the journal."""

    RUNNING = "running"  # a driver runs it (or died without updating the row: see driver_pid)
    DONE = "done"  # the budget or the strategy's criteria stopped it (``meta.stop`` says which)
    FAILED = "failed"  # an error or ``failures.on_error: abort`` ended it (``message`` says why)
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM; resumable

    def __str__(self) -> str:
        return self.value


class TrialStatus(str, Enum):
    """``trials.status`` in the journal; ``FINISHED`` are the final ones."""

    PENDING = "pending"  # asked, not yet handed to Ray
    RUNNING = "running"  # submitted (``started_at`` is then the submission or the worker's start)
    DONE = "done"  # finished with a finite objective
    FAILED = "failed"  # finished without a usable objective (``error`` starts with its FailureKind)
    CANCELLED = "cancelled"  # stopped by the driver (Ctrl-C, abort); re-run on resume
    STOPPED = "stopped"  # stopped early by the fidelity scheduler at a rung (``trials.rung``); final

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        """True for ``done``, ``failed``, ``stopped`` and ``cancelled`` (the statuses ``finish_trial`` writes)."""
        return self in (TrialStatus.DONE, TrialStatus.FAILED, TrialStatus.STOPPED, TrialStatus.CANCELLED)


class FailureKind(str, Enum):
    """Why a trial failed, as the executor distinguishes it (the prefix of ``trials.error``).

    ``policy_applies`` says whether ``failures.on_error`` (penalty / retry / abort) decides what
    happens next: system failures are resubmitted by the executor and then penalized, a diverged trial
    is an outcome of its hyperparameters; both are penalized whatever ``on_error`` says.
    """

    EXCEPTION = "exception"  # the objective raised (message: "exception: <Type>: <text>")
    FAILED = "failed"  # the objective returned status "failed" (message: "failed: <reason>")
    DIVERGED = "diverged"  # status "diverged" with a non-finite objective ("diverged: <reason>")
    NONFINITE = "non-finite objective"  # a NaN/inf objective ("non-finite objective (nan)")
    TIMEOUT = "timeout"  # ran longer than resources.timeout_s and was cancelled
    SYSTEM = "system"  # the worker or node died and Ray's retries ran out ("system: <Ray error>")
    ERROR = "error"  # an error in the trial task outside the objective ("error: <text>")

    def __str__(self) -> str:
        return self.value

    @property
    def policy_applies(self) -> bool:
        """True when ``failures.on_error`` governs this kind (all but ``diverged`` and ``system``)."""
        return self not in (FailureKind.DIVERGED, FailureKind.SYSTEM)

    def message(self, detail: str | None = None) -> str:
        """The journal's ``error`` text: ``"<kind>: <detail>"`` (``"timeout"`` alone without detail;
        ``"non-finite objective (<detail>)"`` for NONFINITE)."""
        if detail is None or detail == "":
            return self.value
        if self is FailureKind.NONFINITE:
            return f"{self.value} ({detail})"
        return f"{self.value}: {detail}"

    @classmethod
    def of(cls, error: str | None) -> FailureKind | None:
        """The kind an ``error`` text starts with (``None`` for no text or an unknown prefix).

        A retry's ``"attempt N <kind>: ..."`` prefix is skipped.
        """
        if not error:
            return None
        text = _strip_attempt(error)
        for kind in cls:
            v = kind.value
            if text == v or text.startswith((v + ":", v + " (")):
                return kind
        return None


def _strip_attempt(error: str) -> str:
    if error.startswith("attempt "):
        head, _, rest = error.partition(" ")[2].partition(" ")
        if head.isdigit():
            return rest
    return error


def failure_reason(error: str | None) -> str:
    """The first line of ``error`` without the kind prefix where the rest names the error itself.

    ``"exception: ValueError: bad\\n..."`` -> ``"ValueError: bad"``; ``"failed: ValueError: x"``
    -> ``"ValueError: x"``; ``"timeout"``, ``"diverged: loss nan"`` and ``"system: ..."`` stay as they
    are (the kind is the information).  ``None`` or empty -> ``"unknown error"``.
    """
    if not error:
        return "unknown error"
    text = _strip_attempt(error).strip().splitlines()[0] if error.strip() else ""
    kind = FailureKind.of(text)
    if kind in (FailureKind.EXCEPTION, FailureKind.FAILED, FailureKind.ERROR):
        text = text[len(kind.value) + 1 :].strip()
    return text or "unknown error"
