"""Fixtures of the inference tests: pools, a fake backend, a simulated worker speaking the
protocol's service functions (the HTTP layer has tests of its own)."""

from __future__ import annotations

import pytest

from inference.models import WorkerPool
from inference.reconcile import Reconciler
from tests.inference.fakes import FakeBackend


@pytest.fixture
def pool(db) -> WorkerPool:
    return WorkerPool.objects.create(
        name="live-h100",
        pipeline="live",
        gpu_class="h100",
        gpus_per_worker=1,
        slots_per_worker=4,
        image="registry.example/ironbowl-worker:1",
        maximum=3,
    )


@pytest.fixture
def diagnostic_pool(db) -> WorkerPool:
    return WorkerPool.objects.create(
        name="diagnostic-cpu",
        pipeline="diagnostic",
        gpu_class="cpu",
        gpus_per_worker=0,
        slots_per_worker=2,
        image="local",
        maximum=2,
    )


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def reconciler(backend) -> Reconciler:
    return Reconciler(backend)
