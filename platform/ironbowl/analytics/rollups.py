"""Rollups: counts per organization × employment × station for each UTC hour and each local day,
recomputed whole from the raw rows whenever an hour is marked stale.

`run()` is the `analytics.rollup` task, every minute:

1. **Shift hours are marked** (`mark_shift_hours`). Broadcast seconds come from scheduling's
   shifts, which change without ingestion seeing them. Rather than have scheduling call analytics
   (a dependency the wrong way round), each run marks, from one query of shifts:
   - every hour that a shift updated since the last scan spent on duty, [on_duty_at, ended_at or
     now): going on duty, ending, failing, a retry, a take-over, a correction — each bumps
     `updated_at`;
   - for each shift still on duty, the hours from the last scan to now: the current hour grows by
     the minute, and the hour just gone gets its last minutes.
   "The last scan" is a watermark kept in the cache (Redis in production), less `SLACK` for
   shift updates timestamped before a scan but committed after it. With no watermark (the first
   run, a flushed cache, a fresh process of the embedded default, whose cache is per process) the
   scan looks back `CATCH_UP`: marking a day of shift hours once is cheap, and it makes a rollup
   outage of up to that long harmless. An outage shorter than the watermark's lifetime is
   harmless whatever its length. Marks are idempotent: an hour marked twice is recomputed to the
   same rows. (Marking "shifts updated in the last N minutes" needs no watermark, but it forgets
   changes made during an outage longer than N, and recomputes each change N times.)
2. **Days are moved to a new time zone** (`move_days`). Day rows are keyed by local midnight,
   so after `Organization.time_zone` changes, the old zone's days would overlap the new zone's.
   `RollupZone` records the zone an organization's day rows are cut in; each run finds the
   organizations whose zone is now another (`zone_changes`, one query) and, per organization in
   one transaction, deletes its day rows and rebuilds every one from the hour rows in the new
   zone. Hour rows are UTC, kept for good, and carry their viewer sketches, so a day is rebuilt
   whole, one whose raw events have expired too: readers see the old days or the new, never
   both, and nothing is lost. Until the run after the change, the old days show under the new
   zone's dates they fall in — a few hours off, never counted twice.
3. **Stale hours are grouped** by organization and local day (`Organization.time_zone`), the
   group with the oldest mark first, at most `limit` groups.
4. **Each group, in one transaction**: on PostgreSQL `pg_try_advisory_xact_lock` on a hash of
   organization and day, so that two runs never interleave on a day, and the same function's
   shared form on the organization, which `move_days` takes exclusively — a run never waits for
   another: it skips a day another run (or a move) holds, and that day's marks stay for the next
   run. A day whose organization's zone is not the one its day rows are in (a move to come) is
   skipped too. Then it reads the day's marks, recomputes each marked hour from raw events,
   shifts and usage records, replaces the hour's rows, recomputes the day's rows from its hourly
   rows (23, 24 or 25 of them), and deletes exactly the marks it read. Marks appended meanwhile
   (late events, a shift still on duty) stay for the next run. The marks are read before the raw
   rows: an event committed after the marks were read is either counted now or by the next run —
   its own mark is still there.

**Raw events expire; rollups are kept.** An hour row records the shortest retention of the
events it counted (`Rollup.event_retention_days`, per event: a plan change moves only new events
to the new period). Once the hour starts before that retention's cut-off (`retention.cutoff`),
some of those events may be gone, and recounting them would wipe what they counted. Such an hour
keeps its columns counted from events (visits, viewers and their sketch, views, interactions,
comments, hand-offs, sessions, custom events) as stored, and recomputes only what comes from rows
still there: broadcast seconds from shifts, GPU-seconds from usage records (a shift corrected or
a GPU record reversed long after). An event ingested late into such an hour is not counted in
it: ingestion takes one only in the hour that straddles the plan's cut-off, or after a move to a
plan that keeps events longer than the one its neighbours were counted under.

An hour belongs to the local day its first instant falls in; in a time zone whose offset is not a
whole number of hours (Asia/Kolkata) the day's first and last hours straddle midnight.

Statements per group, at most: the locks (one, PostgreSQL only), the day rows' zone, the marks,
the hours' stored rows (their event columns, kept where events may be gone), event counts,
distinct viewers, shifts, usage, deleting the hours' rows, inserting them, the day's hourly rows,
deleting the day's rows, inserting them, deleting the marks — 14 — plus two the first time an
organization is rolled up (its zone recorded), one more per `INSERT_BATCH` rows inserted (on
SQLite per 49 rows: Django's 999 parameters ÷ 20 columns) and per `DELETE_BATCH` marks. The run
adds five: the shift scan, its marks, the zone changes, the stale hours, their organizations.
None of these grows with the number of events. A move costs the organization's lock, reading the
organization, deleting its days, the span of its hours, one read per `MOVE_DAYS` days and its
inserts, and recording the zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from ironbowl.analytics import retention
from ironbowl.analytics.hll import Sketch
from ironbowl.analytics.marks import hour_of, hours_between
from ironbowl.analytics.metrics import ROLLUP_DELAY, ROLLUP_ERRORS, ROLLUP_SECONDS
from ironbowl.analytics.models import (
    Event,
    EventType,
    Rollup,
    RollupGrain,
    RollupMark,
    RollupZone,
    UsageRecord,
    UsageType,
)
from scheduling.models import Shift
from tenants.models import Organization

log = structlog.get_logger(__name__)

HOUR = dt.timedelta(hours=1)
DEFAULT_LIMIT = 500  # organization-days per run
INSERT_BATCH = 1000
DELETE_BATCH = 10_000
MAX_HOURS_PER_DAY = 25
WATERMARK_KEY = "analytics:rollup:shifts_scanned_at"
SLACK = dt.timedelta(minutes=5)
CATCH_UP = dt.timedelta(hours=24)
MOVES_PER_RUN = 20  # organizations whose days are moved to a new time zone, per run
MOVE_DAYS = 31  # local days of hour rows read at a time while moving

# Summed from hours into days; peak_viewers is a maximum, unique_viewers an estimate.
SUMMED = (
    "visits",
    "view_samples",
    "view_sum",
    "interactions",
    "comments",
    "handoffs",
    "sessions",
    "custom_events",
    "broadcast_seconds",
    "gpu_seconds",
)
# Counted from raw events (with the viewer sketch): what an hour keeps once its events may be gone.
EVENT_COUNTED = (
    "visits",
    "view_samples",
    "view_sum",
    "peak_viewers",
    "interactions",
    "comments",
    "handoffs",
    "sessions",
    "custom_events",
)
_COUNTED_TYPES = {
    "visits": EventType.VISIT,
    "interactions": EventType.INTERACTION,
    "comments": EventType.COMMENT,
    "handoffs": EventType.HANDOFF,
    "sessions": EventType.SESSION_START,
    "custom_events": EventType.CUSTOM,
}

Key = tuple[uuid.UUID | None, uuid.UUID | None]  # employment, station


@dataclasses.dataclass
class RunReport:
    """What one run did: organization-days and hours recomputed, organizations whose days moved
    to a new time zone, days and moves skipped because another run held them (or a move is to
    come), days and moves that failed (their marks stay), hours marked for shifts, wall time."""

    groups: int = 0
    hours: int = 0
    zones_moved: int = 0
    skipped: int = 0
    failed: int = 0
    shift_marks: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, int | float]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Group:
    """One organization's local day with stale hours: `start` and `end` are its midnights, as
    UTC instants."""

    organization: Organization
    day: dt.date
    start: dt.datetime
    end: dt.datetime


@dataclasses.dataclass
class _Tally:
    visits: int = 0
    view_samples: int = 0
    view_sum: float = 0.0
    peak_viewers: int = 0
    interactions: int = 0
    comments: int = 0
    handoffs: int = 0
    sessions: int = 0
    custom_events: int = 0
    broadcast_seconds: float = 0.0
    gpu_seconds: float = 0.0
    sketch: Sketch | None = None
    retention_days: int | None = None  # an hour's: the shortest of its events' (None: no events)

    def add(self, other: _Tally) -> None:
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.peak_viewers = max(self.peak_viewers, other.peak_viewers)
        if other.sketch is not None:
            if self.sketch is None:
                self.sketch = Sketch()
            self.sketch.merge(other.sketch)

    def rollup(
        self,
        group: Group,
        grain: str,
        bucket: dt.datetime,
        key: Key,
        now: dt.datetime,
    ) -> Rollup:
        sketch = self.sketch or Sketch()
        return Rollup(
            organization=group.organization,
            grain=grain,
            bucket=bucket,
            employment_id=key[0],
            station_id=key[1],
            unique_viewers=sketch.count(),
            viewer_sketch=sketch.to_bytes(),
            peak_viewers=self.peak_viewers,
            event_retention_days=self.retention_days,
            computed_at=now,
            **{name: getattr(self, name) for name in SUMMED},
        )


Tallies = defaultdict[tuple[dt.datetime, Key], _Tally]  # per hour, employment and station


def run(limit: int = DEFAULT_LIMIT, now: dt.datetime | None = None) -> RunReport:
    """Marks shift hours, moves the days of organizations whose time zone changed, then
    recomputes up to `limit` stale organization-days, oldest first. A day or a move that fails is
    logged and counted, and is tried again next run; the others go on."""
    started = time.monotonic()
    now = now or timezone.now()
    report = RunReport(shift_marks=mark_shift_hours(now))
    for organization in zone_changes():
        try:
            moved = move_days(organization, now)
        except Exception:
            _failed(report, "analytics.rollup_move_failed", organization=str(organization.pk))
            continue
        if moved:
            report.zones_moved += 1
        else:
            report.skipped += 1
    for group in stale_groups(limit):
        began = time.monotonic()
        try:
            done = roll_up(group, now)
        except Exception:
            _failed(
                report,
                "analytics.rollup_failed",
                organization=str(group.organization.pk),
                day=group.day.isoformat(),
            )
            continue
        if done is None:
            report.skipped += 1
            continue
        if not done:
            continue  # another run took these marks since they were listed
        ROLLUP_SECONDS.observe(time.monotonic() - began)
        finished = timezone.now()
        for marked_at in done.values():
            ROLLUP_DELAY.observe(max(0.0, (finished - marked_at).total_seconds()))
        report.groups += 1
        report.hours += len(done)
    report.seconds = round(time.monotonic() - started, 3)
    if report.groups or report.zones_moved or report.failed or report.skipped:
        log.info("analytics.rollup_ran", **report.as_dict())
    return report


def _failed(report: RunReport, event: str, **where: str) -> None:
    """Counts and logs the exception being handled."""
    ROLLUP_ERRORS.inc()
    report.failed += 1
    log.exception(event, **where)


# --- Shifts --------------------------------------------------------------------------------------


def mark_shift_hours(now: dt.datetime) -> int:
    """Marks the hours whose broadcast seconds shifts changed since the last scan (see the
    module's docstring); returns how many organization-hours it marked."""
    since = _last_scan(now) - SLACK
    shifts = (
        Shift.objects.unscoped_dangerously()  # every organization's: the rollup is a platform job
        .filter(on_duty_at__isnull=False, on_duty_at__lte=now)
        .filter(Q(ended_at__isnull=True) | Q(updated_at__gte=since))
        .values_list("organization_id", "on_duty_at", "ended_at", "updated_at")
    )
    stale: set[tuple[uuid.UUID, dt.datetime]] = set()
    for organization_id, on_duty_at, ended_at, updated_at in shifts:
        if on_duty_at is None:
            continue  # filtered out above; for the type checker
        if updated_at >= since:
            hours = hours_between(on_duty_at, ended_at or now)
        else:
            hours = hours_between(max(on_duty_at, since), now)
        if ended_at is None:
            hours.append(hour_of(now))
        stale.update((organization_id, hour) for hour in hours)
    RollupMark.objects.unscoped_dangerously().bulk_create(
        [RollupMark(organization_id=org, hour=hour, marked_at=now) for org, hour in sorted(stale)],
        batch_size=INSERT_BATCH,
    )
    cache.set(WATERMARK_KEY, now, timeout=None)
    return len(stale)


def _last_scan(now: dt.datetime) -> dt.datetime:
    seen = cache.get(WATERMARK_KEY)
    if not isinstance(seen, dt.datetime):
        return now - CATCH_UP
    return min(seen, now)


# --- Groups --------------------------------------------------------------------------------------


def stale_groups(limit: int = DEFAULT_LIMIT) -> list[Group]:
    """Organization-days with marks, the one with the oldest mark first; at most `limit`."""
    stale = list(
        RollupMark.objects.unscoped_dangerously()  # every organization's: a platform job
        .values("organization_id", "hour")
        .annotate(oldest=Min("marked_at"))
        .order_by("oldest", "organization_id", "hour")[: limit * MAX_HOURS_PER_DAY]
    )
    organizations = Organization.objects.in_bulk({row["organization_id"] for row in stale})
    oldest: dict[tuple[uuid.UUID, dt.date], dt.datetime] = {}
    for row in stale:
        organization = organizations.get(row["organization_id"])
        if organization is None:
            continue  # deleted since: its marks went with it
        day = row["hour"].astimezone(zone_of(organization)).date()
        key = (organization.pk, day)
        oldest[key] = min(oldest.get(key, row["oldest"]), row["oldest"])
    ordered = sorted(oldest, key=lambda key: (oldest[key], str(key[0]), key[1]))[:limit]
    groups = []
    for organization_id, day in ordered:
        organization = organizations[organization_id]
        start, end = day_bounds(day, zone_of(organization))
        groups.append(Group(organization, day, start, end))
    return groups


def zone_of(organization: Organization) -> ZoneInfo:
    try:
        return ZoneInfo(organization.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """A local day's first instant and the next day's, in UTC (23 or 25 hours apart when the
    clocks change; where midnight is skipped, the day starts when the clocks jump)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


# --- One group -----------------------------------------------------------------------------------


def roll_up(group: Group, now: dt.datetime) -> dict[dt.datetime, dt.datetime] | None:
    """Recomputes a group's marked hours and its day, in one transaction. Returns each hour
    recomputed with its oldest mark's time; None when another run holds the day, or a move holds
    the organization, or its day rows are in another zone than the group's (a move to come)."""
    organization = group.organization
    with transaction.atomic():
        if not _try_lock(group) or _day_zone(organization) != organization.time_zone:
            return None
        marks = list(
            RollupMark.objects.for_organization(organization)
            .filter(hour__gte=group.start, hour__lt=group.end)
            .values_list("id", "hour", "marked_at")
        )
        oldest: dict[dt.datetime, dt.datetime] = {}
        for _id, hour, marked_at in marks:
            oldest[hour] = min(oldest.get(hour, marked_at), marked_at)
        if not oldest:
            return {}
        hours = sorted(oldest)
        rollups = Rollup.objects.for_organization(organization)
        tallies = read_hours(organization, hours, now)
        rollups.filter(grain=RollupGrain.HOUR, bucket__in=hours).delete()
        rollups.bulk_create(
            [
                tally.rollup(group, RollupGrain.HOUR, hour, key, now)
                for (hour, key), tally in tallies.items()
            ],
            batch_size=INSERT_BATCH,
        )
        days = _read_day(group)
        rollups.filter(grain=RollupGrain.DAY, bucket=group.start).delete()
        rollups.bulk_create(
            [tally.rollup(group, RollupGrain.DAY, group.start, key, now) for key, tally in days],
            batch_size=INSERT_BATCH,
        )
        ids = [mark_id for mark_id, _hour, _marked_at in marks]
        for first in range(0, len(ids), DELETE_BATCH):
            chunk = ids[first : first + DELETE_BATCH]
            RollupMark.objects.for_organization(organization).filter(id__in=chunk).delete()
    return oldest


def _try_lock(group: Group) -> bool:
    """The day, and the organization shared (no move of its days under way)."""
    return _try_locks(
        "SELECT pg_try_advisory_xact_lock_shared(%s) AND pg_try_advisory_xact_lock(%s)",
        _organization_lock(group.organization),
        f"analytics.rollup:{group.organization.pk}:{group.day.isoformat()}",
    )


def _try_lock_organization(organization: Organization) -> bool:
    """The organization alone: no roll-up of any of its days under way, none to start."""
    return _try_locks("SELECT pg_try_advisory_xact_lock(%s)", _organization_lock(organization))


def _organization_lock(organization: Organization) -> str:
    return f"analytics.rollup-days:{organization.pk}"


def _try_locks(sql: str, *names: str) -> bool:
    """Transaction-scoped advisory locks on hashes of `names`, taken only if free now."""
    if connection.vendor != "postgresql":
        return True  # SQLite: IMMEDIATE transactions let one writer in at a time
    keys = [
        int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
        for name in names
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, keys)
        row = cursor.fetchone()
    return bool(row and row[0])


def _day_zone(organization: Organization) -> str:
    """The zone the organization's day rows are cut in: recorded on its first roll-up (it has no
    day rows then) as its zone, and by each move."""
    recorded = RollupZone.objects.for_organization(organization).values_list("time_zone", flat=True)
    zone = recorded.first()
    if zone is None:
        RollupZone.objects.for_organization(organization).bulk_create(
            [RollupZone(organization=organization, time_zone=organization.time_zone)],
            ignore_conflicts=True,  # another run's roll-up of another day recorded it first
        )
        zone = recorded.get()
    return zone


def read_hours(
    organization: Organization, hours: Sequence[dt.datetime], now: dt.datetime
) -> dict[tuple[dt.datetime, Key], _Tally]:
    """Counts for each (hour, employment, station) of these hours, from the raw rows: events and
    their distinct viewers, shifts on duty (until `now` if still on), GPU-seconds recorded. An
    hour some of whose counted events may be gone by now keeps its event columns as stored (see
    the module's docstring) and is not counted from events again."""
    tallies, expired = _kept_event_counts(organization, hours, now)
    live = [hour for hour in hours if hour not in expired]
    if live:
        _count_events(organization, _spans(live), tallies)
    spans = _spans(hours)
    for key, seconds in _broadcast(organization, hours, spans, now):
        tallies[key].broadcast_seconds += seconds
    _count_gpu(organization, spans, tallies)
    return dict(tallies)


def _kept_event_counts(
    organization: Organization, hours: Sequence[dt.datetime], now: dt.datetime
) -> tuple[Tallies, set[dt.datetime]]:
    """The hours that start before the retention cut-off of some event their rows counted, and
    those rows' event columns as stored."""
    stored = list(
        Rollup.objects.for_organization(organization)
        .filter(grain=RollupGrain.HOUR, bucket__in=hours, event_retention_days__isnull=False)
        .order_by("bucket", "id")
        .values_list(
            "bucket",
            "employment_id",
            "station_id",
            "event_retention_days",
            "viewer_sketch",
            *EVENT_COUNTED,
        )
    )
    expired = {row[0] for row in stored if row[0] < retention.cutoff(row[3], now)}
    tallies: Tallies = defaultdict(_Tally)
    for bucket, employment_id, station_id, days, sketch, *counts in stored:
        if bucket in expired:
            tally = tallies[(bucket, (employment_id, station_id))]
            tally.retention_days = days
            tally.sketch = Sketch.from_bytes(sketch) if sketch else None
            for name, value in zip(EVENT_COUNTED, counts, strict=True):
                setattr(tally, name, value)
    return tallies, expired


def _count_events(
    organization: Organization, spans: Sequence[tuple[dt.datetime, dt.datetime]], tallies: Tallies
) -> None:
    """Events per hour, employment and station, their distinct viewers and the shortest
    retention among them."""
    events = Event.objects.for_organization(organization).filter(_within("occurred_at", spans))
    hour = TruncHour("occurred_at", tzinfo=dt.UTC)
    counted: dict[str, Any] = {
        name: Count("id", filter=Q(type=kind)) for name, kind in _COUNTED_TYPES.items()
    }
    per_hour = (
        events.annotate(hour=hour)
        .values("hour", "employment_id", "station_id")
        .annotate(
            view_samples=Count("id", filter=Q(type=EventType.VIEW, value__isnull=False)),
            view_sum=Sum("value", filter=Q(type=EventType.VIEW)),
            peak=Max("value", filter=Q(type=EventType.VIEW)),
            retention=Min("retention_days"),
            **counted,
        )
        .order_by()
    )
    for row in cast("Iterable[dict[str, Any]]", per_hour):
        tally = tallies[(row["hour"], (row["employment_id"], row["station_id"]))]
        for name in _COUNTED_TYPES:
            setattr(tally, name, row[name])
        tally.view_samples = row["view_samples"]
        tally.view_sum = row["view_sum"] or 0.0
        tally.peak_viewers = max(0, round(row["peak"] or 0))
        tally.retention_days = row["retention"]

    viewers: dict[tuple[dt.datetime, Key], list[int]] = defaultdict(list)
    distinct = (
        events.filter(viewer_hash__isnull=False)
        .annotate(hour=hour)
        .values_list("hour", "employment_id", "station_id", "viewer_hash")
        .distinct()
        .order_by()
    )
    for at, employment_id, station_id, viewer_hash in distinct:
        if viewer_hash is not None:  # filtered out above; for the type checker
            viewers[(at, (employment_id, station_id))].append(viewer_hash)
    for key, hashes in viewers.items():
        tallies[key].sketch = Sketch.of(hashes)


def _count_gpu(
    organization: Organization, spans: Sequence[tuple[dt.datetime, dt.datetime]], tallies: Tallies
) -> None:
    """GPU-seconds recorded per hour, employment and station (corrections included)."""
    hour = TruncHour("occurred_at", tzinfo=dt.UTC)
    gpu = (
        UsageRecord.objects.for_organization(organization)
        .filter(_within("occurred_at", spans), usage_type=UsageType.GPU_SECONDS)
        .annotate(hour=hour)
        .values("hour", "employment_id", "station_id")
        .annotate(seconds=Sum("quantity"))
        .order_by()
    )
    for usage in gpu:
        key = (usage["hour"], (usage["employment_id"], usage["station_id"]))
        tallies[key].gpu_seconds = float(usage["seconds"] or 0)


def _broadcast(
    organization: Organization,
    hours: Sequence[dt.datetime],
    spans: Sequence[tuple[dt.datetime, dt.datetime]],
    now: dt.datetime,
) -> Iterable[tuple[tuple[dt.datetime, Key], float]]:
    """Seconds each shift was on duty in each hour: the overlap of [on_duty_at, ended_at or now)
    with the hour, attributed to the shift's employment and station."""
    shifts = (
        Shift.objects.for_organization(organization)
        .filter(on_duty_at__isnull=False, on_duty_at__lt=spans[-1][1])
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=spans[0][0]))
        .order_by("on_duty_at", "id")  # a fixed order: float sums come out the same each time
        .values_list("employment_id", "station_id", "on_duty_at", "ended_at")
    )
    for employment_id, station_id, on_duty_at, ended_at in shifts:
        if on_duty_at is None:
            continue  # filtered out above; for the type checker
        until = ended_at or now
        for hour in hours:
            seconds = (min(until, hour + HOUR) - max(on_duty_at, hour)).total_seconds()
            if seconds > 0:
                yield (hour, (employment_id, station_id)), seconds


def _read_day(group: Group) -> list[tuple[Key, _Tally]]:
    """The day's counts per employment and station, from its hourly rows."""
    return _summed(_hourly(group.organization, group.start, group.end))


def _hourly(organization: Organization, start: dt.datetime, end: dt.datetime) -> list[Any]:
    """Hour rows of [start, end), in a fixed order (float sums come out the same each time):
    bucket, employment, station, peak, sketch, then the SUMMED columns."""
    return list(
        Rollup.objects.for_organization(organization)
        .filter(grain=RollupGrain.HOUR, bucket__gte=start, bucket__lt=end)
        .order_by("bucket", "id")
        .values_list(
            "bucket", "employment_id", "station_id", "peak_viewers", "viewer_sketch", *SUMMED
        )
    )


def _summed(hourly: Iterable[Any]) -> list[tuple[Key, _Tally]]:
    """Hour rows (of `_hourly`) added up per employment and station: sums, the highest peak,
    and the hours' viewer sketches merged."""
    days: dict[Key, _Tally] = {}
    for _bucket, employment_id, station_id, peak, sketch, *sums in hourly:
        hour = _Tally(peak_viewers=peak, sketch=Sketch.from_bytes(sketch) if sketch else None)
        for name, value in zip(SUMMED, sums, strict=True):
            setattr(hour, name, value)
        days.setdefault((employment_id, station_id), _Tally()).add(hour)
    return list(days.items())


# --- Time zone changes ---------------------------------------------------------------------------


def zone_changes(limit: int = MOVES_PER_RUN) -> list[Organization]:
    """Organizations whose day rows are cut in a zone that is not theirs (any more); at most
    `limit`."""
    moves = (
        RollupZone.objects.unscoped_dangerously()  # every organization's: a platform job
        .exclude(time_zone=F("organization__time_zone"))
        .select_related("organization")
        .order_by("recorded_at", "id")[:limit]
    )
    return [move.organization for move in moves]


def move_days(organization: Organization, now: dt.datetime) -> bool:
    """Rebuilds every day row of the organization from its hour rows, cut in its time zone as
    committed now, and records that zone, in one transaction. False when a roll-up of the
    organization holds it (the next run moves it). Safe to repeat."""
    with transaction.atomic():
        if not _try_lock_organization(organization):
            return False
        organization = Organization.objects.get(pk=organization.pk)
        zone = zone_of(organization)
        rollups = Rollup.objects.for_organization(organization)
        dropped, _by_model = rollups.filter(grain=RollupGrain.DAY).delete()
        span = rollups.filter(grain=RollupGrain.HOUR).aggregate(
            first=Min("bucket"), last=Max("bucket")
        )
        made = 0
        if span["first"] is not None:
            day, last = span["first"].astimezone(zone).date(), span["last"].astimezone(zone).date()
            while day <= last:
                until = min(day + dt.timedelta(days=MOVE_DAYS), last + dt.timedelta(days=1))
                days = _days_from_hours(organization, zone, day, until, now)
                rollups.bulk_create(days, batch_size=INSERT_BATCH)
                made += len(days)
                day = until
        RollupZone.objects.for_organization(organization).update_or_create(
            organization=organization,
            defaults={"time_zone": organization.time_zone, "recorded_at": now},
        )
    log.info(
        "analytics.rollup_days_moved",
        organization=str(organization.pk),
        time_zone=organization.time_zone,
        dropped=dropped,
        made=made,
    )
    return True


def _days_from_hours(
    organization: Organization, zone: ZoneInfo, first: dt.date, until: dt.date, now: dt.datetime
) -> list[Rollup]:
    """Day rows of the local days [first, until), from their hour rows, as `roll_up` makes
    them."""
    start, end = day_bounds(first, zone)[0], day_bounds(until, zone)[0]
    hourly = _hourly(organization, start, end)
    made = []
    for day, hours in itertools.groupby(hourly, key=lambda row: row[0].astimezone(zone).date()):
        group = Group(organization, day, *day_bounds(day, zone))
        made += [
            tally.rollup(group, RollupGrain.DAY, group.start, key, now)
            for key, tally in _summed(hours)
        ]
    return made


def _spans(hours: Sequence[dt.datetime]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Consecutive hours joined: [start, end) ranges, in order."""
    spans: list[tuple[dt.datetime, dt.datetime]] = []
    for hour in sorted(hours):
        if spans and spans[-1][1] == hour:
            spans[-1] = (spans[-1][0], hour + HOUR)
        else:
            spans.append((hour, hour + HOUR))
    return spans


def _within(field: str, spans: Sequence[tuple[dt.datetime, dt.datetime]]) -> Q:
    within = Q()
    for start, end in spans:
        within |= Q(**{f"{field}__gte": start, f"{field}__lt": end})
    return within
