"""Helpers of the Kubernetes backend tests: waiting on a condition, pool and worker specs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from inference.backends.base import PoolSpec, WorkerSpec

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """Polls `condition` until it returns something truthy; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what or condition}: last {last!r}")


def pool(
    name: str = "live-h100", *, gpu_class: str = "h100", gpus: int = 1, **options: Any
) -> PoolSpec:
    fields = {
        "name": name,
        "pipeline": "live",
        "model": "reference",
        "gpu_class": gpu_class,
        "gpus_per_worker": gpus,
        "slots_per_worker": 4,
        "image": "registry.example/ironbowl-worker:1",
        "batch": False,
        **options,
    }
    return PoolSpec(**fields)


def worker(org: str, worker_id: str, pool_spec: PoolSpec) -> WorkerSpec:
    return WorkerSpec(
        worker_id=worker_id,
        organization=org,
        pool=pool_spec,
        token=f"secret-{worker_id}",
        control_url="http://ironbowl.example",
    )
