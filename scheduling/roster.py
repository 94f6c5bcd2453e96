"""The roster: an organization's shifts over a range (for a calendar), and the gaps in the
coverage of its 24/7 stations.

A shift lasts at most 25 hours (24 hours, or a 24/7 day when the clocks go back), so the shifts
that overlap a range start at most that long before it: the query walks the (organization,
starts_at) index over the range plus that margin instead of every shift ever made.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict

from django.db.models import QuerySet
from django.utils import timezone

from scheduling import materialise, recurrence
from scheduling.models import Holiday, Schedule, Shift, ShiftState
from tenants.models import Organization

MAX_RANGE = dt.timedelta(days=62)
LONGEST_SHIFT = dt.timedelta(hours=25)
# Seconds between a schedule being made and its first shift (made just after) are no gap.
SHORTEST_GAP = dt.timedelta(minutes=1)
# Shifts that do not cover their station: called off, or never (or no longer) on duty.
NOT_COVERING = (ShiftState.CANCELLED, ShiftState.MISSED, ShiftState.FAILED)


def shifts_between(
    organization: Organization,
    start: dt.datetime,
    end: dt.datetime,
    *,
    station_id: uuid.UUID | None = None,
    employment_id: uuid.UUID | None = None,
) -> QuerySet[Shift]:
    """The organization's shifts that overlap [start, end), by start."""
    shifts = Shift.objects.for_organization(organization).filter(
        starts_at__gte=start - LONGEST_SHIFT, starts_at__lt=end, ends_at__gt=start
    )
    if station_id is not None:
        shifts = shifts.filter(station_id=station_id)
    if employment_id is not None:
        shifts = shifts.filter(employment_id=employment_id)
    return shifts.order_by("starts_at", "id")


@dataclasses.dataclass(frozen=True)
class Gap:
    station_id: uuid.UUID
    starts_at: dt.datetime
    ends_at: dt.datetime

    @property
    def minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)


def coverage_gaps(
    organization: Organization,
    start: dt.datetime,
    end: dt.datetime,
    *,
    station_id: uuid.UUID | None = None,
    now: dt.datetime | None = None,
) -> list[Gap]:
    """Where a 24/7 schedule says its station is staffed and no shift covers it.

    What should be covered: the days of the station's active 24/7 schedules (their holidays and
    exception dates are days off, not gaps), from when each schedule was made and up to the
    materialisation horizon (beyond it no shift exists yet). What covers: the station's shifts
    that are not cancelled, missed or failed, up to when they ended (a shift stopped early leaves
    the rest of its time uncovered). Gaps under a minute are left out. Three queries, whatever
    the range.
    """
    now = now or timezone.now()
    zone = recurrence.zone_of(organization.time_zone)
    schedules = Schedule.objects.for_organization(organization).filter(
        always_on=True, is_active=True
    )
    if station_id is not None:
        schedules = schedules.filter(station_id=station_id)
    around_the_clock = list(schedules)
    if not around_the_clock:
        return []
    limit = min(end, now + materialise.horizon())
    days: dict[uuid.UUID, dict[dt.date, str]] = defaultdict(dict)
    calendars = {s.holiday_calendar_id for s in around_the_clock if s.holiday_calendar_id}
    if calendars:
        rows = Holiday.objects.for_organization(organization).filter(
            calendar_id__in=calendars,
            date__gte=start.astimezone(zone).date() - dt.timedelta(days=2),
            date__lte=end.astimezone(zone).date() + dt.timedelta(days=1),
        )
        for calendar_id, day, kind in rows.values_list("calendar_id", "date", "kind"):
            days[calendar_id][day] = kind
    needed: dict[uuid.UUID, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for schedule in around_the_clock:
        since = max(start, schedule.created_at.replace(microsecond=0))
        if since >= limit:
            continue
        calendar = days.get(schedule.holiday_calendar_id) if schedule.holiday_calendar_id else None
        for occurrence in recurrence.occurrences(
            recurrence.Timing.of(schedule), zone, since, limit, calendar or {}
        ):
            needed[schedule.station_id].append(
                (max(occurrence.starts_at, since), min(occurrence.ends_at, limit))
            )
    covering = (
        Shift.objects.for_organization(organization)
        .filter(
            station_id__in=list(needed),
            starts_at__gte=start - LONGEST_SHIFT,
            starts_at__lt=limit,
            ends_at__gt=start,
        )
        .exclude(state__in=NOT_COVERING)
        .values_list("station_id", "starts_at", "ends_at", "ended_at")
    )
    covered: dict[uuid.UUID, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for station, begins, ends, ended in covering:
        covered[station].append((begins, min(ends, ended) if ended else ends))
    gaps = []
    for station, spans in needed.items():
        for begins, ends in _subtract(_merged(spans), _merged(covered[station])):
            if ends - begins >= SHORTEST_GAP:
                gaps.append(Gap(station, begins, ends))
    return sorted(gaps, key=lambda gap: (gap.starts_at, str(gap.station_id)))


def _merged(spans: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for begins, ends in sorted(spans):
        if ends <= begins:
            continue
        if merged and begins <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ends))
        else:
            merged.append((begins, ends))
    return merged


def _subtract(
    spans: list[tuple[dt.datetime, dt.datetime]], holes: list[tuple[dt.datetime, dt.datetime]]
) -> list[tuple[dt.datetime, dt.datetime]]:
    """`spans` minus `holes` (both merged and sorted)."""
    left: list[tuple[dt.datetime, dt.datetime]] = []
    index = 0
    for begins, ends in spans:
        cursor = begins
        while index < len(holes) and holes[index][1] <= cursor:
            index += 1
        probe = index
        while probe < len(holes) and holes[probe][0] < ends:
            hole_begins, hole_ends = holes[probe]
            if hole_begins > cursor:
                left.append((cursor, hole_begins))
            cursor = max(cursor, hole_ends)
            probe += 1
        if cursor < ends:
            left.append((cursor, ends))
    return left
