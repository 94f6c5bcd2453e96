"""An hour recomputed after its raw events expired keeps what it counted from them.

Raw events are kept as long as the plan says; rollups for good. An hour rolled up, then its
events dropped by retention, is marked again by something that still has rows — a shift
corrected, a GPU record reversed, a late usage report — and recomputed: its visits, viewers,
views and interactions stay as they were, its broadcast and GPU-seconds follow the rows.

Real: `rollups.run` and `retention.enforce` on the suite's database (on PostgreSQL the events'
day partition is really dropped; on SQLite the rows are deleted), events stored as ingestion
stores them, shifts as the tick leaves them, usage reversed and reports converted by the usage
service. Simulated: the clock — runs and retention get `now`, a month or more after the hour.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from ironbowl.analytics import marks, retention, rollups, usage
from ironbowl.analytics.models import Event, Rollup, RollupZone, UsageRecord
from scheduling.models import Shift
from tenants.audit import SYSTEM
from tenants.models import Organization
from tenants.plans import limits_of
from tests.analytics import usage_world
from tests.analytics.rollup_world import moved, on_duty, rows, run_zone_migration_backfill
from tests.analytics.rows import rollup

UTC = dt.UTC
H = dt.datetime(2025, 6, 3, 2, tzinfo=UTC)  # 10:00 in Shanghai, the organizations' zone
MIDNIGHT = dt.datetime(2025, 6, 2, 16, tzinfo=UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
# Counted from events: what must survive the events.
EVENT_COLUMNS = (
    "visits",
    "unique_viewers",
    "viewer_sketch",
    "view_samples",
    "view_sum",
    "peak_viewers",
    "interactions",
    "comments",
    "handoffs",
    "sessions",
    "custom_events",
    "event_retention_days",
)


def _event_columns(organization: Organization) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        key: {name: row[name] for name in EVENT_COLUMNS}
        for key, row in rows(organization).items()
        if row["visits"]
    }


def _counted_hour(organization: Organization, events) -> tuple[Shift, UsageRecord]:
    """Hour H rolled up the same day: a shift on duty 10:10-10:50 (40 minutes), GPU-seconds
    recorded for it, and events of every counted kind on its stream and unattributed."""
    shift = on_duty(organization, H + 10 * MIN, H + 50 * MIN, updated_at=H + 50 * MIN)
    stream = {"employment_id": shift.employment_id, "station_id": shift.station_id}
    events(organization, [
        *[{"type": "visit", "occurred_at": H + n * MIN, "viewer_hash": n, **stream}
          for n in range(1, 7)],
        *[{"type": "view", "occurred_at": H + 15 * MIN, "value": v, "viewer_hash": 1, **stream}
          for v in (4.0, 9.0, 7.0)],
        *[{"type": "interaction", "occurred_at": H + 20 * MIN, **stream}] * 2,
        {"type": "handoff", "occurred_at": H + 21 * MIN, **stream},
        {"type": "comment", "occurred_at": H + 22 * MIN, "viewer_hash": 40, **stream},
        {"type": "session_start", "occurred_at": H + 23 * MIN, **stream},
        {"type": "custom", "occurred_at": H + 24 * MIN, "name": "coupon", **stream},
        *[{"type": "visit", "occurred_at": H + 30 * MIN, "viewer_hash": 50}] * 2,
    ])  # fmt: skip
    record = UsageRecord.objects.create(
        organization=organization,
        source_id="gpu-1",
        usage_type="gpu_seconds",
        quantity=Decimal("120.5"),
        gpu_class="l4",
        occurred_at=H + 20 * MIN,
        **stream,
    )
    marks.mark_hours(organization, [record.occurred_at])
    rollups.run(now=H + 2 * HOUR)
    return shift, record


def _expire(organization: Organization, now: dt.datetime) -> None:
    """Retention runs at `now`: the hour's raw events are gone (checked, or the test proves
    nothing)."""
    retention.enforce(now)
    assert not Event.objects.for_organization(organization).filter(occurred_at__lt=H + HOUR)


def _stream_rows(organization: Organization, shift: Shift) -> tuple[Rollup, Rollup]:
    rollup_rows = Rollup.objects.for_organization(organization).filter(
        employment_id=shift.employment_id, station_id=shift.station_id
    )
    return rollup_rows.get(grain="hour", bucket=H), rollup_rows.get(grain="day", bucket=MIDNIGHT)


def test_a_shift_corrected_after_its_events_expired_changes_only_broadcast_seconds(org_a, events):
    """A month later the shift is corrected to have ended at 10:30, which marks every hour it
    spent on duty. The hour and its day now broadcast 20 minutes; their visits, viewers, views
    and interactions are those counted before the events went."""
    shift, _record = _counted_hour(org_a, events)
    counted = _event_columns(org_a)
    assert len(counted) == 4  # the stream's and the unattributed visits', hour and day
    later = H + 31 * DAY
    _expire(org_a, later)

    moved(shift, ended_at=H + 30 * MIN, updated_at=later - MIN)
    report = rollups.run(now=later)

    assert (report.shift_marks, report.hours) == (1, 1)
    assert _event_columns(org_a) == counted
    hour, day = _stream_rows(org_a, shift)
    assert (hour.visits, hour.unique_viewers, hour.peak_viewers) == (6, 7, 9)
    assert hour.broadcast_seconds == day.broadcast_seconds == 20 * 60
    assert hour.gpu_seconds == day.gpu_seconds == 120.5


def test_a_gpu_record_reversed_after_its_hours_events_expired_keeps_the_event_kpis(org_a, events):
    """The GPU record is reversed a month later: the hour's and the day's GPU-seconds go to
    zero, everything counted from events stays."""
    shift, record = _counted_hour(org_a, events)
    counted = _event_columns(org_a)
    later = H + 31 * DAY
    _expire(org_a, later)

    usage.reverse(org_a, record, "Metered twice.", SYSTEM)
    report = rollups.run(now=later)

    assert report.hours == 1
    assert _event_columns(org_a) == counted
    hour, day = _stream_rows(org_a, shift)
    assert hour.gpu_seconds == day.gpu_seconds == 0
    assert hour.broadcast_seconds == day.broadcast_seconds == 40 * 60


def test_a_late_usage_report_for_an_expired_hour_adds_its_gpu_seconds(org_a, events):
    """A worker's report of that hour arrives a month late and is converted: its workload's
    stream gets a row with its GPU-seconds; the rows counted from events are as they were."""
    _counted_hour(org_a, events)
    counted = _event_columns(org_a)
    later = H + 31 * DAY
    _expire(org_a, later)
    workload = usage_world.attributed_workload(org_a)
    late = usage_world.report(workload, reported_at=H + 40 * MIN, gpu_seconds=30.0)

    usage.convert_reports([late.pk])
    rollups.run(now=later)

    assert _event_columns(org_a) == counted
    spec = workload.spec
    added = Rollup.objects.for_organization(org_a).get(
        grain="hour", bucket=H, employment_id=spec["employment"], station_id=spec["station"]
    )
    assert (added.gpu_seconds, added.visits, added.event_retention_days) == (30.0, 0, None)


def test_events_counted_on_a_shorter_plan_are_kept_after_an_upgrade(org_a, events):
    """Counted while the organization was on trial (30 days), then it moved to enterprise (400
    days). 45 days later the trial's events are gone although the plan now keeps 400 days: the
    hour recomputed then still keeps their counts (each row remembers its events' retention;
    the plan's would say they are all there)."""
    shift, record = _counted_hour(org_a, events)
    counted = _event_columns(org_a)
    assert {row["event_retention_days"] for row in counted.values()} == {30, None}
    org_a.plan = "enterprise"
    org_a.save(update_fields=["plan"])
    later = H + 45 * DAY
    assert limits_of(org_a).event_retention_days > 45
    _expire(org_a, later)

    usage.reverse(org_a, record, "Metered twice.", SYSTEM)
    rollups.run(now=later)

    assert _event_columns(org_a) == counted
    assert _stream_rows(org_a, shift)[0].gpu_seconds == 0


def test_an_hour_whose_events_are_all_kept_is_counted_from_them_again(org_a, events):
    """On enterprise (400 days) an event of an hour 45 days old is ingested late: its events are
    all still there, so the hour is counted from them again, the late one included."""
    org_a.plan = "enterprise"
    org_a.save(update_fields=["plan"])
    events(org_a, [{"type": "visit", "occurred_at": H + n * MIN} for n in range(3)])
    rollups.run(now=H + 2 * HOUR)

    later = H + 45 * DAY
    retention.enforce(later)
    events(org_a, [{"type": "visit", "occurred_at": H + 59 * MIN}])
    rollups.run(now=later)

    hour = Rollup.objects.for_organization(org_a).get(grain="hour", bucket=H)
    assert (hour.visits, hour.event_retention_days) == (4, 400)
    assert Rollup.objects.for_organization(org_a).get(grain="day").visits == 4


@pytest.mark.parametrize("gone", [False, True])
def test_an_hour_is_kept_from_the_instant_its_retention_passes_its_start(org_a, events, gone):
    """The rule at its edge, with the events still there: at 30 days after the hour's start it
    is still counted from events (a late one counts); one second later it keeps its counts."""
    events(org_a, [{"type": "visit", "occurred_at": H + MIN}])
    rollups.run(now=H + 2 * HOUR)
    events(org_a, [{"type": "visit", "occurred_at": H + 2 * MIN}])

    rollups.run(now=H + 30 * DAY + (dt.timedelta(seconds=1) if gone else dt.timedelta()))

    hour = Rollup.objects.for_organization(org_a).get(grain="hour", bucket=H)
    assert hour.visits == (1 if gone else 2)


def test_rows_from_before_the_migration_keep_their_event_counts_once_old(org_a, events):
    """Hour rows written before rows recorded their events' retention: the migration gives those
    that counted events the shortest retention a plan had (30 days), and leaves the others
    without; such an hour recomputed 31 days on keeps its visits."""
    shift, record = _counted_hour(org_a, events)
    counted = _event_columns(org_a)
    broadcast_only = rollup(org_a, H + 3 * HOUR, grain="hour", broadcast_seconds=60.0)
    Rollup.objects.for_organization(org_a).update(event_retention_days=None)
    RollupZone.objects.for_organization(org_a).delete()  # as before the migration

    run_zone_migration_backfill()

    assert _event_columns(org_a) == counted
    broadcast_only.refresh_from_db()
    assert broadcast_only.event_retention_days is None
    later = H + 31 * DAY
    _expire(org_a, later)
    usage.reverse(org_a, record, "Metered twice.", SYSTEM)
    rollups.run(now=later)
    assert _event_columns(org_a) == counted
    assert _stream_rows(org_a, shift)[0].gpu_seconds == 0
