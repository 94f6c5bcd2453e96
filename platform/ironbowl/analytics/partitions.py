"""Raw events' partitions on PostgreSQL: one per retention class, then one per UTC day.

Days are made ahead (`ensure_ahead`, hourly, and on demand by ingestion for the days a batch
needs), and a class's days older than its retention are dropped whole (`drop_expired`) — no
row-by-row deletes. On SQLite (the embedded default) there are no partitions: retention
deletes rows instead (`analytics.retention`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

import structlog
from django.db import connection, transaction
from django.db.utils import DatabaseError

from tenants.plans import retention_classes

log = structlog.get_logger(__name__)

PARENT = "analytics_event"
DAYS_AHEAD = 7
_DAY_NAME = re.compile(r"^analytics_event_r(\d+)_(\d{8})$")
# Partitions this process has seen exist: ingestion skips the catalogue for them.
_known: set[tuple[int, dt.date]] = set()


def is_partitioned() -> bool:
    return connection.vendor == "postgresql"


def class_table(retention_days: int) -> str:
    return f"{PARENT}_r{int(retention_days)}"


def day_table(retention_days: int, day: dt.date) -> str:
    return f"{class_table(retention_days)}_{day:%Y%m%d}"


def ensure(retention_days: int, days: Iterable[dt.date]) -> int:
    """Makes the partitions for these days of one retention class; returns how many it made."""
    if not is_partitioned():
        return 0
    wanted = sorted({day for day in days if (retention_days, day) not in _known})
    if not wanted:
        return 0
    made = 0
    present = _existing_days()
    for day in wanted:
        if (retention_days, day) not in present:
            made += _create(retention_days, day)
        _known.add((retention_days, day))
    return made


def ensure_ahead(today: dt.date, days_ahead: int = DAYS_AHEAD) -> int:
    """Makes today's partitions and `days_ahead` more, for every retention class plans have."""
    days = [today + dt.timedelta(days=offset) for offset in range(days_ahead + 1)]
    return sum(ensure(retention, days) for retention in retention_classes())


def drop_expired(now: dt.datetime) -> list[str]:
    """Drops every day partition wholly older than its class's retention; returns their names."""
    if not is_partitioned():
        return []
    dropped = []
    for retention, day in sorted(_existing_days()):
        day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        if day_end <= now - dt.timedelta(days=retention):
            name = day_table(retention, day)
            with connection.cursor() as cursor:
                cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
            _known.discard((retention, day))
            dropped.append(name)
            log.info("analytics.partition_dropped", partition=name)
    return dropped


def existing() -> list[str]:
    """Names of the day partitions, oldest first (for operators and tests)."""
    return [day_table(retention, day) for retention, day in sorted(_existing_days())]


def forget() -> None:
    """Forgets which partitions exist (tests that drop them behind the process's back)."""
    _known.clear()


def _existing_days() -> set[tuple[int, dt.date]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
            "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
            "WHERE parent.relname LIKE %s",
            [f"{PARENT}_r%"],
        )
        names = [row[0] for row in cursor.fetchall()]
    days = set()
    for name in names:
        match = _DAY_NAME.match(name)
        if match:
            day = dt.date(int(match[2][:4]), int(match[2][4:6]), int(match[2][6:]))
            days.add((int(match[1]), day))
    return days


def _create(retention_days: int, day: dt.date) -> int:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    parent, child = class_table(retention_days), day_table(retention_days, day)
    try:
        # Its own transaction: partitions outlive whatever batch asked for them.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f'CREATE TABLE IF NOT EXISTS "{parent}" PARTITION OF "{PARENT}" '
                f"FOR VALUES IN ({int(retention_days)}) PARTITION BY RANGE (occurred_at)"
            )
            cursor.execute(
                f'CREATE TABLE IF NOT EXISTS "{child}" PARTITION OF "{parent}" '
                "FOR VALUES FROM (%s) TO (%s)",
                [start.isoformat(), end.isoformat()],
            )
    except DatabaseError:
        # Another process made it at the same instant: what matters is that it exists now.
        if (retention_days, day) not in _existing_days():
            raise
        return 0
    log.info("analytics.partition_created", partition=child)
    return 1
