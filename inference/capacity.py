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
from typing import Any

from django.db import connection, transaction
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


@dataclasses.dataclass(frozen=True)
class Request:
    """One window of a batch for `reserve_many`."""

    holder: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    slots: int = 1
    reservation_id: uuid.UUID | None = None  # the new reservation's id (default: a fresh one)


@dataclasses.dataclass
class BatchAnswer:
    reserved: dict[str, Reservation]  # holder -> its reservation (new, or already held)
    refused: dict[str, CapacityAnswer]  # holder -> why not


def reserve_many(
    organization: Organization, *, gpu_class: str, requests: list[Request], purpose: str = ""
) -> BatchAnswer:
    """`reserve` for many holders of one class at once (scheduling's shifts, two weeks ahead):
    the same answers as reserving them one after the other in the order given, with one lock,
    one read of the reservations that overlap the batch and one insert. A holder that already
    holds a reservation keeps it as it is (move one with `reserve`)."""
    answer = BatchAnswer({}, {})
    if not requests:
        return answer
    with transaction.atomic():
        _lock_class(gpu_class)
        quota = organization_quota(organization, gpu_class)
        capacity = class_capacity(gpu_class)
        holders = [request.holder for request in requests]
        for chunk in range(0, len(holders), 500):
            held = Reservation.objects.for_organization(organization).filter(
                holder__in=holders[chunk : chunk + 500]
            )
            answer.reserved.update((reservation.holder, reservation) for reservation in held)
        pending: list[Request] = []
        seen: set[str] = set()
        for request in requests:
            if request.holder in answer.reserved or request.holder in seen:
                continue
            seen.add(request.holder)
            if (
                gpu_class in GpuClass.values
                and request.slots >= 1
                and request.ends_at > request.starts_at
            ):
                pending.append(request)
                continue
            reason = _("A window needs a known GPU class, slots ≥ 1 and an end after its start.")
            answer.refused[request.holder] = CapacityAnswer(
                False, "invalid", reason, 0, quota, 0, capacity
            )
        if not pending:
            return answer
        start = min(request.starts_at for request in pending)
        end = max(request.ends_at for request in pending)
        wanted = [(request.starts_at, request.ends_at, request.slots) for request in pending]
        batch_peak = peak(wanted, start, end)
        if (
            _held_peak(gpu_class, start, end, organization) + batch_peak <= quota
            and _held_peak(gpu_class, start, end) + batch_peak <= capacity
        ):
            # Even the busiest instant held so far plus the batch's own busiest fits: all of it
            # fits, and the database's sweep spared reading every reservation of the class.
            accepted = pending
        else:
            rows = _overlapping(gpu_class, start, end, None)
            mine = [(s, e, n) for org, s, e, n in rows if org == organization.pk]
            everyone = [(s, e, n) for _org, s, e, n in rows]
            if (
                peak(mine + wanted, start, end) <= quota
                and peak(everyone + wanted, start, end) <= capacity
            ):
                accepted = pending  # everything fits even all at once
            else:
                accepted = _one_by_one(gpu_class, pending, mine, everyone, quota, capacity, answer)
        reservations = [
            Reservation(
                id=request.reservation_id or uuid.uuid4(),
                organization=organization,
                gpu_class=gpu_class,
                slots=request.slots,
                starts_at=request.starts_at,
                ends_at=request.ends_at,
                holder=request.holder,
                purpose=purpose,
            )
            for request in accepted
        ]
        Reservation.objects.for_organization(organization).bulk_create(reservations, batch_size=500)
        answer.reserved.update((reservation.holder, reservation) for reservation in reservations)
    return answer


def _held_peak(
    gpu_class: str, start: dt.datetime, end: dt.datetime, organization: Organization | None = None
) -> int:
    """The most slots of the class held at once within [start, end) (by one organization, if
    given), swept by the database: one row comes back however many reservations overlap."""
    table = connection.ops.quote_name(Reservation._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    begins, ends = adapt(start), adapt(end)
    where = "gpu_class = %s AND starts_at < %s AND ends_at > %s"
    params: list[Any] = [gpu_class, ends, begins]
    if organization is not None:
        where += " AND organization_id = %s"
        key = Reservation._meta.get_field("organization").target_field
        params.append(key.get_db_prep_value(organization.pk, connection))
    # Each reservation is +slots at its (clipped) start and -slots at its (clipped) end; the
    # running sum in time order (ends before starts at the same instant) is the level held.
    sql = (
        "SELECT MAX(held) FROM (SELECT SUM(delta) OVER (ORDER BY at, delta) AS held FROM ("  # noqa: S608
        f"SELECT CASE WHEN starts_at > %s THEN starts_at ELSE %s END AS at, slots AS delta "
        f"FROM {table} WHERE {where} "
        "UNION ALL "
        f"SELECT CASE WHEN ends_at < %s THEN ends_at ELSE %s END AS at, -slots AS delta "
        f"FROM {table} WHERE {where}) edges) running"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [begins, begins, *params, ends, ends, *params])
        row = cursor.fetchone()
    return int(row[0] or 0) if row else 0


def _one_by_one(
    gpu_class: str,
    pending: list[Request],
    mine: list[tuple[dt.datetime, dt.datetime, int]],
    everyone: list[tuple[dt.datetime, dt.datetime, int]],
    quota: int,
    capacity: int,
    answer: BatchAnswer,
) -> list[Request]:
    """Some of the batch do not fit: take them in order, each against what is held so far
    (two max-plus segment trees over the batch's edge times, O(log n) per request)."""
    edges = {at for s, e, _n in everyone for at in (s, e)}
    edges |= {at for request in pending for at in (request.starts_at, request.ends_at)}
    index = {at: i for i, at in enumerate(sorted(edges))}
    own, every = _MaxTree(len(index)), _MaxTree(len(index))
    for s, e, n in mine:
        own.add(index[s], index[e], n)
    for s, e, n in everyone:
        every.add(index[s], index[e], n)
    accepted = []
    for request in pending:
        lo, hi = index[request.starts_at], index[request.ends_at]
        held, busy = own.max(lo, hi), every.max(lo, hi)
        if held + request.slots > quota:
            reason = _(
                "The plan allows %(quota)s %(class)s slots at once; %(held)s are already reserved "
                "in this window."
            ) % {"quota": quota, "class": gpu_class, "held": held}
            answer.refused[request.holder] = CapacityAnswer(
                False, "quota", reason, held, quota, busy, capacity
            )
        elif busy + request.slots > capacity:
            reason = _(
                "The platform cannot offer %(slots)s more %(class)s slots in this window; choose "
                "another time or ask the operators for more capacity."
            ) % {"slots": request.slots, "class": gpu_class}
            answer.refused[request.holder] = CapacityAnswer(
                False, "capacity", reason, held, quota, busy, capacity
            )
        else:
            own.add(lo, hi, request.slots)
            every.add(lo, hi, request.slots)
            accepted.append(request)
    return accepted


class _MaxTree:
    """Slots held per elementary interval [times[i], times[i + 1]): add over a range of them, and
    the maximum over a range (lazy segment tree; ranges are half-open index pairs)."""

    def __init__(self, edges: int) -> None:
        self.size = max(edges - 1, 1)
        self.top = [0] * (4 * self.size)
        self.pending = [0] * (4 * self.size)

    def add(self, lo: int, hi: int, value: int) -> None:
        if lo < hi:
            self._add(1, 0, self.size, lo, hi, value)

    def max(self, lo: int, hi: int) -> int:
        return self._max(1, 0, self.size, lo, hi) if lo < hi else 0

    def _add(self, node: int, left: int, right: int, lo: int, hi: int, value: int) -> None:
        if hi <= left or right <= lo:
            return
        if lo <= left and right <= hi:
            self.top[node] += value
            self.pending[node] += value
            return
        middle = (left + right) // 2
        self._add(2 * node, left, middle, lo, hi, value)
        self._add(2 * node + 1, middle, right, lo, hi, value)
        self.top[node] = self.pending[node] + max(self.top[2 * node], self.top[2 * node + 1])

    def _max(self, node: int, left: int, right: int, lo: int, hi: int) -> int:
        if hi <= left or right <= lo:
            return 0
        if lo <= left and right <= hi:
            return self.top[node]
        middle = (left + right) // 2
        below = max(
            self._max(2 * node, left, middle, lo, hi),
            self._max(2 * node + 1, middle, right, lo, hi),
        )
        return self.pending[node] + below
