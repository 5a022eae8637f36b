"""Plots and a table from a campaign journal (read-only; works while the campaign runs).

``write_report(DIR)`` writes into ``DIR/report`` (or ``out``):

- ``objective.png``: every evaluation's objective, the best so far and the median of each
  generation, against the evaluation number;
- ``sigma.png``: the strategy's step size ``sigma`` after each generation's tell (unit-cube
  coordinates, i.e. a fraction of every hyperparameter's scaled range; log axis);
- ``params.png``: per hyperparameter, the sampled values per generation and the mean of the search
  distribution each generation was sampled from, in the hyperparameter's own units (log axis for
  ``scale: log10``);
- ``trials.csv``: one row per trial (every status), hyperparameters in their own units.

Evaluations are numbered in the order the strategy sees them, ``(generation, idx)``, counting
finished trials of both statuses ``done`` and ``failed`` (a failed trial used up budget too); so the
numbering is the same after a resume as in an uninterrupted campaign.  Figures are drawn with
matplotlib's Agg canvas directly (no ``pyplot``, no global backend change).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .space import Space
from .store import finite_or_none

__all__ = [
    "write_report",
    "write_trials_csv",
    "objective_curves",
    "plot_objective",
    "plot_sigma",
    "plot_params",
    "sampling_means",
    "space_of",
    "REPORT_FILES",
]

REPORT_FILES = ("objective.png", "sigma.png", "params.png", "trials.csv")
_FINISHED = ("done", "failed")


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
        return Space(config["space"])
    raise ValueError(f"the journal's config has no search space: {type(config).__name__}")


def _objective(t: Mapping) -> float:
    """A done trial's finite objective, else NaN (failed trials carry no usable value)."""
    v = finite_or_none(t.get("objective")) if t.get("status") == "done" else None
    return np.nan if v is None else v


def _evaluations(trials: Sequence[Mapping]) -> list[Mapping]:
    """Finished trials (done or failed) in ``(generation, idx)`` order."""
    rows = [t for t in trials if t.get("status") in _FINISHED]
    return sorted(rows, key=lambda t: (int(t["generation"]), int(t["idx"])))


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100)
    return path


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


# ---------------------------------------------------------------------------------------------
def objective_curves(trials: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """The data of ``objective.png``.

    Returns a dict of arrays over the ``k`` finished evaluations in ``(generation, idx)`` order:
    ``evaluation`` (1..k), ``objective`` (NaN for failed trials), ``best`` (best so far, NaN before
    the first done trial), ``failed`` (bool), and over generations with a done trial
    ``median_at`` (evaluation number of the generation's last evaluation) and ``median``.
    """
    evals = _evaluations(trials)
    n = np.arange(1, len(evals) + 1)
    f = np.array([_objective(t) for t in evals], dtype=float)
    best = np.fmin.accumulate(np.where(np.isfinite(f), f, np.inf)) if len(f) else f
    best = np.where(np.isfinite(best), best, np.nan)
    gens = np.array([int(t["generation"]) for t in evals], dtype=int)
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
        "failed": np.array([t["status"] == "failed" for t in evals], dtype=bool),
        "median_at": np.array(at, dtype=int),
        "median": np.array(med, dtype=float),
    }


def plot_objective(trials: Sequence[Mapping], path: str | Path) -> Path:
    """Objective per evaluation: each value (dots), best so far (step line), generation medians.

    ``trials`` are journal trial dicts (keys ``generation``, ``idx``, ``status``, ``objective``);
    failed trials appear as red ticks at the bottom.  Data from :func:`objective_curves`.
    Returns ``path``.
    """
    path = Path(path)
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    c = objective_curves(trials)
    n, f = c["evaluation"], c["objective"]
    ok = np.isfinite(f)
    if ok.any():
        ax.plot(n[ok], f[ok], ".", color="0.55", ms=5, label="evaluation")
        shown = np.isfinite(c["best"])
        ax.step(n[shown], c["best"][shown], where="post", color="C0", lw=2, label="best so far")
        ax.plot(c["median_at"], c["median"], "s-", color="C1", ms=4, lw=1, label="generation median")
        pos = f[ok]
        if (pos > 0).all() and pos.max() / pos.min() > 100:
            ax.set_yscale("log")
    else:
        _no_data(ax, "no finished trial yet")
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
    ax.set_xlabel("evaluation (in (generation, index) order)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("objective (lower is better)")
    ax.grid(alpha=0.3)
    if ok.any() or c["failed"].any():
        ax.legend(loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def plot_sigma(generations: Sequence[Mapping], path: str | Path) -> Path:
    """Step size ``sigma`` after each generation's tell (unit-cube coordinates), log axis; returns path."""
    path = Path(path)
    fig = Figure(figsize=(8, 3.5))
    ax = fig.add_subplot()
    pts = [(int(g["generation"]), finite_or_none(g.get("sigma"))) for g in generations]
    pts = [(g, s) for g, s in pts if s is not None and s > 0]
    if pts:
        g, s = zip(*sorted(pts))
        ax.plot(g, s, "o-", color="C2", ms=4)
        ax.set_yscale("log")
    else:
        _no_data(ax, "no generation yet")
    ax.set_xlabel("generation")
    ax.set_ylabel("sigma after the tell\n(fraction of each range)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _save(fig, path)


def sampling_means(generations: Sequence[Mapping], space: Space) -> list[tuple[int, np.ndarray]]:
    """``[(g, mean)]``: the unit-cube mean generation ``g`` was sampled from, shape ``(d,)`` each.

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


def plot_params(trials: Sequence[Mapping], generations: Sequence[Mapping], space: Space, path: str | Path) -> Path:
    """One panel per hyperparameter: sampled values and distribution mean per generation.

    Values are in the hyperparameter's own units: trials' ``params`` as evaluated (ints rounded),
    and the mean each generation was sampled from (:func:`sampling_means`) decoded with ``space``
    (clipped into the bounds).  The best finished trial is starred.  Returns ``path``.
    """
    path = Path(path)
    d = space.dim
    fig = Figure(figsize=(8, 2.6 * d))
    axes = [fig.add_subplot(d, 1, i + 1) for i in range(d)]
    rows = [t for t in trials if isinstance(t.get("params"), Mapping)]
    best = min(
        (t for t in rows if t.get("status") == "done" and finite_or_none(t.get("objective")) is not None),
        key=lambda t: float(t["objective"]),
        default=None,
    )
    means = [(x, space.decode(np.clip(m, 0.0, 1.0))) for x, m in sampling_means(generations, space)]
    for ax, p in zip(axes, space.params):
        for status, style, color in (
            ("done", "o", "C0"),
            ("failed", "x", "C3"),
            ("running", "o", "0.75"),
            ("pending", "o", "0.85"),
        ):
            sel = [t for t in rows if t.get("status") == status and p.name in t["params"]]
            if sel:
                ax.plot(
                    [int(t["generation"]) for t in sel],
                    [t["params"][p.name] for t in sel],
                    style,
                    color=color,
                    ms=4,
                    alpha=0.8,
                    label=status if status != "done" else "sampled",
                )
        if means:
            ax.plot([g for g, _ in means], [m[p.name] for _, m in means], "-", color="C1", lw=2, label="sampling mean")
        if best is not None and p.name in best["params"]:
            ax.plot(
                [int(best["generation"])], [best["params"][p.name]], "*", color="gold", ms=14, mec="k", label="best"
            )
        if not rows and not means:
            _no_data(ax, "no trial yet")
        if p.scale == "log10":
            ax.set_yscale("log")
        ax.set_ylim(
            p.lower / 1.5 if p.scale == "log10" else p.lower - 0.05 * (p.upper - p.lower),
            p.upper * 1.5 if p.scale == "log10" else p.upper + 0.05 * (p.upper - p.lower),
        )
        ax.set_ylabel(f"{p.name}\n({p.scale}, {p.type})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("generation")
    fig.tight_layout()
    return _save(fig, path)


def _duration(t: Mapping) -> float | None:
    a, b = finite_or_none(t.get("started_at")), finite_or_none(t.get("finished_at"))
    return None if a is None or b is None or t.get("status") not in _FINISHED else b - a


def write_trials_csv(trials: Sequence[Mapping], names: Sequence[str], path: str | Path) -> Path:
    """One row per trial in ``(generation, idx)`` order; ``names`` are the hyperparameter columns.

    Columns: id, generation, idx, status, objective, test_error (from the trial's result, when
    the objective reported one), one column per hyperparameter (own units), attempts, node_id,
    worker_id, started_at and finished_at (Unix seconds, as journaled), duration_s (their
    difference), wall_time_s (the trial's own timing, when its result has one), error.
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
    ]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for t in sorted(trials, key=lambda t: (int(t["generation"]), int(t["idx"]))):
            result = t.get("result") if isinstance(t.get("result"), Mapping) else {}
            params = t.get("params") if isinstance(t.get("params"), Mapping) else {}
            w.writerow(
                [
                    t.get("id"),
                    t.get("generation"),
                    t.get("idx"),
                    t.get("status"),
                    t.get("objective"),
                    result.get("test_error"),
                    *(params.get(n) for n in names),
                    t.get("attempts"),
                    t.get("node_id"),
                    t.get("worker_id"),
                    t.get("started_at"),
                    t.get("finished_at"),
                    _duration(t),
                    result.get("wall_time_s"),
                    t.get("error"),
                ]
            )
    return path


def write_report(directory: str | Path, out: str | Path | None = None) -> dict[str, Path]:
    """Write the report files of the campaign in ``directory`` into ``out`` (default ``directory/report``).

    Opens the journal read-only (safe while a campaign runs).  Returns ``{file name: path}`` for
    :data:`REPORT_FILES`.

    Raises
    ------
    cluster.store.JournalError
        No campaign journal in ``directory``, or one that cannot be read.
    """
    from .store import Journal

    journal = Journal(directory, readonly=True)
    try:
        space = space_of(journal.config())
        trials = journal.trials()
        generations = journal.generations()
    finally:
        journal.close()
    out = Path(directory) / "report" if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "objective.png": plot_objective(trials, out / "objective.png"),
        "sigma.png": plot_sigma(generations, out / "sigma.png"),
        "params.png": plot_params(trials, generations, space, out / "params.png"),
        "trials.csv": write_trials_csv(trials, space.names, out / "trials.csv"),
    }
