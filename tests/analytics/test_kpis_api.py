"""The KPI, scorecard and comparison endpoints: parameters read in the organization's time zone,
errors with a stable code, CSV a spreadsheet opens, another organization's ids answered as
missing ones, and a query count that does not grow with buckets or employments.

Real: the views (through the API client, signed in as a member), serializers and renderers, the
selectors, the rollup run in the end-to-end test (events stored as ingestion stores them, then
`rollups.run()`), the database the suite runs on. Simulated: elsewhere the rollup rows are written
directly, as the rollup run writes them; "now" is the real clock where defaults are tested.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
import zoneinfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from avatars.models import Employment
from ironbowl.analytics import rollups
from tests import factories
from tests.analytics.rows import rollup
from tests.avatars import factories as avatar_factories

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


def url(organization, name: str) -> str:
    return f"/api/v1/orgs/{organization.slug}/analytics/{name}/"


def hire(organization, name_zh="小安", active=True):
    avatar = avatar_factories.ready_avatar(visibility="public", name_zh=name_zh)
    return avatar_factories.EmploymentFactory(
        organization=organization, avatar=avatar, status="active" if active else "offered"
    )


def parsed_csv(response) -> list[list[str]]:
    body = response.content
    assert body.startswith("\ufeff".encode()), "no byte-order mark: Excel would garble Chinese"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


# --- KPIs -----------------------------------------------------------------------------------------


def test_kpis_by_day_with_dates_read_in_the_organizations_zone(api_a, org_a):
    """`to` as a date includes that day; every day is listed, times in local time."""
    rollup(org_a, local(2025, 3, 1), visits=3, interactions=4, handoffs=1)
    rollup(org_a, local(2025, 3, 3), visits=5)
    rollup(org_a, local(2025, 3, 4), visits=100)  # after the range

    response = api_a.get(url(org_a, "kpis"), {"from": "2025-03-01", "to": "2025-03-03"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["from"] == "2025-03-01T00:00:00+08:00"
    assert body["to"] == "2025-03-04T00:00:00+08:00"
    assert body["time_zone"] == "Asia/Shanghai"
    assert body["granularity"] == "day"
    assert [(b["starts_at"], b["visits"]) for b in body["series"]] == [
        ("2025-03-01T00:00:00+08:00", 3),
        ("2025-03-02T00:00:00+08:00", 0),
        ("2025-03-03T00:00:00+08:00", 5),
    ]
    assert body["totals"]["visits"] == 8
    assert body["totals"]["answered_share"] == 0.75
    assert body["series"][1]["answered_share"] is None


def test_kpis_by_the_hour_read_a_time_without_offset_as_local(api_a, org_a):
    rollup(org_a, dt.datetime(2025, 3, 1, 1, tzinfo=dt.UTC), grain="hour", visits=1)
    rollup(org_a, dt.datetime(2025, 3, 1, 2, tzinfo=dt.UTC), grain="hour", visits=2)

    naive = api_a.get(
        url(org_a, "kpis"),
        {"from": "2025-03-01T09:00", "to": "2025-03-01T11:00", "granularity": "hour"},
    )
    with_offset = api_a.get(
        url(org_a, "kpis"),
        {"from": "2025-03-01T01:00Z", "to": "2025-03-01T03:00Z", "granularity": "hour"},
    )

    assert naive.status_code == with_offset.status_code == 200
    assert naive.json() == with_offset.json()
    series = naive.json()["series"]
    assert [(b["starts_at"], b["visits"]) for b in series] == [
        ("2025-03-01T09:00:00+08:00", 1),
        ("2025-03-01T10:00:00+08:00", 2),
    ]


def test_kpis_default_to_the_last_seven_local_days(api_a, org_a):
    before = timezone.localdate(timezone=SHANGHAI)
    response = api_a.get(url(org_a, "kpis"))
    after = timezone.localdate(timezone=SHANGHAI)  # the same day, unless midnight just passed

    assert response.status_code == 200
    body = response.json()
    assert len(body["series"]) == 7
    last = body["series"][-1]["starts_at"]
    assert last in {f"{day.isoformat()}T00:00:00+08:00" for day in (before, after)}


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ({"from": "2025-01-01", "to": "2026-01-02"}, "range_too_long", "to"),
        ({"from": "2025-01-01", "to": "2025-02-01", "granularity": "hour"}, "range_too_long", "to"),
        ({"from": "2025-03-02", "to": "2025-03-01"}, "bad_range", "to"),
        ({"granularity": "fortnight"}, "bad_granularity", "granularity"),
        ({"from": "yesterday"}, "invalid", "from"),
        ({"to": "1999-12-31"}, "invalid", "to"),
        ({"employment": "not-an-id"}, "invalid", "employment"),
    ],
)
def test_kpi_queries_that_cannot_be_answered_say_why(api_a, org_a, query, code, field):
    response = api_a.get(url(org_a, "kpis"), query)

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == code
    assert field in body["fields"]


def test_an_employment_or_station_of_another_organization_is_not_found(api_a, org_a, org_b):
    """A's member filtering by B's ids gets exactly what a random id gets: 404, and nothing of
    B's figures."""
    theirs_employment = hire(org_b)
    theirs_station = factories.StationFactory(organization=org_b)
    rollup(org_b, local(2025, 3, 1), employment_id=theirs_employment.pk,
           station_id=theirs_station.pk, visits=7)  # fmt: skip
    mine = hire(org_a)
    rollup(org_a, local(2025, 3, 1), employment_id=mine.pk, visits=1)
    days = {"from": "2025-03-01", "to": "2025-03-01"}

    for endpoint in ("kpis", "compare"):
        for name, theirs in (("employment", theirs_employment.pk), ("station", theirs_station.pk)):
            foreign = api_a.get(url(org_a, endpoint), {**days, name: str(theirs)})
            missing = api_a.get(url(org_a, endpoint), {**days, name: str(uuid.uuid4())})
            assert foreign.status_code == missing.status_code == 404
            assert foreign.json() == missing.json() == {"code": "not_found", "detail": "Not found."}
    foreign_roi = api_a.get(url(org_a, "roi"), {**days, "employment": str(theirs_employment.pk)})
    assert foreign_roi.status_code == 404

    own = api_a.get(url(org_a, "kpis"), {**days, "employment": str(mine.pk)})
    assert own.json()["totals"]["visits"] == 1
    everything = api_a.get(url(org_a, "kpis"), days)
    assert everything.json()["totals"]["visits"] == 1  # B's 7 visits never count


def test_kpis_as_csv_open_in_a_spreadsheet(api_a, org_a):
    """`?format=csv` and `Accept: text/csv` give the same file: BOM, header, local times."""
    rollup(org_a, local(2025, 3, 1), visits=3, broadcast_seconds=5400.0)
    query = {"from": "2025-03-01", "to": "2025-03-02"}

    by_format = api_a.get(url(org_a, "kpis"), {**query, "format": "csv"})
    by_accept = api_a.get(url(org_a, "kpis"), query, HTTP_ACCEPT="text/csv")

    assert by_format.status_code == by_accept.status_code == 200
    assert by_format["Content-Type"] == "text/csv; charset=utf-8"
    assert by_format.content == by_accept.content
    assert (
        'filename="kpis-alpha-hospital-20250301-20250302.csv"' in (by_format["Content-Disposition"])
    )
    header, first, second = parsed_csv(by_format)
    assert header[:4] == ["starts_at", "ends_at", "visits", "unique_viewers"]
    assert "broadcast_hours" in header
    assert first[:3] == ["2025-03-01T00:00:00+08:00", "2025-03-02T00:00:00+08:00", "3"]
    assert first[header.index("broadcast_hours")] == "1.5"
    assert first[header.index("answered_share")] == ""
    assert second[2] == "0"


def test_an_error_asked_for_as_csv_is_still_json(api_a, org_a):
    response = api_a.get(url(org_a, "kpis"), {"granularity": "minute", "format": "csv"})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "bad_granularity"
    unknown = api_a.get(url(org_a, "kpis"), {"format": "xlsx"})
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "bad_format"


# --- Scorecards and comparisons -------------------------------------------------------------------


def test_a_scorecard_per_employment_with_rates_per_broadcast_hour(api_a, org_a):
    """Hired (active) employments get a row even without activity; an offer never active and
    idle does not. Unattributed rows belong to nobody's scorecard."""
    busy, quiet = hire(org_a, "小安"), hire(org_a, "小宁")
    hire(org_a, "小未", active=False)
    # Hired (and active since) January 2025; the others are hired now.
    Employment.objects.for_organization(org_a).filter(pk=busy.pk).update(
        created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    )
    rollup(org_a, local(2025, 3, 1), employment_id=busy.pk, visits=30, interactions=20,
           handoffs=5, broadcast_seconds=7200.0)  # fmt: skip
    rollup(org_a, local(2025, 3, 1), visits=1000)
    today = timezone.localdate(timezone=SHANGHAI).isoformat()
    rollup(org_a, local(*timezone.localdate(timezone=SHANGHAI).timetuple()[:3]),
           employment_id=busy.pk, visits=2)  # fmt: skip

    march = api_a.get(url(org_a, "scorecards"), {"from": "2025-03-01", "to": "2025-03-01"})
    now = api_a.get(url(org_a, "scorecards"), {"from": today, "to": today})

    assert march.status_code == now.status_code == 200
    (row,) = march.json()["results"]  # quiet was not hired yet in March 2025: no row
    assert row["employment"] == str(busy.pk)
    assert row["name"] == "小安"
    assert row["position"] == busy.position.title
    assert row["visits"] == 30
    assert row["answered_share"] == 0.75
    assert row["broadcast_hours"] == 2.0
    assert row["visits_per_broadcast_hour"] == 15.0
    assert row["interactions_per_broadcast_hour"] == 10.0
    assert row["seat_days"] == 1
    names = {r["name"]: r for r in now.json()["results"]}
    assert set(names) == {"小安", "小宁"}
    assert names["小宁"]["visits"] == 0 and names["小宁"]["seat_days"] == 1
    assert names["小宁"]["visits_per_broadcast_hour"] is None
    assert names["小宁"]["employment"] == str(quiet.pk)


def test_compare_sorts_named_rows_and_keeps_unattributed_apart(api_a, org_a):
    one, two = hire(org_a, "小安"), hire(org_a, "小宁")
    hall = factories.StationFactory(organization=org_a, name="导诊大厅")
    day = local(2025, 3, 1)
    rollup(org_a, day, employment_id=one.pk, station_id=hall.pk, visits=5, interactions=9)
    rollup(org_a, day, employment_id=two.pk, station_id=hall.pk, visits=8, interactions=1)
    rollup(org_a, day, visits=2, interactions=50)
    days = {"from": "2025-03-01", "to": "2025-03-01"}

    by_visits = api_a.get(url(org_a, "compare"), days).json()
    by_interactions = api_a.get(url(org_a, "compare"), {**days, "sort": "interactions"}).json()
    by_station = api_a.get(url(org_a, "compare"), {**days, "by": "station"}).json()

    assert [(r["name"], r["visits"]) for r in by_visits["results"]] == [
        ("小宁", 8),
        ("小安", 5),
        (None, 2),
    ]
    assert by_visits["results"][0]["position"] == two.position.title
    assert [r["name"] for r in by_interactions["results"]] == [None, "小安", "小宁"]
    assert [(r["id"], r["name"], r["visits"]) for r in by_station["results"]] == [
        (str(hall.pk), "导诊大厅", 13),
        (None, None, 2),
    ]


@pytest.mark.parametrize(
    ("query", "code"), [({"by": "avatar"}, "bad_dimension"), ({"sort": "likes"}, "bad_sort")]
)
def test_compare_refuses_an_unknown_dimension_or_sort(api_a, org_a, query, code):
    response = api_a.get(url(org_a, "compare"), query)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_scorecards_and_comparisons_as_csv_keep_chinese_names(api_a, org_a):
    employment = hire(org_a, "林晓雯")
    hall = factories.StationFactory(organization=org_a, name="=导诊大厅")
    today = timezone.localdate(timezone=SHANGHAI)  # the hire is made now
    midnight = local(*today.timetuple()[:3])
    rollup(org_a, midnight, employment_id=employment.pk, station_id=hall.pk, visits=4)
    days = {"from": today.isoformat(), "to": today.isoformat(), "format": "csv"}

    scorecards = parsed_csv(api_a.get(url(org_a, "scorecards"), days))
    compared = parsed_csv(api_a.get(url(org_a, "compare"), {**days, "by": "station"}))

    header, row = scorecards
    assert header[:3] == ["employment", "name", "position"]
    assert row[1] == "林晓雯"
    assert row[header.index("visits")] == "4"
    assert row[header.index("currency")] == "CNY"
    assert [compared[0][:3], compared[1][:3]] == [
        ["id", "name", "position"],
        [str(hall.pk), "'=导诊大厅", ""],  # a formula-like name stays text
    ]


# --- End to end -----------------------------------------------------------------------------------


def test_events_rolled_up_show_in_kpis_scorecards_and_comparisons(api_a, org_a, org_b, events):
    """Events stored as ingestion stores them (hours marked), the rollup run, then the API."""
    employment = hire(org_a, "小安")
    Employment.objects.for_organization(org_a).filter(pk=employment.pk).update(
        created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    )
    station = factories.StationFactory(organization=org_a, name="直播间")
    at = local(2025, 3, 3, 10, 15).astimezone(dt.UTC)
    attributed = {"employment_id": employment.pk, "station_id": station.pk}
    events(org_a, [
        {"type": "visit", "occurred_at": at, "viewer_hash": 1, **attributed},
        {"type": "visit", "occurred_at": at + dt.timedelta(hours=1), "viewer_hash": 1,
         **attributed},
        {"type": "visit", "occurred_at": at, "viewer_hash": 2, **attributed},
        {"type": "interaction", "occurred_at": at, "viewer_hash": 2, **attributed},
        {"type": "interaction", "occurred_at": at, "viewer_hash": 3, **attributed},
        {"type": "handoff", "occurred_at": at, **attributed},
        {"type": "view", "occurred_at": at, "value": 40.0, **attributed},
        {"type": "view", "occurred_at": at + dt.timedelta(minutes=1), "value": 60.0,
         **attributed},
        {"type": "visit", "occurred_at": at},  # not attributed
    ])  # fmt: skip
    events(org_b, [{"type": "visit", "occurred_at": at, "viewer_hash": 9}])

    report = rollups.run(now=dt.datetime(2025, 3, 4, tzinfo=dt.UTC))

    assert report.failed == 0 and report.groups == 2
    days = {"from": "2025-03-03", "to": "2025-03-03"}
    totals = api_a.get(url(org_a, "kpis"), days).json()["totals"]
    assert totals["visits"] == 4
    assert totals["unique_viewers"] == 3
    assert totals["interactions"] == 2 and totals["handoffs"] == 1
    assert totals["answered_share"] == 0.5
    assert totals["peak_viewers"] == 60 and totals["average_viewers"] == 50.0
    hours = api_a.get(
        url(org_a, "kpis"),
        {"from": "2025-03-03T10:00", "to": "2025-03-03T12:00", "granularity": "hour",
         "employment": str(employment.pk)},
    ).json()  # fmt: skip
    assert [b["visits"] for b in hours["series"]] == [2, 1]
    # Viewers 1, 2 and 3; viewer 1, seen in both hours, counts once.
    assert [b["unique_viewers"] for b in hours["series"]] == [3, 1]
    assert hours["totals"]["unique_viewers"] == 3
    (card,) = api_a.get(url(org_a, "scorecards"), days).json()["results"]
    assert (card["name"], card["visits"], card["interactions"]) == ("小安", 3, 2)
    compared = api_a.get(url(org_a, "compare"), {**days, "by": "station"}).json()["results"]
    assert [(row["name"], row["visits"]) for row in compared] == [("直播间", 3), (None, 1)]


# --- Query counts ---------------------------------------------------------------------------------


def _count(client, path, query) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, query)
    assert response.status_code == 200, response.content
    return len(queries), response.json()


def test_kpi_queries_do_not_grow_with_buckets(api_a, org_a):
    employment = hire(org_a)
    for day in range(1, 29):
        rollup(org_a, local(2025, 2, day), employment_id=employment.pk, visits=1, viewers=[day])
    path = url(org_a, "kpis")
    _count(api_a, path, {})  # warms per-process caches

    few, small = _count(api_a, path, {"from": "2025-02-01", "to": "2025-02-03"})
    many, large = _count(api_a, path, {"from": "2025-02-01", "to": "2025-02-28"})
    hourly, _body = _count(
        api_a, path, {"from": "2025-02-01", "to": "2025-02-28", "granularity": "hour"}
    )
    filtered, _body = _count(
        api_a, path, {"from": "2025-02-01", "to": "2025-02-28", "employment": str(employment.pk)}
    )

    assert (len(small["series"]), len(large["series"])) == (3, 28)
    assert few == many == hourly
    assert filtered == many + 1  # the employment is looked up (404 if not ours)


@pytest.mark.parametrize("endpoint", ["scorecards", "compare", "roi"])
def test_scorecard_comparison_and_roi_queries_do_not_grow_with_employments(api_a, org_a, endpoint):
    today = timezone.localdate(timezone=SHANGHAI)
    midnight = local(*today.timetuple()[:3])
    path, query = url(org_a, endpoint), {"from": today.isoformat(), "to": today.isoformat()}

    def add_employments(count: int) -> None:
        for _ in range(count):
            employment = hire(org_a)
            rollup(org_a, midnight, employment_id=employment.pk, visits=1, viewers=[1])
            rollup(org_a, midnight, grain="hour", employment_id=employment.pk, view_samples=1,
                   view_sum=5.0, broadcast_seconds=60.0)  # fmt: skip

    add_employments(2)
    _count(api_a, path, query)
    few, small = _count(api_a, path, query)
    add_employments(8)
    many, large = _count(api_a, path, query)

    if endpoint != "roi":
        assert (len(small["results"]), len(large["results"])) == (2, 10)
    else:
        assert (small["kpis"]["visits"], large["kpis"]["visits"]) == (2, 10)
    assert few == many
