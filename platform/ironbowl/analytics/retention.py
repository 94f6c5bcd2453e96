"""Keeping raw events only as long as each organization's plan says (rollups are kept).

PostgreSQL: partitions are made a week ahead and a retention class's days are dropped whole
once they are older than the class keeps. SQLite (the embedded default): the same cut-off,
deleting rows. Ingestion refuses events older than the plan keeps, so a dropped day never gets
new rows. Rollups are kept: an hour recomputed after some of its events may be gone (`cutoff`)
keeps what it counted from them (`rollups.read_hours`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.utils import timezone

from ironbowl.analytics import partitions
from ironbowl.analytics.models import Event
from tenants.plans import retention_classes


@dataclasses.dataclass(frozen=True)
class RetentionReport:
    partitions_made: int
    partitions_dropped: list[str]
    rows_deleted: int


def cutoff(retention_days: int, now: dt.datetime) -> dt.datetime:
    """Events kept `retention_days` that occurred before this instant may be gone: on SQLite
    each is deleted once it is; on PostgreSQL its UTC day's partition goes once all of the day
    is (so a little later)."""
    return now - dt.timedelta(days=retention_days)


def enforce(now: dt.datetime | None = None) -> RetentionReport:
    now = now or timezone.now()
    made = partitions.ensure_ahead(now.astimezone(dt.UTC).date())
    if partitions.is_partitioned():
        return RetentionReport(made, partitions.drop_expired(now), 0)
    deleted = 0
    for retention in retention_classes():
        # A platform job over every organization: their rows go by the same rule.
        expired = Event.objects.unscoped_dangerously().filter(
            retention_days=retention, occurred_at__lt=cutoff(retention, now)
        )
        deleted += expired.delete()[0]
    return RetentionReport(made, [], deleted)
