"""``bench/hpo_quality.py``'s ``refcatcmawm``: the reference implementation (cmaes's ``CatCMAwM``)
searches the campaign's mixed space as esopt's ``catcmawm`` does (same start, same decode), so the
two are compared on one task.  No training: a synthetic objective over the decoded values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers_bench import load_bench

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "cluster" / "configs" / "mnist1d-mixed.yaml"


def _objective(hp: dict) -> float:
    """Lower with the 'radam' choice, lr near 1e-2, small batches and wide layers."""
    return (
        (hp["optimizer"] != "radam") * 1.0
        + (np.log10(hp["lr"]) + 2.0) ** 2
        + 0.1 * (hp["log2_batch_size"] - 5)
        + sum(0.01 * (96 - hp[f"filters{i}"]) for i in (1, 2, 3))
    )


def test_the_reference_searches_the_campaign_space_from_the_same_start():
    hq = load_bench("hpo_quality", "hpo_quality_ref")
    cfg = hq.load(str(CONFIG))
    space = cfg.space
    rows = []

    def record(hp, gen, sigma):
        rows.append((hp, gen, sigma))
        return _objective(hp)

    hq.ref_catcmawm_loop(cfg, {}, 0, 60, record)
    assert len(rows) == 60
    popsize, sigma0 = cfg.strategy.popsize, cfg.strategy.sigma0
    assert [g for _, g, _ in rows] == [k // popsize for k in range(60)]
    assert {s for _, g, s in rows if g == 0} == {sigma0} and rows[-1][2] != sigma0  # told, sigma adapted
    for hp, _, _ in rows:  # every value as the objective gets it: a choice itself, ints in range
        assert list(hp) == space.names
        for p in space.params:
            v = hp[p.name]
            if p.is_categorical:
                assert v in p.choices
            elif p.type == "int":
                assert isinstance(v, int) and p.lower <= v <= p.upper
            else:
                assert p.lower <= v <= p.upper
    # it learns: the last generation is better than the first on this smooth objective
    first = np.median([_objective(hp) for hp, g, _ in rows if g == 0])
    last = np.median([_objective(hp) for hp, g, _ in rows if g == 5])
    assert last < first
    # the method label and cache key know it
    assert hq.parse_method("refcatcmawm:popsize=6") == ("refcatcmawm", {"popsize": 6})
    assert hq.run_key(cfg, "refcatcmawm", {}) == hq.run_key(cfg, f"refcatcmawm:popsize={popsize}", {})
