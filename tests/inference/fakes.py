"""A backend at the orchestrator's own interface, in memory: what the reconciler's logic is
tested against. It is a stand-in for a cluster, not a model of one: workers start in the phase
the test says and stay there until the test changes them."""

from __future__ import annotations

import dataclasses
from collections import Counter

from inference.backends.base import (
    BackendUnavailable,
    ObservedWorker,
    StartRefused,
    TenantSpec,
    WorkerSpec,
)


@dataclasses.dataclass
class FakeBackend:
    name: str = "fake"
    workers: dict[str, ObservedWorker] = dataclasses.field(default_factory=dict)
    specs: dict[str, WorkerSpec] = dataclasses.field(default_factory=dict)
    tenants: dict[str, TenantSpec] = dataclasses.field(default_factory=dict)
    calls: Counter[str] = dataclasses.field(default_factory=Counter)
    unreachable: bool = False
    refuse_with: StartRefused | None = None

    def _call(self, verb: str) -> None:
        if self.unreachable:
            raise BackendUnavailable("the fake cluster is unreachable")
        self.calls[verb] += 1

    def ensure_tenant(self, tenant: TenantSpec) -> None:
        if self.tenants.get(tenant.organization) == tenant:
            return  # as a real backend: no write when nothing changed
        self._call("ensure_tenant")
        self.tenants[tenant.organization] = tenant

    def observe(self) -> dict[str, ObservedWorker]:
        if self.unreachable:
            raise BackendUnavailable("the fake cluster is unreachable")
        return dict(self.workers)

    def start_worker(self, spec: WorkerSpec) -> None:
        self._call("start_worker")
        if self.refuse_with is not None:
            raise self.refuse_with
        self.specs[spec.worker_id] = spec
        self.workers[spec.worker_id] = ObservedWorker(
            spec.worker_id, spec.organization, spec.pool.name, "starting"
        )

    def stop_worker(self, worker_id: str, organization: str) -> None:
        self._call("stop_worker")
        self.workers.pop(worker_id, None)

    def close(self) -> None:
        pass

    # -- what a test does to the "cluster" -----------------------------------------------------

    def set_phase(self, worker_id: str, phase: str, reason: str = "", message: str = "") -> None:
        seen = self.workers[worker_id]
        self.workers[worker_id] = dataclasses.replace(
            seen, phase=phase, reason=reason, message=message
        )

    @property
    def writes(self) -> int:
        return sum(self.calls.values())
