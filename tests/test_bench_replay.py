"""The committed tuning-quality results replay from the code: results and code cannot drift apart.

``bench/results/hpo_quality-<config>.csv`` holds every trial of every run of
``bench/hpo_quality.py`` on ``cluster/configs/<config>.yaml``.  For the evolution strategies
(``catcmawm``, ``cmaes``, ``sepcmaes`` and their labels with overrides, e.g.
``cmaes:sigma0=0.2``), the first
``GENERATIONS`` generations of every seed are rebuilt here without training anything: the
strategy is built by the benchmark's own :func:`make_es` (config seed + run, popsize, sigma0,
``space.x0``, bounds, on the space of :func:`method_space`), run by its own :func:`es_loop` (ask,
``space.decode``, tell), and told the objective values the CSV records.  Every decoded
hyperparameter (and the ``sigma`` and ``generation`` columns) must equal the committed row:
categorical choices and integers exactly, reals to 1e-9 relative (or
to the precision the cell was written with, if that is coarser: files written before the benchmark
wrote them with ``repr``).

When a strategy's sampling or a config's ``strategy``/``space`` changes, this test fails until the
results are regenerated (commands in bench/results/hpo_quality.md).
"""

from __future__ import annotations

import csv
import decimal
from pathlib import Path

import numpy as np
import pytest
from helpers_bench import load_bench

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
GENERATIONS = 3
RTOL = 1e-9


def _load_bench():
    """bench/hpo_quality.py as a module (the environment it pins on import is restored)."""
    return load_bench("hpo_quality", "hpo_quality_replayed")


def _result_files() -> list[Path]:
    return sorted(p for p in RESULTS.glob("hpo_quality-*.csv") if not p.name.endswith("-reeval.csv"))


def _config_of(csv_path: Path) -> Path:
    return ROOT / "cluster" / "configs" / (csv_path.stem[len("hpo_quality-") :] + ".yaml")


def _tol(cell: str, value: float) -> float:
    """``RTOL * |value|`` or half a unit of the cell's last written digit, whichever is larger."""
    exponent = decimal.Decimal(cell).as_tuple().exponent
    return max(RTOL * abs(value), 0.5 * 10.0 ** int(exponent), 1e-300)


def _check_cell(where: str, cell: str, value: float) -> None:
    expected = float(cell)
    assert abs(value - expected) <= _tol(cell, expected), f"{where}: replayed {value!r}, committed {cell}"


def replay(csv_path: Path, config_path: Path, generations: int = GENERATIONS) -> int:
    """Replay the first ``generations`` generations of every ES run in ``csv_path`` (a file
    written by bench/hpo_quality.py from ``config_path``); raise ``AssertionError`` at the first
    cell that differs.  Returns the number of rows compared."""
    from cluster.config import load_config

    bench = _load_bench()
    cfg = load_config(str(config_path))
    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    runs: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        if bench.parse_method(r["method"])[0] in bench.ES_METHODS and int(r["generation"]) < generations:
            runs.setdefault((r["method"], int(r["seed"])), []).append(r)
    checked = 0
    for (label, seed), rr in sorted(runs.items()):
        rr.sort(key=lambda r: int(r["trial"]))
        assert [int(r["trial"]) for r in rr] == list(range(len(rr))), f"{label} seed {seed}: trials missing"
        name, kw = bench.parse_method(label)
        es = bench.make_es(cfg, name, kw, seed)
        pos = iter(range(len(rr)))

        def objective(hp: dict, gen: int, sigma: float, label=label, seed=seed, rr=rr, pos=pos) -> float:
            i = next(pos)
            row, where = rr[i], f"{csv_path.name}: {label} seed {seed} trial {i}"
            assert int(row["generation"]) == gen, f"{where}: generation {gen}, committed {row['generation']}"
            if row["sigma"] != "":
                _check_cell(f"{where}, sigma", row["sigma"], sigma)
            for p in cfg.space.params:
                if p.is_categorical:
                    assert row[p.name] == str(hp[p.name]), f"{where}, {p.name}: {hp[p.name]} vs {row[p.name]}"
                elif p.type == "int":
                    assert int(float(row[p.name])) == hp[p.name], f"{where}, {p.name}: {hp[p.name]} vs {row[p.name]}"
                else:
                    _check_cell(f"{where}, {p.name}", row[p.name], float(hp[p.name]))
            return float(row["objective"])

        bench.es_loop(es, bench.method_space(cfg, name), len(rr), objective)
        checked += len(rr)
    return checked


FILES = _result_files()


def test_there_are_committed_results_to_replay():
    assert FILES, f"no bench/results/hpo_quality-*.csv under {RESULTS}"
    for f in FILES:
        assert _config_of(f).exists(), f"{f.name}: its config {_config_of(f)} is missing"


@pytest.mark.parametrize("csv_path", FILES, ids=[f.stem for f in FILES])
def test_committed_es_runs_replay_from_the_code(csv_path):
    checked = replay(csv_path, _config_of(csv_path))
    assert checked > 0, f"{csv_path.name} holds no ES rows of generations < {GENERATIONS}"


@pytest.mark.parametrize("csv_path", FILES, ids=[f.stem for f in FILES])
def test_committed_results_record_their_provenance(csv_path):
    """Each results CSV has the sidecar bench/hpo_quality.py writes (bench/provenance.py): the
    commit, the source digest and the BLAS kernel it was produced with, and its runs'."""
    import json

    side = csv_path.with_name(csv_path.name + ".provenance.json")
    assert side.exists(), f"{csv_path.name} has no {side.name}: regenerate it with bench/hpo_quality.py"
    prov = json.loads(side.read_text())
    assert prov["git"]["commit"] and len(prov["source_sha1"]) == 40
    assert prov["blas"] and all(b.get("architecture") for b in prov["blas"] if b.get("internal_api") == "openblas")
    assert prov["runs"] and not prov["stale"], f"{csv_path.name} was saved from stale runs: {prov['stale'][:4]}"
    assert np.all([p is not None and p["source_sha1"] for k, p in prov["runs"].items() if k != "reeval"])


def test_a_run_is_stale_only_where_its_code_decides_it():
    """An esopt change makes the evolution strategies' cached runs stale, not random search's or
    TPE's (they never call esopt); a trials change makes every run stale."""
    hq = _load_bench()
    now = {"source_sha1_by_dir": {"esopt": "e2", "trials": "t1", "cluster": "c1", "bench": "b1"}}
    old_esopt = {"source_sha1_by_dir": {**now["source_sha1_by_dir"], "esopt": "e1"}}
    old_trials = {"source_sha1_by_dir": {**now["source_sha1_by_dir"], "trials": "t0"}}
    names = ["catcmawm-1a-n100-s0.csv", "cmaes-9b-n100-s0.csv", "sepcmaes-3c-n100-s1.csv"]
    peers = ["random-c9-n100-s0.csv", "tpe-be-n100-s0.csv", "x0"]
    assert hq._stale({n: old_esopt for n in names + peers}, now) == sorted(names)
    assert hq._stale({n: old_trials for n in names + peers}, now) == sorted(names + peers)
    assert hq._stale({n: now for n in names + peers}, now) == []
    assert hq._stale({"tpe-be-n100-s0.csv": None}, now, "reeval of ") == ["reeval of tpe-be-n100-s0.csv"]
