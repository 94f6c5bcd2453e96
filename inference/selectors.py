"""Queries about inference that the API reads: an organization's workloads, reservations and
capacity figures, and the platform-wide views the operators read."""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.db.models import QuerySet, Sum
from django.utils import timezone

from inference import capacity
from inference.models import (
    ACTIVE_STATES,
    GpuClass,
    Interaction,
    Reservation,
    Worker,
    WorkerPool,
    Workload,
    WorkloadEvent,
)
from tenants.models import Organization
from tenants.plans import limits_of


def workloads_of(organization: Organization) -> QuerySet[Workload]:
    return Workload.objects.for_organization(organization).select_related("pool")


def events_of(workload: Workload) -> QuerySet[WorkloadEvent]:
    """A workload's history, oldest first."""
    return (
        WorkloadEvent.objects.for_organization(workload.organization)
        .filter(workload=workload)
        .order_by("at", "id")
    )


def interactions_of(workload: Workload) -> QuerySet[Interaction]:
    """A conversation's exchanges, oldest first."""
    return (
        Interaction.objects.for_organization(workload.organization)
        .filter(workload=workload)
        .order_by("asked_at", "id")
    )


def reservations_of(organization: Organization) -> QuerySet[Reservation]:
    return Reservation.objects.for_organization(organization)


@dataclasses.dataclass(frozen=True)
class ClassCapacity:
    gpu_class: str
    quota: int  # concurrent slots the plan allows
    in_use: int  # slots of admitted, placed and running workloads
    reserved_now: int  # slots of reservations whose window holds this instant


@dataclasses.dataclass(frozen=True)
class CapacitySummary:
    month_starts_at: dt.datetime
    gpu_hours_used: float
    gpu_hours_limit: int
    classes: list[ClassCapacity]


def _classes_in_order(names: set[str]) -> list[str]:
    """GPU classes in the order the platform lists them (largest first)."""
    return [value for value in GpuClass.values if value in names]


def capacity_summary(organization: Organization, now: dt.datetime | None = None) -> CapacitySummary:
    """Per GPU class: what the plan allows, what runs and what is reserved now; and the month's
    GPU-hours. Classes the plan names, and any class the organization uses anyway."""
    now = now or timezone.now()
    in_use = dict(
        Workload.objects.for_organization(organization)
        .filter(state__in=ACTIVE_STATES)
        .values("pool__gpu_class")
        .annotate(slots=Sum("slots"))
        .values_list("pool__gpu_class", "slots")
    )
    reserved = dict(
        Reservation.objects.for_organization(organization)
        .filter(starts_at__lte=now, ends_at__gt=now)
        .values("gpu_class")
        .annotate(slots=Sum("slots"))
        .values_list("gpu_class", "slots")
    )
    limits = limits_of(organization)
    names = (
        {name for name, slots in limits.gpu_slots.items() if slots} | set(in_use) | set(reserved)
    )
    classes = [
        ClassCapacity(
            gpu_class=name,
            quota=limits.gpu_slots.get(name, 0),
            in_use=int(in_use.get(name) or 0),
            reserved_now=int(reserved.get(name) or 0),
        )
        for name in _classes_in_order(names)
    ]
    month_start = now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return CapacitySummary(
        month_starts_at=month_start,
        gpu_hours_used=capacity.gpu_hours_used(organization, now),
        gpu_hours_limit=limits.gpu_hours_per_month,
        classes=classes,
    )


def planned_classes(organization: Organization) -> list[str]:
    """The GPU classes the organization's plan gives slots of."""
    limits = limits_of(organization)
    return _classes_in_order({name for name, slots in limits.gpu_slots.items() if slots})


def offered_classes() -> list[str]:
    """The GPU classes the platform has active pools of."""
    names = set(WorkerPool.objects.filter(is_active=True).values_list("gpu_class", flat=True))
    return _classes_in_order(names)


# --- Operators: across organizations (platform staff only) ----------------------------------------


def every_workload() -> QuerySet[Workload]:
    return Workload.objects.unscoped_dangerously().select_related("pool", "organization")


def every_worker() -> QuerySet[Worker]:
    return Worker.objects.unscoped_dangerously().select_related("pool", "organization")
