"""Admission: which queued workloads may take GPU slots now, and why the others wait.

Order: priority first (24/7 public service > scheduled live > sessions > render > build); among
workloads of one priority, fair share — the organization holding the fewest slots for its plan's
weight goes first, oldest workload first within it. Never beyond an organization's quota: slots
of its reservations active now count as held, so that a shift's capacity is there at air time.
A workload that cannot fit may preempt lower priorities: first its own organization's work on
its own workers, then whole idle or lower-priority workers of other organizations in the same
pool (a worker is a tenant boundary, so freeing capacity across organizations means freeing a
worker). Preempted workloads are requeued and told why.

Other packages may hold work back without inference importing them: the setting
`INFERENCE_ADMISSION_GATE` names a function called once per pass that returns a gate, asked
about each queued workload before anything else is weighed; it answers None, or a reason code
and a sentence, and the workload then waits with them (billing's budget hard stop).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db.models import Count, F, Max, Q, Sum
from django.utils import timezone
from django.utils.module_loading import import_string

from inference.lifecycle import requeue, set_waiting_reason, start_draining, transition
from inference.models import (
    ACTIVE_STATES,
    ON_WORKER_STATES,
    GpuClass,
    Reservation,
    UsageReport,
    Worker,
    WorkerPool,
    WorkerState,
    Workload,
    WorkloadState,
)
from tenants.models import Organization
from tenants.plans import limits_of

OrgClass = tuple[uuid.UUID, str]  # (organization id, GPU class)
OrgPool = tuple[uuid.UUID, int]  # (organization id, pool id)
# (organization, workload) -> None to go on weighing it, or (reason code, sentence) to hold it.
Gate = Callable[[Organization, Workload], tuple[str, str] | None]


@dataclasses.dataclass
class AdmissionResult:
    admitted: list[Workload] = dataclasses.field(default_factory=list)
    preempted: list[Workload] = dataclasses.field(default_factory=list)
    drained: list[Worker] = dataclasses.field(default_factory=list)
    waiting: dict[str, str] = dataclasses.field(default_factory=dict)  # workload id → reason code
    writes: int = 0


@dataclasses.dataclass
class _Snapshot:
    """What admission needs to know, read in a handful of aggregate queries."""

    used: dict[OrgClass, int]  # active slots per organization and class
    reserved_now: dict[OrgClass, int]  # reserved slots active now, not yet taken by a workload
    org_free: dict[OrgPool, int]  # free slots on an organization's live workers of a pool
    startable: dict[int, int]  # workers each pool may still start
    freeing: dict[int, int]  # workers of each pool draining with nothing on them
    held_total: dict[uuid.UUID, int]  # active slots per organization (fair share)
    gpu_hours: dict[uuid.UUID, float]
    # Slots of each reservation active now that no active workload has taken yet.
    unclaimed: dict[uuid.UUID, int] = dataclasses.field(default_factory=dict)
    # Slots of workers drained this pass for an organization's work (capacity on its way).
    incoming: dict[OrgPool, int] = dataclasses.field(default_factory=lambda: defaultdict(int))


def _snapshot(organization_ids: set[uuid.UUID], pools: dict[int, WorkerPool]) -> _Snapshot:
    now = timezone.now()
    active = Workload.objects.unscoped_dangerously().filter(state__in=ACTIVE_STATES)
    used: dict[OrgClass, int] = defaultdict(int)
    held_total: dict[uuid.UUID, int] = defaultdict(int)
    for org_id, pool_id, slots in active.values_list("organization_id", "pool_id").annotate(
        slots=Sum("slots")
    ):
        used[(org_id, pools[pool_id].gpu_class)] += slots
        held_total[org_id] += slots

    # A reservation holds its slots until workloads take them, one slot at a time.
    claimed = dict(
        active.filter(reservation__isnull=False)
        .values_list("reservation_id")
        .annotate(slots=Sum("slots"))
    )
    reserved_now: dict[OrgClass, int] = defaultdict(int)
    unclaimed: dict[uuid.UUID, int] = {}
    for reservation_id, org_id, gpu_class, slots in (
        Reservation.objects.unscoped_dangerously()
        .filter(organization_id__in=organization_ids, starts_at__lte=now, ends_at__gt=now)
        .values_list("id", "organization_id", "gpu_class", "slots")
    ):
        unclaimed[reservation_id] = max(slots - claimed.get(reservation_id, 0), 0)
        reserved_now[(org_id, gpu_class)] += unclaimed[reservation_id]

    live = Worker.objects.unscoped_dangerously().exclude(state=WorkerState.GONE)
    org_free: dict[OrgPool, int] = defaultdict(int)
    for org_id, pool_id, slots in (
        live.exclude(state=WorkerState.DRAINING)
        .values_list("organization_id", "pool_id")
        .annotate(slots=Sum("slots"))
    ):
        org_free[(org_id, pool_id)] += slots
    # Work on draining workers is theirs to finish: it takes no room on the others.
    for org_id, pool_id, slots in (
        active.exclude(worker__state=WorkerState.DRAINING)
        .values_list("organization_id", "pool_id")
        .annotate(slots=Sum("slots"))
    ):
        org_free[(org_id, pool_id)] -= slots

    counts = dict(live.values_list("pool_id").annotate(n=Count("id")))
    startable = {pid: max(pool.maximum - counts.get(pid, 0), 0) for pid, pool in pools.items()}
    freeing = dict(
        live.filter(state=WorkerState.DRAINING)
        .annotate(busy=Count("workloads", filter=Q(workloads__state__in=ON_WORKER_STATES)))
        .filter(busy=0)
        .values_list("pool_id")
        .annotate(n=Count("id"))
    )
    # Admitted work waiting for a worker has a claim on the workers its pool may still start.
    for (org_id, pool_id), free in list(org_free.items()):
        if free < 0:
            needed = math.ceil(-free / pools[pool_id].slots_per_worker)
            startable[pool_id] -= needed
            org_free[(org_id, pool_id)] += needed * pools[pool_id].slots_per_worker
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    gpu_hours = {
        org_id: float(seconds or 0.0) / 3600.0
        for org_id, seconds in UsageReport.objects.unscoped_dangerously()
        .filter(organization_id__in=organization_ids, reported_at__gte=month_start)
        .exclude(gpu_class=GpuClass.CPU)
        .values_list("organization_id")
        .annotate(seconds=Sum("gpu_seconds"))
    }
    return _Snapshot(
        used,
        reserved_now,
        org_free,
        startable,
        freeing,
        held_total,
        defaultdict(float, gpu_hours),
        unclaimed,
    )


def _fair_order(queued: list[Workload], snapshot: _Snapshot) -> Iterable[Workload]:
    """Priority first; within a priority, the organization with the least held per weight."""
    by_priority: dict[int, dict[uuid.UUID, list[Workload]]] = defaultdict(lambda: defaultdict(list))
    for workload in queued:  # already oldest first
        by_priority[workload.priority][workload.organization_id].append(workload)
    for priority in sorted(by_priority, reverse=True):
        per_org = by_priority[priority]
        heap = []
        for org_id, items in per_org.items():
            weight = limits_of(items[0].organization).share_weight
            heap.append((snapshot.held_total[org_id] / weight, items[0].created_at, org_id, 0))
        heapq.heapify(heap)
        while heap:
            _share, _at, org_id, index = heapq.heappop(heap)
            items = per_org[org_id]
            workload = items[index]
            yield workload
            if index + 1 < len(items):
                weight = limits_of(workload.organization).share_weight
                share = snapshot.held_total[org_id] / weight
                heapq.heappush(heap, (share, items[index + 1].created_at, org_id, index + 1))


def _reserved_for_others(workload: Workload, gpu_class: str, snapshot: _Snapshot) -> int:
    """Slots of the organization's reservations active now that this workload may not use:
    all of them, less what its own reservation still holds for it."""
    reserved = snapshot.reserved_now[(workload.organization_id, gpu_class)]
    if workload.reservation_id is not None:
        reserved -= min(workload.slots, snapshot.unclaimed.get(workload.reservation_id, 0))
    return reserved


def _wait(result: AdmissionResult, workload: Workload, code: str, reason: str) -> None:
    result.waiting[str(workload.id)] = code
    if set_waiting_reason(workload, code, reason):
        result.writes += 1


def _preempt_own(
    workload: Workload, pool: WorkerPool, quota: int, snapshot: _Snapshot, result: AdmissionResult
) -> bool:
    """Make room within the organization: requeue its own lower-priority work of the same GPU
    class (lowest priority, most recent first) until the workload fits its quota and a worker
    of its pool. Does nothing unless that is enough."""
    org_id, gpu_class = workload.organization_id, pool.gpu_class
    reserved = _reserved_for_others(workload, gpu_class, snapshot)
    used = snapshot.used[(org_id, gpu_class)]
    victims = list(
        Workload.objects.for_organization(workload.organization)
        .filter(pool__gpu_class=gpu_class, state__in=ACTIVE_STATES)
        .filter(priority__lt=workload.priority)
        .order_by("priority", "-admitted_at")
    )
    if used + reserved + workload.slots <= quota:
        # Only room is short: work in other pools of the class would free nothing here.
        victims = [victim for victim in victims if victim.pool_id == pool.id]
    free = snapshot.org_free[(org_id, pool.id)]
    startable = snapshot.startable[pool.id] > 0
    chosen: list[Workload] = []
    for victim in victims:
        if used + reserved + workload.slots <= quota and (free >= workload.slots or startable):
            break
        chosen.append(victim)
        used -= victim.slots
        if victim.pool_id == pool.id:
            free += victim.slots
    if used + reserved + workload.slots > quota or (free < workload.slots and not startable):
        return False
    for victim in chosen:
        _requeue_preempted(victim, workload, snapshot, result)
        if victim.pool_id == pool.id:
            snapshot.org_free[(org_id, pool.id)] += victim.slots
    return True


def _requeue_preempted(
    victim: Workload, by: Workload, snapshot: _Snapshot, result: AdmissionResult
) -> None:
    if victim.organization_id == by.organization_id:
        reason = f"Preempted by a higher-priority {by.get_kind_display().lower()} workload."
    else:  # nothing about another organization's work
        reason = "Preempted by higher-priority work."
    if not requeue(victim, "preempted", reason, counts_as_failure=False):
        return  # it finished or was cancelled meanwhile: its slots are free anyway
    gpu_class = by.pool.gpu_class
    snapshot.used[(victim.organization_id, gpu_class)] -= victim.slots
    snapshot.held_total[victim.organization_id] -= victim.slots
    result.preempted.append(victim)
    result.writes += 2


def _free_a_worker(workload: Workload, snapshot: _Snapshot, result: AdmissionResult) -> bool:
    """Drain one worker of another organization in the pool that runs only lower priorities
    (an idle one first), requeueing its work. The slot appears once that worker is gone."""
    # Organizations with work of equal or higher priority in the pool keep all their workers
    # there (a starting worker is already promised to admitted work).
    protected = (
        Workload.objects.unscoped_dangerously()
        .filter(pool_id=workload.pool_id, state__in=ACTIVE_STATES)
        .filter(priority__gte=workload.priority)
        .values("organization_id")
    )
    candidates = (
        Worker.objects.unscoped_dangerously()
        .filter(pool_id=workload.pool_id, state__in=(WorkerState.READY, WorkerState.STARTING))
        .exclude(organization_id=workload.organization_id)
        .exclude(organization_id__in=protected)
        .annotate(
            top=Max("workloads__priority", filter=Q(workloads__state__in=ON_WORKER_STATES)),
        )
        .order_by(F("top").asc(nulls_first=True), "-created_at")
    )
    worker = next(iter(candidates), None)
    if worker is None:
        return False
    # Its work goes back to the queue, and so does the organization's lower-priority work that
    # was admitted to wait for room in this pool (it would claim the freed worker back).
    for victim in Workload.objects.for_organization(worker.organization).filter(
        Q(worker=worker, state__in=ON_WORKER_STATES)
        | Q(pool_id=workload.pool_id, state=WorkloadState.ADMITTED, priority__lt=workload.priority)
    ):
        _requeue_preempted(victim, workload, snapshot, result)
    start_draining(
        worker,
        "Preempted",
        "Drained to make room for higher-priority work of another organization.",
    )
    snapshot.org_free[(worker.organization_id, worker.pool_id)] -= worker.slots
    snapshot.incoming[(workload.organization_id, workload.pool_id)] += worker.slots
    result.drained.append(worker)
    result.writes += 1
    return True


def admit() -> AdmissionResult:
    """One admission pass over every queued workload. Writes only what changes."""
    result = AdmissionResult()
    queued = list(
        Workload.objects.unscoped_dangerously()
        .filter(state=WorkloadState.QUEUED)
        .select_related("organization", "pool")
        .order_by("created_at", "id")
    )
    if not queued:
        return result
    pools = {pool.id: pool for pool in WorkerPool.objects.all()}
    snapshot = _snapshot({w.organization_id for w in queued}, pools)
    gate = _gate()
    for workload in _fair_order(queued, snapshot):
        _consider(workload, pools[workload.pool_id], snapshot, result, gate)
    return result


def _gate() -> Gate | None:
    """This pass's gate, from the function `INFERENCE_ADMISSION_GATE` names (none when empty)."""
    path: str = settings.INFERENCE_ADMISSION_GATE
    if not path:
        return None
    make: Callable[[], Gate] = import_string(path)
    return make()


def _consider(
    workload: Workload,
    pool: WorkerPool,
    snapshot: _Snapshot,
    result: AdmissionResult,
    gate: Gate | None = None,
) -> None:
    organization: Organization = workload.organization
    org_id, gpu_class = workload.organization_id, pool.gpu_class
    if not pool.is_active:
        _wait(result, workload, "pool_inactive", f"Pool {pool.name} is switched off.")
        return
    if workload.slots > pool.slots_per_worker:
        transition(
            workload,
            WorkloadState.FAILED,
            "too_large",
            f"Needs {workload.slots} slots; a {pool.name} worker has {pool.slots_per_worker}.",
        )
        result.writes += 2
        return
    held_back = gate(organization, workload) if gate is not None else None
    if held_back is not None:
        _wait(result, workload, *held_back)
        return
    limits = limits_of(organization)
    quota = limits.gpu_slots.get(gpu_class, 0)
    if gpu_class != GpuClass.CPU and snapshot.gpu_hours[org_id] >= limits.gpu_hours_per_month:
        _wait(
            result,
            workload,
            "gpu_hours",
            f"Waiting: this month's {limits.gpu_hours_per_month} GPU-hours are used up.",
        )
        return
    held = snapshot.used[(org_id, gpu_class)]
    reserved = _reserved_for_others(workload, gpu_class, snapshot)
    if held + reserved + workload.slots > quota and not _preempt_own(
        workload, pool, quota, snapshot, result
    ):
        _wait(
            result,
            workload,
            "quota",
            f"Waiting: the plan allows {quota} {gpu_class} slots at once; {held} are in use "
            f"and {reserved} reserved for shifts now.",
        )
        return
    if not _fits(workload, pool, snapshot) and not _make_room(
        workload, pool, quota, snapshot, result
    ):
        return
    if not transition(workload, WorkloadState.ADMITTED, "", ""):
        return  # cancelled meanwhile
    snapshot.org_free[(org_id, pool.id)] -= workload.slots
    snapshot.used[(org_id, gpu_class)] += workload.slots
    snapshot.held_total[org_id] += workload.slots
    if workload.reservation_id in snapshot.unclaimed:
        taken = min(workload.slots, snapshot.unclaimed[workload.reservation_id])
        snapshot.unclaimed[workload.reservation_id] -= taken
        snapshot.reserved_now[(org_id, gpu_class)] -= taken
    result.admitted.append(workload)
    result.writes += 2


def _make_room(
    workload: Workload,
    pool: WorkerPool,
    quota: int,
    snapshot: _Snapshot,
    result: AdmissionResult,
) -> bool:
    """No room on the organization's workers and none the pool may start: preempt its own
    lower priorities, or wait for a worker coming free, or drain one of another organization.
    True when the workload may be admitted now; otherwise it waits, with the reason."""
    key = (workload.organization_id, pool.id)
    if _preempt_own(workload, pool, quota, snapshot, result) and _fits(workload, pool, snapshot):
        return True
    if snapshot.incoming[key] >= workload.slots:
        snapshot.incoming[key] -= workload.slots  # a worker drained for it is on its way
        _wait(result, workload, "capacity_freeing", "Waiting: a worker is being freed for it.")
    elif snapshot.freeing.get(pool.id, 0) > 0:
        snapshot.freeing[pool.id] -= 1
        snapshot.incoming[key] += pool.slots_per_worker - workload.slots
        _wait(result, workload, "capacity_freeing", "Waiting: a worker is being freed for it.")
    elif _free_a_worker(workload, snapshot, result):
        snapshot.incoming[key] -= workload.slots
        _wait(
            result,
            workload,
            "capacity_freeing",
            "Waiting: lower-priority work is being moved to make room.",
        )
    else:
        _wait(
            result,
            workload,
            "capacity",
            f"Waiting: pool {pool.name} has no free capacity for work of this priority now.",
        )
    return False


def _fits(workload: Workload, pool: WorkerPool, snapshot: _Snapshot) -> bool:
    """Room on the organization's workers of the pool, or a worker the pool may still start."""
    key = (workload.organization_id, pool.id)
    if snapshot.org_free[key] >= workload.slots:
        return True
    if snapshot.startable[pool.id] > 0:
        snapshot.startable[pool.id] -= 1
        snapshot.org_free[key] += pool.slots_per_worker
        return True
    return False


def workers_needed(slots: int, slots_per_worker: int) -> int:
    return math.ceil(slots / slots_per_worker) if slots > 0 else 0
