"""KPI series and totals read from rollups: buckets in the organization's time zone (a DST zone
included), totals that agree with the series, filters, range checks, and tenancy.

Real: the selectors, the HyperLogLog sketches, the database the suite runs on. Simulated: the
rollup rows are written directly, as the rollup run writes them (hourly rows at UTC hours, daily
rows at the local midnight), so each bucket's expected figures are known exactly.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ironbowl.analytics import hll, kpis
from tenants.errors import DomainError
from tests import factories
from tests.analytics.rows import rollup
from tests.avatars import factories as avatar_factories

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def local(zone, *args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone)


def estimate(viewers) -> int:
    """What one sketch of these viewers estimates (merged sketches estimate the same)."""
    return hll.Sketch.of(list(viewers)).count()


def day_of(organization, zone, *date) -> dt.datetime:
    return local(zone, *date).astimezone(dt.UTC)


def window(organization, start, end, granularity="day"):
    return kpis.window(organization, start, end, granularity, now=NOW)


ADDED = ("visits", "interactions", "handoffs", "comments", "sessions")


def test_a_day_series_lists_every_local_day_and_its_totals_agree_with_it(org_a):
    """Shanghai: days start at 16:00 UTC. Empty days are zeros; counts add up, peak is the
    highest, the average weighs samples, unique viewers are merged (a viewer on two days counts
    once)."""
    rollup(org_a, local(SHANGHAI, 2025, 3, 1), visits=10, interactions=8, handoffs=2,
           comments=3, sessions=4, view_samples=10, view_sum=500.0, peak_viewers=90,
           broadcast_seconds=7200.0, gpu_seconds=3600.0, viewers=range(1, 101))  # fmt: skip
    rollup(org_a, local(SHANGHAI, 2025, 3, 3), visits=5, interactions=2, handoffs=0,
           comments=1, sessions=1, view_samples=30, view_sum=300.0, peak_viewers=120,
           broadcast_seconds=1800.0, gpu_seconds=900.0, viewers=range(51, 151))  # fmt: skip
    # The day before the range (its local midnight is 2025-02-28T16:00Z - 24h).
    rollup(org_a, local(SHANGHAI, 2025, 2, 28), visits=1000)

    span = window(org_a, local(SHANGHAI, 2025, 3, 1), local(SHANGHAI, 2025, 3, 4))
    found = kpis.series(org_a, span)

    starts = [bucket.starts_at for bucket, _tally in found.buckets]
    assert starts == [day_of(org_a, SHANGHAI, 2025, 3, day) for day in (1, 2, 3)]
    assert starts[0] == dt.datetime(2025, 2, 28, 16, tzinfo=dt.UTC)
    by_day = [tally.kpis() for _bucket, tally in found.buckets]
    assert by_day[0]["visits"] == 10 and by_day[2]["visits"] == 5
    assert by_day[1] == kpis.Tally().kpis()  # an empty day: zeros (answered share: none)
    assert by_day[0]["answered_share"] == 0.75
    assert by_day[0]["average_viewers"] == 50.0
    assert by_day[0]["unique_viewers"] == estimate(range(1, 101))
    totals = found.totals.kpis()
    for name in ADDED:
        assert totals[name] == sum(day[name] for day in by_day)
    assert totals["broadcast_hours"] == 2.5 and totals["gpu_hours"] == 1.25
    assert totals["peak_viewers"] == 120
    assert totals["average_viewers"] == 20.0  # 800 viewers sampled over 40 samples
    assert totals["answered_share"] == 0.8
    # 150 distinct viewers, not 200: the 50 seen on both days count once.
    assert totals["unique_viewers"] == estimate(range(1, 151))
    assert 147 <= totals["unique_viewers"] <= 153


def test_hour_buckets_are_utc_hours_and_rows_outside_the_range_are_left_out(org_a):
    """Hour granularity reads the hourly rollups; the range is widened to whole hours."""
    for hour, visits in ((1, 1), (2, 2), (3, 4), (4, 8), (5, 16)):
        rollup(org_a, dt.datetime(2025, 3, 1, hour, tzinfo=dt.UTC), grain="hour", visits=visits)
    rollup(org_a, local(SHANGHAI, 2025, 3, 1), visits=999)  # a daily row: not read by the hour

    span = window(
        org_a, local(SHANGHAI, 2025, 3, 1, 10, 30), local(SHANGHAI, 2025, 3, 1, 12, 1), "hour"
    )
    found = kpis.series(org_a, span)

    assert [(b.starts_at.astimezone(SHANGHAI).hour, t.visits) for b, t in found.buckets] == [
        (10, 2),  # 02:00 UTC
        (11, 4),
        (12, 8),
    ]
    assert found.totals.visits == 14


def test_berlin_days_are_23_and_25_hours_long_when_the_clocks_change(org_a):
    """Europe/Berlin: 2025-03-30 has 23 hours, 2025-10-26 has 25. Daily rows sit at each local
    midnight; by the hour, the local day has 23 (or 25) buckets."""
    org_a.time_zone = "Europe/Berlin"
    org_a.save()
    for day in (29, 30, 31):
        rollup(org_a, local(BERLIN, 2025, 3, day), visits=day)

    span = window(org_a, local(BERLIN, 2025, 3, 29), local(BERLIN, 2025, 4, 1))
    found = kpis.series(org_a, span)

    assert [(b.ends_at - b.starts_at, t.visits) for b, t in found.buckets] == [
        (dt.timedelta(hours=24), 29),
        (dt.timedelta(hours=23), 30),
        (dt.timedelta(hours=24), 31),
    ]
    assert found.buckets[2][0].starts_at == dt.datetime(2025, 3, 30, 22, tzinfo=dt.UTC)
    spring = window(org_a, local(BERLIN, 2025, 3, 30), local(BERLIN, 2025, 3, 31), "hour")
    autumn = window(org_a, local(BERLIN, 2025, 10, 26), local(BERLIN, 2025, 10, 27), "hour")
    assert len(spring.buckets()) == 23
    assert len(autumn.buckets()) == 25
    assert spring.buckets()[2].starts_at.astimezone(BERLIN).hour == 3  # 02:00 never happened


def test_weeks_start_on_monday_in_local_time_and_months_on_the_first(org_a):
    """Shanghai's Monday 2025-03-10 starts on Sunday in UTC: the row still counts for the week
    of the 10th. The range is widened to whole weeks (months)."""
    rollup(org_a, local(SHANGHAI, 2025, 3, 9), visits=1)  # Sunday
    rollup(org_a, local(SHANGHAI, 2025, 3, 10), visits=10)  # Monday
    rollup(org_a, local(SHANGHAI, 2025, 3, 18), visits=100)  # Tuesday

    weeks = kpis.series(
        org_a, window(org_a, local(SHANGHAI, 2025, 3, 5), local(SHANGHAI, 2025, 3, 19), "week")
    )
    assert [(b.key, t.visits) for b, t in weeks.buckets] == [
        (dt.date(2025, 3, 3), 1),
        (dt.date(2025, 3, 10), 10),
        (dt.date(2025, 3, 17), 100),
    ]
    assert weeks.window.start == day_of(org_a, SHANGHAI, 2025, 3, 3)
    assert weeks.window.end == day_of(org_a, SHANGHAI, 2025, 3, 24)

    rollup(org_a, local(SHANGHAI, 2025, 2, 28), visits=1000)
    months = kpis.series(
        org_a, window(org_a, local(SHANGHAI, 2025, 1, 15), local(SHANGHAI, 2025, 3, 2), "month")
    )
    assert [(b.key, t.visits) for b, t in months.buckets] == [
        (dt.date(2025, 1, 1), 0),
        (dt.date(2025, 2, 1), 1000),
        (dt.date(2025, 3, 1), 111),
    ]
    assert months.buckets[1][0].ends_at - months.buckets[1][0].starts_at == dt.timedelta(days=28)


def test_a_month_in_a_dst_zone_has_its_local_length(org_a):
    org_a.time_zone = "Europe/Berlin"
    org_a.save()
    span = window(org_a, local(BERLIN, 2025, 3, 1), local(BERLIN, 2025, 4, 1), "month")
    (march,) = span.buckets()
    assert march.ends_at - march.starts_at == dt.timedelta(days=31, hours=-1)


def test_filters_and_totals_per_employment_or_station(org_a):
    """One employment, one station, or both; totals per dimension keep unattributed rows apart
    (None)."""
    one, two = uuid.uuid4(), uuid.uuid4()
    hall, desk = uuid.uuid4(), uuid.uuid4()
    day = local(SHANGHAI, 2025, 3, 1)
    rollup(org_a, day, employment_id=one, station_id=hall, visits=1, viewers=[1, 2])
    rollup(org_a, day, employment_id=one, station_id=desk, visits=2, viewers=[2, 3])
    rollup(org_a, day, employment_id=two, station_id=hall, visits=4, viewers=[4])
    rollup(org_a, day, visits=8)  # not attributed
    span = window(org_a, day, local(SHANGHAI, 2025, 3, 2))

    assert kpis.series(org_a, span, employment_id=one).totals.visits == 3
    assert kpis.series(org_a, span, station_id=hall).totals.visits == 5
    assert kpis.series(org_a, span, employment_id=one, station_id=desk).totals.visits == 2
    assert kpis.series(org_a, span, employment_id=uuid.uuid4()).totals.visits == 0
    by_employment = kpis.totals_by(org_a, span, "employment")
    assert {key: tally.visits for key, tally in by_employment.items()} == {
        one: 3,
        two: 4,
        None: 8,
    }
    assert by_employment[one].unique_viewers == estimate([1, 2, 3])  # viewer 2 counts once
    by_station = kpis.totals_by(org_a, span, "station", employment_id=one)
    assert {key: tally.visits for key, tally in by_station.items()} == {hall: 1, desk: 2}


def test_another_organizations_rollups_are_never_counted(org_a, org_b):
    """Organization B's rows in the same buckets, with the same employment and station ids."""
    employment, station = uuid.uuid4(), uuid.uuid4()
    day = local(SHANGHAI, 2025, 3, 1)
    rollup(org_a, day, employment_id=employment, station_id=station, visits=1, viewers=[1])
    rollup(org_b, day, employment_id=employment, station_id=station, visits=100,
           viewers=range(2, 50))  # fmt: skip
    span = window(org_a, day, local(SHANGHAI, 2025, 3, 2))

    assert kpis.series(org_a, span).totals.visits == 1
    assert kpis.series(org_a, span).totals.unique_viewers == 1
    assert kpis.series(org_a, span, employment_id=employment).totals.visits == 1
    assert kpis.totals_by(org_a, span, "station")[station].visits == 1


@pytest.mark.parametrize(
    ("start", "end", "granularity", "code"),
    [
        ((2025, 3, 1), (2025, 3, 1), "day", "bad_range"),
        ((2025, 3, 2), (2025, 3, 1), "day", "bad_range"),
        ((2025, 1, 1), (2026, 1, 3), "day", "range_too_long"),
        ((2025, 1, 1), (2025, 2, 2), "hour", "range_too_long"),
        ((2025, 1, 1), (2025, 1, 2), "minute", "bad_granularity"),
    ],
)
def test_ranges_that_cannot_be_answered_are_refused_with_a_code(
    org_a, start, end, granularity, code
):
    with pytest.raises(DomainError) as refused:
        window(org_a, local(SHANGHAI, *start), local(SHANGHAI, *end), granularity)
    assert refused.value.code == code


def test_the_longest_ranges_allowed(org_a):
    """366 days by the day (a leap year), 31 days by the hour."""
    days = window(org_a, local(SHANGHAI, 2024, 1, 1), local(SHANGHAI, 2025, 1, 1))
    hours = window(org_a, local(SHANGHAI, 2025, 1, 1), local(SHANGHAI, 2025, 2, 1), "hour")
    assert len(days.buckets()) == 366
    assert len(hours.buckets()) == 31 * 24


def test_without_a_range_the_last_seven_local_days_up_to_today(org_a):
    """`NOW` is 2025-06-01 00:00 UTC, 08:00 in Shanghai: today is June 1st there."""
    span = kpis.window(org_a, None, None, "day", now=NOW)
    assert span.start == day_of(org_a, SHANGHAI, 2025, 5, 26)
    assert span.end == day_of(org_a, SHANGHAI, 2025, 6, 2)


@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_a_series_costs_two_queries_however_many_buckets_and_rows(org_a, granularity):
    employments = [avatar_factories.EmploymentFactory(organization=org_a).pk for _ in range(3)]
    stations = [factories.StationFactory(organization=org_a).pk for _ in range(2)]
    start = local(SHANGHAI, 2025, 3, 1)
    for offset in range(20):
        bucket = start + (dt.timedelta(days=offset) if granularity == "day" else
                          dt.timedelta(hours=offset))  # fmt: skip
        for employment in employments:
            for station in stations:
                rollup(org_a, bucket, grain=granularity, employment_id=employment,
                       station_id=station, visits=1, viewers=[offset])  # fmt: skip
    short = window(org_a, start, start + dt.timedelta(days=2), granularity)
    long = window(org_a, start, start + dt.timedelta(days=30), granularity)

    with CaptureQueriesContext(connection) as few:
        small = kpis.series(org_a, short)
    with CaptureQueriesContext(connection) as many:
        large = kpis.series(org_a, long)

    assert len(large.buckets) > len(small.buckets)
    assert large.totals.visits == 20 * 6
    assert len(few) == len(many) == 2
