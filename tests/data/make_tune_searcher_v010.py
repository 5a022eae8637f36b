"""Write tests/data/tune_searcher_v0.1.0.npz (and print the .json) with esopt 0.1.0's ESSearcher.

Run from outside the repository, with the 0.1.0 checkout first on the path:
``PYTHONPATH=<esopt 0.1.0> python tests/data/make_tune_searcher_v010.py tests/data/tune_searcher_v0.1.0.npz
> tests/data/tune_searcher_v0.1.0.json``.

ESSearcher(PARAM_SPACE, metric="loss", mode="min", popsize=4, seed=3) of tests/test_tune.py, one generation
told, then b0 complete and b1 running; prints the suggestions that follow (b2, b3, then c0..c3 after b1..b3).
"""

import json
import math
import os
import sys

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
from ray import tune

import cluster.tune
from cluster.tune import ESSearcher

print(cluster.tune.__file__, file=sys.stderr)  # must be the 0.1.0 checkout
PARAM_SPACE = {"x": tune.uniform(-1.0, 2.0), "lr": tune.loguniform(1e-4, 1e-1)}


def loss(c):
    return (c["x"] - 1.2) ** 2 + (math.log10(c["lr"]) + 3.5) ** 2


s = ESSearcher(PARAM_SPACE, metric="loss", mode="min", popsize=4, seed=3)
ids = [f"a{i}" for i in range(4)]
cs = [s.suggest(i) for i in ids]
for i, c in zip(ids, cs):
    s.on_trial_complete(i, {"loss": loss(c)})
b0, b1 = s.suggest("b0"), s.suggest("b1")
s.on_trial_complete("b0", {"loss": loss(b0)})
s.save(sys.argv[1])
seq = [s.suggest("b2"), s.suggest("b3")]
for i, c in (("b1", b1), ("b2", seq[0]), ("b3", seq[1])):
    s.on_trial_complete(i, {"loss": loss(c)})
seq += [s.suggest(f"c{i}") for i in range(4)]
print(json.dumps(seq))
