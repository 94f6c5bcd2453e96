"""The seat-day ledger: one usage record per hire per local day it was active, at any time.

A hire pays for a day it worked any part of: a record of type `seat_days` with quantity = its
seats and unit price = its rate per seat-month (rating divides by the days of the month), at the
organization-local day's start, with the source id `seat:<employment>:<YYYY-MM-DD>`. Whether it
was active is read from its status history (`EmploymentTransition`), so any past range can be
recorded; its seats and rate are the ones it has when the day is recorded, which the hourly task
does within about an hour of the day's end. Append-only: a day already recorded is never
rewritten, so recording a range again appends nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections import defaultdict

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from avatars.models import Employment, EmploymentStatus, EmploymentTransition
from ironbowl.analytics.models import UsageRecord, UsageType
from tenants.errors import DomainError
from tenants.models import Organization

MAX_DAYS = 400
# The hourly run records the days that ended in this many local days back (a missed run is
# caught up by the next ones; recording a day twice appends nothing).
LOOKBACK_DAYS = 3

Interval = tuple[dt.datetime, dt.datetime | None]  # [start, end), end None: still active


def seat_source_id(employment_id: object, day: dt.date) -> str:
    return f"seat:{employment_id}:{day.isoformat()}"


def local_midnight(day: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The instant a local day starts, in UTC (a midnight the clocks skip: the first instant
    after)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)


def active_intervals(organization: Organization) -> dict[uuid.UUID, list[Interval]]:
    """Each hire's intervals of being active, from its status history (two queries).

    Before its first transition a hire had that transition's `from_status` (since it was
    created); a hire without transitions has had its status since it was created."""
    employments = list(
        Employment.objects.for_organization(organization).values_list("pk", "status", "created_at")
    )
    history: dict[uuid.UUID, list[tuple[dt.datetime, str, str]]] = defaultdict(list)
    transitions = (
        EmploymentTransition.objects.for_organization(organization)
        .order_by("created_at", "pk")
        .values_list("employment_id", "created_at", "from_status", "to_status")
    )
    for employment_id, at, from_status, to_status in transitions:
        history[employment_id].append((at, from_status, to_status))
    intervals: dict[uuid.UUID, list[Interval]] = {}
    for pk, status, created_at in employments:
        steps = history.get(pk, [])
        current, since = (steps[0][1] if steps else status), created_at
        found: list[Interval] = []
        for at, _from_status, to_status in steps:
            if current == EmploymentStatus.ACTIVE:
                found.append((since, at))
            current, since = to_status, at
        if current == EmploymentStatus.ACTIVE:
            found.append((since, None))
        if found:
            intervals[pk] = found
    return intervals


def _overlaps(intervals: list[Interval], start: dt.datetime, end: dt.datetime) -> bool:
    return any(begin < end and (until is None or until > start) for begin, until in intervals)


def record_seat_days(
    organization: Organization, first: dt.date, last: dt.date, *, now: dt.datetime | None = None
) -> int:
    """Append the seat-days of the local days `first`..`last` (inclusive) that are not recorded
    yet; returns how many were appended. Only days that have ended can be recorded."""
    now = now or timezone.now()
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    today = timezone.localdate(now, timezone=zone)
    if last < first:
        raise DomainError("bad_range", _("The last day comes before the first."), "last")
    if last >= today:
        raise DomainError(
            "day_not_over",
            _("Seat-days are recorded once a day is over; %(day)s is not over yet.")
            % {"day": last.isoformat()},
            "last",
        )
    if (last - first).days >= MAX_DAYS:
        raise DomainError(
            "range_too_long",
            _("At most %(days)d days at once.") % {"days": MAX_DAYS},
            "last",
        )
    intervals = active_intervals(organization)
    if not intervals:
        return 0
    terms = {
        pk: (seats, rate)
        for pk, seats, rate in Employment.objects.for_organization(organization)
        .filter(pk__in=list(intervals))
        .values_list("pk", "seats", "rate")
    }
    records = []
    day = first
    while day <= last:
        start, end = local_midnight(day, zone), local_midnight(day + dt.timedelta(days=1), zone)
        for employment_id, spans in intervals.items():
            if _overlaps(spans, start, end):
                records.append(
                    UsageRecord(
                        organization=organization,
                        source_id=seat_source_id(employment_id, day),
                        usage_type=UsageType.SEAT_DAYS,
                        quantity=terms[employment_id][0],
                        unit_price=terms[employment_id][1],
                        employment_id=employment_id,
                        occurred_at=start,
                        recorded_at=now,
                    )
                )
        day += dt.timedelta(days=1)
    if not records:
        return 0
    ledger = UsageRecord.objects.for_organization(organization)
    with transaction.atomic():
        known = set(
            ledger.filter(
                usage_type=UsageType.SEAT_DAYS,
                occurred_at__gte=local_midnight(first, zone),
                occurred_at__lt=local_midnight(last + dt.timedelta(days=1), zone),
            ).values_list("source_id", flat=True)
        )
        fresh = [record for record in records if record.source_id not in known]
        # Never an update: a day recorded meanwhile by another run stays as it was.
        ledger.bulk_create(fresh, ignore_conflicts=True, batch_size=1000)
    return len(fresh)


def record_recent_seat_days(organization: Organization, now: dt.datetime | None = None) -> int:
    """The hourly run: the last LOOKBACK_DAYS local days that have ended."""
    now = now or timezone.now()
    yesterday = timezone.localdate(
        now, timezone=zoneinfo.ZoneInfo(organization.time_zone)
    ) - dt.timedelta(days=1)
    return record_seat_days(
        organization, yesterday - dt.timedelta(days=LOOKBACK_DAYS - 1), yesterday, now=now
    )
