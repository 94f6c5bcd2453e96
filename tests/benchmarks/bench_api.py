"""Benchmark: an organization-scoped list endpoint against a raw query of the same page.

Measures GET /api/v1/orgs/{org}/stations/ through the whole Django stack (middleware, API-key
authentication, organization and permission checks, throttling, filtering, cursor pagination,
serialization, JSON rendering) with the test client, which keeps the database connection open
as a persistent connection would. Beside it, in the same run and interleaved with it, the raw SQL
that fetches the same page, the ORM alone, and the ORM with the serializer. Another organization
holds as many rows as the largest size, so scoping has something to keep out.

Needs Django set up on a throwaway database: `tests.benchmarks.run` does that.
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import json
import re
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.renderers import JSONRenderer

from ironbowl.api.pagination import OrganizationCursorPagination
from scheduling.api.serializers import StationSerializer
from scheduling.models import Station, StationKind
from tenants import services
from tenants.audit import SYSTEM
from tenants.models import Organization, User
from tenants.roles import Permission

SIZES = (100, 10_000)
OTHER_TENANT_ROWS = 10_000
DEEP_PAGE_HOPS = 20
FILTER_KIND = StationKind.KIOSK
PAGE_SIZE = OrganizationCursorPagination.page_size
_KINDS = list(StationKind.values)
_INSERT_BATCH = 1_000


@dataclass
class Timing:
    """Wall-clock samples of one measured case, in nanoseconds."""

    samples_ns: list[int]

    def percentile_ms(self, percent: int) -> float:
        cuts = statistics.quantiles(self.samples_ns, n=100, method="inclusive")
        return cuts[percent - 1] / 1e6

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.samples_ns) / 1e6

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.samples_ns) / 1e6

    @property
    def min_ms(self) -> float:
        return min(self.samples_ns) / 1e6


@dataclass
class Case:
    """One thing to time: a callable, and the baseline its p50 is divided by (if any)."""

    scenario: str
    name: str
    label: str
    call: Callable[[], object]
    baseline: str | None = None
    queries: list[str] = field(default_factory=list)
    timing: Timing | None = None


@dataclass
class BenchmarkSection:
    """What an entry gives the report: a markdown section and the same figures as data."""

    name: str
    title: str
    markdown: str
    data: dict[str, Any]


def measure_interleaved(cases: list[Case], *, iterations: int, warmup: int) -> None:
    """Time every case `iterations` times, round-robin, so that background load on the machine
    falls on all of them alike and the ratios between them stay meaningful."""
    for _ in range(warmup):
        for case in cases:
            case.call()
    samples: dict[str, list[int]] = {case.name: [] for case in cases}
    gc.collect()
    for index in range(iterations):
        # Rotate the order too, so that no case always runs right after the same neighbour.
        shift = index % len(cases)
        for case in cases[shift:] + cases[:shift]:
            started = time.perf_counter_ns()
            case.call()
            samples[case.name].append(time.perf_counter_ns() - started)
    for case in cases:
        case.timing = Timing(samples[case.name])


def capture_queries(case: Case) -> None:
    with CaptureQueriesContext(connection) as captured:
        case.call()
    case.queries = [query["sql"] for query in captured.captured_queries]


# --- data -----------------------------------------------------------------------------------


class _Clock:
    """Creation times one second apart, oldest first, as rows created over a few days would be.

    `auto_now_add` ignores a given value, and rows inserted in one batch would otherwise share
    timestamps, which makes the cursor fall back to offsets and blurs what is measured.
    """

    def __init__(self, start: dt.datetime) -> None:
        self._ticks: Iterator[int] = itertools.count()
        self._start = start

    def __call__(self) -> dt.datetime:
        return self._start + dt.timedelta(seconds=next(self._ticks))


def _insert_stations(organization: Organization, first: int, count: int, clock: _Clock) -> None:
    manager = Station.objects.unscoped_dangerously()
    with mock.patch("django.utils.timezone.now", clock):
        for start in range(first, first + count, _INSERT_BATCH):
            stop = min(start + _INSERT_BATCH, first + count)
            manager.bulk_create(
                Station(
                    organization=organization,
                    name=f"Station {index:05d}",
                    kind=_KINDS[index % len(_KINDS)],
                    description=f"Lobby {index % 40}, floor {index % 7}",
                )
                for index in range(start, stop)
            )
    with connection.cursor() as cursor:
        # Fresh statistics, as a database that has been running a while would have.
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Station._meta.db_table)}")


def _new_organization(slug: str, name: str) -> Organization:
    owner = User.objects.create_user(f"owner@{slug}.example.org", password=None)
    return services.create_organization(slug=slug, name=name, kind="hospital", owner=owner)


# --- the cases -------------------------------------------------------------------------------


class RawPage:
    """The one query a hand-written endpoint would run: the page plus one row to see if more."""

    def __init__(
        self,
        organization: Organization,
        *,
        kind: str | None = None,
        before: dt.datetime | None = None,
    ) -> None:
        quote = connection.ops.quote_name
        meta = Station._meta
        # Every column the ORM loads, the primary key first (as _same_page expects).
        fields = sorted(meta.concrete_fields, key=lambda f: not f.primary_key)
        columns = ", ".join(quote(f.column) for f in fields if f.column)
        created = quote("created_at")
        where = [f"{quote('organization_id')} = %s"]
        self.params: list[Any] = [
            meta.get_field("organization").get_db_prep_value(organization.pk, connection)
        ]
        if kind is not None:
            where.append(f"{quote('kind')} = %s")
            self.params.append(kind)
        if before is not None:
            where.append(f"{created} < %s")
            self.params.append(meta.get_field("created_at").get_db_prep_value(before, connection))
        self.sql = (
            f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {' AND '.join(where)} "  # noqa: S608
            f"ORDER BY {created} DESC LIMIT {PAGE_SIZE + 1}"
        )

    def __call__(self) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            return rows

    def plan(self) -> list[str]:
        """The database's plan for the query. With many rows it should walk the
        (organization, created_at) index backwards and stop after one page."""
        explain = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
        with connection.cursor() as cursor:
            cursor.execute(explain + self.sql, self.params)
            return [str(row[-1]) for row in cursor.fetchall()]


def _orm_page(organization: Organization) -> Callable[[], list[Station]]:
    def run() -> list[Station]:
        queryset = Station.objects.for_organization(organization).order_by("-created_at")
        return list(queryset[: PAGE_SIZE + 1])

    return run


def _orm_serialized_page(organization: Organization) -> Callable[[], bytes]:
    renderer = JSONRenderer()

    def run() -> bytes:
        queryset = Station.objects.for_organization(organization).order_by("-created_at")
        rows = list(queryset[: PAGE_SIZE + 1])
        payload = StationSerializer(rows[:PAGE_SIZE], many=True).data
        return renderer.render({"next": None, "previous": None, "results": payload})

    return run


def _endpoint(client: Client, url: str, token: str) -> Callable[[], bytes]:
    """A GET as an API client sends it; returns the body unparsed (parsing is the client's cost)."""

    def run() -> bytes:
        response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}: {response.content!r}")
        return response.content

    return run


def _page(endpoint: Callable[[], bytes]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(endpoint())
    return body


def _same_page(endpoint: Callable[[], bytes], raw: RawPage) -> None:
    """Check that the baseline fetches the rows the endpoint shows, else the ratio means nothing."""
    shown = [row["id"] for row in _page(endpoint)["results"]]
    fetched = [str(Station._meta.pk.to_python(row[0])) for row in raw()[:PAGE_SIZE]]
    if shown != fetched or not shown:
        raise RuntimeError(f"baseline and endpoint disagree: {shown[:3]}… vs {fetched[:3]}…")


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _cases_for(organization: Organization, client: Client, token: str, rows: int) -> list[Case]:
    url = reverse("station-list", kwargs={"org": organization.slug})
    first = "first page"
    filtered = f"filtered ?kind={FILTER_KIND.value}"
    endpoint = _endpoint(client, url, token)
    raw = RawPage(organization)
    filtered_endpoint = _endpoint(client, f"{url}?kind={FILTER_KIND.value}", token)
    filtered_raw = RawPage(organization, kind=FILTER_KIND.value)
    _same_page(endpoint, raw)
    _same_page(filtered_endpoint, filtered_raw)
    cases = [
        Case(first, "raw_sql", "raw SQL (baseline)", raw),
        Case(first, "orm", "ORM, no DRF", _orm_page(organization), "raw_sql"),
        Case(
            first,
            "orm_serializer",
            "ORM + serializer + JSON, no view",
            _orm_serialized_page(organization),
            "raw_sql",
        ),
        Case(first, "endpoint", "endpoint, full stack", endpoint, "raw_sql"),
        Case(filtered, "filtered_raw_sql", "raw SQL (baseline)", filtered_raw),
        Case(
            filtered,
            "filtered_endpoint",
            "endpoint, full stack",
            filtered_endpoint,
            "filtered_raw_sql",
        ),
    ]
    if rows >= PAGE_SIZE * (DEEP_PAGE_HOPS + 1):
        deep = f"page {DEEP_PAGE_HOPS + 1} (cursor followed {DEEP_PAGE_HOPS} times)"
        deep_url, page = url, _page(endpoint)
        for _ in range(DEEP_PAGE_HOPS):
            deep_url = _path_of(page["next"])
            page = _page(_endpoint(client, deep_url, token))
        # The last row of the pages before it: the deep page starts just after.
        last_before = Station.objects.for_organization(organization).order_by("-created_at")[
            PAGE_SIZE * DEEP_PAGE_HOPS - 1
        ]
        deep_endpoint = _endpoint(client, deep_url, token)
        deep_raw = RawPage(organization, before=last_before.created_at)
        _same_page(deep_endpoint, deep_raw)
        cases += [
            Case(deep, "deep_raw_sql", "raw SQL (baseline)", deep_raw),
            Case(deep, "deep_endpoint", "endpoint, full stack", deep_endpoint, "deep_raw_sql"),
        ]
    return cases


# --- the entry ------------------------------------------------------------------------------


def run(*, iterations: int, warmup: int) -> BenchmarkSection:
    clock = _Clock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    other = _new_organization("bench-other", "Other tenant")
    _insert_stations(other, 0, OTHER_TENANT_ROWS, clock)
    organization = _new_organization("bench-measured", "Measured tenant")
    _key, token = services.create_api_key(
        SYSTEM, organization, name="benchmark", scopes=[Permission.STATIONS_VIEW]
    )
    client = Client()
    results: list[dict[str, Any]] = []
    endpoint_sql: dict[str, list[str]] = {}
    plans: dict[str, list[str]] = {}
    inserted = 0
    for rows in SIZES:
        _insert_stations(organization, inserted, rows - inserted, clock)
        inserted = rows
        cases = _cases_for(organization, client, token, rows)
        for case in cases:
            capture_queries(case)
        measure_interleaved(cases, iterations=iterations, warmup=warmup)
        endpoint_sql[str(rows)] = next(c.queries for c in cases if c.name == "endpoint")
        plans[str(rows)] = RawPage(organization).plan()
        results += _records(cases, rows)
    data = {
        "endpoint": "GET /api/v1/orgs/{org}/stations/",
        "authentication": "API key (Bearer), scope stations.view",
        "page_size": PAGE_SIZE,
        "sizes": list(SIZES),
        "other_tenant_rows": OTHER_TENANT_ROWS,
        "iterations": iterations,
        "warmup": warmup,
        "measurements": results,
        "endpoint_queries": endpoint_sql,
        "first_page_query_plans": plans,
    }
    return BenchmarkSection(
        name="organization_list",
        title="Organization-scoped list: GET /api/v1/orgs/{org}/stations/",
        markdown=_markdown(data),
        data=data,
    )


def _records(cases: list[Case], rows: int) -> list[dict[str, Any]]:
    by_name = {case.name: case for case in cases}
    records = []
    for case in cases:
        assert case.timing is not None  # measure_interleaved set it
        record: dict[str, Any] = {
            "rows": rows,
            "scenario": case.scenario,
            "case": case.name,
            "label": case.label,
            "p50_ms": round(case.timing.p50_ms, 4),
            "p99_ms": round(case.timing.p99_ms, 4),
            "mean_ms": round(case.timing.mean_ms, 4),
            "min_ms": round(case.timing.min_ms, 4),
            "samples": len(case.timing.samples_ns),
            "queries": len(case.queries),
            "baseline": case.baseline,
            "p50_ratio_to_baseline": None,
        }
        if case.baseline is not None:
            base = by_name[case.baseline].timing
            assert base is not None
            record["p50_ratio_to_baseline"] = round(case.timing.p50_ms / base.p50_ms, 2)
        records.append(record)
    first = by_name["endpoint"].timing
    if "deep_endpoint" in by_name and first is not None:
        deep = by_name["deep_endpoint"].timing
        assert deep is not None
        records[-1]["p50_ratio_to_first_page"] = round(deep.p50_ms / first.p50_ms, 2)
    return records


def _markdown(data: dict[str, Any]) -> str:
    lines = [
        f"{data['endpoint']}, first page of {data['page_size']}, newest first (cursor "
        f"pagination), called with an {data['authentication']}. Another organization holds "
        f"{data['other_tenant_rows']:,} stations in the same table. Each case ran "
        f"{data['iterations']} times after {data['warmup']} warm-up calls, interleaved with the "
        "others of its size. Ratio: this case's p50 divided by its baseline's p50, same run.",
        "",
        "| rows in org | request | case | p50 ms | p99 ms | mean ms | queries | × baseline (p50) |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for m in data["measurements"]:
        ratio = m["p50_ratio_to_baseline"]
        ratio_text = "1 (baseline)" if m["baseline"] is None else f"{ratio:.2f}"
        lines.append(
            f"| {m['rows']:,} | {m['scenario']} | {m['label']} | {m['p50_ms']:.3f} | "
            f"{m['p99_ms']:.3f} | {m['mean_ms']:.3f} | {m['queries']} | {ratio_text} |"
        )
    lines += ["", "Where the time of the first page goes (differences of p50):", ""]
    for rows in data["sizes"]:
        p50 = {
            m["case"]: m["p50_ms"]
            for m in data["measurements"]
            if m["rows"] == rows and m["scenario"] == "first page"
        }
        lines.append(
            f"- {rows:,} rows: database {p50['raw_sql']:.3f} ms; ORM adds "
            f"{p50['orm'] - p50['raw_sql']:.3f} ms; serializer and JSON add "
            f"{p50['orm_serializer'] - p50['orm']:.3f} ms; the request pipeline (middleware, "
            f"authentication, organization and permission checks, throttling, filtering, "
            f"pagination) adds {p50['endpoint'] - p50['orm_serializer']:.3f} ms."
        )
    deep = [m for m in data["measurements"] if "p50_ratio_to_first_page" in m]
    for m in deep:
        lines += [
            "",
            f"Cursor depth at {m['rows']:,} rows: {m['scenario']} takes "
            f"{m['p50_ratio_to_first_page']:.2f}× the first page's p50 (about 1 means the cost "
            "does not grow with depth).",
        ]
    lines += ["", "Queries the endpoint ran, per request:", ""]
    for rows, queries in data["endpoint_queries"].items():
        lines.append(f"- {int(rows):,} rows: {len(queries)}")
        lines += [f"  - `{_shorten(sql)}`" for sql in queries]
    lines += ["", "The database's plan for the first page's query:"]
    for rows, plan in data["first_page_query_plans"].items():
        lines += ["", f"{int(rows):,} rows:", "", "```", *plan, "```"]
    return "\n".join(lines)


def _shorten(sql: str, limit: int = 220) -> str:
    """The query without its column list, which says nothing a reader needs here."""
    sql = " ".join(sql.split()).replace("`", "'")
    sql = re.sub(r"^SELECT .+? FROM ", "SELECT … FROM ", sql)
    return sql if len(sql) <= limit else sql[: limit - 1] + "…"
