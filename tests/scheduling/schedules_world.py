"""Hires, stations, pools and schedules for the schedule, materialisation and roster tests.

Schedules are made through the service (scheduling.schedules), as the API makes them, so that
conflicts are checked and shifts materialised; `plain_schedule` writes a row directly, for tests
that call the materialiser themselves at a chosen instant.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from avatars.models import Employment
from inference.models import Reservation, WorkerPool
from scheduling import schedules
from scheduling.models import Schedule, Shift, Station, StationKind
from tenants.audit import SYSTEM
from tenants.models import Organization
from tests import factories
from tests.avatars import factories as avatar_factories

WEEKDAYS = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"


def pools(live_workers: int = 4, converse_workers: int = 2) -> tuple[WorkerPool, WorkerPool]:
    """The embedded default's live and converse pools (CPU, 2 and 4 slots a worker)."""
    live, _created = WorkerPool.objects.update_or_create(
        name="live-cpu",
        defaults={
            "pipeline": "live",
            "gpu_class": "cpu",
            "gpus_per_worker": 0,
            "slots_per_worker": 2,
            "image": "local",
            "maximum": live_workers,
        },
    )
    converse, _created = WorkerPool.objects.update_or_create(
        name="converse-cpu",
        defaults={
            "pipeline": "converse",
            "gpu_class": "cpu",
            "gpus_per_worker": 0,
            "slots_per_worker": 4,
            "image": "local",
            "maximum": converse_workers,
        },
    )
    return live, converse


def hire(organization: Organization, **fields: Any) -> Employment:
    values: dict[str, Any] = {"organization": organization, "status": "active", **fields}
    return avatar_factories.onboarded_employment(**values)


def station(
    organization: Organization, kind: str = StationKind.LIVE_ROOM, **fields: Any
) -> Station:
    made: Station = factories.StationFactory(organization=organization, kind=kind, **fields)
    return made


def timing(**fields: Any) -> dict[str, Any]:
    return {
        "rrule": WEEKDAYS,
        "start_time": dt.time(19, 0),
        "duration_minutes": 60,
        "valid_from": dt.date(2026, 1, 1),
        **fields,
    }


def always_on(**fields: Any) -> dict[str, Any]:
    return {
        "rrule": "",
        "start_time": None,
        "duration_minutes": None,
        "always_on": True,
        "valid_from": dt.date(2026, 1, 1),
        **fields,
    }


def schedule(employment: Employment, at: Station, **fields: Any) -> Schedule:
    """Through the service: checked for conflicts and materialised at once."""
    return schedules.create_schedule(
        SYSTEM, employment.organization, employment=employment, station=at, **timing(**fields)
    )


def plain_schedule(employment: Employment, at: Station, **fields: Any) -> Schedule:
    values = fields if fields.get("always_on") else timing(**fields)
    return Schedule.objects.create(
        organization=employment.organization, employment=employment, station=at, **values
    )


def shifts_of(plan: Schedule) -> list[Shift]:
    return list(
        Shift.objects.for_organization(plan.organization)
        .filter(schedule=plan)
        .order_by("starts_at")
    )


def reservations_of(organization: Organization) -> list[Reservation]:
    return list(Reservation.objects.for_organization(organization).order_by("starts_at"))
