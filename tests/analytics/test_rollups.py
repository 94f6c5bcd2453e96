"""Rollups recomputed from raw rows: hours, local days, late events, shifts, usage, failures.

Real: `rollups.run` on the suite's database (SQLite by default; PostgreSQL with DATABASE_URL,
where events land in real partitions and each day takes its advisory lock), events stored as
ingestion stores them (`write_events`: rows and marks in one transaction, no HTTP), shifts as
scheduling's tick leaves them (state, `on_duty_at`, `ended_at`, `updated_at` written directly,
the tick itself is not run), usage records as the ledger appends them. Simulated: the clock —
runs get `now`, so the hours on duty are known exactly. Races are in test_rollup_race.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from celery.schedules import crontab
from django.core.cache import cache
from prometheus_client import REGISTRY

from ironbowl.analytics import marks, rollups, tasks
from ironbowl.analytics.hll import Sketch
from ironbowl.analytics.models import Rollup, RollupMark, UsageRecord
from ironbowl.celery import app
from tenants.models import Organization
from tests.analytics.rollup_world import moved, on_duty

UTC = dt.UTC
E1, E2, S1 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
# 10:00 in Shanghai (UTC+8, the organizations' default zone): the local day began 16:00 UTC.
H = dt.datetime(2025, 6, 3, 2, tzinfo=UTC)
SHANGHAI_MIDNIGHT = dt.datetime(2025, 6, 2, 16, tzinfo=UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


def _in_zone(organization: Organization, zone: str) -> Organization:
    organization.time_zone = zone
    organization.save(update_fields=["time_zone"])
    return organization


def _rows(organization: Organization, grain: str) -> dict[tuple[Any, ...], Rollup]:
    rows = Rollup.objects.for_organization(organization).filter(grain=grain)
    return {(row.bucket, row.employment_id, row.station_id): row for row in rows}


def _snapshot(organization: Organization) -> list[dict[str, Any]]:
    """Every column of every rollup row but the id and `computed_at` (which a rewrite renews)."""
    rows = Rollup.objects.for_organization(organization).values()
    kept = [
        {name: bytes(value) if isinstance(value, memoryview) else value
         for name, value in row.items() if name not in ("id", "computed_at")}
        for row in rows
    ]  # fmt: skip
    return sorted(kept, key=lambda row: (row["grain"], row["bucket"], str(row["employment_id"])))


def _marks(organization: Organization) -> list[dt.datetime]:
    return sorted(RollupMark.objects.for_organization(organization).values_list("hour", flat=True))


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_an_hour_counts_its_raw_events_per_employment_and_station(org_a, events):
    """Every counted type lands in its column, per employment and station (and unattributed);
    views give samples, their sum and the peak; distinct viewer hashes give unique viewers. The
    local day sums its hours, its bucket the organization's midnight."""
    at = H + 10 * MIN
    mine = {"employment_id": E1, "station_id": S1}
    events(org_a, [
        *[{"type": "visit", "occurred_at": at, "viewer_hash": v, **mine} for v in (1, 2, 3)],
        *[{"type": "view", "occurred_at": at, "value": n, "viewer_hash": 1, **mine}
          for n in (10.0, 30.0, 20.0)],
        *[{"type": "interaction", "occurred_at": at, "viewer_hash": 2, **mine}] * 2,
        {"type": "comment", "occurred_at": at, "viewer_hash": -7, **mine},
        {"type": "handoff", "occurred_at": at, **mine},
        *[{"type": "session_start", "occurred_at": at, **mine}] * 2,
        {"type": "session_end", "occurred_at": at, "value": 95.0, **mine},
        {"type": "custom", "occurred_at": at, "name": "coupon", "value": 3.0, **mine},
        {"type": "visit", "occurred_at": at, "employment_id": E2, "station_id": S1},
        {"type": "visit", "occurred_at": at},
        {"type": "visit", "occurred_at": H + HOUR + 59 * MIN, "viewer_hash": 99, **mine},
    ])  # fmt: skip
    delays = _metric("ironbowl_analytics_rollup_delay_seconds_count")

    report = rollups.run()

    assert (report.groups, report.hours, report.failed) == (1, 2, 0)
    hours = _rows(org_a, "hour")
    assert set(hours) == {(H, E1, S1), (H, E2, S1), (H, None, None), (H + HOUR, E1, S1)}
    first = hours[(H, E1, S1)]
    assert (first.visits, first.view_samples, first.view_sum, first.peak_viewers) == (3, 3, 60, 30)
    assert (first.interactions, first.comments, first.handoffs) == (2, 1, 1)
    assert (first.sessions, first.custom_events, first.unique_viewers) == (2, 1, 4)
    assert Sketch.from_bytes(first.viewer_sketch) == Sketch.of([1, 2, 3, -7])
    assert hours[(H, E2, S1)].visits == hours[(H, None, None)].visits == 1
    assert hours[(H, None, None)].unique_viewers == 0
    assert bytes(hours[(H, None, None)].viewer_sketch) == b""
    days = _rows(org_a, "day")
    assert set(days) == {(SHANGHAI_MIDNIGHT, E1, S1), (SHANGHAI_MIDNIGHT, E2, S1),
                         (SHANGHAI_MIDNIGHT, None, None)}  # fmt: skip
    day = days[(SHANGHAI_MIDNIGHT, E1, S1)]
    assert (day.visits, day.view_samples, day.peak_viewers, day.unique_viewers) == (4, 3, 30, 5)
    assert _marks(org_a) == []
    assert _metric("ironbowl_analytics_rollup_delay_seconds_count") == delays + 2


def test_unique_viewers_of_a_day_count_a_viewer_seen_in_many_hours_once(org_a, events):
    """600 viewers in one hour, 600 in the next, 200 of them in both: the day has about 1,000."""
    events(org_a, [
        *[{"type": "visit", "occurred_at": H, "viewer_hash": v} for v in range(600)],
        *[{"type": "visit", "occurred_at": H + HOUR, "viewer_hash": v} for v in range(400, 1000)],
    ])  # fmt: skip

    rollups.run()

    hours = _rows(org_a, "hour")
    assert [hours[(h, None, None)].unique_viewers for h in (H, H + HOUR)] == [
        Sketch.of(range(600)).count(),
        Sketch.of(range(400, 1000)).count(),
    ]
    day = _rows(org_a, "day")[(SHANGHAI_MIDNIGHT, None, None)]
    assert abs(day.unique_viewers - 1000) <= 20
    assert day.visits == 1200


def test_a_late_event_changes_its_hour_and_its_day_on_the_next_run(org_a, events):
    """An hour already rolled up gets an event that occurred in it, ingested later: the next run
    recomputes that hour and the day, and leaves the other hours as they were. (The same day:
    the events are well within their retention.)"""
    events(org_a, [{"type": "visit", "occurred_at": t} for t in (H, H, H + HOUR)])
    rollups.run(now=H + 2 * HOUR)
    untouched = _rows(org_a, "hour")[(H + HOUR, None, None)]

    events(org_a, [{"type": "visit", "occurred_at": H + 59 * MIN, "employment_id": E1}])
    report = rollups.run(now=H + 3 * HOUR)

    assert report.hours == 1
    hours = _rows(org_a, "hour")
    assert hours[(H, None, None)].visits == 2
    assert hours[(H, E1, None)].visits == 1
    assert hours[(H + HOUR, None, None)].pk == untouched.pk  # not rewritten
    days = _rows(org_a, "day")
    assert days[(SHANGHAI_MIDNIGHT, None, None)].visits == 3
    assert days[(SHANGHAI_MIDNIGHT, E1, None)].visits == 1


def _busy_day(organization: Organization, events) -> None:
    """Events over all 24 hours of a local day for two employments, with viewers, views, a shift
    on duty and GPU-seconds: every column has something in it."""
    rows = []
    for hour in range(24):
        at = SHANGHAI_MIDNIGHT + hour * HOUR
        for employment in (E1, E2):
            rows += [
                {"type": "visit", "occurred_at": at + n * MIN, "employment_id": employment,
                 "station_id": S1, "viewer_hash": hour * 7 + n}
                for n in range(10)
            ]  # fmt: skip
            rows += [
                {"type": "view", "occurred_at": at + n * MIN, "employment_id": employment,
                 "station_id": S1, "value": float(n % 7), "viewer_hash": n}
                for n in range(10)
            ]  # fmt: skip
    events(organization, rows)
    on_duty(
        organization,
        SHANGHAI_MIDNIGHT + 3 * HOUR + 20 * MIN,
        SHANGHAI_MIDNIGHT + 5 * HOUR + 1 * MIN,
        updated_at=SHANGHAI_MIDNIGHT + 5 * HOUR + 1 * MIN,
    )
    UsageRecord.objects.create(
        organization=organization,
        source_id="gpu-1",
        usage_type="gpu_seconds",
        quantity="12.5",
        employment_id=E1,
        station_id=S1,
        occurred_at=SHANGHAI_MIDNIGHT + 4 * HOUR,
    )
    marks.mark_hours(organization, [SHANGHAI_MIDNIGHT + 4 * HOUR])


def test_running_again_over_the_same_hours_writes_the_same_rows(org_a, events):
    """All hours marked again and recomputed: every column of every row is as before."""
    _busy_day(org_a, events)
    now = SHANGHAI_MIDNIGHT + 2 * dt.timedelta(days=1)
    rollups.run(now=now)
    first = _snapshot(org_a)
    assert len(first) == 48 + 3 + 3  # E1's and E2's hours, the shift's 3 hours; 3 days

    marks.mark_hours(org_a, [SHANGHAI_MIDNIGHT + n * HOUR for n in range(24)])
    report = rollups.run(now=now + HOUR)

    assert report.hours == 24
    assert _snapshot(org_a) == first


def test_a_run_deletes_the_marks_it_read_and_no_other(org_a, events, monkeypatch):
    """A mark appended after the run read its marks (here: while it reads the raw rows, in the
    same transaction, as an ingestion committing meanwhile would on PostgreSQL) survives the
    run, so that its hour is recomputed again next time."""
    events(org_a, [{"type": "visit", "occurred_at": H}])
    read = rollups.read_hours

    def read_then_mark(organization, hours, now):
        counted = read(organization, hours, now)
        marks.mark_hours(organization, [H])
        return counted

    monkeypatch.setattr(rollups, "read_hours", read_then_mark)
    rollups.run()
    assert _marks(org_a) == [H]

    monkeypatch.setattr(rollups, "read_hours", read)
    assert rollups.run().hours == 1
    assert _marks(org_a) == []


def test_the_oldest_marks_go_first_and_the_rest_wait(org_a, org_b, events):
    """With room for one organization-day, the one marked longest ago is recomputed; the other
    keeps its marks for the next run."""
    events(org_a, [{"type": "visit", "occurred_at": H}])
    events(org_b, [{"type": "visit", "occurred_at": H}])
    RollupMark.objects.for_organization(org_b).update(marked_at=H)  # marked long before

    report = rollups.run(limit=1)

    assert report.groups == 1
    assert _rows(org_b, "hour") and not _rows(org_a, "hour")
    assert _marks(org_a) == [H]
    rollups.run(limit=1)
    assert _rows(org_a, "hour")[(H, None, None)].visits == 1


def test_a_failing_day_keeps_its_marks_and_the_others_go_on(org_a, org_b, events, monkeypatch):
    """One organization's day fails while it is recomputed: it is counted and logged, nothing of
    it is written, its marks stay; the other organization's day is recomputed."""
    events(org_a, [{"type": "visit", "occurred_at": H}])
    events(org_b, [{"type": "visit", "occurred_at": H}])
    read = rollups.read_hours

    def fail_for_b(organization, hours, now):
        if organization.pk == org_b.pk:
            raise RuntimeError("disk on fire")
        return read(organization, hours, now)

    monkeypatch.setattr(rollups, "read_hours", fail_for_b)
    errors = _metric("ironbowl_analytics_rollup_errors_total")

    report = rollups.run()

    assert (report.groups, report.failed) == (1, 1)
    assert _metric("ironbowl_analytics_rollup_errors_total") == errors + 1
    assert _rows(org_a, "hour")[(H, None, None)].visits == 1
    assert not _rows(org_b, "hour") and _marks(org_b) == [H]
    monkeypatch.setattr(rollups, "read_hours", read)
    assert rollups.run().groups == 1
    assert _rows(org_b, "day")[(SHANGHAI_MIDNIGHT, None, None)].visits == 1


def test_gpu_seconds_come_from_usage_records_corrections_included(org_a):
    """GPU-seconds recorded in an hour (less a reversing correction) count for it; other usage
    types do not."""
    common = {"organization": org_a, "employment_id": E1, "station_id": S1}
    first = UsageRecord.objects.create(
        source_id="w1", usage_type="gpu_seconds", quantity="120.5", occurred_at=H + MIN, **common
    )
    UsageRecord.objects.create(
        source_id="w1-fix", usage_type="gpu_seconds", quantity="-20.5", occurred_at=H + 2 * MIN,
        reverses=first, **common,
    )  # fmt: skip
    UsageRecord.objects.create(
        source_id="s1", usage_type="stream_minutes", quantity="60", occurred_at=H + MIN, **common
    )
    marks.mark_hours(org_a, [H])

    rollups.run()

    assert _rows(org_a, "hour")[(H, E1, S1)].gpu_seconds == 100.0
    assert _rows(org_a, "day")[(SHANGHAI_MIDNIGHT, E1, S1)].gpu_seconds == 100.0


def test_broadcast_seconds_follow_a_shift_on_duty_hour_by_hour(org_a):
    """Nothing marks these hours but the runs themselves: a shift goes on duty at 10:10; each
    run re-marks the hour on duty, so it grows; the hour just gone gets its last minutes after
    it ends; when the shift ends at 11:20, both hours are final. Attributed to the shift's
    employment and station."""
    _in_zone(org_a, "UTC")
    ten = dt.datetime(2025, 6, 3, 10, tzinfo=UTC)
    shift = on_duty(org_a, ten + 10 * MIN, updated_at=ten + 10 * MIN)
    key = (shift.employment_id, shift.station_id)

    def seconds() -> dict[dt.datetime, float]:
        return {b: r.broadcast_seconds for (b, *k), r in _rows(org_a, "hour").items()
                if tuple(k) == key}  # fmt: skip

    rollups.run(now=ten + 30 * MIN)
    assert seconds() == {ten: 20 * 60}
    rollups.run(now=ten + 50 * MIN)
    assert seconds() == {ten: 40 * 60}
    rollups.run(now=ten + 65 * MIN)
    assert seconds() == {ten: 50 * 60, ten + HOUR: 5 * 60}
    moved(shift, ended_at=ten + 80 * MIN, updated_at=ten + 80 * MIN)
    rollups.run(now=ten + 81 * MIN)
    assert seconds() == {ten: 50 * 60, ten + HOUR: 20 * 60}
    day = _rows(org_a, "day")[(dt.datetime(2025, 6, 3, tzinfo=UTC), *key)]
    assert day.broadcast_seconds == 70 * 60
    rollups.run(now=ten + 3 * HOUR)  # long after: nothing left to mark, nothing changes
    assert seconds() == {ten: 50 * 60, ten + HOUR: 20 * 60}


@pytest.mark.parametrize("watermark_lost", [False, True])
def test_a_shift_that_ended_during_a_rollup_outage_is_counted(org_a, watermark_lost):
    """The rollup last ran at 10:30 and runs again at 15:00; meanwhile the shift ended at 11:20.
    Its hours are recomputed from the last scan's watermark — or, with the cache flushed, from
    the catch-up window."""
    _in_zone(org_a, "UTC")
    ten = dt.datetime(2025, 6, 3, 10, tzinfo=UTC)
    shift = on_duty(org_a, ten + 10 * MIN, updated_at=ten + 10 * MIN)
    rollups.run(now=ten + 30 * MIN)
    moved(shift, ended_at=ten + 80 * MIN, updated_at=ten + 80 * MIN)
    if watermark_lost:
        cache.clear()

    rollups.run(now=ten + 5 * HOUR)

    hours = _rows(org_a, "hour")
    key = (shift.employment_id, shift.station_id)
    assert hours[(ten, *key)].broadcast_seconds == 50 * 60
    assert hours[(ten + HOUR, *key)].broadcast_seconds == 20 * 60


def test_shift_scans_mark_only_what_changed(org_a):
    """A shift that ended is marked by the scans that follow within the slack of its update, then
    no more; a shift on duty has its current hour marked by every scan."""
    _in_zone(org_a, "UTC")
    ten = dt.datetime(2025, 6, 3, 10, tzinfo=UTC)
    on_duty(org_a, ten, ten + 30 * MIN, updated_at=ten + 30 * MIN)
    assert rollups.mark_shift_hours(ten + 31 * MIN) == 1
    assert rollups.mark_shift_hours(ten + 36 * MIN) == 1  # updated 10:30 ≥ 10:31 - 5 min
    assert rollups.mark_shift_hours(ten + 45 * MIN) == 0  # updated 10:30 < 10:36 - 5 min
    assert rollups.mark_shift_hours(ten + 2 * HOUR) == 0
    on_duty(org_a, ten + 3 * HOUR, updated_at=ten + 3 * HOUR)
    assert rollups.mark_shift_hours(ten + 3 * HOUR + MIN) == 1
    assert rollups.mark_shift_hours(ten + 5 * HOUR) == 3  # 13:00 to now (15:00): 13, 14, 15
    assert rollups.mark_shift_hours(ten + 5 * HOUR + 30 * MIN) == 2  # since 14:55: 14, 15
    assert rollups.mark_shift_hours(ten + 5 * HOUR + 40 * MIN) == 1  # since 15:25: 15


@pytest.mark.parametrize(
    ("day", "midnight", "hours"),
    [
        (dt.date(2025, 3, 9), dt.datetime(2025, 3, 9, 5, tzinfo=UTC), 23),  # clocks forward
        (dt.date(2025, 11, 2), dt.datetime(2025, 11, 2, 4, tzinfo=UTC), 25),  # clocks back
    ],
)
def test_a_local_day_on_which_the_clocks_change(org_a, events, day, midnight, hours):
    """New York: a visit in every hour of the local day and one on each side of it. The day's
    row starts at local midnight and sums its 23 or 25 hours; the neighbours are other days."""
    _in_zone(org_a, "America/New_York")
    every_hour = [midnight + n * HOUR for n in range(hours)]
    before, after = midnight - MIN, every_hour[-1] + HOUR
    events(org_a, [{"type": "visit", "occurred_at": t} for t in [before, *every_hour, after]])

    report = rollups.run()

    assert report.groups == 3
    days = _rows(org_a, "day")
    assert days[(midnight, None, None)].visits == hours
    assert days[(after, None, None)].visits == 1  # the next local midnight
    assert sorted(b for b, *_ in _rows(org_a, "hour") if midnight <= b < after) == every_hour
    assert sum(r.visits for r in days.values()) == hours + 2


def test_in_a_half_hour_zone_an_hour_belongs_to_the_day_it_starts_in(org_a, events):
    """Kolkata (UTC+5:30): the UTC hour 18:00–19:00 starts at 23:30 local, so both its visits —
    one at 23:40 local, one at 00:10 local the next day — count for the first day."""
    _in_zone(org_a, "Asia/Kolkata")
    hour = dt.datetime(2025, 6, 3, 18, tzinfo=UTC)
    events(org_a, [{"type": "visit", "occurred_at": hour + m * MIN} for m in (10, 40)])

    rollups.run()

    day = dt.datetime(2025, 6, 2, 18, 30, tzinfo=UTC)  # midnight of 3 June in Kolkata
    assert list(_rows(org_a, "day")) == [(day, None, None)]
    assert _rows(org_a, "day")[(day, None, None)].visits == 2


def test_statements_per_day_do_not_grow_with_events_or_rows(
    org_a, events, django_assert_max_num_queries
):
    """A whole day marked (24 hours, 960 events, 51 hourly rows): at most the run's 5
    statements, the group's 14 (the lock is PostgreSQL's only) and 2 more to record the
    organization's zone (its first roll-up), and the savepoint around the group (the test runs
    in a transaction). One statement per hour or per row would be 24 or 51 more."""
    _busy_day(org_a, events)

    with django_assert_max_num_queries(5 + 14 + 2 + 2):
        report = rollups.run(now=SHANGHAI_MIDNIGHT + 2 * dt.timedelta(days=1))

    assert (report.groups, report.hours) == (1, 24)
    assert len(_rows(org_a, "hour")) == 48 + 3


def test_the_task_runs_a_rollup_and_beat_runs_it_every_minute(org_a, events):
    events(org_a, [{"type": "visit", "occurred_at": H}])

    result = tasks.rollup()

    assert (result["groups"], result["hours"], result["failed"]) == (1, 1, 0)
    entry = app.conf.beat_schedule["analytics.rollup"]
    assert entry["task"] == tasks.rollup.name == "analytics.rollup"
    assert entry["task"] in app.tasks
    assert entry["schedule"] == crontab(minute="*")
