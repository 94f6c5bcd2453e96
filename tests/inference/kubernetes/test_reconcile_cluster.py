"""The orchestrator's reconcile pass against a real Kubernetes control plane.

Real: the database, admission, placement and scaling (`inference.reconcile.Reconciler`), the
Kubernetes backend, kube-apiserver 1.20 with quota admission, the scheduler and the controllers.
Simulated: the kubelet (GPU nodes, pods moved to Running or killed) and the worker process, whose
registration goes through the protocol's service function rather than HTTP.
"""

from __future__ import annotations

import pytest

from inference import protocol, services
from inference.contracts import PROTOCOL_VERSION, Registration
from inference.models import Worker, WorkerState, WorkloadState
from inference.reconcile import Reconciler
from tests import factories
from tests.inference.kubernetes.helpers import wait_for
from tests.inference.support import writes_during

pytestmark = pytest.mark.cluster


def _running(backend, worker: Worker) -> bool:
    seen = backend.observe().get(worker.backend_id)
    return seen is not None and seen.phase == "running"


def _come_up(backend) -> list[Worker]:
    """Every starting worker's pod runs (simulated kubelet), then the worker registers."""
    workers = list(Worker.objects.unscoped_dangerously().filter(state=WorkerState.STARTING))
    for worker in workers:
        wait_for(lambda w=worker: _running(backend, w), what=f"{worker.backend_id} running")
        protocol.register(worker, Registration(PROTOCOL_VERSION, worker.slots, ("live",)))
    return workers


def test_orchestrator_runs_a_workload_on_the_cluster_and_recovers_from_oom(
    db, org, pool, kube_backend, kube_admin, kubelet
):
    """A queued workload gets a namespace with its quota and a GPU pod on an H100 node; when the
    pod is OOMKilled its work is requeued onto a new pod; a settled pass writes nothing, to the
    database or to the API server."""
    organization = factories.OrganizationFactory(slug=org)
    workload, _ = services.submit(
        organization, kind="live", spec={"seconds": 1}, pool_name=pool.name
    )
    reconciler = Reconciler(kube_backend)

    first = reconciler.run_once()
    assert (first.admitted, first.started) == (1, 1)
    namespace = kube_backend.namespace_for(org)
    quota = kube_admin.read_namespaced_resource_quota("ironbowl-gpu", namespace)
    assert quota.spec.hard == {"requests.nvidia.com/gpu": "1"}
    (worker,) = _come_up(kube_backend)
    pod = kube_admin.read_namespaced_pod(worker.backend_id, namespace)
    assert pod.spec.node_name in {"h100-a", "h100-b"}

    assert reconciler.run_once().placed == 1
    workload.refresh_from_db()
    assert workload.state == WorkloadState.PLACED

    kubelet.kill(namespace, worker.backend_id, exit_code=137, reason="OOMKilled")
    wait_for(
        lambda: kube_backend.observe()[worker.backend_id].phase == "failed", what="the OOM kill"
    )
    lost = reconciler.run_once()
    assert (lost.lost, lost.requeued, lost.started) == (1, 1, 1)
    worker.refresh_from_db()
    assert (worker.state, worker.reason) == (WorkerState.GONE, "OOMKilled")
    wait_for(lambda: worker.backend_id not in kube_backend.observe(), what="the old pod to go")

    (replacement,) = _come_up(kube_backend)
    assert replacement.backend_id != worker.backend_id
    assert reconciler.run_once().placed == 1
    reconciler.run_once()  # settles
    calls = dict(kube_backend.api_calls)

    assert writes_during(reconciler.run_once) == []
    assert dict(kube_backend.api_calls) == calls
