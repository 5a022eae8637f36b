"""esopt's CatCMAwM against cmaes's CatCMAwM on the benchmark functions of the CatCMA papers.

Functions (CatCMA, Hamano et al., GECCO 2024, arXiv 2405.09962, Sec. 6; CatCMA with margin,
arXiv 2504.07884), optimum 0 at x = 0, z = 0, c = category 0:

* ``SphereOneMax``: ``sum x^2 + sum_j [c_j != 0]``
* ``SphereLeadingOnes``: ``sum x^2 + N_cat - (number of leading c_j == 0)``
* ``EllipsoidOneMax``: ``sum_i 1000^{i/(N_co-1)} x_i^2 + sum_j [c_j != 0]``
* ``SphereInt``: ``sum x^2 + sum z^2``
* ``EllipsoidInt``: ``sum_i 1000^{i/(N-1)} v_i^2`` over ``v = (x, z)``
* ``SphereIntOneMax``: ``sum x^2 + sum z^2 + sum_j [c_j != 0]`` (all three kinds)

Setting: continuous ``x in [-5, 5]``, integers ``z in {-10..10}``, categoricals with ``K``
categories; start mean 1 on continuous and 2 on integer coordinates, ``sigma0 = 1``, ``C = I`` (the
same for both libraries: cmaes gets ``mean``, ``sigma``, ``cov``), categoricals uniform, default
popsize ``4 + floor(3 ln N)``.  Measured: evaluations until the best f is ``<= target`` (1e-10,
the papers' target), capped at a budget (a run that misses it counts as ``inf``).  The two
libraries use different random streams; the comparison is of medians over seeds.

Usage::

    python bench/mixed_vs_cmaes.py [--seeds 10] [--out bench/results/mixed_vs_cmaes.md]

``tests/test_mixed.py`` imports :func:`evals_to_target` and :data:`PROBLEMS` from this file.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # bench/provenance.py, also when imported
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance as prov_mod  # noqa: E402

TARGET = 1e-10
X_BOUND = 5.0
Z_RANGE = (-10, 10)


@dataclass(frozen=True)
class Problem:
    """A mixed benchmark: ``n_co`` continuous, ``n_in`` integer, ``n_ca`` categorical coordinates
    (in that order) with ``K`` categories each; ``kind`` one of the function names above."""

    kind: str
    n_co: int
    n_in: int
    n_ca: int
    K: int = 3

    @property
    def n(self) -> int:
        return self.n_co + self.n_in + self.n_ca

    @property
    def label(self) -> str:
        parts = [f"co={self.n_co}", f"in={self.n_in}", f"ca={self.n_ca}"]
        return f"{self.kind}({', '.join(parts)}, K={self.K})"

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """f of the ``(k, n)`` rows of ``X`` (categorical coordinates as indices); ``(k,)``."""
        X = np.atleast_2d(X)
        v = X[:, : self.n_co + self.n_in]
        c = X[:, self.n_co + self.n_in :]
        if self.kind.startswith("Ellipsoid"):
            nv = v.shape[1]
            scale = 1000.0 ** (np.arange(nv) / max(nv - 1, 1))
            cont = (scale * v**2).sum(axis=1)
        else:
            cont = (v**2).sum(axis=1)
        if self.kind.endswith("LeadingOnes"):
            lead = np.cumprod(c == 0, axis=1).sum(axis=1)
            return cont + self.n_ca - lead
        return cont + (c != 0).sum(axis=1)

    def x0(self) -> np.ndarray:
        return np.concatenate([np.ones(self.n_co), np.full(self.n_in, 2.0), np.full(self.n_ca, self.K - 1.0)])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.concatenate([np.full(self.n_co, -X_BOUND), np.full(self.n_in, Z_RANGE[0]), np.zeros(self.n_ca)])
        hi = np.concatenate(
            [np.full(self.n_co, X_BOUND), np.full(self.n_in, Z_RANGE[1]), np.full(self.n_ca, self.K - 1)]
        )
        return lo, hi


PROBLEMS = [
    Problem("SphereOneMax", 3, 0, 3),
    Problem("SphereOneMax", 5, 0, 5),
    Problem("SphereLeadingOnes", 3, 0, 3),
    Problem("SphereLeadingOnes", 5, 0, 5),
    Problem("EllipsoidOneMax", 3, 0, 3),
    Problem("EllipsoidOneMax", 5, 0, 5),
    Problem("SphereInt", 3, 3, 0),
    Problem("SphereInt", 5, 5, 0),
    Problem("EllipsoidInt", 3, 3, 0),
    Problem("EllipsoidInt", 5, 5, 0),
    Problem("SphereIntOneMax", 3, 3, 3),
    Problem("SphereIntOneMax", 5, 5, 5, K=5),
    Problem("SphereOneMax", 10, 0, 10, K=5),
    Problem("EllipsoidInt", 10, 10, 0),
]


def _run_esopt(p: Problem, seed: int, budget: int) -> float:
    from esopt import CatCMAwM

    es = CatCMAwM(
        p.x0(),
        1.0,
        integers=list(range(p.n_co, p.n_co + p.n_in)),
        categories={j: p.K for j in range(p.n_co + p.n_in, p.n)},
        bounds=p.bounds(),
        seed=seed,
    )
    while es.countevals < budget:
        X = es.ask()
        f = p(X)
        hit = np.flatnonzero(f <= TARGET)
        if hit.size:
            return float(es.countevals + hit[0] + 1)
        es.tell(X, f)
    return np.inf


def _run_cmaes(p: Problem, seed: int, budget: int) -> float:
    from cmaes import CatCMAwM as Ref

    ng = p.n_co + p.n_in
    opt = Ref(
        x_space=[[-X_BOUND, X_BOUND]] * p.n_co if p.n_co else None,
        z_space=[list(range(Z_RANGE[0], Z_RANGE[1] + 1))] * p.n_in if p.n_in else None,
        c_space=[p.K] * p.n_ca if p.n_ca else None,
        mean=p.x0()[:ng].copy(),
        sigma=1.0,
        cov=np.eye(ng),
        seed=seed,
    )
    evals = 0
    while evals < budget:
        sols = []
        for _ in range(opt.population_size):
            s = opt.ask()
            parts = [a for a in (s.x, s.z) if a is not None]
            if s.c is not None:
                parts.append(np.argmax(s.c, axis=1).astype(float))
            f = float(p(np.concatenate(parts))[0])
            evals += 1
            if f <= TARGET:
                return float(evals)
            sols.append((s, f))
        opt.tell(sols)
    return np.inf


def evals_to_target(library: str, p: Problem, seed: int, budget: int = 20000) -> float:
    """Evaluations until the best f of ``p`` is ``<= TARGET`` (``inf`` if not within ``budget``);
    ``library`` is ``"esopt"`` or ``"cmaes"``."""
    return (_run_esopt if library == "esopt" else _run_cmaes)(p, seed, budget)


def _median_row(p: Problem, seeds: int, budget: int) -> tuple[float, float, int, int]:
    a = [evals_to_target("esopt", p, s, budget) for s in range(seeds)]
    b = [evals_to_target("cmaes", p, s, budget) for s in range(seeds)]
    return float(np.median(a)), float(np.median(b)), int(np.isfinite(a).sum()), int(np.isfinite(b).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    t0 = time.time()
    command = f"python bench/mixed_vs_cmaes.py --seeds {args.seeds} --budget {args.budget}"
    prov = prov_mod.provenance(command=command)  # commit, packages, BLAS kernel, CPU (bench/provenance.py)
    lines = [
        "# esopt CatCMAwM vs cmaes CatCMAwM: median evaluations to f <= 1e-10",
        "",
        f"Command: `{command}`  ",
        prov_mod.markdown(prov),
        f"Seeds 0..{args.seeds - 1} for each library; success = runs reaching the target within the budget.",
        "",
        "| problem | esopt median | cmaes median | esopt / cmaes | esopt success | cmaes success |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for p in PROBLEMS:
        ma, mb, sa, sb = _median_row(p, args.seeds, args.budget)
        ratio = ma / mb if np.isfinite(ma) and np.isfinite(mb) else float("nan")
        lines.append(f"| {p.label} | {ma:.0f} | {mb:.0f} | {ratio:.2f} | {sa}/{args.seeds} | {sb}/{args.seeds} |")
        print(lines[-1], flush=True)
    lines += ["", f"Wall time: {time.time() - t0:.0f} s."]
    text = "\n".join(lines) + "\n"
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        prov_mod.write_sidecar(args.out, prov)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
