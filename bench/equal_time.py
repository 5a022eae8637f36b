"""Tuning quality at equal training time, from a committed ``bench/hpo_quality.py`` result.

``bench/hpo_quality.py`` compares methods at equal *trial counts*; methods that favour expensive
configurations (large models, small batches) spend more compute on the same number of trials.
This reads ``bench/results/hpo_quality-<name>.csv`` (every trial of every run, with its
``wall_time_s``) and its provenance sidecar, and reports each method's best validation error
within the training time the reference method used (per seed: the sum of its trials'
``wall_time_s``), in the order the trials were proposed::

    python bench/equal_time.py --config cluster/configs/mnist1d-mixed.yaml --ref catcmawm --save-results

Wall times are only comparable between runs of one session on one machine, so only the methods
whose runs were all produced by the same commit as the reference method's runs (the run entries of
the sidecar) are compared; the others are listed as not comparable.  ``--save-results`` writes the
table as the section ``equal-time-<name>`` of bench/results/hpo_quality.md (with this command's
provenance).  Exits with status 2 and a message if the CSV, its sidecar or the reference method is
missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # bench/hpo_quality.py, bench/provenance.py
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import hpo_quality as hq  # noqa: E402
import provenance as prov_mod  # noqa: E402

RESULTS = hq.ROOT / "bench" / "results"


def run_commits(sidecar: dict, cfg, rows: list[dict], overrides: dict) -> dict[str, set]:
    """``{method label: {commits of its runs}}`` from a results sidecar's run entries, whose names
    are ``bench/hpo_quality.py``'s run cache names (``<method>-<run_key>-n<trials>-s<seed>.csv``);
    a run the sidecar does not list contributes the commit ``None``.  ``rows`` are the CSV's rows
    (all runs of one invocation, so one trial count ``n``); ``overrides`` the trial overrides the
    benchmark ran with (``{"epochs": E}`` or ``{}``), part of the run key."""
    runs = sidecar.get("runs") or {}
    n = 1 + max(int(r["trial"]) for r in rows)
    out: dict[str, set] = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        key = f"{hq.parse_method(m)[0]}-{hq.run_key(cfg, m, overrides)}-n{n}"
        seeds = {int(r["seed"]) for r in rows if r["method"] == m}
        out[m] = {(runs.get(f"{key}-s{s}.csv") or {}).get("commit") for s in seeds}
    return out


def equal_time(rows: list[dict], ref: str) -> dict[str, dict[str, np.ndarray]]:
    """Per method, arrays of shape ``(n_seeds,)`` over the sorted seeds of ``rows``: ``best``
    (fraction) = the best validation error among the trials, in proposal order, whose cumulative
    ``wall_time_s`` stays within the reference method's total for that seed; ``trials`` = how many
    trials that was; ``budget_s`` = that total (seconds).  Seeds the reference method lacks are
    NaN throughout; a method without trials at a seed has ``best`` NaN and ``trials`` 0."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    seeds = sorted({int(r["seed"]) for r in rows})
    by: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        by.setdefault((r["method"], int(r["seed"])), []).append(r)
    out = {m: {k: np.full(len(seeds), np.nan) for k in ("best", "trials", "budget_s")} for m in methods}

    def cumulative_s(m: str, s: int) -> tuple[list[dict], np.ndarray]:
        trials = sorted(by.get((m, s), []), key=lambda r: int(r["trial"]))
        return trials, np.cumsum([float(r["wall_time_s"]) for r in trials])

    for i, s in enumerate(seeds):
        if (ref, s) not in by:
            continue
        budget = cumulative_s(ref, s)[1][-1]  # the same sum as the reference's own cut: all its trials fit
        for m in methods:
            trials, cum = cumulative_s(m, s)
            kept = [float(r["objective"]) for r, c in zip(trials, cum) if c <= budget]
            out[m]["trials"][i] = len(kept)
            out[m]["budget_s"][i] = budget
            out[m]["best"][i] = min(kept) if kept else np.nan
    return out


def table(name: str, rows: list[dict], ref: str, comparable: list[str], others: list[str]) -> str:
    """The markdown section: per comparable method, median [min-max] over seeds of the best at the
    reference's training time, the trials that fit in it, and the per-seed difference to ``ref``."""
    E = equal_time(rows, ref)
    lines = [
        f"### {name}: best validation error at equal training time (reference: {ref})",
        "",
        f"Per seed, the training time budget is the sum of `{ref}`'s trial wall times; every method's "
        "trials count in the order proposed until the budget is spent. Error in %, median [min-max] "
        "over seeds; difference = method minus reference, per seed (points).",
        "",
        f"| method | best at {ref}'s training time | trials that fit | minus {ref}, per seed | lower than {ref} |",
        "|---|---|---|---|---|",
    ]
    for m in comparable:
        d = 100 * (E[m]["best"] - E[ref]["best"])
        tr = E[m]["trials"]
        lines.append(
            f"| {m} | {hq.med_range(E[m]['best'])} | {np.median(tr):.0f} [{np.min(tr):.0f}-{np.max(tr):.0f}] | "
            + ("-" if m == ref else ", ".join(f"{v:+.2f}" for v in d))
            + f" | {'-' if m == ref else f'{int(np.sum(d < 0))}/{int(np.sum(np.isfinite(d)))}'} |"
        )
    b = E[ref]["budget_s"]
    lines += ["", f"Budget (s) per seed: {', '.join(f'{v:.0f}' for v in b)}."]
    if others:
        lines.append(f"Not comparable (runs of another commit or session, other machine): {', '.join(others)}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="the config bench/hpo_quality.py ran (its name names the CSV)")
    p.add_argument("--epochs", type=int, default=None, help="the --epochs bench/hpo_quality.py ran with, if any")
    p.add_argument("--ref", default=None, help="reference method label (default: the CSV's first)")
    p.add_argument("--save-results", action="store_true")
    args = p.parse_args(argv)
    cfg = hq.load(args.config)
    path = RESULTS / f"hpo_quality-{cfg.name}.csv"
    sidecar = prov_mod.read_sidecar(path)
    if not path.exists() or sidecar is None:
        print(f"{path} or its provenance sidecar is missing: run bench/hpo_quality.py --save-results first")
        return 2
    rows = hq.read_csv(path)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    ref = args.ref or methods[0]
    if ref not in methods:
        print(f"--ref {ref!r} is not a method of {path.name}; choose one of {methods}")
        return 2
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    commits = run_commits(sidecar, cfg, rows, overrides)
    ok = commits[ref] if None not in commits[ref] and len(commits[ref]) == 1 else None
    comparable = [m for m in methods if ok is not None and commits[m] == ok]
    others = [m for m in methods if m not in comparable]
    text = table(cfg.name, rows, ref, comparable, others)
    print(text)
    if args.save_results:
        prov = prov_mod.provenance()
        source = f"Source: {path.name}, runs of commit {', '.join(sorted(ok or {'unknown'}))}."
        hq.update_md(
            RESULTS / "hpo_quality.md",
            f"equal-time-{cfg.name}",
            text,
            prov["command"],
            prov_mod.markdown(prov) + "\n" + source,
        )
        print(f"saved to {RESULTS / 'hpo_quality.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
