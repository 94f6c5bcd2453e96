"""Things the usage and conversation-event tests make: pools, hires at stations, workloads whose
spec names them, stored usage reports and interactions (as inference stores them)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from django.utils import timezone

from avatars.models import Employment
from inference import services as inference_services
from inference.models import Interaction, UsageReport, WorkerPool, Workload
from scheduling.models import Station
from tenants.models import Organization
from tests import factories
from tests.avatars import factories as avatar_factories


def pool(pipeline: str = "live", gpu_class: str = "l4") -> WorkerPool:
    found, _created = WorkerPool.objects.get_or_create(
        name=f"{pipeline}-{gpu_class}",
        defaults={
            "pipeline": pipeline,
            "gpu_class": gpu_class,
            "gpus_per_worker": 1,
            "slots_per_worker": 4,
            "image": "local",
            "maximum": 2,
        },
    )
    return found


def hire(organization: Organization) -> tuple[Employment, Station]:
    employment = cast(Employment, avatar_factories.EmploymentFactory(organization=organization))
    station = cast(Station, factories.StationFactory(organization=organization))
    return employment, station


def workload(
    organization: Organization, spec: dict[str, Any] | None = None, kind: str = "live"
) -> Workload:
    pipeline = "converse" if kind == "session" else "live"
    made, _created = inference_services.submit(
        organization, kind=kind, spec=spec or {}, pool_name=pool(pipeline).name
    )
    return made


def attributed_workload(organization: Organization, kind: str = "live") -> Workload:
    employment, station = hire(organization)
    return workload(
        organization, {"employment": str(employment.pk), "station": str(station.pk)}, kind
    )


def report(
    target: Workload, *, reported_at: dt.datetime | None = None, **quantities: float
) -> UsageReport:
    """A usage report stored as the worker protocol stores it (without its signal)."""
    stored = UsageReport.objects.create(
        organization_id=target.organization_id,
        report_id=uuid.uuid4().hex,
        workload=target,
        gpu_class=target.pool.gpu_class,
        **quantities,
    )
    if reported_at is not None:  # auto_now_add: moved afterwards
        UsageReport.objects.for_organization(target.organization).filter(pk=stored.pk).update(
            reported_at=reported_at
        )
        stored.refresh_from_db()
    return stored


def interaction(
    session: Workload, *, handed_off: bool = False, asked_at: dt.datetime | None = None
) -> Interaction:
    """An exchange stored directly (as if its signal were lost)."""
    return Interaction.objects.create(
        organization_id=session.organization_id,
        workload=session,
        question_id=uuid.uuid4().hex,
        question="When do you open?",
        language="en",
        outcome="handed_off" if handed_off else "answered",
        answer="" if handed_off else "At nine.",
        latency_ms=420,
        asked_at=asked_at or timezone.now() - dt.timedelta(minutes=10),
    )
