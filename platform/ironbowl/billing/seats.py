"""The seat-day ledger: one usage record per hire per local day it was active, at any time.

A hire pays for a day it worked any part of: a record of type `seat_days` with quantity = its
seats and unit price = its rate per seat-month (rating divides by the days of the month), at the
organization-local day's start, with the source id `seat:<employment>:<YYYY-MM-DD>`. Whether it
was active is read from its status history (`EmploymentTransition`), so any past range can be
recorded; its seats and rate are the ones it has when the day is recorded. The hourly task
catches up from each hire's last recorded day (however long it was down), and closing a month
records the month's remaining days first, so no day is lost to a stopped task. Append-only: a
day already recorded is never rewritten, so recording a range again appends nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections import defaultdict

from django.db import transaction
from django.db.models import Max, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from avatars.models import Employment, EmploymentStatus, EmploymentTransition
from ironbowl.analytics.models import UsageRecord, UsageType
from ironbowl.billing.ledger import insert_new
from ironbowl.billing.models import Statement, StatementStatus
from ironbowl.billing.rating import next_month
from tenants.errors import DomainError
from tenants.models import Organization

MAX_DAYS = 400
LOOKUP_CHUNK = 1000  # source ids looked up per query

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
    return _record(organization, active_intervals(organization), first, last, now)


def _record(
    organization: Organization,
    intervals: dict[uuid.UUID, list[Interval]],
    first: dt.date,
    last: dt.date,
    now: dt.datetime,
) -> int:
    if not intervals:
        return 0
    zone = zoneinfo.ZoneInfo(organization.time_zone)
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
    ids = [record.source_id for record in records]

    def stored() -> dict[str, None]:
        # By source id, not by time: a day recorded before a change of the organization's time
        # zone starts at another instant than the same day would now.
        return {
            source_id: None
            for start in range(0, len(ids), LOOKUP_CHUNK)
            for source_id in ledger.filter(
                source_id__in=ids[start : start + LOOKUP_CHUNK]
            ).values_list("source_id", flat=True)
        }

    with transaction.atomic():
        # A day recorded meanwhile by another run stays as it was (never an update).
        return len(insert_new(ledger, records, stored))


def _open_since(organization: Organization, yesterday: dt.date) -> dt.date:
    """The first day whose month is still billed in its own statement: the month after the last
    closed statement (a month records its days when it closes), else the oldest open
    statement's month, else yesterday's month."""
    periods = Statement.objects.for_organization(organization).aggregate(
        closed=Max("period", filter=Q(status=StatementStatus.CLOSED)),
        open=Min("period", filter=Q(status=StatementStatus.OPEN)),
    )
    if periods["closed"] is not None:
        since = next_month(periods["closed"])
    else:
        since = min(periods["open"] or yesterday, yesterday).replace(day=1)
    return max(since, yesterday - dt.timedelta(days=MAX_DAYS - 1))


def _first_active_day(
    spans: list[Interval], after: dt.date, zone: zoneinfo.ZoneInfo
) -> dt.date | None:
    """The first local day from `after` on that the hire was active at some moment."""
    start = local_midnight(after, zone)
    days = [
        max(after, timezone.localdate(begin, timezone=zone))
        for begin, until in spans
        if until is None or until > start
    ]
    return min(days, default=None)


def record_recent_seat_days(organization: Organization, now: dt.datetime | None = None) -> int:
    """The hourly run: each hire's days from the one after its last recorded day (or from when
    it became active) to yesterday, within the months not closed yet. A run missed for days is
    caught up by the next one."""
    now = now or timezone.now()
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    yesterday = timezone.localdate(now, timezone=zone) - dt.timedelta(days=1)
    since = _open_since(organization, yesterday)
    intervals = active_intervals(organization)
    last_recorded = dict(
        UsageRecord.objects.for_organization(organization)
        .filter(usage_type=UsageType.SEAT_DAYS, occurred_at__gte=local_midnight(since, zone))
        .order_by()
        .values("employment_id")
        .annotate(last=Max("occurred_at"))
        .values_list("employment_id", "last")
    )
    firsts = []
    for employment_id, spans in intervals.items():
        recorded = last_recorded.get(employment_id)
        after = since
        if recorded is not None:
            after = max(after, timezone.localdate(recorded, timezone=zone) + dt.timedelta(days=1))
        if (first := _first_active_day(spans, after, zone)) is not None:
            firsts.append(first)
    first = min(firsts, default=None)
    if first is None or first > yesterday:
        return 0
    return _record(organization, intervals, first, yesterday, now)
