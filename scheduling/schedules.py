"""Actions on schedules: create, change, switch off and delete, each refused with the reason when
it would put an employment on more shifts at once than it has seats, or a station over the
number of employees it allows on air.

Conflicts are checked over `CONFLICT_CHECK_DAYS` from the later of now and the schedule's first
day: every occurrence of the schedules sharing its station or its employment (holidays, make-up
days and exception dates applied, as the materialiser will make them), plus the shifts already
under way there. A year covers every weekly, monthly and yearly pattern and a year of holidays.
A change that passes is materialised at once, in the same transaction (`scheduling.materialise`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from avatars.models import Employment, EmploymentStatus
from inference.pipelines.script import parse_script
from inference.pipelines.types import StageError
from scheduling import materialise, recurrence
from scheduling.models import Holiday, Schedule, Shift, ShiftState, Station
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization

CONFLICT_CHECK_DAYS = 366
SCHEDULE_FIELDS = (
    "employment",
    "station",
    "rrule",
    "start_time",
    "duration_minutes",
    "always_on",
    "valid_from",
    "valid_until",
    "exdates",
    "holiday_calendar",
    "segments",
    "is_active",
)
# Shifts under way: they count as they are, whatever the rule now says.
UNDER_WAY = (ShiftState.WARMING, ShiftState.ON_DUTY, ShiftState.TAKEN_OVER)


@transaction.atomic
def create_schedule(actor: Actor, organization: Organization, **fields: Any) -> Schedule:
    unknown = set(fields) - set(SCHEDULE_FIELDS)
    if unknown:
        raise DomainError("read_only", _("This field cannot be set."), field=sorted(unknown)[0])
    schedule = Schedule(organization=organization, **_normalised(fields))
    _validate(schedule, previous=None)
    if schedule.is_active:
        check_conflicts(organization, [schedule])
    schedule.save()
    audit.record(actor, organization, "schedule.create", schedule, after=audit.snapshot(schedule))
    materialise.materialise_organization(organization, schedule_ids=[schedule.pk])
    return schedule


@transaction.atomic
def update_schedule(actor: Actor, schedule: Schedule, **changes: Any) -> Schedule:
    """Change a schedule; its version goes up and its future planned shifts follow (started and
    past ones stay). Switching it off (`is_active=False`) cancels its future planned shifts."""
    organization = schedule.organization
    locked = (
        Schedule.objects.for_organization(organization)
        .select_for_update(of=("self",))
        .select_related("employment", "station")
        .get(pk=schedule.pk)
    )
    before = audit.snapshot(locked)
    previous = _Previous.of(locked)
    for name, value in _normalised(changes).items():
        if name not in SCHEDULE_FIELDS:
            raise DomainError("read_only", _("This field cannot be changed."), field=name)
        setattr(locked, name, value)
    if audit.snapshot(locked) == before:
        return locked  # nothing changed: no new version
    locked.version += 1
    _validate(locked, previous=previous)
    if locked.is_active:
        check_conflicts(organization, [locked])
    locked.save()
    audit.record_update(actor, organization, "schedule.update", locked, before=before)
    materialise.materialise_organization(organization, schedule_ids=[locked.pk])
    return locked


@transaction.atomic
def delete_schedule(actor: Actor, schedule: Schedule) -> None:
    """Delete a schedule that never had a shift start, with its planned shifts; one with history
    is switched off instead (its shifts are the record of who was on duty). The schedule and its
    shifts are locked first: a shift the tick is starting meanwhile is seen started once the tick
    commits, never deleted from under it."""
    organization = schedule.organization
    schedule = (
        Schedule.objects.for_organization(organization).select_for_update().get(pk=schedule.pk)
    )
    shifts = Shift.objects.for_organization(organization).filter(schedule=schedule)
    list(shifts.order_by("pk").select_for_update().values_list("pk", flat=True))
    now = timezone.now()
    started = shifts.exclude(state__in=(ShiftState.PLANNED, ShiftState.CANCELLED))
    if started.exists() or shifts.filter(starts_at__lte=now).exists():
        raise ConflictError(
            "schedule_has_history",
            _(
                "Shifts of this schedule have started or are past; switch it off "
                "(is_active: false) to keep their history instead of deleting it."
            ),
        )
    materialise.release_shifts(organization, list(shifts.values_list("pk", flat=True)))
    audit.record(actor, organization, "schedule.delete", schedule, before=audit.snapshot(schedule))
    shifts.delete()
    schedule.delete()


def _normalised(fields: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(fields)
    if "exdates" in values:
        try:
            days = {
                day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
                for day in values["exdates"] or ()
            }
        except ValueError:
            raise DomainError(
                "invalid_exdates", _("Exception dates are dates: YYYY-MM-DD."), field="exdates"
            ) from None
        values["exdates"] = [day.isoformat() for day in sorted(days)]
    if values.get("always_on"):
        values.setdefault("rrule", "")
    if "rrule" in values:
        values["rrule"] = (values["rrule"] or "").strip()
    return values


@dataclasses.dataclass(frozen=True)
class _Previous:
    employment_id: uuid.UUID
    station_id: uuid.UUID
    is_active: bool

    @classmethod
    def of(cls, schedule: Schedule) -> _Previous:
        return cls(schedule.employment_id, schedule.station_id, schedule.is_active)


def _validate(schedule: Schedule, previous: _Previous | None) -> None:
    organization = schedule.organization
    zone = recurrence.zone_of(organization.time_zone)
    recurrence.validate(recurrence.Timing.of(schedule), zone)
    if schedule.segments:
        try:
            parse_script(1, schedule.segments)
        except StageError as error:
            raise DomainError("invalid_script", str(error), field="segments") from None
    placing = previous is None or (schedule.is_active and not previous.is_active)
    if placing or (previous is not None and previous.employment_id != schedule.employment_id):
        employment = schedule.employment
        if employment.status != EmploymentStatus.ACTIVE:
            raise DomainError(
                "employment_not_active",
                _("Only an active digital employee can be scheduled; this one is %(status)s.")
                % {"status": str(EmploymentStatus(employment.status).label).lower()},
                field="employment",
            )
    moved = previous is not None and previous.station_id != schedule.station_id
    if (placing or moved) and not schedule.station.is_active:
        raise DomainError(
            "station_inactive",
            _("The station is switched off; switch it on before scheduling it."),
            field="station",
        )


# --- Conflicts -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Interval:
    starts_at: dt.datetime
    ends_at: dt.datetime
    schedule_id: uuid.UUID | None


def check_conflicts(
    organization: Organization,
    changed: list[Schedule],
    *,
    now: dt.datetime | None = None,
    days_of: Mapping[uuid.UUID, Mapping[dt.date, str]] | None = None,
) -> None:
    """Refuse (ConflictError) when `changed` (as they would be saved) would put an employment
    on more shifts at once than its seats, or a station over `max_on_air`, at any instant of
    their next `CONFLICT_CHECK_DAYS`. `days_of` replaces calendars' days (a calendar being
    edited)."""
    now = now or timezone.now()
    zone = recurrence.zone_of(organization.time_zone)
    active = [schedule for schedule in changed if schedule.is_active]
    if not active:
        return
    starts = [max(now, recurrence.local_midnight(schedule.valid_from, zone)) for schedule in active]
    start = min(starts)
    end = max(starts) + dt.timedelta(days=CONFLICT_CHECK_DAYS)
    stations = {schedule.station_id for schedule in active}
    employments = {schedule.employment_id for schedule in active}
    _lock_places(organization, stations, employments)
    changed_ids = {schedule.pk for schedule in active} | {schedule.pk for schedule in changed}
    others = list(
        Schedule.objects.for_organization(organization)
        .filter(is_active=True)
        .filter(Q(station_id__in=stations) | Q(employment_id__in=employments))
        .exclude(employment__status=EmploymentStatus.TERMINATED)
        .exclude(id__in=[pk for pk in changed_ids if pk is not None])
    )
    involved = active + others
    days = _days(organization, involved, start, end, zone, days_of or {})
    under_way = list(
        Shift.objects.for_organization(organization)
        .filter(state__in=UNDER_WAY, ends_at__gt=start)
        .filter(Q(station_id__in=stations) | Q(employment_id__in=employments))
        .values_list("schedule_id", "station_id", "employment_id", "starts_at", "ends_at")
    )
    busy_by_schedule: dict[uuid.UUID, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for schedule_id, _station, _employment, begins, ends in under_way:
        busy_by_schedule[schedule_id].append((begins, ends))
    at_station: dict[uuid.UUID, list[_Interval]] = defaultdict(list)
    of_employment: dict[uuid.UUID, list[_Interval]] = defaultdict(list)
    for schedule in involved:
        calendar = days.get(schedule.holiday_calendar_id) if schedule.holiday_calendar_id else None
        occurrences = recurrence.occurrences(
            recurrence.Timing.of(schedule), zone, start, end, calendar or {}
        )
        busy = busy_by_schedule.get(schedule.pk, [])
        for occurrence in occurrences:
            if any(b < occurrence.ends_at and e > occurrence.starts_at for b, e in busy):
                continue  # the shift under way stands for it
            interval = _Interval(occurrence.starts_at, occurrence.ends_at, schedule.pk)
            at_station[schedule.station_id].append(interval)
            of_employment[schedule.employment_id].append(interval)
    for schedule_id, station_id, employment_id, begins, ends in under_way:
        interval = _Interval(begins, ends, schedule_id)
        at_station[station_id].append(interval)
        of_employment[employment_id].append(interval)
    mine = {schedule.pk for schedule in active}
    for station in Station.objects.for_organization(organization).filter(id__in=stations):
        found = _overbooked(at_station[station.pk], mine, station.max_on_air)
        if found is not None:
            count, at = found
            raise ConflictError(
                "station_full",
                _(
                    "On %(when)s the station %(station)s would have %(count)s employees on air; "
                    "it allows %(limit)s at once."
                )
                % {
                    "when": _local(at, zone),
                    "station": station.name,
                    "count": count,
                    "limit": station.max_on_air,
                },
                field="station",
            )
    for employment in Employment.objects.for_organization(organization).filter(id__in=employments):
        found = _overbooked(of_employment[employment.pk], mine, employment.seats)
        if found is not None:
            count, at = found
            raise ConflictError(
                "seats_exceeded",
                _(
                    "On %(when)s this digital employee would work %(count)s shifts at once; the "
                    "hire has %(seats)s seat(s)."
                )
                % {"when": _local(at, zone), "count": count, "seats": employment.seats},
                field="employment",
            )


def _lock_places(
    organization: Organization, stations: set[uuid.UUID], employments: set[uuid.UUID]
) -> None:
    """Hold the rows of the stations and hires being checked until the transaction ends, in one
    order (stations, then hires, each by id, so that two changes cannot deadlock): a change that
    could overbook the same station or hire as another checks only once the other has committed,
    and then sees it, instead of both passing against the state before either."""
    places = Station.objects.for_organization(organization).filter(id__in=stations)
    list(places.order_by("id").select_for_update().values_list("id", flat=True))
    hires = Employment.objects.for_organization(organization).filter(id__in=employments)
    list(hires.order_by("id").select_for_update().values_list("id", flat=True))


def _days(
    organization: Organization,
    schedules: Iterable[Schedule],
    start: dt.datetime,
    end: dt.datetime,
    zone: Any,
    replaced: Mapping[uuid.UUID, Mapping[dt.date, str]],
) -> dict[uuid.UUID, Mapping[dt.date, str]]:
    calendars = {s.holiday_calendar_id for s in schedules if s.holiday_calendar_id is not None}
    days: dict[uuid.UUID, Any] = {pk: {} for pk in calendars - set(replaced)}
    if days:
        rows = Holiday.objects.for_organization(organization).filter(
            calendar_id__in=list(days),
            date__gte=start.astimezone(zone).date() - dt.timedelta(days=2),
            date__lte=end.astimezone(zone).date() + dt.timedelta(days=1),
        )
        for calendar_id, day, kind in rows.values_list("calendar_id", "date", "kind"):
            days[calendar_id][day] = kind
    days.update({pk: value for pk, value in replaced.items() if pk in calendars})
    return days


def _overbooked(
    intervals: list[_Interval], mine: set[uuid.UUID], limit: int
) -> tuple[int, dt.datetime] | None:
    """The first instant where more than `limit` intervals overlap and one of them is of the
    changed schedules (an old overbooking that they do not touch is not theirs to answer for)."""
    edges: list[tuple[dt.datetime, int, bool]] = []
    for interval in intervals:
        ours = interval.schedule_id in mine
        edges.append((interval.starts_at, 1, ours))
        edges.append((interval.ends_at, -1, ours))
    edges.sort(key=lambda edge: (edge[0], edge[1]))  # ends before starts at the same instant
    held = ours_held = 0
    for at, change, ours in edges:
        held += change
        ours_held += change if ours else 0
        if change > 0 and held > limit and ours_held > 0:
            return held, at
    return None


def _local(at: dt.datetime, zone: Any) -> str:
    return formats.date_format(at.astimezone(zone), "DATETIME_FORMAT")
