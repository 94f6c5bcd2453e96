"""The orchestrator's level-triggered reconcile pass.

The database says what should run; the backend says what runs; one pass makes them meet:

1. observe the backend, mark workers it lost (and those silent past the heartbeat timeout) gone,
   requeue their work, and stop what nobody owns (orphans);
2. give each organization with workers or demand its namespace and GPU quota;
3. admit queued workloads (`inference.admission`);
4. place admitted workloads on free slots of ready workers, best fit first (bin-packing);
5. scale each organization's workers of each pool to demand plus the warm minimum: start the
   missing, drain the idle surplus, stop the drained.

Every step compares before it writes, so a pass is safe to repeat and a pass with nothing to do
writes nothing, to the database or to the backend.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
import uuid
from collections import defaultdict

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from inference import admission, contracts
from inference.backends.base import (
    Backend,
    BackendUnavailable,
    ObservedWorker,
    PoolSpec,
    StartRefused,
    TenantSpec,
    WorkerSpec,
)
from inference.lifecycle import (
    requeue,
    set_waiting_reason,
    set_worker_state,
    start_draining,
    transition,
)
from inference.models import (
    ACTIVE_STATES,
    ON_WORKER_STATES,
    Pipeline,
    Reservation,
    Worker,
    WorkerPool,
    WorkerState,
    Workload,
    WorkloadState,
)
from inference.tokens import hash_token, new_token
from tenants.models import Organization
from tenants.plans import limits_of

log = structlog.get_logger(__name__)

LIVE_LEAD = dt.timedelta(minutes=30)  # warm a live pool this long before a reserved shift
START_BACKOFF = dt.timedelta(seconds=60)  # after a refused or failed start of a pool's worker


@dataclasses.dataclass
class PassReport:
    admitted: int = 0
    preempted: int = 0
    placed: int = 0
    started: int = 0
    drained: int = 0
    stopped: int = 0
    lost: int = 0
    requeued: int = 0
    orphans: int = 0
    db_writes: int = 0
    seconds: float = 0.0

    @property
    def idle(self) -> bool:
        return self.db_writes == 0 and self.started == 0 and self.stopped == 0


def pool_spec(pool: WorkerPool) -> PoolSpec:
    return PoolSpec(
        name=pool.name,
        pipeline=pool.pipeline,
        model=pool.model,
        gpu_class=pool.gpu_class,
        gpus_per_worker=pool.gpus_per_worker,
        slots_per_worker=pool.slots_per_worker,
        image=pool.image,
        batch=pool.batch,
        node_selector=dict(pool.node_selector),
        tolerations=tuple(pool.tolerations),
    )


def tenant_spec(organization: Organization, pools: list[WorkerPool]) -> TenantSpec:
    """The GPU quota of an organization's namespace: enough for its plan's slots in every pool
    of each class. It is a backstop; admission keeps slots within the plan before anything is
    created, because a quota refusal does not queue in Kubernetes."""
    slots = limits_of(organization).gpu_slots
    gpus = 0
    for pool in pools:
        if pool.gpus_per_worker and pool.is_active:
            workers = min(
                pool.maximum, math.ceil(slots.get(pool.gpu_class, 0) / pool.slots_per_worker)
            )
            gpus += workers * pool.gpus_per_worker
    return TenantSpec(organization=organization.slug, gpu_quota=gpus)


class Reconciler:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # -- the pass ---------------------------------------------------------------------------

    def run_once(self) -> PassReport:
        began = time.perf_counter()
        report = PassReport()
        observed = self.backend.observe()
        pools = {pool.id: pool for pool in WorkerPool.objects.all()}
        self._collect(observed, pools, report)
        self._ensure_tenants(pools)
        result = admission.admit()
        report.admitted, report.preempted = len(result.admitted), len(result.preempted)
        report.db_writes += result.writes
        self._place(report)
        self._scale(pools, observed, report)
        report.seconds = time.perf_counter() - began
        return report

    # -- 1. observe -------------------------------------------------------------------------

    def _collect(
        self, observed: dict[str, ObservedWorker], pools: dict[int, WorkerPool], report: PassReport
    ) -> None:
        now = timezone.now()
        heartbeat_timeout = dt.timedelta(seconds=settings.INFERENCE_HEARTBEAT_TIMEOUT_S)
        start_timeout = dt.timedelta(seconds=settings.INFERENCE_START_TIMEOUT_S)
        known: set[str] = set()
        for worker in (
            Worker.objects.unscoped_dangerously()
            .exclude(state=WorkerState.GONE)
            .select_related("organization")
        ):
            known.add(worker.backend_id)
            seen = observed.get(worker.backend_id)
            if seen is None:
                if worker.state == WorkerState.STARTING and now - worker.created_at > start_timeout:
                    self._lose(worker, "StartTimeout", "The backend never ran it.", report)
                elif worker.state == WorkerState.STARTING:
                    self._restart(worker, pools[worker.pool_id], report)
                else:
                    self._lose(worker, "Vanished", "The backend no longer runs it.", report)
                continue
            if seen.phase in ("failed", "succeeded"):
                reason = seen.reason or ("Completed" if seen.phase == "succeeded" else "Error")
                self._lose(worker, reason, seen.message, report, stop=True)
                continue
            if worker.state == WorkerState.STARTING:
                if (worker.reason, worker.message) != (seen.reason, seen.message):
                    worker.reason, worker.message = seen.reason, seen.message
                    worker.save(update_fields=["reason", "message"])
                    report.db_writes += 1
                if now - worker.created_at > start_timeout:
                    detail = seen.message or "It never registered."
                    self._lose(worker, seen.reason or "StartTimeout", detail, report, stop=True)
                continue
            silent_since = worker.last_heartbeat_at or worker.ready_at or worker.created_at
            if now - silent_since > heartbeat_timeout:
                self._lose(
                    worker,
                    "HeartbeatLost",
                    f"No heartbeat for {int((now - silent_since).total_seconds())} s.",
                    report,
                    stop=True,
                )
            elif (
                worker.state == WorkerState.DRAINING
                and now - (worker.draining_since or now) > heartbeat_timeout
                and not _busy(worker)
            ):
                # Told to drain at its heartbeats but never released itself: stop it.
                self._stop(worker.backend_id, worker.organization.slug)
                _retire(worker, worker.reason or "Drained", worker.message)
                report.stopped += 1
                report.db_writes += 1
        retired = set(
            Worker.objects.unscoped_dangerously()
            .filter(state=WorkerState.GONE, backend_id__in=set(observed) - known)
            .values_list("backend_id", flat=True)
        )
        for backend_id, seen in observed.items():
            if backend_id in known:
                continue
            # A retired worker's leftovers, or one nobody knows (a crash between start and save).
            self._stop(backend_id, seen.organization)
            if backend_id in retired:
                report.stopped += 1
            else:
                report.orphans += 1
        self._requeue_stranded(report)

    def _requeue_stranded(self, report: PassReport) -> None:
        """Work left on a worker that is gone (placed just as it released itself, or whose row
        went away) would wait forever: queue it again. One read when there is none."""
        stranded = Workload.objects.unscoped_dangerously().filter(
            Q(worker__isnull=True) | Q(worker__state=WorkerState.GONE),
            state__in=ON_WORKER_STATES,
        )
        for workload in stranded:
            if requeue(
                workload,
                "worker_gone",
                "Its worker left before running it.",
                counts_as_failure=False,
            ):
                report.requeued += 1
                report.db_writes += 2

    def _stop(self, backend_id: str, organization: str) -> None:
        """Stop a worker; a refusal other than an unreachable backend is logged, not fatal, so
        that one organization's problem does not stop the pass for everyone."""
        try:
            self.backend.stop_worker(backend_id, organization)
        except BackendUnavailable:
            raise
        except Exception:
            log.exception("stop_failed", worker=backend_id, organization=organization)

    def _lose(
        self,
        worker: Worker,
        reason: str,
        message: str,
        report: PassReport,
        *,
        stop: bool = False,
    ) -> None:
        """A worker is gone: its work goes back to the queue (an attempt used up)."""
        with transaction.atomic():
            for workload in Workload.objects.for_organization(worker.organization).filter(
                worker=worker, state__in=ON_WORKER_STATES
            ):
                requeue(
                    workload,
                    "worker_lost",
                    f"Its worker was lost ({reason}).",
                    counts_as_failure=True,
                )
                report.requeued += 1
                report.db_writes += 2
            _retire(worker, reason, message)
            report.db_writes += 1
        if stop:
            self._stop(worker.backend_id, worker.organization.slug)
            report.stopped += 1
        report.lost += 1
        log.warning("worker_lost", worker=worker.backend_id, reason=reason, message=message)

    def _restart(self, worker: Worker, pool: WorkerPool, report: PassReport) -> None:
        """A starting worker the backend does not know: the start never reached it (a crash or
        an unreachable cluster between the database write and the backend call). Start it
        again with a fresh token."""
        token = new_token()
        worker.token_hash = hash_token(token)
        worker.save(update_fields=["token_hash"])
        report.db_writes += 1
        self._start_backend(worker, pool, token)
        report.started += 1

    # -- 2. tenants -------------------------------------------------------------------------

    def _ensure_tenants(self, pools: dict[int, WorkerPool]) -> None:
        org_ids = set(
            Worker.objects.unscoped_dangerously()
            .exclude(state=WorkerState.GONE)
            .values_list("organization_id", flat=True)
        ) | set(
            Workload.objects.unscoped_dangerously()
            .filter(state__in=(WorkloadState.QUEUED, *ACTIVE_STATES))
            .values_list("organization_id", flat=True)
        )
        for organization in Organization.objects.filter(id__in=org_ids):
            try:
                self.backend.ensure_tenant(tenant_spec(organization, list(pools.values())))
            except BackendUnavailable:
                raise
            except Exception:  # an RBAC 403 or a 422 for one organization: the rest go on
                log.exception("ensure_tenant_failed", organization=organization.slug)

    # -- 4. placement -----------------------------------------------------------------------

    def _place(self, report: PassReport) -> None:
        admitted = list(
            Workload.objects.unscoped_dangerously()
            .filter(state=WorkloadState.ADMITTED)
            .select_related("pool")
            .order_by("-priority", "admitted_at", "id")
        )
        if not admitted:
            return
        free = _free_slots({w.organization_id for w in admitted})
        problems: dict[tuple[uuid.UUID, int], tuple[str, str]] | None = None
        for workload in admitted:
            group = free.get((workload.organization_id, workload.pool_id), {})
            candidates = [
                (slots_free, worker_id)
                for worker_id, slots_free in group.items()
                if slots_free >= workload.slots
            ]
            if not candidates:
                if problems is None:
                    problems = _start_problems()
                code, text = problems.get(
                    (workload.organization_id, workload.pool_id),
                    ("starting_worker", "Admitted; waiting for a worker to start."),
                )
                if set_waiting_reason(workload, code, text):
                    report.db_writes += 1
                continue
            _slots_free, worker_id = min(candidates, key=lambda c: (c[0], str(c[1])))  # best fit
            if not transition(
                workload,
                WorkloadState.PLACED,
                "",
                "",
                worker_id=worker_id,
                attempts=workload.attempts + 1,
            ):
                continue  # cancelled meanwhile
            group[worker_id] -= workload.slots
            report.placed += 1
            report.db_writes += 2

    # -- 5. scaling -------------------------------------------------------------------------

    def _scale(
        self, pools: dict[int, WorkerPool], observed: dict[str, ObservedWorker], report: PassReport
    ) -> None:
        """Per organization and pool: room for every admitted workload on one worker each
        (first fit, largest first, into the free room of live workers, then into new ones),
        plus the warm minimum; idle workers beyond that drain. Work on draining workers is
        theirs to finish and is not counted again."""
        warm = _warm_keys(pools)
        refused = set(_start_problems(refused_only=True))
        workers: dict[tuple[uuid.UUID, int], list[Worker]] = defaultdict(list)
        pool_count: dict[int, int] = defaultdict(int)
        for worker in (
            Worker.objects.unscoped_dangerously()
            .exclude(state=WorkerState.GONE)
            .select_related("organization")
            .order_by("created_at")
        ):
            pool_count[worker.pool_id] += 1
            if worker.state != WorkerState.DRAINING:
                workers[(worker.organization_id, worker.pool_id)].append(worker)
        used: dict[uuid.UUID, int] = dict(
            Workload.objects.unscoped_dangerously()
            .filter(state__in=ON_WORKER_STATES, worker__isnull=False)
            .values_list("worker_id")
            .annotate(slots=Sum("slots"))
        )
        waiting: dict[tuple[uuid.UUID, int], list[int]] = defaultdict(list)
        for org_id, pool_id, slots in (
            Workload.objects.unscoped_dangerously()
            .filter(state=WorkloadState.ADMITTED)
            .values_list("organization_id", "pool_id", "slots")
        ):
            waiting[(org_id, pool_id)].append(slots)
        for key in sorted(set(workers) | set(waiting) | warm):
            pool = pools[key[1]]
            have = workers.get(key, [])
            free = {w.id: w.slots - used.get(w.id, 0) for w in have}
            new_workers = _pack(sorted(waiting.get(key, []), reverse=True), free, pool)
            spare = sum(free.values()) + sum(new_workers)
            warm_slots = pool.warm_minimum if key in warm and pool.is_active else 0
            missing = len(new_workers) + math.ceil(
                max(warm_slots - spare, 0) / pool.slots_per_worker
            )
            if not pool.is_active:
                missing = 0
            if missing:
                if key in refused:
                    continue  # backing off after the backend refused a start
                room = max(pool.maximum - pool_count[pool.id], 0)
                organization = have[0].organization if have else Organization.objects.get(id=key[0])
                for _ in range(min(missing, room)):
                    self._start(organization, pool, report)
                    pool_count[pool.id] += 1
                continue
            for worker in reversed(have):  # the newest idle workers go first
                idle = used.get(worker.id, 0) == 0 and free[worker.id] == worker.slots
                if idle and spare - worker.slots >= warm_slots:
                    if start_draining(
                        worker, "ScaleDown", "More workers than demand plus the warm minimum."
                    ):
                        report.drained += 1
                        report.db_writes += 1
                    spare -= worker.slots

    def _start(self, organization: Organization, pool: WorkerPool, report: PassReport) -> None:
        token = new_token()
        worker = Worker.objects.create(
            organization=organization,
            pool=pool,
            backend_id=f"ibw-{pool.name}-{uuid.uuid4().hex[:10]}",
            slots=pool.slots_per_worker,
            token_hash=hash_token(token),
        )
        report.db_writes += 1
        if self._start_backend(worker, pool, token):
            report.started += 1
        else:
            report.db_writes += 1
            return
        log.info("worker_started", worker=worker.backend_id, organization=organization.slug)

    def _start_backend(self, worker: Worker, pool: WorkerPool, token: str) -> bool:
        spec = WorkerSpec(
            worker_id=worker.backend_id,
            organization=worker.organization.slug,
            pool=pool_spec(pool),
            token=token,
            control_url=settings.INFERENCE_CONTROL_URL,
            **model_settings(pool.pipeline),
        )
        try:
            self.backend.start_worker(spec)
        except StartRefused as refusal:
            _retire(worker, refusal.reason, str(refusal))
            log.warning("worker_refused", worker=worker.backend_id, reason=refusal.reason)
            return False
        return True


def _pack(sizes: list[int], free: dict[uuid.UUID, int], pool: WorkerPool) -> list[int]:
    """First fit of admitted work (largest first) into the free room of live workers (best
    fit), then into new workers; returns the room left on each new worker it needs."""
    new_workers: list[int] = []
    for size in sizes:
        fits = [worker_id for worker_id, room in free.items() if room >= size]
        if fits:
            best = min(fits, key=lambda worker_id: free[worker_id])
            free[best] -= size
            continue
        for index, room in enumerate(new_workers):
            if room >= size:
                new_workers[index] -= size
                break
        else:
            new_workers.append(pool.slots_per_worker - size)
    return new_workers


_BENIGN_ENDINGS = ("", "ScaleDown", "Drained", "Released", "Preempted")


def _start_problems(*, refused_only: bool = False) -> dict[tuple[uuid.UUID, int], tuple[str, str]]:
    """Why admitted work of an (organization, pool) is not running yet, from its workers: a
    start the backend refused within the back-off, or a starting worker the cluster cannot
    schedule or pull — so that the workload says so instead of just "waiting"."""
    problems: dict[tuple[uuid.UUID, int], tuple[str, str]] = {}
    since = timezone.now() - START_BACKOFF
    refused = (
        Worker.objects.unscoped_dangerously()
        .filter(state=WorkerState.GONE, gone_at__gte=since, ready_at__isnull=True)
        .exclude(reason__in=_BENIGN_ENDINGS)
        .values_list("organization_id", "pool_id", "reason", "message")
    )
    for org_id, pool_id, reason, message in refused:
        problems[(org_id, pool_id)] = (
            "start_refused",
            f"Admitted; the cluster refused to start a worker ({reason}: {message}); "
            "trying again shortly.",
        )
    if refused_only:
        return problems
    stuck = (
        Worker.objects.unscoped_dangerously()
        .filter(state=WorkerState.STARTING)
        .exclude(reason="")
        .values_list("organization_id", "pool_id", "reason", "message")
    )
    for org_id, pool_id, reason, message in stuck:
        problems.setdefault(
            (org_id, pool_id),
            ("worker_pending", f"Admitted; its worker cannot start yet ({reason}: {message})."),
        )
    return problems


def _warm_keys(pools: dict[int, WorkerPool]) -> set[tuple[uuid.UUID, int]]:
    """Organizations active in a pool with a warm minimum: a workload there within the warm
    idle window, or (live pools) a reservation of its class starting soon or running now."""
    now = timezone.now()
    warm_pools = [pool for pool in pools.values() if pool.warm_minimum and pool.is_active]
    keys: set[tuple[uuid.UUID, int]] = set()
    if not warm_pools:
        return keys
    since = now - dt.timedelta(seconds=settings.INFERENCE_WARM_IDLE_S)
    recent = (
        Workload.objects.unscoped_dangerously()
        .filter(pool__in=warm_pools)
        .filter(Q(created_at__gte=since) | Q(state__in=(WorkloadState.QUEUED, *ACTIVE_STATES)))
        .values_list("organization_id", "pool_id")
        .distinct()
    )
    keys.update(recent)
    live_classes = {pool.gpu_class for pool in warm_pools if pool.pipeline == Pipeline.LIVE}
    if live_classes:
        for org_id, gpu_class in (
            Reservation.objects.unscoped_dangerously()
            .filter(gpu_class__in=live_classes, starts_at__lt=now + LIVE_LEAD, ends_at__gt=now)
            .values_list("organization_id", "gpu_class")
            .distinct()
        ):
            for pool in warm_pools:
                if pool.pipeline == Pipeline.LIVE and pool.gpu_class == gpu_class:
                    keys.add((org_id, pool.id))
    return keys


def _busy(worker: Worker) -> bool:
    return (
        Workload.objects.for_organization(worker.organization)
        .filter(worker=worker, state__in=ON_WORKER_STATES)
        .exists()
    )


def _retire(worker: Worker, reason: str, message: str) -> None:
    set_worker_state(worker, WorkerState.GONE, reason, message)


def _free_slots(
    organization_ids: set[uuid.UUID],
) -> dict[tuple[uuid.UUID, int], dict[uuid.UUID, int]]:
    """Free slots of every ready worker of these organizations: (org, pool) → worker → slots."""
    ready = Worker.objects.unscoped_dangerously().filter(
        organization_id__in=organization_ids, state=WorkerState.READY
    )
    free: dict[tuple[uuid.UUID, int], dict[uuid.UUID, int]] = defaultdict(dict)
    for worker_id, org_id, pool_id, slots in ready.values_list(
        "id", "organization_id", "pool_id", "slots"
    ):
        free[(org_id, pool_id)][worker_id] = slots
    for worker_id, org_id, pool_id, slots in (
        Workload.objects.unscoped_dangerously()
        .filter(worker__in=ready, state__in=ON_WORKER_STATES)
        .values_list("worker_id", "organization_id", "pool_id")
        .annotate(slots=Sum("slots"))
    ):
        group = free.get((org_id, pool_id))
        if group is not None and worker_id in group:
            group[worker_id] -= slots
    return free


def model_settings(pipeline: str) -> dict[str, tuple[tuple[str, str], ...]]:
    """What a pipeline's workers are told about their model backends: conversation workers
    get the language model endpoint when one is configured (its key as a secret)."""
    if pipeline != Pipeline.CONVERSE or not settings.INFERENCE_LLM_URL:
        return {}
    environment = (
        (contracts.ENV_LLM_URL, settings.INFERENCE_LLM_URL),
        (contracts.ENV_LLM_MODEL, settings.INFERENCE_LLM_MODEL),
    )
    secrets = ((contracts.ENV_LLM_API_KEY, settings.INFERENCE_LLM_API_KEY),)
    return {
        "environment": environment,
        "secrets": secrets if settings.INFERENCE_LLM_API_KEY else (),
    }
