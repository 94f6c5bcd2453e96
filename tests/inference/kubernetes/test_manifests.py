"""What the orchestrator would send to Kubernetes, checked without a cluster.

Real: the manifest builders and the JSON schemas of Kubernetes 1.30 and 1.33 bundled with
`kubernetes-validate` (strict: unknown fields fail). Nothing is sent anywhere.
"""

from __future__ import annotations

import dataclasses
import json

import kubernetes_validate
import pytest

from inference import contracts
from inference.backends import manifests
from inference.backends.base import WorkerSpec
from tests.inference.kubernetes.helpers import pool, worker

TARGETS = ["1.30", "1.33"]


def conversation_worker() -> WorkerSpec:
    """A conversation worker told of a language model endpoint, whose key is a secret."""
    plain = worker("alpha-hospital", "w-talk", pool("converse-l4", gpu_class="l4"))
    return dataclasses.replace(
        plain,
        environment=(
            (contracts.ENV_LLM_URL, "http://vllm.models:8000/v1"),
            (contracts.ENV_LLM_MODEL, "qwen2.5-7b-instruct"),
        ),
        secrets=((contracts.ENV_LLM_API_KEY, "sk-live-123"),),
    )


def every_manifest(version: str) -> list[dict]:
    namespace = manifests.namespace_name("ironbowl-org-", "alpha-hospital")
    gpu = worker(
        "alpha-hospital",
        "w-gpu",
        pool(
            tolerations=(
                {
                    "key": "dedicated",
                    "operator": "Equal",
                    "value": "ironbowl",
                    "effect": "NoSchedule",
                },
            )
        ),
    )
    cpu = worker("alpha-hospital", "w-cpu", pool("diagnostic", gpu_class="cpu", gpus=0))
    batch = worker("alpha-hospital", "w-batch", pool("render", gpu_class="l4", batch=True))
    talker = conversation_worker()
    pod = manifests.worker_pod(namespace, gpu)
    pod["metadata"]["uid"] = "7d3c1a52-0000-4000-8000-000000000001"
    return [
        manifests.namespace(namespace, "alpha-hospital"),
        manifests.gpu_quota(namespace, "alpha-hospital", 8),
        manifests.worker_secret(namespace, gpu),
        manifests.worker_secret(namespace, gpu, owner=pod),
        manifests.worker_pod(namespace, gpu),
        manifests.worker_pod(namespace, cpu),
        manifests.worker_secret(namespace, talker),
        manifests.worker_pod(namespace, talker),
        manifests.worker_job(namespace, batch, kubernetes_version=version),
        manifests.worker_job(namespace, batch, kubernetes_version=version, queue_name="tenant-q"),
    ]


@pytest.mark.parametrize("version", TARGETS)
def test_every_manifest_validates_strictly(version):
    """Real schemas: every kind the backend builds, for each target version."""
    for manifest in every_manifest(version):
        kubernetes_validate.validate(manifest, version, strict=True)


def test_an_unknown_field_fails_validation():
    """The validation above can fail: a misspelt field is refused."""
    pod = every_manifest("1.33")[4]
    pod["spec"]["restartPolicyy"] = "Never"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, "1.33", strict=True)


def test_gpu_worker_pod():
    """Requests = limits with the GPUs, the class's node selector, the GPU taint tolerated,
    restartPolicy Never, non-root, labels, env from contracts, the token only by reference."""
    spec = worker("alpha-hospital", "w-1", pool(gpus=2))
    pod = manifests.worker_pod("ironbowl-org-alpha-hospital", spec)
    container = pod["spec"]["containers"][0]
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["spec"]["nodeSelector"] == {"ironbowl.io/gpu-class": "h100"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
        "tolerations"
    ]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["command"] == ["python", "-m", "inference.worker"]
    assert pod["metadata"]["labels"] == {
        "ironbowl.io/org": "alpha-hospital",
        "ironbowl.io/pool": "live-h100",
        "ironbowl.io/worker": "w-1",
        "app.kubernetes.io/managed-by": "ironbowl",
    }
    env = {item["name"]: item for item in container["env"]}
    assert env[contracts.ENV_WORKER_ID]["value"] == "w-1"
    assert env[contracts.ENV_SLOTS]["value"] == "4"
    assert env[contracts.ENV_CONTROL_URL]["value"] == "http://ironbowl.example"
    assert env[contracts.ENV_WORKER_TOKEN]["valueFrom"] == {
        "secretKeyRef": {"name": "w-1-token", "key": "token"}
    }
    assert spec.token not in json.dumps(pod)


def test_cpu_pool_asks_no_gpu_and_avoids_gpu_nodes():
    pod = manifests.worker_pod("ns", worker("o", "w", pool("diag", gpu_class="cpu", gpus=0)))
    assert "nvidia.com/gpu" not in pod["spec"]["containers"][0]["resources"]["limits"]
    assert "tolerations" not in pod["spec"]
    assert "nodeSelector" not in pod["spec"]


def test_pool_node_selector_and_tolerations_are_kept():
    extra = {"key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule"}
    spec = pool(node_selector={"nvidia.com/gpu.product": "H100"}, tolerations=(extra,))
    pod = manifests.worker_pod("ns", worker("o", "w", spec))
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "H100"}
    assert extra in pod["spec"]["tolerations"]


@pytest.mark.parametrize(
    ("version", "has_ttl", "has_policy"),
    [("1.20", False, False), ("1.25", True, False), ("1.30", True, True), ("1.33", True, True)],
)
def test_job_fields_follow_the_target_version(version, has_ttl, has_policy):
    spec = worker("o", "w", pool("render", batch=True))
    job = manifests.worker_job("ns", spec, kubernetes_version=version)
    assert ("ttlSecondsAfterFinished" in job["spec"]) is has_ttl
    assert ("podFailurePolicy" in job["spec"]) is has_policy
    assert job["spec"]["backoffLimit"] == manifests.JOB_BACKOFF_LIMIT
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    env = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert contracts.ENV_EXIT_WHEN_IDLE_S in env


def test_kueue_queue_label_suspends_the_job():
    spec = worker("o", "w", pool("render", batch=True))
    job = manifests.worker_job("ns", spec, kubernetes_version="1.33", queue_name="gpu-queue")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert job["spec"]["suspend"] is True
    plain = manifests.worker_job("ns", spec, kubernetes_version="1.33")
    assert "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]
    assert "suspend" not in plain["spec"]


def test_secret_owner_reference():
    spec: WorkerSpec = worker("o", "w", pool())
    owner = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w", "uid": "u-1"}}
    secret = manifests.worker_secret("ns", spec, owner=owner)
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "w", "uid": "u-1", "blockOwnerDeletion": False}
    ]
    assert secret["stringData"] == {"token": spec.token}


@pytest.mark.parametrize(
    "slug", ["alpha-hospital", "Beta_Bureau", "x" * 80, "-dash-", "市场监管局"]
)
def test_namespace_names_are_valid_and_distinct(slug):
    name = manifests.namespace_name("ironbowl-org-", slug)
    assert len(name) <= 63
    assert manifests.dns_label(name) == name
    assert name != manifests.namespace_name("ironbowl-org-", slug + "2")
    assert len(manifests.label_value(slug)) <= 63


def test_model_settings_reach_the_pod_and_the_key_only_through_the_secret():
    talker = conversation_worker()
    namespace = manifests.namespace_name("ironbowl-org-", "alpha-hospital")
    pod = manifests.worker_pod(namespace, talker)
    env = {item["name"]: item for item in pod["spec"]["containers"][0]["env"]}
    assert env[contracts.ENV_LLM_URL]["value"] == "http://vllm.models:8000/v1"
    assert env[contracts.ENV_LLM_MODEL]["value"] == "qwen2.5-7b-instruct"
    assert env[contracts.ENV_LLM_API_KEY]["valueFrom"]["secretKeyRef"] == {
        "name": manifests.secret_name("w-talk"),
        "key": "llm-api-key",
    }
    assert "sk-live-123" not in json.dumps(pod)
    secret = manifests.worker_secret(namespace, talker)
    assert secret["stringData"] == {"token": "secret-w-talk", "llm-api-key": "sk-live-123"}


def test_only_conversation_workers_are_told_of_the_language_model(settings):
    from inference.reconcile import model_settings

    settings.INFERENCE_LLM_URL = ""
    assert model_settings("converse") == {}
    settings.INFERENCE_LLM_URL = "http://vllm:8000/v1"
    settings.INFERENCE_LLM_MODEL = "qwen"
    settings.INFERENCE_LLM_API_KEY = ""
    assert model_settings("converse") == {
        "environment": (
            (contracts.ENV_LLM_URL, "http://vllm:8000/v1"),
            (contracts.ENV_LLM_MODEL, "qwen"),
        ),
        "secrets": (),
    }
    settings.INFERENCE_LLM_API_KEY = "sk-1"
    assert model_settings("converse")["secrets"] == ((contracts.ENV_LLM_API_KEY, "sk-1"),)
    assert model_settings("live") == {} and model_settings("render") == {}
