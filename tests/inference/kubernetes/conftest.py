"""Fixtures of the Kubernetes backend tests: a real control plane (session-wide, `cluster`
marker), a simulated kubelet with GPU nodes, and a backend per test in its own namespaces."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from inference.backends.kubernetes import KubernetesBackend
from tests.inference.kube_cluster import BUILD_HINT, KubeCluster, kube_bin_dir, running_cluster
from tests.inference.kubernetes.helpers import wait_for
from tests.inference.kubernetes.kubelet import SimNode, SimulatedKubelet

NODES = [
    SimNode("h100-a", "h100", 8),
    SimNode("h100-b", "h100", 8),
    SimNode("l4-a", "l4", 4),
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: needs the real Kubernetes control plane (scripts/fetch-kube.sh)"
    )


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    bin_dir = kube_bin_dir()
    if bin_dir is None:
        message = f"no Kubernetes control plane binaries: {BUILD_HINT}"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {message}", pytrace=False)
        pytest.skip(message)
    with running_cluster(bin_dir, tmp_path_factory.mktemp("kube")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kube_admin(kube_cluster: KubeCluster) -> Iterator[client.CoreV1Api]:
    api_client = kube_cluster.api_client()
    yield client.CoreV1Api(api_client)
    api_client.close()


@pytest.fixture(scope="session")
def kubelet(kube_cluster: KubeCluster) -> Iterator[SimulatedKubelet]:
    api_client = kube_cluster.api_client()
    simulated = SimulatedKubelet(api_client, NODES)
    simulated.start()
    yield simulated
    simulated.stop()
    api_client.close()


@pytest.fixture
def org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kube_backend(
    kube_cluster: KubeCluster, kubelet: SimulatedKubelet, kube_admin: client.CoreV1Api, org: str
) -> Iterator[KubernetesBackend]:
    """A backend on the real API server (target 1.20, the server's version). Afterwards the
    test's pods are deleted at once, so that their GPUs are free again, then its namespace."""
    backend = KubernetesBackend(
        kube_cluster.api_client(), target_version="1.20", owns_client=True, sync_timeout_s=30
    )
    yield backend
    backend.close()
    namespace = backend.namespace_for(org)
    batch = client.BatchV1Api(kube_admin.api_client)
    batch.delete_collection_namespaced_job(namespace, propagation_policy="Background")
    kube_admin.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    wait_for(
        lambda: not kube_admin.list_namespaced_pod(namespace).items,
        what=f"the pods of {namespace} to go",
    )
    try:
        kube_admin.delete_namespace(namespace)
    except client.exceptions.ApiException as error:
        if error.status != 404:
            raise
    assert not kubelet.error, kubelet.error
