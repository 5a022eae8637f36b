"""The campaign's side of multi-fidelity: reports journaled, ASHA decisions, stopped trials, ranking.

:class:`FidelityTracker` sits between the executor's report events and :class:`cluster.fidelity.ASHA`
(asynchronous successive halving, Li et al., arXiv 1810.05934, stopping variant as Ray Tune's
``ASHAScheduler``), for the synchronous and the asynchronous loop alike:

* ``reported(task, step, value, at)``: the report is checked, journaled (``reports`` table, the
  trial's ``resource`` and ``rung``) and only then decided (True: go on; False: stop the trial);
  an unusable report (steps not increasing, a non-finite value) fails that trial with the reason,
  and the campaign goes on;
* ``outcome(o)``: a trial that ends after ASHA stopped it is ``stopped`` (its rung recorded), not
  ``done``; one with an unusable report ``failed``;
* ``fitness(ids, objectives)``: what the strategy is told, lexicographic in (highest rung reached,
  value there) (:func:`cluster.fidelity.lexicographic_fitness`): evolution strategies use only the
  ranks within a tell, so a stopped trial ranks below every trial that went further and, within its
  rung, by its value there.  What is lost: how much worse than the trials of a higher rung a stopped
  trial would have ended (only "worse" survives), and between trials stopped at different rungs, the
  order their full-budget values would have had.  The bias that remains: a configuration that
  learns slowly but ends well (low-fidelity values poorly correlated with the final one) ranks low;
  see ``bench/multifidelity.py``'s synthetic study.

The campaign's best, ``esopt status`` and the summary count only ``done`` trials (those that
reached ``fidelity.max``).  Resume: ASHA's rungs are rebuilt from the journal
(:meth:`cluster.fidelity.ASHA.from_journal`); a trial that was running restarts from step 0 (its
reports are deleted first, :meth:`prepare_rerun`); no trial checkpointing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .executor import TrialOutcome, TrialTask
from .fidelity import ASHA, FidelityError
from .status import FailureKind, TrialStatus

__all__ = ["FidelityTracker"]


class FidelityTracker:
    """ASHA decisions for one campaign run, journaled (see the module docstring).

    Parameters
    ----------
    journal : cluster.store.Journal
    fidelity : cluster.configmodel.FidelityConfig
    """

    def __init__(self, journal, fidelity):
        self.journal, self.fidelity = journal, fidelity
        self.asha = ASHA.from_journal(journal, fidelity)
        self.bad: dict[int, str] = {}  # trial id -> why its reports were refused
        self.last: dict[int, float] = {}  # trial id -> its latest reported value

    def prepare_rerun(self, task: TrialTask) -> None:
        """A trial about to run again from step 0 (resume, retry): forget its reports."""
        tid = task.trial_id
        self.asha.forget(tid)
        self.bad.pop(tid, None)
        self.last.pop(tid, None)
        self.journal.reset_reports(tid)

    def reported(self, task: TrialTask, step: Any, value: Any, at: float | None) -> bool:
        """Journal the report, then decide: True = go on, False = stop the trial."""
        tid = task.trial_id
        if tid in self.bad:
            return False
        try:
            s, v = self.asha.check_report(tid, step, value)
        except FidelityError as e:
            self.bad[tid] = str(e)
            return False
        if self.asha.is_stopped(tid):  # a late report of a stopped trial: resource used, not journaled twice
            self.asha.on_report(tid, s, v)
            return False
        k = self.asha.rung_of(s)
        self.journal.add_report(tid, s, v, reported_at=at, rung=k)
        self.last[tid] = v
        return self.asha.on_report(tid, s, v)

    def outcome(self, o: TrialOutcome) -> TrialOutcome:
        """``o`` as the journal records it: ``stopped`` after an ASHA stop, ``failed`` after an
        unusable report, else unchanged."""
        tid = o.task.trial_id
        if tid in self.bad and o.status != TrialStatus.CANCELLED:
            kind = FailureKind.FAILED
            return TrialOutcome.failure(o.task, kind, f"bad report: {self.bad[tid]}", result=o.result)
        if self.asha.is_stopped(tid) and o.status == TrialStatus.DONE:
            o.status = TrialStatus.STOPPED
        return o

    def ignored_stop(self, task: TrialTask) -> TrialOutcome:
        """The outcome of a stopped trial that kept training and was cancelled: ``stopped`` with its
        latest reported value."""
        return TrialOutcome(
            task, TrialStatus.STOPPED, objective=self.last.get(task.trial_id), error="cancelled: ignored the stop"
        )

    def fitness(self, trial_ids, objectives) -> np.ndarray:
        """Fitness of one tell's trials (``(k,)``, NaN for failed ones): (highest rung, value there)."""
        return self.asha.fitness(list(trial_ids), list(objectives))

    @property
    def resource_used(self) -> int:
        """Steps consumed by all trials so far (the sum of each one's last reported step)."""
        return self.asha.resource_used
