"""The Kubernetes backend: workers as Pods (batch workers as Jobs) in a namespace per organization.

Writes go through the official client: namespaces and quotas by server-side apply with a field
manager, Pods and Jobs by create (an existing one is not an error). Reads come from list-then-watch
caches (`inference.backends.watch`), so that a pass with nothing to do costs no API call.
`api_calls` counts every request by verb, for the benchmark and the "idle pass writes nothing"
tests.

Errors the reconciler handles: `BackendUnavailable` (API unreachable, timeouts, 5xx, 429: back off
and keep state) and `StartRefused` from `start_worker`: `QuotaExceeded` (the namespace's GPU quota
refused the worker, reason "QuotaExceeded") or `WorkerRejected` (any other refusal of its manifest).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from inference.backends import manifests
from inference.backends.base import (
    BackendUnavailable,
    ObservedPhase,
    ObservedWorker,
    StartRefused,
    TenantSpec,
    WorkerSpec,
)
from inference.backends.watch import Object, Reflector

logger = logging.getLogger(__name__)

T = TypeVar("T")

FIELD_MANAGER = "ironbowl-orchestrator"
DEFAULT_NAMESPACE_PREFIX = "ironbowl-org-"
APPLY_PATCH = "application/apply-patch+yaml"
WRITE_VERBS = ("create", "patch", "delete")
# How long a tenant's namespace and quota, once read or written, are trusted without a read.
TENANT_TTL_S = 600.0
# How long a worker that vanished without stop_worker is still reported (as failed, with why).
TOMBSTONE_TTL_S = 3600.0
CONFLICT_RETRIES = 3
QUOTA_SYNC_S = 5.0  # how long ensure_tenant waits for a new quota to be counted
# Admission refusals of a namespace created moments ago, which pass once controllers caught up.
NEW_NAMESPACE_MARKERS = ("error looking up service account", "status unknown for quota")
NEW_NAMESPACE_RETRIES = 8  # about seven seconds in all


class WorkerRejected(StartRefused):
    """The API server refused a worker's manifest (4xx other than a conflict)."""

    def __init__(self, worker_id: str, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.worker_id = worker_id
        self.message = message


class QuotaExceeded(WorkerRejected):
    """The organization's ResourceQuota has no room for this worker's GPUs (403 on create). The
    reconciler should keep the work queued with this reason; admission normally prevents it."""


# -- pod and job state → observed worker -----------------------------------------------------

# DisruptionTarget condition reasons (Kubernetes 1.26+) and what the orchestrator calls them.
_DISRUPTIONS = {
    "PreemptionByScheduler": "Preempted",
    "EvictionByEvictionAPI": "Evicted",
    "TerminationByKubelet": "Evicted",
}
_IMAGE_PULL = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}


def _condition(obj: Object, kind: str) -> Object | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def _false_condition(obj: Object, kind: str) -> Object | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "False":
            return dict(condition)
    return None


def _container_states(pod: Object) -> list[Object]:
    return [
        status.get("state") or {}
        for status in (pod.get("status") or {}).get("containerStatuses") or []
    ]


def _disruption(pod: Object) -> tuple[str, str] | None:
    condition = _condition(pod, "DisruptionTarget")
    if condition is None:
        return None
    reason = _DISRUPTIONS.get(str(condition.get("reason") or ""), "NodeLost")
    return reason, str(condition.get("message") or "")


def pod_state(pod: Object) -> tuple[ObservedPhase, str, str]:
    """(phase, reason, message) of a worker Pod, in the orchestrator's words."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase == "Succeeded":
        return "succeeded", "Completed", ""
    if phase in ("Failed", "Unknown"):
        if status.get("reason") in ("NodeLost", "Evicted", "Shutdown", "Terminated"):
            reason = "NodeLost" if status.get("reason") != "Evicted" else "Evicted"
            return "failed", reason, str(status.get("message") or "")
        for state in _container_states(pod):
            terminated = state.get("terminated")
            if not terminated:
                continue
            code = terminated.get("exitCode")
            detail = str(terminated.get("message") or f"exit code {code}")
            if terminated.get("reason") == "OOMKilled":
                return "failed", "OOMKilled", detail
            if code == manifests.EXIT_CODE_KILLED:
                return "failed", "Killed", detail
            return "failed", str(terminated.get("reason") or "Error"), detail
        disruption = _disruption(pod)
        if disruption is not None:
            return "failed", *disruption
        if phase == "Unknown":
            return "failed", "NodeLost", "the node stopped reporting the pod"
        return "failed", str(status.get("reason") or "Error"), str(status.get("message") or "")
    disruption = _disruption(pod)
    if disruption is not None or (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason, message = disruption or ("Terminating", "")
        return "failed" if disruption else "starting", reason, message
    unscheduled = _false_condition(pod, "PodScheduled")
    if unscheduled is not None and unscheduled.get("reason") == "Unschedulable":
        # Scheduler messages read like "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
        return "starting", "Unschedulable", str(unscheduled.get("message") or "")
    for state in _container_states(pod):
        waiting = state.get("waiting")
        if waiting:
            reason = str(waiting.get("reason") or "")
            message = str(waiting.get("message") or "")
            if reason in _IMAGE_PULL:
                return "starting", "ImagePullBackOff", message
            if reason and reason != "ContainerCreating":
                return "starting", reason, message
    if phase == "Running" and _condition(pod, "Ready") is not None:
        return "running", "", ""
    return "starting", "", ""


def job_state(job: Object, pods: list[Object]) -> tuple[ObservedPhase, str, str]:
    """(phase, reason, message) of a batch worker's Job; its newest Pod gives the detail."""
    newest = max(pods, key=_created, default=None)
    if _condition(job, "Complete") is not None:
        return "succeeded", "Completed", ""
    failed = _condition(job, "Failed")
    if failed is not None:
        for pod in sorted(pods, key=_created, reverse=True):
            phase, reason, message = pod_state(pod)
            if phase == "failed":
                return "failed", reason, message
        return "failed", str(failed.get("reason") or "Failed"), str(failed.get("message") or "")
    if (job.get("spec") or {}).get("suspend"):
        return "starting", "Queued", "waiting for Kueue to admit the job"
    if newest is None:
        return "starting", "", ""
    phase, reason, message = pod_state(newest)
    if phase == "failed":
        # The Job controller starts another pod; say why the last one ended.
        return "starting", reason, f"retrying: {message}"
    return phase, reason, message


def _created(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def _labels(obj: Object) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _worker_id(obj: Object) -> str:
    return _labels(obj).get(manifests.WORKER_LABEL) or str(obj["metadata"]["name"])


def _observed(obj: Object, phase: ObservedPhase, reason: str, message: str) -> ObservedWorker:
    labels = _labels(obj)
    return ObservedWorker(
        worker_id=_worker_id(obj),
        organization=labels.get(manifests.ORG_LABEL, ""),
        pool=labels.get(manifests.POOL_LABEL, ""),
        phase=phase,
        reason=reason,
        message=message,
    )


# -- the backend -----------------------------------------------------------------------------


class KubernetesBackend:
    name = "kubernetes"

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace_prefix: str = DEFAULT_NAMESPACE_PREFIX,
        kueue_queue: str | None = None,
        target_version: str = "1.33",
        field_manager: str = FIELD_MANAGER,
        request_timeout_s: float = 30.0,
        watch_timeout_s: int = 300,
        sync_timeout_s: float = 15.0,
        owns_client: bool = False,
    ) -> None:
        self.api_client = api_client
        self.namespace_prefix = namespace_prefix
        self.kueue_queue = kueue_queue or ""
        self.target_version = target_version
        self.field_manager = field_manager
        self._timeout = (min(request_timeout_s, 10.0), request_timeout_s)
        self._sync_timeout_s = sync_timeout_s
        self._owns_client = owns_client
        self._core = client.CoreV1Api(api_client)
        self._batch = client.BatchV1Api(api_client)
        self._lock = threading.Lock()
        self.api_calls: Counter[str] = Counter()
        self._tenants: dict[str, tuple[int, float]] = {}  # organization → (quota, checked at)
        self._tombstones: dict[str, tuple[ObservedWorker, float]] = {}
        # Worker ids deleted by us and not yet gone: neither reported nor tombstoned.
        self._stopped: set[str] = set()
        self._observed: tuple[tuple[int, int, int], dict[str, ObservedWorker]] | None = None
        self._pods = Reflector(
            "pods",
            self._core.list_pod_for_all_namespaces,
            label_selector=manifests.MANAGED_SELECTOR,
            on_call=self._count,
            on_delete=self._pod_deleted,
            watch_timeout_s=watch_timeout_s,
        )
        self._jobs = Reflector(
            "jobs",
            self._batch.list_job_for_all_namespaces,
            label_selector=manifests.MANAGED_SELECTOR,
            on_call=self._count,
            watch_timeout_s=watch_timeout_s,
        )
        self._tombstone_generation = 0

    @classmethod
    def from_environment(cls, *, context: str | None = None, **options: Any) -> KubernetesBackend:
        """In a cluster, its service account; elsewhere the kubeconfig (`KUBECONFIG`)."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except config.ConfigException:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                context=context, client_configuration=configuration
            )
        return cls(client.ApiClient(configuration), owns_client=True, **options)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _count(self, verb: str) -> None:
        with self._lock:
            self.api_calls[verb] += 1

    @property
    def writes(self) -> int:
        with self._lock:
            return sum(self.api_calls[verb] for verb in WRITE_VERBS)

    def _call(self, verb: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One API request, counted, with a client-side timeout; an unreachable or failing
        server becomes `BackendUnavailable`, other API errors are raised as they are."""
        self._count(verb)
        kwargs.setdefault("_request_timeout", self._timeout)
        try:
            return function(*args, **kwargs)
        except ApiException as error:
            if error.status is None or error.status == 0 or error.status >= 500:
                raise BackendUnavailable(
                    f"Kubernetes API: {error.status} {error.reason}"
                ) from error
            if error.status == 429:
                raise BackendUnavailable("Kubernetes API: too many requests") from error
            raise
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise BackendUnavailable(f"Kubernetes API unreachable: {error}") from error

    def _apply(self, function: Callable[..., Any], *args: Any, body: Object) -> Any:
        """Server-side apply. An apply carries no resourceVersion, so a 409 (a write racing
        ours) has nothing to re-read: it is simply tried again."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                return self._call(
                    "patch",
                    function,
                    *args,
                    body=body,
                    field_manager=self.field_manager,
                    force=True,
                    _content_type=APPLY_PATCH,
                    _preload_content=False,
                )
            except ApiException as error:
                if error.status != 409 or attempt == CONFLICT_RETRIES - 1:
                    raise
                logger.info("conflict applying %s, retrying", body["metadata"]["name"])
        raise AssertionError("unreachable")

    # -- tenants -------------------------------------------------------------------------------

    def namespace_for(self, organization: str) -> str:
        return manifests.namespace_name(self.namespace_prefix, organization)

    def ensure_tenant(self, tenant: TenantSpec) -> None:
        """Namespace and GPU quota; writes only when what the server has differs."""
        known = self._tenants.get(tenant.organization)
        now = time.monotonic()
        if known is not None and known[0] == tenant.gpu_quota and now - known[1] < TENANT_TTL_S:
            return
        name = self.namespace_for(tenant.organization)
        wanted_namespace = manifests.namespace(name, tenant.organization)
        wanted_quota = manifests.gpu_quota(name, tenant.organization, tenant.gpu_quota)
        if not self._namespace_matches(name, wanted_namespace):
            self._apply(self._core.patch_namespace, name, body=wanted_namespace)
        if not self._quota_matches(name, wanted_quota):
            self._apply(
                self._core.patch_namespaced_resource_quota,
                manifests.QUOTA_NAME,
                name,
                body=wanted_quota,
            )
            if not self._quota_enforced(name, wanted_quota):
                return  # not remembered: the next pass looks again
        self._tenants[tenant.organization] = (tenant.gpu_quota, now)

    def _quota_enforced(self, namespace: str, wanted: Object) -> bool:
        """Waits (briefly, reading) until the quota controller has counted the namespace under
        the new quota. Until then admission may let pods through uncounted, or refuse all of
        them with "status unknown for quota"."""
        deadline = time.monotonic() + QUOTA_SYNC_S
        while True:
            current = self._read(
                "get", self._core.read_namespaced_resource_quota, manifests.QUOTA_NAME, namespace
            )
            status = (current or {}).get("status") or {}
            if status.get("hard") == wanted["spec"]["hard"] and "used" in status:
                return True
            if time.monotonic() > deadline:
                logger.warning("quota of %s not yet counted by the controller", namespace)
                return False
            time.sleep(0.1)

    def _read(self, verb: str, function: Callable[..., Any], *args: Any) -> Object | None:
        try:
            response = self._call(verb, function, *args, _preload_content=False)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        data: Object = json.loads(response.data)
        return data

    def _namespace_matches(self, name: str, wanted: Object) -> bool:
        current = self._read("get", self._core.read_namespace, name)
        if current is None or (current.get("metadata") or {}).get("deletionTimestamp"):
            return False
        labels = _labels(current)
        return all(labels.get(k) == v for k, v in wanted["metadata"]["labels"].items())

    def _quota_matches(self, namespace: str, wanted: Object) -> bool:
        current = self._read(
            "get", self._core.read_namespaced_resource_quota, manifests.QUOTA_NAME, namespace
        )
        if current is None:
            return False
        hard = (current.get("spec") or {}).get("hard") or {}
        labels = _labels(current)
        return hard == wanted["spec"]["hard"] and all(
            labels.get(k) == v for k, v in wanted["metadata"]["labels"].items()
        )

    # -- workers -------------------------------------------------------------------------------

    def start_worker(self, spec: WorkerSpec) -> None:
        """Secret, then Pod (or Job), then the Secret's owner reference to it."""
        namespace = self.namespace_for(spec.organization)
        with self._lock:
            self._stopped.discard(spec.worker_id)
            self._tombstones.pop(spec.worker_id, None)
        if spec.pool.batch and not self.kueue_queue:
            self._check_job_quota(namespace, spec)
        self._apply(
            self._core.patch_namespaced_secret,
            manifests.secret_name(spec.worker_id),
            namespace,
            body=manifests.worker_secret(namespace, spec),
        )
        if spec.pool.batch:
            body = manifests.worker_job(
                namespace,
                spec,
                kubernetes_version=self.target_version,
                queue_name=self.kueue_queue,
            )
            create: Callable[..., Any] = self._batch.create_namespaced_job
            read: Callable[..., Any] = self._batch.read_namespaced_job
        else:
            body = manifests.worker_pod(namespace, spec)
            create, read = self._core.create_namespaced_pod, self._core.read_namespaced_pod
        try:
            owner: Object | None = self._create(create, namespace, body)
        except ApiException as error:
            if error.status == 409:  # it exists already: read it for its uid
                owner = self._read("get", read, spec.worker_id, namespace)
            else:
                self._forget_secret(spec.worker_id, namespace)
                raise self._rejection(spec, error) from error
        except BackendUnavailable:
            self._forget_secret(spec.worker_id, namespace)
            raise
        if owner is not None:
            owner.setdefault("apiVersion", body["apiVersion"])
            owner.setdefault("kind", body["kind"])
            # Seen at once by observe(): a pass right after this one must not think the worker
            # was never started (and start it again with a new token).
            (self._jobs if spec.pool.batch else self._pods).remember(owner)
            self._apply(
                self._core.patch_namespaced_secret,
                manifests.secret_name(spec.worker_id),
                namespace,
                body=manifests.worker_secret(namespace, spec, owner=owner),
            )

    def _check_job_quota(self, namespace: str, spec: WorkerSpec) -> None:
        """A Job is admitted whatever the quota; only its pods are refused, and the Job
        controller retries them quietly for minutes. So a batch worker that cannot fit is
        refused here, as a Pod would be by the API server."""
        gpus = spec.pool.gpus_per_worker
        if gpus <= 0 or self._jobs.get((namespace, spec.worker_id)) is not None:
            return
        quota = self._read(
            "get", self._core.read_namespaced_resource_quota, manifests.QUOTA_NAME, namespace
        )
        status = (quota or {}).get("status") or {}
        try:
            hard = int((status.get("hard") or {})[manifests.QUOTA_KEY])
            used = int((status.get("used") or {}).get(manifests.QUOTA_KEY, "0"))
        except (KeyError, ValueError):
            return  # no quota, or one in units this check does not read: the server decides
        if used + gpus > hard:
            raise QuotaExceeded(
                spec.worker_id,
                "QuotaExceeded",
                f"exceeded quota: {manifests.QUOTA_NAME}, requested: {manifests.QUOTA_KEY}={gpus}"
                f", used: {manifests.QUOTA_KEY}={used}, limited: {manifests.QUOTA_KEY}={hard}",
            )

    def _create(self, create: Callable[..., Any], namespace: str, body: Object) -> Object:
        """POST the worker; a namespace seconds old may still lack what admission needs (its
        default ServiceAccount, its quota's first status): that passes, so wait a little."""
        for attempt in range(NEW_NAMESPACE_RETRIES + 1):
            try:
                response = self._call(
                    "create",
                    create,
                    namespace,
                    body,
                    field_manager=self.field_manager,
                    _preload_content=False,
                )
                created: Object = json.loads(response.data)
                return created
            except ApiException as error:
                settling = error.status == 403 and any(
                    marker in str(error.body) for marker in NEW_NAMESPACE_MARKERS
                )
                if not settling:
                    raise
                if attempt == NEW_NAMESPACE_RETRIES:
                    raise BackendUnavailable(
                        f"namespace {namespace} not ready: {error.body}"
                    ) from error
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def _rejection(self, spec: WorkerSpec, error: ApiException) -> WorkerRejected:
        message, reason = str(error.reason or ""), str(error.status)
        try:
            status = json.loads(error.body or "{}")
            message = str(status.get("message") or message)
            reason = str(status.get("reason") or reason)
        except ValueError:
            pass
        if error.status == 403 and "exceeded quota" in message:
            return QuotaExceeded(spec.worker_id, "QuotaExceeded", message)
        if error.status == 404:
            # The namespace went away under us: read the tenant again on the next pass.
            self._tenants.pop(spec.organization, None)
        return WorkerRejected(spec.worker_id, reason, message)

    def _forget_secret(self, worker_id: str, namespace: str) -> None:
        try:
            self._delete(
                self._core.delete_namespaced_secret, manifests.secret_name(worker_id), namespace
            )
        except (ApiException, BackendUnavailable) as error:
            logger.warning("could not delete the secret of %s: %s", worker_id, error)

    def _delete(self, function: Callable[..., Any], name: str, namespace: str) -> bool:
        try:
            self._call(
                "delete",
                function,
                name,
                namespace,
                propagation_policy="Background",
                _preload_content=False,
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def stop_worker(self, worker_id: str, organization: str) -> None:
        namespace = self.namespace_for(organization)
        with self._lock:
            self._stopped.add(worker_id)
            self._tombstones.pop(worker_id, None)
            self._tombstone_generation += 1
        is_job = self._jobs.get((namespace, worker_id)) is not None
        is_pod = self._pods.get((namespace, worker_id)) is not None
        try:
            if is_job or not is_pod:
                self._delete(self._batch.delete_namespaced_job, worker_id, namespace)
            if is_pod or not is_job:
                self._delete(self._core.delete_namespaced_pod, worker_id, namespace)
            # Normally the garbage collector follows the owner reference; this covers a start
            # that stopped between the Secret and its owner.
            self._delete(
                self._core.delete_namespaced_secret, manifests.secret_name(worker_id), namespace
            )
        except Exception:
            with self._lock:
                self._stopped.discard(worker_id)
                self._tombstone_generation += 1
            raise

    # -- observing -----------------------------------------------------------------------------

    def _pod_deleted(self, pod: Object) -> None:
        """A worker Pod that vanished without stop_worker (node lost, someone's kubectl) is kept
        as a failed tombstone, so that the reconciler learns why its work must move."""
        worker_id = _worker_id(pod)
        if _labels(pod).get(manifests.WORKER_LABEL) is None or worker_id != pod["metadata"]["name"]:
            return  # a Job's pod: the Job says what happened
        phase, reason, message = pod_state(pod)
        if phase == "running" or phase == "starting":
            disruption = _disruption(pod)
            phase = "failed"
            reason, message = disruption or ("Deleted", "the pod was deleted")
        with self._lock:
            if worker_id in self._stopped:
                return
            self._tombstones[worker_id] = (
                _observed(pod, phase, reason, message),
                time.monotonic(),
            )
            self._tombstone_generation += 1

    def start(self) -> None:
        """Start the watches and wait for their first list."""
        self._pods.start()
        self._jobs.start()
        deadline = time.monotonic() + self._sync_timeout_s
        for reflector in (self._pods, self._jobs):
            # Waits for the first list, but not for its retries: a failure is reported at once.
            while not reflector.wait_synced(0.05):
                if reflector.last_error or time.monotonic() > deadline:
                    raise BackendUnavailable(
                        f"Kubernetes API: no {reflector.kind} list yet ({reflector.last_error})"
                    )

    def observe(self) -> dict[str, ObservedWorker]:
        """Every Ironbowl worker Pod and Job, from the watch caches (no request in steady state).
        Raises BackendUnavailable while the caches cannot be trusted (the last list failed)."""
        self.start()
        for reflector in (self._pods, self._jobs):
            if not reflector.healthy:
                raise BackendUnavailable(
                    f"Kubernetes API: {reflector.kind} watch: {reflector.last_error}"
                )
        self._expire_tombstones()
        generation = (self._pods.generation, self._jobs.generation, self._tombstone_generation)
        if self._observed is not None and self._observed[0] == generation:
            return dict(self._observed[1])
        result = self._build()
        self._observed = (generation, result)
        return dict(result)

    def _expire_tombstones(self) -> None:
        cutoff = time.monotonic() - TOMBSTONE_TTL_S
        with self._lock:
            expired = [key for key, (_, at) in self._tombstones.items() if at < cutoff]
            for key in expired:
                del self._tombstones[key]
            if expired:
                self._tombstone_generation += 1

    def _build(self) -> dict[str, ObservedWorker]:
        with self._lock:
            result = {key: observed for key, (observed, _) in self._tombstones.items()}
        job_pods: dict[tuple[str, str], list[Object]] = {}
        for pod in self._pods.snapshot():
            owners = (pod.get("metadata") or {}).get("ownerReferences") or []
            job = next((o["name"] for o in owners if o.get("kind") == "Job"), None)
            if job is not None or "job-name" in _labels(pod):
                namespace = str(pod["metadata"].get("namespace") or "")
                name = job or _labels(pod)["job-name"]
                job_pods.setdefault((namespace, name), []).append(pod)
                continue
            result[_worker_id(pod)] = _observed(pod, *pod_state(pod))
        for job in self._jobs.snapshot():
            namespace = str(job["metadata"].get("namespace") or "")
            pods = job_pods.get((namespace, str(job["metadata"]["name"])), [])
            result[_worker_id(job)] = _observed(job, *job_state(job, pods))
        with self._lock:
            # Workers being stopped are not reported: asking again each pass would be a write
            # per pass until the pod is gone. Forgotten once their objects left the caches.
            stopping = self._stopped & set(result)
            self._stopped = stopping
        return {key: seen for key, seen in result.items() if key not in stopping}

    def close(self) -> None:
        self._pods.stop()
        self._jobs.stop()
        if self._owns_client:
            self.api_client.close()  # type: ignore[no-untyped-call]
