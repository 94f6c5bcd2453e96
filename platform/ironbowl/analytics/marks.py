"""Marking hours whose rollups are stale. Anything that changes what an hour counts — events
ingested (late ones too), a shift on air, usage recorded — appends a mark; the rollup run
recomputes the marked hours from the raw rows and deletes the marks it took."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.utils import timezone

from ironbowl.analytics.models import RollupMark
from tenants.models import Organization


def hour_of(instant: dt.datetime) -> dt.datetime:
    """The UTC hour an instant falls in (rollups' hourly buckets are UTC hours)."""
    return instant.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def hours_between(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Every UTC hour that [start, end) touches."""
    hours, hour = [], hour_of(start)
    while hour < end:
        hours.append(hour)
        hour += dt.timedelta(hours=1)
    return hours


def mark_hours(organization: Organization, instants: Iterable[dt.datetime]) -> int:
    """Marks the hours of these instants stale for one organization; returns how many hours."""
    hours = sorted({hour_of(instant) for instant in instants})
    now = timezone.now()
    RollupMark.objects.for_organization(organization).bulk_create(
        [RollupMark(organization=organization, hour=hour, marked_at=now) for hour in hours]
    )
    return len(hours)
