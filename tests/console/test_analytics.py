"""The console's analytics pages: KPIs over time, comparisons and ROI from real rollups, in the
organization's time zone; a range checked on the server with errors next to its fields; the
API's CSV opened with the console's session; another organization's figures and ids never seen.

Real: events stored by `ingestion.ingest` (the intake's service: validation, attribution against
the organization's employments and stations) and `rollups.run()` building the rollups; the pages
through Django's test client signed in as members; the KPI and ROI selectors; the API's CSV; the
database the suite runs on (SQLite, or PostgreSQL with its event partitions). Simulated: nothing;
"now" is the real clock, so the events are placed at local noon of days just past.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid
import zoneinfo
from decimal import Decimal

import pytest
from django.utils import timezone

from ironbowl.analytics import ingestion, kpis, partitions, roi, rollups
from tenants.audit import SYSTEM
from tenants.roles import Role
from tests import factories
from tests.avatars.factories import EmploymentFactory, ready_avatar
from tests.billing.conftest import hire

pytestmark = pytest.mark.django_db

# org_b's figures: numbers that nothing of org_a's adds up to.
B_VISITS = 1237


@pytest.fixture(autouse=True)
def _partitions_forgotten():
    """A test's rollback drops the event partitions it made; the process must forget them."""
    partitions.forget()
    yield
    partitions.forget()


def today(organization) -> dt.date:
    return timezone.localdate(timezone=zoneinfo.ZoneInfo(organization.time_zone))


def noon(organization, days_ago: int, minute: int = 0) -> dt.datetime:
    """Local noon (and some minutes) of a day just past, in the organization's zone."""
    day = today(organization) - dt.timedelta(days=days_ago)
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    return dt.datetime.combine(day, dt.time(12, minute), tzinfo=zone)


def send(organization, kind: str, count: int, at: dt.datetime, **ids) -> None:
    """`count` events of one kind through the ingestion service (as the intake stores them)."""
    batch = [
        {
            "id": f"{kind}-{uuid.uuid4().hex}",
            "type": kind,
            "occurred_at": at.isoformat(),
            **{name: str(value.pk) for name, value in ids.items()},
        }
        for _ in range(count)
    ]
    result = ingestion.ingest(organization, batch)
    assert result.accepted == count, result.errors


def employee(organization, name: str, name_en: str = ""):
    """A hire named `name` (its avatar's Chinese name; an English one only when given)."""
    return EmploymentFactory(
        organization=organization,
        avatar=ready_avatar(visibility="public", name_zh=name, name_en=name_en),
    )


@pytest.fixture
def world(org_a, org_b):
    """org_a: two digital employees at two stations; org_b: one, with distinctive numbers."""
    anchor, desk = employee(org_a, "小安"), employee(org_a, "小宁")
    hall = factories.StationFactory(organization=org_a, name="门诊大厅")
    room = factories.StationFactory(organization=org_a, name="健康直播间")
    send(org_a, "visit", 7, noon(org_a, 2), employment=anchor, station=room)
    send(org_a, "interaction", 4, noon(org_a, 2), employment=anchor, station=room)
    send(org_a, "handoff", 1, noon(org_a, 2), employment=anchor, station=room)
    send(org_a, "visit", 5, noon(org_a, 1), employment=desk, station=hall)
    send(org_a, "interaction", 3, noon(org_a, 1, minute=30), employment=desk, station=hall)
    stranger = employee(org_b, "贝塔主播")
    lobby = factories.StationFactory(organization=org_b, name="贝塔大厅")
    send(org_b, "visit", B_VISITS, noon(org_b, 2), employment=stranger, station=lobby)
    report = rollups.run()
    assert report.failed == 0
    return {"anchor": anchor, "desk": desk, "hall": hall, "room": room, "stranger": stranger}


def page(organization, name: str = "") -> str:
    return f"/console/o/{organization.slug}/analytics/{name}"


def week_of(organization) -> dict[str, str]:
    last = today(organization)
    return {"from": (last - dt.timedelta(days=6)).isoformat(), "to": last.isoformat()}


def kpi(html: str, name: str) -> str:
    match = re.search(rf'data-kpi="{name}"><div class="value">([^<]*)<', html)
    assert match, f"no KPI card {name}"
    return match.group(1)


def field_errors(html: str, name: str) -> list[str]:
    """The errors shown next to one field of a form (the field partial's markup)."""
    for chunk in html.split('<div class="field')[1:]:
        if f'id="field-{name}"' in chunk.split("</div>")[0]:
            return re.findall(r"<li>([^<]*)</li>", chunk.split("</div>")[0])
    raise AssertionError(f"no field {name}")


def table_rows(html: str, testid: str) -> list[list[str]]:
    """The text of each body cell of a table, row by row (markup dropped, spaces squeezed)."""
    table = html.split(f'data-testid="{testid}"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    return [
        [
            " ".join(re.sub(r"<[^>]+>", " ", cell).split())
            for cell in re.findall(r"<td>(.*?)</td>", row, re.S)
        ]
        for row in rows
    ]


# --- Over time -----------------------------------------------------------------------------------


def test_kpis_over_time_come_from_the_ingested_events(console_a, org_a, world):
    response = console_a.get(page(org_a), week_of(org_a))

    assert response.status_code == 200
    html = response.content.decode()
    assert kpi(html, "visits") == "12"
    assert kpi(html, "interactions") == "7"
    assert kpi(html, "handoffs") == "1"
    assert kpi(html, "answered_share") == "85.7%"  # 6 of 7 without a person
    assert html.count('<svg class="chart"') == 3
    # Every local day of the range is a bucket; days without events show zeros.
    rows = table_rows(html, "buckets")
    assert len(rows) == 7
    by_day = {row[0]: row[1] for row in rows}
    assert by_day[noon(org_a, 2).strftime("%m-%d")] == "7"
    assert by_day[noon(org_a, 1).strftime("%m-%d")] == "5"
    assert by_day[noon(org_a, 3).strftime("%m-%d")] == "0"
    first, last = week_of(org_a)["from"], week_of(org_a)["to"]
    assert f"From {first} to {last}" in html and "Asia/Shanghai" in html


def test_without_a_range_the_page_shows_the_last_seven_local_days(console_a, org_a, world):
    html = console_a.get(page(org_a)).content.decode()

    assert len(table_rows(html, "buckets")) == 7
    assert kpi(html, "visits") == "12"
    assert f'value="{today(org_a).isoformat()}"' in html  # the form shows the range it used


def test_hours_are_buckets_of_the_organizations_local_time(console_a, org_a, world):
    day = noon(org_a, 1).date().isoformat()

    html = console_a.get(page(org_a), {"from": day, "to": day, "granularity": "hour"}).content
    rows = {row[0]: row[1] for row in table_rows(html.decode(), "buckets")}

    label = noon(org_a, 1).strftime("%m-%d")
    assert len(rows) == 24  # a local day, 00:00 to 23:00
    assert rows[f"{label} 12:00"] == "5"  # the visits at local noon
    assert rows[f"{label} 11:00"] == rows[f"{label} 13:00"] == "0"


def test_months_sum_their_days(console_a, org_a, world):
    first = today(org_a) - dt.timedelta(days=40)
    query = {"from": first.isoformat(), "to": today(org_a).isoformat(), "granularity": "month"}

    html = console_a.get(page(org_a), query).content.decode()

    months = re.findall(r"<td>(\d{4}-\d{2})</td><td>(\d+)</td>", html)
    assert [month for month, _visits in months][-1] == today(org_a).strftime("%Y-%m")
    assert sum(int(visits) for _month, visits in months) == 12


def test_one_employee_or_one_station(console_a, org_a, world):
    mine = console_a.get(page(org_a), {**week_of(org_a), "employment": world["anchor"].pk})
    hall = console_a.get(page(org_a), {**week_of(org_a), "station": world["hall"].pk})

    assert kpi(mine.content.decode(), "visits") == "7"
    assert kpi(hall.content.decode(), "visits") == "5"


def test_the_csv_link_opens_the_apis_csv_with_the_console_session(console_a, org_a, world):
    html = console_a.get(page(org_a), {**week_of(org_a), "station": world["room"].pk}).content
    link = (
        re.search(r'href="([^"]+)" data-testid="csv"', html.decode()).group(1).replace("&amp;", "&")
    )

    response = console_a.get(link)

    assert link.startswith(f"/api/v1/orgs/{org_a.slug}/analytics/kpis/?")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == 7
    assert sum(int(row["visits"]) for row in rows) == 7
    assert rows[0]["starts_at"].endswith("+08:00")


# --- Bad input -----------------------------------------------------------------------------------


def test_an_end_before_the_start_is_shown_next_to_the_end(console_a, org_a, world):
    response = console_a.get(page(org_a), {"from": "2025-03-10", "to": "2025-03-01"})

    html = response.content.decode()
    assert response.status_code == 200
    assert field_errors(html, "to") == ["The end of the range must be after its start."]
    assert 'data-testid="totals"' not in html and 'data-testid="csv"' not in html


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2025-02-30"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2025-01-01", "to": "2025-03-01", "granularity": "hour"}, "to"),
        ({"granularity": "fortnight"}, "granularity"),
        ({"employment": "not-an-id"}, "employment"),
    ],
)
def test_a_bad_field_is_refused_next_to_it(console_a, org_a, query, field):
    html = console_a.get(page(org_a), query).content.decode()

    assert field_errors(html, field)
    assert 'data-testid="totals"' not in html


def test_another_organizations_employee_is_refused_like_a_missing_one(console_a, org_a, world):
    foreign = console_a.get(page(org_a), {"employment": world["stranger"].pk})
    missing = console_a.get(page(org_a), {"employment": uuid.uuid4()})

    foreign_html, missing_html = foreign.content.decode(), missing.content.decode()
    assert foreign.status_code == missing.status_code == 200
    assert field_errors(foreign_html, "employment") == ["There is no such employee."]
    assert field_errors(missing_html, "employment") == ["There is no such employee."]
    assert "贝塔主播" not in foreign_html and str(B_VISITS) not in foreign_html
    assert 'data-testid="totals"' not in foreign_html


# --- Compare -------------------------------------------------------------------------------------


def test_compare_employees_with_a_bar_chart_and_a_table(console_a, org_a, world):
    response = console_a.get(page(org_a, "compare/"), {**week_of(org_a), "sort": "visits"})

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<svg class="chart"') == 1
    assert "小安: 7" in html and "小宁: 5" in html  # the bars' tooltips
    rows = table_rows(html, "compare")
    assert [(row[0].split()[0], row[1]) for row in rows] == [("小安", "7"), ("小宁", "5")]


def test_compare_stations_sorted_by_another_kpi(console_a, org_a, world):
    query = {**week_of(org_a), "by": "station", "sort": "interactions"}

    html = console_a.get(page(org_a, "compare/"), query).content.decode()

    names = [row[0] for row in table_rows(html, "compare")]
    assert names == ["健康直播间", "门诊大厅"]  # 4 interactions, then 3
    assert "健康直播间: 4" in html
    link = re.search(r'href="([^"]+)" data-testid="csv"', html).group(1).replace("&amp;", "&")
    exported = console_a.get(link)
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [row["name"] for row in rows] == ["健康直播间", "门诊大厅"]


def test_compare_refuses_an_unknown_dimension_next_to_it(console_a, org_a, world):
    html = console_a.get(page(org_a, "compare/"), {"by": "position"}).content.decode()

    assert field_errors(html, "by") == ["Compare by employment or station."]
    assert 'data-testid="compare"' not in html


# --- ROI -----------------------------------------------------------------------------------------


@pytest.fixture
def valued(org_a, world):
    """org_a says what a visit is worth; a hire on the payroll (active since long ago) costs."""
    roi.set_outcome_values(
        SYSTEM,
        org_a,
        currency="CNY",
        per_visit=Decimal("2.50"),
        per_interaction=Decimal(0),
        per_viewer_hour=Decimal(0),
        per_handoff_avoided=Decimal(0),
    )
    return hire(org_a, name="小薪")


def test_roi_shows_value_cost_and_the_prices_used(console_a, org_a, valued):
    response = console_a.get(page(org_a, "roi/"), week_of(org_a))

    html = response.content.decode()
    assert response.status_code == 200
    span = kpis.day_window(org_a, None, None, now=timezone.now())  # the same seven days
    expected = roi.report(org_a, span).valuation
    assert 'data-roi="value"><div class="value">CNY 30.00<' in html  # 12 visits at 2.50
    assert f'data-roi="cost"><div class="value">CNY {expected.cost:,.2f}<' in html
    assert expected.cost >= Decimal("210.00")  # seven seat-days at least
    assert f"{expected.roi * 100:,.2f}%" in html
    assert "billing plan" in html and "list rates" not in html
    assert 'data-testid="values-unset"' not in html
    names = [row[0].split()[0] for row in table_rows(html, "scorecards")]
    assert "小薪" in names and "小安" in names


def test_roi_in_another_currency_says_list_rates_were_used(console_a, org_a, world):
    roi.set_outcome_values(
        SYSTEM,
        org_a,
        currency="USD",
        per_visit=Decimal("1.00"),
        per_interaction=Decimal(0),
        per_viewer_hour=Decimal(0),
        per_handoff_avoided=Decimal(0),
    )

    html = console_a.get(page(org_a, "roi/"), week_of(org_a)).content.decode()

    assert 'data-roi="value"><div class="value">USD 12.00<' in html
    assert "list rates in USD" in html


def test_roi_before_outcome_values_are_set_says_so(console_a, org_a, world):
    html = console_a.get(page(org_a, "roi/"), week_of(org_a)).content.decode()

    assert 'data-testid="values-unset"' in html
    assert 'data-roi="roi"><div class="value">—<' in html


def test_roi_of_one_employee(console_a, org_a, valued, world):
    query = {**week_of(org_a), "employment": world["desk"].pk}

    html = console_a.get(page(org_a, "roi/"), query).content.decode()

    assert 'data-roi="value"><div class="value">CNY 12.50<' in html  # 5 visits at 2.50
    assert 'data-testid="scorecards"' not in html


# --- Tenancy and roles ---------------------------------------------------------------------------


def test_another_organizations_figures_never_appear(console_a, console_b, org_a, org_b, world):
    pages = [
        console_a.get(page(org_a), week_of(org_a)),
        console_a.get(
            page(org_a), {**week_of(org_a), "granularity": "hour", "from": week_of(org_a)["to"]}
        ),
        console_a.get(page(org_a, "compare/"), week_of(org_a)),
        console_a.get(page(org_a, "compare/"), {**week_of(org_a), "by": "station"}),
        console_a.get(page(org_a, "roi/"), week_of(org_a)),
    ]
    theirs = console_b.get(page(org_b), week_of(org_b)).content.decode()

    assert kpi(theirs, "visits") == f"{B_VISITS:,}"  # the figure is there, in its own pages
    for response in pages:
        html = response.content.decode()
        assert response.status_code == 200
        assert f"{B_VISITS:,}" not in html and str(B_VISITS) not in html
        assert "贝塔主播" not in html and "贝塔大厅" not in html


def test_a_member_of_another_organization_gets_404(console_b, org_a, world):
    for name in ("", "compare/", "roi/"):
        assert console_b.get(page(org_a, name)).status_code == 404


def test_every_role_reads_analytics(org_a, member_factory, console_for, world):
    for role in (Role.ANALYST, Role.OPERATOR, Role.BILLING):
        client = console_for(member_factory(org_a, role))
        assert client.get(page(org_a), week_of(org_a)).status_code == 200
        assert client.get(page(org_a, "roi/")).status_code == 200


def test_the_pages_are_read_only(console_a, org_a):
    assert console_a.post(page(org_a), {}).status_code == 405
