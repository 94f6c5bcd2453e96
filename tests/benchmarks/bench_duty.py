"""Benchmark: one duty tick with 5,000 shifts due (scheduling.duty.tick).

5,000 live rooms of 100 organizations, each with a shift whose warm-up begins now: one tick locks
them in batches (SKIP LOCKED), moves each compare-and-set, requests its `live` workload from
inference (idempotency key per attempt, with its reservation) and audits the move. Then the same
tick again (nothing is due: what an idle minute costs with 5,000 shifts under way), 5,000 web-widget
desks opening (no workload: a move and an audit entry each), and the end of the 5,000 live shifts
(each stream cancelled and its capacity given back). Statements and writes are counted; the
commit hooks (the audit entries' push over the channel layer, the workload signals) run, as they
do in the Celery worker. Reservations and shifts are inserted in bulk beforehand, as
materialisation would have made them.

Needs Django set up on a throwaway database: `tests.benchmarks.run` does that. It leaves its
rows behind (the throwaway database is dropped at the end): run it last.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from django.db import connection
from django.utils import timezone

from avatars.models import Employment
from inference.models import Reservation, WorkerPool
from scheduling import duty, materialise
from scheduling.models import Schedule, Shift, Station, StationKind
from tenants.models import Organization
from tests.avatars import factories as avatar_factories
from tests.benchmarks.bench_api import BenchmarkSection
from tests.benchmarks.bench_inference import _orgs, _Statements

ORGANIZATIONS, PER_ORGANIZATION = 100, 50  # 5,000 shifts of each kind


def _world(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """5,000 desk shifts starting at `now` (for a day) and 5,000 live-room shifts whose warm-up
    begins a minute later (for an hour); returns when the live ones warm up and when they end."""
    WorkerPool.objects.create(
        name="duty-live", pipeline="live", gpu_class="cpu", gpus_per_worker=0,
        slots_per_worker=2, image="bench", maximum=10_000,
    )  # fmt: skip
    avatar = avatar_factories.ready_avatar(visibility="public")
    warm_at = now + dt.timedelta(minutes=1)
    live_starts = warm_at + duty.warmup()
    live_ends = live_starts + dt.timedelta(hours=1)
    for organization in _orgs("duty", ORGANIZATIONS):
        employment = avatar_factories.EmploymentFactory(
            organization=organization, avatar=avatar, status="active", seats=PER_ORGANIZATION
        )
        _rows(organization, employment, StationKind.WEB_WIDGET, now, now + dt.timedelta(days=1))
        _rows(organization, employment, StationKind.LIVE_ROOM, live_starts, live_ends)
    return warm_at, live_ends


def _rows(
    organization: Organization,
    employment: Employment,
    kind: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
) -> None:
    stations = Station.objects.for_organization(organization).bulk_create(
        Station(id=uuid.uuid4(), organization=organization, name=f"{kind} {i}", kind=kind)
        for i in range(PER_ORGANIZATION)
    )
    schedules = Schedule.objects.for_organization(organization).bulk_create(
        Schedule(
            id=uuid.uuid4(),
            organization=organization,
            employment=employment,
            station=station,
            always_on=kind != StationKind.LIVE_ROOM,
            rrule="" if kind != StationKind.LIVE_ROOM else "FREQ=DAILY",
            start_time=dt.time(19, 0),
            duration_minutes=60,
            valid_from=starts_at.date(),
        )
        for station in stations
    )
    shifts = [
        Shift(
            id=uuid.uuid4(),
            organization=organization,
            schedule=schedule,
            employment=employment,
            station_id=schedule.station_id,
            starts_at=starts_at,
            ends_at=ends_at,
        )
        for schedule in schedules
    ]
    reservations = Reservation.objects.for_organization(organization).bulk_create(
        Reservation(
            id=shift.id,
            organization=organization,
            gpu_class="cpu",
            slots=1,
            starts_at=starts_at - duty.warmup(),
            ends_at=ends_at,
            holder=materialise.holder_of(shift.id),
        )
        for shift in shifts
    )
    for shift, reservation in zip(shifts, reservations, strict=True):
        shift.reservation = reservation
    Shift.objects.for_organization(organization).bulk_create(shifts)


def _timed_tick(at: dt.datetime) -> dict[str, Any]:
    statements = _Statements()
    with connection.execute_wrapper(statements):
        started = time.perf_counter()
        result = duty.tick(at)
        elapsed = time.perf_counter() - started
    return {
        "shifts": result.shifts,
        "outcomes": dict(result.outcomes),
        "s": elapsed,
        "queries": statements.total,
        "writes": statements.writes,
    }


def run() -> BenchmarkSection:
    """Set up the shifts, then time the four ticks once each (each is one big pass)."""
    now = timezone.now().replace(microsecond=0)
    warm_at, ends_at = _world(now)
    data = {
        "shifts": ORGANIZATIONS * PER_ORGANIZATION,
        "organizations": ORGANIZATIONS,
        "batch": duty.BATCH,
        "desks_open": _timed_tick(now),
        "live_warm": _timed_tick(warm_at),
        "idle": _timed_tick(warm_at),
        "live_end": _timed_tick(ends_at),
    }
    return BenchmarkSection(
        name="duty_tick",
        title="Scheduling: one duty tick with 5,000 shifts due",
        markdown=_markdown(data),
        data=data,
    )


def _markdown(data: dict[str, Any]) -> str:
    n = f"{data['shifts']:,}"
    rows = [
        (f"{n} desks open (a move and an audit entry each)", data["desks_open"]),
        (f"{n} live rooms warm up (each requests its stream)", data["live_warm"]),
        ("the same tick again: nothing due", data["idle"]),
        (f"{n} live shifts end (stream cancelled, capacity freed)", data["live_end"]),
    ]
    lines = [
        f"{data['shifts']:,} shifts of each kind in {data['organizations']} organizations; the "
        f"tick locks due shifts {data['batch']} at a time (SKIP LOCKED) and moves each "
        "compare-and-set, with its audit entry (pushed over the channel layer after commit).",
        "",
        "| tick | shifts moved | time | per shift | queries | per shift | writes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, tick in rows:
        moved = sum(tick["outcomes"].values())
        per_ms = f"{tick['s'] * 1000 / moved:.2f} ms" if moved else "–"
        per_query = f"{tick['queries'] / moved:.1f}" if moved else "–"
        lines.append(
            f"| {label} | {moved:,} | {tick['s']:.2f} s | {per_ms} | {tick['queries']:,} | "
            f"{per_query} | {tick['writes']:,} |"
        )
    return "\n".join(lines)
