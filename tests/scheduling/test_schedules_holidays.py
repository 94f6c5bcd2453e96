"""Holiday calendars: their days by hand and by import (China's 2026 public holidays and make-up
working days, tests/scheduling/calendars/china-2026.csv), and what a change does to the schedules
that use them — shifts dropped and added at once, or the change refused when it would overbook.

Real views, services and database; nothing is simulated.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from scheduling.models import Holiday, HolidayCalendar, Shift
from tenants.models import AuditEntry, Organization
from tests.scheduling import schedules_world as world
from tests.support import database_rows

pytestmark = pytest.mark.django_db

CHINA_2026 = (Path(__file__).parent / "calendars" / "china-2026.csv").read_bytes()


def url(org: Organization, path: str = "") -> str:
    return f"/api/v1/orgs/{org.slug}/{path}"


@pytest.fixture
def calendar(org_a) -> HolidayCalendar:
    return HolidayCalendar.objects.create(organization=org_a, name="China public holidays")


def _import(client, org, calendar, data: bytes | list[Any], content_type: str = "text/csv"):
    payload = data if isinstance(data, bytes) else json.dumps(data).encode()
    return client.generic(
        "POST",
        url(org, f"holiday-calendars/{calendar.pk}/import/"),
        payload,
        content_type=content_type,
    )


def _next(weekday: int, after: int = 2) -> dt.date:
    """The first local day with this weekday (0 = Monday) at least `after` days from today."""
    day = timezone.localdate() + dt.timedelta(days=after)
    while day.weekday() != weekday:
        day += dt.timedelta(days=1)
    return day


def _local_days(organization: Organization) -> list[dt.date]:
    shifts = Shift.objects.for_organization(organization).filter(state="planned")
    return sorted(timezone.localtime(s.starts_at).date() for s in shifts)


def test_calendars_are_made_renamed_and_deleted(api_a, org_a):
    made = api_a.post(url(org_a, "holiday-calendars/"), {"name": "Hospital closures"}, "json")
    twin = api_a.post(url(org_a, "holiday-calendars/"), {"name": "Hospital closures"}, "json")
    calendar_id = made.json()["id"]
    renamed = api_a.patch(
        url(org_a, f"holiday-calendars/{calendar_id}/"), {"name": "Closures"}, "json"
    )
    deleted = api_a.delete(url(org_a, f"holiday-calendars/{calendar_id}/"))

    assert made.status_code == 201
    assert (twin.status_code, twin.json()["code"]) == (409, "calendar_name_taken")
    assert renamed.json()["name"] == "Closures"
    assert deleted.status_code == 204
    assert not HolidayCalendar.objects.for_organization(org_a).exists()
    actions = set(AuditEntry.objects.for_organization(org_a).values_list("action", flat=True))
    assert {
        "holiday_calendar.create",
        "holiday_calendar.update",
        "holiday_calendar.delete",
    } <= actions


def test_importing_chinas_2026_calendar_twice_changes_nothing_the_second_time(
    api_a, org_a, calendar
):
    first = _import(api_a, org_a, calendar, CHINA_2026)
    before = database_rows()
    second = _import(api_a, org_a, calendar, CHINA_2026)

    assert first.status_code == 200, first.content
    assert first.json() == {"created": 39, "updated": 0, "unchanged": 0}
    assert second.json() == {"created": 0, "updated": 0, "unchanged": 39}
    assert database_rows() == before
    days = Holiday.objects.for_organization(org_a).filter(calendar=calendar)
    assert days.filter(kind="workday").count() == 6
    assert days.get(date=dt.date(2026, 2, 14)).name == "春节调休上班"
    assert days.get(date=dt.date(2026, 10, 1)).kind == "holiday"


def test_a_json_import_corrects_days_by_date_and_keeps_the_others(api_a, org_a, calendar):
    _import(api_a, org_a, calendar, CHINA_2026)
    rows = [
        {"date": "2026-10-08", "kind": "holiday", "name": "国庆节"},  # new
        {"date": "2026-10-10", "kind": "holiday", "name": "Changed"},  # corrected
        {"date": "2026-10-01", "kind": "holiday", "name": "国庆节"},  # as it is
    ]

    response = _import(api_a, org_a, calendar, rows, "application/json")

    assert response.json() == {"created": 1, "updated": 1, "unchanged": 1}
    assert Holiday.objects.for_organization(org_a).filter(calendar=calendar).count() == 40


@pytest.mark.parametrize(
    ("data", "content_type", "problem"),
    [
        (b"day,kind\n2026-01-01,holiday\n", "text/csv", "header"),
        (b"date,kind,name\n2026-13-01,holiday,x\n", "text/csv", "row 2: date must be YYYY-MM-DD"),
        (b"date,kind,name\n2026-01-01,party,x\n", "text/csv", "row 2: kind must be holiday"),
        (
            b"date,kind\n2026-01-01,holiday\n2026-01-01,workday\n",
            "text/csv",
            "row 3: 2026-01-01 is also on row 2",
        ),
        (b"\xff\xfe", "text/csv", "not UTF-8"),
        (b'{"date": "2026-01-01"}', "application/json", '{"days": [...]}'),
        (b'[{"date": "2026-01-01", "kind": "holiday", "x": 1}]', "application/json", "unknown"),
    ],
)
def test_a_bad_file_imports_nothing_and_says_which_rows(
    api_a, org_a, calendar, data, content_type, problem
):
    before = database_rows()

    response = _import(api_a, org_a, calendar, data, content_type)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "import_invalid"
    messages = " ".join(e["message"] for e in response.json()["fields"]["rows"])
    assert problem in messages
    assert database_rows() == before


def test_a_new_holiday_drops_that_days_shift_and_removing_it_brings_it_back(api_a, org_a, calendar):
    world.pools()
    world.schedule(world.hire(org_a), world.station(org_a), holiday_calendar=calendar)
    wednesday = _next(2)
    assert wednesday in _local_days(org_a)

    added = api_a.post(
        url(org_a, "holidays/"),
        {"calendar": str(calendar.pk), "date": wednesday.isoformat(), "kind": "holiday"},
        "json",
    )

    assert added.status_code == 201, added.content
    assert wednesday not in _local_days(org_a)
    removed = api_a.delete(url(org_a, f"holidays/{added.json()['id']}/"))
    assert removed.status_code == 204
    assert wednesday in _local_days(org_a)


def test_a_make_up_saturday_adds_a_shift_to_a_weekday_schedule(api_a, org_a, calendar):
    world.pools()
    world.schedule(world.hire(org_a), world.station(org_a), holiday_calendar=calendar)
    saturday = _next(5)

    response = _import(
        api_a,
        org_a,
        calendar,
        [{"date": saturday.isoformat(), "kind": "workday"}],
        "application/json",
    )

    assert response.status_code == 200
    assert saturday in _local_days(org_a)


def test_a_make_up_day_that_would_overbook_a_station_is_refused(api_a, org_a, calendar):
    world.pools()
    room = world.station(org_a, name="Only room")
    world.schedule(world.hire(org_a), room, holiday_calendar=calendar)
    world.schedule(
        world.hire(org_a), room, rrule="FREQ=WEEKLY;BYDAY=SA", start_time=dt.time(19, 30)
    )
    saturday = _next(5)
    before = database_rows()

    response = _import(
        api_a,
        org_a,
        calendar,
        [{"date": saturday.isoformat(), "kind": "workday"}],
        "application/json",
    )

    assert response.status_code == 409
    assert response.json()["code"] == "station_full"
    assert "Only room" in response.json()["detail"]
    assert database_rows() == before


def test_deleting_a_calendar_leaves_its_schedules_running_without_it(api_a, org_a, calendar):
    world.pools()
    plan = world.schedule(world.hire(org_a), world.station(org_a), holiday_calendar=calendar)
    wednesday = _next(2)
    Holiday.objects.create(organization=org_a, calendar=calendar, date=wednesday, kind="holiday")
    api_a.post(url(org_a, f"holiday-calendars/{calendar.pk}/import/"), [], format="json")

    response = api_a.delete(url(org_a, f"holiday-calendars/{calendar.pk}/"))

    assert response.status_code == 204
    plan.refresh_from_db()
    assert plan.holiday_calendar_id is None and plan.is_active
    assert wednesday in _local_days(org_a)


def test_days_are_listed_by_calendar_and_year(api_a, org_a, calendar):
    _import(api_a, org_a, calendar, CHINA_2026)
    other = HolidayCalendar.objects.create(organization=org_a, name="Other")
    Holiday.objects.create(
        organization=org_a, calendar=other, date=dt.date(2027, 1, 1), kind="holiday"
    )

    listed = api_a.get(url(org_a, "holidays/"), {"calendar": str(calendar.pk), "year": 2026})
    next_year = api_a.get(url(org_a, "holidays/"), {"year": 2027})

    rows = listed.json()["results"]
    assert len(rows) == 39
    assert rows[0]["date"] == "2026-01-01"  # by date
    assert [row["calendar"] for row in next_year.json()["results"]] == [str(other.pk)]


@pytest.mark.parametrize("change", ["add", "move"])
def test_a_day_taken_meanwhile_is_refused_with_day_taken(
    api_a, org_a, calendar, monkeypatch, change
):
    """Two requests for the same date at once: both find it free, the other one saves first.
    Simulated: the other request, whose row appears between this one's check and its save."""
    from scheduling import holidays

    day = _next(2, after=10)
    apply = holidays._apply

    def apply_while_another_saves(*args: Any, **kwargs: Any) -> None:
        apply(*args, **kwargs)
        Holiday.objects.create(organization=org_a, calendar=calendar, date=day, kind="holiday")

    before = database_rows()
    if change == "add":
        monkeypatch.setattr(holidays, "_apply", apply_while_another_saves)
        response = api_a.post(
            url(org_a, "holidays/"),
            {"calendar": str(calendar.pk), "date": day.isoformat(), "kind": "holiday"},
            format="json",
        )
    else:
        moved = Holiday.objects.create(
            organization=org_a, calendar=calendar, date=day + dt.timedelta(days=1), kind="holiday"
        )
        before = database_rows()
        monkeypatch.setattr(holidays, "_apply", apply_while_another_saves)
        response = api_a.patch(
            url(org_a, f"holidays/{moved.pk}/"), {"date": day.isoformat()}, format="json"
        )

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "day_taken"
    # Nothing of this request is left (the simulated other row was written in its transaction,
    # so it went too).
    assert database_rows() == before
