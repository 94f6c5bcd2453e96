"""Quotas and the capacity calendar: may organization X have N slots of class Y from t1 to t2?

Two limits apply at every instant of a window: the organization's quota for the GPU class (from
its plan) and the platform's capacity for the class (the sum of its active pools' maximum slots).
A reservation holds slots of both; scheduling reserves every shift through `reserve`, so that a
shortage is seen days before air time. Answers are exact: the peak over a window is a sweep over
the reservations that overlap it, fetched by an index on (class, start, end).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import math
import uuid
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from inference.models import GpuClass, Reservation, UsageReport, WorkerPool
from tenants.models import Organization
from tenants.plans import limits_of


@dataclasses.dataclass(frozen=True)
class CapacityAnswer:
    ok: bool
    reason_code: str  # "" when ok, else "quota", "capacity" or "invalid"
    reason: str
    organization_peak: int  # slots the organization already holds at the busiest instant
    organization_quota: int
    class_peak: int  # slots every organization holds at the busiest instant
    class_capacity: int


def organization_quota(organization: Organization, gpu_class: str) -> int:
    return limits_of(organization).gpu_slots.get(gpu_class, 0)


def class_capacity(gpu_class: str) -> int:
    """Slots the platform can offer in a class: every active pool of it at its maximum."""
    pools = WorkerPool.objects.filter(gpu_class=gpu_class, is_active=True)
    return sum(pool.capacity_slots for pool in pools)


def gpu_hours_used(organization: Organization, now: dt.datetime | None = None) -> float:
    """GPU-hours reported this calendar month (UTC) by the organization's workloads."""
    now = now or timezone.now()
    month_start = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    total = (
        UsageReport.objects.for_organization(organization)
        .filter(reported_at__gte=month_start)
        .aggregate(seconds=Sum("gpu_seconds"))["seconds"]
    )
    return float(total or 0.0) / 3600.0


def profile(
    intervals: Iterable[tuple[dt.datetime, dt.datetime, int]], start: dt.datetime, end: dt.datetime
) -> tuple[list[dt.datetime], list[int]]:
    """The slots held over [start, end) as a step function: `levels[i]` holds from `times[i]`
    until `times[i + 1]` (or `end`). One sort of the overlapping intervals' edges."""
    changes: dict[dt.datetime, int] = {start: 0}
    for begins, ends, slots in intervals:
        begins, ends = max(begins, start), min(ends, end)
        if begins < ends:
            changes[begins] = changes.get(begins, 0) + slots
            changes[ends] = changes.get(ends, 0) - slots
    times, levels, held = [], [], 0
    for at in sorted(changes):
        if at >= end:
            break
        held += changes[at]
        times.append(at)
        levels.append(held)
    return times, levels


def peak_between(
    times: list[dt.datetime], levels: list[int], start: dt.datetime, end: dt.datetime
) -> int:
    """The highest level of a profile within [start, end)."""
    first = max(bisect.bisect_right(times, start) - 1, 0)
    last = bisect.bisect_left(times, end)
    return max(levels[first:last], default=0)


def peak(
    intervals: Iterable[tuple[dt.datetime, dt.datetime, int]], start: dt.datetime, end: dt.datetime
) -> int:
    """The most slots held at once within [start, end) by half-open intervals."""
    _times, levels = profile(intervals, start, end)
    return max(levels, default=0)


def _overlapping(
    gpu_class: str, start: dt.datetime, end: dt.datetime, exclude_id: uuid.UUID | None
) -> list[tuple[uuid.UUID, dt.datetime, dt.datetime, int]]:
    rows = Reservation.objects.unscoped_dangerously().filter(
        gpu_class=gpu_class, starts_at__lt=end, ends_at__gt=start
    )
    if exclude_id is not None:
        rows = rows.exclude(id=exclude_id)
    return list(rows.values_list("organization_id", "starts_at", "ends_at", "slots"))


def check(
    organization: Organization,
    gpu_class: str,
    slots: int,
    start: dt.datetime,
    end: dt.datetime,
    *,
    exclude: Reservation | None = None,
) -> CapacityAnswer:
    """Whether `slots` more slots fit over [start, end), and if not, why."""
    quota = organization_quota(organization, gpu_class)
    capacity = class_capacity(gpu_class)
    if gpu_class not in GpuClass.values or slots < 1 or end <= start:
        reason = _("A window needs a known GPU class, slots ≥ 1 and an end after its start.")
        return CapacityAnswer(False, "invalid", reason, 0, quota, 0, capacity)
    rows = _overlapping(gpu_class, start, end, exclude.id if exclude else None)
    mine = peak(((s, e, n) for org, s, e, n in rows if org == organization.pk), start, end)
    everyone = peak(((s, e, n) for _org, s, e, n in rows), start, end)
    if mine + slots > quota:
        reason = _(
            "The plan allows %(quota)s %(class)s slots at once; %(held)s are already reserved "
            "in this window."
        ) % {"quota": quota, "class": gpu_class, "held": mine}
        return CapacityAnswer(False, "quota", reason, mine, quota, everyone, capacity)
    if everyone + slots > capacity:
        # Nothing about other organizations' reservations: only that this window is full.
        reason = _(
            "The platform cannot offer %(slots)s more %(class)s slots in this window; choose "
            "another time or ask the operators for more capacity."
        ) % {"slots": slots, "class": gpu_class}
        return CapacityAnswer(False, "capacity", reason, mine, quota, everyone, capacity)
    return CapacityAnswer(True, "", "", mine, quota, everyone, capacity)


def _lock_class(gpu_class: str) -> None:
    """Serialise reservations of one class (row locks on its pools; SQLite serialises writes)."""
    list(WorkerPool.objects.select_for_update().filter(gpu_class=gpu_class).values_list("id"))


def reserve(
    organization: Organization,
    *,
    gpu_class: str,
    slots: int,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    holder: str,
    purpose: str = "",
) -> tuple[Reservation | None, CapacityAnswer]:
    """Reserve slots for `holder` (e.g. "shift:<id>"), or say why not. Idempotent per holder:
    reserving again with the same window changes nothing, with another window moves it."""
    with transaction.atomic():
        _lock_class(gpu_class)
        existing = Reservation.objects.for_organization(organization).filter(holder=holder).first()
        answer = check(organization, gpu_class, slots, starts_at, ends_at, exclude=existing)
        wanted = (gpu_class, slots, starts_at, ends_at)
        if existing and wanted == (
            existing.gpu_class,
            existing.slots,
            existing.starts_at,
            existing.ends_at,
        ):
            return existing, answer  # already held: nothing to write
        if not answer.ok:
            return existing, answer
        if existing:
            existing.gpu_class, existing.slots = gpu_class, slots
            existing.starts_at, existing.ends_at, existing.purpose = starts_at, ends_at, purpose
            existing.save(update_fields=["gpu_class", "slots", "starts_at", "ends_at", "purpose"])
            return existing, answer
        reservation = Reservation.objects.create(
            organization=organization,
            gpu_class=gpu_class,
            slots=slots,
            starts_at=starts_at,
            ends_at=ends_at,
            holder=holder,
            purpose=purpose,
        )
        return reservation, answer


def release(organization: Organization, holder: str) -> bool:
    """Give back a holder's reservation; releasing one that is not held is not an error."""
    deleted, _rows = (
        Reservation.objects.for_organization(organization).filter(holder=holder).delete()
    )
    return deleted > 0


@dataclasses.dataclass(frozen=True)
class CalendarStep:
    starts_at: dt.datetime
    reserved: int  # peak slots reserved within the step
    available: int  # what is left at that peak (quota or capacity, whichever binds)


def calendar(
    gpu_class: str,
    start: dt.datetime,
    end: dt.datetime,
    step: dt.timedelta,
    organization: Organization | None = None,
) -> list[CalendarStep]:
    """Peak reservations per step over a range: for one organization against its quota, or for
    the whole platform against the class's capacity (operators)."""
    if step <= dt.timedelta(0) or end <= start:
        return []
    limit = (
        organization_quota(organization, gpu_class) if organization else class_capacity(gpu_class)
    )
    rows = [
        (s, e, n)
        for org, s, e, n in _overlapping(gpu_class, start, end, None)
        if organization is None or org == organization.pk
    ]
    times, levels = profile(rows, start, end)
    steps = []
    for index in range(math.ceil((end - start) / step)):
        begins = start + index * step
        held = peak_between(times, levels, begins, min(begins + step, end))
        steps.append(CalendarStep(begins, held, max(limit - held, 0)))
    return steps
