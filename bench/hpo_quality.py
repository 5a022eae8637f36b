"""Tuning quality at equal trial budget: esopt CMA-ES (and sep-CMA-ES) vs random search vs Optuna TPE.

Usage (from the repository root; results and the exact commands are in bench/results/hpo_quality.md)::

    python bench/hpo_quality.py --config cluster/configs/digits-cmaes.yaml --seeds 10 --save-results \
        --methods cmaes cmaes:sigma0=0.3 random tpe
    python bench/hpo_quality.py --config cluster/configs/digits-highdim.yaml --seeds 5 --save-results
    python bench/hpo_quality.py --config cluster/configs/mnist1d-mixed.yaml --seeds 5 --save-results \
        --methods catcmawm catcmawm:sigma0=0.3 catcmawm:popsize=6 cmaes random tpe
    python bench/hpo_quality.py --config cluster/configs/digits-cmaes.yaml --trials 2 --seeds 1 \
        --epochs 1 --reeval 1 --out /tmp/smoke                                  # smoke test, ~1 min

What it does
------------
The search space (a :class:`cluster.space.Space`, unit cube ``[0, 1]^d``), the training task
(``trial:``, i.e. ``trials.TrialSpec`` fields), the strategy's ``popsize``/``sigma0``/``seed`` and the
budget (``budget.max_trials``, unless ``--trials``) are read from the campaign config, so the
benchmark measures the shipped config.  Every method gets the same number of trials per run and
``--seeds`` independent runs; every trial is one call of ``trials.train_and_evaluate``
(objective = validation error; the test error is recorded but never seen by any method):

* ``cmaes`` / ``sepcmaes``: ``esopt.make_strategy(name, space.x0, sigma0, popsize=, seed=,
  bounds=space.bounds)``; ask a generation, evaluate it, tell it (the campaign driver's
  generation semantics).  A last, incomplete generation is evaluated but not told.  On a space
  with categoricals (``choices:``) each categorical is searched as an integer index, a rounded
  unit coordinate (:class:`IndexSpace`): the workaround of a continuous strategy.
* ``catcmawm``: the mixed strategy (:class:`esopt.CatCMAwM`, CatCMA with margin) on the mixed
  ``Space`` (linear ints as integer coordinates, categoricals as category indices), as a
  campaign runs it; same generation semantics.
* ``refcatcmawm``: the reference implementation, cmaes 0.13.1's ``CatCMAwM``, on the same mixed
  space from the same start (``space.x0``, ``sigma0``, ``C^(0) = diag(stds^2)``, popsize, seed):
  :func:`ref_catcmawm_loop`.  It differs from esopt's in its constants (the tutorial's ``cs``,
  ``damps``) and its bound handling (clipping with an adaptive penalty, where esopt reflects).
* ``random``: i.i.d. uniform points of the unit cube, decoded by :class:`IndexSpace` (every
  choice and every integer equally likely).
* ``tpe``: Optuna's ``TPESampler(seed=...)`` with Optuna's defaults (multivariate in Optuna 5),
  ask/tell, with distributions equal to the ``Space``'s (``log=True`` on the log10 scale,
  ``IntDistribution`` for ints, ``CategoricalDistribution`` for choices).

A method label may carry overrides, ``--methods cmaes:popsize=8,sigma0=0.2 random`` (the first
method is the reference of the paired comparisons).  Default methods: catcmawm, cmaes, random, tpe
when the config's strategy is the mixed one; else cmaes, random, tpe, and sepcmaes when d >= 10.

Seeds and noise
---------------
Run ``r`` (``r = 0..seeds-1``) uses the *training* seed ``trial.seed + r`` for **every trial of
every method** (a paired design: the methods of run ``r`` search the same function).  The
optimizer seed is ``strategy.seed + r`` (CMA-ES) or ``r`` (random, TPE).  With a fixed training
seed the objective is deterministic (the same hyperparameters give a bit-identical result on CPU)
but *chaotic*: ``lr * (1 + 1e-6)`` can change the validation error by several images, so nearby
candidates still carry independent-looking training noise, and the best validation error of a
run, a minimum over many noisy values, is optimistic.  Each run's final best is therefore
retrained with ``--reeval`` fresh training seeds (``10_000 + k``), as is the box centre ``x0``;
the tables report those means (an unbiased estimate of the chosen hyperparameters' quality) and
the standard deviation between training seeds (the noise floor the differences are judged by).

Parallelism and cache: ``--workers`` processes (default: the CPU count), 1 torch/BLAS thread each,
each running whole runs (one method x one seed) one trial after another, so TPE stays fully
sequential and CMA-ES keeps its generation semantics.  Each finished run is one CSV under
``--out``/runs, named by a hash of what determines it (space, trial spec, method and its
effective settings); rerunning a command computes only what is missing.

Outputs: the per-trial CSV, a PNG of the best-so-far validation error vs trials (median line and
min-max band over seeds, per method), and markdown tables (printed; with ``--save-results`` also
written to ``bench/results/hpo_quality-<config name>.{csv,png}``, ``...-reeval.csv`` and a section
of ``bench/results/hpo_quality.md``).

Provenance (bench/provenance.py): every run CSV in the cache, every CSV and PNG written has a
sidecar ``<file>.provenance.json`` (commit, dirty paths, a digest of the source, package versions,
BLAS library and kernel, Python, CPU; the results' sidecars also list each run's), and the
markdown ends with the same in a few lines.  Cached runs or re-evaluations from other code (another
source digest, or none recorded) are reported, and ``--save-results`` refuses the stale ones (other
code where it decides their candidates and values, :func:`stale_dirs`) unless ``--allow-stale``:
results and the code they are committed with cannot drift apart silently.
tests/test_bench_replay.py replays the first generations of the committed runs with
:func:`make_es` and :func:`es_loop`.
"""

from __future__ import annotations

import os

# Pin BLAS/torch threads before numpy/torch are imported (workers inherit the environment).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

if str(Path(__file__).resolve().parent) not in sys.path:  # bench/provenance.py, also when imported
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance as prov_mod  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REEVAL_SEED0 = 10_000
FRACTIONS = (0.25, 0.5, 1.0)
COLORS = {
    "catcmawm": "tab:green",
    "cmaes": "tab:blue",
    "sepcmaes": "tab:cyan",
    "random": "tab:gray",
    "tpe": "tab:orange",
    "refcatcmawm": "tab:olive",
}
#: the evolution strategies among the methods (ask a generation, tell it: :func:`es_loop`)
ES_METHODS = ("catcmawm", "cmaes", "sepcmaes")
BASE_COLS = [
    "method",
    "seed",
    "trial",
    "generation",
    "sigma",
    "train_seed",
    "objective",
    "test_error",
    "status",
    "wall_time_s",
    "best_so_far",
]


# ----------------------------------------------------------------------------------------------
# config, methods
def load(config_path: str):
    """``cluster.config.load_config`` (imported lazily so that workers import it themselves)."""
    from cluster.config import load_config

    return load_config(config_path)


def parse_method(spec: str) -> tuple[str, dict]:
    """``"cmaes:popsize=8,sigma0=0.2"`` -> ``("cmaes", {"popsize": 8, "sigma0": 0.2})``;
    ``surrogate=lq`` (ES methods) wraps the strategy in :class:`esopt.LQSurrogate`.

    Raises ``ValueError`` for an unknown method or option.
    """
    name, _, opts = spec.partition(":")
    allowed = {
        "catcmawm": {"popsize", "sigma0", "surrogate"},
        "cmaes": {"popsize", "sigma0", "surrogate"},
        "sepcmaes": {"popsize", "sigma0", "surrogate"},
        "random": set(),
        "tpe": {"n_startup_trials"},
        "refcatcmawm": {"popsize", "sigma0"},
    }
    if name not in allowed:
        raise ValueError(f"unknown method {name!r}; known: {sorted(allowed)}")
    kw: dict = {}
    for item in filter(None, opts.split(",")):
        key, _, val = item.partition("=")
        if key not in allowed[name]:
            raise ValueError(f"method {name!r} takes options {sorted(allowed[name])}, got {key!r}")
        if key == "surrogate":
            if val != "lq":
                raise ValueError(f"surrogate must be 'lq' (esopt.LQSurrogate), got {val!r}")
            kw[key] = val
        else:
            kw[key] = int(val) if key in ("popsize", "n_startup_trials") else float(val)
    return name, kw


def trial_spec(cfg, train_seed: int, overrides: dict):
    """The config's ``trial:`` dict with the training seed, 1 thread and ``overrides`` applied."""
    import trials

    d = dict(cfg.trial)
    d.update(overrides)
    d["seed"] = int(train_seed)
    d["threads"] = 1
    return trials.TrialSpec.from_dict(d) if hasattr(trials.TrialSpec, "from_dict") else trials.TrialSpec(**d)


def evaluate(hp: dict, spec) -> dict:
    """One trial -> plain dict (objective = validation error; 1.0 when not ``ok`` or not finite)."""
    import trials

    t0 = time.perf_counter()
    res = trials.train_and_evaluate(hp, spec)
    obj = float(res.objective) if res.objective is not None else math.nan
    test = float(res.test_error) if getattr(res, "test_error", None) is not None else math.nan
    status = str(getattr(res, "status", "ok"))
    if status != "ok" or not math.isfinite(obj):
        obj = 1.0
    wall = float(getattr(res, "wall_time_s", None) or (time.perf_counter() - t0))
    return {"objective": obj, "test_error": test, "status": status, "wall_time_s": wall}


class IndexSpace:
    """The config's space for the continuous strategies and random search: the unit cube of
    :class:`cluster.space.Space` (``mixed=False``), with each categorical of ``K`` choices searched
    as an integer index ``0..K-1`` (a linear int coordinate, rounded at decode) and decoded to the
    choice itself: the workaround users had before the mixed strategy, which imposes a fake order
    on the categories.  Without categoricals it is exactly ``Space(space.params)``.

    Attributes as :class:`cluster.space.Space`: ``params`` (the originals), ``names``, ``dim``,
    ``x0`` ``(d,)``, ``bounds`` (two ``(d,)`` arrays), ``decode(x)``."""

    def __init__(self, space):
        from cluster.space import Param, Space

        self.params = space.params
        self.unit = Space(
            [
                Param(p.name, lower=0, upper=len(p.choices) - 1, type="int", init=p.index(p.init))
                if p.is_categorical
                else p
                for p in space.params
            ]
        )
        self.names, self.dim, self.x0, self.bounds = self.unit.names, self.unit.dim, self.unit.x0, self.unit.bounds

    def decode(self, x) -> dict:
        """Vector ``(d,)`` of the unit cube -> dict of values in own units (categoricals as the choice)."""
        hp = self.unit.decode(x)
        for p in self.params:
            if p.is_categorical:
                hp[p.name] = p.choices[hp[p.name]]
        return hp


def method_space(cfg, name: str):
    """The space method ``name`` searches: for ``catcmawm`` the mixed :class:`cluster.space.Space`
    (integer and category-index coordinates), for the others :class:`IndexSpace` of the config's."""
    from cluster.space import Space

    if name == "catcmawm":
        return cfg.space if cfg.space.mixed else Space(cfg.space.params, mixed=True)
    return IndexSpace(cfg.space)


def make_es(cfg, name: str, kw: dict, seed: int):
    """The ES of run ``seed``: ``esopt.make_strategy(name, space.x0, sigma0, popsize=, seed=
    strategy.seed + seed, bounds=space.bounds)`` on ``space = method_space(cfg, name)`` (for
    ``catcmawm`` also its ``integers``, ``categories`` and ``stds``: ``space.strategy_options()``),
    with ``popsize``/``sigma0`` from ``kw`` (the method label's overrides) or the config.
    ``tests/test_bench_replay.py`` rebuilds committed runs with it."""
    import esopt

    popsize = kw.get("popsize", cfg.strategy.popsize)
    sigma0 = kw.get("sigma0", cfg.strategy.sigma0)
    space = method_space(cfg, name)
    extra = {}
    if name == "catcmawm":
        extra = space.strategy_options()
    es = esopt.make_strategy(
        name, space.x0, sigma0, popsize=popsize, seed=int(cfg.strategy.seed) + int(seed), bounds=space.bounds, **extra
    )
    return esopt.LQSurrogate(es) if kw.get("surrogate") == "lq" else es


def ref_catcmawm_loop(cfg, kw: dict, seed: int, n_trials: int, objective) -> None:
    """The reference implementation, ``cmaes.CatCMAwM`` (cmaes 0.13, Hamano et al. 2025), on
    the mixed space of ``catcmawm`` with the same start: unit coordinates as its ``x_space``
    ``[0, 1]``, integer coordinates as its ``z_space`` (every integer of the range), each
    categorical of ``K`` choices in its ``c_space``; ``mean`` = ``space.x0``, ``sigma`` =
    ``sigma0``, ``cov`` = ``diag(stds^2)`` (as esopt's), popsize and seed
    (``strategy.seed + seed``) as the ES methods; same generation semantics as :func:`es_loop`."""
    from cmaes import CatCMAwM as Ref

    space = method_space(cfg, "catcmawm")
    opts = space.strategy_options()
    ints = list(opts.get("integers", []))
    cats = dict(opts.get("categories", {}))
    cont = [i for i in range(space.dim) if i not in ints and i not in cats]
    lo, up = space.bounds
    stds = np.asarray(opts.get("stds", np.ones(space.dim)), dtype=float)
    g = cont + ints
    opt = Ref(
        x_space=[[0.0, 1.0]] * len(cont) if cont else None,
        z_space=[list(range(int(lo[i]), int(up[i]) + 1)) for i in ints] if ints else None,
        c_space=[int(cats[i]) for i in sorted(cats)] if cats else None,
        population_size=int(kw.get("popsize", cfg.strategy.popsize)),
        mean=np.asarray(space.x0, dtype=float)[g],
        sigma=float(kw.get("sigma0", cfg.strategy.sigma0)),
        cov=np.diag(stds[g] ** 2),
        seed=int(cfg.strategy.seed) + int(seed),
    )
    gen, done = 0, 0
    while done < n_trials:
        sols = [opt.ask() for _ in range(opt.population_size)]
        k = min(len(sols), n_trials - done)
        told = []
        for sol in sols[:k]:
            x = np.empty(space.dim)
            if cont:
                x[cont] = sol.x
            if ints:
                x[ints] = sol.z
            if cats:
                x[sorted(cats)] = np.argmax(sol.c, axis=1)
            told.append((sol, objective(space.decode(x), gen, float(opt._sigma))))
        done += k
        if k == len(sols):
            opt.tell(told)
        gen += 1


def es_loop(es, space, n_trials: int, objective) -> None:
    """Generations of ``es`` until ``n_trials`` candidates are evaluated: ask, decode each row with
    ``space.decode``, ``f = objective(hp, generation, sigma)`` (sigma: the step size the generation
    was sampled with, unit-cube units), tell; a last, incomplete generation is evaluated but not
    told (the campaign driver's generation semantics).  With :class:`esopt.LQSurrogate` one ask is
    one round of the pre-screened generation (``generation`` is then the inner strategy's)."""
    from esopt import LQSurrogate

    gen, done = 0, 0
    while done < n_trials:
        sigma = float(es.sigma)
        if isinstance(es, LQSurrogate):  # rounds of the inner generation
            gen = int(es.inner.countiter)
        X = es.ask()
        k = min(len(X), n_trials - done)
        f = [objective(space.decode(x), gen, sigma) for x in X[:k]]
        done += k
        if k == len(X):
            es.tell(X, np.asarray(f))
        gen += 1


def tpe_distributions(space) -> dict:
    """Optuna distributions equal to the ``Space``'s params (log10 -> ``log=True``, int -> Int,
    choices -> Categorical)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for p in space.params:
        log = p.scale == "log10"
        if p.is_categorical:
            out[p.name] = CategoricalDistribution(list(p.choices))
        elif p.type == "int":
            out[p.name] = IntDistribution(int(p.lower), int(p.upper), log=log)
        else:
            out[p.name] = FloatDistribution(float(p.lower), float(p.upper), log=log)
    return out


# ----------------------------------------------------------------------------------------------
# one run (executed in a worker process)
def run_one(job: dict) -> dict:
    """Run ``job["n_trials"]`` trials of one method with one seed; write its CSV; return a summary."""
    import torch

    torch.set_num_threads(1)
    prov = prov_mod.provenance(command=f"bench/hpo_quality.py run_one {json.dumps(job)}")  # before any trial
    cfg = load(job["config"])
    space = cfg.space
    name, kw = parse_method(job["method"])
    seed = int(job["seed"])
    train_seed = int(cfg.trial.get("seed", 0)) + seed
    spec = trial_spec(cfg, train_seed, job["trial_overrides"])
    n_trials = int(job["n_trials"])
    rows: list[dict] = []
    best = math.inf
    t_start = time.perf_counter()

    def record(hp: dict, gen: int, sigma: float = math.nan) -> float:
        nonlocal best
        r = evaluate(hp, spec)
        best = min(best, r["objective"])
        rows.append(
            {
                "method": job["method"],
                "seed": seed,
                "trial": len(rows),
                "generation": gen,
                "sigma": sigma,
                "train_seed": train_seed,
                **r,
                "best_so_far": best,
                **hp,
            }
        )
        if len(rows) % max(1, n_trials // 4) == 0:
            print(
                f"    {job['method']} seed {seed}: {len(rows)}/{n_trials} trials, best {pct(best)}%, "
                f"{time.perf_counter() - t_start:.0f} s",
                flush=True,
            )
        return r["objective"]

    if name in ES_METHODS:
        es_loop(make_es(cfg, name, kw, seed), method_space(cfg, name), n_trials, record)
    elif name == "refcatcmawm":
        ref_catcmawm_loop(cfg, kw, seed, n_trials, record)
    elif name == "random":
        rng = np.random.default_rng([seed, 7])
        unit = method_space(cfg, name)  # every choice, every integer equally likely
        for _ in range(n_trials):
            record(unit.decode(rng.uniform(size=unit.dim)), -1)
    elif name == "tpe":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed, **kw)
        study = optuna.create_study(direction="minimize", sampler=sampler)
        dists = tpe_distributions(space)
        for _ in range(n_trials):
            t = study.ask(dists)
            hp = {p.name: _plain(p, t.params[p.name]) for p in space.params}
            study.tell(t, record(hp, -1))
    elapsed = time.perf_counter() - t_start
    write_csv(Path(job["csv"]), rows, space.names)
    prov_mod.write_sidecar(Path(job["csv"]), prov, job=job)
    i = int(np.argmin([r["objective"] for r in rows]))
    return {
        "method": job["method"],
        "seed": seed,
        "elapsed_s": elapsed,
        "best": rows[i]["objective"],
        "best_hp": {n: rows[i][n] for n in space.names},
    }


def _plain(p, v):
    """Value ``v`` of param ``p`` as the objective gets it: the choice itself, an int, or a float."""
    if p.is_categorical:
        return v
    return int(v) if p.type == "int" else float(v)


def cell_value(p, cell: str):
    """A CSV cell of param ``p`` -> its value (a categorical's choice is matched by ``str``)."""
    if p.is_categorical:
        for c in p.choices:
            if str(c) == cell:
                return c
        raise ValueError(f"{p.name}: {cell!r} is not one of the choices {list(p.choices)}")
    return int(float(cell)) if p.type == "int" else float(cell)


def reeval_one(job: dict) -> list[dict]:
    """Retrain ``job["hp"]`` with training seeds ``REEVAL_SEED0 + k`` (k < job["k"]); rows for the CSV."""
    import torch

    torch.set_num_threads(1)
    cfg = load(job["config"])
    out = []
    for k in range(int(job["k"])):
        spec = trial_spec(cfg, REEVAL_SEED0 + k, job["trial_overrides"])
        r = evaluate(job["hp"], spec)
        out.append(
            {
                "probe": job["probe"],
                "run": job.get("run", ""),
                "method": job["method"],
                "seed": job["seed"],
                "train_seed": REEVAL_SEED0 + k,
                **r,
                **job["hp"],
            }
        )
    return out


# ----------------------------------------------------------------------------------------------
# files
def _fmt(v, exact: bool = False):
    if isinstance(v, float):
        return repr(v) if exact else f"{v:.6g}"
    return v


#: columns written exactly (``repr``) besides the hyperparameters: what an ES was told and sampled with
EXACT_COLS = ("objective", "sigma")


def write_csv(path: Path, rows: list[dict], names: list[str], base=BASE_COLS) -> None:
    """Write ``rows`` atomically (``path.tmp`` then rename); columns ``base`` then ``names``.

    Metrics are written with 6 significant digits; the hyperparameters ``names``, the objective
    and sigma exactly (``repr``): training is chaotic in the hyperparameters (at a fixed training
    seed, ``lr * (1 + 1e-6)`` can change the validation error by several images), so only exact
    values reproduce a trial, and a run is replayed from the objectives told
    (tests/test_bench_replay.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    hp = set(names) | set(EXACT_COLS)
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(base) + list(names), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(v, k in hp) for k, v in r.items()})
    tmp.replace(path)


def read_csv(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", s)


# ----------------------------------------------------------------------------------------------
# statistics and report
def curves(rows: list[dict], methods: list[str], seeds: int, n: int) -> dict[str, np.ndarray]:
    """``{method: (seeds, n)}`` best-so-far validation error (fraction)."""
    out = {}
    for m in methods:
        A = np.full((seeds, n), np.nan)
        for r in rows:
            if r["method"] == m and int(r["seed"]) < seeds and int(r["trial"]) < n:
                A[int(r["seed"]), int(r["trial"])] = float(r["objective"])
        out[m] = np.minimum.accumulate(A, axis=1)
    return out


def pct(a) -> str:
    return f"{100 * a:.2f}"


def med_range(a: np.ndarray) -> str:
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return "n/a"
    return f"{pct(np.median(a))} [{pct(a.min())}-{pct(a.max())}]"


def final_bests(rows, reeval_rows, methods, seeds, n) -> dict[str, dict[str, np.ndarray]]:
    """Per method, arrays over seeds (NaN where missing): ``val`` final best validation error,
    ``test`` its test error, ``reval``/``rtest`` the means over the retrained seeds."""
    by = {(r["method"], int(r["seed"]), int(r["trial"])): r for r in rows}
    out = {}
    for m in methods:
        d = {k: np.full(seeds, np.nan) for k in ("val", "test", "reval", "rtest")}
        for s in range(seeds):
            run = [by.get((m, s, t)) for t in range(n)]
            if any(r is None for r in run):
                continue
            b = min(run, key=lambda r: (float(r["objective"]), int(r["trial"])))
            d["val"][s], d["test"][s] = float(b["objective"]), _num(b["test_error"])
            g = [r for r in reeval_rows if r["method"] == m and int(r["seed"]) == s]
            if g:
                d["reval"][s] = np.mean([float(r["objective"]) for r in g])
                d["rtest"][s] = np.mean([_num(r["test_error"]) for r in g])
        out[m] = d
    return out


def _num(v) -> float:
    """A CSV cell or value -> float; ``None`` and ``""`` (not computed) -> NaN."""
    return math.nan if v is None or v == "" else float(v)


def _pairs(a: np.ndarray, b: np.ndarray) -> str:
    d = a - b
    d = d[np.isfinite(d)]
    if d.size == 0:
        return "n/a"
    return (
        ", ".join(f"{100 * x:+.2f}" for x in d) + f" (median {100 * np.median(d):+.2f}; "
        f"lower on {(d < 0).sum()}/{d.size} seeds)"
    )


def report(cfg, rows, reeval_rows, summaries, methods, seeds, n, wall_total, spec_info, computed=0) -> str:
    """Markdown tables (see module docstring): best-so-far quantiles, final bests, paired
    comparisons of the first method against the others, and the training-seed noise.  ``wall_total``
    (s) is this invocation's wall time, ``computed`` how many of the runs in ``summaries`` it ran
    (the rest came from the run cache, so a report-only invocation says 0 s of 0 runs)."""
    C = curves(rows, methods, seeds, n)
    F = final_bests(rows, reeval_rows, methods, seeds, n)
    cuts = [max(1, math.ceil(fr * n)) for fr in FRACTIONS]
    k = n_reeval(reeval_rows)
    lines = [
        f"### {cfg.name}: d = {cfg.space.dim} hyperparameters, {n} trials per run, {seeds} seeds",
        "",
        spec_info,
        "",
        "Error in %, median [min-max] over seeds. Best validation error so far after 25/50/100% of the "
        "budget; test error of the final best (the same trained model); the final best retrained with "
        f"{k} fresh training seeds (mean; validation and test); wall time of a run (one process).",
        "",
        "| method | "
        + " | ".join(f"{int(fr * 100)}% ({c} trials)" for fr, c in zip(FRACTIONS, cuts))
        + " | test of final best | retrained: val | retrained: test | run wall time (s) |",
        "|---" * (len(cuts) + 5) + "|",
    ]
    for m in methods:
        cells = [med_range(C[m][:, c - 1]) for c in cuts]
        walls = [sm["elapsed_s"] for sm in summaries if sm["method"] == m]
        wall = f"{np.median(walls):.0f} [{min(walls):.0f}-{max(walls):.0f}]" if walls else "n/a"
        lines.append(
            f"| {m} | " + " | ".join(cells) + f" | {med_range(F[m]['test'])} | "
            f"{med_range(F[m]['reval'])} | {med_range(F[m]['rtest'])} | {wall} |"
        )
    ref = methods[0]
    if len(methods) > 1:
        lines += [
            "",
            f"Paired per-seed differences, {ref} minus each other method (percentage points; "
            "negative = lower error for " + ref + "), final best validation error / retrained:",
            "",
        ]
        for m in methods[1:]:
            a, b = F[ref]["val"], F[m]["val"]
            disjoint = np.nanmax(a) < np.nanmin(b)
            lines.append(
                f"- vs {m}: {_pairs(a, b)}; ranges {med_range(a)} vs {med_range(b)} "
                f"({'disjoint' if disjoint else 'overlapping'})"
            )
            if np.isfinite(F[ref]["reval"]).any():
                lines.append(f"  - retrained: {_pairs(F[ref]['reval'], F[m]['reval'])}")
    if reeval_rows:
        lines += [
            "",
            f"Noise between training seeds: each probe retrained with {k} fresh training seeds "
            "(validation / test error %, mean, std, min-max):",
            "",
            "| probe | val mean | val std | val min-max | test mean | test std |",
            "|---|---|---|---|---|---|",
        ]
        groups: dict = {}
        for r in reeval_rows:
            groups.setdefault((r["probe"], r["method"], int(r["seed"])), []).append(r)
        order = {m: i for i, m in enumerate(["x0"] + methods)}
        stds = []
        for (probe, m, s), g in sorted(groups.items(), key=lambda kv: (order.get(kv[0][1], 99), kv[0][2])):
            v = np.array([float(r["objective"]) for r in g])
            t = np.array([_num(r["test_error"]) for r in g])
            sd = v.std(ddof=1) if v.size > 1 else np.nan
            if probe != "x0":
                stds.append(sd)
            label = "x0 (centre of the box)" if probe == "x0" else f"{m} seed {s} final best"
            lines.append(
                f"| {label} | {pct(v.mean())} | {pct(sd)} | {pct(v.min())}-{pct(v.max())} | "
                f"{pct(t.mean())} | {pct(t.std(ddof=1) if t.size > 1 else np.nan)} |"
            )
        if stds:
            rms = np.sqrt(np.nanmean(np.square(stds)))
            lines += [
                "",
                f"Std of the validation error between training seeds, over the {len(stds)} final "
                f"bests: median {pct(np.nanmedian(stds))}, root-mean-square {pct(rms)} percentage points.",
            ]
    run_s = sum(float(sm.get("elapsed_s") or 0.0) for sm in summaries)
    lines += [
        "",
        f"Wall time of this invocation: {wall_total:.0f} s ({computed} of the {len(summaries)} runs computed now; "
        f"the others read from the run cache); the runs' own wall times add up to {run_s:.0f} s.",
    ]
    return "\n".join(lines)


def n_reeval(reeval_rows) -> int:
    """Retraining seeds per probe (the largest group)."""
    groups: dict = {}
    for r in reeval_rows:
        key = (r["probe"], r["method"], r["seed"])
        groups[key] = groups.get(key, 0) + 1
    return max(groups.values()) if groups else 0


def plot(path: Path, cfg, rows, methods, seeds, n) -> None:
    """Best-so-far validation error (%) vs trial: median line, min-max band, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    C = curves(rows, methods, seeds, n)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    x = np.arange(1, n + 1)
    for i, m in enumerate(methods):
        color = COLORS.get(m, f"C{i + 4}")
        A = 100 * C[m]
        ax.plot(x, np.nanmedian(A, axis=0), color=color, lw=2, label=f"{m} (median of {seeds})")
        ax.fill_between(x, np.nanmin(A, axis=0), np.nanmax(A, axis=0), color=color, alpha=0.18, lw=0)
    ax.set_xlabel("trials")
    ax.set_ylabel("best validation error so far (%)")
    ax.set_yscale("log")
    ax.set_title(f"{cfg.name}: d={cfg.space.dim}, band = min-max over {seeds} seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
def default_methods(cfg) -> list[str]:
    """``catcmawm cmaes random tpe`` for a space with a categorical or an int (``cmaes`` then
    searches categoricals as integer indices, :class:`IndexSpace`), else ``cmaes random tpe`` plus
    ``sepcmaes`` when d >= 10."""
    if any(p.is_categorical or p.type == "int" for p in cfg.space.params) and cfg.space.mixed:
        return ["catcmawm", "cmaes", "random", "tpe"]
    return ["cmaes", "sepcmaes", "random", "tpe"] if cfg.space.dim >= 10 else ["cmaes", "random", "tpe"]


def run_key(cfg, method: str, overrides: dict) -> str:
    """Short hash of what determines a run's trials: space, trial spec (+ overrides), the method and
    its effective settings (for the ES: popsize, sigma0, seed after the label's overrides).  A cached
    run is reused exactly when these agree, whatever the label (``cmaes`` or ``cmaes:popsize=8``)."""
    import hashlib

    name, kw = parse_method(method)
    raw = cfg.raw
    key = {"space": raw["space"], "trial": {**raw["trial"], **overrides}, "name": name, "options": kw}
    if name in ES_METHODS or name == "refcatcmawm":
        key["options"] = {k: kw.get(k, raw["strategy"][k]) for k in ("popsize", "sigma0", "seed")}
        if "surrogate" in kw:
            key["options"]["surrogate"] = kw["surrogate"]
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]


def same_runs(cfg, methods: list[str], overrides: dict) -> list[str]:
    """The first group of labels in ``methods`` that name the same runs (:func:`run_key`), or []."""
    same: dict = {}
    for m in methods:
        same.setdefault((parse_method(m)[0], run_key(cfg, m, overrides)), []).append(m)
    return next((v for v in same.values() if len(v) > 1), [])


def run_pool(fn, jobs: list[dict], workers: int):
    """Yield ``fn(job)`` results as they finish, from ``workers`` spawned processes."""
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        for fut in as_completed([pool.submit(fn, j) for j in jobs]):
            yield fut.result()


def reeval_jobs(cfg, config_path, runs: dict, n, k, overrides, have: set) -> list[dict]:
    """Jobs retraining the config's x0 and each complete run's final best with ``k`` fresh seeds.

    ``runs`` maps a run's CSV name to its rows; ``have`` holds the run names already re-evaluated
    (and ``"x0"``)."""
    jobs = []
    if "x0" not in have:
        jobs.append(
            {
                "config": config_path,
                "probe": "x0",
                "run": "x0",
                "method": "x0",
                "seed": -1,
                "hp": cfg.space.decode(cfg.space.x0),
                "k": k,
                "trial_overrides": overrides,
            }
        )
    for name, rr in sorted(runs.items()):
        if name in have or len(rr) < n:
            continue
        b = min(rr, key=lambda r: (float(r["objective"]), int(r["trial"])))
        hp = {p.name: cell_value(p, b[p.name]) for p in cfg.space.params}
        jobs.append(
            {
                "config": config_path,
                "probe": "best",
                "run": name,
                "method": b["method"],
                "seed": int(b["seed"]),
                "hp": hp,
                "k": k,
                "trial_overrides": overrides,
            }
        )
    return jobs


REEVAL_COLS = ["probe", "run", "method", "seed", "train_seed", "objective", "test_error", "status", "wall_time_s"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="campaign YAML (space, trial, strategy)")
    ap.add_argument("--trials", type=int, default=None, help="trials per run (default: budget.max_trials)")
    ap.add_argument("--seeds", type=int, default=5, help="independent runs per method")
    ap.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="e.g. 'cmaes random tpe' or 'cmaes:popsize=8,sigma0=0.2 random' (default: "
        "cmaes random tpe, plus sepcmaes when d >= 10)",
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (1 thread each)")
    ap.add_argument("--epochs", type=int, default=None, help="override trial.epochs (smoke tests)")
    ap.add_argument("--reeval", type=int, default=3, help="fresh training seeds per final best (0: off)")
    ap.add_argument("--out", default=None, help="cache/output folder (default bench/out/<config name>)")
    ap.add_argument("--save-results", action="store_true", help="copy CSV, PNG, tables to bench/results/")
    ap.add_argument("--report-only", action="store_true", help="no new trials; tables from the cache")
    ap.add_argument(
        "--allow-stale",
        action="store_true",
        help="save results even if cached runs came from other code (another source digest)",
    )
    args = ap.parse_args(argv)
    command = (
        "python bench/hpo_quality.py "
        + " ".join(  # as recorded in hpo_quality.md
            a for a in (sys.argv[1:] if argv is None else argv) if a != "--report-only"
        )
    )

    prov = prov_mod.provenance(command=command)  # of the code as this invocation starts
    cfg = load(args.config)
    n = args.trials or cfg.budget.max_trials
    if not n:
        ap.error("--trials is required when the config has no budget.max_trials")
    methods = list(args.methods) if args.methods else default_methods(cfg)
    for m in methods:
        parse_method(m)
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    twins = same_runs(cfg, methods, overrides)
    if twins:
        ap.error(
            f"methods {' and '.join(twins)} are the same runs (same effective settings: the config's "
            f"strategy already has them); drop one or change its options"
        )
    out = Path(args.out) if args.out else ROOT / "bench" / "out" / cfg.name
    run_dir = out / "runs"
    tag = f"n{n}-s{args.seeds}" + (f"-e{args.epochs}" if args.epochs is not None else "")
    spec_info = (
        f"Task: `trial: {json.dumps({**cfg.trial, **overrides})}`; config strategy: popsize "
        f"{cfg.strategy.popsize or 'default'}, sigma0 {cfg.strategy.sigma0}. "
        "Training seed of run r = trial.seed + r for every trial of every method."
    )

    def csv_path(m: str, s: int) -> Path:
        return run_dir / f"{parse_method(m)[0]}-{run_key(cfg, m, overrides)}-n{n}-s{s}.csv"

    jobs = [
        {
            "config": args.config,
            "method": m,
            "seed": s,
            "n_trials": n,
            "trial_overrides": overrides,
            "csv": str(csv_path(m, s)),
        }
        for s in range(args.seeds)
        for m in methods
        if not csv_path(m, s).exists()
    ]
    t0 = time.perf_counter()
    summaries_path = run_dir / "summaries.jsonl"
    if jobs and not args.report_only:
        print(f"{len(jobs)} runs x {n} trials on {args.workers} workers -> {run_dir}", flush=True)
        for sm in run_pool(run_one, jobs, args.workers):
            sm["csv"] = csv_path(sm["method"], sm["seed"]).name
            with summaries_path.open("a") as fh:
                fh.write(json.dumps(sm) + "\n")
            print(
                f"  done {sm['method']} seed {sm['seed']}: best {pct(sm['best'])}% in {sm['elapsed_s']:.0f} s "
                f"({time.perf_counter() - t0:.0f} s elapsed)",
                flush=True,
            )
    runs = {
        csv_path(m, s).name: [{**r, "method": m} for r in read_csv(csv_path(m, s))]
        for s in range(args.seeds)
        for m in methods
        if csv_path(m, s).exists()
    }
    rows = [r for rr in runs.values() for r in rr]
    run_prov = {name: _run_provenance(prov_mod.read_sidecar(run_dir / name)) for name in runs}
    stale = _stale(run_prov, prov)
    if stale and args.save_results and not args.allow_stale:
        print("not saving results from stale runs: delete them (or use a fresh --out), or pass --allow-stale")
        return 2
    names = {csv_path(m, s).name for s in range(args.seeds) for m in methods}
    summaries = (
        [json.loads(line) for line in summaries_path.read_text().splitlines()] if summaries_path.exists() else []
    )
    label = {csv_path(m, s).name: m for s in range(args.seeds) for m in methods}
    summaries = list(
        {sm["csv"]: {**sm, "method": label[sm["csv"]]} for sm in summaries if sm.get("csv") in names}.values()
    )

    # re-evaluation of every run's final best, and of the config's x0, with fresh training seeds
    reeval_rows: list[dict] = []
    if args.reeval > 0:
        reeval_rows, run_prov["reeval"] = reevaluate(cfg, args, runs, n, overrides, run_dir, names, prov)
        stale += _stale(run_prov["reeval"]["probes"], prov, "reeval of ")
        if stale and args.save_results and not args.allow_stale:
            print("not saving results from stale re-evaluations: delete them, or pass --allow-stale")
            return 2
    wall_total = time.perf_counter() - t0

    computed = 0 if args.report_only else len(jobs)  # run_pool returns only once every job has run
    table = report(cfg, rows, reeval_rows, summaries, methods, args.seeds, n, wall_total, spec_info, computed)
    print(table)
    prov_md = prov_mod.markdown(prov) + (
        f"\n{len(stale)} of the runs or re-evaluations came from other code (--allow-stale)." if stale else ""
    )
    outputs = write_outputs(out, tag, cfg, rows, [], methods, args.seeds, n, table, prov_md)
    print(f"\nwrote {out}/hpo_quality-{tag}.{{md,csv,png}}")
    if args.save_results:
        res = ROOT / "bench" / "results"
        outputs += write_outputs(res, None, cfg, rows, reeval_rows, methods, args.seeds, n, table, prov_md)
        update_md(res / "hpo_quality.md", cfg.name, table, command, prov_md)
        print(f"saved to {res}")
    for path in outputs:
        prov_mod.write_sidecar(path, prov, runs=run_prov, stale=stale)
    return 0


def reevaluate(cfg, args, runs: dict, n: int, overrides: dict, run_dir: Path, names: set, prov: dict):
    """Retrain the final bests of ``runs`` (and x0) with ``args.reeval`` fresh training seeds,
    cached in ``run_dir`` (``reeval-*.csv`` with a provenance sidecar naming the code of each
    probe).  Returns the rows of the probes in ``names | {"x0"}`` and ``{"file", "probes":
    {probe: provenance}}``."""
    re_path = run_dir / f"reeval-{run_key(cfg, 'random', overrides)}-k{args.reeval}.csv"
    done = read_csv(re_path) if re_path.exists() else []
    probes = (prov_mod.read_sidecar(re_path) or {}).get("probes", {})
    rjobs = reeval_jobs(cfg, args.config, runs, n, args.reeval, overrides, {r["run"] for r in done})
    if rjobs and not args.report_only:
        print(f"re-evaluating {len(rjobs)} probes x {args.reeval} training seeds", flush=True)
        for res in run_pool(reeval_one, rjobs, args.workers):
            done += res
            write_csv(re_path, done, cfg.space.names, base=REEVAL_COLS)
            probes.update({r["run"]: _run_provenance(prov) for r in res})
            prov_mod.write_sidecar(re_path, prov, probes=probes)
    rows = [r for r in done if r["run"] in names | {"x0"}]
    return rows, {"file": re_path.name, "probes": {r["run"]: probes.get(r["run"]) for r in rows}}


def write_outputs(folder: Path, tag, cfg, rows, reeval_rows, methods, seeds, n, table, prov_md) -> list[Path]:
    """The per-trial CSV and the PNG (and the re-evaluation CSV if ``reeval_rows``) in ``folder``:
    ``hpo_quality-<tag>.*`` with a ``.md`` of the table (``tag`` given), else
    ``hpo_quality-<config name>.*`` (bench/results).  Returns the CSV/PNG paths (for sidecars)."""
    stem = folder / f"hpo_quality-{tag if tag is not None else cfg.name}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".png")]
    write_csv(paths[0], rows, cfg.space.names)
    plot(paths[1], cfg, rows, methods, seeds, n)
    if reeval_rows:
        paths.append(stem.with_name(stem.name + "-reeval.csv"))
        write_csv(paths[2], reeval_rows, cfg.space.names, base=REEVAL_COLS)
    if tag is not None:
        stem.with_name(stem.name + ".md").write_text(table + "\n\n" + prov_md + "\n")
    return paths


#: folders whose code decides a trial's candidates and values: a cached run of an evolution
#: strategy is stale if they differed; random search and TPE never call esopt (their candidates
#: come from numpy and Optuna), so theirs, and the re-evaluations of ``x0``, are stale only if
#: ``trials/`` differed (:func:`stale_dirs`)
STALE_DIRS = ("esopt", "trials")


def stale_dirs(name: str) -> tuple[str, ...]:
    """The folders of :data:`STALE_DIRS` whose code decided cached result ``name`` (a run CSV named
    ``<method>-<key>-...``, or the probe ``x0``): both for the evolution strategies, ``trials``
    alone for random search, TPE and ``x0``."""
    return STALE_DIRS if name.split("-", 1)[0] in ES_METHODS else ("trials",)


def _stale(entries: dict, prov: dict, what: str = "") -> list[str]:
    """Names in ``entries`` ({name: run provenance or None}) without provenance or whose code in
    :func:`stale_dirs` differed from ``prov``'s (source digests); printed as a warning, as are
    entries that differ only elsewhere (``cluster/``, ``bench/``, or ``esopt/`` for random and TPE:
    not counted as stale)."""
    every = tuple(prov["source_sha1_by_dir"])
    stale = sorted(what + k for k, p in entries.items() if prov_mod.code_differs(p, prov, stale_dirs(k)))
    other = sorted(what + k for k, p in entries.items() if p is not None and prov_mod.code_differs(p, prov, every))
    for names, msg in (
        (stale, "have no provenance or came from other code where it decides them (stale_dirs)"),
        (sorted(set(other) - set(stale)), "came from other code outside those folders"),
    ):
        if names:
            print(
                f"WARNING: {len(names)} cached results {msg}: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}"
            )
    return stale


def _run_provenance(p: dict | None) -> dict | None:
    """The part of a run's provenance that identifies its code and BLAS (None if unrecorded)."""
    if p is None:
        return None
    return {
        "date_utc": p["date_utc"],
        "commit": p["git"]["commit"],
        "dirty": p["git"]["dirty"],
        "source_sha1": p["source_sha1"],
        "source_sha1_by_dir": p.get("source_sha1_by_dir", {}),
        "blas": sorted(
            {f"{b['internal_api']} {b['version']} {b['architecture']}" for b in p["blas"] if b["user_api"] == "blas"}
        ),
    }


def update_md(path: Path, name: str, table: str, command: str, prov_md: str = "") -> None:
    """Replace (or append) the section of ``name`` in ``path``, delimited by HTML comments; the
    section ends with the command and the provenance lines ``prov_md``."""
    start, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    section = f"{start}\n{table}\n\nCommand: `{command}`  \n{prov_md}\n{end}"
    text = path.read_text() if path.exists() else "# Tuning quality (bench/hpo_quality.py)\n"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
