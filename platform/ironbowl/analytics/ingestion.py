"""Storing a batch of events: validate each, attribute, write the good ones, mark their hours.

A batch is one transaction: either all its good events and their rollup marks are written, or
nothing is (a process killed mid-batch leaves nothing half-written; the client's retry writes
it). Retries are harmless: (organization, client event id, occurred_at) is unique, a repeated
event is counted as a duplicate and stored once.

PostgreSQL: the rows are COPied (binary) into a per-connection staging table, then moved into
the partitioned table with `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`, whose rows,
counted by hour, say how many were new and which hours to mark; after a plan change moved the
organization to another retention class, rows already stored in another class are left out
too. SQLite: the batch's existing keys are read, the rest bulk-inserted (SQLite writes one
transaction at a time, so nothing can slip in between).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from ironbowl.analytics import marks, metrics, partitions
from ironbowl.analytics.attribution import Resolver
from ironbowl.analytics.models import Event
from ironbowl.analytics.validation import CleanEvent, Invalid, clean
from tenants.models import Organization
from tenants.plans import limits_of

COLUMNS = (
    "organization_id",
    "client_event_id",
    "type",
    "name",
    "occurred_at",
    "received_at",
    "employment_id",
    "station_id",
    "shift_id",
    "viewer_hash",
    "session",
    "value",
    "properties",
    "retention_days",
)
# PostgreSQL types of COLUMNS, for binary COPY.
COLUMN_TYPES = (
    "uuid",
    "text",
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "uuid",
    "uuid",
    "uuid",
    "int8",
    "text",
    "float8",
    "jsonb",
    "int2",
)
STAGING = "analytics_event_staging"
_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT {', '.join(COLUMNS)} FROM {Event._meta.db_table} WITH NO DATA"
)
# Table and column names are constants of this module: nothing of a client's reaches the SQL.
# The new rows, counted by UTC hour (the session's time zone is UTC): what to mark, and how
# many were new, without sending every row's time back.
_MOVE = (
    f"WITH moved AS (INSERT INTO {Event._meta.db_table} ({', '.join(COLUMNS)}) "  # noqa: S608
    f"SELECT {', '.join(COLUMNS)} FROM {STAGING} staged %s"
    "ON CONFLICT DO NOTHING RETURNING occurred_at) "
    "SELECT date_trunc('hour', occurred_at), count(*) FROM moved GROUP BY 1"
)
# The unique index holds the partition key (the retention class), so ON CONFLICT finds a retry
# only in the organization's current class. After a plan change the first send may lie in
# another class: this probe (partitions of other classes, the batch's time span only) says so,
# and then each row is also looked up there.
_IN_OTHER_CLASSES = (
    f"SELECT EXISTS (SELECT 1 FROM {Event._meta.db_table} "  # noqa: S608
    "WHERE organization_id = %s AND retention_days <> %s AND occurred_at BETWEEN %s AND %s)"
)
_NOT_STORED = (
    f"WHERE NOT EXISTS (SELECT 1 FROM {Event._meta.db_table} stored "  # noqa: S608
    "WHERE stored.organization_id = staged.organization_id "
    "AND stored.client_event_id = staged.client_event_id "
    "AND stored.occurred_at = staged.occurred_at) "
)
_MOVE_NEW = _MOVE % ""
_MOVE_NEW_IN_ANY_CLASS = _MOVE % _NOT_STORED


@dataclasses.dataclass(frozen=True)
class EventError:
    index: int
    code: str
    message: str
    field: str = ""


@dataclasses.dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    errors: list[EventError] = dataclasses.field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.errors)


def ingest(
    organization: Organization, raw_events: Sequence[Any], *, now: dt.datetime | None = None
) -> IngestResult:
    """Validates, attributes and stores a batch; bad events are reported, good ones stored."""
    started = time.perf_counter()
    now = now or timezone.now()
    retention = limits_of(organization).event_retention_days
    result = IngestResult()
    good: list[CleanEvent] = []
    for index, raw in enumerate(raw_events):
        try:
            good.append(clean(index, raw, now, retention))
        except Invalid as invalid:
            result.errors.append(EventError(index, invalid.code, invalid.message, invalid.field))
    good = _first_of_each(good, result)
    if good:
        resolver = Resolver(organization, good)
        attributed = []
        for event in good:
            try:
                resolver.resolve(event)
            except Invalid as invalid:
                result.errors.append(
                    EventError(event.index, invalid.code, invalid.message, invalid.field)
                )
            else:
                attributed.append(event)
        rows = [_row(organization, event, now, retention) for event in attributed]
        if rows:
            partitions.ensure(retention, {event.occurred_at.date() for event in attributed})
            stored = _store_with_partition_retry(organization, rows, retention)
            result.accepted = sum(stored.values())
            result.duplicates += len(rows) - result.accepted
            for event in attributed:  # retried events arrive again, and count again here
                metrics.EVENT_DELAY.observe(max((now - event.occurred_at).total_seconds(), 0.0))
    result.errors.sort(key=lambda error: error.index)
    metrics.EVENTS.labels("stored").inc(result.accepted)
    metrics.EVENTS.labels("duplicate").inc(result.duplicates)
    metrics.EVENTS.labels("rejected").inc(result.rejected)
    metrics.INGEST_SECONDS.observe(time.perf_counter() - started)
    return result


def viewer_hash(organization: Organization, viewer: str) -> int:
    """A keyed 64-bit hash of a viewer id: counts unique viewers without keeping their ids, and
    the same person in two organizations hashes differently (nothing links them)."""
    keyed = _viewer_hmac(settings.SECRET_KEY).copy()
    keyed.update(f"{organization.pk}:{viewer}".encode())
    digest = keyed.digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@functools.lru_cache(maxsize=4)
def _viewer_hmac(secret_key: str) -> hmac.HMAC:
    """The keyed hash, prepared once per secret (each viewer copies it: half the cost)."""
    key = hashlib.sha256(f"analytics-viewer:{secret_key}".encode()).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def _first_of_each(events: list[CleanEvent], result: IngestResult) -> list[CleanEvent]:
    """A batch that repeats an event stores it once (the repeat counts as a duplicate)."""
    seen: set[tuple[str, dt.datetime]] = set()
    unique = []
    for event in events:
        key = (event.client_event_id, event.occurred_at)
        if key in seen:
            result.duplicates += 1
        else:
            seen.add(key)
            unique.append(event)
    return unique


def _row(
    organization: Organization, event: CleanEvent, now: dt.datetime, retention: int
) -> tuple[Any, ...]:
    return (
        organization.pk,
        event.client_event_id,
        event.type,
        event.name,
        event.occurred_at,
        now,
        event.employment_id,
        event.station_id,
        event.shift_id,
        viewer_hash(organization, event.viewer) if event.viewer else None,
        event.session,
        event.value,
        event.properties,
        retention,
    )


def _store_with_partition_retry(
    organization: Organization, rows: list[tuple[Any, ...]], retention: int
) -> dict[dt.datetime, int]:
    try:
        return _store(organization, rows)
    except DatabaseError as error:
        # A partition this process believed in is gone (dropped by retention, or made inside a
        # transaction that rolled back): look again and try once more.
        if "no partition" not in str(error):
            raise
        partitions.forget()
        partitions.ensure(retention, {row[4].date() for row in rows})
        return _store(organization, rows)


def _store(organization: Organization, rows: list[tuple[Any, ...]]) -> dict[dt.datetime, int]:
    """Writes the rows that are new and marks their hours, in one transaction; returns how many
    rows were written in each UTC hour."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            stored = _copy(rows)
        else:
            stored = _bulk_insert(organization, rows)
        if stored:
            marks.mark_hours(organization, stored)
    return stored


def _copy(rows: list[tuple[Any, ...]]) -> dict[dt.datetime, int]:
    columns = ", ".join(COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(_STAGE)
        # Binary COPY: no text to format here and to parse there.
        with cursor.copy(f"COPY {STAGING} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(COLUMN_TYPES)
            for row in rows:
                copy.write_row((*row[:-2], Jsonb(row[-2]), row[-1]))
        cursor.execute(_MOVE_NEW_IN_ANY_CLASS if _in_other_classes(cursor, rows) else _MOVE_NEW)
        stored = {hour: count for hour, count in cursor.fetchall()}
        # Emptied now too: inside an outer transaction the commit that would empty it is later.
        cursor.execute(f"DELETE FROM {STAGING}")  # noqa: S608 - a constant name
    return stored


def _in_other_classes(cursor: Any, rows: list[tuple[Any, ...]]) -> bool:
    """Whether the organization has events of another retention class in the batch's span."""
    times = [row[4] for row in rows]
    cursor.execute(_IN_OTHER_CLASSES, [rows[0][0], rows[0][-1], min(times), max(times)])
    return bool(cursor.fetchone()[0])


def _bulk_insert(organization: Organization, rows: list[tuple[Any, ...]]) -> dict[dt.datetime, int]:
    ids = {row[1] for row in rows}
    present = set(
        Event.objects.for_organization(organization)
        .filter(client_event_id__in=ids)
        .values_list("client_event_id", "occurred_at")
    )
    new = [row for row in rows if (row[1], row[4]) not in present]
    Event.objects.for_organization(organization).bulk_create(
        [Event(**dict(zip(COLUMNS, row, strict=True))) for row in new], batch_size=500
    )
    return dict(Counter(marks.hour_of(row[4]) for row in new))
