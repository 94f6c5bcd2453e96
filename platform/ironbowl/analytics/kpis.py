"""KPIs read from rollups: a time series with totals, and totals per employment or station.

Buckets follow the organization's time zone: hours are the rollups' UTC hours (shown in local
time; in a zone with a half-hour offset they start at :30), days are local days, weeks start on
Monday, months on the 1st. Longer buckets are made from the daily rollups, so a day that the
clocks change is 23 or 25 hours long. Every bucket of the range is listed, empty ones with zeros.

Counts add up across rows; peak and average concurrent viewers are per stream (an employment at
a station): the highest sample and the mean of samples, never added across streams; unique
viewers merge the rows' HyperLogLog sketches, so a viewer seen in two hours counts once.
Each selector costs a fixed number of queries, whatever the number of buckets or rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
import zoneinfo
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any

from django.db.models import Max, QuerySet, Sum
from django.utils.translation import gettext as _

from ironbowl.analytics import hll
from ironbowl.analytics.models import Rollup, RollupGrain
from tenants.errors import DomainError
from tenants.models import Organization

HOUR, DAY, WEEK, MONTH = "hour", "day", "week", "month"
GRANULARITIES = (HOUR, DAY, WEEK, MONTH)
# The longest range each granularity may ask for (so a series has at most ~1,800 buckets).
MAX_SPAN = {
    HOUR: dt.timedelta(days=31),
    DAY: dt.timedelta(days=366),
    WEEK: dt.timedelta(days=731),
    MONTH: dt.timedelta(days=1827),
}
DEFAULT_DAYS = 7

# Rollup columns added up across rows; peak_viewers is the maximum.
SUMMED = (
    "visits",
    "interactions",
    "handoffs",
    "comments",
    "sessions",
    "view_samples",
    "view_sum",
    "broadcast_seconds",
    "gpu_seconds",
)
_AGGREGATES: dict[str, Any] = {
    **{f"total_{name}": Sum(name) for name in SUMMED},
    "total_peak_viewers": Max("peak_viewers"),
}

# What every KPI row shows, in this order (CSV columns too).
METRICS = (
    "visits",
    "unique_viewers",
    "peak_viewers",
    "average_viewers",
    "interactions",
    "handoffs",
    "answered_share",
    "comments",
    "sessions",
    "broadcast_hours",
    "gpu_hours",
)


@dataclasses.dataclass
class Tally:
    """Rollup figures added up over some rows."""

    visits: int = 0
    interactions: int = 0
    handoffs: int = 0
    comments: int = 0
    sessions: int = 0
    view_samples: int = 0
    view_sum: float = 0.0
    peak_viewers: int = 0
    broadcast_seconds: float = 0.0
    gpu_seconds: float = 0.0
    unique_viewers: int = 0

    def add_aggregate(self, row: Mapping[str, Any]) -> None:
        """Adds one row of `_AGGREGATES` (sums come back as int, Decimal or float by database)."""
        for name in SUMMED:
            value = row[f"total_{name}"] or 0
            current = getattr(self, name)
            setattr(
                self, name, current + (float(value) if isinstance(current, float) else int(value))
            )
        self.peak_viewers = max(self.peak_viewers, int(row["total_peak_viewers"] or 0))

    def add(self, other: Tally) -> None:
        """Adds another tally's counts (unique viewers are merged from sketches, not here)."""
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.peak_viewers = max(self.peak_viewers, other.peak_viewers)

    @property
    def average_viewers(self) -> float:
        return self.view_sum / self.view_samples if self.view_samples else 0.0

    @property
    def answered(self) -> int:
        """Interactions answered without handing off to a person."""
        return max(self.interactions - self.handoffs, 0)

    @property
    def answered_share(self) -> float | None:
        return self.answered / self.interactions if self.interactions else None

    @property
    def broadcast_hours(self) -> float:
        return self.broadcast_seconds / 3600

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600

    def kpis(self) -> dict[str, int | float | None]:
        share = self.answered_share
        return {
            "visits": self.visits,
            "unique_viewers": self.unique_viewers,
            "peak_viewers": self.peak_viewers,
            "average_viewers": round(self.average_viewers, 2),
            "interactions": self.interactions,
            "handoffs": self.handoffs,
            "answered_share": None if share is None else round(share, 4),
            "comments": self.comments,
            "sessions": self.sessions,
            "broadcast_hours": round(self.broadcast_hours, 4),
            "gpu_hours": round(self.gpu_hours, 4),
        }


# --- Ranges and buckets ---------------------------------------------------------------------------


def local_midnight(day: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The instant a local day starts (a midnight the clocks skip: the first instant after)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)


def _period_start(day: dt.date, granularity: str) -> dt.date:
    if granularity == WEEK:
        return day - dt.timedelta(days=day.weekday())
    if granularity == MONTH:
        return day.replace(day=1)
    return day


def _period_after(first: dt.date, granularity: str) -> dt.date:
    if granularity == WEEK:
        return first + dt.timedelta(days=7)
    if granularity == MONTH:
        return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first + dt.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class Bucket:
    key: Hashable  # the UTC hour, or the local date the period starts
    starts_at: dt.datetime
    ends_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Window:
    """A range widened to whole buckets of one granularity in one time zone: [start, end)."""

    start: dt.datetime
    end: dt.datetime
    granularity: str
    zone: zoneinfo.ZoneInfo

    @property
    def grain(self) -> str:
        """Which rollups the window reads."""
        return RollupGrain.HOUR if self.granularity == HOUR else RollupGrain.DAY

    def buckets(self) -> list[Bucket]:
        if self.granularity == HOUR:
            hours, hour = [], self.start
            while hour < self.end:
                hours.append(Bucket(hour, hour, hour + dt.timedelta(hours=1)))
                hour += dt.timedelta(hours=1)
            return hours
        found = []
        first = self.start.astimezone(self.zone).date()
        while (begins := local_midnight(first, self.zone)) < self.end:
            after = _period_after(first, self.granularity)
            found.append(Bucket(first, begins, local_midnight(after, self.zone)))
            first = after
        return found

    def key_of(self, bucket: dt.datetime) -> Hashable:
        """The bucket a rollup row's `bucket` instant falls in."""
        if self.granularity == HOUR:
            return bucket.astimezone(dt.UTC)
        return _period_start(bucket.astimezone(self.zone).date(), self.granularity)


def window(
    organization: Organization,
    start: dt.datetime | None,
    end: dt.datetime | None,
    granularity: str = DAY,
    *,
    now: dt.datetime,
) -> Window:
    """The range [start, end) checked and widened to whole buckets in the organization's zone.

    Without `end`: up to the end of today (local); without `start`: DEFAULT_DAYS local days
    before `end`. Raises DomainError: `bad_granularity`, `bad_range` (end not after start),
    `range_too_long` (longer than MAX_SPAN for the granularity, before widening).
    """
    if granularity not in GRANULARITIES:
        raise DomainError(
            "bad_granularity",
            _("Give a granularity of hour, day, week or month."),
            field="granularity",
        )
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    if end is None:
        end = local_midnight(now.astimezone(zone).date() + dt.timedelta(days=1), zone)
    if start is None:
        start = local_midnight(end.astimezone(zone).date() - dt.timedelta(days=DEFAULT_DAYS), zone)
    if end <= start:
        raise DomainError("bad_range", _("The end of the range must be after its start."), "to")
    if end - start > MAX_SPAN[granularity]:
        raise DomainError(
            "range_too_long",
            _("A range of %(granularity)s buckets covers at most %(days)s days.")
            % {"granularity": granularity, "days": MAX_SPAN[granularity].days},
            field="to",
        )
    if granularity == HOUR:
        first = start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
        last = (end - dt.timedelta(microseconds=1)).astimezone(dt.UTC)
        after = last.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        return Window(first, after, granularity, zone)
    first_day = _period_start(start.astimezone(zone).date(), granularity)
    last_day = (end - dt.timedelta(microseconds=1)).astimezone(zone).date()
    after_day = _period_after(_period_start(last_day, granularity), granularity)
    return Window(
        local_midnight(first_day, zone), local_midnight(after_day, zone), granularity, zone
    )


def day_window(
    organization: Organization,
    start: dt.datetime | None,
    end: dt.datetime | None,
    *,
    now: dt.datetime,
) -> Window:
    """A range of whole local days (what scorecards, comparisons and ROI read)."""
    return window(organization, start, end, DAY, now=now)


# --- Selectors ------------------------------------------------------------------------------------


def rollups(
    organization: Organization,
    span: Window,
    *,
    employment_id: uuid.UUID | None = None,
    station_id: uuid.UUID | None = None,
    employment_ids: Iterable[uuid.UUID] | None = None,
) -> QuerySet[Rollup]:
    """The organization's rollup rows of the window's grain, optionally of one employment,
    one station or some employments."""
    rows = Rollup.objects.for_organization(organization).filter(
        grain=span.grain, bucket__gte=span.start, bucket__lt=span.end
    )
    if employment_id is not None:
        rows = rows.filter(employment_id=employment_id)
    if station_id is not None:
        rows = rows.filter(station_id=station_id)
    if employment_ids is not None:
        rows = rows.filter(employment_id__in=list(employment_ids))
    return rows


def _unions(pairs: Iterable[tuple[Hashable, bytes]]) -> tuple[dict[Hashable, int], int]:
    """Unique viewers per key and over all keys, from (key, stored sketch) pairs."""
    per_key: dict[Hashable, hll.Sketch] = {}
    overall = hll.Sketch()
    for key, stored in pairs:
        sketch = hll.Sketch.from_bytes(stored)
        per_key.setdefault(key, hll.Sketch()).merge(sketch)
        overall.merge(sketch)
    return {key: sketch.count() for key, sketch in per_key.items()}, overall.count()


def _sketches(rows: QuerySet[Rollup], key_field: str) -> Iterator[tuple[Any, bytes]]:
    found = rows.filter(unique_viewers__gt=0).values_list(key_field, "viewer_sketch")
    return iter(found.iterator(chunk_size=2000))


@dataclasses.dataclass(frozen=True)
class Series:
    window: Window
    buckets: list[tuple[Bucket, Tally]]
    totals: Tally


def series(
    organization: Organization,
    span: Window,
    *,
    employment_id: uuid.UUID | None = None,
    station_id: uuid.UUID | None = None,
) -> Series:
    """Every bucket of the window with its KPIs (zeros when nothing happened), and the totals.
    Two queries: the sums per rollup bucket, and the viewer sketches."""
    rows = rollups(organization, span, employment_id=employment_id, station_id=station_id)
    buckets = span.buckets()
    tallies = {bucket.key: Tally() for bucket in buckets}
    for row in rows.values("bucket").annotate(**_AGGREGATES).order_by():
        tally = tallies.get(span.key_of(row["bucket"]))
        if tally is not None:
            tally.add_aggregate(row)
    pairs = ((span.key_of(bucket), sketch) for bucket, sketch in _sketches(rows, "bucket"))
    uniques, overall = _unions(pair for pair in pairs if pair[0] in tallies)
    totals = Tally()
    for key, tally in tallies.items():
        tally.unique_viewers = uniques.get(key, 0)
        totals.add(tally)
    totals.unique_viewers = overall
    return Series(span, [(bucket, tallies[bucket.key]) for bucket in buckets], totals)


def totals(
    organization: Organization, span: Window, *, employment_id: uuid.UUID | None = None
) -> Tally:
    """The window's counts added up, without unique viewers (what ROI values). One query."""
    tally = Tally()
    tally.add_aggregate(
        rollups(organization, span, employment_id=employment_id).aggregate(**_AGGREGATES)
    )
    return tally


def totals_by(
    organization: Organization,
    span: Window,
    by: str,
    *,
    employment_id: uuid.UUID | None = None,
    station_id: uuid.UUID | None = None,
    employment_ids: Iterable[uuid.UUID] | None = None,
) -> dict[uuid.UUID | None, Tally]:
    """KPIs over the window per employment or per station (`by`); None gathers the rows not
    attributed to one. Two queries."""
    field = {"employment": "employment_id", "station": "station_id"}[by]
    rows = rollups(
        organization,
        span,
        employment_id=employment_id,
        station_id=station_id,
        employment_ids=employment_ids,
    )
    tallies: dict[uuid.UUID | None, Tally] = {}
    for row in rows.values(field).annotate(**_AGGREGATES).order_by():
        tallies.setdefault(row[field], Tally()).add_aggregate(row)
    uniques, _overall = _unions(_sketches(rows, field))
    for key, count in uniques.items():
        tallies.setdefault(key, Tally()).unique_viewers = count  # type: ignore[arg-type]
    return tallies
