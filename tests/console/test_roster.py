"""The console's roster: the week and month calendar (stations × days in the organization's time
zone, shifts as blocks, what schedules will make beyond the horizon, holidays, 24/7 gaps), its
constant number of queries, and the forms that create, change and delete schedules — conflicts
explained next to the field, foreign ids refused like missing ones, roles, tenancy, one schedule
per submit.

Real Django stack, services, database and capacity calendar; shifts come from real schedules
(materialised by the service), a few then moved to states the duty machine would set. Nothing is
simulated; "now" is the real clock, so dates are computed from today.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ironbowl.console.queries import roster as calendar
from scheduling import services
from scheduling.models import DayKind, Holiday, HolidayCalendar, Schedule, Shift, ShiftState
from tenants.audit import SYSTEM
from tenants.models import Organization
from tenants.roles import Role
from tests.console.conftest import submit_token
from tests.factories import StationFactory
from tests.scheduling import schedules_world as world
from tests.support import database_rows

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def pools(db):
    return world.pools(live_workers=50, converse_workers=50)


def url(name: str, org: Organization, *args: object) -> str:
    return reverse(f"console:{name}", args=[org.slug, *args])


def today() -> dt.date:
    return timezone.localdate(timezone=SHANGHAI)


def week_param(day: dt.date) -> str:
    year, week, _day = day.isocalendar()
    return f"{year}-W{week:02d}"


def tomorrow() -> dt.date:
    return today() + dt.timedelta(days=1)


def blocks(html: str) -> list[str]:
    return re.findall(r'data-testid="block"[^>]*>(.*?)</(?:a|span)>\s*(?=<|$)', html, re.S)


def row_html(html: str, station_name: str) -> str:
    found = re.search(
        r"<tr data-station=[^>]*>\s*<th[^>]*>\s*<a [^>]*>"
        + re.escape(station_name)
        + r"</a>.*?</tr>",
        html,
        re.S,
    )
    assert found, f"no row for {station_name}"
    return found.group(0)


def field_html(html: str, name: str) -> str:
    found = re.search(
        r'<div class="field[^"]*">\s*<label for="field-' + re.escape(name) + r'".*?</div>',
        html,
        re.S,
    )
    assert found, f"no field {name}"
    return found.group(0)


def schedule_post(employment, station, token: str = "", **fields: object) -> dict[str, object]:
    data: dict[str, object] = {
        "employment": str(employment.pk),
        "station": str(station.pk),
        "byday": ["MO", "TU", "WE", "TH", "FR"],
        "rrule": "",
        "start_time": "19:00",
        "end_time": "20:30",
        "valid_from": tomorrow().isoformat(),
        "valid_until": "",
        "exdates": "",
        "holiday_calendar": "",
        "submit_token": token,
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def post_schedule(client: Client, org: Organization, employment, station, **fields: object):
    page = client.get(url("schedule-create", org)).content.decode()
    return client.post(
        url("schedule-create", org),
        schedule_post(employment, station, submit_token(page), **fields),
    )


# --- The calendar --------------------------------------------------------------------------------


def test_the_week_shows_each_stations_shifts_as_blocks_in_local_time(console_a, org_a):
    room = world.station(org_a, name="Health live room")
    hired = world.hire(org_a)
    world.schedule(hired, room, rrule="FREQ=DAILY", valid_from=tomorrow())
    next_week = today() + dt.timedelta(weeks=1)

    html = console_a.get(url("roster", org_a), {"week": week_param(next_week)}).content.decode()

    row = row_html(html, "Health live room")
    assert len(blocks(row)) == 7
    assert row.count("19:00–20:00") == 7
    assert hired.avatar.name_en in row
    assert 'data-testid="gap"' not in row
    assert "Asia/Shanghai" in html


def test_the_month_shows_every_day_of_the_month(console_a, org_a):
    room = world.station(org_a, name="Health live room")
    world.schedule(world.hire(org_a), room, rrule="FREQ=DAILY", valid_from=tomorrow())
    first = (today().replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    days = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - first

    html = console_a.get(url("roster", org_a), {"month": f"{first:%Y-%m}"}).content.decode()

    assert html.count('<th scope="col" class="day') == days.days
    assert len(blocks(row_html(html, "Health live room"))) == days.days


def test_beyond_the_horizon_the_calendar_shows_what_schedules_will_make(console_a, org_a):
    room = world.station(org_a, name="Health live room")
    world.schedule(world.hire(org_a), room, rrule="FREQ=DAILY", valid_from=tomorrow())
    later = today() + dt.timedelta(days=60)

    html = console_a.get(url("roster", org_a), {"week": week_param(later)}).content.decode()

    row = row_html(html, "Health live room")
    assert row.count("block projected") == 7
    assert "Not yet planned" in row
    assert (
        Shift.objects.for_organization(org_a)
        .filter(starts_at__date__gte=later - dt.timedelta(days=7))
        .count()
        == 0
    )


def test_a_24_7_station_shows_the_hours_no_shift_covers(console_a, org_a):
    desk = world.station(org_a, "kiosk", name="Service desk")
    covered = world.station(org_a, "kiosk", name="Covered desk")
    hired, other = world.hire(org_a), world.hire(org_a)
    world.schedule(hired, desk, **world.always_on(valid_from=today()))
    world.schedule(other, covered, **world.always_on(valid_from=today()))
    day_after = today() + dt.timedelta(days=2)
    midnight = dt.datetime.combine(day_after, dt.time(), SHANGHAI)
    Shift.objects.for_organization(org_a).filter(station=desk, starts_at=midnight).update(
        state=ShiftState.CANCELLED
    )

    html = console_a.get(url("roster", org_a), {"week": week_param(day_after)}).content.decode()

    row = row_html(html, "Service desk")
    assert row.count('data-testid="gap"') == 1
    assert "Uncovered all day" in row
    assert "24 h 0 min uncovered" in row
    assert "24/7" in row
    assert 'data-testid="gap"' not in row_html(html, "Covered desk")


def test_holidays_are_marked_on_their_day(console_a, org_a):
    world.station(org_a, name="Health live room")
    days_off = HolidayCalendar.objects.create(organization=org_a, name="China")
    Holiday.objects.create(
        organization=org_a,
        calendar=days_off,
        date=tomorrow(),
        kind=DayKind.HOLIDAY,
        name="Labour Day",
    )

    html = console_a.get(url("roster", org_a), {"week": week_param(tomorrow())}).content.decode()

    assert 'data-testid="holiday"' in html
    assert "Holiday: Labour Day" in html


def test_across_a_clock_change_each_day_is_one_local_day(console_a, org_a):
    org_a.time_zone = "America/New_York"
    org_a.save()
    desk = world.station(org_a, "kiosk", name="Service desk")
    room = world.station(org_a, name="Evening room")
    world.schedule(world.hire(org_a), desk, **world.always_on(valid_from=today()))
    world.schedule(world.hire(org_a), room, rrule="FREQ=DAILY", valid_from=tomorrow())
    # The week in which New York's clocks next go forward (a 23-hour Sunday).
    day = today()
    while NEW_YORK.utcoffset(dt.datetime.combine(day, dt.time(12))) >= NEW_YORK.utcoffset(
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time(12))
    ):
        day += dt.timedelta(days=1)
    day += dt.timedelta(days=1)

    html = console_a.get(url("roster", org_a), {"week": week_param(day)}).content.decode()

    assert row_html(html, "Service desk").count("All day") == 7
    assert row_html(html, "Evening room").count("19:00–20:00") == 7
    assert "America/New_York" in html


def test_a_bad_period_shows_this_week_and_says_so(console_a, org_a):
    html = console_a.get(url("roster", org_a), {"week": "2026-W77"}).content.decode()

    assert "That is not a week" in html
    assert f"week={week_param(today() + dt.timedelta(weeks=1))}" in html  # the next-week link


def test_periods_step_across_years():
    week = calendar.period_from("2026-W01", None, dt.date(2026, 5, 5), SHANGHAI)
    month = calendar.period_from(None, "2026-01", dt.date(2026, 5, 5), SHANGHAI)
    assert week is not None and month is not None

    assert week.neighbour(-1).param == "2025-W52"
    assert month.neighbour(-1).param == "2025-12"
    assert month.neighbour(12).param == "2027-01"
    assert len(calendar.period_from(None, "2028-02", dt.date(2026, 5, 5), SHANGHAI).days) == 29
    assert calendar.period_from(None, "2026-13", dt.date(2026, 5, 5), SHANGHAI) is None
    assert calendar.period_from("W5", None, dt.date(2026, 5, 5), SHANGHAI) is None


def test_stations_come_fifty_a_page_and_are_searched(console_a, org_a):
    for n in range(55):
        StationFactory(organization=org_a, name=f"Room {n:02d}")
    StationFactory(organization=org_a, name="Front desk", kind="kiosk")

    first = console_a.get(url("roster", org_a)).content.decode()
    second = console_a.get(url("roster", org_a), {"page": 2}).content.decode()
    found = console_a.get(url("roster", org_a), {"q": "front"}).content.decode()

    assert first.count("<tr data-station=") == 50
    assert second.count("<tr data-station=") == 6
    assert found.count("<tr data-station=") == 1 and "Front desk" in found


def _fill(org: Organization, stations: int, prefix: str) -> None:
    for n in range(stations):
        room = world.station(org, name=f"{prefix} room {n:02d}")
        world.schedule(world.hire(org), room, rrule="FREQ=DAILY", valid_from=tomorrow())
        if n % 2:
            desk = world.station(org, "kiosk", name=f"{prefix} desk {n:02d}")
            world.schedule(world.hire(org), desk, **world.always_on(valid_from=today()))
    days_off = HolidayCalendar.objects.create(organization=org, name=f"{prefix} days off")
    Holiday.objects.create(
        organization=org, calendar=days_off, date=tomorrow(), kind=DayKind.HOLIDAY
    )


@pytest.mark.parametrize("view", ["week", "month"])
def test_the_roster_reads_a_fixed_number_of_queries_whatever_the_stations(
    view, console_a, org_a, django_assert_max_num_queries
):
    period = {"week": week_param(tomorrow())} if view == "week" else {"month": f"{today():%Y-%m}"}
    _fill(org_a, 2, "A")
    with CaptureQueriesContext(connection) as few:
        assert console_a.get(url("roster", org_a), period).status_code == 200
    _fill(org_a, 12, "B")

    with django_assert_max_num_queries(len(few.captured_queries)):
        html = console_a.get(url("roster", org_a), period).content.decode()

    assert html.count("<tr data-station=") == 2 + 1 + 12 + 6
    assert len(few.captured_queries) <= 20


# --- Creating a schedule -------------------------------------------------------------------------


def test_a_schedule_is_made_from_the_form_and_its_shifts_show(console_a, org_a):
    """Weekdays from next Monday: the week the roster opens at holds shifts whatever day the
    test runs on (from a Saturday, a weekday schedule valid from tomorrow has none that week)."""
    room, hired = world.station(org_a, name="Health live room"), world.hire(org_a)
    monday = today() + dt.timedelta(days=7 - today().weekday())

    response = post_schedule(
        console_a,
        org_a,
        hired,
        room,
        start_time="22:00",
        end_time="02:00",
        valid_from=monday.isoformat(),
    )

    made = Schedule.objects.for_organization(org_a).get()
    assert response.status_code == 302
    assert response["Location"] == f"{url('roster', org_a)}?week={week_param(monday)}"
    assert made.rrule == "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
    assert (made.start_time, made.duration_minutes) == (dt.time(22), 240)
    assert made.valid_from == monday
    assert Shift.objects.for_organization(org_a).filter(schedule=made).exists()
    page = console_a.get(response["Location"]).content.decode()
    assert "Schedule saved." in page
    assert "22:00–02:00" in page


def test_the_form_offers_the_station_and_day_it_was_opened_for(console_a, org_a):
    room = world.station(org_a, name="Health live room")
    hired = world.hire(org_a)
    world.hire(org_a, status="suspended")

    html = console_a.get(
        url("schedule-create", org_a), {"station": str(room.pk), "date": "2030-01-07"}
    ).content.decode()

    assert f'<option value="{room.pk}" selected>' in html
    assert 'value="2030-01-07"' in html
    assert str(hired.pk) in field_html(html, "employment")
    assert field_html(html, "employment").count("<option value=") == 1  # the active hire only


def test_a_conflict_is_explained_next_to_its_field_and_nothing_is_made(console_a, org_a):
    room = world.station(org_a, name="Health live room")
    world.schedule(world.hire(org_a), room, valid_from=tomorrow(), start_time=dt.time(19))
    busy, free, spare = world.hire(org_a), world.hire(org_a), world.station(org_a)
    world.schedule(busy, world.station(org_a), valid_from=tomorrow(), start_time=dt.time(9))
    before = database_rows()

    full = post_schedule(console_a, org_a, free, room, start_time="19:30")
    twice = post_schedule(console_a, org_a, busy, spare, start_time="09:30", end_time="10:00")

    assert full.status_code == twice.status_code == 409
    station = field_html(full.content.decode(), "station")
    assert "would have 2 employees on air; it allows 1 at once" in station
    employment = field_html(twice.content.decode(), "employment")
    assert "would work 2 shifts at once" in employment
    assert 'value="19:30"' in full.content.decode()  # what was typed stays
    assert Schedule.objects.for_organization(org_a).count() == 2
    assert database_rows() == before


def test_bad_input_is_named_next_to_each_field(console_a, org_a):
    room, hired = world.station(org_a), world.hire(org_a)
    before = database_rows()

    no_day = post_schedule(console_a, org_a, hired, room, valid_from="", end_time="25:99")
    no_rule = post_schedule(console_a, org_a, hired, room, byday=[], rrule="")
    bad_rule = post_schedule(console_a, org_a, hired, room, rrule="FREQ=SECONDLY")
    bad_days = post_schedule(console_a, org_a, hired, room, exdates="2026-02-30")

    assert no_day.status_code == 400
    assert "errors" in field_html(no_day.content.decode(), "valid_from")
    assert "Give a time such as 21:00." in field_html(no_day.content.decode(), "end_time")
    assert "A recurrence rule is required" in field_html(no_rule.content.decode(), "rrule")
    assert "too frequent" in field_html(bad_rule.content.decode(), "rrule")
    assert "errors" in field_html(bad_days.content.decode(), "exdates")
    assert database_rows() == before


def test_foreign_ids_are_refused_like_missing_ones(console_a, org_a, org_b):
    room, hired = world.station(org_a), world.hire(org_a)
    their_room, their_hire = world.station(org_b), world.hire(org_b)
    before = database_rows()

    foreign = post_schedule(console_a, org_a, their_hire, their_room).content.decode()
    page = console_a.get(url("schedule-create", org_a)).content.decode()
    missing = console_a.post(
        url("schedule-create", org_a),
        {
            **schedule_post(hired, room, submit_token(page)),
            "employment": MISSING,
            "station": MISSING,
        },
    ).content.decode()

    for name, theirs in (("employment", their_hire.pk), ("station", their_room.pk)):
        said_foreign = re.findall(r"<li>(.*?)</li>", field_html(foreign, name))
        said_missing = re.findall(r"<li>(.*?)</li>", field_html(missing, name))
        assert said_foreign == [m.replace(MISSING, str(theirs)) for m in said_missing]
        assert said_foreign and "No such object" in said_foreign[0]
    assert database_rows() == before


def test_a_double_submit_makes_one_schedule(console_a, org_a):
    room, hired = world.station(org_a), world.hire(org_a)
    page = console_a.get(url("schedule-create", org_a)).content.decode()
    data = schedule_post(hired, room, submit_token(page))

    first = console_a.post(url("schedule-create", org_a), data)
    second = console_a.post(url("schedule-create", org_a), data)

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Schedule.objects.for_organization(org_a).count() == 1


# --- Changing and deleting -----------------------------------------------------------------------


def test_a_schedule_is_changed_switched_off_and_deleted(console_a, org_a):
    room, hired = world.station(org_a, name="Health live room"), world.hire(org_a)
    plan = world.schedule(hired, room, valid_from=tomorrow())
    edit = url("schedule-edit", org_a, plan.pk)

    page = console_a.get(edit).content.decode()
    assert 'value="19:00"' in page and 'value="20:00"' in page
    assert re.search(r'value="MO" checked', page)
    changed = console_a.post(
        edit,
        schedule_post(hired, room, submit_token(page), end_time="21:00", is_active="true"),
    )
    plan.refresh_from_db()
    assert changed.status_code == 302
    assert (plan.duration_minutes, plan.version, plan.is_active) == (120, 2, True)

    page = console_a.get(edit).content.decode()
    console_a.post(edit, schedule_post(hired, room, submit_token(page), end_time="21:00"))
    plan.refresh_from_db()
    assert plan.is_active is False

    page = console_a.get(edit).content.decode()
    delete_token = re.findall(r'name="submit_token" value="([^"]+)"', page)[1]
    deleted = console_a.post(url("schedule-delete", org_a, plan.pk), {"submit_token": delete_token})
    assert deleted.status_code == 302
    assert not Schedule.objects.for_organization(org_a).exists()


def test_a_schedule_with_history_is_not_deleted_and_the_page_says_why(console_a, org_a):
    desk, hired = world.station(org_a, "kiosk"), world.hire(org_a)
    plan = world.schedule(hired, desk, **world.always_on(valid_from=today()))

    refused = console_a.post(url("schedule-delete", org_a, plan.pk))

    assert refused.status_code == 409
    assert "switch it off" in refused.content.decode()
    assert Schedule.objects.for_organization(org_a).filter(pk=plan.pk).exists()


# --- Roles ---------------------------------------------------------------------------------------


def test_an_analyst_reads_the_roster_but_changes_no_schedule(org_a, member_factory, console_for):
    client = console_for(member_factory(org_a, Role.ANALYST))
    room, hired = world.station(org_a, name="Health live room"), world.hire(org_a)
    plan = world.schedule(hired, room, rrule="FREQ=DAILY", valid_from=tomorrow())

    html = client.get(url("roster", org_a), {"week": week_param(tomorrow())}).content.decode()
    create_page = client.get(url("schedule-create", org_a))
    create = client.post(url("schedule-create", org_a), schedule_post(hired, room))
    edit = client.post(url("schedule-edit", org_a, plan.pk), schedule_post(hired, room))
    delete = client.post(url("schedule-delete", org_a, plan.pk))

    assert 'data-testid="block"' in html
    assert url("schedule-edit", org_a, plan.pk) not in html
    assert 'data-testid="new-schedule"' not in html
    assert [create_page.status_code, create.status_code, edit.status_code, delete.status_code] == [
        403
    ] * 4
    assert Schedule.objects.for_organization(org_a).count() == 1


def test_an_operator_schedules_only_at_stations_granted_to_them(org_a, member_factory, console_for):
    operator = member_factory(org_a, Role.OPERATOR)
    client = console_for(operator)
    granted, other = world.station(org_a, name="Granted"), world.station(org_a, name="Other")
    services.grant_station_operator(SYSTEM, granted, operator)
    theirs = world.schedule(world.hire(org_a), other, valid_from=tomorrow())

    refused = post_schedule(client, org_a, world.hire(org_a), other)
    made = post_schedule(client, org_a, world.hire(org_a), granted)
    edit_other = client.get(url("schedule-edit", org_a, theirs.pk))

    assert refused.status_code == 400
    assert "You do not operate this station" in field_html(refused.content.decode(), "station")
    assert made.status_code == 302
    assert edit_other.status_code == 403
    assert set(
        Schedule.objects.for_organization(org_a).values_list("station__name", flat=True)
    ) == {
        "Granted",
        "Other",
    }


# --- Tenancy -------------------------------------------------------------------------------------


def test_another_organizations_schedules_answer_404_whatever_the_url(console_b, org_a, org_b):
    room, hired = world.station(org_a), world.hire(org_a)
    plan = world.schedule(hired, room, valid_from=tomorrow())
    before = database_rows()

    answers = [
        console_b.get(url("schedule-edit", org_b, plan.pk)),
        console_b.get(url("schedule-edit", org_a, plan.pk)),
        console_b.get(url("roster", org_a)),
        console_b.post(url("schedule-edit", org_b, plan.pk), schedule_post(hired, room)),
        console_b.post(url("schedule-delete", org_b, plan.pk)),
        console_b.post(url("schedule-create", org_a), schedule_post(hired, room)),
    ]

    assert [a.status_code for a in answers] == [404] * 6
    assert database_rows() == before


def test_another_organizations_stations_and_shifts_never_show(console_a, org_a, org_b):
    world.schedule(
        world.hire(org_b),
        world.station(org_b, name="Beta secret room"),
        rrule="FREQ=DAILY",
        valid_from=tomorrow(),
    )
    world.station(org_a, name="Alpha room")

    week = console_a.get(url("roster", org_a), {"week": week_param(tomorrow())}).content.decode()
    month = console_a.get(url("roster", org_a), {"month": f"{tomorrow():%Y-%m}"}).content.decode()
    form = console_a.get(url("schedule-create", org_a)).content.decode()

    for html in (week, month, form):
        assert "Beta secret room" not in html
        assert 'data-testid="block"' not in html


def test_the_roster_and_its_form_render_in_chinese(console_a, org_a):
    room = world.station(org_a, name="Health live room")
    world.schedule(world.hire(org_a), room, rrule="FREQ=DAILY", valid_from=tomorrow())
    console_a.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})

    week = console_a.get(url("roster", org_a), {"week": week_param(tomorrow())})
    month = console_a.get(url("roster", org_a), {"month": f"{tomorrow():%Y-%m}"})
    form = console_a.get(url("schedule-create", org_a))

    for page in (week, month, form):
        assert page.status_code == 200
        assert 'lang="zh-hans"' in page.content.decode()
    assert "19:00–20:00" in week.content.decode()
