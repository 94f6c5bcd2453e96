"""Benchmark: analytics — ingesting events, the KPI dashboard over 90 days, late events.

1. Ingestion in events/s with batches of 1,000 events: end to end through HTTP (gunicorn with
   uvicorn workers over TCP, a few client threads posting JSON with an `events.write` API key),
   and in the process (`ingestion.ingest()` called directly: no HTTP, no JSON parsing), against
   a raw COPY of the same rows into `analytics_event` (PostgreSQL; on SQLite a raw bulk INSERT).
   A cProfile of `ingest()` shows where its time goes.
2. The KPI dashboard for 90 days by day (`kpis.series`, the selector behind GET
   …/analytics/kpis/) for an organization with BENCH_ANALYTICS_EVENTS raw events (default
   5,000,000), written straight into the table with COPY, hours marked and rolled up (the initial
   rollup is timed), against one SQL GROUP BY day over the raw events; the two answers must agree.
3. Absorbing a day of late events (for a day 30 days back) once the rollups are current, against
   rolling that day up from scratch and against the initial rollup.

Needs Django set up on a throwaway database: `tests.benchmarks.run` does that. Unlike the other
entries, this one commits its rows (the web server is another process and must see them). At
the end, on error too, it empties the events table and deletes its rollups, marks, shifts and
schedules; its two organizations stay behind, with nothing on duty.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import http.client
import json
import os
import pstats
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.test import Client
from django.utils import timezone

from avatars.models import Employment, Position
from ironbowl.analytics import ingestion, kpis, marks, partitions
from ironbowl.analytics.attribution import Resolver
from ironbowl.analytics.models import Event, Rollup, RollupMark
from ironbowl.analytics.validation import clean
from scheduling.models import Schedule, Shift, ShiftState, Station, StationKind
from tenants import services
from tenants.audit import SYSTEM
from tenants.models import Organization
from tenants.roles import Permission
from tests.avatars import factories as avatar_factories
from tests.benchmarks.bench_api import BenchmarkSection

EVENTS_ENV = "BENCH_ANALYTICS_EVENTS"
DEFAULT_EVENTS = 5_000_000
DAYS = 90
RETENTION = 90  # plan "standard"
LATE_DAY_BACK = 30
BATCH = 1_000
HTTP_BATCHES = 240
COPY_BATCHES = IN_PROCESS_BATCHES = 160  # alternated batch by batch, from one connection
ROUNDS = 4  # the cases take turns, so that a busy moment of the machine falls on all of them
PROFILED_BATCHES = 20
WARMUP_BATCHES = 8
CLIENT_THREADS = 4
SERVER_WORKERS = 2
STREAMS = 20  # employments, each at its own station
ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
SHIFT_START, SHIFT_HOURS = dt.time(8, 0), 16  # every stream is on air 08:00-24:00 local
# The mix of types, as a live room sends them.
TYPES = (
    "view",
    "visit",
    "interaction",
    "comment",
    "session_start",
    "session_end",
    "handoff",
    "custom",
)
WEIGHTS = (0.40, 0.20, 0.15, 0.12, 0.04, 0.04, 0.03, 0.02)
WITH_VIEWER = frozenset({"visit", "interaction", "comment"})  # 90 % of these name a viewer
WITH_SESSION = frozenset({"session_start", "session_end", "handoff"})
HLL_TOLERANCE = 0.065  # about four standard errors of a 4,096-register sketch (1.6 %)
WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "COPY")
COPY_CHUNK = 100_000


def events_wanted() -> int:
    return int(os.environ.get(EVENTS_ENV, DEFAULT_EVENTS))


# --- measuring -------------------------------------------------------------------------------


class _Statements:
    """Counts the SQL statements run, and those that write."""

    def __init__(self) -> None:
        self.total = self.writes = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.total += 1
        if sql.lstrip().upper().startswith(WRITE_VERBS):
            self.writes += 1
        return execute(sql, params, many, context)


def _timed(action: Callable[[], Any]) -> tuple[float, _Statements, Any]:
    statements = _Statements()
    with connection.execute_wrapper(statements):
        started = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - started
    return seconds, statements, result


def _percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50 and p99 of seconds, in milliseconds."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return {"p50_ms": ordered[0] * 1e3, "p99_ms": ordered[0] * 1e3}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50_ms": statistics.median(ordered) * 1e3, "p99_ms": cuts[98] * 1e3}


# --- the organizations -----------------------------------------------------------------------


@dataclass
class World:
    organization: Organization
    stations: list[uuid.UUID]
    employments: list[uuid.UUID]
    shifts: dict[tuple[int, dt.date], uuid.UUID]  # (stream, local day) -> shift


def _world(slug: str, days: Sequence[dt.date], *, open_now: dt.datetime | None = None) -> World:
    """An organization on plan "standard" with STREAMS employments, each at its own station,
    and a shift per stream for each local day (08:00-24:00, ended); with `open_now`, instead one
    shift per stream on duty around that instant."""
    organization = Organization.objects.create(
        slug=slug, name=slug, plan="standard", time_zone=str(ZONE), locale="en"
    )
    avatar = avatar_factories.ready_avatar(visibility="public")
    position = Position.objects.create(organization=organization, title="Host")
    kinds = (StationKind.LIVE_ROOM, StationKind.WEB_WIDGET, StationKind.KIOSK)
    stations = [
        Station(id=uuid.uuid4(), organization=organization, name=f"Room {i}", kind=kinds[i % 3])
        for i in range(STREAMS)
    ]
    Station.objects.unscoped_dangerously().bulk_create(stations)
    hires = [
        Employment(
            id=uuid.uuid4(),
            organization=organization,
            avatar=avatar,
            avatar_version=avatar.current_version,
            position=position,
            rate=Decimal("1999.00"),
            starts_on=dt.date(2025, 1, 1),
            status="active",
        )
        for _ in range(STREAMS)
    ]
    Employment.objects.unscoped_dangerously().bulk_create(hires)
    plans = [
        Schedule(
            id=uuid.uuid4(),
            organization=organization,
            employment=hires[i],
            station=stations[i],
            rrule="FREQ=DAILY",
            start_time=SHIFT_START,
            duration_minutes=SHIFT_HOURS * 60,
            valid_from=dt.date(2025, 1, 1),
        )
        for i in range(STREAMS)
    ]
    Schedule.objects.unscoped_dangerously().bulk_create(plans)
    shifts: list[Shift] = []
    keys: dict[tuple[int, dt.date], uuid.UUID] = {}
    for i, plan in enumerate(plans):
        if open_now is not None:
            windows = [(open_now - dt.timedelta(days=1), open_now + dt.timedelta(days=1))]
            state = ShiftState.ON_DUTY
        else:
            windows = [_shift_window(day) for day in days]
            state = ShiftState.ENDED
        for starts_at, ends_at in windows:
            shift = Shift(
                id=uuid.uuid4(),
                organization=organization,
                schedule=plan,
                employment=hires[i],
                station=stations[i],
                starts_at=starts_at,
                ends_at=ends_at,
                state=state,
                on_duty_at=starts_at,
                ended_at=ends_at if state == ShiftState.ENDED else None,
            )
            shifts.append(shift)
            keys[(i, starts_at.astimezone(ZONE).date())] = shift.id
    Shift.objects.unscoped_dangerously().bulk_create(shifts, batch_size=2_000)
    # Last touched when they ended, as shifts of past days were: the rollup run's scan of
    # recently updated shifts must not take these for fresh changes.
    Shift.objects.unscoped_dangerously().filter(
        organization=organization, ended_at__isnull=False
    ).update(updated_at=F("ended_at"))
    return World(organization, [s.id for s in stations], [h.id for h in hires], keys)


def _shift_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    starts_at = dt.datetime.combine(day, SHIFT_START, tzinfo=ZONE).astimezone(dt.UTC)
    return starts_at, starts_at + dt.timedelta(hours=SHIFT_HOURS)


def _forget_world(world: World) -> None:
    organization = world.organization
    Shift.objects.unscoped_dangerously().filter(organization=organization).delete()
    Schedule.objects.unscoped_dangerously().filter(organization=organization).delete()
    RollupMark.objects.for_organization(organization).delete()
    Rollup.objects.for_organization(organization).delete()


# --- events as clients send them -------------------------------------------------------------


def _json_events(
    rng: random.Random,
    prefix: str,
    count: int,
    stations: Sequence[uuid.UUID],
    earliest: dt.datetime,
    latest: dt.datetime,
) -> list[dict[str, Any]]:
    """`count` events of the usual mix, naming a station (attribution finds the shift),
    spread over [earliest, latest), times with the organization's offset as clients send them."""
    span = (latest - earliest).total_seconds()
    kinds = rng.choices(TYPES, weights=WEIGHTS, k=count)
    events = []
    for i, kind in enumerate(kinds):
        occurred = earliest + dt.timedelta(seconds=rng.random() * span)
        event: dict[str, Any] = {
            "id": f"{prefix}-{i}",
            "type": kind,
            "occurred_at": occurred.astimezone(ZONE).isoformat(),
            "station": str(stations[rng.randrange(len(stations))]),
        }
        if kind in WITH_VIEWER and rng.random() < 0.9:
            event["viewer"] = f"u-{int(rng.random() ** 2 * 50_000)}"
        if kind in WITH_SESSION:
            event["session"] = f"s-{rng.randrange(10_000)}"
        if kind == "view":
            event["value"] = rng.randrange(3_001)
        elif kind == "session_end":
            event["value"] = rng.randrange(10, 1_801)
        elif kind == "custom":
            event.update(name="coupon.claimed", value=1, properties={"coupon": "SPRING"})
        events.append(event)
    return events


def _batches(
    rng: random.Random, prefix: str, count: int, world: World, now: dt.datetime
) -> list[list[dict[str, Any]]]:
    """Batches of the last half hour's events."""
    earliest = now - dt.timedelta(minutes=30)
    return [
        _json_events(rng, f"{prefix}{b}", BATCH, world.stations, earliest, now)
        for b in range(count)
    ]


def _stored_rows(world: World, batch: list[dict[str, Any]], now: dt.datetime) -> list[Any]:
    """The rows ingestion would store for a batch (validated, attributed, viewer hashed), in
    `ingestion.COLUMNS` order: what the raw baseline writes."""
    organization = world.organization
    good = [clean(i, raw, now, RETENTION) for i, raw in enumerate(batch)]
    resolver = Resolver(organization, good)
    rows = []
    for event in good:
        resolver.resolve(event)
        rows.append(
            (
                organization.pk,
                event.client_event_id,
                event.type,
                event.name,
                event.occurred_at,
                now,
                event.employment_id,
                event.station_id,
                event.shift_id,
                ingestion.viewer_hash(organization, event.viewer) if event.viewer else None,
                event.session,
                event.value,
                json.dumps(event.properties),
                RETENTION,
            )
        )
    return rows


# --- 1. ingestion ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_url() -> str:
    """The URL of the database this run uses (the throwaway one)."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{config['NAME']}"
    auth = config["USER"] + (f":{config['PASSWORD']}" if config["PASSWORD"] else "")
    host = f"{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{config['NAME']}"


@contextmanager
def _web_server(workers: int) -> Iterator[int]:
    """gunicorn with uvicorn workers (as in production) on a free local port, on this run's
    database; stopped, its whole process group, when the block ends (on error too)."""
    repo = Path(settings.BASE_DIR)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DATABASE_URL=_database_url(),
        DATA_DIR=str(settings.DATA_DIR),  # the same development secret: the same API keys
        PYTHONPATH=os.pathsep.join([str(repo / "platform"), str(repo)]),
        WEB_CONCURRENCY=str(workers),
        LOG_LEVEL="WARNING",
        THROTTLE_ORGANIZATION_RATE="1000000/second",
        THROTTLE_KEY_RATE="1000000/second",
        THROTTLE_EVENTS_RATE="1000000/second",
    )
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "ironbowl.asgi:application",
        "-c",
        str(repo / "platform" / "ironbowl" / "gunicorn_conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
    ]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            command, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"the web server exited: {log.read()[-2000:]!r}")
                try:
                    probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    probe.request("GET", "/healthz")
                    if probe.getresponse().status == 200:
                        probe.close()
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the web server did not answer within 60 s")
                time.sleep(0.3)
            yield port
        finally:
            try:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)


def _post_all(
    port: int, path: str, token: str, bodies: list[bytes], threads: int
) -> tuple[float, list[float], int]:
    """Posts the bodies from `threads` threads (keep-alive connections, one each); returns the
    wall time, each batch's latency and the events accepted."""
    latencies: list[float] = []
    accepted = [0]
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def client(share: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        mine, taken = [], 0
        start.wait()
        try:
            for body in share:
                began = time.perf_counter()
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                mine.append(time.perf_counter() - began)
                if response.status != 200:
                    raise RuntimeError(f"POST answered {response.status}: {answer[:300]!r}")
                taken += json.loads(answer)["accepted"]
        except Exception as error:
            errors.append(repr(error))
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)
                accepted[0] += taken

    workers = [threading.Thread(target=client, args=(bodies[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"posting events failed: {errors[0]}")
    return wall, latencies, accepted[0]


def _raw_write(rows: list[Any]) -> None:
    """The baseline: the same rows written straight into the events table, one transaction —
    COPY on PostgreSQL, a bulk INSERT on SQLite."""
    columns = ", ".join(ingestion.COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {Event._meta.db_table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks_ = ", ".join(["%s"] * len(ingestion.COLUMNS))
            cursor.executemany(
                f"INSERT INTO {Event._meta.db_table} ({columns}) VALUES ({marks_})",  # noqa: S608
                [_sqlite_row(row) for row in rows],
            )


def _sqlite_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row as Django stores it in SQLite (UUIDs as hex, times as naive UTC text)."""
    return tuple(
        value.hex
        if isinstance(value, uuid.UUID)
        else value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")
        if isinstance(value, dt.datetime)
        else value
        for value in row
    )


def _raw_threads(batches: list[list[Any]], threads: int) -> tuple[float, list[float]]:
    """Writes the batches from `threads` threads, each with its own connection; returns the
    wall time and each batch's time."""
    start = threading.Barrier(threads + 1)
    errors: list[str] = []
    latencies: list[float] = []

    def writer(share: list[list[Any]]) -> None:
        start.wait()
        try:
            for rows in share:
                began = time.perf_counter()
                _raw_write(rows)
                latencies.append(time.perf_counter() - began)
        except Exception as error:
            errors.append(repr(error))
        finally:
            connection.close()

    workers = [threading.Thread(target=writer, args=(batches[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    if errors:
        raise RuntimeError(f"the raw write failed: {errors[0]}")
    return time.perf_counter() - began, latencies


def _stored(organization: Organization) -> int:
    return Event.objects.for_organization(organization).count()


# What `ingest()` does, by the function that does it (file, function): cumulative time.
STAGES = (
    ("validating each event", "analytics/validation.py", "clean"),
    ("reading stations, employments, shifts", "analytics/attribution.py", "__init__"),
    ("attributing each event", "analytics/attribution.py", "resolve"),
    ("building rows (viewer ids hashed)", "analytics/ingestion.py", "_row"),
    ("writing the rows (PostgreSQL: COPY to staging, INSERT … ON CONFLICT)", "", "_copy"),
    ("writing the rows (SQLite: existing keys, bulk INSERT)", "", "_bulk_insert"),
    ("marking hours", "analytics/marks.py", "mark_hours"),
    ("committing", "django/db/backends/base/base.py", "commit"),
    ("metrics (a histogram observation per event)", "prometheus_client/metrics.py", "observe"),
)


def _profile(world: World, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """cProfile of `ingest()` over some batches: the share of its time in each stage, and the
    functions with the most time of their own."""
    profiler = cProfile.Profile()
    profiler.enable()
    for batch in batches:
        ingestion.ingest(world.organization, batch)
    profiler.disable()
    stats: Any = pstats.Stats(profiler)
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # (calls, ..., own, cum.)

    def cumulative(path: str, function: str) -> float:
        return sum(
            figures[3]
            for (filename, _line, name), figures in table.items()
            if name == function and Path(filename).as_posix().endswith(path or "ingestion.py")
        )

    total = cumulative("analytics/ingestion.py", "ingest") or 1e-9
    stages = [
        {"stage": stage, "share": cumulative(path, function) / total}
        for stage, path, function in STAGES
    ]
    own = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:12]
    return {
        "batches": len(batches),
        "stages": [stage for stage in stages if stage["share"] > 0],
        "own_time": [
            {
                "function": f"{Path(filename).name}:{line}({function})",
                "calls": figures[1],
                "share": figures[2] / total,
            }
            for (filename, line, function), figures in own
        ],
    }


def _ingestion() -> dict[str, Any]:
    now = timezone.now()
    world = _world("bench-ingest", [], open_now=now)
    organization = world.organization
    rng = random.Random(7)
    http_batches = _batches(rng, "h", HTTP_BATCHES + WARMUP_BATCHES, world, now)
    process_batches = _batches(rng, "p", IN_PROCESS_BATCHES + PROFILED_BATCHES, world, now)
    raw_batches = _batches(rng, "c", COPY_BATCHES * 2, world, now)
    raw_rows = [_stored_rows(world, batch, now) for batch in raw_batches]
    _key, token = services.create_api_key(
        SYSTEM, organization, name="benchmark", scopes=[Permission.EVENTS_WRITE]
    )
    path = f"/api/v1/orgs/{organization.slug}/events/"
    bodies = [json.dumps(batch).encode() for batch in http_batches]
    body_bytes = statistics.fmean(len(body) for body in bodies)
    partitions.ensure(RETENTION, {now.date(), (now - dt.timedelta(hours=1)).date()})
    latencies: list[float] = []
    one_latencies: list[float] = []
    many_latencies: list[float] = []
    http_latencies: list[float] = []
    many_s = wall = 0.0
    accepted = 0
    try:
        _one_s, statements, _result = _timed(
            lambda: ingestion.ingest(organization, process_batches[IN_PROCESS_BATCHES])
        )
        profile = _profile(world, process_batches[IN_PROCESS_BATCHES + 1 :])
        with _web_server(SERVER_WORKERS) as port:
            _post_all(port, path, token, bodies[:WARMUP_BATCHES], CLIENT_THREADS)
            for turn in range(ROUNDS):
                # One connection: a raw write and an ingest() call, batch by batch in turn.
                for rows, batch in zip(
                    raw_rows[2 * turn :: 2 * ROUNDS],
                    process_batches[turn:IN_PROCESS_BATCHES:ROUNDS],
                    strict=True,
                ):
                    one_latencies.append(_timed(lambda rows=rows: _raw_write(rows))[0])
                    began = time.perf_counter()
                    result = ingestion.ingest(organization, batch)
                    latencies.append(time.perf_counter() - began)
                    if result.accepted != BATCH:
                        raise RuntimeError(f"ingest() stored {result.accepted} of {BATCH}")
                # As many connections as the HTTP clients: raw writes, then HTTP.
                took, times = _raw_threads(raw_rows[2 * turn + 1 :: 2 * ROUNDS], CLIENT_THREADS)
                many_s, many_latencies = many_s + took, many_latencies + times
                took, times, taken = _post_all(
                    port, path, token, bodies[WARMUP_BATCHES + turn :: ROUNDS], CLIENT_THREADS
                )
                wall, http_latencies, accepted = (
                    wall + took,
                    http_latencies + times,
                    accepted + taken,
                )
        if accepted != HTTP_BATCHES * BATCH:
            raise RuntimeError(f"the server stored {accepted} of {HTTP_BATCHES * BATCH} events")
        expected = (COPY_BATCHES * 2 + IN_PROCESS_BATCHES + PROFILED_BATCHES) * BATCH
        expected += (HTTP_BATCHES + WARMUP_BATCHES) * BATCH
        if _stored(organization) != expected:
            raise RuntimeError(f"{_stored(organization)} events stored, {expected} expected")
    finally:
        _forget_world(world)
    one_s, in_process_s = sum(one_latencies), sum(latencies)
    raw_one = COPY_BATCHES * BATCH / one_s
    raw_many = COPY_BATCHES * BATCH / many_s
    raw_best = max(raw_one, raw_many)
    http_rate = accepted / wall
    return {
        "vendor": connection.vendor,
        "batch_events": BATCH,
        "batch_json_bytes": body_bytes,
        "server_workers": SERVER_WORKERS,
        "client_threads": CLIENT_THREADS,
        "http": {
            "batches": HTTP_BATCHES,
            "events": accepted,
            "seconds": wall,
            "events_per_s": http_rate,
            "batches_per_s": HTTP_BATCHES / wall,
            **_percentiles(http_latencies),
        },
        "in_process": {
            "batches": IN_PROCESS_BATCHES,
            "seconds": in_process_s,
            "events_per_s": IN_PROCESS_BATCHES * BATCH / in_process_s,
            "batches_per_s": IN_PROCESS_BATCHES / in_process_s,
            "statements_per_batch": statements.total,
            "writes_per_batch": statements.writes,
            **_percentiles(latencies),
        },
        "raw_one": {
            "batches": COPY_BATCHES,
            "events_per_s": raw_one,
            "batches_per_s": COPY_BATCHES / one_s,
            **_percentiles(one_latencies),
        },
        "raw_threads": {
            "batches": COPY_BATCHES,
            "events_per_s": raw_many,
            "batches_per_s": COPY_BATCHES / many_s,
            **_percentiles(many_latencies),
        },
        # The aim: HTTP at least half of a raw COPY with as many connections.
        "http_over_raw": http_rate / raw_many,
        "http_over_best_raw": http_rate / raw_best,
        "in_process_over_raw": IN_PROCESS_BATCHES * BATCH / in_process_s / raw_one,
        "profile": profile,
    }


def _ingestion_markdown(r: dict[str, Any]) -> str:
    postgres = r["vendor"] == "postgresql"
    raw = "raw COPY" if postgres else "raw bulk INSERT"
    h, p, one, many = r["http"], r["in_process"], r["raw_one"], r["raw_threads"]
    threads = r["client_threads"]

    def row(label: str, figures: dict[str, Any], ratio: str) -> str:
        return (
            f"| {label} | {figures['events_per_s']:,.0f} | {figures['batches_per_s']:.1f} | "
            f"{figures['p50_ms']:.0f} ms | {figures['p99_ms']:.0f} ms | {ratio} |"
        )

    lines = [
        f"Batches of {r['batch_events']:,} events (the usual mix of types, each naming a "
        f"station; attribution finds the shift on duty; ~{r['batch_json_bytes'] / 1024:.0f} KiB "
        "of JSON a batch), one transaction each. The baseline writes the rows ingestion stores "
        "(validated, attributed, viewer ids hashed beforehand, untimed) straight into the "
        "events table"
        + (
            " with `COPY`."
            if postgres
            else ". **SQLite**: these are bulk INSERT figures (`executemany`; SQLite has no "
            "COPY, and one writer at a time)."
        ),
        "",
        "| path | events/s | batches/s | p50 batch | p99 batch | × baseline |",
        "|---|---:|---:|---:|---:|---:|",
        row(
            f"HTTP: gunicorn, {r['server_workers']} uvicorn workers, {threads} client threads "
            f"({h['batches']} batches)",
            h,
            f"**{r['http_over_raw']:.2f}×** of {raw}, {threads} connections",
        ),
        row(
            f"in the process: `ingest()`, 1 thread ({p['batches']} batches)",
            p,
            f"{r['in_process_over_raw']:.2f}× of {raw}, 1 connection",
        ),
        row(f"{raw} of the same rows, {threads} connections (baseline)", many, "1.00×"),
        row(f"{raw} of the same rows, 1 connection (baseline)", one, "1.00×"),
        "",
        f"Through HTTP against the faster raw figure: {r['http_over_best_raw']:.2f}×. "
        f"`ingest()` runs {p['statements_per_batch']} SQL statements a batch "
        f"({p['writes_per_batch']} of them writes). The client threads, the web workers and the "
        "database share this machine's CPUs.",
        "",
        f"Where `ingest()` spends its time (cProfile over {r['profile']['batches']} batches; "
        "the profiler slows Python down more than the database, so the database's shares are "
        "understated):",
        "",
        "| stage | share of `ingest()` |",
        "|---|---:|",
    ]
    for stage in r["profile"]["stages"]:
        lines.append(f"| {stage['stage']} | {stage['share']:.0%} |")
    return "\n".join(lines)


# --- 2. the dashboard over 90 days -----------------------------------------------------------


def _days(today: dt.date) -> list[dt.date]:
    """The DAYS whole local days before today, oldest first."""
    return [today - dt.timedelta(days=DAYS - i) for i in range(DAYS)]


def _per_day(total: int, days: Sequence[dt.date]) -> list[int]:
    """`total` events over the days, weekends a third busier; adds up exactly."""
    weights = [1.3 if day.weekday() >= 5 else 1.0 for day in days]
    counts = [int(total * w / sum(weights)) for w in weights]
    counts[-1] += total - sum(counts)
    return counts


class _DayGenerator:
    """A day of one stream mix's raw events as columns (numpy), seeded: the same every run."""

    def __init__(self, world: World, total: int) -> None:
        self.world = world
        self.rng = np.random.default_rng(90)
        pool = max(10_000, total // 250)
        self.viewers = self.rng.integers(-(2**63), 2**63 - 1, size=pool, dtype=np.int64)
        self.viewer_text = np.array([str(v) for v in self.viewers.tolist()], dtype=object)

    def columns(self, day: dt.date, n: int) -> dict[str, np.ndarray[Any, Any]]:
        rng = self.rng
        kind = rng.choice(len(TYPES), size=n, p=WEIGHTS)
        stream = rng.integers(0, STREAMS, size=n)
        starts_at, _ends_at = _shift_window(day)
        base = np.datetime64(starts_at.replace(tzinfo=None), "us")
        offsets = np.sort(rng.integers(0, SHIFT_HOURS * 3600 * 1_000_000, size=n))
        occurred = base + offsets.astype("timedelta64[us]")
        viewer_kinds = np.isin(kind, [TYPES.index(t) for t in WITH_VIEWER])
        has_viewer = viewer_kinds & (rng.random(n) < 0.9)
        viewer = (rng.random(n) ** 2 * len(self.viewers)).astype(np.int64)
        value = np.full(n, -1, dtype=np.int64)
        views, ends = kind == TYPES.index("view"), kind == TYPES.index("session_end")
        value[views] = rng.integers(0, 3_001, size=int(views.sum()))
        value[ends] = rng.integers(10, 1_801, size=int(ends.sum()))
        value[kind == TYPES.index("custom")] = 1
        return {
            "kind": kind,
            "stream": stream,
            "occurred": occurred,
            "has_viewer": has_viewer,
            "viewer": viewer,
            "value": value,
        }


_NAMES = {"custom": "coupon.claimed"}
_PROPERTIES = {"custom": '{"coupon": "SPRING"}'}


def _copy_day(generator: _DayGenerator, day: dt.date, n: int) -> None:
    """One local day's events COPied into the partitioned table (PostgreSQL), one transaction."""
    world = generator.world
    org = world.organization.pk
    c = generator.columns(day, n)
    stamps = np.datetime_as_string(c["occurred"], unit="us", timezone="UTC").tolist()
    viewers = np.where(c["has_viewer"], generator.viewer_text[c["viewer"]], "\\N").tolist()
    middle = [
        f"{world.employments[s]}\t{world.stations[s]}\t{world.shifts[(s, day)]}"
        for s in range(STREAMS)
    ]
    heads = [f"{t}\t{_NAMES.get(t, '')}" for t in TYPES]
    tails = [_PROPERTIES.get(t, "{}") for t in TYPES]
    sessions = [t in WITH_SESSION for t in TYPES]
    prefix = f"d{day:%Y%m%d}-"
    columns = ", ".join(ingestion.COLUMNS)
    copying = f"COPY {Event._meta.db_table} ({columns}) FROM STDIN"
    with transaction.atomic(), connection.cursor() as cursor, cursor.copy(copying) as copy:
        for chunk in range(0, n, COPY_CHUNK):
            lines = []
            for i, k, s, stamp, viewer, value in zip(
                range(chunk, min(chunk + COPY_CHUNK, n)),
                c["kind"][chunk : chunk + COPY_CHUNK].tolist(),
                c["stream"][chunk : chunk + COPY_CHUNK].tolist(),
                stamps[chunk : chunk + COPY_CHUNK],
                viewers[chunk : chunk + COPY_CHUNK],
                c["value"][chunk : chunk + COPY_CHUNK].tolist(),
                strict=True,
            ):
                session = f"s-{i >> 3}" if sessions[k] else ""
                shown = value if value >= 0 else "\\N"
                lines.append(
                    f"{org}\t{prefix}{i}\t{heads[k]}\t{stamp}\t{stamp}\t{middle[s]}\t"
                    f"{viewer}\t{session}\t{shown}\t{tails[k]}\t{RETENTION}\n"
                )
            copy.write("".join(lines))


def _insert_day(generator: _DayGenerator, day: dt.date, n: int) -> None:
    """One local day's events bulk-inserted (SQLite), one transaction."""
    world = generator.world
    org = world.organization.pk.hex
    c = generator.columns(day, n)
    stamps = np.datetime_as_string(c["occurred"], unit="us").tolist()
    hexes = [
        (world.employments[s].hex, world.stations[s].hex, world.shifts[(s, day)].hex)
        for s in range(STREAMS)
    ]
    viewers = generator.viewers.tolist()
    prefix = f"d{day:%Y%m%d}-"
    columns = ", ".join(ingestion.COLUMNS)
    placeholders = ", ".join(["%s"] * len(ingestion.COLUMNS))
    sql = f"INSERT INTO {Event._meta.db_table} ({columns}) VALUES ({placeholders})"  # noqa: S608
    with transaction.atomic(), connection.cursor() as cursor:
        for chunk in range(0, n, COPY_CHUNK):
            rows = []
            for i, k, s, stamp, has, viewer, value in zip(
                range(chunk, min(chunk + COPY_CHUNK, n)),
                c["kind"][chunk : chunk + COPY_CHUNK].tolist(),
                c["stream"][chunk : chunk + COPY_CHUNK].tolist(),
                stamps[chunk : chunk + COPY_CHUNK],
                c["has_viewer"][chunk : chunk + COPY_CHUNK].tolist(),
                c["viewer"][chunk : chunk + COPY_CHUNK].tolist(),
                c["value"][chunk : chunk + COPY_CHUNK].tolist(),
                strict=True,
            ):
                kind = TYPES[k]
                at = stamp.replace("T", " ")
                rows.append(
                    (
                        org,
                        f"{prefix}{i}",
                        kind,
                        _NAMES.get(kind, ""),
                        at,
                        at,
                        *hexes[s],
                        viewers[viewer] if has else None,
                        f"s-{i >> 3}" if kind in WITH_SESSION else "",
                        float(value) if value >= 0 else None,
                        _PROPERTIES.get(kind, "{}"),
                        RETENTION,
                    )
                )
            cursor.executemany(sql, rows)


def _load(world: World, days: Sequence[dt.date], total: int) -> float:
    """Writes `total` raw events over the days; returns the seconds it took."""
    generator = _DayGenerator(world, total)
    started = time.perf_counter()
    if connection.vendor == "postgresql":
        partitions.ensure(RETENTION, days)
        for day, n in zip(days, _per_day(total, days), strict=True):
            _copy_day(generator, day, n)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Event._meta.db_table}")
    else:
        for day, n in zip(days, _per_day(total, days), strict=True):
            _insert_day(generator, day, n)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Event._meta.db_table}")
    return time.perf_counter() - started


def _event_hours(days: Sequence[dt.date]) -> list[dt.datetime]:
    hours = []
    for day in days:
        starts_at, ends_at = _shift_window(day)
        hours += marks.hours_between(starts_at, ends_at)
    return hours


# The same answer from the raw events: counts per local day and over the range, and unique
# viewers exactly (COUNT DISTINCT). `{day}` is the local day of occurred_at.
_RAW_FIGURES = """
    count(*) FILTER (WHERE type = 'visit'),
    count(*) FILTER (WHERE type = 'interaction'),
    count(*) FILTER (WHERE type = 'comment'),
    count(*) FILTER (WHERE type = 'handoff'),
    count(*) FILTER (WHERE type = 'session_start'),
    count(*) FILTER (WHERE type = 'view'),
    coalesce(sum(value) FILTER (WHERE type = 'view'), 0),
    coalesce(max(value) FILTER (WHERE type = 'view'), 0),
    count(DISTINCT viewer_hash)
"""
RAW_FIELDS = (
    "visits",
    "interactions",
    "comments",
    "handoffs",
    "sessions",
    "view_samples",
    "view_sum",
    "peak_viewers",
    "unique_viewers",
)


class RawDashboard:
    """One SQL GROUP BY day over the raw events: the dashboard's answer without rollups."""

    def __init__(self, organization: Organization, start: dt.datetime, end: dt.datetime) -> None:
        table = Event._meta.db_table
        where = "organization_id = %s AND occurred_at >= %s AND occurred_at < %s"
        if connection.vendor == "postgresql":
            # The zone is a constant of this module, not a client's value.
            day = f"(occurred_at AT TIME ZONE '{ZONE.key}')::date"
            self.sql = (
                f"SELECT {day}, {_RAW_FIGURES} FROM {table} "  # noqa: S608
                f"WHERE {where} GROUP BY GROUPING SETS (({day}), ())"
            )
            self.params: list[Any] = [organization.pk, start, end]
        else:
            # SQLite knows no zones: a fixed offset (the benchmark's zone has no summer time).
            offset = dt.datetime(2026, 1, 1, tzinfo=ZONE).utcoffset()
            assert offset is not None and offset == dt.datetime(2026, 7, 1, tzinfo=ZONE).utcoffset()
            hours = f"'{offset.total_seconds() / 3600:+.0f} hours'"
            self.sql = (
                f"SELECT date(occurred_at, {hours}), {_RAW_FIGURES} FROM {table} "  # noqa: S608
                f"WHERE {where} GROUP BY 1 UNION ALL SELECT NULL, {_RAW_FIGURES} FROM {table} "
                f"WHERE {where}"
            )
            moments = [organization.pk.hex, _naive(start), _naive(end)]
            self.params = moments * 2

    def __call__(self) -> dict[dt.date | None, dict[str, float]]:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            rows = cursor.fetchall()
        answer = {}
        for day, *figures in rows:
            key = dt.date.fromisoformat(day) if isinstance(day, str) else day
            answer[key] = dict(zip(RAW_FIELDS, (float(f or 0) for f in figures), strict=True))
        return answer


def _naive(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")


def _compare(series: kpis.Series, raw: dict[dt.date | None, dict[str, float]]) -> dict[str, Any]:
    """Whether the rollups' answer is the raw events' answer: counts equal, unique viewers
    within the sketch's error."""
    mismatched: list[str] = []
    worst, worst_at = 0.0, ""
    pairs: list[tuple[str, kpis.Tally, dict[str, float]]] = [
        (str(bucket.key), tally, raw.get(bucket.key, dict.fromkeys(RAW_FIELDS, 0.0)))
        for bucket, tally in series.buckets
    ]
    pairs.append(("totals", series.totals, raw[None]))
    for label, tally, expected in pairs:
        for name in RAW_FIELDS:
            got, want = float(getattr(tally, name)), expected[name]
            if name == "unique_viewers":
                error = abs(got - want) / want if want else float(got != 0)
                if error >= worst:
                    worst, worst_at = error, f"{label}: {got:.0f} estimated, {want:.0f} exact"
                if error > HLL_TOLERANCE:
                    mismatched.append(f"{label} {name}: {got:.0f} vs {want:.0f}")
            elif name == "view_sum" and abs(got - want) > 1e-6 * max(abs(want), 1):
                mismatched.append(f"{label} {name}: {got} vs {want}")
            elif name != "view_sum" and got != want:
                mismatched.append(f"{label} {name}: {got:.0f} vs {want:.0f}")
    return {
        "buckets": len(series.buckets),
        "agree": not mismatched,
        "mismatches": mismatched[:10],
        "worst_unique_viewer_error": worst,
        "worst_unique_viewers": worst_at,
    }


def _rollup_run() -> Any:
    from ironbowl.analytics import rollups  # written beside this benchmark; imported late

    return rollups.run()


def _dashboard_and_late(*, iterations: int) -> dict[str, Any]:
    total = events_wanted()
    today = timezone.now().astimezone(ZONE).date()
    days = _days(today)
    world = _world("bench-dashboard", days)
    organization = world.organization
    try:
        load_s = _load(world, days, total)
        stored = _stored(organization)
        if stored != total:
            raise RuntimeError(f"{stored:,} events loaded, {total:,} wanted")
        hours = _event_hours(days)
        marks.mark_hours(organization, hours)
        rollup_s, rollup_statements, _result = _timed(_rollup_run)
        rollup_rows = Rollup.objects.for_organization(organization).count()
        if RollupMark.objects.for_organization(organization).exists():
            raise RuntimeError("the rollup run left marks behind")
        start = kpis.local_midnight(days[0], ZONE)
        end = kpis.local_midnight(today, ZONE)
        span = kpis.window(organization, start, end, kpis.DAY, now=timezone.now())
        raw = RawDashboard(organization, start, end)
        first_raw, _statements, answer = _timed(raw)
        agreement = _compare(kpis.series(organization, span), answer)
        dashboard = _measure_dashboard(
            world, span, raw, days, first_raw=first_raw, iterations=iterations
        )
        late = _late(world, days, total, rollup_s, rollup_statements.total)
    finally:
        _forget_world(world)
    return {
        "events": total,
        "days": DAYS,
        "streams": STREAMS,
        "viewer_pool": max(10_000, total // 250),
        "load_s": load_s,
        "load_events_per_s": total / load_s,
        "marked_hours": len(hours),
        "rollup_s": rollup_s,
        "rollup_events_per_s": total / rollup_s,
        "rollup_statements": rollup_statements.total,
        "rollup_writes": rollup_statements.writes,
        "rollup_rows": rollup_rows,
        "agreement": agreement,
        "dashboard": dashboard,
        "late": late,
    }


def _measure_dashboard(
    world: World,
    span: kpis.Window,
    raw: RawDashboard,
    days: Sequence[dt.date],
    *,
    first_raw: float,
    iterations: int,
) -> dict[str, Any]:
    """The selector, the endpoint and the raw GROUP BY, interleaved: each round one raw query,
    then the same number of selector and endpoint calls."""
    organization = world.organization
    _key, token = services.create_api_key(
        SYSTEM, organization, name="dashboard", scopes=[Permission.ANALYTICS_VIEW]
    )
    client = Client()
    url = (
        f"/api/v1/orgs/{organization.slug}/analytics/kpis/"
        f"?from={days[0]}&to={days[-1]}&granularity=day"
    )

    def endpoint() -> None:
        response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")

    def selector() -> None:
        kpis.series(organization, span)

    for call in (selector, endpoint, selector, endpoint):  # warm-up
        call()
    endpoint_statements = _timed(endpoint)[1].total
    selector_statements = _timed(selector)[1].total
    # As many raw queries as fit in about a minute (at least 3, at most 20).
    rounds = max(3, min(20, int(60 / max(first_raw, 1e-3))))
    per_round = max(1, max(iterations // 5, 20) // rounds)
    samples: dict[str, list[float]] = {"raw": [first_raw], "selector": [], "endpoint": []}
    for _ in range(rounds):
        samples["raw"].append(_timed(raw)[0])
        for _ in range(per_round):
            samples["selector"].append(_timed(selector)[0])
            samples["endpoint"].append(_timed(endpoint)[0])
    raw_p50 = _percentiles(samples["raw"])["p50_ms"]
    cases = {}
    for name, statements in (
        ("selector", selector_statements),
        ("endpoint", endpoint_statements),
        ("raw", 1),
    ):
        figures = _percentiles(samples[name])
        cases[name] = {
            **figures,
            "calls": len(samples[name]),
            "statements": statements,
            "over_raw": figures["p50_ms"] / raw_p50,
        }
    return cases


# --- 3. late events --------------------------------------------------------------------------


def _late(
    world: World,
    days: Sequence[dt.date],
    total: int,
    initial_s: float,
    initial_statements: int,
) -> dict[str, Any]:
    """A day's worth of events for the day LATE_DAY_BACK days ago arrives late (through
    `ingest()`, which marks their hours); the rollup run absorbs them. Then the same day is
    rolled up from scratch (its rollup rows deleted, all its hours marked)."""
    organization = world.organization
    day = days[-LATE_DAY_BACK]
    count = _per_day(total, days)[-LATE_DAY_BACK]
    starts_at, ends_at = _shift_window(day)
    rng = random.Random(30)
    now = timezone.now()
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        batch = _json_events(
            rng, f"late{first}", min(BATCH, count - first), world.stations, starts_at, ends_at
        )
        result = ingestion.ingest(organization, batch, now=now)
        if result.accepted != len(batch):
            raise RuntimeError(f"late ingest stored {result.accepted} of {len(batch)}")
    ingest_s = time.perf_counter() - started
    pending = RollupMark.objects.for_organization(organization)
    marked, marked_hours = pending.count(), pending.values("hour").distinct().count()
    absorb_s, absorb_statements, _result = _timed(_rollup_run)
    span = kpis.day_window(
        organization,
        kpis.local_midnight(day, ZONE),
        kpis.local_midnight(day + dt.timedelta(days=1), ZONE),
        now=now,
    )
    # The day's counts must now hold the late events.
    raw = RawDashboard(organization, span.start, span.end)()
    agreement = _compare(kpis.series(organization, span), raw)

    local_day = [
        hour
        for hour in marks.hours_between(span.start, span.end)
        if hour.astimezone(ZONE).date() == day
    ]
    Rollup.objects.for_organization(organization).filter(
        bucket__gte=span.start, bucket__lt=span.end
    ).delete()
    marks.mark_hours(organization, local_day)
    scratch_s, scratch_statements, _result = _timed(_rollup_run)
    again = _compare(kpis.series(organization, span), raw)
    return {
        "day": day.isoformat(),
        "late_events": count,
        "ingest_s": ingest_s,
        "ingest_events_per_s": count / ingest_s,
        "marks": marked,
        "marked_hours": marked_hours,
        "absorb_s": absorb_s,
        "absorb_statements": absorb_statements.total,
        "absorb_writes": absorb_statements.writes,
        "absorb_agree": agreement["agree"],
        "scratch_hours": len(local_day),
        "scratch_s": scratch_s,
        "scratch_statements": scratch_statements.total,
        "scratch_writes": scratch_statements.writes,
        "scratch_agree": again["agree"],
        "absorb_over_scratch": absorb_s / scratch_s,
        "absorb_over_initial": absorb_s / initial_s,
        "initial_statements": initial_statements,
        "mismatches": agreement["mismatches"] + again["mismatches"],
    }


def _dashboard_markdown(d: dict[str, Any]) -> str:
    agreement = d["agreement"]
    cases = d["dashboard"]
    lines = [
        f"One organization on plan “standard” (90-day retention class), {d['streams']} "
        f"employments each at its own station, on air 08:00–24:00 ({ZONE.key}) every day: "
        f"**{d['events']:,} raw events** over {d['days']} days (the usual mix of types; viewers "
        f"drawn from a pool of {d['viewer_pool']:,}, a few of them often). Written with "
        + ("COPY" if connection.vendor == "postgresql" else "bulk INSERT")
        + f" in {d['load_s']:.0f} s ({d['load_events_per_s']:,.0f} events/s), then "
        f"{d['marked_hours']:,} hours marked.",
        "",
        f"Initial rollup of {d['events']:,} events: **{d['rollup_s']:.1f} s** "
        f"({d['rollup_events_per_s']:,.0f} events/s), {d['rollup_statements']:,} statements "
        f"({d['rollup_writes']:,} writes), {d['rollup_rows']:,} rollup rows.",
        "",
        f"The dashboard: KPIs for {d['days']} days by day and their totals, interleaved "
        "against the raw query.",
        "",
        "| case | p50 | p99 | calls | statements | × baseline (p50) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "raw": "one SQL GROUP BY day over the raw events (baseline)",
        "selector": "`kpis.series` over the rollups",
        "endpoint": "GET …/analytics/kpis/ through the full stack (test client)",
    }
    for name in ("raw", "selector", "endpoint"):
        case = cases[name]
        lines.append(
            f"| {labels[name]} | {case['p50_ms']:.1f} ms | {case['p99_ms']:.1f} ms | "
            f"{case['calls']} | {case['statements']} | {case['over_raw']:.4f}× |"
        )
    lines += [
        "",
        (
            f"The two answers agree over {agreement['buckets']} days and the totals: counts "
            "equal, unique viewers within "
            f"{agreement['worst_unique_viewer_error']:.1%} ({agreement['worst_unique_viewers']}; "
            f"the tolerance: {HLL_TOLERANCE:.1%}, four standard errors of the sketch)."
            if agreement["agree"]
            else f"**The answers disagree**: {'; '.join(agreement['mismatches'])}"
        ),
    ]
    return "\n".join(lines)


def _late_markdown(d: dict[str, Any]) -> str:
    late = d["late"]
    return "\n".join(
        [
            f"After the rollups are current, {late['late_events']:,} late events for "
            f"{late['day']} ({LATE_DAY_BACK} days back; as many as that day already had) go "
            f"through `ingest()` in batches of {BATCH:,} ({late['ingest_events_per_s']:,.0f} "
            f"events/s), leaving {late['marks']:,} marks on {late['marked_hours']} hours; then "
            "the rollup run absorbs them.",
            "",
            "| rollup run | time | statements | writes | × absorbing |",
            "|---|---:|---:|---:|---:|",
            f"| absorbing the late day ({late['marked_hours']} marked hours) | "
            f"{late['absorb_s']:.2f} s | {late['absorb_statements']:,} | "
            f"{late['absorb_writes']:,} | 1.00× |",
            f"| that day from scratch (its rollups deleted, {late['scratch_hours']} hours "
            f"marked) | {late['scratch_s']:.2f} s | {late['scratch_statements']:,} | "
            f"{late['scratch_writes']:,} | {late['scratch_s'] / late['absorb_s']:.2f}× |",
            f"| initial rollup of all {d['events']:,} events | {d['rollup_s']:.1f} s | "
            f"{late['initial_statements']:,} | {d['rollup_writes']:,} | "
            f"{d['rollup_s'] / late['absorb_s']:.1f}× |",
            "",
            (
                "Afterwards the day's KPIs equal the raw events' counts, late ones included, "
                "both after absorbing and from scratch."
                if late["absorb_agree"] and late["scratch_agree"]
                else f"**Disagreement after the late day**: {'; '.join(late['mismatches'])}"
            ),
        ]
    )


def _drop_events() -> None:
    """Empties the events table: the entries after this one do not need millions of rows."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {Event._meta.db_table}")
        else:
            cursor.execute(f"DELETE FROM {Event._meta.db_table}")  # noqa: S608


# --- the entry ---------------------------------------------------------------------------------


def run(*, iterations: int, warmup: int) -> BenchmarkSection:
    del warmup  # each part warms up on its own
    partitions.forget()  # other entries' rolled-back transactions may have dropped partitions
    data: dict[str, Any] = {}
    try:
        data["ingestion"] = _ingestion()
        data["dashboard"] = _dashboard_and_late(iterations=iterations)
    finally:
        _drop_events()
    markdown = "\n".join(
        [
            "### Ingestion",
            "",
            _ingestion_markdown(data["ingestion"]),
            "",
            f"### The dashboard over {DAYS} days",
            "",
            _dashboard_markdown(data["dashboard"]),
            "",
            "### Absorbing a day of late events",
            "",
            _late_markdown(data["dashboard"]),
        ]
    )
    return BenchmarkSection(
        name="analytics",
        title="Analytics: ingestion, the dashboard over 90 days, late events",
        markdown=markdown,
        data=data,
    )
