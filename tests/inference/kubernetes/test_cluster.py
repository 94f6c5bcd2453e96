"""The Kubernetes backend against a real control plane.

Real: etcd, kube-apiserver 1.20 (admission including ResourceQuota, server-side apply,
resourceVersions and watches), kube-controller-manager (Job, garbage collector, quota status,
service accounts, namespace deletion) and kube-scheduler (GPU fit, taints, node selectors).
Simulated: the kubelet (`tests.inference.kubernetes.kubelet`): two H100 nodes with 8 GPUs, one L4
node with 4, pods moved to Running, killed or lost on demand; no container ever runs.
"""

from __future__ import annotations

import base64

import pytest
from kubernetes import client

from inference.backends.base import TenantSpec
from inference.backends.kubernetes import KubernetesBackend, QuotaExceeded
from inference.backends.manifests import secret_name
from tests.inference.kubernetes.helpers import pool, wait_for, worker
from tests.inference.kubernetes.kubelet import SimNode

pytestmark = pytest.mark.cluster


def _observed(backend: KubernetesBackend, worker_id: str, phase: str, reason: str = ""):
    def check():
        seen = backend.observe().get(worker_id)
        if seen is not None and seen.phase == phase and (not reason or seen.reason == reason):
            return seen
        return None

    return wait_for(check, what=f"{worker_id} {phase} {reason}")


def test_tenant_namespace_and_quota_created_once(kube_backend, kube_admin, kube_cluster, org):
    """Real: namespace and quota written by server-side apply and read back from the server.
    A second ensure_tenant on the same backend makes no request; a fresh backend (a restarted
    orchestrator) only reads, because what the server has already matches."""
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=4))
    namespace = kube_admin.read_namespace(f"ironbowl-org-{org}")
    assert namespace.metadata.labels["ironbowl.io/org"] == org
    assert namespace.metadata.labels["app.kubernetes.io/managed-by"] == "ironbowl"
    quota = kube_admin.read_namespaced_resource_quota("ironbowl-gpu", f"ironbowl-org-{org}")
    assert quota.spec.hard == {"requests.nvidia.com/gpu": "4"}
    managers = {entry.manager for entry in quota.metadata.managed_fields}
    assert "ironbowl-orchestrator" in managers

    calls = sum(kube_backend.api_calls.values())
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=4))
    assert sum(kube_backend.api_calls.values()) == calls

    restarted = KubernetesBackend(
        kube_cluster.api_client(), target_version="1.20", owns_client=True
    )
    try:
        restarted.ensure_tenant(TenantSpec(organization=org, gpu_quota=4))
        assert restarted.writes == 0
        assert restarted.api_calls["get"] == 2
        restarted.ensure_tenant(TenantSpec(organization=org, gpu_quota=6))
        assert restarted.api_calls["patch"] == 1
    finally:
        restarted.close()
    quota = kube_admin.read_namespaced_resource_quota("ironbowl-gpu", f"ironbowl-org-{org}")
    assert quota.spec.hard == {"requests.nvidia.com/gpu": "6"}


def test_workers_land_on_their_gpu_class(kube_backend, kube_admin, org):
    """Real: the scheduler places pods by the pool's node selector, tolerating the GPU taint,
    with requests = limits; the token sits in a Secret owned by the Pod, never in the Pod."""
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=16))
    kube_backend.start_worker(worker(org, "w-h100", pool(gpus=4)))
    kube_backend.start_worker(worker(org, "w-l4", pool("live-l4", gpu_class="l4", gpus=1)))

    seen = _observed(kube_backend, "w-h100", "running")
    assert (seen.organization, seen.pool) == (org, "live-h100")
    _observed(kube_backend, "w-l4", "running")

    namespace = kube_backend.namespace_for(org)
    h100 = kube_admin.read_namespaced_pod("w-h100", namespace)
    l4 = kube_admin.read_namespaced_pod("w-l4", namespace)
    assert h100.spec.node_name in {"h100-a", "h100-b"}
    assert l4.spec.node_name == "l4-a"
    resources = h100.spec.containers[0].resources
    assert resources.requests == resources.limits
    assert resources.limits["nvidia.com/gpu"] == "4"
    assert "secret-w-h100" not in str(kube_admin.api_client.sanitize_for_serialization(h100))

    secret = kube_admin.read_namespaced_secret(secret_name("w-h100"), namespace)
    assert base64.b64decode(secret.data["token"]).decode() == "secret-w-h100"
    assert [(o.kind, o.name, o.uid) for o in secret.metadata.owner_references] == [
        ("Pod", "w-h100", h100.metadata.uid)
    ]


def test_starting_an_existing_worker_is_not_an_error(kube_backend, kube_admin, org):
    """Real: the second create answers 409; the backend reads the Pod and keeps it."""
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=2))
    spec = worker(org, "w-again", pool())
    kube_backend.start_worker(spec)
    uid = kube_admin.read_namespaced_pod("w-again", kube_backend.namespace_for(org)).metadata.uid
    kube_backend.start_worker(spec)
    pods = kube_admin.list_namespaced_pod(kube_backend.namespace_for(org)).items
    assert [(pod.metadata.name, pod.metadata.uid) for pod in pods] == [("w-again", uid)]


def test_more_gpus_than_any_node_is_unschedulable(kube_backend, org):
    """Real: the scheduler's verdict on a pod asking 16 GPUs where nodes have 8."""
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=32))
    kube_backend.start_worker(worker(org, "w-huge", pool(gpus=16)))
    seen = _observed(kube_backend, "w-huge", "starting", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in seen.message


def test_gpu_quota_refuses_the_worker_beyond_it(kube_backend, kube_admin, org):
    """Real: ResourceQuota admission answers 403 "exceeded quota"; the backend raises
    QuotaExceeded (a StartRefused) and leaves no Secret behind."""
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=2))
    kube_backend.start_worker(worker(org, "w-1", pool(gpus=2)))
    with pytest.raises(QuotaExceeded) as refused:
        kube_backend.start_worker(worker(org, "w-2", pool(gpus=1)))
    assert refused.value.reason == "QuotaExceeded"
    assert "requests.nvidia.com/gpu" in str(refused.value)
    namespace = kube_backend.namespace_for(org)
    secrets = kube_admin.list_namespaced_secret(namespace, label_selector="ironbowl.io/worker")
    assert [s.metadata.name for s in secrets.items] == [secret_name("w-1")]


def test_batch_worker_beyond_the_quota_is_refused_before_its_job(kube_backend, kube_admin, org):
    """Real: the quota's status as the API server counts it. A Job would be admitted and its pods
    refused quietly, so the backend refuses a batch worker that cannot fit, creating nothing."""
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=2))
    kube_backend.start_worker(worker(org, "w-live", pool(gpus=2)))
    with pytest.raises(QuotaExceeded):
        kube_backend.start_worker(worker(org, "w-render", pool("render", batch=True)))
    namespace = kube_backend.namespace_for(org)
    jobs = client.BatchV1Api(kube_backend.api_client).list_namespaced_job(namespace)
    assert jobs.items == []
    secrets = kube_admin.list_namespaced_secret(namespace, label_selector="ironbowl.io/worker")
    assert [s.metadata.name for s in secrets.items] == [secret_name("w-live")]


def test_killed_workers_are_observed_with_reasons(kube_backend, kubelet, org):
    """Simulated kubelet: one pod OOMKilled, one SIGKILLed (137); real: the status round trip
    through the API server and the watch."""
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=4))
    for worker_id in ("w-oom", "w-137"):
        kube_backend.start_worker(worker(org, worker_id, pool()))
        _observed(kube_backend, worker_id, "running")
    namespace = kube_backend.namespace_for(org)
    kubelet.kill(namespace, "w-oom", exit_code=137, reason="OOMKilled")
    kubelet.kill(namespace, "w-137", exit_code=137, reason="Error")
    _observed(kube_backend, "w-oom", "failed", "OOMKilled")
    _observed(kube_backend, "w-137", "failed", "Killed")


def test_lost_node_fails_its_workers(kube_backend, kubelet, org):
    """Simulated kubelet: a node of its own class is lost (its pods failed with NodeLost, the
    Node deleted); the worker on it is observed failed with reason NodeLost."""
    kubelet.add_node(SimNode(f"spare-{org}", f"spare-{org}", 8))
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=8))
    kube_backend.start_worker(worker(org, "w-lost", pool("spare", gpu_class=f"spare-{org}")))
    _observed(kube_backend, "w-lost", "running")
    assert kubelet.lose_node(f"spare-{org}") == ["w-lost"]
    _observed(kube_backend, "w-lost", "failed", "NodeLost")


def test_image_pull_failure_is_observed(kube_backend, org):
    """Simulated kubelet: the image cannot be pulled; the worker stays starting with the reason."""
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=1))
    spec = worker(org, "w-pull", pool(image="registry.example/missing:1"))
    kube_backend.start_worker(spec)
    seen = _observed(kube_backend, "w-pull", "starting", "ImagePullBackOff")
    assert "missing" in seen.message


def test_orphan_pods_are_reported(kube_backend, kube_admin, org):
    """Real: a pod with Ironbowl's labels that the orchestrator never started (a previous
    orchestrator's, or a person's) shows up in observe(), so the reconciler can collect it."""
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=1))
    namespace = kube_backend.namespace_for(org)
    kube_admin.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "stray",
                "labels": {
                    "app.kubernetes.io/managed-by": "ironbowl",
                    "ironbowl.io/org": org,
                    "ironbowl.io/worker": "stray",
                },
            },
            "spec": {
                "automountServiceAccountToken": False,
                "containers": [{"name": "worker", "image": "registry.example/worker:1"}],
                "nodeSelector": {"ironbowl.io/gpu-class": "nowhere"},
            },
        },
    )
    seen = _observed(kube_backend, "stray", "starting")
    assert seen.organization == org


def test_stop_worker_deletes_pod_and_secret(kube_backend, kube_admin, org):
    """Real: delete with background propagation; the Secret goes too; stopping again is fine."""
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=1))
    kube_backend.start_worker(worker(org, "w-stop", pool()))
    _observed(kube_backend, "w-stop", "running")
    kube_backend.stop_worker("w-stop", org)
    wait_for(lambda: "w-stop" not in kube_backend.observe(), what="w-stop to go")
    namespace = kube_backend.namespace_for(org)
    with pytest.raises(client.exceptions.ApiException) as missing:
        kube_admin.read_namespaced_secret(secret_name("w-stop"), namespace)
    assert missing.value.status == 404
    kube_backend.stop_worker("w-stop", org)


def test_batch_worker_runs_as_a_job(kube_backend, kubelet, org):
    """Real: the Job controller creates the pod, the scheduler binds it, the Job completes when
    the (simulated) worker exits 0; observe() follows the Job, not its pod."""
    kube_backend.ensure_tenant(TenantSpec(organization=org, gpu_quota=2))
    kube_backend.start_worker(worker(org, "w-batch", pool("render-l4", gpu_class="l4", batch=True)))
    _observed(kube_backend, "w-batch", "running")
    namespace = kube_backend.namespace_for(org)
    pods = client.CoreV1Api(kube_backend.api_client).list_namespaced_pod(
        namespace, label_selector="job-name=w-batch"
    )
    kubelet.complete(namespace, pods.items[0].metadata.name)
    _observed(kube_backend, "w-batch", "succeeded", "Completed")


def test_steady_state_observe_makes_no_requests(kube_backend, org):
    """Real watches: once workers run, observe() and ensure_tenant() answer from caches."""
    tenant = TenantSpec(organization=org, gpu_quota=2)
    kube_backend.ensure_tenant(tenant)
    kube_backend.start_worker(worker(org, "w-idle", pool()))
    first = _observed(kube_backend, "w-idle", "running")
    calls = dict(kube_backend.api_calls)
    for _ in range(50):
        kube_backend.ensure_tenant(tenant)
        assert kube_backend.observe()["w-idle"] == first
    assert dict(kube_backend.api_calls) == calls
