"""Shifts made ahead from schedules, for `SCHEDULING_HORIZON_DAYS`, each with GPU capacity
reserved, so that a shortage shows days before air time.

A run computes the shifts each active schedule should have from now to the horizon
(`scheduling.recurrence`) and makes the stored ones match, per organization in one transaction
with its schedules locked:

- missing shifts are inserted in bulk (unique per schedule and start, conflicts ignored), so a
  second run inserts nothing;
- planned shifts that have not started and no longer fit the schedule (a changed rule, time,
  length, station or employment, a new holiday) are deleted and their capacity given back;
  shifts that started (warming, on duty, taken over) and past ones are never touched;
- a schedule that was switched off, or whose employment is not active or station is off, has its
  future planned shifts cancelled (reason code `schedule_inactive`, `employment_not_active`,
  `station_inactive`); they come back as planned when it is on again;
- an occurrence already under way when it is first seen (a schedule made at 10:00 whose shift
  runs 08:00-12:00, or today's 24/7 day) starts now, unless a shift of the schedule already
  covers that time;
- every live-room shift reserves one slot of the `live` pool's GPU class from its warm-up to its
  end, every desk shift (kiosk, web widget, hotline) one slot of the `converse` pool's class for
  its window, under the holder `shift:<id>` (`inference.capacity.reserve_many`); a shift that does
  not fit is flagged `at_risk` with the reason and asks again at every run until it fits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from avatars.models import EmploymentStatus
from inference import capacity
from inference import services as inference
from inference.models import Reservation, WorkloadKind
from scheduling import recurrence
from scheduling.models import Holiday, Schedule, Shift, ShiftState, StationKind
from tenants import audit
from tenants.audit import SYSTEM
from tenants.models import Organization

logger = structlog.get_logger(__name__)

S = ShiftState
BATCH = 1000
# Why a planned shift was called off without a person deciding so: when the cause is gone, the
# materialiser plans it again (duty's own codes for a suspended hire and an off station included).
REVIVABLE = frozenset(
    {
        "schedule_inactive",
        "employment_not_active",
        "employment_suspended",
        "station_inactive",
    }
)


def horizon() -> dt.timedelta:
    return dt.timedelta(days=settings.SCHEDULING_HORIZON_DAYS)


def holder_of(shift_id: uuid.UUID) -> str:
    return f"shift:{shift_id}"


@dataclasses.dataclass
class Result:
    schedules: int = 0
    created: int = 0
    removed: int = 0
    cancelled: int = 0
    revived: int = 0
    reserved: int = 0
    at_risk: int = 0
    failed_organizations: int = 0

    def add(self, other: Result) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Existing:
    id: uuid.UUID
    schedule_id: uuid.UUID
    station_id: uuid.UUID
    employment_id: uuid.UUID
    starts_at: dt.datetime
    ends_at: dt.datetime
    state: str
    schedule_version: int
    reservation_id: uuid.UUID | None
    reason_code: str


@dataclasses.dataclass
class _Plan:
    """What one organization's run writes."""

    new: list[Shift] = dataclasses.field(default_factory=list)
    delete: list[uuid.UUID] = dataclasses.field(default_factory=list)
    cancel: dict[tuple[str, str], list[_Existing]] = dataclasses.field(default_factory=dict)
    revive: list[_Existing] = dataclasses.field(default_factory=list)
    versions: dict[int, list[uuid.UUID]] = dataclasses.field(default_factory=dict)
    # Shifts to reserve for: (shift id, station kind, always on, starts, ends).
    reserve: list[tuple[uuid.UUID, str, bool, dt.datetime, dt.datetime]] = dataclasses.field(
        default_factory=list
    )


def materialise_shifts(now: dt.datetime | None = None) -> Result:
    """Every organization's schedules, one organization at a time (the periodic task). One
    organization's failure is logged and does not stop the others."""
    now = now or timezone.now()
    result = Result()
    with_schedules = (
        Schedule.objects.unscoped_dangerously().values("organization_id").distinct()
    )  # the one cross-organization read: which organizations have schedules at all
    organizations = Organization.objects.filter(id__in=with_schedules, is_active=True)
    for organization in organizations.order_by("slug"):
        try:
            result.add(materialise_organization(organization, now=now))
        except Exception:
            logger.exception("materialise_failed", organization=organization.slug)
            result.failed_organizations += 1
    return result


def materialise_organization(
    organization: Organization,
    *,
    now: dt.datetime | None = None,
    schedule_ids: Iterable[uuid.UUID] | None = None,
) -> Result:
    """Make one organization's shifts match its schedules (all, or those named) up to the
    horizon; safe to repeat. Joins the caller's transaction when there is one."""
    now = (now or timezone.now()).replace(microsecond=0)
    end = now + horizon()
    with transaction.atomic(), translation.override(organization.locale):
        zone = recurrence.zone_of(organization.time_zone)
        schedules = Schedule.objects.for_organization(organization).select_related(
            "employment", "station"
        )
        if schedule_ids is not None:
            schedules = schedules.filter(id__in=list(schedule_ids))
        else:
            # Switching a schedule off cancels its shifts at once (scheduling.schedules).
            schedules = schedules.filter(is_active=True)
        # Locked: an edit of a schedule waits for this run, and two runs do not interleave.
        locked = list(schedules.select_for_update(of=("self",)).order_by("id"))
        existing = _existing(organization, locked, now, whole=schedule_ids is None)
        days = _calendar_days(organization, locked, now, end, zone)
        plan = _Plan()
        for schedule in locked:
            _plan_schedule(schedule, existing.get(schedule.pk, []), days, zone, now, end, plan)
        result = _write(organization, plan, now)
        result.schedules = len(locked)
    return result


def _existing(
    organization: Organization, schedules: list[Schedule], now: dt.datetime, *, whole: bool
) -> dict[uuid.UUID, list[_Existing]]:
    shifts = Shift.objects.for_organization(organization).filter(ends_at__gt=now)
    if not whole:
        shifts = shifts.filter(schedule_id__in=[schedule.pk for schedule in schedules])
    found: dict[uuid.UUID, list[_Existing]] = defaultdict(list)
    fields = [field.name for field in dataclasses.fields(_Existing)]
    for row in shifts.values_list(*fields):
        shift = _Existing(*row)
        found[shift.schedule_id].append(shift)
    return found


def _calendar_days(
    organization: Organization,
    schedules: list[Schedule],
    now: dt.datetime,
    end: dt.datetime,
    zone: Any,
) -> dict[uuid.UUID, dict[dt.date, str]]:
    calendars = {s.holiday_calendar_id for s in schedules if s.holiday_calendar_id is not None}
    days: dict[uuid.UUID, dict[dt.date, str]] = defaultdict(dict)
    if not calendars:
        return days
    rows = Holiday.objects.for_organization(organization).filter(
        calendar_id__in=calendars,
        date__gte=now.astimezone(zone).date() - dt.timedelta(days=2),
        date__lte=end.astimezone(zone).date() + dt.timedelta(days=1),
    )
    for calendar_id, day, kind in rows.values_list("calendar_id", "date", "kind"):
        days[calendar_id][day] = kind
    return days


def why_off(schedule: Schedule) -> tuple[str, str] | None:
    """Why a schedule makes no shifts now (reason code and words), or None when it does."""
    if not schedule.is_active:
        return "schedule_inactive", _("The schedule was switched off.")
    if schedule.employment.status != EmploymentStatus.ACTIVE:
        return "employment_not_active", _("The digital employee is %(status)s, not active.") % {
            "status": str(EmploymentStatus(schedule.employment.status).label).lower()
        }
    if not schedule.station.is_active:
        return "station_inactive", _("The station is switched off.")
    return None


def _plan_schedule(
    schedule: Schedule,
    existing: list[_Existing],
    days: dict[uuid.UUID, dict[dt.date, str]],
    zone: Any,
    now: dt.datetime,
    end: dt.datetime,
    plan: _Plan,
) -> None:
    off = why_off(schedule)
    wanted: list[recurrence.Occurrence] = []
    if off is None:
        calendar = (
            days.get(schedule.holiday_calendar_id, {}) if schedule.holiday_calendar_id else {}
        )
        timing = recurrence.Timing.of(schedule)
        wanted = recurrence.occurrences(timing, zone, now, end, calendar)
    by_start = {shift.starts_at: shift for shift in existing}
    settled = [shift for shift in existing if not _changeable(shift, now)]
    kept: set[uuid.UUID] = set()
    for occurrence in wanted:
        starts_at, ends_at = occurrence.starts_at, occurrence.ends_at
        if starts_at < now:
            # Under way already: starts now, unless a shift of the schedule covers that time.
            if any(s.starts_at < ends_at and s.ends_at > now for s in existing):
                continue
            if ends_at - now < dt.timedelta(minutes=1):
                continue
            starts_at = now
        elif any(
            s.starts_at != starts_at and s.starts_at < ends_at and s.ends_at > starts_at
            for s in settled
        ):
            continue  # a shift that started (or was called off) holds that time: it stands
        shift = by_start.get(starts_at)
        if shift is not None and _fits(shift, schedule, ends_at):
            kept.add(shift.id)
            if shift.state == S.CANCELLED and shift.reason_code in REVIVABLE:
                if shift.starts_at > now:
                    plan.revive.append(shift)
                    _reserve(plan, shift.id, schedule, shift.starts_at, shift.ends_at)
            elif shift.state == S.PLANNED and shift.starts_at > now:
                if shift.schedule_version != schedule.version:
                    plan.versions.setdefault(schedule.version, []).append(shift.id)
                if shift.reservation_id is None:
                    _reserve(plan, shift.id, schedule, shift.starts_at, shift.ends_at)
            continue
        if shift is not None:
            if not _changeable(shift, now):
                continue  # started, over, or called off by a person: it stays as it is
            plan.delete.append(shift.id)  # the same start with another length: made anew
            kept.add(shift.id)
        new = Shift(
            id=uuid.uuid4(),
            organization_id=schedule.organization_id,
            schedule_id=schedule.pk,
            employment_id=schedule.employment_id,
            station_id=schedule.station_id,
            starts_at=starts_at,
            ends_at=ends_at,
            schedule_version=schedule.version,
        )
        plan.new.append(new)
        _reserve(plan, new.id, schedule, starts_at, ends_at)
    for shift in existing:
        if shift.id in kept or not _changeable(shift, now) or shift.state != S.PLANNED:
            continue
        if off is not None:
            plan.cancel.setdefault(off, []).append(shift)
        else:
            plan.delete.append(shift.id)


def _fits(shift: _Existing, schedule: Schedule, ends_at: dt.datetime) -> bool:
    return (
        shift.ends_at == ends_at
        and shift.station_id == schedule.station_id
        and shift.employment_id == schedule.employment_id
    )


def _changeable(shift: _Existing, now: dt.datetime) -> bool:
    """A shift the materialiser may replace: planned and not yet started, or called off for a
    reason that has gone away."""
    if shift.starts_at <= now:
        return False
    return shift.state == S.PLANNED or (
        shift.state == S.CANCELLED and shift.reason_code in REVIVABLE
    )


def _reserve(
    plan: _Plan,
    shift_id: uuid.UUID,
    schedule: Schedule,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
) -> None:
    plan.reserve.append((shift_id, schedule.station.kind, schedule.always_on, starts_at, ends_at))


def _write(organization: Organization, plan: _Plan, now: dt.datetime) -> Result:
    result = Result()
    shifts = Shift.objects.for_organization(organization)
    gone = plan.delete + [shift.id for called_off in plan.cancel.values() for shift in called_off]
    release_shifts(organization, gone)
    for chunk in _chunks(plan.delete):
        removed, _by_model = shifts.filter(
            id__in=chunk, state__in=(S.PLANNED, S.CANCELLED)
        ).delete()
        result.removed += removed
    for (code, reason), called_off in plan.cancel.items():
        for chunk in _chunks([shift.id for shift in called_off]):
            result.cancelled += shifts.filter(id__in=chunk).update(
                state=S.CANCELLED,
                reason_code=code,
                reason=reason,
                reservation=None,
                at_risk=False,
                risk_reason="",
                ended_at=now,
                updated_at=now,
            )
        _audit_moves(
            organization,
            called_off,
            "cancel",
            {"state": S.CANCELLED, "reason_code": code, "reason": reason},
        )
    for chunk in _chunks([shift.id for shift in plan.revive]):
        result.revived += shifts.filter(id__in=chunk).update(
            state=S.PLANNED, reason_code="", reason="", ended_at=None, updated_at=now
        )
    _audit_moves(organization, plan.revive, "replan", {"state": S.PLANNED})
    for version, ids in plan.versions.items():
        for chunk in _chunks(ids):
            shifts.filter(id__in=chunk).update(schedule_version=version, updated_at=now)
    reserved, refused = _reservations(organization, plan.reserve)
    result.reserved, result.at_risk = len(reserved), len(refused)
    new_ids = {shift.id for shift in plan.new}
    for shift in plan.new:
        if shift.id in reserved:
            shift.reservation_id = reserved[shift.id]
        elif shift.id in refused:
            shift.at_risk, shift.risk_reason = True, refused[shift.id]
    shifts.bulk_create(plan.new, batch_size=BATCH, ignore_conflicts=True)
    result.created = len(plan.new)
    _mark_existing(organization, reserved, refused, new_ids, now)
    revived = {shift.id for shift in plan.revive}
    newly_at_risk = [pk for pk in refused if pk in new_ids or pk in revived]
    if newly_at_risk:
        first = refused[newly_at_risk[0]]
        audit.record(
            SYSTEM,
            organization,
            "shift.at_risk",
            organization,
            after={"shifts": len(newly_at_risk), "reason": first},
        )
    return result


def _audit_moves(
    organization: Organization, moved: list[_Existing], verb: str, after: dict[str, str]
) -> None:
    """Each shift called off or planned again is audited (and pushed to the console), as every
    other move of a shift is; they are few: a schedule switched off or on, a hire or station
    out of service or back."""
    for shift in moved:
        row = Shift(pk=shift.id, station_id=shift.station_id, starts_at=shift.starts_at)
        before = {"state": shift.state, "reason_code": shift.reason_code}
        audit.record(SYSTEM, organization, f"shift.{verb}", row, before=before, after=after)


def _mark_existing(
    organization: Organization,
    reserved: dict[uuid.UUID, uuid.UUID],
    refused: dict[uuid.UUID, str],
    new_ids: set[uuid.UUID],
    now: dt.datetime,
) -> None:
    """Existing shifts that asked again: secured, or (still) at risk and why."""
    shifts = Shift.objects.for_organization(organization)
    same_id = [
        pk for pk, reservation in reserved.items() if pk not in new_ids and pk == reservation
    ]
    for chunk in _chunks(same_id):
        shifts.filter(id__in=chunk).update(
            reservation_id=F("id"), at_risk=False, risk_reason="", updated_at=now
        )
    for pk, reservation in reserved.items():
        if pk not in new_ids and pk != reservation:
            shifts.filter(id=pk).update(
                reservation_id=reservation, at_risk=False, risk_reason="", updated_at=now
            )
    by_reason: dict[str, list[uuid.UUID]] = defaultdict(list)
    for pk, reason in refused.items():
        if pk not in new_ids:
            by_reason[reason].append(pk)
    for reason, ids in by_reason.items():
        for chunk in _chunks(ids):
            shifts.filter(id__in=chunk).update(at_risk=True, risk_reason=reason, updated_at=now)


def _reservations(
    organization: Organization,
    wanted: list[tuple[uuid.UUID, str, bool, dt.datetime, dt.datetime]],
) -> tuple[dict[uuid.UUID, uuid.UUID], dict[uuid.UUID, str]]:
    """Reserve for each shift (id → its reservation's id), or say why not (id → reason)."""
    reserved: dict[uuid.UUID, uuid.UUID] = {}
    refused: dict[uuid.UUID, str] = {}
    lead = dt.timedelta(minutes=settings.SCHEDULING_WARMUP_MINUTES)
    by_kind: dict[WorkloadKind, list[capacity.Request]] = defaultdict(list)
    for shift_id, station_kind, always_on, starts_at, ends_at in wanted:
        live = station_kind == StationKind.LIVE_ROOM
        kind = WorkloadKind.LIVE if live else WorkloadKind.SESSION
        # 24/7 days join end to end: the next day's stream takes over from the last, so the
        # warm-up lead would count the hand-over minutes twice.
        begins = starts_at - lead if live and not always_on else starts_at
        by_kind[kind].append(
            capacity.Request(holder_of(shift_id), begins, ends_at, reservation_id=shift_id)
        )
    by_class: dict[str, list[capacity.Request]] = defaultdict(list)
    for kind, requests in by_kind.items():
        try:
            gpu_class = inference.pool_for(kind).gpu_class
        except inference.InferenceError as error:
            refused.update((_shift_of(request), str(error)) for request in requests)
            continue
        by_class[gpu_class] += requests  # live and converse pools may share a class
    for gpu_class, requests in by_class.items():
        answer = capacity.reserve_many(
            organization, gpu_class=gpu_class, requests=requests, purpose=_("Scheduled shift")
        )
        ids = {request.holder: _shift_of(request) for request in requests}
        reserved.update((ids[holder], r.pk) for holder, r in answer.reserved.items())
        refused.update((ids[holder], a.reason) for holder, a in answer.refused.items())
    return reserved, refused


def _shift_of(request: capacity.Request) -> uuid.UUID:
    return uuid.UUID(request.holder.split(":", 1)[1])


def release_shifts(organization: Organization, shift_ids: list[uuid.UUID]) -> None:
    """Give back the capacity reserved for these shifts."""
    for chunk in _chunks(shift_ids):
        holders = [holder_of(pk) for pk in chunk]
        Reservation.objects.for_organization(organization).filter(holder__in=holders).delete()


def _chunks(ids: list[uuid.UUID]) -> Iterable[list[uuid.UUID]]:
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]
