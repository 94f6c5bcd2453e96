"""Benchmark: billing — rating a month for many organizations, and appending to the ledger.

1. A month (March 2024) for BENCH_BILLING_ORGS organizations (default 1,000) × 10 hires × 31
   days of usage: each hire's seat-days are recorded by the service (`seats.record_seat_days`,
   timed: seat-days appended per second), and each day one record of each metered type (stream
   minutes, interactions, GPU seconds, rendered seconds) is written straight into the ledger.
   Then every organization's month is rated (`rating.rate`: computed, nothing written) and
   closed (`statements.close`: the watermark under the table lock, rating up to it, the
   statement and its lines written).
2. Ledger appends per second through the service path (`ledger.append_usage`: every entry
   checked, source ids looked up, the batch inserted, rollup hours marked) against a raw COPY
   of the same rows into `analytics_usagerecord` (PostgreSQL; on SQLite a raw bulk INSERT), in
   batches of 1,000, alternated batch by batch.

Needs Django set up on a throwaway database: `tests.benchmarks.run` does that. Everything runs
in one transaction that is rolled back at the end, so nothing stays behind (the ledger is
append-only and cannot be emptied otherwise); commits are therefore timed for neither side.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
import uuid
import zoneinfo
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from avatars.models import Employment, Position
from ironbowl.analytics.models import UsageRecord
from ironbowl.billing import ledger, rating, seats, statements
from ironbowl.billing.models import Plan, Subscription
from tenants.models import Organization
from tests.avatars.factories import ready_avatar
from tests.benchmarks.bench_api import BenchmarkSection

ORGANIZATIONS = int(os.environ.get("BENCH_BILLING_ORGS", "1000"))
HIRES = 10
PERIOD = dt.date(2024, 3, 1)
DAYS = 31
ZONE = "Asia/Shanghai"
METERED = (
    ("stream_minutes", Decimal(480)),
    ("interactions", Decimal(350)),
    ("gpu_seconds", Decimal(28_800)),
    ("rendered_seconds", Decimal(600)),
)
APPEND_BATCH = 1_000
APPEND_BATCHES = 40  # of each side, alternated
COLUMNS = (
    "organization_id",
    "source_id",
    "usage_type",
    "quantity",
    "gpu_class",
    "unit_price",
    "employment_id",
    "occurred_at",
    "recorded_at",
)


class _Rollback(Exception):
    """Raised to roll the benchmark's transaction back once its figures are taken."""


def _raw_write(rows: Sequence[Sequence[Any]]) -> None:
    """Rows straight into the ledger table: COPY on PostgreSQL, a bulk INSERT on SQLite."""
    table, columns = UsageRecord._meta.db_table, ", ".join(COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(COLUMNS))
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608
                [_sqlite_row(row) for row in rows],
            )


def _sqlite_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row as Django stores it in SQLite (UUIDs as hex, times as naive UTC text)."""
    return tuple(
        value.hex
        if isinstance(value, uuid.UUID)
        else value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")
        if isinstance(value, dt.datetime)
        else str(value)
        if isinstance(value, Decimal)
        else value
        for value in row
    )


def _world() -> list[Organization]:
    """The organizations on the standard plan since 2023, each with ten active hires of one
    vendor's avatar (created in bulk; the hires active since 2023)."""
    since = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    avatar = ready_avatar(visibility="public", name_zh="小艺")
    version = avatar.current_version
    organizations = Organization.objects.bulk_create(
        [
            Organization(
                slug=f"bench-billing-{number}",
                name=f"Hospital {number}",
                kind="hospital",
                time_zone=ZONE,
                plan="standard",
            )
            for number in range(ORGANIZATIONS)
        ]
    )
    standard = Plan.objects.get(code="standard")
    # Cross-tenant on purpose: the benchmark makes every organization's rows at once.
    Subscription.objects.unscoped_dangerously().bulk_create(
        [Subscription(organization=o, plan=standard, starts_at=since) for o in organizations]
    )
    positions = Position.objects.unscoped_dangerously().bulk_create(
        [Position(organization=o, title="Health live-room anchor") for o in organizations]
    )
    Employment.objects.unscoped_dangerously().bulk_create(
        [
            Employment(
                organization=organization,
                avatar=avatar,
                avatar_version=version,
                position=position,
                seats=1 + hire % 3,
                rate=Decimal("1999.00"),
                starts_on=since.date(),
                status="active",
            )
            for organization, position in zip(organizations, positions, strict=True)
            for hire in range(HIRES)
        ],
        batch_size=5_000,
    )
    # created_at is set on insert; the hires have been active since 2023.
    Employment.objects.unscoped_dangerously().filter(organization__in=organizations).update(
        created_at=since
    )
    return organizations


def _metered_usage(organizations: list[Organization]) -> int:
    """Each hire's daily metered usage, written straight into the ledger (not timed)."""
    zone = zoneinfo.ZoneInfo(ZONE)
    now = dt.datetime.now(dt.UTC)
    hires = Employment.objects.unscoped_dangerously().filter(organization__in=organizations)
    rows: list[tuple[Any, ...]] = []
    written = 0
    for organization_id, employment_id in hires.values_list("organization_id", "pk"):
        for day in range(DAYS):
            at = dt.datetime(2024, 3, day + 1, 14, tzinfo=zone)
            for usage_type, quantity in METERED:
                source = f"bench:{employment_id}:{day}:{usage_type}"
                rows.append(
                    (
                        organization_id,
                        source,
                        usage_type,
                        quantity,
                        "",
                        None,
                        employment_id,
                        at,
                        now,
                    )
                )
        if len(rows) >= 100_000:
            _raw_write(rows)
            written, rows = written + len(rows), []
    _raw_write(rows)
    return written + len(rows)


def _month(organizations: list[Organization]) -> dict[str, Any]:
    began = time.perf_counter()
    seat_days = sum(
        seats.record_seat_days(organization, PERIOD, dt.date(2024, 3, DAYS))
        for organization in organizations
    )
    seat_seconds = time.perf_counter() - began
    metered = _metered_usage(organizations)

    began = time.perf_counter()
    rated = [rating.rate(organization, PERIOD) for organization in organizations]
    rate_seconds = time.perf_counter() - began
    closed_at = dt.datetime(2024, 4, 10, tzinfo=dt.UTC)
    latencies = []
    began = time.perf_counter()
    for organization in organizations:
        started = time.perf_counter()
        statements.close(organization, PERIOD, now=closed_at)
        latencies.append(time.perf_counter() - started)
    close_seconds = time.perf_counter() - began
    lines = sum(len(statement.lines) for statement in rated)
    return {
        "organizations": len(organizations),
        "hires": len(organizations) * HIRES,
        "seat_days": seat_days,
        "metered_records": metered,
        "seat_days_seconds": seat_seconds,
        "seat_days_per_s": seat_days / seat_seconds,
        "rate_seconds": rate_seconds,
        "rated_per_s": len(organizations) / rate_seconds,
        "close_seconds": close_seconds,
        "closed_per_s": len(organizations) / close_seconds,
        "close_p50_ms": statistics.median(latencies) * 1000,
        "close_p99_ms": sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000,
        "lines": lines,
        "total": str(sum((statement.total for statement in rated), Decimal(0))),
    }


def _appends() -> dict[str, Any]:
    organization = Organization.objects.create(
        slug="bench-billing-appends", name="Appends", kind="hospital", time_zone=ZONE
    )
    employment = Employment.objects.unscoped_dangerously().exclude(organization=organization)[0]
    hires = [
        Employment.objects.create(
            organization=organization,
            avatar_id=employment.avatar_id,
            avatar_version_id=employment.avatar_version_id,
            position=Position.objects.create(organization=organization, title="Desk"),
            rate=Decimal("1999.00"),
            starts_on=PERIOD,
            status="active",
        )
        for _hire in range(HIRES)
    ]
    base = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    now = dt.datetime.now(dt.UTC)

    def entries(side: str, batch: int) -> list[dict[str, Any]]:
        return [
            {
                "usage_type": METERED[n % len(METERED)][0],
                "quantity": METERED[n % len(METERED)][1],
                "source_id": f"{side}:{batch}:{n}",
                "occurred_at": base + dt.timedelta(minutes=batch * APPEND_BATCH + n),
                "employment_id": hires[n % HIRES].pk,
            }
            for n in range(APPEND_BATCH)
        ]

    service_s: list[float] = []
    raw_s: list[float] = []
    for batch in range(APPEND_BATCHES):
        served = entries("service", batch)
        rows = [
            (
                organization.pk,
                entry["source_id"],
                entry["usage_type"],
                entry["quantity"],
                "",
                None,
                entry["employment_id"],
                entry["occurred_at"],
                now,
            )
            for entry in entries("raw", batch)
        ]
        started = time.perf_counter()
        outcome = ledger.append_usage(organization, served, now=now)
        service_s.append(time.perf_counter() - started)
        assert outcome.appended == APPEND_BATCH
        started = time.perf_counter()
        _raw_write(rows)
        raw_s.append(time.perf_counter() - started)
    service_rate = APPEND_BATCH * APPEND_BATCHES / sum(service_s)
    raw_rate = APPEND_BATCH * APPEND_BATCHES / sum(raw_s)
    return {
        "batch": APPEND_BATCH,
        "batches": APPEND_BATCHES,
        "service_per_s": service_rate,
        "raw_per_s": raw_rate,
        "ratio": service_rate / raw_rate,
        "service_batch_p50_ms": statistics.median(service_s) * 1000,
        "raw_batch_p50_ms": statistics.median(raw_s) * 1000,
    }


def run() -> BenchmarkSection:
    data: dict[str, Any] = {}
    try:
        with transaction.atomic():
            data["month"] = _month(_world())
            data["appends"] = _appends()
            raise _Rollback
    except _Rollback:
        pass
    month, appends = data["month"], data["appends"]
    raw = "raw COPY" if connection.vendor == "postgresql" else "raw bulk INSERT"
    markdown = "\n".join(
        [
            f"### Rating March 2024 for {month['organizations']:,} organizations × {HIRES} hires",
            "",
            f"Ledger: {month['seat_days']:,} seat-days (service) and "
            f"{month['metered_records']:,} metered records; {month['lines']:,} statement lines.",
            "",
            "| step | time | per second |",
            "|---|---:|---:|",
            f"| record seat-days (`seats.record_seat_days`) | {month['seat_days_seconds']:.1f} s "
            f"| {month['seat_days_per_s']:,.0f} seat-days |",
            f"| rate every month (`rating.rate`, nothing written) | {month['rate_seconds']:.1f} s "
            f"| {month['rated_per_s']:,.1f} statements |",
            f"| close every month (`statements.close`: lock, rate, write) | "
            f"{month['close_seconds']:.1f} s | {month['closed_per_s']:,.1f} statements |",
            "",
            f"Closing one statement: p50 {month['close_p50_ms']:.1f} ms, "
            f"p99 {month['close_p99_ms']:.1f} ms.",
            "",
            f"### Ledger appends, batches of {appends['batch']:,}",
            "",
            "| path | records/s | batch p50 |",
            "|---|---:|---:|",
            f"| `ledger.append_usage` (checked, deduplicated, rollups marked) | "
            f"{appends['service_per_s']:,.0f} | {appends['service_batch_p50_ms']:.1f} ms |",
            f"| {raw} | {appends['raw_per_s']:,.0f} | {appends['raw_batch_p50_ms']:.1f} ms |",
            "",
            f"Service path / {raw}: **{appends['ratio']:.2f}**. Both inside one transaction "
            "(rolled back at the end): commits are timed for neither.",
        ]
    )
    return BenchmarkSection(
        name="billing",
        title="Billing: rating a month for many organizations, ledger appends",
        markdown=markdown,
        data=data,
    )
