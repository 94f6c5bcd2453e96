"""Materialising shifts from schedules: idempotent, correct across daylight-saving changes, edits
change only future unstarted shifts, and every shift reserves GPU capacity or says why not.

Real database, real capacity calendar (inference.capacity) and real pools rows; the instant "now"
is passed in (the materialiser takes it), so the runs are at chosen dates. Nothing is simulated.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import zoneinfo

import pytest

from avatars.models import EmploymentStatus
from inference import capacity
from inference.models import Reservation, WorkerPool
from ironbowl.celery import app
from scheduling import materialise, tasks
from scheduling.models import DayKind, Holiday, HolidayCalendar, Shift, ShiftState, StationKind
from tenants.models import AuditEntry
from tests import factories
from tests.scheduling import schedules_world as world

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def at(zone: zoneinfo.ZoneInfo, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone)


def local_starts(plan) -> list[str]:
    zone = zoneinfo.ZoneInfo(plan.organization.time_zone)
    return [f"{s.starts_at.astimezone(zone):%a %m-%d %H:%M}" for s in world.shifts_of(plan)]


@pytest.fixture
def pools(db):
    return world.pools()


def test_running_twice_makes_nothing_new(org_a, pools):
    plan = world.plain_schedule(world.hire(org_a), world.station(org_a))
    monday = at(SHANGHAI, 2026, 3, 2, 8)

    first = materialise.materialise_organization(org_a, now=monday)
    second = materialise.materialise_organization(org_a, now=monday + dt.timedelta(minutes=5))

    assert (first.created, first.reserved, first.at_risk) == (10, 10, 0)  # two working weeks
    assert (second.created, second.removed, second.reserved) == (0, 0, 0)
    shifts = world.shifts_of(plan)
    assert len(shifts) == 10
    assert local_starts(plan)[:3] == ["Mon 03-02 19:00", "Tue 03-03 19:00", "Wed 03-04 19:00"]
    assert all(s.state == ShiftState.PLANNED and s.schedule_version == 1 for s in shifts)
    reservation = Reservation.objects.for_organization(org_a).get(
        holder=materialise.holder_of(shifts[0].pk)
    )
    # A live room: one slot of the live pool's class from its warm-up (5 minutes) to its end.
    assert shifts[0].reservation_id == reservation.pk
    assert (reservation.gpu_class, reservation.slots) == ("cpu", 1)
    assert reservation.starts_at == shifts[0].starts_at - dt.timedelta(minutes=5)
    assert reservation.ends_at == shifts[0].ends_at
    assert Reservation.objects.for_organization(org_a).count() == 10


def test_a_1900_shift_stays_1900_local_across_the_new_york_spring_change(pools):
    org = factories.OrganizationFactory(time_zone="America/New_York")
    plan = world.plain_schedule(world.hire(org), world.station(org), rrule="FREQ=DAILY")

    materialise.materialise_organization(org, now=at(NEW_YORK, 2026, 3, 5, 12))

    shifts = world.shifts_of(plan)
    assert {f"{s.starts_at.astimezone(NEW_YORK):%H:%M}" for s in shifts} == {"19:00"}
    by_day = {s.starts_at.astimezone(NEW_YORK).date(): s.starts_at for s in shifts}
    assert by_day[dt.date(2026, 3, 7)].hour == 0  # 19:00 EST is 00:00 UTC
    assert by_day[dt.date(2026, 3, 8)].hour == 23  # 19:00 EDT is 23:00 UTC


def test_a_24_7_desk_has_23_and_25_hour_days_joined_end_to_end_in_berlin(pools):
    org = factories.OrganizationFactory(time_zone="Europe/Berlin")
    desk = world.station(org, StationKind.WEB_WIDGET)
    plan = world.plain_schedule(world.hire(org), desk, **world.always_on())

    materialise.materialise_organization(org, now=at(BERLIN, 2026, 3, 27, 0))
    materialise.materialise_organization(org, now=at(BERLIN, 2026, 10, 23, 0))

    shifts = world.shifts_of(plan)
    hours = {
        s.starts_at.astimezone(BERLIN).date(): (s.ends_at - s.starts_at) / dt.timedelta(hours=1)
        for s in shifts
    }
    assert hours[dt.date(2026, 3, 28)] == 24
    assert hours[dt.date(2026, 3, 29)] == 23
    assert hours[dt.date(2026, 10, 25)] == 25
    first_run = [s for s in shifts if s.starts_at < at(BERLIN, 2026, 4, 10)]
    assert all(a.ends_at == b.starts_at for a, b in itertools.pairwise(first_run))
    # A desk reserves a conversation slot for exactly its window (no warm-up).
    reservation = Reservation.objects.for_organization(org).get(
        holder=materialise.holder_of(shifts[0].pk)
    )
    assert (reservation.starts_at, reservation.ends_at) == (shifts[0].starts_at, shifts[0].ends_at)


def test_a_shift_that_does_not_fit_is_at_risk_with_the_reason_and_asks_again(org_a):
    live, _converse = world.pools()
    live.gpu_class, live.maximum = "l4", 1  # the only l4 pool: the platform offers 2 l4 slots
    live.save()
    plans = [
        world.plain_schedule(world.hire(org_a), world.station(org_a), rrule="FREQ=DAILY;COUNT=1")
        for _ in range(3)
    ]
    now = at(SHANGHAI, 2025, 12, 31, 12)

    result = materialise.materialise_organization(org_a, now=now)

    shifts = [world.shifts_of(plan)[0] for plan in plans]
    assert (result.reserved, result.at_risk) == (2, 1)
    risky = [s for s in shifts if s.at_risk]
    assert len(risky) == 1 and risky[0].reservation_id is None
    assert "cannot offer 1 more l4 slots" in risky[0].risk_reason
    entry = AuditEntry.objects.for_organization(org_a).get(action="shift.at_risk")
    assert entry.after["shifts"] == 1

    live.maximum = 2
    live.save()
    again = materialise.materialise_organization(org_a, now=now + dt.timedelta(hours=1))

    secured = Shift.objects.for_organization(org_a).get(pk=risky[0].pk)
    assert (again.reserved, again.at_risk, again.created) == (1, 0, 0)
    assert not secured.at_risk and secured.risk_reason == ""
    assert secured.reservation_id is not None
    assert AuditEntry.objects.for_organization(org_a).filter(action="shift.at_risk").count() == 1


def test_the_organizations_quota_binds_too(org_a, pools):
    # The trial plan allows 8 cpu slots at once.
    for _ in range(9):
        world.plain_schedule(world.hire(org_a), world.station(org_a), rrule="FREQ=DAILY;COUNT=1")

    result = materialise.materialise_organization(org_a, now=at(SHANGHAI, 2025, 12, 31, 12))

    assert (result.reserved, result.at_risk) == (8, 1)
    risky = Shift.objects.for_organization(org_a).get(at_risk=True)
    assert "The plan allows 8 cpu slots at once; 8 are already reserved" in risky.risk_reason


def test_without_a_live_pool_every_live_shift_is_at_risk(org_a):
    plan = world.plain_schedule(world.hire(org_a), world.station(org_a), rrule="FREQ=DAILY;COUNT=2")

    materialise.materialise_organization(org_a, now=at(SHANGHAI, 2025, 12, 31, 12))

    shifts = world.shifts_of(plan)
    assert len(shifts) == 2
    assert all(s.at_risk and "No active pool runs live workloads" in s.risk_reason for s in shifts)
    assert not Reservation.objects.for_organization(org_a).exists()


def test_an_edit_changes_future_planned_shifts_and_leaves_started_and_past_ones(org_a, pools):
    plan = world.plain_schedule(world.hire(org_a), world.station(org_a))
    monday = at(SHANGHAI, 2026, 3, 2, 8)
    materialise.materialise_organization(org_a, now=monday)
    before = world.shifts_of(plan)
    on_air = before[0]
    Shift.objects.for_organization(org_a).filter(pk=on_air.pk).update(state=ShiftState.ON_DUTY)
    later = at(SHANGHAI, 2026, 3, 3, 19, 30)  # Tuesday's shift has started too

    plan.start_time, plan.version = dt.time(20, 0), plan.version + 1
    plan.save()
    result = materialise.materialise_organization(org_a, now=later, schedule_ids=[plan.pk])

    after = world.shifts_of(plan)
    kept = {s.pk for s in after} & {s.pk for s in before}
    assert kept == {before[0].pk, before[1].pk}  # on duty, and planned but already started
    assert Shift.objects.for_organization(org_a).get(pk=on_air.pk).state == ShiftState.ON_DUTY
    assert result.removed == 8
    # Tuesday's 19:00 shift had started; the rule's 20:00 one follows it, no overlap.
    assert local_starts(plan)[:4] == [
        "Mon 03-02 19:00",
        "Tue 03-03 19:00",
        "Tue 03-03 20:00",
        "Wed 03-04 20:00",
    ]
    assert {s.schedule_version for s in after if s.pk not in kept} == {2}
    held = {r.holder for r in world.reservations_of(org_a)}
    assert not {materialise.holder_of(s.pk) for s in before[2:]} & held  # given back
    assert {materialise.holder_of(s.pk) for s in after if s.pk not in kept} <= held


def test_a_new_time_that_overlaps_a_started_shift_waits_for_the_next_occurrence(org_a, pools):
    plan = world.plain_schedule(world.hire(org_a), world.station(org_a), rrule="FREQ=DAILY")
    materialise.materialise_organization(org_a, now=at(SHANGHAI, 2026, 3, 2, 8))
    today = world.shifts_of(plan)[0]
    Shift.objects.for_organization(org_a).filter(pk=today.pk).update(state=ShiftState.ON_DUTY)

    plan.start_time, plan.version = dt.time(19, 30), 2
    plan.save()
    materialise.materialise_organization(
        org_a, now=at(SHANGHAI, 2026, 3, 2, 19, 10), schedule_ids=[plan.pk]
    )

    assert local_starts(plan)[:3] == ["Mon 03-02 19:00", "Tue 03-03 19:30", "Wed 03-04 19:30"]


def test_a_change_that_keeps_the_times_keeps_the_shifts_with_the_new_version(org_a, pools):
    plan = world.plain_schedule(world.hire(org_a), world.station(org_a))
    monday = at(SHANGHAI, 2026, 3, 2, 8)
    materialise.materialise_organization(org_a, now=monday)
    ids = [s.pk for s in world.shifts_of(plan)]

    plan.segments, plan.version = [{"text": "Welcome!", "language": "en"}], 2
    plan.save()
    result = materialise.materialise_organization(org_a, now=monday, schedule_ids=[plan.pk])

    assert (result.created, result.removed) == (0, 0)
    assert [s.pk for s in world.shifts_of(plan)] == ids
    assert {s.schedule_version for s in world.shifts_of(plan)} == {2}


def test_switching_off_cancels_future_planned_shifts_and_switching_on_plans_them_again(
    org_a, pools
):
    plan = world.plain_schedule(world.hire(org_a), world.station(org_a))
    monday = at(SHANGHAI, 2026, 3, 2, 8)
    materialise.materialise_organization(org_a, now=monday)

    plan.is_active = False
    plan.save()
    off = materialise.materialise_organization(org_a, now=monday, schedule_ids=[plan.pk])

    shifts = world.shifts_of(plan)
    assert off.cancelled == 10
    assert {(s.state, s.reason_code) for s in shifts} == {
        (ShiftState.CANCELLED, "schedule_inactive")
    }
    assert not Reservation.objects.for_organization(org_a).exists()
    audited = AuditEntry.objects.for_organization(org_a).filter(action="shift.cancel")
    assert audited.count() == 10
    assert audited.first().after["reason_code"] == "schedule_inactive"

    plan.is_active = True
    plan.save()
    on = materialise.materialise_organization(org_a, now=monday, schedule_ids=[plan.pk])

    assert (on.revived, on.created, on.reserved) == (10, 0, 10)
    assert {s.state for s in world.shifts_of(plan)} == {ShiftState.PLANNED}
    assert all(s.reservation_id for s in world.shifts_of(plan))
    assert AuditEntry.objects.for_organization(org_a).filter(action="shift.replan").count() == 10


def test_a_suspended_hire_gets_no_new_shifts_and_its_planned_ones_come_back(org_a, pools):
    employment = world.hire(org_a)
    plan = world.plain_schedule(employment, world.station(org_a))
    monday = at(SHANGHAI, 2026, 3, 2, 8)
    materialise.materialise_organization(org_a, now=monday)

    employment.status = EmploymentStatus.SUSPENDED
    employment.save()
    materialise.materialise_shifts(now=monday)
    assert {s.reason_code for s in world.shifts_of(plan)} == {"employment_not_active"}

    employment.status = EmploymentStatus.ACTIVE
    employment.save()
    materialise.materialise_shifts(now=monday + dt.timedelta(days=1))
    assert {
        s.state for s in world.shifts_of(plan) if s.starts_at > monday + dt.timedelta(days=1)
    } == {ShiftState.PLANNED}


def test_an_occurrence_under_way_when_first_seen_starts_now_once(org_a, pools):
    plan = world.plain_schedule(
        world.hire(org_a), world.station(org_a), rrule="FREQ=DAILY", duration_minutes=120
    )
    now = at(SHANGHAI, 2026, 3, 2, 19, 30)

    materialise.materialise_organization(org_a, now=now)
    materialise.materialise_organization(org_a, now=now + dt.timedelta(minutes=20))

    first = world.shifts_of(plan)[0]
    assert first.starts_at == now
    assert first.ends_at == at(SHANGHAI, 2026, 3, 2, 21)
    assert len([s for s in world.shifts_of(plan) if s.starts_at.date() == now.date()]) == 1


def test_holidays_drop_shifts_and_a_make_up_day_adds_one(org_a, pools):
    calendar = HolidayCalendar.objects.create(organization=org_a, name="China 2026")
    plan = world.plain_schedule(world.hire(org_a), world.station(org_a), holiday_calendar=calendar)
    for day, kind in (
        (dt.date(2026, 2, 13), DayKind.HOLIDAY),
        (dt.date(2026, 2, 14), DayKind.WORKDAY),
    ):
        Holiday.objects.create(organization=org_a, calendar=calendar, date=day, kind=kind)

    materialise.materialise_organization(org_a, now=at(SHANGHAI, 2026, 2, 9, 8))

    days = local_starts(plan)[:6]
    assert days == [
        "Mon 02-09 19:00",
        "Tue 02-10 19:00",
        "Wed 02-11 19:00",
        "Thu 02-12 19:00",
        "Sat 02-14 19:00",
        "Mon 02-16 19:00",
    ]


def test_the_periodic_run_covers_every_organization_and_survives_a_broken_one(org_a, org_b, pools):
    mine = world.plain_schedule(world.hire(org_a), world.station(org_a))
    theirs = world.plain_schedule(world.hire(org_b), world.station(org_b))
    broken = factories.OrganizationFactory()
    world.plain_schedule(world.hire(broken), world.station(broken))
    type(broken).objects.filter(pk=broken.pk).update(time_zone="Mars/Olympus_Mons")

    result = materialise.materialise_shifts(now=at(SHANGHAI, 2026, 3, 2, 8))

    assert result.failed_organizations == 1
    assert result.created == 20
    assert {s.organization_id for s in world.shifts_of(mine)} == {org_a.pk}
    assert {s.organization_id for s in world.shifts_of(theirs)} == {org_b.pk}
    assert not Shift.objects.for_organization(broken).exists()


def test_the_task_is_on_beats_static_schedule():
    entry = app.conf.beat_schedule["scheduling.materialise_shifts"]
    assert entry["task"] == "scheduling.materialise_shifts"
    assert entry["task"] in app.tasks
    assert tasks.materialise_shifts.name == entry["task"]


def test_reserving_a_batch_answers_as_reserving_one_after_another(org_a, org_b):
    """The batch path against `capacity.reserve` called in the same order on a copy of the data:
    the same holders are refused, for the same reason."""
    WorkerPool.objects.create(
        name="live-h100", pipeline="live", gpu_class="h100", gpus_per_worker=1,
        slots_per_worker=2, image="x", maximum=3,
    )  # fmt: skip
    org_a.plan = org_b.plan = "growth"  # 16 h100 slots: the platform's 6 bind first
    org_a.save()
    rng = random.Random(7)
    base = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    capacity.reserve(
        org_b, gpu_class="h100", slots=2, starts_at=base, ends_at=base + dt.timedelta(hours=30),
        holder="other",
    )  # fmt: skip
    requests = []
    for index in range(60):
        starts_at = base + dt.timedelta(hours=rng.randrange(0, 48))
        ends_at = starts_at + dt.timedelta(hours=rng.randrange(1, 10))
        requests.append(capacity.Request(f"batch:{index}", starts_at, ends_at, rng.randrange(1, 3)))

    answer = capacity.reserve_many(org_a, gpu_class="h100", requests=requests)
    batch = {holder: a.reason_code for holder, a in answer.refused.items()}
    Reservation.objects.for_organization(org_a).delete()
    one_by_one = {}
    for request in requests:
        _held, single = capacity.reserve(
            org_a, gpu_class="h100", slots=request.slots, starts_at=request.starts_at,
            ends_at=request.ends_at, holder=request.holder,
        )  # fmt: skip
        if not single.ok:
            one_by_one[request.holder] = single.reason_code

    assert batch == one_by_one
    assert 0 < len(batch) < len(requests)
    assert len(answer.reserved) == len(requests) - len(batch)


def test_the_databases_sweep_finds_the_same_peak_as_the_one_in_python(org_a, org_b):
    rng = random.Random(11)
    base = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    rows = []
    for index in range(200):
        owner = org_a if index % 3 else org_b
        starts_at = base + dt.timedelta(minutes=30 * rng.randrange(0, 96))
        ends_at = starts_at + dt.timedelta(minutes=30 * rng.randrange(1, 12))
        slots = rng.randrange(1, 4)
        Reservation.objects.create(
            organization=owner, gpu_class="l4", slots=slots, starts_at=starts_at,
            ends_at=ends_at, holder=f"sweep:{index}",
        )  # fmt: skip
        rows.append((owner.pk, starts_at, ends_at, slots))
    for hours in ((0, 48), (5, 6), (10, 30), (47, 60)):
        start, end = base + dt.timedelta(hours=hours[0]), base + dt.timedelta(hours=hours[1])
        everyone = capacity.peak(((s, e, n) for _o, s, e, n in rows), start, end)
        mine = capacity.peak(((s, e, n) for o, s, e, n in rows if o == org_a.pk), start, end)
        assert capacity._held_peak("l4", start, end) == everyone
        assert capacity._held_peak("l4", start, end, org_a) == mine
