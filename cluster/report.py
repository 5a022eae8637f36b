"""Plots and a table from a campaign journal (read-only; works while the campaign runs).

``write_report(DIR)`` writes into ``DIR/report`` (or ``out``):

- ``objective.png``: every evaluation's objective, the best so far and the median of each
  generation, against the evaluation number; titled with the campaign's name and the objective
  (``validation error`` in percent for ``trials:train_and_evaluate``, else ``module:function``);
  without a successful trial it says why (``all 8 trials failed``, ``no finished trial yet``);
- ``sigma.png``: the strategy's step size ``sigma`` after each generation's tell (unit-cube
  coordinates, i.e. a fraction of every hyperparameter's scaled range; log axis, decimal ticks);
- ``params.png``: per hyperparameter, the sampled values per generation and the mean of the search
  distribution each generation was sampled from, in the hyperparameter's own units (log axis for
  ``scale: log10``), one legend for all panels;
- ``trials.csv``: one row per trial (every status), hyperparameters in their own units, times in
  ISO-8601 UTC (columns: :func:`write_trials_csv`);
- ``curves.png`` (multi-fidelity campaigns, a ``fidelity`` section or journaled reports): every
  trial's reported value against the step, stopped trials grey, the rungs marked
  (:func:`cluster.fidelityreport.curves_figure`).

Evaluations are numbered in the order the strategy sees them, ``(generation, idx)``, counting
finished trials of the statuses ``done``, ``stopped`` and ``failed`` (a failed or stopped trial used
up budget too); so the numbering is the same after a resume as in an uninterrupted campaign.  A
trial stopped at a rung shows its value there (grey); the best so far counts only ``done`` trials
(with ``fidelity``: those that reached the full budget).  Figures are drawn with
matplotlib's Agg canvas directly (no ``pyplot``, no global backend change).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator, PercentFormatter

from .space import NULL_TEXT, Space
from .status import TrialStatus
from .store import finite_or_none
from .trialrow import TrialRow

__all__ = [
    "write_report",
    "write_trials_csv",
    "objective_curves",
    "plot_objective",
    "plot_sigma",
    "plot_params",
    "objective_figure",
    "sigma_figure",
    "params_figure",
    "sampling_means",
    "space_of",
    "objective_label",
    "no_success_text",
    "REPORT_FILES",
]

REPORT_FILES = ("objective.png", "sigma.png", "params.png", "trials.csv")
_FINISHED = (TrialStatus.DONE, TrialStatus.FAILED, TrialStatus.STOPPED)


def space_of(config: Any) -> Space:
    """The :class:`Space` of a journal's config (a ``CampaignConfig`` or its ``raw`` dict).

    Raises ``ValueError`` if the config has no valid ``space``.
    """
    if isinstance(config, Space):
        return config
    space = getattr(config, "space", None)
    if isinstance(space, Space):
        return space
    if isinstance(config, Mapping) and isinstance(config.get("space"), Mapping):
        from .configmodel import MIXED_STRATEGY, mixed_strategies

        # a journal's config always names its strategy; a bare {"space": ...} is the unit cube
        # unless it holds a categorical (which only the mixed strategy has)
        strategy = config.get("strategy") if isinstance(config.get("strategy"), Mapping) else {}
        cats = any(isinstance(v, Mapping) and "choices" in v for v in config["space"].values())
        name = strategy.get("name") or (MIXED_STRATEGY if cats else "cmaes")
        return Space(config["space"], mixed=name in mixed_strategies())
    raise ValueError(f"the journal's config has no search space: {type(config).__name__}")


def _objective(t: TrialRow) -> float:
    """A done trial's finite objective, else NaN (failed trials carry no usable value)."""
    v = finite_or_none(t.objective) if t.status is TrialStatus.DONE else None
    return np.nan if v is None else v


def _stopped_value(t: TrialRow) -> float:
    """A stopped trial's value at its rung (its journaled objective), else NaN."""
    v = finite_or_none(t.objective) if t.status is TrialStatus.STOPPED else None
    return np.nan if v is None else v


def _evaluations(trials: Sequence[TrialRow]) -> list[TrialRow]:
    """Finished trials (done, stopped or failed) in ``(generation, idx)`` order."""
    rows = [t for t in trials if t.status in _FINISHED]
    return sorted(rows, key=lambda t: (t.generation, t.idx))


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100)
    return path


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


# ---------------------------------------------------------------------------------------------
def objective_curves(trials: Sequence[TrialRow]) -> dict[str, np.ndarray]:
    """The data of ``objective.png``.

    Returns a dict of arrays over the ``k`` finished evaluations in ``(generation, idx)`` order:
    ``evaluation`` (1..k), ``objective`` (NaN for failed and stopped trials), ``best`` (best so
    far, NaN before the first done trial), ``failed`` (bool), ``stopped`` (stopped at a rung,
    multi-fidelity) with ``stopped_value`` (its value there, NaN for the others), and over
    generations with a done trial ``median_at`` (evaluation number of the generation's last
    evaluation) and ``median``.
    """
    evals = _evaluations(trials)
    n = np.arange(1, len(evals) + 1)
    f = np.array([_objective(t) for t in evals], dtype=float)
    best = np.fmin.accumulate(np.where(np.isfinite(f), f, np.inf)) if len(f) else f
    best = np.where(np.isfinite(best), best, np.nan)
    gens = np.array([t.generation for t in evals], dtype=int)
    at, med = [], []
    for g in np.unique(gens):
        sel = (gens == g) & np.isfinite(f)
        if sel.any():
            at.append(int(n[gens == g].max()))
            med.append(float(np.median(f[sel])))
    return {
        "evaluation": n,
        "objective": f,
        "best": best,
        "failed": np.array([t.status is TrialStatus.FAILED for t in evals], dtype=bool),
        "stopped": np.array([t.status is TrialStatus.STOPPED for t in evals], dtype=bool),
        "stopped_value": np.array([_stopped_value(t) for t in evals], dtype=float),
        "median_at": np.array(at, dtype=int),
        "median": np.array(med, dtype=float),
    }


def objective_label(objective: str | None) -> str:
    """What the objective measures, for titles and axes: ``"validation error"`` for
    ``trials:train_and_evaluate`` (a fraction in [0, 1], shown in percent), else the objective's
    ``module:function`` name (``"objective"`` when unknown)."""
    from .config import TRIALS_OBJECTIVE

    if objective == TRIALS_OBJECTIVE:
        return "validation error"
    return str(objective) if objective else "objective"


def no_success_text(trials: Sequence[TrialRow]) -> str:
    """What a plot without any ``done`` trial says: ``"no trial yet"``, ``"no finished trial yet"``,
    ``"3 trials failed, none done yet"`` (others still to run) or ``"all 8 trials failed"`` (none left
    to run; the reasons are in ``trials.csv``'s ``error`` column and in ``esopt status DIR``)."""
    if not trials:
        return "no trial yet"
    n_stopped = sum(t.status is TrialStatus.STOPPED for t in trials)
    if n_stopped:  # multi-fidelity: stopped at rungs, none at the full budget yet
        return f"{n_stopped} trial{'s' if n_stopped > 1 else ''} stopped early, none at the full budget yet"
    n_failed = sum(t.status is TrialStatus.FAILED for t in trials)
    unfinished = sum(t.status in (TrialStatus.PENDING, TrialStatus.RUNNING, TrialStatus.CANCELLED) for t in trials)
    if n_failed == 0:
        return "no finished trial yet"
    if unfinished:
        return f"{n_failed} trial{'s' if n_failed > 1 else ''} failed, none done yet"
    return f"all {n_failed} trials failed\n(why: the error column of trials.csv, or esopt status DIR)"


def _objective_axis(ax, label: str, values: np.ndarray) -> None:
    """Log scale for positive values spanning more than two decades; percent ticks for an error rate."""
    if (values > 0).all() and values.max() / values.min() > 100:
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
    if label == "validation error":
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        label += " (%)"
    ax.set_ylabel(f"{label}\n(lower is better)")


def plot_objective(
    trials: Sequence[TrialRow], path: str | Path, *, label: str = "objective", title: str | None = None
) -> Path:
    """Write :func:`objective_figure` to ``path`` (PNG, 800 x 450 pixels); returns ``path``."""
    return _save(objective_figure(trials, label=label, title=title), Path(path))


def objective_figure(trials: Sequence[TrialRow], *, label: str = "objective", title: str | None = None) -> Figure:
    """Objective per evaluation: each value (dots), best so far (step line), generation medians.

    ``trials`` are :class:`cluster.trialrow.TrialRow` (``Journal.trials()``);
    failed trials appear as red ticks at the bottom.  Data from :func:`objective_curves`.
    ``label`` names the objective on the axis and in the title (:func:`objective_label`; for
    ``"validation error"``, a fraction, the axis is in percent); ``title`` defaults to
    ``"<label> per evaluation"``.  Without a ``done`` trial the plot says why
    (:func:`no_success_text`).
    """
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    c = objective_curves(trials)
    n, f = c["evaluation"], c["objective"]
    ok = np.isfinite(f)
    stop = np.isfinite(c["stopped_value"])
    if stop.any():
        ax.plot(n[stop], c["stopped_value"][stop], "x", color="0.7", ms=4, label="stopped (value at its rung)")
    if ok.any():
        ax.plot(n[ok], f[ok], ".", color="0.55", ms=5, label="evaluation")
        shown = np.isfinite(c["best"])
        ax.step(n[shown], c["best"][shown], where="post", color="C0", lw=2, label="best so far")
        ax.plot(c["median_at"], c["median"], "s-", color="C1", ms=4, lw=1, label="generation median")
        _objective_axis(ax, label, f[ok])
    else:
        _no_data(ax, no_success_text(trials))
        ax.set_ylabel(f"{label}\n(lower is better)")
        ax.set_yticks([])
    if c["failed"].any():
        ax.plot(
            n[c["failed"]],
            np.zeros(int(c["failed"].sum())),
            "|",
            color="C3",
            ms=12,
            transform=ax.get_xaxis_transform(),
            label="failed",
        )
    ax.set_title(title or f"{label} per evaluation")
    ax.set_xlabel("evaluation (in (generation, index) order)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3)
    if ok.any() or c["failed"].any() or stop.any():
        ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def _plain_log_ticks(ax) -> None:
    """Decimal tick labels (``0.2``, ``0.05``, ``1e-05``) on a log y axis instead of ``2x10^-1``.

    Within a factor 4, evenly spaced decimal ticks; beyond, minor ticks are labelled as the axis
    allows: every one within about a decade, 2, 3 and 5 within two, 2 and 5 within three, none beyond.
    """
    lo, hi = ax.get_ylim()
    decades = float(np.log10(hi / lo))
    plain = FuncFormatter(lambda v, _: f"{v:.3g}")
    if decades <= 0.6:  # less than a factor 4: evenly spaced decimal ticks (0.2, 0.25, 0.3, ...)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_locator(NullLocator())
        return
    if decades <= 1.1:
        subs = np.arange(2.0, 10.0)
    elif decades <= 2.1:
        subs = np.array([2.0, 3.0, 5.0])
    else:
        subs = np.array([2.0, 5.0]) if decades <= 3.1 else None
    ax.yaxis.set_major_locator(LogLocator(base=10))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=subs if subs is not None else "auto"))
    ax.yaxis.set_minor_formatter(plain if subs is not None else NullFormatter())


def plot_sigma(
    generations: Sequence[Mapping], path: str | Path, *, title: str | None = None, restarts: Sequence[int] = ()
) -> Path:
    """Write :func:`sigma_figure` to ``path`` (PNG, 800 x 350 pixels); returns ``path``."""
    return _save(sigma_figure(generations, title=title, restarts=restarts), Path(path))


def sigma_figure(generations: Sequence[Mapping], *, title: str | None = None, restarts: Sequence[int] = ()) -> Figure:
    """Step size ``sigma`` after each generation's tell (unit-cube coordinates: a fraction of every
    scaled range), log axis with decimal tick labels; ``title`` defaults to ``"step size per generation"``.

    ``restarts`` are the generations after which the strategy was restarted (its criteria fired;
    ``cluster.campaign.restarts``): a dashed line between that generation and the next marks each,
    where sigma starts again from ``sigma0``.
    """
    fig = Figure(figsize=(8, 3.5))
    ax = fig.add_subplot()
    pts = [(int(g["generation"]), finite_or_none(g.get("sigma"))) for g in generations]
    pts = [(g, s) for g, s in pts if s is not None and s > 0]
    if pts:
        g, s = zip(*sorted(pts))
        ax.plot(g, s, "o-", color="C2", ms=4)
        ax.set_xlim(g[0] - 0.5, g[-1] + 0.5)
        ax.set_yscale("log")
        ax.set_ylim(min(s) / 1.25, max(s) * 1.25)
        _plain_log_ticks(ax)
    else:
        _no_data(ax, "no generation told yet")
    for k, g in enumerate(sorted(restarts)):
        ax.axvline(g + 0.5, color="0.5", ls="--", lw=1, label="restart (IPOP)" if k == 0 else None)
    if restarts:
        ax.legend(loc="best", fontsize="small")
    ax.set_title(title or "step size per generation")
    ax.set_xlabel("generation")
    ax.set_ylabel("sigma after the tell\n(fraction of each range)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def sampling_means(generations: Sequence[Mapping], space: Space) -> list[tuple[int, np.ndarray]]:
    """``[(g, mean)]``: the mean generation ``g`` was sampled from (the space's coordinates), shape ``(d,)`` each.

    Generation 1 is sampled around ``space.x0``; generation ``g + 1`` around the mean the journal
    stored at the tell of generation ``g`` (so the last entry is the mean of the next, not yet
    asked, generation).  Generations without a stored mean (not told yet) are skipped.
    """
    out = [(1, np.asarray(space.x0, dtype=float))] if generations else []
    for g in sorted(generations, key=lambda g: int(g["generation"])):
        m = g.get("mean")
        if m is not None and len(m) == space.dim:
            out.append((int(g["generation"]) + 1, np.asarray(m, dtype=float)))
    return out


_STATUS_STYLES = (  # status, marker, colour, legend label
    (TrialStatus.DONE, "o", "C0", "sampled (done)"),
    (TrialStatus.FAILED, "x", "C3", "failed"),
    (TrialStatus.RUNNING, "o", "0.75", "running"),
    (TrialStatus.PENDING, "o", "0.85", "pending"),
)


def _best_done(rows: Sequence[TrialRow]) -> TrialRow | None:
    done = [t for t in rows if t.status is TrialStatus.DONE and finite_or_none(t.objective) is not None]
    return min(done, key=lambda t: float(t.objective), default=None)


def _param_panel(ax, p, rows: Sequence[TrialRow], means: Sequence[tuple[int, Mapping]], best: TrialRow | None) -> None:
    """One hyperparameter's panel of :func:`plot_params` (own units; log axis for ``log10``)."""
    for status, style, color, label in _STATUS_STYLES:
        sel = [t for t in rows if t.status is status and p.name in t.params]
        if sel:
            gens = [t.generation for t in sel]
            ax.plot(gens, [t.params[p.name] for t in sel], style, color=color, ms=4, alpha=0.8, label=label)
    if means:
        xs, ys = [g for g, _ in means], [m[p.name] for _, m in means]
        ax.plot(xs, ys, "-", marker="_", ms=16, mew=2, color="C1", lw=2, label="sampling mean")
    if best is not None and p.name in best.params:
        ax.plot([best.generation], [best.params[p.name]], "*", color="gold", ms=14, mec="k", label="best")
    if p.scale == "log10":
        ax.set_yscale("log")
        ax.set_ylim(p.lower / 1.5, p.upper * 1.5)
    else:
        ax.set_ylim(p.lower - 0.05 * (p.upper - p.lower), p.upper + 0.05 * (p.upper - p.lower))
    ax.set_ylabel(f"{p.name}\n({p.scale}, {p.type})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3)


def _categorical_panel(ax, p, rows: Sequence[TrialRow], best: TrialRow | None) -> None:
    """A categorical's panel of :func:`plot_params`: per generation, the fraction of its sampled
    trials (any status) that drew each choice, as stacked bars (legend: the choices)."""
    sel = [t for t in rows if p.name in t.params]
    gens = sorted({t.generation for t in sel})
    counts = np.zeros((len(p.choices), len(gens)))
    for t in sel:
        j = p.index(t.params[p.name])
        if j is not None:
            counts[j, gens.index(t.generation)] += 1
    frac = counts / np.maximum(counts.sum(axis=0), 1)
    bottom, bars = np.zeros(len(gens)), []
    for j, choice in enumerate(p.choices):
        bars.append(ax.bar(gens, frac[j], bottom=bottom, width=0.8, color=f"C{j % 10}", label=f"_{choice}"))
        bottom += frac[j]
    if best is not None and p.index(best.params.get(p.name)) is not None:
        ax.plot([best.generation], [1.04], "*", color="gold", ms=14, mec="k", label="best", clip_on=False)
        ax.annotate(str(best.params[p.name]), (best.generation, 1.04), xytext=(8, -4), textcoords="offset points")
    if gens:
        ax.legend(bars, [str(c) for c in p.choices], loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel(f"{p.name}\n(fraction per choice)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.grid(alpha=0.3, axis="y")


def plot_params(
    trials: Sequence[TrialRow],
    generations: Sequence[Mapping],
    space: Space,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Write :func:`params_figure` to ``path`` (PNG, 800 pixels wide, 260 per hyperparameter); returns ``path``."""
    return _save(params_figure(trials, generations, space, title=title), Path(path))


def params_figure(
    trials: Sequence[TrialRow], generations: Sequence[Mapping], space: Space, *, title: str | None = None
) -> Figure:
    """One panel per hyperparameter: sampled values and distribution mean per generation.

    Values are in the hyperparameter's own units: trials' ``params`` as evaluated (ints rounded),
    and the mean each sampled generation was drawn from (:func:`sampling_means`, only for
    generations that were asked: the mean after the last tell is not drawn) decoded with ``space``
    (clipped into the bounds).  The best finished trial is starred.  One legend for all panels,
    below them; ``title`` defaults to ``"hyperparameters per generation (own units)"``.  A
    categorical's panel shows instead the fraction of each generation's trials that drew each
    choice (stacked bars, :func:`_categorical_panel`).
    """
    fig = Figure(figsize=(8, 2.6 * space.dim), layout="constrained")
    axes = [fig.add_subplot(space.dim, 1, i + 1) for i in range(space.dim)]
    rows = [t for t in trials if isinstance(t.params, Mapping)]
    asked = {int(g["generation"]) for g in generations} | {t.generation for t in rows}
    lo, up = space.bounds
    means = [(g, space.decode(np.clip(m, lo, up))) for g, m in sampling_means(generations, space) if g in asked]
    best = _best_done(rows)
    for ax, p in zip(axes, space.params):
        if p.is_categorical:
            _categorical_panel(ax, p, rows, best)
        else:
            _param_panel(ax, p, rows, means, best)
        if asked:
            ax.set_xlim(min(asked) - 0.5, max(asked) + 0.5)
        if not rows and not means:
            _no_data(ax, "no trial yet")
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=len(handles), fontsize="small")
    fig.suptitle(title or "hyperparameters per generation (own units)")
    axes[-1].set_xlabel("generation")
    return fig


def _duration(t: TrialRow) -> float | None:
    a, b = finite_or_none(t.started_at), finite_or_none(t.finished_at)
    return None if a is None or b is None or t.status not in _FINISHED else b - a


def _iso_utc(ts: Any) -> str | None:
    """Unix seconds -> ISO-8601 UTC with milliseconds (``2026-12-01T18:53:09.123+00:00``); None stays None."""
    t = finite_or_none(ts)
    return None if t is None else datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")


def _csv_param(params: Mapping[str, Any], name: str) -> Any:
    """A trial's value of ``name`` for trials.csv: ``NULL_TEXT`` for a ``None`` choice, empty if absent."""
    if name in params and params[name] is None:
        return NULL_TEXT
    return params.get(name)


def write_trials_csv(trials: Sequence[TrialRow], names: Sequence[str], path: str | Path) -> Path:
    """One row per trial in ``(generation, idx)`` order; ``names`` are the hyperparameter columns.

    Columns:

    - ``id``, ``generation``, ``idx``, ``status``, ``objective``, ``test_error`` (from the trial's
      result, when the objective reported one), one column per hyperparameter (own units),
      ``attempts``, ``node_id``, ``worker_id``; a categorical's choice is written as itself (a
      ``null`` choice as ``null``, as the config spells it, so that it differs from a missing value);
    - ``started_at``, ``finished_at``: ISO-8601 UTC timestamps.  ``started_at`` is when the trial's
      last attempt started on a worker (as the driver received the worker's start message; the
      submission to Ray if it never reported one), ``finished_at`` when the driver journaled its
      outcome;
    - ``duration_s``: ``finished_at - started_at`` in seconds, for finished trials: the driver's
      view of the last attempt (the objective's run plus Ray's overhead of starting it and
      returning its result);
    - ``wall_time_s``: the objective's own measurement, when its result reports one
      (``trials:train_and_evaluate``: seconds from its call to its return, data loading included);
      empty for objectives that report none;
    - ``error``: why the trial failed (the journal's ``error`` column);
    - ``rung``, ``resource`` (multi-fidelity): index of the highest rung the trial reached (0 = the
      first) and the last step it reported; empty without ``fidelity``.

    Returns ``path``.
    """
    path = Path(path)
    cols = [
        "id",
        "generation",
        "idx",
        "status",
        "objective",
        "test_error",
        *names,
        "attempts",
        "node_id",
        "worker_id",
        "started_at",
        "finished_at",
        "duration_s",
        "wall_time_s",
        "error",
        "rung",
        "resource",
    ]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for t in sorted(trials, key=lambda t: (t.generation, t.idx)):
            result = t.result if isinstance(t.result, Mapping) else {}
            params = t.params if isinstance(t.params, Mapping) else {}
            w.writerow(
                [
                    t.id,
                    t.generation,
                    t.idx,
                    t.status.value,
                    t.objective,
                    result.get("test_error"),
                    *(_csv_param(params, n) for n in names),
                    t.attempts,
                    t.node_id,
                    t.worker_id,
                    _iso_utc(t.started_at),
                    _iso_utc(t.finished_at),
                    _duration(t),
                    result.get("wall_time_s"),
                    t.error,
                    t.rung,
                    t.resource,
                ]
            )
    return path


def write_report(directory: str | Path, out: str | Path | None = None) -> dict[str, Path]:
    """Write the report files of the campaign in ``directory`` into ``out`` (default ``directory/report``).

    Opens the journal read-only (safe while a campaign runs).  Returns ``{file name: path}`` for
    :data:`REPORT_FILES`, plus ``curves.png`` for a campaign with a ``fidelity`` section or
    journaled reports (:func:`cluster.fidelityreport.plot_curves`).

    Raises
    ------
    cluster.store.JournalError
        No campaign journal in ``directory``, or one that cannot be read.
    """
    from .campaign import restarts
    from .store import Journal

    journal = Journal(directory, readonly=True)
    try:
        with journal.snapshot():  # one committed state: never a half-written generation
            config = journal.campaign_config()
            trials = journal.trials()
            generations = journal.generations()
            restarted = [int(r["after_generation"]) for r in restarts(journal)]
            reports = journal.reports()
    finally:
        journal.close()
    space, label, name = config.space, objective_label(config.objective), config.name
    out = Path(directory) / "report" if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "objective.png": plot_objective(
            trials, out / "objective.png", label=label, title=f"{name}: {label} per evaluation"
        ),
        "sigma.png": plot_sigma(
            generations, out / "sigma.png", title=f"{name}: step size per generation", restarts=restarted
        ),
        "params.png": plot_params(
            trials, generations, space, out / "params.png", title=f"{name}: hyperparameters per generation (own units)"
        ),
        "trials.csv": write_trials_csv(trials, space.names, out / "trials.csv"),
    }
    fid = config.fidelity
    if fid is not None or reports:
        from .fidelityreport import plot_curves

        unit = fid.resource if fid is not None else "step"
        files["curves.png"] = plot_curves(
            reports,
            trials,
            fid.rungs if fid is not None else [],
            out / "curves.png",
            label=label,
            resource=unit,
            title=f"{name}: {label} against {unit}",
        )
    return files
