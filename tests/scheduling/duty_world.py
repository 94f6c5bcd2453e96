"""Stations, hires, schedules and shifts for the duty machine's tests.

Shifts are made directly (as materialisation would make them, one row per occurrence), so that
these tests exercise putting shifts on duty and nothing else; materialisation has its own tests.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from avatars.models import Employment
from inference.models import Reservation, WorkerPool
from scheduling import duty, materialise
from scheduling.models import Schedule, Shift, Station, StationKind
from tenants.models import Organization
from tests import factories
from tests.avatars import factories as avatar_factories


def live_pool() -> WorkerPool:
    """The embedded default's live pool (pools are the platform's, shared by organizations)."""
    pool, _created = WorkerPool.objects.get_or_create(
        name="live-cpu",
        defaults={
            "pipeline": "live",
            "gpu_class": "cpu",
            "gpus_per_worker": 0,
            "slots_per_worker": 2,
            "image": "local",
            "maximum": 4,
        },
    )
    return pool


def hire(organization: Organization) -> Employment:
    return avatar_factories.onboarded_employment(organization=organization, status="active")


def station(
    organization: Organization, kind: str = StationKind.LIVE_ROOM, **fields: Any
) -> Station:
    return factories.StationFactory(organization=organization, kind=kind, **fields)


def schedule(employment: Employment, at: Station, **fields: Any) -> Schedule:
    values: dict[str, Any] = {
        "rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
        "start_time": dt.time(19, 0),
        "duration_minutes": 60,
        "valid_from": timezone.localdate() - dt.timedelta(days=7),
        **fields,
    }
    return Schedule.objects.create(
        organization=employment.organization, employment=employment, station=at, **values
    )


def shift(plan: Schedule, starts_at: dt.datetime, minutes: int = 60, **fields: Any) -> Shift:
    return Shift.objects.create(
        organization=plan.organization,
        schedule=plan,
        employment=plan.employment,
        station=plan.station,
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(minutes=minutes),
        schedule_version=plan.version,
        **fields,
    )


def reserve(made: Shift) -> Reservation:
    """The capacity materialisation reserves for a shift: from its warm-up to its end."""
    reservation = Reservation.objects.create(
        organization=made.organization,
        gpu_class="cpu",
        slots=1,
        starts_at=made.starts_at - duty.warmup(),
        ends_at=made.ends_at,
        holder=materialise.holder_of(made.pk),
    )
    made.reservation = reservation
    made.save(update_fields=["reservation"])
    return reservation


def live_shift(
    organization: Organization, starts_at: dt.datetime, minutes: int = 60, **station_fields: Any
) -> Shift:
    """A live room's shift of an active hire, with its capacity reserved, and the live pool."""
    live_pool()
    made = shift(
        schedule(hire(organization), station(organization, **station_fields)), starts_at, minutes
    )
    reserve(made)
    return made


def desk_shift(organization: Organization, starts_at: dt.datetime, minutes: int = 24 * 60) -> Shift:
    plan = schedule(
        hire(organization),
        station(organization, StationKind.WEB_WIDGET),
        rrule="",
        start_time=None,
        duration_minutes=None,
        always_on=True,
    )
    return shift(plan, starts_at, minutes)


def fresh(made: Shift) -> Shift:
    return (
        Shift.objects.for_organization(made.organization).select_related("workload").get(pk=made.pk)
    )
