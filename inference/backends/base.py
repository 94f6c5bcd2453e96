"""The interface every orchestrator backend implements: start, observe and stop workers.

The reconciler (`inference.reconcile`) decides; a backend only does what it is told and reports
what it sees. Backends never touch the database. Implementations: `local` (subprocesses, the
embedded default) and `kubernetes` (Pods and Jobs through the official client).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Protocol

ObservedPhase = Literal["starting", "running", "succeeded", "failed"]


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    name: str
    pipeline: str
    model: str
    gpu_class: str
    gpus_per_worker: int
    slots_per_worker: int
    image: str
    batch: bool  # run each worker as a Job that exits when idle (render, build pools)
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()
    cpu: str = "1"
    memory: str = "2Gi"


@dataclasses.dataclass(frozen=True)
class TenantSpec:
    """What an organization's corner of the cluster must look like."""

    organization: str  # slug
    gpu_quota: int  # GPUs the organization's workers may request at once, from its plan


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    worker_id: str  # the backend id: a Pod/Job name, a local process name
    organization: str  # slug
    pool: PoolSpec
    token: str  # the worker's credential; a backend keeps it out of manifests and logs
    control_url: str
    # Settings of the pipeline's model backends (e.g. the language model endpoint), and the
    # secret ones among them, which a backend keeps out of manifests as it does the token.
    environment: tuple[tuple[str, str], ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class ObservedWorker:
    """A worker as the backend sees it. `reason` is a short machine word (Unschedulable,
    ImagePullBackOff, OOMKilled, NodeLost, Error, Completed…) and `message` the detail."""

    worker_id: str
    organization: str
    pool: str
    phase: ObservedPhase
    reason: str = ""
    message: str = ""


class BackendUnavailable(RuntimeError):
    """The backend cannot be reached now; the reconciler backs off and keeps its state."""


class Backend(Protocol):
    name: str

    def ensure_tenant(self, tenant: TenantSpec) -> None:
        """Create or update the organization's namespace and quota; no write when unchanged."""

    def observe(self) -> dict[str, ObservedWorker]:
        """Every worker this backend runs for Ironbowl, by worker id (orphans included)."""

    def start_worker(self, spec: WorkerSpec) -> None:
        """Start a worker; starting one that already exists is not an error."""

    def stop_worker(self, worker_id: str, organization: str) -> None:
        """Stop and forget a worker; stopping one that does not exist is not an error."""

    def close(self) -> None:
        """Release connections, watches and child processes."""


class StartRefused(RuntimeError):
    """The backend refused to start a worker (e.g. the namespace's GPU quota is exhausted: 403).
    The reconciler records `reason` on the worker and backs off before trying that pool again."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
