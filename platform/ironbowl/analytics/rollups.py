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
2. **Stale hours are grouped** by organization and local day (`Organization.time_zone`), the
   group with the oldest mark first, at most `limit` groups.
3. **Each group, in one transaction**: on PostgreSQL `pg_try_advisory_xact_lock` on a hash of
   organization and day, so that two runs never interleave on a day — a run never waits for
   another: it skips a day another run holds, and that day's marks stay for the next run. Then it
   reads the day's marks, recomputes each marked hour from raw events, shifts and usage records,
   replaces the hour's rows, recomputes the day's rows from its hourly rows (23, 24 or 25 of
   them), and deletes exactly the marks it read. Marks appended meanwhile (late events, a shift
   still on duty) stay for the next run. The marks are read before the raw rows: an event
   committed after the marks were read is either counted now or by the next run — its own mark
   is still there.

An hour belongs to the local day its first instant falls in; in a time zone whose offset is not a
whole number of hours (Asia/Kolkata) the day's first and last hours straddle midnight.

Statements per group, at most: the lock (PostgreSQL only), the marks, event counts, distinct
viewers, shifts, usage, deleting the hours' rows, inserting them, the day's hourly rows, deleting
the day's rows, inserting them, deleting the marks — 12 — plus one more per `INSERT_BATCH`
rows inserted (on SQLite per 52 rows: Django's 999 parameters ÷ 19 columns) and per
`DELETE_BATCH` marks. The run adds four: the shift scan, its marks, the stale hours, their
organizations. None of these grows with the number of events.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from ironbowl.analytics.hll import Sketch
from ironbowl.analytics.marks import hour_of, hours_between
from ironbowl.analytics.metrics import ROLLUP_DELAY, ROLLUP_ERRORS, ROLLUP_SECONDS
from ironbowl.analytics.models import (
    Event,
    EventType,
    Rollup,
    RollupGrain,
    RollupMark,
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
    """What one run did: organization-days and hours recomputed, days skipped because another
    run held them, days that failed (their marks stay), hours marked for shifts, wall time."""

    groups: int = 0
    hours: int = 0
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
            computed_at=now,
            **{name: getattr(self, name) for name in SUMMED},
        )


def run(limit: int = DEFAULT_LIMIT, now: dt.datetime | None = None) -> RunReport:
    """Marks shift hours, then recomputes up to `limit` stale organization-days, oldest first.
    A day that fails is logged and counted, and its marks stay; the others go on."""
    started = time.monotonic()
    now = now or timezone.now()
    report = RunReport(shift_marks=mark_shift_hours(now))
    for group in stale_groups(limit):
        began = time.monotonic()
        try:
            done = roll_up(group, now)
        except Exception:
            ROLLUP_ERRORS.inc()
            report.failed += 1
            log.exception(
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
    if report.groups or report.failed or report.skipped:
        log.info("analytics.rollup_ran", **report.as_dict())
    return report


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
    recomputed with its oldest mark's time; None when another run holds the day."""
    organization = group.organization
    with transaction.atomic():
        if not _try_lock(group):
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
    if connection.vendor != "postgresql":
        return True  # SQLite: IMMEDIATE transactions let one writer in at a time
    name = f"analytics.rollup:{group.organization.pk}:{group.day.isoformat()}"
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)]
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def read_hours(
    organization: Organization, hours: Sequence[dt.datetime], now: dt.datetime
) -> dict[tuple[dt.datetime, Key], _Tally]:
    """Counts for each (hour, employment, station) of these hours, from the raw rows: events,
    their distinct viewers, shifts on duty (until `now` if still on), GPU-seconds recorded."""
    spans = _spans(hours)
    tallies: dict[tuple[dt.datetime, Key], _Tally] = defaultdict(_Tally)
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

    for key, seconds in _broadcast(organization, hours, spans, now):
        tallies[key].broadcast_seconds += seconds

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
    return dict(tallies)


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
    """The day's counts per employment and station, from its hourly rows: sums, the highest
    peak, and the hours' viewer sketches merged."""
    hourly = (
        Rollup.objects.for_organization(group.organization)
        .filter(grain=RollupGrain.HOUR, bucket__gte=group.start, bucket__lt=group.end)
        .order_by("bucket", "id")
        .values_list("employment_id", "station_id", "peak_viewers", "viewer_sketch", *SUMMED)
    )
    days: dict[Key, _Tally] = {}
    for employment_id, station_id, peak, sketch, *sums in hourly:
        hour = _Tally(peak_viewers=peak, sketch=Sketch.from_bytes(sketch) if sketch else None)
        for name, value in zip(SUMMED, sums, strict=True):
            setattr(hour, name, value)
        days.setdefault((employment_id, station_id), _Tally()).add(hour)
    return list(days.items())


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
