"""Two schedule changes at once cannot overbook a station or a hire between them.

Real: `schedules.create_schedule` and `update_schedule` in two threads, each on its own database
connection, against PostgreSQL's row locks: change A stops after its conflict check, holding its
locks; change B starts and is seen waiting for them (in pg_stat_activity); then A commits and B,
which checks after the locks, finds A's schedule and is refused. The same for a delete racing
the tick that starts one of the schedule's shifts. Nothing is simulated.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from scheduling import duty, schedules
from scheduling.models import Schedule, Shift, ShiftState
from tenants.audit import SYSTEM
from tenants.errors import ConflictError
from tenants.models import Organization
from tests.races import in_thread, require_row_locks, someone_waits_for_a_lock
from tests.scheduling import duty_world
from tests.scheduling import schedules_world as world


def _race(monkeypatch, a: Callable[[], Any], b: Callable[[], Any]) -> list[dict[str, Any]]:
    """Run A until it has checked for conflicts, then B, then let A commit; their outcomes."""
    checked, release = threading.Event(), threading.Event()
    check = schedules.check_conflicts

    def check_then_hold(*args: Any, **kwargs: Any) -> None:
        check(*args, **kwargs)
        if threading.current_thread().name == "A":
            checked.set()
            assert release.wait(timeout=120), "the test never let change A go on"

    monkeypatch.setattr(schedules, "check_conflicts", check_then_hold)
    first, first_out = in_thread("A", a)
    second, second_out = in_thread("B", b)
    first.start()
    assert checked.wait(timeout=120), "change A never checked for conflicts"
    second.start()
    try:
        waited = someone_waits_for_a_lock(timeout=30)
    finally:
        release.set()
        for thread in (first, second):
            thread.join(timeout=300)
    assert "error" not in first_out, first_out
    assert waited, "change B never waited for change A's locks"
    return [first_out, second_out]


def _refused(out: dict[str, Any], code: str) -> None:
    error = out.get("error")
    assert isinstance(error, ConflictError), out
    assert error.code == code


def _create(organization: Organization, employment, station) -> Callable[[], Schedule]:
    return lambda: schedules.create_schedule(
        SYSTEM, organization, employment=employment, station=station, **world.timing()
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("shared", ["station", "employment"])
def test_two_creates_at_once_place_only_what_fits(org_a, monkeypatch, shared):
    """A room that allows one employee on air, or a hire with one seat: two schedules for the
    same evenings, created at once, and only the first is kept."""
    require_row_locks()
    world.pools()
    hire, room = world.hire(org_a), world.station(org_a, max_on_air=1)
    if shared == "station":
        a = _create(org_a, hire, room)
        b = _create(org_a, world.hire(org_a), room)
    else:
        a = _create(org_a, hire, room)
        b = _create(org_a, hire, world.station(org_a))

    first, second = _race(monkeypatch, a, b)

    _refused(second, "station_full" if shared == "station" else "seats_exceeded")
    assert list(Schedule.objects.for_organization(org_a)) == [first["result"]]


@pytest.mark.django_db(transaction=True)
def test_an_edit_and_a_create_at_once_do_not_overbook(org_a, monkeypatch):
    """An evening schedule moved to the same hours as one being created at the same room."""
    require_row_locks()
    world.pools()
    room = world.station(org_a, max_on_air=1)
    evening = world.schedule(world.hire(org_a), room, start_time=dt.time(21, 0))

    def move() -> Schedule:
        return schedules.update_schedule(SYSTEM, evening, start_time=dt.time(19, 0))

    first, second = _race(monkeypatch, move, _create(org_a, world.hire(org_a), room))

    _refused(second, "station_full")
    assert Schedule.objects.for_organization(org_a).count() == 1
    assert first["result"].start_time == dt.time(19, 0)


@pytest.mark.django_db(transaction=True)
def test_a_schedule_is_not_deleted_from_under_a_shift_the_tick_is_starting(org_a, monkeypatch):
    """The tick has locked a planned shift of the schedule and is starting it when the delete
    comes; the delete waits, then sees the shift started and switches nothing off for good: it
    is refused (`schedule_has_history`) and the shift, with its stream, stays."""
    require_row_locks()
    world.pools()
    starts_at = timezone.now() + duty.warmup() - dt.timedelta(minutes=1)
    plan = world.plain_schedule(world.hire(org_a), world.station(org_a))
    shift = duty_world.shift(plan, starts_at)
    duty_world.reserve(shift)
    moved, release = threading.Event(), threading.Event()
    advance = duty._advance

    def advance_then_hold(*args: Any, **kwargs: Any) -> str | None:
        outcome = advance(*args, **kwargs)
        if threading.current_thread().name == "A":
            moved.set()
            assert release.wait(timeout=120), "the test never let the tick go on"
        return outcome

    monkeypatch.setattr(duty, "_advance", advance_then_hold)
    tick, tick_out = in_thread("A", duty.tick)
    delete, delete_out = in_thread("B", lambda: schedules.delete_schedule(SYSTEM, plan))
    tick.start()
    assert moved.wait(timeout=120), "the tick never started the shift"
    delete.start()
    try:
        waited = someone_waits_for_a_lock(timeout=30)
    finally:
        release.set()
        for thread in (tick, delete):
            thread.join(timeout=300)
    assert "error" not in tick_out, tick_out
    assert waited, "the delete never waited for the tick's lock"

    _refused(delete_out, "schedule_has_history")
    started = Shift.objects.for_organization(org_a).get(pk=shift.pk)
    assert started.state == ShiftState.WARMING and started.workload_id is not None
    assert Schedule.objects.for_organization(org_a).filter(pk=plan.pk).exists()
