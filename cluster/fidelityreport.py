"""What users of a multi-fidelity campaign look at: learning curves (``curves.png``), stopped trials
and the resource they saved, from a journal's ``reports`` and ``trials`` tables.

- :func:`curves_figure` / :func:`plot_curves`: every trial's reported value against the step
  (stopped trials grey, trials that reached the full budget in colour, failed ones red), the
  rungs as vertical dashed lines; what Ray Tune's ASHA users plot from its result dataframes.
- :func:`resource_summary`: stopped trials per rung, resource consumed and saved against training
  every finished trial to ``max``.
- :func:`fidelity_status_lines`: the lines ``esopt status`` and the final summary print about it.
- :func:`rung_correlations`: how well each rung's values rank the trials as the full budget does
  (Spearman), the number that says whether successive halving can pay on this task.

Reads rows only (:class:`cluster.trialrow.TrialRow`, ``(trial_id, step, value)`` tuples from
:meth:`cluster.store.Journal.reports`); figures are drawn on matplotlib's Agg canvas without ``pyplot``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from .status import TrialStatus
from .trialrow import TrialRow

__all__ = [
    "curve_data",
    "curves_figure",
    "plot_curves",
    "resource_summary",
    "fidelity_status_lines",
    "rung_correlations",
    "spearman",
]

_STYLE = {  # status -> colour, line width, alpha, z-order
    TrialStatus.STOPPED: ("0.65", 0.8, 0.6, 1),
    TrialStatus.FAILED: ("C3", 0.8, 0.8, 2),
    TrialStatus.DONE: ("C0", 1.2, 0.9, 3),
}
_RUNNING = ("C1", 1.0, 0.9, 3)  # running, pending, cancelled: the curve so far
_NAMES = {TrialStatus.STOPPED: "stopped", TrialStatus.DONE: "full budget", TrialStatus.FAILED: "failed"}


def curve_data(reports: Iterable[tuple[int, int, float]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{trial_id: (steps, values)}``: each trial's reports sorted by step, arrays of shape ``(m,)``
    (steps as int, values as float, in the objective's units)."""
    by: dict[int, list[tuple[int, float]]] = {}
    for tid, step, value in reports:
        by.setdefault(int(tid), []).append((int(step), float(value)))
    out = {}
    for tid, pts in by.items():
        pts.sort()
        out[tid] = (np.array([s for s, _ in pts], dtype=int), np.array([v for _, v in pts], dtype=float))
    return out


def curves_figure(
    reports: Iterable[tuple[int, int, float]],
    trials: Sequence[TrialRow],
    rungs: Sequence[int],
    *,
    label: str = "objective",
    resource: str = "steps",
    title: str | None = None,
) -> Figure:
    """Learning curves: each trial's reported value against its step, one line per trial.

    Trials stopped at a rung are grey, those that reached the full budget (``done``) blue, failed
    ones red, unfinished ones orange; ``rungs`` (steps, :func:`cluster.fidelity.rungs`) are dashed
    vertical lines.  ``label`` names the value (``"validation error"`` gets a percent axis),
    ``resource`` the step unit; ``title`` defaults to ``"<label> against <resource>"``.  Without
    reports the figure says so.  800 x 450 pixels at 100 dpi.
    """
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    status = {t.id: t.status for t in trials}
    data = curve_data(reports)
    counts = Counter(_NAMES.get(status.get(t), "running") for t in data)
    shown: dict[str, Any] = {}
    for tid, (steps, values) in sorted(data.items()):
        st = status.get(tid)
        color, lw, alpha, z = _STYLE.get(st, _RUNNING)
        name = _NAMES.get(st, "running")
        (line,) = ax.plot(steps, values, "-", marker=".", ms=3, color=color, lw=lw, alpha=alpha, zorder=z)
        shown.setdefault(f"{name} ({counts[name]})", line)
    for k, r in enumerate(rungs):
        ax.axvline(r, color="0.3", ls="--", lw=0.8, zorder=0, label="rung" if k == 0 else None)
    if not data:
        ax.text(0.5, 0.5, "no report yet", ha="center", va="center", transform=ax.transAxes, color="0.4")
    if label == "validation error":
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_ylabel(f"{label}{' (%)' if label == 'validation error' else ''}\n(lower is better)")
    ax.set_xlabel(resource)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_title(title or f"{label} against {resource}")
    ax.grid(alpha=0.3)
    handles = list(shown.values()) + [h for h, lab in zip(*ax.get_legend_handles_labels()) if lab == "rung"]
    labels = list(shown) + (["rungs"] if rungs else [])
    if handles:
        ax.legend(handles, labels, loc="upper right", fontsize="small")
    fig.tight_layout()
    return fig


def plot_curves(
    reports: Iterable[tuple[int, int, float]],
    trials: Sequence[TrialRow],
    rungs: Sequence[int],
    path: str | Path,
    **kwargs: Any,
) -> Path:
    """Write :func:`curves_figure` to ``path`` (PNG, 800 x 450 pixels); returns ``path``."""
    fig = curves_figure(reports, trials, rungs, **kwargs)
    FigureCanvasAgg(fig)
    path = Path(path)
    fig.savefig(path, format="png", dpi=100)
    return path


def _used(t: TrialRow, r_max: int) -> float:
    """Steps a finished trial consumed: its last reported step (``trials.resource``); a done trial
    without reports counts the full budget."""
    if t.resource is not None:
        return float(t.resource)
    return float(r_max) if t.status is TrialStatus.DONE else 0.0


def resource_summary(trials: Sequence[TrialRow], rungs: Sequence[int]) -> dict[str, Any]:
    """The resource accounting of a multi-fidelity campaign, from its trial rows.

    Parameters
    ----------
    trials : sequence of TrialRow
        ``Journal.trials()``; ``rung`` and ``resource`` as journaled by ``add_report``.
    rungs : sequence of int
        The campaign's rungs (``FidelityConfig.rungs``); the last is ``max``.

    Returns
    -------
    dict
        ``n_stopped``; ``stopped_at`` ({rung step: trials stopped there}, increasing);
        ``n_full`` (trials that reached ``max``: done); ``used`` (steps consumed by finished trials:
        done, stopped, failed); ``full`` (what the same trials cost at ``max`` each); ``saved``
        (the steps stopping spared: ``max`` minus the steps used, summed over the stopped trials;
        a failed trial's unused steps are not a saving); ``saved_fraction`` (``saved / full``, 0
        when nothing finished); ``running_used`` (steps of unfinished trials so far).

    Raises
    ------
    ValueError
        ``rungs`` empty.
    """
    if not rungs:
        raise ValueError("rungs must not be empty (the campaign's fidelity.rungs)")
    r_max = int(rungs[-1])
    final = (TrialStatus.DONE, TrialStatus.STOPPED, TrialStatus.FAILED)
    done = [t for t in trials if t.status in final]
    stopped = [t for t in done if t.status is TrialStatus.STOPPED]
    at = Counter(int(rungs[min(t.rung or 0, len(rungs) - 1)]) for t in stopped)
    used = sum(_used(t, r_max) for t in done)
    full = float(r_max * len(done))
    saved = float(sum(r_max - _used(t, r_max) for t in stopped))  # a failed trial's rest is no saving
    return {
        "n_stopped": len(stopped),
        "stopped_at": dict(sorted(at.items())),
        "n_full": sum(t.status is TrialStatus.DONE for t in done),
        "used": used,
        "full": full,
        "saved": saved,
        "saved_fraction": saved / full if full else 0.0,
        "running_used": sum(float(t.resource or 0.0) for t in trials if t.status not in final),
    }


def _n(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def _window(fidelity: Any) -> str:
    w = getattr(fidelity, "window", None)
    return "" if w is None else f", window {w}"


def fidelity_status_lines(
    trials: Sequence[TrialRow],
    fidelity: Any,
    *,
    max_resource: float | None = None,
    reports: Iterable[tuple[int, int, float]] | None = None,
    indent: str = "",
) -> list[str]:
    """Lines about stopped trials and the resource for ``esopt status`` and the final summary.

    ``fidelity`` is the campaign's :class:`cluster.configmodel.FidelityConfig` (None: no lines);
    ``max_resource`` the ``budget.max_resource`` if set; with ``reports`` (``Journal.reports()``) and
    at least 5 trials at the full budget, a third line gives :func:`rung_correlations`.  E.g.::

        fidelity: rungs 1, 3, 9, 16 epochs (eta 3); 11 trials reached 16 epochs, 25 stopped (at 1: 18, at 3: 7)
        resource: 158 epochs used by finished trials, 418 saved (73% of 576 at the full budget); 96 of budget 400
        rank correlation with 16 epochs (Spearman, trials that reached it): at 1: 0.62 (11), at 3: 0.81 (11), ...
    """
    if fidelity is None:
        return []
    rungs = list(fidelity.rungs)
    s = resource_summary(trials, rungs)
    unit = fidelity.resource
    where = ", ".join(f"at {r}: {n}" for r, n in s["stopped_at"].items())
    first = (
        f"{indent}fidelity: rungs {', '.join(map(str, rungs))} {unit} (eta {fidelity.eta:g}{_window(fidelity)}); "
        f"{s['n_full']} trial{'s' if s['n_full'] != 1 else ''} reached {rungs[-1]} {unit}, {s['n_stopped']} stopped"
        + (f" ({where})" if where else "")
    )
    second = (
        f"{indent}resource: {_n(s['used'])} {unit} used by finished trials, {_n(s['saved'])} saved "
        f"({100 * s['saved_fraction']:.0f}% of {_n(s['full'])} at the full budget)"
    )
    if s["running_used"]:
        second += f"; {_n(s['running_used'])} by running trials"
    if max_resource is not None:
        second += f"; {_n(s['used'] + s['running_used'])} of budget {_n(max_resource)}"
    out = [first, second]
    corr = rung_correlations(reports, trials, rungs) if reports is not None else {}
    if corr and min(n for _, n in corr.values()) >= 5:
        parts = ", ".join(f"at {r}: {c:.2f} ({n})" for r, (c, n) in corr.items())
        out.append(f"{indent}rank correlation with {rungs[-1]} {unit} (Spearman, trials that reached it): {parts}")
    return out


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with ties averaged (Spearman's convention)."""
    order = np.argsort(a, kind="stable")
    r = np.empty(len(a), dtype=float)
    r[order] = np.arange(len(a), dtype=float)
    for v in np.unique(a):
        tie = a == v
        if tie.sum() > 1:
            r[tie] = r[tie].mean()
    return r


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (ties get average ranks); NaN for
    fewer than 3 pairs or a constant sequence.  Raises ``ValueError`` for different lengths."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"a and b must be 1-D of one length, got {x.shape} and {y.shape}")
    if x.size < 3:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def rung_correlations(
    reports: Iterable[tuple[int, int, float]], trials: Sequence[TrialRow], rungs: Sequence[int]
) -> dict[int, tuple[float, int]]:
    """How well each rung predicts the full budget: ``{rung step: (Spearman, n)}`` over the trials
    that reached ``max`` (``done``), between the value each reported at the rung's step and its value
    at ``max``.

    Successive halving pays when the first rung already ranks configurations as the full budget
    does (``bench/multifidelity.py``: with a first-rung correlation of about 0.6 or more it found
    the synthetic optimum with less resource than full-budget CMA-ES; below about 0.45 it did
    worse): if ``fidelity.min``'s value here is low, raise ``fidelity.min`` to a step where it is
    high.  The trials that reached ``max`` were selected by the rungs, so this underestimates the
    correlation over all configurations (a range restriction); a few full-budget trials sampled
    without stopping measure it without that bias.  The last rung (``max`` itself) is left out.
    """
    full = {t.id for t in trials if t.status is TrialStatus.DONE}
    data = {t: c for t, c in curve_data(reports).items() if t in full}
    r_max = int(rungs[-1]) if rungs else None
    out: dict[int, tuple[float, int]] = {}
    for r in rungs[:-1]:
        pairs = []
        for steps, values in data.values():
            at, last = np.nonzero(steps == r)[0], np.nonzero(steps == r_max)[0]
            if at.size and last.size:
                pairs.append((values[at[0]], values[last[0]]))
        a, b = (list(v) for v in zip(*pairs)) if pairs else ([], [])
        out[int(r)] = (spearman(a, b), len(pairs))
    return out
