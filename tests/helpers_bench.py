"""Load a ``bench/`` script as a module in a test, leaving the process environment as it was.

The benchmark scripts pin ``OMP_NUM_THREADS`` and friends on import (so that their timings are
single-threaded); a test that imports one must not change the environment that later tests, and
the Ray workers they start, inherit.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench(script: str, module_name: str) -> ModuleType:
    """``bench/<script>.py`` executed as a fresh module named ``module_name`` (not registered in
    ``sys.modules``), with ``bench/`` on ``sys.path`` for its sibling imports (``provenance``,
    ``hpo_quality``); ``os.environ`` is restored afterwards.  Raises ``FileNotFoundError`` if the
    script does not exist, and whatever the script raises on import."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    env = dict(os.environ)
    try:
        spec = importlib.util.spec_from_file_location(module_name, BENCH / f"{script}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        os.environ.clear()
        os.environ.update(env)
    return mod
