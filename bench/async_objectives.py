"""Importable objectives for ``bench/async_scheduling.py`` (run in Ray workers or in the simulator).

Every trial's duration is a deterministic function of its hyperparameters, so a simulated
campaign (:func:`cluster.simulate.simulate`, which reads ``duration_s``) is reproducible and a
real Ray campaign sleeps the same times:

* :func:`heavy_tailed_sleep` / :func:`heavy_tailed_timed`: the sphere ``sum((x - 0.3)^2)`` with a
  log-normal duration of median :data:`SLEEP_MEDIAN_S` (0.35 s) and log-standard deviation
  :data:`SLEEP_LOG_SD` (0.8): the first sleeps it (real Ray), the second only reports it as
  ``duration_s`` (simulator);
* :func:`digits_replay`: the ``digits-highdim`` campaign's recorded trials
  (``bench/results/hpo_quality-digits-highdim.csv``, 1,920 trials of CMA-ES, sep-CMA-ES, random
  search and TPE): the nearest recorded trial (in the space's unit-cube coordinates,
  :class:`cluster.simulate.DurationTable`) gives the objective, and its wall time times
  ``$ESOPT_BENCH_REPLAY_SCALE`` (default :data:`REPLAY_SCALE`) is slept;
* :func:`timed_rotated_ellipsoid`: :func:`esopt.testfunctions.rotated_ellipsoid` (n = 10,
  condition 1e6, optimum 0) with a log-normal ``duration_s`` of median 1 s (simulator).

The durations' randomness is a SHA-256 hash of the parameters (JSON, sorted keys) mapped to a
standard normal quantile: no global RNG state, the same parameters give the same duration in every
process.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

__all__ = [
    "SLEEP_MEDIAN_S",
    "SLEEP_LOG_SD",
    "REPLAY_SCALE",
    "REPLAY_CSV",
    "REPLAY_CONFIG",
    "lognormal_duration",
    "heavy_tailed_sleep",
    "heavy_tailed_timed",
    "digits_replay",
    "timed_rotated_ellipsoid",
    "ELLIPSOID_DIM",
]

ROOT = Path(__file__).resolve().parents[1]
SLEEP_MEDIAN_S = 0.35  # median trial time of the heavy-tailed sleep objective (seconds)
SLEEP_LOG_SD = 0.8  # standard deviation of log(duration): p90/p50 = exp(0.8 * 1.28) = 2.8
REPLAY_SCALE = 0.25  # recorded digits-highdim wall times (median 1.6 s, max 8.4 s) are slept x this
REPLAY_SCALE_ENV = "ESOPT_BENCH_REPLAY_SCALE"
REPLAY_CSV = ROOT / "bench" / "results" / "hpo_quality-digits-highdim.csv"
REPLAY_CONFIG = ROOT / "cluster" / "configs" / "digits-highdim.yaml"
ELLIPSOID_DIM = 10


def lognormal_duration(params: dict, median_s: float = 1.0, log_sd: float = SLEEP_LOG_SD) -> float:
    """A deterministic log-normal duration for ``params``: ``median_s * exp(log_sd * N)`` with
    ``N`` the standard normal quantile of the SHA-256 of ``json.dumps(params, sort_keys=True)``.

    Parameters
    ----------
    params : dict
        JSON-serializable hyperparameters (one trial's).
    median_s : float
        Median duration in seconds, > 0.
    log_sd : float
        Standard deviation of the log-duration, >= 0 (0.8: the 90th percentile is 2.8x the median).

    Returns
    -------
    float
        Seconds, > 0.

    Raises
    ------
    ValueError
        If ``median_s <= 0`` or ``log_sd < 0``.
    TypeError
        If ``params`` is not JSON-serializable.
    """
    if not median_s > 0 or not log_sd >= 0:
        raise ValueError(f"need median_s > 0 and log_sd >= 0, got median_s={median_s!r}, log_sd={log_sd!r}")
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).digest()
    u = (int.from_bytes(h[:8], "big") + 0.5) / 2**64  # uniform in (0, 1)
    return float(median_s * math.exp(log_sd * NormalDist().inv_cdf(u)))


def _sphere(params: dict) -> float:
    return float(sum((float(v) - 0.3) ** 2 for _, v in sorted(params.items())))


def heavy_tailed_timed(params: dict) -> dict:
    """The sphere ``sum((v - 0.3)^2)`` over ``params`` with ``duration_s`` =
    :func:`lognormal_duration` (median 0.35 s, log-sd 0.8); does not sleep (the simulator's clock
    uses ``duration_s``).  Returns ``{"objective": float, "duration_s": float}``."""
    return {"objective": _sphere(params), "duration_s": lognormal_duration(params, SLEEP_MEDIAN_S)}


def heavy_tailed_sleep(params: dict) -> dict:
    """:func:`heavy_tailed_timed`, sleeping ``duration_s`` real seconds first (a Ray trial)."""
    out = heavy_tailed_timed(params)
    time.sleep(out["duration_s"])
    return out


@lru_cache(maxsize=1)
def _replay_table():
    import yaml

    from cluster.simulate import DurationTable
    from cluster.space import Space

    # the space only, not the whole config: validating its trial section would import torch
    space = Space(yaml.safe_load(REPLAY_CONFIG.read_text())["space"])
    return space, DurationTable(REPLAY_CSV, space)


def replay_scale() -> float:
    """The factor recorded wall times are slept times: ``$ESOPT_BENCH_REPLAY_SCALE`` or
    :data:`REPLAY_SCALE`.  Raises ValueError if the variable is not a number > 0."""
    text = os.environ.get(REPLAY_SCALE_ENV)
    scale = REPLAY_SCALE if text is None else float(text)
    if not scale > 0:
        raise ValueError(f"{REPLAY_SCALE_ENV} must be a number > 0, got {text!r}")
    return scale


def digits_replay(params: dict) -> dict:
    """Replay ``digits-highdim``: the recorded trial nearest to ``params`` (the config's 19
    hyperparameters, own units) gives the objective (validation error) and the wall time, which
    is slept times :func:`replay_scale`.  Returns ``{"objective", "duration_s"}`` (the slept
    seconds).  Raises KeyError if a hyperparameter of the space is missing from ``params``."""
    space, table = _replay_table()
    f, seconds = table.lookup(space.encode(params))
    seconds *= replay_scale()
    time.sleep(seconds)
    return {"objective": f, "duration_s": seconds}


def timed_rotated_ellipsoid(params: dict) -> dict:
    """:func:`esopt.testfunctions.rotated_ellipsoid` (condition 1e6, rotation seed 0, optimum 0,
    f(0) = 0) of ``x = (params["x0"], ..., params["x{n-1}"])`` with ``duration_s`` =
    :func:`lognormal_duration` (median 1 s, log-sd 0.8) for the simulator.

    Raises KeyError if ``x0..x{n-1}`` are not all in ``params`` (n = number of keys)."""
    import numpy as np

    from esopt.testfunctions import rotated_ellipsoid

    x = np.array([float(params[f"x{i}"]) for i in range(len(params))])
    return {"objective": float(rotated_ellipsoid(x)), "duration_s": lognormal_duration(params, 1.0)}
