"""The roster API: shifts over a range for a calendar (organization, station or employment),
in the organization's time zone and in cursor pages, and the coverage gaps of 24/7 stations.

Real views, services and database; shifts come from real schedules (materialised by the
service), some then moved to states the duty machine would set. Nothing is simulated.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduling.models import Holiday, HolidayCalendar, Shift, ShiftState
from tenants.models import Organization
from tests.scheduling import schedules_world as world

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def url(org: Organization, path: str = "") -> str:
    return f"/api/v1/orgs/{org.slug}/roster/{path}"


@pytest.fixture
def pools(db):
    return world.pools()


def test_the_roster_lists_shifts_of_the_range_earliest_first_in_local_time(api_a, org_a, pools):
    room = world.station(org_a)
    today = timezone.localdate()
    # From tomorrow: an occurrence under way when the schedule is made starts then, not at 19:00
    # (test_materialise covers that), so today's would depend on the hour the test runs.
    tomorrow = today + dt.timedelta(days=1)
    world.schedule(world.hire(org_a), room, rrule="FREQ=DAILY", valid_from=tomorrow)

    week = api_a.get(url(org_a)).json()["results"]
    three_days = api_a.get(
        url(org_a),
        {
            "start": (today + dt.timedelta(days=1)).isoformat(),
            "end": f"{today + dt.timedelta(days=4)}T00:00",
        },
    ).json()["results"]

    assert len(week) == 6  # today's local midnight and the six days after it
    starts = [row["starts_at"] for row in week]
    assert starts == sorted(starts)
    assert all(s.endswith("T19:00:00+08:00") for s in starts)
    assert [row["starts_at"][:10] for row in three_days] == [
        (today + dt.timedelta(days=n)).isoformat() for n in (1, 2, 3)
    ]
    assert three_days[0]["station"] == str(room.pk)
    assert {"state", "at_risk", "risk_reason", "schedule", "employment"} <= set(three_days[0])


def test_the_roster_narrows_to_a_station_or_an_employment(api_a, org_a, pools):
    hired, room = world.hire(org_a), world.station(org_a)
    world.schedule(hired, room, rrule="FREQ=DAILY")
    world.schedule(world.hire(org_a), world.station(org_a), rrule="FREQ=DAILY")

    everyone = api_a.get(url(org_a)).json()["results"]
    by_station = api_a.get(url(org_a), {"station": str(room.pk)}).json()["results"]
    by_employment = api_a.get(url(org_a), {"employment": str(hired.pk)}).json()["results"]

    assert len(everyone) == 2 * len(by_station)
    assert {row["station"] for row in by_station} == {str(room.pk)}
    assert by_employment == by_station


def test_a_shift_that_started_before_the_range_but_runs_into_it_is_listed(api_a, org_a, pools):
    desk = world.station(org_a, "kiosk")
    world.schedule(world.hire(org_a), desk, **world.always_on(valid_from=timezone.localdate()))
    noon = dt.datetime.combine(timezone.localdate() + dt.timedelta(days=2), dt.time(12), SHANGHAI)

    rows = api_a.get(
        url(org_a), {"start": noon.isoformat(), "end": (noon + dt.timedelta(hours=1)).isoformat()}
    )

    assert [row["starts_at"][11:19] for row in rows.json()["results"]] == ["00:00:00"]


def test_pages_follow_the_cursor_without_repeating_a_shift(api_a, org_a, pools):
    world.schedule(world.hire(org_a), world.station(org_a), rrule="FREQ=DAILY")
    world.schedule(world.hire(org_a), world.station(org_a), rrule="FREQ=DAILY")
    whole = [row["id"] for row in api_a.get(url(org_a)).json()["results"]]

    seen, link = [], url(org_a) + "?page_size=3"
    while link:
        page = api_a.get(link).json()
        seen += [row["id"] for row in page["results"]]
        link = page["next"]

    assert seen == whole
    assert len(seen) > 6


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start": "2026-03-10", "end": "2026-03-01"}, "end"),
        ({"start": "2026-01-01", "end": "2026-04-01"}, "end"),
        ({"start": "yesterday"}, "start"),
        ({"start": "0001-01-01"}, "start"),
    ],
)
def test_a_bad_range_is_refused_with_the_field(api_a, org_a, query, field):
    response = api_a.get(url(org_a), query)

    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_the_roster_costs_the_same_queries_for_a_day_and_a_month(api_a, org_a, pools):
    for _ in range(3):
        world.schedule(world.hire(org_a), world.station(org_a), rrule="FREQ=DAILY")
    today = timezone.localdate()
    day = {"start": today.isoformat(), "end": (today + dt.timedelta(days=1)).isoformat()}
    month = {"start": today.isoformat(), "end": (today + dt.timedelta(days=31)).isoformat()}
    api_a.get(url(org_a), day)  # warms per-process caches

    with CaptureQueriesContext(connection) as few:
        small = api_a.get(url(org_a), day)
    with CaptureQueriesContext(connection) as many:
        large = api_a.get(url(org_a), month)

    assert len(small.json()["results"]) < len(large.json()["results"])
    assert len(few) == len(many)


# --- Gaps of 24/7 stations ------------------------------------------------------------------------


def _desk(org_a, **fields):
    desk = world.station(org_a, "web_widget", name="Service desk")
    plan = world.schedule(
        world.hire(org_a), desk, **world.always_on(valid_from=timezone.localdate(), **fields)
    )
    return desk, plan


def _day(offset: int) -> tuple[dt.datetime, dt.datetime]:
    day = timezone.localdate() + dt.timedelta(days=offset)
    start = dt.datetime.combine(day, dt.time(), SHANGHAI)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), SHANGHAI)


def test_a_fully_staffed_24_7_desk_has_no_gaps(api_a, org_a, pools):
    _desk(org_a)

    response = api_a.get(url(org_a, "gaps/"))

    assert response.status_code == 200
    assert response.json() == []


def test_a_missed_day_and_a_shift_stopped_early_are_gaps_in_local_time(api_a, org_a, pools):
    desk, plan = _desk(org_a)
    shifts = Shift.objects.for_organization(org_a).filter(schedule=plan)
    start_2, end_2 = _day(2)
    start_3, _end_3 = _day(3)
    shifts.filter(starts_at=start_2).update(state=ShiftState.MISSED)
    stopped_at = start_3 + dt.timedelta(hours=15)
    shifts.filter(starts_at=start_3).update(state=ShiftState.ENDED, ended_at=stopped_at)

    gaps = api_a.get(url(org_a, "gaps/"), {"station": str(desk.pk)}).json()

    assert gaps == [
        {
            "station": str(desk.pk),
            "starts_at": start_2.isoformat(),
            "ends_at": end_2.isoformat(),
            "minutes": 24 * 60,
        },
        {
            "station": str(desk.pk),
            "starts_at": stopped_at.isoformat(),
            "ends_at": _day(4)[0].isoformat(),
            "minutes": 9 * 60,
        },
    ]


def test_holidays_of_a_24_7_desk_are_days_off_not_gaps(api_a, org_a, pools):
    calendar = HolidayCalendar.objects.create(organization=org_a, name="Closures")
    _desk(org_a, holiday_calendar=calendar)
    closed = timezone.localdate() + dt.timedelta(days=3)
    api_a.post(
        f"/api/v1/orgs/{org_a.slug}/holidays/",
        {"calendar": str(calendar.pk), "date": closed.isoformat(), "kind": "holiday"},
        "json",
    )

    assert Holiday.objects.for_organization(org_a).count() == 1
    assert api_a.get(url(org_a, "gaps/")).json() == []


def test_no_gap_is_reported_beyond_the_horizon_where_no_shift_exists_yet(api_a, org_a, pools):
    _desk(org_a)
    today = timezone.localdate()

    response = api_a.get(
        url(org_a, "gaps/"),
        {
            "start": (today + dt.timedelta(days=20)).isoformat(),
            "end": (today + dt.timedelta(days=40)).isoformat(),
        },
    )

    assert response.json() == []


def test_the_gaps_of_another_organizations_station_look_like_a_missing_ones(
    api_a, api_b, org_a, org_b, pools
):
    desk, _plan = _desk(org_a)

    foreign = api_b.get(url(org_b, "gaps/"), {"station": str(desk.pk)})
    missing = api_b.get(url(org_b, "gaps/"), {"station": "00000000-0000-4000-8000-000000000000"})

    assert foreign.status_code == missing.status_code == 400
    assert (
        foreign.json()["fields"]["station"][0]["code"]
        == missing.json()["fields"]["station"][0]["code"]
    )
