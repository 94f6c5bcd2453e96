"""The Kubernetes objects the orchestrator owns, built as plain manifest dicts (camelCase).

Pure functions, no client and no I/O: the backend sends what they return, and the tests validate
every one of them against the target versions' schemas (`kubernetes-validate --strict`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from inference import contracts
from inference.backends.base import PoolSpec, WorkerSpec

Manifest = dict[str, Any]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "ironbowl"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
ORG_LABEL = "ironbowl.io/org"
POOL_LABEL = "ironbowl.io/pool"
WORKER_LABEL = "ironbowl.io/worker"
GPU_CLASS_LABEL = "ironbowl.io/gpu-class"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

GPU_RESOURCE = "nvidia.com/gpu"
QUOTA_NAME = "ironbowl-gpu"
QUOTA_KEY = f"requests.{GPU_RESOURCE}"  # a `limits.` quota is accepted and not enforced
TOKEN_KEY = "token"  # noqa: S105 - the key inside the Secret, not a secret
CONTAINER_NAME = "worker"
METRICS_PORT = 9400
WORKER_UID = 10001  # the worker image's non-root user
# A batch worker exits after this long without work, so that its Job completes.
BATCH_EXIT_WHEN_IDLE_S = 300
# Finished Jobs linger this long for `kubectl` and the orchestrator to read their outcome.
JOB_TTL_AFTER_FINISHED_S = 3600
# A batch worker that crashes is retried once by the Job controller; the orchestrator does the rest.
JOB_BACKOFF_LIMIT = 1
# SIGKILL, nearly always the OOM killer: the same worker would be killed again, so fail at once.
EXIT_CODE_KILLED = 137

# Fields a Job gained after Kubernetes 1.20 (the oldest server the tests run) and from when.
TTL_AFTER_FINISHED_SINCE = (1, 21)  # beta, on by default
POD_FAILURE_POLICY_SINCE = (1, 26)  # beta, on by default; stable in 1.31

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def parse_version(version: str) -> tuple[int, int]:
    """'1.33' or 'v1.33.2' → (1, 33)."""
    major, minor = version.lstrip("v").split(".")[:2]
    return int(major), int(minor)


def dns_label(value: str, *, max_length: int = 63) -> str:
    """`value` when it is already a valid DNS label of the length allowed, else a sanitised form
    with a short hash of the original, so that two different slugs never share a name."""
    if len(value) <= max_length and _DNS_LABEL.match(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    cleaned = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    return f"{cleaned[: max_length - 9].rstrip('-')}-{digest}".lstrip("-")


def label_value(value: str) -> str:
    """`value` when Kubernetes accepts it as a label value (so that it reads back unchanged),
    else a sanitised form with a short hash of the original."""
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    return dns_label(value)


def namespace_name(prefix: str, organization: str) -> str:
    return prefix + dns_label(organization, max_length=63 - len(prefix))


def _secret_key(variable: str) -> str:
    """A Secret's key for an environment variable: IRONBOWL_LLM_API_KEY -> llm-api-key."""
    return variable.removeprefix("IRONBOWL_").lower().replace("_", "-")


def secret_name(worker_id: str) -> str:
    return f"{worker_id}-token"


def _metadata(name: str, labels: dict[str, str], namespace: str | None = None) -> Manifest:
    metadata: Manifest = {"name": name, "labels": {**labels, MANAGED_BY_LABEL: MANAGED_BY}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


def namespace(name: str, organization: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _metadata(name, {ORG_LABEL: label_value(organization)}),
    }


def gpu_quota(namespace_: str, organization: str, gpus: int) -> Manifest:
    """The hard cap on GPUs the organization's workers may request at once. Labelled, so that the
    orchestrator finds its quotas with the same selector as everything else it owns."""
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata(QUOTA_NAME, {ORG_LABEL: label_value(organization)}, namespace_),
        "spec": {"hard": {QUOTA_KEY: str(gpus)}},
    }


def worker_labels(spec: WorkerSpec) -> dict[str, str]:
    return {
        ORG_LABEL: label_value(spec.organization),
        POOL_LABEL: label_value(spec.pool.name),
        WORKER_LABEL: spec.worker_id,
        MANAGED_BY_LABEL: MANAGED_BY,
    }


def worker_secret(namespace_: str, spec: WorkerSpec, owner: Manifest | None = None) -> Manifest:
    """The worker's token, which the Pod reads through `secretKeyRef` so that it never appears in
    a Pod manifest. `owner` (the worker's Pod or Job, as returned by the server) makes the garbage
    collector delete the Secret with it."""
    manifest: Manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(secret_name(spec.worker_id), worker_labels(spec), namespace_),
        "type": "Opaque",
        "stringData": {TOKEN_KEY: spec.token, **{_secret_key(n): v for n, v in spec.secrets}},
    }
    if owner is not None:
        manifest["metadata"]["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "blockOwnerDeletion": False,
            }
        ]
    return manifest


def node_selector(pool: PoolSpec) -> dict[str, str]:
    """The pool's own selector; a GPU pool without one lands on nodes of its GPU class."""
    if pool.node_selector:
        return dict(pool.node_selector)
    if pool.gpus_per_worker > 0:
        return {GPU_CLASS_LABEL: pool.gpu_class}
    return {}


def tolerations(pool: PoolSpec) -> list[dict[str, str]]:
    """GPU nodes are tainted so that nothing else lands there; only GPU pools tolerate it."""
    result = [dict(toleration) for toleration in pool.tolerations]
    if pool.gpus_per_worker > 0:
        result.insert(0, {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    return result


def resources(pool: PoolSpec) -> Manifest:
    """Requests equal limits (Guaranteed QoS): a GPU cannot be overcommitted anyway, and a worker
    that exceeds its memory should be OOMKilled visibly rather than squeeze its neighbours."""
    amounts = {"cpu": pool.cpu, "memory": pool.memory}
    if pool.gpus_per_worker > 0:
        amounts[GPU_RESOURCE] = str(pool.gpus_per_worker)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def pod_spec(spec: WorkerSpec) -> Manifest:
    pool = spec.pool
    env: list[Manifest] = [
        {"name": contracts.ENV_CONTROL_URL, "value": spec.control_url},
        {"name": contracts.ENV_WORKER_ID, "value": spec.worker_id},
        {"name": contracts.ENV_POOL, "value": pool.name},
        {"name": contracts.ENV_PIPELINE, "value": pool.pipeline},
        {"name": contracts.ENV_SLOTS, "value": str(pool.slots_per_worker)},
        {"name": contracts.ENV_METRICS_PORT, "value": str(METRICS_PORT)},
        {
            "name": contracts.ENV_WORKER_TOKEN,
            "valueFrom": {"secretKeyRef": {"name": secret_name(spec.worker_id), "key": TOKEN_KEY}},
        },
    ]
    if pool.batch:
        env.append({"name": contracts.ENV_EXIT_WHEN_IDLE_S, "value": str(BATCH_EXIT_WHEN_IDLE_S)})
    env.extend({"name": name, "value": value} for name, value in spec.environment)
    env.extend(
        {
            "name": name,
            "valueFrom": {
                "secretKeyRef": {"name": secret_name(spec.worker_id), "key": _secret_key(name)}
            },
        }
        for name, _value in spec.secrets
    )
    manifest: Manifest = {
        # The orchestrator replaces failed workers itself; a kubelet restart would hide OOMs.
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # workers never talk to the Kubernetes API
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": WORKER_UID,
            "runAsGroup": WORKER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER_NAME,
                "image": pool.image,
                "command": ["python", "-m", "inference.worker"],
                "env": env,
                "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
                "resources": resources(pool),
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    selector = node_selector(pool)
    if selector:
        manifest["nodeSelector"] = selector
    tolerated = tolerations(pool)
    if tolerated:
        manifest["tolerations"] = tolerated
    return manifest


def worker_pod(namespace_: str, spec: WorkerSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(spec.worker_id, worker_labels(spec), namespace_),
        "spec": pod_spec(spec),
    }


def worker_job(
    namespace_: str,
    spec: WorkerSpec,
    *,
    kubernetes_version: str,
    queue_name: str = "",
) -> Manifest:
    """A batch worker as a Job. With Kueue, the Job is created suspended and Kueue admits it."""
    version = parse_version(kubernetes_version)
    labels = worker_labels(spec)
    job_spec: Manifest = {
        "backoffLimit": JOB_BACKOFF_LIMIT,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec(spec)},
    }
    if version >= TTL_AFTER_FINISHED_SINCE:
        job_spec["ttlSecondsAfterFinished"] = JOB_TTL_AFTER_FINISHED_S
    if version >= POD_FAILURE_POLICY_SINCE:
        job_spec["podFailurePolicy"] = {
            "rules": [
                # Node lost, drained or preempted: not the worker's fault, do not count it.
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER_NAME,
                        "operator": "In",
                        "values": [EXIT_CODE_KILLED],
                    },
                },
            ]
        }
    if queue_name:
        labels[KUEUE_QUEUE_LABEL] = queue_name
        job_spec["suspend"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(spec.worker_id, labels, namespace_),
        "spec": job_spec,
    }
