"""The schedules API: making, changing, switching off and deleting schedules; the shifts that
follow at once; conflicts refused with the reason; bad input refused with nothing written.

Real views, services, database and capacity calendar, signed in as members of each role (forced
session login). Nothing is simulated.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from typing import Any

import pytest
from django.utils import timezone

from avatars.models import EmploymentStatus
from inference.models import Reservation
from scheduling import schedules
from scheduling import services as station_services
from scheduling.models import Schedule, Shift, ShiftState
from tenants.audit import SYSTEM
from tenants.errors import DomainError
from tenants.models import AuditEntry, Organization
from tenants.roles import Role
from tests.scheduling import schedules_world as world
from tests.support import database_rows

pytestmark = pytest.mark.django_db
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.fixture
def pools(db):
    return world.pools()


@pytest.fixture
def hired(org_a):
    return world.hire(org_a)


@pytest.fixture
def room(org_a):
    return world.station(org_a, name="Health live room")


def url(org: Organization, path: str = "") -> str:
    return f"/api/v1/orgs/{org.slug}/schedules/{path}"


def body(employment, station, **fields: Any) -> dict[str, Any]:
    return {
        "employment": str(employment.pk),
        "station": str(station.pk),
        "rrule": world.WEEKDAYS,
        "start_time": "19:00",
        "duration_minutes": 60,
        "valid_from": timezone.localdate().isoformat(),
        **fields,
    }


def shifts_of(organization: Organization) -> list[Shift]:
    return list(Shift.objects.for_organization(organization).order_by("starts_at"))


def tomorrow() -> dt.date:
    """A first day after today: made on a weekday evening, a 19:00 schedule from today has its
    first shift under way, started when it was made, and the materialiser leaves started shifts
    as they are (test_materialise); tests of future shifts start tomorrow, whatever the hour."""
    return timezone.localdate() + dt.timedelta(days=1)


def test_a_schedule_is_made_and_its_shifts_follow_with_capacity_reserved(
    api_a, org_a, hired, room, pools
):
    response = api_a.post(
        url(org_a), body(hired, room, segments=[{"text": "大家好"}]), format="json"
    )

    assert response.status_code == 201, response.content
    data = response.json()
    assert data["version"] == 1
    assert data["time_zone"] == "Asia/Shanghai"
    assert data["start_time"] == "19:00:00"
    shifts = shifts_of(org_a)
    assert 9 <= len(shifts) <= 11  # two weeks of weekdays from today
    assert {s.schedule_id for s in shifts} == {Schedule.objects.for_organization(org_a).get().pk}
    assert all(s.reservation_id and not s.at_risk for s in shifts)
    assert Reservation.objects.for_organization(org_a).count() == len(shifts)
    entry = AuditEntry.objects.for_organization(org_a).get(action="schedule.create")
    assert entry.after["rrule"] == world.WEEKDAYS


def test_a_24_7_schedule_needs_no_rule_and_covers_every_day(api_a, org_a, hired, pools):
    desk = world.station(org_a, "web_widget")
    payload = {
        "employment": str(hired.pk),
        "station": str(desk.pk),
        "always_on": True,
        "valid_from": timezone.localdate().isoformat(),
    }

    response = api_a.post(url(org_a), payload, format="json")

    assert response.status_code == 201, response.content
    shifts = shifts_of(org_a)
    assert len(shifts) in (14, 15)  # today (from now) and the next 14 local days
    assert shifts[0].starts_at <= timezone.now() + dt.timedelta(minutes=1)
    assert all(a.ends_at == b.starts_at for a, b in itertools.pairwise(shifts))


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"rrule": "FREQ=SOMETIMES"}, "rrule", "invalid_rrule"),
        ({"rrule": "FREQ=MINUTELY"}, "rrule", "rrule_too_frequent"),
        ({"rrule": "FREQ=DAILY;COUNT=5000"}, "rrule", "rrule_out_of_bounds"),
        ({"rrule": "FREQ=DAILY;UNTIL=20990101"}, "rrule", "invalid_rrule"),
        ({"valid_until": "2000-01-01"}, "valid_until", "ends_before_start"),
        ({"start_time": None}, "start_time", "required"),
        ({"start_time": "19:00+08:00"}, "start_time", "invalid"),
        ({"duration_minutes": 0}, "duration_minutes", "min_value"),
        ({"always_on": True}, "rrule", "always_on_fields"),
        ({"valid_from": "0001-01-01"}, "valid_from", "invalid"),
        ({"segments": [{"text": ""}]}, "segments", "invalid_script"),
        ({"exdates": ["not-a-date"]}, "exdates", "invalid"),
        ({"version": 7}, "version", "read_only"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_nothing_is_written(
    api_a, org_a, hired, room, pools, changes, field, code
):
    before = database_rows()

    response = api_a.post(url(org_a), body(hired, room, **changes), format="json")

    assert response.status_code == 400, response.content
    errors = response.json()["fields"][field]
    codes = {e["code"] for e in (errors if isinstance(errors, list) else errors["0"])}
    assert code in codes, response.json()
    assert database_rows() == before


def test_an_unknown_time_zone_is_a_clear_error_and_nothing_is_written(org_a, hired, room, pools):
    # The API refuses such a zone on the organization (tests/tenants); a stored one that a
    # later tz database no longer knows must still not make shifts at a guessed offset.
    org_a.time_zone = "Mars/Olympus_Mons"
    before = database_rows()

    with pytest.raises(DomainError) as refused:
        schedules.create_schedule(SYSTEM, org_a, employment=hired, station=room, **world.timing())

    assert refused.value.code == "unknown_time_zone"
    assert "Mars/Olympus_Mons" in str(refused.value.detail)
    assert database_rows() == before


def test_only_an_active_employment_can_be_scheduled(api_a, org_a, room, pools):
    onboarding = world.hire(org_a, status=EmploymentStatus.ONBOARDING)
    before = database_rows()

    response = api_a.post(url(org_a), body(onboarding, room), format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "employment_not_active"
    assert "onboarding" in response.json()["detail"]
    assert database_rows() == before


def test_more_shifts_at_once_than_seats_is_refused_with_the_reason(
    api_a, org_a, hired, room, pools
):
    world.schedule(hired, room)
    elsewhere = world.station(org_a, name="Second room")
    before = database_rows()

    response = api_a.post(
        url(org_a), body(hired, elsewhere, start_time="19:30", rrule="FREQ=DAILY"), format="json"
    )

    assert response.status_code == 409
    data = response.json()
    assert data["code"] == "seats_exceeded"
    assert "would work 2 shifts at once" in data["detail"]
    assert "1 seat" in data["detail"]
    assert database_rows() == before

    hired.seats = 2
    hired.save()
    again = api_a.post(
        url(org_a), body(hired, elsewhere, start_time="19:30", rrule="FREQ=DAILY"), format="json"
    )
    assert again.status_code == 201, again.content


def test_a_station_over_its_on_air_limit_is_refused_with_the_reason(
    api_a, org_a, hired, room, pools
):
    world.schedule(hired, room)
    colleague = world.hire(org_a)
    before = database_rows()

    # Saturday only: no clash with the weekday schedule; then a weekday evening: a clash.
    fine = api_a.post(
        url(org_a), body(colleague, room, rrule="FREQ=WEEKLY;BYDAY=SA"), format="json"
    )
    assert fine.status_code == 201, fine.content
    before = database_rows()
    clash = api_a.post(
        url(org_a),
        body(colleague, room, rrule="FREQ=WEEKLY;BYDAY=WE", start_time="19:59"),
        format="json",
    )

    assert clash.status_code == 409
    assert clash.json()["code"] == "station_full"
    assert "Health live room would have 2 employees on air" in clash.json()["detail"]
    assert database_rows() == before


def test_back_to_back_shifts_are_no_conflict(api_a, org_a, hired, room, pools):
    world.schedule(hired, room)

    response = api_a.post(url(org_a), body(hired, room, start_time="20:00"), format="json")

    assert response.status_code == 201, response.content


def test_a_conflict_far_ahead_within_a_year_is_found(api_a, org_a, hired, room, pools):
    later = timezone.localdate() + dt.timedelta(days=200)
    world.schedule(hired, room, rrule="FREQ=DAILY;COUNT=1", valid_from=later)

    response = api_a.post(
        url(org_a), body(hired, room, rrule="FREQ=DAILY", start_time="19:30"), format="json"
    )

    assert response.status_code == 409
    assert response.json()["code"] in ("station_full", "seats_exceeded")


def test_editing_bumps_the_version_and_moves_future_shifts(api_a, org_a, hired, room, pools):
    plan = world.schedule(hired, room, valid_from=tomorrow())
    old = {s.pk for s in shifts_of(org_a)}

    response = api_a.patch(url(org_a, f"{plan.pk}/"), {"start_time": "20:15"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    shifts = shifts_of(org_a)
    assert not old & {s.pk for s in shifts}
    assert {s.schedule_version for s in shifts} == {2}
    assert {f"{s.starts_at.astimezone(SHANGHAI):%H:%M}" for s in shifts} == {"20:15"}
    entry = AuditEntry.objects.for_organization(org_a).get(action="schedule.update")
    assert entry.before["start_time"] != entry.after["start_time"]


def test_sending_what_it_already_says_changes_nothing(api_a, org_a, hired, room, pools):
    plan = world.schedule(hired, room)
    before = database_rows()

    response = api_a.patch(url(org_a, f"{plan.pk}/"), {"start_time": "19:00"}, format="json")

    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert database_rows() == before


def test_a_refused_edit_writes_nothing(api_a, org_a, hired, room, pools):
    plan = world.schedule(hired, room)
    world.schedule(world.hire(org_a), room, start_time=dt.time(21, 0))
    before = database_rows()

    response = api_a.patch(url(org_a, f"{plan.pk}/"), {"duration_minutes": 150}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "station_full"
    assert database_rows() == before


def test_switching_off_cancels_future_planned_shifts_and_frees_their_capacity(
    api_a, org_a, hired, room, pools
):
    plan = world.schedule(hired, room, valid_from=tomorrow())

    response = api_a.patch(url(org_a, f"{plan.pk}/"), {"is_active": False}, format="json")

    assert response.status_code == 200
    assert {(s.state, s.reason_code) for s in shifts_of(org_a)} == {
        (ShiftState.CANCELLED, "schedule_inactive")
    }
    assert not Reservation.objects.for_organization(org_a).exists()


def test_deleting_a_schedule_without_history_removes_its_planned_shifts(
    api_a, org_a, hired, room, pools
):
    plan = world.schedule(hired, room, valid_from=timezone.localdate() + dt.timedelta(days=1))

    response = api_a.delete(url(org_a, f"{plan.pk}/"))

    assert response.status_code == 204
    assert not shifts_of(org_a)
    assert not Reservation.objects.for_organization(org_a).exists()
    assert AuditEntry.objects.for_organization(org_a).filter(action="schedule.delete").exists()


def test_a_schedule_with_history_is_switched_off_not_deleted(api_a, org_a, hired, room, pools):
    plan = world.schedule(hired, room)
    first = shifts_of(org_a)[0]
    Shift.objects.for_organization(org_a).filter(pk=first.pk).update(state=ShiftState.ENDED)
    before = database_rows()

    response = api_a.delete(url(org_a, f"{plan.pk}/"))

    assert response.status_code == 409
    assert response.json()["code"] == "schedule_has_history"
    assert database_rows() == before


def test_an_operator_manages_schedules_of_granted_stations_only(
    org_a, member_factory, client_for, hired, room, pools
):
    operator = member_factory(org_a, Role.OPERATOR)
    other_room = world.station(org_a, name="Other room")
    station_services.grant_station_operator(SYSTEM, room, operator)
    client = client_for(operator)

    granted = client.post(url(org_a), body(hired, room), format="json")
    refused = client.post(url(org_a), body(world.hire(org_a), other_room), format="json")
    plan_id = granted.json()["id"]
    moved = client.patch(url(org_a, f"{plan_id}/"), {"station": str(other_room.pk)}, format="json")

    assert granted.status_code == 201, granted.content
    assert refused.status_code == 403
    assert "You do not operate this station" in refused.json()["detail"]
    assert moved.status_code == 403


def test_the_list_filters_by_station_and_employment(api_a, org_a, hired, room, pools):
    plan = world.schedule(hired, room)
    world.schedule(world.hire(org_a), world.station(org_a))

    by_station = api_a.get(url(org_a), {"station": str(room.pk)}).json()["results"]
    by_employment = api_a.get(url(org_a), {"employment": str(hired.pk)}).json()["results"]

    assert [row["id"] for row in by_station] == [str(plan.pk)]
    assert [row["id"] for row in by_employment] == [str(plan.pk)]
