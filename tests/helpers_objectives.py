"""Cheap, importable objectives for the cluster tests (run inside Ray workers).

Objectives that log write one JSON line per call to the file named by the environment variable
``ESOPT_TEST_LOG`` (set before Ray starts so that workers inherit it); lines are appended with
``O_APPEND`` in a single write, so concurrent workers do not interleave.
"""

from __future__ import annotations

import json
import math
import os
import time

LOG_ENV = "ESOPT_TEST_LOG"
SLEEP_ENV = "ESOPT_TEST_SLEEP"


def _log(**fields) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        line = (json.dumps(fields) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def read_log(path) -> list[dict]:
    """Lines of a log written by the objectives below (missing file: empty list)."""
    try:
        with open(path) as fh:
            return [json.loads(ln) for ln in fh if ln.strip()]
    except FileNotFoundError:
        return []


def sphere_value(params: dict) -> float:
    """Deterministic: sum of (value - 0.3)^2 over the params (in their own units)."""
    return float(sum((float(v) - 0.3) ** 2 for _, v in sorted(params.items())))


def sphere(params: dict) -> float:
    """Deterministic sphere in the params, returns a float."""
    return sphere_value(params)


def counting_sphere(params: dict) -> dict:
    """Sphere that logs every execution (params, pid, time) and sleeps ``ESOPT_TEST_SLEEP`` s."""
    time.sleep(float(os.environ.get(SLEEP_ENV, "0")))
    f = sphere_value(params)
    _log(params=params, pid=os.getpid(), t=time.time())
    return {"objective": f, "extra": {"n": len(params)}}


def gpu_probe(params: dict) -> float:
    """Logs start/end time, the GPU ids Ray assigned and CUDA_VISIBLE_DEVICES; sleeps 1 s."""
    import ray

    t0 = time.time()
    ids = [str(i) for i in ray.get_gpu_ids()]
    time.sleep(1.0)
    _log(start=t0, end=time.time(), gpu_ids=ids, cuda=os.environ.get("CUDA_VISIBLE_DEVICES"), pid=os.getpid())
    return sphere_value(params)


def raising(params: dict) -> float:
    """Raises ValueError when x > 0.5 (about half the candidates near the centre), else sphere."""
    if params["x"] > 0.5:
        raise ValueError(f"x={params['x']:.3f} is too large for this objective")
    return sphere_value(params)


def always_raising(params: dict) -> float:
    """Always raises RuntimeError (and logs the call)."""
    _log(params=params, pid=os.getpid())
    raise RuntimeError("objective always fails")


def nan_when_large(params: dict) -> float:
    """Returns NaN when x > 0.5, else the sphere."""
    return math.nan if params["x"] > 0.5 else sphere_value(params)


def hanging(params: dict) -> float:
    """Hangs (sleeps an hour) when x > 0.5, else the sphere."""
    if params["x"] > 0.5:
        time.sleep(3600)
    return sphere_value(params)


def diverging(params: dict) -> dict:
    """A TrialResult-like dict: status 'diverged' with objective NaN when x > 0.5."""
    if params["x"] > 0.5:
        return {"objective": math.nan, "status": "diverged", "reason": "loss became nan at epoch 1"}
    return {"objective": sphere_value(params), "status": "ok", "reason": None}


def crash_on_node(params: dict) -> float:
    """Sleeps ``ESOPT_TEST_SLEEP`` s, logs node id, returns the sphere (multi-node test)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    _log(event="start", params=params, node=node, t=time.time())
    time.sleep(float(os.environ.get(SLEEP_ENV, "0")))
    _log(event="end", params=params, node=node, t=time.time())
    return sphere_value(params)


def not_a_number(params: dict) -> str:
    """Returns a string (a type error the campaign must record)."""
    return "oops"


def wrong_signature(params: dict, spec) -> float:
    """Takes two arguments where the campaign passes one (a TypeError at every call)."""
    return sphere_value(params)


def two_reasons(params: dict) -> float:
    """Always fails: ValueError when a > 0, else KeyError (two distinct failure reasons)."""
    if params["a"] > 0:
        raise ValueError("a is positive")
    raise KeyError("no such key")


def flat(params: dict) -> float:
    """The same value everywhere (a flat generation: the strategy's criteria fire at once)."""
    return 0.5


TIME_SCALE_ENV = "ESOPT_TEST_SLEEP_FACTOR"


def trial_duration(params: dict) -> float:
    """A deterministic, heavy-tailed duration in seconds for ``params``: ``exp(0.8 N)`` with ``N``
    the standard normal quantile of a hash of the params (log-normal, median 1 s)."""
    import hashlib
    from statistics import NormalDist

    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).digest()
    u = (int.from_bytes(h[:8], "big") + 0.5) / 2**64
    return math.exp(0.8 * NormalDist().inv_cdf(u))


def timed_sphere(params: dict) -> dict:
    """:func:`sphere_value` with the duration :func:`trial_duration` as ``duration_s`` (the
    simulated cluster's time); sleeps ``duration_s * ESOPT_TEST_SLEEP_FACTOR`` real seconds
    (default 0) and logs every execution (params, pid, start and end time)."""
    t0 = time.time()
    d = trial_duration(params)
    factor = float(os.environ.get(TIME_SCALE_ENV, "0"))
    if factor > 0:
        time.sleep(d * factor)
    _log(params=params, pid=os.getpid(), t0=t0, t=time.time())
    return {"objective": sphere_value(params), "duration_s": d}


def flat_timed(params: dict) -> dict:
    """:func:`flat` (0.5 everywhere) with the duration :func:`trial_duration` as ``duration_s``."""
    return {"objective": 0.5, "duration_s": trial_duration(params)}


def curve_sphere(params: dict, report=None) -> dict:
    """A learning curve over 9 steps: ``sphere_value * (1 + 2 / step)`` reported after each step;
    stops (returning its latest value) when ``report`` returns False.  ``duration_s``: one
    :func:`trial_duration` per 9 steps (the simulated cluster spreads the reports over it)."""
    value = math.inf
    for step in range(1, 10):
        value = sphere_value(params) * (1.0 + 2.0 / step)
        if report is not None and report(step, value) is False:
            break
    return {"objective": value, "duration_s": trial_duration(params)}


def curve_counting_steps(params: dict, report=None) -> dict:
    """:func:`curve_sphere`'s curve, each step after ``ESOPT_TEST_SLEEP`` s; the result's
    ``steps_run`` is the number of steps it trained (to check where a stopped trial returned)."""
    value, step = math.inf, 0
    for step in range(1, 10):
        time.sleep(float(os.environ.get(SLEEP_ENV, "0")))
        value = sphere_value(params) * (1.0 + 2.0 / step)
        if report is not None and report(step, value) is False:
            break
    return {"objective": value, "steps_run": step}


def curve_ignoring_stop(params: dict, report=None) -> dict:
    """Reports 9 steps, each after ``ESOPT_TEST_SLEEP`` s, and never stops (a trial that ignores
    the scheduler's decision: the campaign cancels it)."""
    value = math.inf
    for step in range(1, 10):
        time.sleep(float(os.environ.get(SLEEP_ENV, "0")))
        value = sphere_value(params) * (1.0 + 2.0 / step)
        if report is not None:
            report(step, value)
    return {"objective": value}


def curve_bad_report(params: dict, report=None) -> dict:
    """Reports a NaN value at step 1 when ``x0 > 0`` (an unusable report), else a clean curve of 9 steps."""
    value = sphere_value(params)
    for step in range(1, 10):
        if report is not None and report(step, math.nan if params["x0"] > 0 else value) is False:
            break
    return {"objective": value, "duration_s": trial_duration(params)}


#: category penalties of :func:`mixed_choice`: only "radam" reaches the optimum 0
MIXED_PENALTY = {"adamw": 0.6, "sgdw": 1.0, "radam": 0.0, "nadam": 0.4}


def mixed_choice(params: dict) -> float:
    """``(x - 0.3)^2 + 0.05 (n - 4)^2 + MIXED_PENALTY[opt]``: float ``x``, int ``n``, categorical
    ``opt`` (the choice itself; a ``TypeError`` for an index or anything else not a choice name);
    logs every call (params, pid, time).  Optimum 0 at x = 0.3, n = 4, opt = "radam"."""
    opt = params["opt"]
    if not isinstance(opt, str) or opt not in MIXED_PENALTY:
        raise TypeError(f"opt must be one of {sorted(MIXED_PENALTY)}, got {opt!r}")
    _log(params=params, pid=os.getpid(), t=time.time())
    return (float(params["x"]) - 0.3) ** 2 + 0.05 * (params["n"] - 4) ** 2 + MIXED_PENALTY[opt]


# --------------------------------------------------------------------------------------------
# A campaign driver run as a subprocess by tests/test_resume_kill.py:
#   python tests/helpers_objectives.py '{"dir": ..., "config": {...} | null, "pause": ["trial", 3, 2] | null,
#                                        "marker": path}'
# "config" starts a new campaign, null resumes.  "pause" = ["start", g] (after asking generation g),
# ["trial", g, k] (after the k-th trial of generation g is journaled) or ["end", g] (after telling g):
# the driver writes the marker file and sleeps, waiting to be killed or interrupted by the test.
class PauseAt:
    """Progress object that pauses the driver at one point of the campaign."""

    def __init__(self, pause, marker):
        self.pause, self.marker = (tuple(pause) if pause else None), marker

    def _hold(self):
        tmp = self.marker + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(tmp, self.marker)
        time.sleep(300)

    def on_generation_start(self, generation, popsize):
        if self.pause == ("start", generation):
            self._hold()

    def on_trial_finished(self, generation, row, counts):
        if self.pause and self.pause[0] == "trial" and self.pause[1] == generation and counts["done"] == self.pause[2]:
            self._hold()

    def on_generation_end(self, generation, best):
        if self.pause == ("end", generation):
            self._hold()


def _drive(argv) -> int:
    import sys

    from cluster import Campaign, parse_config

    args = json.loads(argv[1])
    if args.get("config") is not None:
        campaign = Campaign(parse_config(args["config"]), args["dir"])
    else:
        campaign = Campaign.resume(args["dir"])
    result = campaign.run(PauseAt(args.get("pause"), args.get("marker", "")))
    print(
        json.dumps(
            {
                "status": result.status,
                "best_objective": result.best_objective,
                "best_params": result.best_params,
                "n_trials": result.n_trials,
                "n_generations": result.n_generations,
                "stop": result.stop,
            }
        )
    )
    sys.stdout.flush()
    return {"done": 0, "failed": 1, "interrupted": 130}[result.status]


if __name__ == "__main__":
    import sys

    raise SystemExit(_drive(sys.argv))
