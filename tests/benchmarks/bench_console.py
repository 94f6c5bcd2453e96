"""The console under load: time to first byte of the dashboard and the roster for a large
organization, and the on-air board's websocket fan-out.

1. Time to first byte (TTFB) over HTTP, with a signed-in session cookie (a real sign-in through
   the sign-in page), of the dashboard and of the roster's current week for an organization with
   BENCH_CONSOLE_STATIONS stations (default 500) and 4 employments each (2,000), one daily
   schedule per station and three weeks of its shifts (10,500), 200 of today's on duty. The
   server is production's: gunicorn with 2 uvicorn workers on a free local port, on the
   throwaway database. Baselines in the same run, interleaved round-robin: the TTFB of /healthz
   (answered before any view: the server, the HTTP round trip and the middleware in front of
   it) and the raw SQL that fetches the rows each page shows (cursor.execute in this process,
   all rows fetched): the dashboard's first 50 on-air shifts with their station, avatar and
   position, and their count; the roster's first page of 50 stations by name with their shifts
   of the week.
2. Websocket fan-out of one on-air board update: 1, 100 and 500 consoles (real websocket
   clients, `websockets`' asyncio client, each with the session cookie and the page's Origin)
   connected to /ws/console/orgs/{org}/board/ of three organizations, and one update published
   to each organization's board in turn with the board's own publish function
   (`console.board.apublish_board`, a stats update of an on-air shift); the time from the call
   until the last console of that organization has the message (and until the median one).
   With REDIS_URL (production's channel layer) the consoles connect to the same gunicorn server
   and the update goes through Redis from this process; without it (the embedded default, an
   in-process channel layer) the server is uvicorn in a thread of this process and the update
   is published on the server's event loop.

Needs Django set up on a throwaway database: `tests.benchmarks.run` does that. The rows are
committed (the web server is another process); at the end, on error too, the shifts and
schedules are deleted (nothing is left due for the duty tick's entry), the rest stays.
Benchmarks are not tests: nothing here fails because something is slow.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import os
import re
import socket
import statistics
import threading
import time
import uuid
import zoneinfo
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection, connections

from avatars.models import Employment, Position
from ironbowl.console import board
from scheduling.models import Schedule, Shift, ShiftState, Station, StationKind
from tenants.models import Membership, Organization
from tenants.roles import Role
from tests import factories
from tests.avatars import factories as avatar_factories
from tests.benchmarks.bench_analytics import _web_server
from tests.benchmarks.bench_api import BenchmarkSection

STATIONS_ENV = "BENCH_CONSOLE_STATIONS"
DEFAULT_STATIONS = 500
HIRES_PER_STATION = 4
ON_AIR_SHARE = 0.4  # of the stations, on duty now (200 of 500)
WEEKS = 3  # of shifts: last week, this one, next one
PAGE_ROWS = 50  # the dashboard's on-air rows, the roster's stations a page
CONSOLE_COUNTS = (1, 100, 500)
FANOUT_ROUNDS = 30
FANOUT_WARMUP = 3
CONNECT_BATCH = 50
SERVER_WORKERS = 2
ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
BOARD_PATH = "/ws/console/orgs/{slug}/board/"


def stations_wanted() -> int:
    return int(os.environ.get(STATIONS_ENV, DEFAULT_STATIONS))


# --- statistics ----------------------------------------------------------------------------------


def _summary(samples_s: Sequence[float]) -> dict[str, float]:
    """Median, p95 and mean of seconds, in milliseconds."""
    ordered = sorted(samples_s)
    p95 = statistics.quantiles(ordered, n=100, method="inclusive")[94] if len(ordered) > 1 else 0
    return {
        "n": len(ordered),
        "p50_ms": statistics.median(ordered) * 1e3,
        "p95_ms": (p95 or ordered[-1]) * 1e3,
        "mean_ms": statistics.fmean(ordered) * 1e3,
    }


# --- the organization ----------------------------------------------------------------------------


@dataclass
class World:
    organization: Organization
    email: str
    boards: dict[int, Organization]  # consoles connected -> the organization they watch
    stations: list[Station]
    on_air_shift: uuid.UUID
    on_air: int
    week: tuple[dt.datetime, dt.datetime]
    extra: list[Organization] = field(default_factory=list)


def _week_of(day: dt.date) -> tuple[dt.date, dt.datetime, dt.datetime]:
    monday = day - dt.timedelta(days=day.weekday())
    start = dt.datetime.combine(monday, dt.time(0), tzinfo=ZONE)
    return monday, start.astimezone(dt.UTC), (start + dt.timedelta(days=7)).astimezone(dt.UTC)


def _world(count: int) -> World:
    """The organization (plan "standard", Asia/Shanghai), its owner, and its rows in bulk."""
    organization = Organization.objects.create(
        slug="bench-console", name="Bench Console", plan="standard", time_zone=str(ZONE)
    )
    owner = factories.UserFactory(email="owner@bench-console.example")
    Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    vendor = factories.OrganizationFactory(slug="bench-console-vendor", kind="vendor")
    avatars = [
        avatar_factories.ready_avatar(organization=vendor, visibility="public") for _ in range(20)
    ]
    positions = [
        Position(id=uuid.uuid4(), organization=organization, title=f"Host {i:02d}")
        for i in range(20)
    ]
    Position.objects.unscoped_dangerously().bulk_create(positions)
    kinds = (StationKind.LIVE_ROOM, StationKind.WEB_WIDGET, StationKind.KIOSK)
    stations = [
        Station(id=uuid.uuid4(), organization=organization, name=f"Room {i:03d}", kind=kinds[i % 3])
        for i in range(count)
    ]
    Station.objects.unscoped_dangerously().bulk_create(stations)
    hires = [
        Employment(
            id=uuid.uuid4(),
            organization=organization,
            avatar=avatars[i % len(avatars)],
            avatar_version=avatars[i % len(avatars)].current_version,
            position=positions[i % len(positions)],
            rate=Decimal("1999.00"),
            starts_on=dt.date(2025, 1, 1),
            status="active",
        )
        for i in range(count * HIRES_PER_STATION)
    ]
    Employment.objects.unscoped_dangerously().bulk_create(hires, batch_size=1_000)

    today = dt.datetime.now(ZONE).date()
    monday, week_start, week_end = _week_of(today)
    first_day = monday - dt.timedelta(days=7)
    plans = [
        Schedule(
            id=uuid.uuid4(),
            organization=organization,
            employment=hires[i * HIRES_PER_STATION],
            station=station,
            rrule="FREQ=DAILY",
            start_time=dt.time(0),
            duration_minutes=24 * 60,
            valid_from=first_day,
        )
        for i, station in enumerate(stations)
    ]
    Schedule.objects.unscoped_dangerously().bulk_create(plans, batch_size=1_000)
    shifts = []
    on_air_shift = None
    on_air = int(count * ON_AIR_SHARE)
    for day_index in range(WEEKS * 7):
        day = first_day + dt.timedelta(days=day_index)
        starts_at = dt.datetime.combine(day, dt.time(0), tzinfo=ZONE).astimezone(dt.UTC)
        ends_at = starts_at + dt.timedelta(days=1)
        for i, plan in enumerate(plans):
            if day < today:
                state, on_duty_at, ended_at = ShiftState.ENDED, starts_at, ends_at
            elif day == today and i < on_air:
                state, on_duty_at, ended_at = ShiftState.ON_DUTY, starts_at, None
            else:
                state, on_duty_at, ended_at = ShiftState.PLANNED, None, None
            shift = Shift(
                id=uuid.uuid4(),
                organization=organization,
                schedule=plan,
                # The station's four hires take turns, day by day.
                employment=hires[i * HIRES_PER_STATION + day_index % HIRES_PER_STATION],
                station=plan.station,
                starts_at=starts_at,
                ends_at=ends_at,
                state=state,
                on_duty_at=on_duty_at,
                ended_at=ended_at,
            )
            shifts.append(shift)
            if on_air_shift is None and state == ShiftState.ON_DUTY:
                on_air_shift = shift.id
    Shift.objects.unscoped_dangerously().bulk_create(shifts, batch_size=2_000)
    assert on_air_shift is not None

    # The organizations whose boards the fan-out publishes to: one console, 100, 500.
    boards: dict[int, Organization] = {}
    extra = []
    for consoles in CONSOLE_COUNTS:
        if consoles == max(CONSOLE_COUNTS):
            boards[consoles] = organization
            continue
        other = Organization.objects.create(
            slug=f"bench-console-{consoles}", name=f"Bench Console {consoles}", plan="standard"
        )
        Membership.objects.create(organization=other, user=owner, role=Role.OWNER)
        boards[consoles] = other
        extra.append(other)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return World(
        organization=organization,
        email=owner.email,
        boards=boards,
        stations=sorted(stations, key=lambda s: (s.name, str(s.id))),
        on_air_shift=on_air_shift,
        on_air=on_air,
        week=(week_start, week_end),
        extra=extra,
    )


def _forget(world: World) -> None:
    """Nothing left due for the entries after this one."""
    Shift.objects.unscoped_dangerously().filter(organization=world.organization).delete()
    Schedule.objects.unscoped_dangerously().filter(organization=world.organization).delete()


# --- HTTP ----------------------------------------------------------------------------------------


def _cookies_of(response: http.client.HTTPResponse) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


def _sign_in(port: int, email: str) -> str:
    """Sign in through the console's sign-in page; returns the Cookie header to send."""
    http_connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        http_connection.request("GET", "/console/sign-in/")
        page = http_connection.getresponse()
        cookies = _cookies_of(page)
        html = page.read().decode()
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert page.status == 200 and found, page.status
        body = urlencode(
            {
                "csrfmiddlewaretoken": found.group(1),
                "email": email,
                "password": factories.PASSWORD,
                "next": "/console/",
            }
        )
        http_connection.request(
            "POST",
            "/console/sign-in/",
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={cookies['csrftoken']}",
            },
        )
        answer = http_connection.getresponse()
        answer.read()
        cookies.update(_cookies_of(answer))
        assert answer.status == 302 and "sessionid" in cookies, (answer.status, cookies)
    finally:
        http_connection.close()
    return f"sessionid={cookies['sessionid']}; csrftoken={cookies['csrftoken']}"


class Page:
    """GET one path again and again over one keep-alive connection; times the first byte."""

    def __init__(self, port: int, path: str, cookie: str | None) -> None:
        self.path = path
        self.headers = {"Cookie": cookie} if cookie else {}
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.ttfb: list[float] = []
        self.total: list[float] = []
        self.bytes = 0

    def fetch(self) -> tuple[float, float, bytes]:
        try:
            started = time.perf_counter()
            self.http.request("GET", self.path, headers=self.headers)
            response = self.http.getresponse()  # the status line and headers have arrived
        except (http.client.RemoteDisconnected, ConnectionError):
            # The server closed the idle keep-alive connection (uvicorn: after 5 s): again, on
            # a new one.
            self.http.close()
            started = time.perf_counter()
            self.http.request("GET", self.path, headers=self.headers)
            response = self.http.getresponse()
        first_byte = time.perf_counter() - started
        body = response.read()
        total = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"GET {self.path} answered {response.status}: {body[:300]!r}")
        return first_byte, total, body

    def timed(self) -> None:
        first_byte, total, body = self.fetch()
        self.ttfb.append(first_byte)
        self.total.append(total)
        self.bytes = len(body)

    def close(self) -> None:
        self.http.close()


class RawQuery:
    """The rows a page shows, fetched with one hand-written query (no ORM)."""

    def __init__(self, sql: str, params: Sequence[Any]) -> None:
        self.sql, self.params = sql, list(params)
        self.samples: list[float] = []
        self.rows = 0

    def fetch(self) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            return list(cursor.fetchall())

    def timed(self) -> None:
        started = time.perf_counter()
        rows = self.fetch()
        self.samples.append(time.perf_counter() - started)
        self.rows = len(rows)


def _tables() -> dict[str, str]:
    from avatars.models import Avatar

    return {
        "shift": Shift._meta.db_table,
        "station": Station._meta.db_table,
        "employment": Employment._meta.db_table,
        "avatar": Avatar._meta.db_table,
        "position": Position._meta.db_table,
    }


def _dashboard_sql(world: World) -> RawQuery:
    """The dashboard's on-air rows: the first 50 shifts under way by station, with their
    station, avatar and position, and how many there are."""
    t = _tables()
    started = [ShiftState.WARMING, ShiftState.ON_DUTY, ShiftState.TAKEN_OVER]
    marks = ", ".join(["%s"] * len(started))
    sql = f"""
        SELECT sh.id, sh.state, sh.starts_at, sh.ends_at, st.name, st.kind, av.name_en,
               av.name_zh, po.title, (SELECT COUNT(*) FROM {t["shift"]} c
                                      WHERE c.organization_id = %s AND c.state IN ({marks}))
        FROM {t["shift"]} sh
        JOIN {t["station"]} st ON st.id = sh.station_id
        JOIN {t["employment"]} em ON em.id = sh.employment_id
        JOIN {t["avatar"]} av ON av.id = em.avatar_id
        JOIN {t["position"]} po ON po.id = em.position_id
        WHERE sh.organization_id = %s AND sh.state IN ({marks})
        ORDER BY st.name, sh.starts_at, sh.id
        LIMIT {PAGE_ROWS}
    """  # noqa: S608 - table names from the models, values as parameters
    org = world.organization.pk
    return RawQuery(sql, [_param(org), *started, _param(org), *started])


def _roster_sql(world: World) -> RawQuery:
    """The roster's first page: 50 stations by name and their shifts of the week, with the
    employee's avatar."""
    t = _tables()
    sql = f"""
        SELECT st.id, st.name, st.kind, sh.id, sh.state, sh.starts_at, sh.ends_at, av.name_en
        FROM (SELECT id, name, kind FROM {t["station"]} WHERE organization_id = %s
              ORDER BY name, id LIMIT {PAGE_ROWS}) st
        LEFT JOIN {t["shift"]} sh ON sh.station_id = st.id AND sh.organization_id = %s
             AND sh.starts_at < %s AND sh.ends_at > %s
        LEFT JOIN {t["employment"]} em ON em.id = sh.employment_id
        LEFT JOIN {t["avatar"]} av ON av.id = em.avatar_id
        ORDER BY st.name, st.id, sh.starts_at
    """  # noqa: S608 - table names from the models, values as parameters
    org = _param(world.organization.pk)
    start, end = (connection.ops.adapt_datetimefield_value(at) for at in world.week)
    return RawQuery(sql, [org, org, end, start])


def _param(value: uuid.UUID) -> Any:
    # SQLite stores UUIDs as 32 hex digits; PostgreSQL has a uuid type.
    return value.hex if connection.vendor == "sqlite" else value


def _pages(port: int, cookie: str, world: World, requests: int, warmup: int) -> dict[str, Any]:
    slug = world.organization.slug
    healthz = Page(port, "/healthz", None)
    dashboard = Page(port, f"/console/o/{slug}/", cookie)
    roster = Page(port, f"/console/o/{slug}/roster/", cookie)
    dashboard_sql, roster_sql = _dashboard_sql(world), _roster_sql(world)
    cases: dict[str, Page | RawQuery] = {
        "healthz": healthz,
        "dashboard": dashboard,
        "roster": roster,
        "dashboard_sql": dashboard_sql,
        "roster_sql": roster_sql,
    }
    # The pages show what the baselines fetch.
    first, page_end = world.stations[0].name, world.stations[PAGE_ROWS - 1].name
    html = dashboard.fetch()[2].decode()
    assert first in html, "the dashboard does not show the first station on air"
    html = roster.fetch()[2].decode()
    assert first in html and page_end in html, "the roster does not show its first page"
    assert world.stations[PAGE_ROWS].name not in html, "the roster shows more than a page"
    dashboard_rows = dashboard_sql.fetch()
    assert len(dashboard_rows) == min(PAGE_ROWS, world.on_air)
    assert dashboard_rows[0][-1] == world.on_air
    roster_rows = roster_sql.fetch()
    assert {row[1] for row in roster_rows} == {s.name for s in world.stations[:PAGE_ROWS]}

    names = list(cases)
    for _ in range(warmup):
        for case in cases.values():
            case.fetch()
    for index in range(requests):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:  # rotated: no case always follows another
            cases[name].timed()
    results: dict[str, Any] = {}
    for name, case in cases.items():
        if isinstance(case, Page):
            results[name] = {
                "path": case.path,
                "ttfb": _summary(case.ttfb),
                "total": _summary(case.total),
                "bytes": case.bytes,
            }
            case.close()
        else:
            results[name] = {"sql": " ".join(case.sql.split()), **_summary(case.samples)}
            results[name]["rows"] = case.rows
    for page in ("dashboard", "roster"):
        p50 = results[page]["ttfb"]["p50_ms"]
        results[page]["x_healthz"] = p50 / results["healthz"]["ttfb"]["p50_ms"]
        results[page]["x_sql"] = p50 / results[f"{page}_sql"]["p50_ms"]
    return results


# --- websockets ----------------------------------------------------------------------------------


@contextmanager
def _thread_server() -> Iterator[tuple[int, asyncio.AbstractEventLoop]]:
    """uvicorn serving the ASGI application in a thread of this process, on an event loop
    of its own (returned, so that an in-process channel layer is published to on it)."""
    import uvicorn

    from ironbowl.asgi import application

    saved = connections.settings["default"].get("CONN_MAX_AGE")
    # Its requests run in executor threads that end with it: each closes its connection.
    connections.settings["default"]["CONN_MAX_AGE"] = 0
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(application, lifespan="off", log_level="warning"))
    loop = asyncio.new_event_loop()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve(sockets=[listener]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the in-process web server did not start")
        time.sleep(0.05)
    try:
        yield port, loop
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        loop.close()
        listener.close()
        connections.settings["default"]["CONN_MAX_AGE"] = saved


@dataclass
class Board:
    """The consoles watching one organization's board, and when each got each round."""

    organization: Organization
    sockets: list[Any] = field(default_factory=list)
    received: dict[int, list[float]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    last_ms: list[float] = field(default_factory=list)
    median_ms: list[float] = field(default_factory=list)


async def _listen(socket_: Any, watched: Board) -> None:
    async for message in socket_:
        update = json.loads(message)
        if update.get("type") != "stats":
            continue
        arrivals = watched.received.setdefault(int(update["viewers"]), [])
        arrivals.append(time.perf_counter())
        if len(arrivals) == len(watched.sockets):
            watched.arrived.set()


async def _fan_out(
    port: int,
    cookie: str,
    world: World,
    publish: Callable[[object, dict[str, Any]], Awaitable[None]],
) -> dict[str, Any]:
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    origin = f"http://127.0.0.1:{port}"
    boards = {count: Board(org) for count, org in world.boards.items()}
    listeners = []
    try:
        for count, watched in boards.items():
            url = f"ws://127.0.0.1:{port}" + BOARD_PATH.format(slug=watched.organization.slug)
            while len(watched.sockets) < count:
                batch = min(CONNECT_BATCH, count - len(watched.sockets))
                opened = await asyncio.gather(
                    *(
                        connect(
                            url,
                            origin=Origin(origin),
                            additional_headers={"Cookie": cookie},
                            open_timeout=60,
                            ping_interval=None,
                        )
                        for _ in range(batch)
                    )
                )
                watched.sockets.extend(opened)
            listeners += [asyncio.create_task(_listen(s, watched)) for s in watched.sockets]
        counts = list(boards)
        for round_ in range(FANOUT_WARMUP + FANOUT_ROUNDS):
            turn = round_ % len(counts)
            for count in counts[turn:] + counts[:turn]:
                watched = boards[count]
                watched.arrived.clear()
                payload = board.stats_update(
                    world.on_air_shift, board.Stats(fps=25.0, viewers=round_, latency_ms=900)
                )
                started = time.perf_counter()
                await publish(watched.organization.pk, payload)
                await asyncio.wait_for(watched.arrived.wait(), timeout=60)
                if round_ >= FANOUT_WARMUP:
                    arrivals = sorted(watched.received[round_])
                    watched.last_ms.append((arrivals[-1] - started) * 1e3)
                    watched.median_ms.append((statistics.median(arrivals) - started) * 1e3)
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        await asyncio.gather(
            *(s.close() for w in boards.values() for s in w.sockets), return_exceptions=True
        )
    results: dict[str, Any] = {}
    for count, watched in boards.items():
        last = sorted(watched.last_ms)
        results[str(count)] = {
            "consoles": count,
            "last": _summary([ms / 1e3 for ms in last]),
            "median_console": _summary([ms / 1e3 for ms in watched.median_ms]),
        }
    one = results["1"]["last"]["p50_ms"]
    for entry in results.values():
        entry["x_one"] = entry["last"]["p50_ms"] / one
    return results


def _uses_redis() -> bool:
    return "redis" in settings.CHANNEL_LAYERS["default"]["BACKEND"].lower()


def _fan_out_measured(world: World, gunicorn_port: int) -> dict[str, Any]:
    if _uses_redis():
        # The layer goes through Redis: the gunicorn server's workers receive from it.
        def run_on_gunicorn() -> dict[str, Any]:
            cookie = _sign_in(gunicorn_port, world.email)
            return asyncio.run(_fan_out(gunicorn_port, cookie, world, board.apublish_board))

        return {
            "server": f"gunicorn, {SERVER_WORKERS} uvicorn workers",
            "channel_layer": "Redis",
            **run_on_gunicorn(),
        }

    with _thread_server() as (port, loop):
        cookie = _sign_in(port, world.email)

        async def publish(organization_id: object, payload: dict[str, Any]) -> None:
            future = asyncio.run_coroutine_threadsafe(
                board.apublish_board(organization_id, payload), loop
            )
            await asyncio.wrap_future(future)

        measured = asyncio.run(_fan_out(port, cookie, world, publish))
    return {
        "server": "uvicorn in a thread of the benchmark's process",
        "channel_layer": "in-memory (in process)",
        **measured,
    }


# --- the report ----------------------------------------------------------------------------------


def _pages_markdown(pages: dict[str, Any], stations: int) -> str:
    lines = [
        f"{stations:,} stations, {stations * HIRES_PER_STATION:,} employments, "
        f"{stations * WEEKS * 7:,} shifts ({int(stations * ON_AIR_SHARE):,} on duty now); "
        f"{pages['healthz']['ttfb']['n']} requests per case, interleaved, one keep-alive "
        f"connection each, gunicorn with {SERVER_WORKERS} uvicorn workers.",
        "",
        "| case | TTFB p50 ms | TTFB p95 ms | whole page p50 ms | bytes | × /healthz | × raw SQL |",
        "|---|---|---|---|---|---|---|",
        _page_row("/healthz (baseline)", pages["healthz"]),
        _page_row("dashboard", pages["dashboard"]),
        _page_row("roster, this week, first 50 stations", pages["roster"]),
        "",
        "| raw SQL baseline | p50 ms | p95 ms | rows |",
        "|---|---|---|---|",
    ]
    for name in ("dashboard_sql", "roster_sql"):
        entry = pages[name]
        lines.append(
            f"| {name.replace('_sql', '')}'s rows | {entry['p50_ms']:.2f} | "
            f"{entry['p95_ms']:.2f} | {entry['rows']} |"
        )
    return "\n".join(lines)


def _page_row(label: str, entry: dict[str, Any]) -> str:
    ratios = (
        f"{entry['x_healthz']:.1f} | {entry['x_sql']:.0f}" if "x_healthz" in entry else "1.0 | –"
    )
    return (
        f"| {label} | {entry['ttfb']['p50_ms']:.1f} | {entry['ttfb']['p95_ms']:.1f} | "
        f"{entry['total']['p50_ms']:.1f} | {entry['bytes']:,} | {ratios} |"
    )


def _fan_out_markdown(fan_out: dict[str, Any]) -> str:
    lines = [
        f"Server: {fan_out['server']}; channel layer: {fan_out['channel_layer']}. "
        f"{FANOUT_ROUNDS} updates per board after {FANOUT_WARMUP} untimed, the boards taking "
        "turns; time from the publish call until the last (and the median) console of that "
        "organization received the update.",
        "",
        "| consoles | last p50 ms | last p95 ms | median console p50 ms | × one console (p50) |",
        "|---|---|---|---|---|",
    ]
    for count in CONSOLE_COUNTS:
        entry = fan_out[str(count)]
        lines.append(
            f"| {count} | {entry['last']['p50_ms']:.1f} | {entry['last']['p95_ms']:.1f} | "
            f"{entry['median_console']['p50_ms']:.1f} | {entry['x_one']:.1f} |"
        )
    return "\n".join(lines)


def run(*, iterations: int, warmup: int) -> BenchmarkSection:
    stations = stations_wanted()
    requests = max(20, iterations // 10)
    warmup = min(warmup, 10)
    world = _world(stations)
    try:
        with _web_server(SERVER_WORKERS) as port:
            cookie = _sign_in(port, world.email)
            pages = _pages(port, cookie, world, requests, warmup)
            fan_out = _fan_out_measured(world, port)
    finally:
        _forget(world)
    markdown = "\n".join(
        [
            "### Time to first byte: the dashboard and the roster",
            "",
            _pages_markdown(pages, stations),
            "",
            "### The on-air board: one update to many consoles",
            "",
            _fan_out_markdown(fan_out),
        ]
    )
    return BenchmarkSection(
        name="console",
        title="Console: time to first byte of the dashboard and roster, board fan-out",
        markdown=markdown,
        data={"stations": stations, "pages": pages, "fan_out": fan_out},
    )
