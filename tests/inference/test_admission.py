"""Admission: priorities, fair share, quotas, GPU-hours and preemption.

Real: the database and the admission pass. Simulated: workers are rows put in place by the test
(through the reconciler with a fake backend), not processes.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from inference import admission, capacity, protocol, services
from inference.models import (
    Priority,
    UsageReport,
    Worker,
    WorkerPool,
    WorkerState,
    Workload,
    WorkloadEvent,
    WorkloadState,
)
from tests.factories import OrganizationFactory
from tests.inference.support import register_all


def _submit(org, pool, kind="live", **fields):
    workload, _created = services.submit(org, kind=kind, spec={}, pool_name=pool.name, **fields)
    return workload


def _states(*workloads) -> list[str]:
    for workload in workloads:
        workload.refresh_from_db()
    return [w.state for w in workloads]


def test_higher_priorities_are_admitted_first(org_a, pool):
    pool.maximum = 1
    pool.slots_per_worker = 2
    pool.save()
    build = _submit(org_a, pool, kind="build")
    session = _submit(org_a, pool, kind="session")
    public = _submit(org_a, pool, public_service=True)
    admission.admit()
    assert _states(public, session, build) == ["admitted", "admitted", "queued"]
    assert public.priority == Priority.PUBLIC_SERVICE
    assert build.reason_code == "quota"  # trial plan: 2 h100 slots, both admitted above


def test_every_waiting_workload_says_why(org_a, pool):
    waiting = [_submit(org_a, pool) for _ in range(3)]
    result = admission.admit()
    assert len(result.admitted) == 2
    (third,) = [w for w in waiting if _states(w) == ["queued"]]
    assert third.reason_code == "quota"
    assert "allows 2 h100 slots" in third.reason


def test_a_second_pass_rewrites_no_reason(org_a, pool):
    for _ in range(3):
        _submit(org_a, pool)
    admission.admit()
    assert admission.admit().writes == 0


def test_fair_share_is_weighted_by_plan(pool, db):
    """Among equal priorities the organization holding the least per plan weight goes first:
    trial (weight 1) and enterprise (weight 16) each hold slots; the order follows held/weight."""
    trial = OrganizationFactory(plan="trial")
    enterprise = OrganizationFactory(plan="enterprise")
    older = _submit(trial, pool, kind="session")
    newer = _submit(enterprise, pool, kind="session")
    queued = [older, newer]
    for workload in queued:
        workload.organization  # noqa: B018 - loaded as admission loads it

    def order(trial_holds: int, enterprise_holds: int) -> list:
        snapshot = admission._Snapshot(
            used={}, reserved_now={}, org_free={}, startable={}, freeing={},
            held_total={trial.id: trial_holds, enterprise.id: enterprise_holds}, gpu_hours={},
        )  # fmt: skip
        return [w.id for w in admission._fair_order(queued, snapshot)]

    assert order(2, 2) == [newer.id, older.id]  # 2/16 < 2/1
    assert order(2, 40) == [older.id, newer.id]  # 40/16 > 2/1
    assert order(0, 0) == [older.id, newer.id]  # a tie goes to the older workload


def test_reservations_active_now_hold_quota(org_a, pool):
    now = timezone.now()
    capacity.reserve(
        org_a,
        gpu_class="h100",
        slots=2,
        starts_at=now - dt.timedelta(minutes=5),
        ends_at=now + dt.timedelta(hours=1),
        holder="shift:1",
    )
    walk_in = _submit(org_a, pool, kind="session")
    admission.admit()
    assert _states(walk_in) == ["queued"]
    assert "2 reserved for shifts now" in walk_in.reason


def test_the_reserved_workload_uses_its_own_reservation(org_a, pool):
    now = timezone.now()
    reservation, answer = capacity.reserve(
        org_a,
        gpu_class="h100",
        slots=2,
        starts_at=now - dt.timedelta(minutes=5),
        ends_at=now + dt.timedelta(hours=1),
        holder="shift:2",
    )
    assert answer.ok
    shift = _submit(org_a, pool, slots=2, reservation=reservation)
    admission.admit()
    assert _states(shift) == ["admitted"]


def test_gpu_hours_used_up_make_work_wait(org_a, pool):
    done = Workload.objects.create(
        organization=org_a, kind="live", pool=pool, priority=40, state="succeeded"
    )
    UsageReport.objects.create(
        organization=org_a, report_id="r1", workload=done, gpu_class="h100",
        gpu_seconds=51 * 3600,
    )  # fmt: skip
    waiting = _submit(org_a, pool)
    admission.admit()
    assert _states(waiting) == ["queued"]
    assert waiting.reason_code == "gpu_hours"


def test_higher_priority_preempts_own_lower_priority_work(org_a, pool, backend, reconciler):
    pool.maximum = 1
    pool.slots_per_worker = 2
    pool.save()
    renders = [_submit(org_a, pool, kind="render") for _ in range(2)]
    reconciler.run_once()
    register_all(backend)
    reconciler.run_once()
    assert _states(*renders) == ["placed", "placed"]
    live = _submit(org_a, pool)
    result = admission.admit()
    assert [w.id for w in result.admitted] == [live.id]
    assert len(result.preempted) == 1
    (victim,) = result.preempted
    victim.refresh_from_db()
    assert victim.state == WorkloadState.QUEUED
    assert "Preempted by a higher-priority live" in victim.reason
    events = WorkloadEvent.objects.for_organization(org_a).filter(workload=victim)
    assert "preempted" in list(events.values_list("state", flat=True))


def test_preemption_across_organizations_frees_a_whole_worker(pool, backend, reconciler, db):
    pool.maximum = 1
    pool.save()
    renderer = OrganizationFactory(plan="standard")
    bureau = OrganizationFactory(plan="standard")
    render = _submit(renderer, pool, kind="render")
    reconciler.run_once()
    register_all(backend)
    reconciler.run_once()
    live = _submit(bureau, pool, public_service=True)
    reconciler.run_once()
    assert _states(render, live) == ["queued", "queued"]
    assert live.reason_code == "capacity_freeing"
    assert render.reason_code == "preempted"
    # The drained worker is told so at its heartbeat, releases itself and is cleaned up; the
    # pool now has room for the bureau.
    drained = Worker.objects.for_organization(renderer).get()
    assert drained.state == WorkerState.DRAINING
    protocol.release(drained)
    reconciler.run_once()
    assert _states(render, live) == ["queued", "admitted"]
    assert render.reason_code == "capacity"  # it does not take back the worker it lost
    register_all(backend)
    reconciler.run_once()
    assert _states(render, live) == ["queued", "placed"]
    assert live.worker.organization_id == bureau.id
    assert Worker.objects.for_organization(renderer).get().state == WorkerState.GONE


def test_equal_priority_is_never_preempted(pool, backend, reconciler, db):
    pool.maximum = 1
    pool.save()
    first = OrganizationFactory(plan="standard")
    second = OrganizationFactory(plan="standard")
    running = _submit(first, pool)
    reconciler.run_once()
    register_all(backend)
    reconciler.run_once()
    waiting = _submit(second, pool)
    reconciler.run_once()
    assert _states(running, waiting) == ["placed", "queued"]
    assert waiting.reason_code == "capacity"


def test_never_beyond_quota_under_many_submissions(org_a, pool, backend, reconciler):
    for _ in range(10):
        _submit(org_a, pool, kind="session")
    for _ in range(4):
        reconciler.run_once()
        register_all(backend)
    active = Workload.objects.for_organization(org_a).filter(
        state__in=("admitted", "placed", "running")
    )
    assert sum(w.slots for w in active) == capacity.organization_quota(org_a, "h100") == 2


def test_an_inactive_pool_keeps_work_queued_with_a_reason(org_a, pool):
    workload = _submit(org_a, pool)
    WorkerPool.objects.filter(id=pool.id).update(is_active=False)
    admission.admit()
    assert _states(workload) == ["queued"]
    assert workload.reason_code == "pool_inactive"


def test_a_partly_claimed_reservation_still_holds_the_rest(org_a, pool):
    now = timezone.now()
    reservation, _ = capacity.reserve(
        org_a, gpu_class="h100", slots=2, starts_at=now - dt.timedelta(minutes=1),
        ends_at=now + dt.timedelta(hours=1), holder="shift:partly",
    )  # fmt: skip
    shift = _submit(org_a, pool, slots=1, reservation=reservation)
    walk_in = _submit(org_a, pool, kind="session")
    admission.admit()
    assert _states(shift, walk_in) == ["admitted", "queued"]
    assert "1 reserved for shifts now" in walk_in.reason


def test_a_future_reservation_does_not_lend_its_slots_now(org_a, pool):
    now = timezone.now()
    later, _ = capacity.reserve(
        org_a, gpu_class="h100", slots=2, starts_at=now + dt.timedelta(hours=2),
        ends_at=now + dt.timedelta(hours=3), holder="shift:later",
    )  # fmt: skip
    capacity.reserve(
        org_a, gpu_class="h100", slots=2, starts_at=now - dt.timedelta(minutes=1),
        ends_at=now + dt.timedelta(hours=1), holder="shift:now",
    )  # fmt: skip
    early = _submit(org_a, pool, slots=2, reservation=later)
    admission.admit()
    assert _states(early) == ["queued"]  # the current shift's 2 slots are not its to take


def test_many_waiting_behind_one_cross_organization_drain_drain_one_worker(
    pool, backend, reconciler, db
):
    pool.maximum = 1
    pool.save()
    renderer = OrganizationFactory(plan="standard")
    bureau = OrganizationFactory(plan="standard")
    _submit(renderer, pool, kind="render")
    reconciler.run_once()
    register_all(backend)
    reconciler.run_once()
    waiting = [_submit(bureau, pool, public_service=True) for _ in range(3)]
    result = admission.admit()
    assert len(result.drained) == 1
    assert _states(*waiting) == ["queued"] * 3
    assert {w.reason_code for w in waiting} == {"capacity_freeing"}


def test_preemption_reasons_say_nothing_about_the_other_organization(pool, backend, reconciler, db):
    pool.maximum = 1
    pool.save()
    renderer = OrganizationFactory(plan="standard")
    bureau = OrganizationFactory(plan="standard")
    render = _submit(renderer, pool, kind="render")
    reconciler.run_once()
    register_all(backend)
    reconciler.run_once()
    _submit(bureau, pool, public_service=True)
    admission.admit()
    render.refresh_from_db()
    assert render.reason.startswith("Preempted by higher-priority work.")
    assert "live" not in render.reason.lower() and bureau.slug not in render.reason
