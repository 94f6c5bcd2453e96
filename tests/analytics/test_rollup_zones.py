"""Day rollups follow the organization's time zone when it changes, and nothing counts twice.

Day rows are keyed by local midnight. After a zone change the next rollup run rebuilds every
day of the organization from its hour rows in the new zone (`rollups.move_days`), before any
day of the new zone is written, so the old zone's days never sit beside the new zone's.

Real: the zone changed by the tenants service, `rollups.run` on the suite's database, KPIs,
totals and ROI read as the API reads them, events stored as ingestion stores them, retention
dropping them (a real partition on PostgreSQL). On PostgreSQL two runs race in threads, each on
its own connection, against the advisory locks. Simulated: the clock (runs get `now`), and where
a run stops in the races (a hook that holds it).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
import zoneinfo
from collections import Counter
from typing import Any

import pytest

from ironbowl.analytics import kpis, marks, retention, roi, rollups
from ironbowl.analytics.hll import Sketch
from ironbowl.analytics.models import Event, Rollup, RollupMark, RollupZone
from tenants import services
from tenants.audit import SYSTEM
from tenants.models import Organization
from tests.analytics.rollup_world import by_local_day, rows, run_zone_migration_backfill
from tests.analytics.rows import rollup
from tests.races import in_thread, require_row_locks

UTC = dt.UTC
SHANGHAI, NEW_YORK = "Asia/Shanghai", "America/New_York"
E1 = uuid.uuid4()
# Three days over the end of New York's summer time (2 November 2025, 06:00 UTC: a 25-hour day).
FIRST = dt.datetime(2025, 11, 1, tzinfo=UTC)
LAST = dt.datetime(2025, 11, 4, tzinfo=UTC)
NOW = LAST + dt.timedelta(hours=6)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
WAIT_S = 120


def _visits() -> list[dict[str, Any]]:
    """A visit every 47 minutes over the three days, each with a viewer (40 of them, seen again
    and again) and every other one by employment E1."""
    found, at, n = [], FIRST, 0
    while at < LAST:
        employment = E1 if n % 2 else None
        found.append(
            {"type": "visit", "occurred_at": at, "viewer_hash": n % 40, "employment_id": employment}
        )
        at, n = at + 47 * MIN, n + 1
    return found


def _in_zone(organization: Organization, zone: str) -> None:
    services.update_organization(SYSTEM, organization, time_zone=zone)


def _span(organization: Organization) -> kpis.Window:
    return kpis.day_window(organization, FIRST - HOUR * 24, LAST + HOUR * 24, now=NOW)


def _day_visits(organization: Organization) -> Counter[dt.date]:
    """Visits per local day as a KPI series by the day shows them (empty days left out)."""
    series = kpis.series(organization, _span(organization))
    return Counter({bucket.key: tally.visits for bucket, tally in series.buckets if tally.visits})


def _midnights_only(organization: Organization, zone: str) -> bool:
    local = zoneinfo.ZoneInfo(zone)
    days = Rollup.objects.for_organization(organization).filter(grain="day")
    buckets = list(days.values_list("bucket", flat=True))
    return bool(buckets) and all(b.astimezone(local).time() == dt.time() for b in buckets)


def _assert_days_are_the_events_by_local_day(
    organization: Organization, visits: list[dict[str, Any]], zone: str
) -> None:
    """Each local day's visits and unique viewers are the raw events' of that day in `zone`;
    the series' totals and the totals add up to the events, once."""
    instants = [visit["occurred_at"] for visit in visits]
    assert _midnights_only(organization, zone)
    assert _day_visits(organization) == by_local_day(instants, zone)
    local = zoneinfo.ZoneInfo(zone)
    viewers: dict[dt.date, list[int]] = {}
    for visit in visits:
        viewers.setdefault(visit["occurred_at"].astimezone(local).date(), []).append(
            visit["viewer_hash"]
        )
    span = _span(organization)
    series = kpis.series(organization, span)
    uniques = {bucket.key: tally.unique_viewers for bucket, tally in series.buckets if tally.visits}
    assert uniques == {day: Sketch.of(hashes).count() for day, hashes in viewers.items()}
    assert series.totals.visits == kpis.totals(organization, span).visits == len(visits)
    assert sum(Rollup.objects.for_organization(organization).filter(grain="day").values_list(
        "visits", flat=True)) == len(visits)  # fmt: skip


def _late_visit() -> dict[str, Any]:
    """A visit of the first hours, ingested after they were rolled up."""
    return {
        "type": "visit",
        "occurred_at": FIRST + 30 * MIN,
        "viewer_hash": 7,
        "employment_id": None,
    }


def _rolled_up(organization: Organization, events) -> list[dict[str, Any]]:
    visits = _visits()
    events(organization, visits)
    rollups.run(now=NOW)
    return visits


def test_days_follow_a_zone_change_and_no_visit_counts_twice(org_a, org_b, events):
    """Rolled up in Shanghai, then the organization moves to New York. Until the next run the
    Shanghai days show under the New York dates they fall in, counted once; the run rebuilds the
    days at New York's midnights (the 25-hour day too), and every figure is the raw events' by
    New York day, ROI's too. The other organization's rows are untouched."""
    visits = _rolled_up(org_a, events)
    _rolled_up(org_b, events)
    _assert_days_are_the_events_by_local_day(org_a, visits, SHANGHAI)
    theirs = rows(org_b)

    _in_zone(org_a, NEW_YORK)
    assert kpis.totals(org_a, _span(org_a)).visits == len(visits)
    report = rollups.run(now=NOW)

    assert (report.zones_moved, report.failed) == (1, 0)
    _assert_days_are_the_events_by_local_day(org_a, visits, NEW_YORK)
    span = _span(org_a)
    assert roi.report(org_a, span).tally.visits == len(visits)
    by_e1 = sum(1 for visit in visits if visit["employment_id"] == E1)
    assert roi.report(org_a, span, employment_id=E1).tally.visits == by_e1
    assert _day_visits(org_a)[dt.date(2025, 11, 2)] == len(
        [v for v in visits if dt.datetime(2025, 11, 2, 4, tzinfo=UTC) <= v["occurred_at"]
         < dt.datetime(2025, 11, 3, 5, tzinfo=UTC)]
    )  # fmt: skip
    assert RollupZone.objects.for_organization(org_a).get().time_zone == NEW_YORK
    assert rows(org_b) == theirs
    assert RollupZone.objects.for_organization(org_b).get().time_zone == SHANGHAI


def test_moved_days_are_what_rolling_every_hour_up_again_makes(org_a, events):
    """The days a move makes equal, column for column (sketches, float sums), those a roll-up of
    every hour in the new zone makes; moving again, or running again, changes nothing."""
    _rolled_up(org_a, events)
    _in_zone(org_a, NEW_YORK)
    rollups.run(now=NOW)
    moved = rows(org_a)

    assert rollups.run(now=NOW).zones_moved == 0
    assert rollups.move_days(org_a, NOW)
    assert rows(org_a) == moved
    hours = set(
        Rollup.objects.for_organization(org_a).filter(grain="hour").values_list("bucket", flat=True)
    )
    marks.mark_hours(org_a, hours)
    assert rollups.run(now=NOW).hours == len(hours) == 72
    assert rows(org_a) == moved


def test_back_to_the_first_zone_gives_the_first_days_again(org_a, events):
    _rolled_up(org_a, events)
    first = rows(org_a)

    _in_zone(org_a, NEW_YORK)
    rollups.run(now=NOW)
    assert rows(org_a) != first
    _in_zone(org_a, SHANGHAI)
    rollups.run(now=NOW)

    assert rows(org_a) == first


def test_days_whose_events_expired_are_moved_whole_from_their_hours(org_a, events):
    """The raw events are gone (retention, 40 days on) before the zone changes: the days are
    rebuilt from the hour rows, which are kept, so none is lost or counted twice."""
    visits = _rolled_up(org_a, events)
    later = LAST + dt.timedelta(days=40)
    retention.enforce(later)
    assert not Event.objects.for_organization(org_a).exists()

    _in_zone(org_a, NEW_YORK)
    assert rollups.run(now=later).zones_moved == 1

    _assert_days_are_the_events_by_local_day(org_a, visits, NEW_YORK)


def test_a_day_of_the_new_zone_waits_until_the_days_are_moved(org_a, events):
    """A roll-up of a day in the new zone, before the days are moved (a run that listed its days
    after the change but before moving them), writes nothing and keeps its marks; the next run
    moves the days and then rolls it up."""
    visits = _rolled_up(org_a, events)
    before = rows(org_a)
    _in_zone(org_a, NEW_YORK)
    late = _late_visit()
    events(org_a, [late])

    [group] = rollups.stale_groups()
    assert rollups.roll_up(group, NOW) is None

    assert rows(org_a) == before
    assert RollupMark.objects.for_organization(org_a).count() == 1
    report = rollups.run(now=NOW)
    assert (report.zones_moved, report.groups) == (1, 1)
    _assert_days_are_the_events_by_local_day(org_a, [*visits, late], NEW_YORK)


def test_days_left_overlapping_before_zones_were_recorded_are_mended_once(org_a, events):
    """Before this fix a zone change left the old zone's days beside the new zone's. The
    migration records no zone for organizations with days, so the first run rebuilds them all in
    the organization's zone: the stray day is gone and each day is the events'."""
    visits = _rolled_up(org_a, events)
    rollup(org_a, dt.datetime(2025, 11, 2, 4, tzinfo=UTC), visits=500)  # a New York midnight
    RollupZone.objects.for_organization(org_a).delete()  # as before the migration

    run_zone_migration_backfill()
    assert RollupZone.objects.for_organization(org_a).get().time_zone == ""
    assert kpis.totals(org_a, _span(org_a)).visits == len(visits) + 500
    report = rollups.run(now=NOW)

    assert report.zones_moved == 1
    _assert_days_are_the_events_by_local_day(org_a, visits, SHANGHAI)


def test_a_failing_move_is_counted_and_tried_again(org_a, events, monkeypatch):
    """A move that fails leaves the old days as they were (one transaction), is counted, and the
    next run moves them."""
    visits = _rolled_up(org_a, events)
    before = rows(org_a)
    _in_zone(org_a, NEW_YORK)
    build = rollups._days_from_hours

    def fail(*args: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(rollups, "_days_from_hours", fail)
    report = rollups.run(now=NOW)
    assert (report.zones_moved, report.failed) == (0, 1)
    assert rows(org_a) == before

    monkeypatch.setattr(rollups, "_days_from_hours", build)
    assert rollups.run(now=NOW).zones_moved == 1
    _assert_days_are_the_events_by_local_day(org_a, visits, NEW_YORK)


# --- Races (PostgreSQL) --------------------------------------------------------------------------


def _finish(thread: threading.Thread, out: dict[str, Any]) -> Any:
    thread.join(timeout=WAIT_S)
    assert not thread.is_alive(), f"{thread.name} did not finish"
    if "error" in out:
        raise out["error"]
    return out["result"]


@pytest.mark.django_db(transaction=True)
def test_a_roll_up_under_way_defers_the_move_to_the_next_run(org_a, events, monkeypatch):
    """Run A holds a Shanghai day (it has read its events and waits). The zone changes to New
    York and run B runs: it does not wait for A — it skips the move (A holds the organization)
    and the New York day of the marks A holds (the days are not moved yet). A writes its
    Shanghai day; the next run moves every day, that one included."""
    require_row_locks()
    visits = _rolled_up(org_a, events)
    late = _late_visit()
    events(org_a, [late])
    a_read, b_done = threading.Event(), threading.Event()
    read = rollups.read_hours

    def read_then_wait(organization, hours, now):
        counted = read(organization, hours, now)
        if threading.current_thread().name == "A":
            a_read.set()
            assert b_done.wait(timeout=WAIT_S), "run B never finished"
        return counted

    monkeypatch.setattr(rollups, "read_hours", read_then_wait)
    a, a_out = in_thread("A", lambda: rollups.run(now=NOW))
    a.start()
    assert a_read.wait(timeout=WAIT_S), "run A never read its hour"
    _in_zone(org_a, NEW_YORK)
    b, b_out = in_thread("B", lambda: rollups.run(now=NOW))
    b.start()
    try:
        b_report = _finish(b, b_out)
    finally:
        b_done.set()
    a_report = _finish(a, a_out)

    assert (b_report.zones_moved, b_report.groups, b_report.skipped) == (0, 0, 2)
    assert a_report.groups == 1
    assert not _midnights_only(org_a, NEW_YORK)  # A's Shanghai day, until the next run
    assert rollups.run(now=NOW).zones_moved == 1
    _assert_days_are_the_events_by_local_day(org_a, [*visits, late], NEW_YORK)


@pytest.mark.django_db(transaction=True)
def test_a_move_under_way_defers_the_roll_up_of_a_new_zone_day(org_a, events, monkeypatch):
    """Run A is moving the days to New York (it has deleted them and waits before writing). Run
    B does not wait for it: it skips the move and the day marked meanwhile. Readers still see
    the old days until A commits; then A rolls the day up itself, and every day is the events'
    by New York day."""
    require_row_locks()
    visits = _rolled_up(org_a, events)
    _in_zone(org_a, NEW_YORK)
    late = _late_visit()
    events(org_a, [late])
    a_moving, b_done = threading.Event(), threading.Event()
    build = rollups._days_from_hours

    def build_then_wait(*args: Any) -> Any:
        if threading.current_thread().name == "A":
            a_moving.set()
            assert b_done.wait(timeout=WAIT_S), "run B never finished"
        return build(*args)

    monkeypatch.setattr(rollups, "_days_from_hours", build_then_wait)
    a, a_out = in_thread("A", lambda: rollups.run(now=NOW))
    a.start()
    assert a_moving.wait(timeout=WAIT_S), "run A never started moving"
    b, b_out = in_thread("B", lambda: rollups.run(now=NOW))
    b.start()
    try:
        b_report = _finish(b, b_out)
        assert kpis.totals(org_a, _span(org_a)).visits == len(visits)  # the old days, once
    finally:
        b_done.set()
    a_report = _finish(a, a_out)

    assert (b_report.zones_moved, b_report.groups, b_report.skipped) == (0, 0, 2)
    assert (a_report.zones_moved, a_report.groups) == (1, 1)
    assert not RollupMark.objects.for_organization(org_a).exists()
    _assert_days_are_the_events_by_local_day(org_a, [*visits, late], NEW_YORK)
