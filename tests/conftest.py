"""Shared pytest fixtures: one way for the whole suite to start a local Ray instance.

Every test that needs Ray uses ``ray_local`` (or ``ray_local_factory`` when it must set environment
variables first). Both start Ray with ``ray.init(address="local", ...)``: a new, private instance, so a
test can never join a cluster left behind by an earlier ``ray start`` (``/tmp/ray/ray_current_cluster``)
or named by ``RAY_ADDRESS``. Usage statistics are switched off (``RAY_USAGE_STATS_ENABLED=0``) and Ray is
always shut down when the module's tests are done, even after a failure.

Tests that need a multi-node ``ray.cluster_utils.Cluster`` start it themselves (it owns its own head
node); they must not request these fixtures in the same test.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# A suite started as a background job of a non-interactive shell (`pytest ... &`, nohup) inherits
# SIGINT ignored, and so would every driver its tests start, so the Ctrl-C tests (test_cli.py,
# test_resume_kill.py) could not interrupt them. Python's own handler again: children start with
# SIGINT at its default, as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: ``ray.init`` arguments used unless a test overrides them (2 CPUs: the CI machine has 2 cores).
DEFAULT_INIT: dict[str, Any] = {"num_cpus": 2, "num_gpus": 0, "logging_level": "WARNING"}


class _LocalRay:
    """Start at most one private local Ray instance and undo it (and its environment variables) on close."""

    def __init__(self) -> None:
        self.started = False
        self._saved_env: dict[str, str | None] = {}

    def start(self, env: dict[str, str] | None = None, **init_kwargs: Any) -> dict[str, float]:
        """Set ``env`` (inherited by Ray's workers), then ``ray.init(address="local", ...)``.

        Returns ``ray.cluster_resources()`` (e.g. ``{"CPU": 2.0, ...}``). Raises ``RuntimeError`` if Ray is
        already initialized in this process (a fixture of another module did not shut it down), and
        ``TypeError`` if ``init_kwargs`` holds ``address`` (always ``"local"`` here).
        """
        import ray

        if "address" in init_kwargs:
            raise TypeError("ray_local always uses address='local'; start a ray.cluster_utils.Cluster instead")
        if ray.is_initialized():
            raise RuntimeError("Ray is already initialized in this process: a previous test did not shut it down")
        for k, v in {"RAY_USAGE_STATS_ENABLED": "0", **(env or {})}.items():
            self._saved_env.setdefault(k, os.environ.get(k))
            os.environ[k] = str(v)
        kwargs = {**DEFAULT_INIT, **init_kwargs, "include_dashboard": False}
        ray.init(address="local", **kwargs)
        self.started = True
        return ray.cluster_resources()

    def close(self) -> None:
        """``ray.shutdown()`` if this object started Ray, then restore the environment variables it set."""
        import ray

        if self.started:
            ray.shutdown()
            self.started = False
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env.clear()


@pytest.fixture(scope="module")
def ray_local(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """A private local Ray instance shared by the tests of one module; yields ``ray.cluster_resources()``.

    Default: ``num_cpus=2``, ``num_gpus=0``, ``logging_level="WARNING"`` (:data:`DEFAULT_INIT`). Other sizes
    or any other ``ray.init`` argument by indirect parametrization (tests with equal parameters share one
    instance; pytest orders them so that Ray is restarted as rarely as possible)::

        @pytest.mark.parametrize("ray_local", [{"num_cpus": 2, "num_gpus": 2}], indirect=True, ids=["2gpu"])
        def test_fractional_gpus(ray_local, tmp_path): ...

    The parameter dict may also hold ``"env"``: environment variables set before ``ray.init`` (so Ray's
    workers inherit them) and restored afterwards. Always ``address="local"`` and no dashboard. To compute
    the environment from other fixtures first, use :func:`ray_local_factory`.
    """
    params = dict(getattr(request, "param", None) or {})
    local = _LocalRay()
    try:
        yield local.start(**params)
    finally:
        local.close()


@pytest.fixture(scope="module")
def ray_local_factory() -> Iterator[Callable[..., dict[str, float]]]:
    """A function ``start(env=None, **ray_init_kwargs)`` that starts a private local Ray instance once.

    For module fixtures that must prepare something (e.g. a side-file path in an environment variable the
    workers read) before Ray starts::

        @pytest.fixture(scope="module")
        def ray_log(ray_local_factory, tmp_path_factory):
            log = tmp_path_factory.mktemp("log") / "calls.jsonl"
            ray_local_factory(env={"MY_LOG": str(log)}, num_cpus=2)
            return log

    Arguments as :func:`ray_local`'s parameter dict; returns ``ray.cluster_resources()``. Ray is shut down
    and the environment restored at the end of the module. Calling it twice raises ``RuntimeError``.
    """
    local = _LocalRay()
    try:
        yield local.start
    finally:
        local.close()


@pytest.fixture(scope="module")
def ray_tune_local(ray_local_factory, request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """A private local Ray instance for real Ray Tune runs (2 CPUs, quiet), with the requesting test
    module shipped by value: Ray workers cannot import a test module (tests/ is not on their path),
    so its trainables travel pickled by value.  Yields ``ray.cluster_resources()``."""
    import ray

    ray.cloudpickle.register_pickle_by_value(request.module)
    try:
        yield ray_local_factory(num_cpus=2, logging_level="ERROR", log_to_driver=False)
    finally:
        ray.cloudpickle.unregister_pickle_by_value(request.module)
