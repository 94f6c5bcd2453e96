"""Exactly once: a tick that runs twice, or two ticks racing on the same due shifts, start each
shift once — one workload, one `shift.warm` (or `shift.on_duty`) entry, attempt 1.

Real: the tick (`duty.tick`), inference's submit, the audit log; the races run two ticks in two
threads, each on its own database connection, against PostgreSQL's row locks (SELECT … FOR UPDATE
SKIP LOCKED). Nothing is simulated.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from django.utils import timezone

from inference.models import Workload
from scheduling import duty
from scheduling.models import Shift, ShiftState
from tenants.models import AuditEntry, Organization
from tests.races import in_thread, require_row_locks
from tests.scheduling import duty_world as world

START = timezone.now().replace(second=0, microsecond=0) + dt.timedelta(hours=1)
LIVE, DESKS = 24, 6


def _shifts(organization: Organization) -> list[Shift]:
    made = [world.live_shift(organization, START) for _ in range(LIVE)]
    return made + [world.desk_shift(organization, START - duty.warmup()) for _ in range(DESKS)]


def _started_once(organization: Organization, shifts: list[Shift]) -> None:
    entries = AuditEntry.objects.for_organization(organization).filter(
        object_type="scheduling.shift"
    )
    per_shift = Counter(entries.values_list("object_id", flat=True))
    assert per_shift == {str(shift.pk): 1 for shift in shifts}
    assert Counter(entries.values_list("action", flat=True)) == {
        "shift.warm": LIVE,
        "shift.on_duty": DESKS,
    }
    workloads = Workload.objects.for_organization(organization)
    assert workloads.count() == LIVE
    assert sorted(workloads.values_list("idempotency_key", flat=True)) == sorted(
        f"shift:{shift.pk}:1" for shift in shifts[:LIVE]
    )
    states = Shift.objects.for_organization(organization).values_list("state", "attempts")
    assert Counter(states) == {(ShiftState.WARMING, 1): LIVE, (ShiftState.ON_DUTY, 0): DESKS}


def test_a_tick_that_runs_twice_starts_each_shift_once(org_a):
    shifts = _shifts(org_a)
    now = START - duty.warmup()

    first = duty.tick(now, batch=7)
    second = duty.tick(now, batch=7)

    assert first.outcomes == {"warming": LIVE, "on_duty": DESKS}
    assert second.shifts == 0
    _started_once(org_a, shifts)


@pytest.mark.django_db(transaction=True)
def test_a_tick_holding_its_batch_is_skipped_by_another_not_waited_for(org_a, monkeypatch):
    """Tick A locks its first batch and stops in the middle of it; tick B, racing, must take
    every other due shift and none of A's; then A finishes its batch. Each shift starts once."""
    require_row_locks()
    shifts = _shifts(org_a)
    now = START - duty.warmup()
    a_holds, b_done = threading.Event(), threading.Event()
    advance = duty._advance

    def advance_then_wait(shift: Shift, at: dt.datetime) -> str | None:
        outcome = advance(shift, at)
        if threading.current_thread().name == "A" and not a_holds.is_set():
            a_holds.set()
            assert b_done.wait(timeout=120), "tick B never finished"
        return outcome

    monkeypatch.setattr(duty, "_advance", advance_then_wait)
    batch = 10
    a, a_out = in_thread("A", lambda: duty.tick(now, batch=batch))

    def b_tick() -> duty.TickResult:
        assert a_holds.wait(timeout=120), "tick A never locked its batch"
        try:
            return duty.tick(now, batch=batch)
        finally:
            b_done.set()

    b, b_out = in_thread("B", b_tick)
    for thread in (a, b):
        thread.start()
    for thread in (a, b):
        thread.join(timeout=300)
    assert "error" not in a_out and "error" not in b_out, (a_out, b_out)

    # B skipped A's locked batch instead of waiting for it, and did all the rest.
    assert a_out["result"].shifts == batch
    assert b_out["result"].shifts == LIVE + DESKS - batch
    _started_once(org_a, shifts)


@pytest.mark.django_db(transaction=True)
def test_two_ticks_racing_on_the_same_due_shifts_start_each_once(org_a):
    require_row_locks()
    shifts = _shifts(org_a)
    now = START - duty.warmup()
    barrier = threading.Barrier(2)

    def racing() -> duty.TickResult:
        barrier.wait(timeout=60)
        return duty.tick(now, batch=3)

    threads = [in_thread(name, racing) for name in ("A", "B")]
    for thread, _out in threads:
        thread.start()
    for thread, _out in threads:
        thread.join(timeout=300)
    results = [out["result"] for _thread, out in threads]

    assert sum(result.shifts for result in results) == LIVE + DESKS
    assert sum((result.outcomes for result in results), Counter()) == {
        "warming": LIVE,
        "on_duty": DESKS,
    }
    _started_once(org_a, shifts)
