"""Benchmark: scheduling — materialising shifts, and the roster for a calendar.

1. Materialising 14 days for 5,000 schedules (50 organizations × 100: weekday evening live
   rooms, daily live rooms and 24/7 web-widget desks), each shift with its GPU capacity reserved:
   the first run, then a second run that must write nothing (idempotent). Against it, a naive
   materialiser that saves each occurrence on its own (get_or_create, `capacity.reserve`, save),
   timed on the same 500 schedules as the bulk one in the same run, after checking that both
   make the same shifts. The naive one is not run on all 5,000: at ~10 statements a shift it
   would take minutes; its per-shift cost is what the ratio compares.
2. The roster for a month of a 500-station organization (450 daily live rooms, 50 24/7 desks:
   ~15,500 shifts): every page of `GET /roster/?start=…&end=…` through the full stack with an
   API key, against one ORM query of the same rows; and the month's coverage gaps.

Needs Django set up on a throwaway database: `tests.benchmarks.run` does that.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.test import Client, override_settings
from django.urls import reverse

from avatars.models import Employment, Position
from inference import capacity
from inference.models import Reservation, WorkerPool
from scheduling import materialise, recurrence, roster
from scheduling.models import Schedule, Shift, Station, StationKind
from tenants import services
from tenants.audit import SYSTEM
from tenants.models import Organization
from tenants.roles import Permission
from tests.avatars import factories as avatar_factories
from tests.benchmarks.bench_api import BenchmarkSection, Case, capture_queries, measure_interleaved

ORGANIZATIONS, PER_ORGANIZATION = 50, 100
SAMPLE_ORGANIZATIONS = 5  # 500 schedules: the naive materialiser's share
ROSTER_STATIONS, ROSTER_DESKS = 500, 50
ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
MONDAY = dt.datetime(2026, 3, 2, tzinfo=ZONE)  # local midnight: no occurrence is under way
MONTH = (dt.date(2026, 3, 1), dt.date(2026, 4, 1))
WRITE_VERBS = ("INSERT", "UPDATE", "DELETE")
WEEKDAYS = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"


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


# --- data ------------------------------------------------------------------------------------


def _pools() -> None:
    for name, pipeline, slots in (("bench-live", "live", 2), ("bench-converse", "converse", 4)):
        WorkerPool.objects.update_or_create(
            name=name,
            defaults={
                "pipeline": pipeline,
                "gpu_class": "cpu",
                "gpus_per_worker": 0,
                "slots_per_worker": slots,
                "image": "bench",
                "maximum": 10_000,
            },
        )


def _organizations(prefix: str, count: int) -> list[Organization]:
    Organization.objects.bulk_create(
        Organization(
            slug=f"{prefix}-{i}",
            name=f"{prefix} {i}",
            plan="enterprise",
            time_zone="Asia/Shanghai",
            locale="en",
        )
        for i in range(count)
    )
    return list(Organization.objects.filter(slug__startswith=f"{prefix}-").order_by("slug"))


def _staff(
    organization: Organization, count: int, kinds: list[str], timings: list[dict[str, Any]]
) -> list[Schedule]:
    """`count` stations, active hires and schedules of one organization, written in bulk."""
    avatar = avatar_factories.ready_avatar(visibility="public")
    position = Position.objects.create(organization=organization, title="Anchor")
    stations = [
        Station(
            id=uuid.uuid4(), organization=organization, name=f"Room {i}", kind=kinds[i % len(kinds)]
        )
        for i in range(count)
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
            starts_on=dt.date(2026, 1, 1),
            status="active",
        )
        for _ in range(count)
    ]
    Employment.objects.unscoped_dangerously().bulk_create(hires)
    plans = [
        Schedule(
            id=uuid.uuid4(),
            organization=organization,
            employment=hires[i],
            station=stations[i],
            valid_from=dt.date(2026, 1, 1),
            **timings[i % len(timings)],
        )
        for i in range(count)
    ]
    Schedule.objects.unscoped_dangerously().bulk_create(plans)
    return plans


def _mixed_timings() -> list[dict[str, Any]]:
    """Per 10 schedules: 8 weekday evening live rooms (various starts), 1 daily, 1 24/7 desk."""
    evening = [
        {"rrule": WEEKDAYS, "start_time": dt.time(18 + i % 4, 15 * (i % 4)), "duration_minutes": 90}
        for i in range(8)
    ]
    daily = {"rrule": "FREQ=DAILY", "start_time": dt.time(12, 0), "duration_minutes": 120}
    desk = {"rrule": "", "start_time": None, "duration_minutes": None, "always_on": True}
    return [*evening, daily, desk]


def _kinds_for(timings: list[dict[str, Any]]) -> list[str]:
    return [
        StationKind.WEB_WIDGET if t.get("always_on") else StationKind.LIVE_ROOM for t in timings
    ]


# --- 1. materialising ------------------------------------------------------------------------


def _naive(organizations: list[Organization], now: dt.datetime) -> int:
    """What a first attempt would do: each occurrence saved and reserved on its own."""
    made = 0
    end = now + materialise.horizon()
    lead = dt.timedelta(minutes=5)
    for organization in organizations:
        plans = Schedule.objects.for_organization(organization).select_related("station")
        for plan in plans:
            live = plan.station.kind == StationKind.LIVE_ROOM
            for occurrence in recurrence.occurrences(
                recurrence.Timing.of(plan), ZONE, now, end, {}
            ):
                shift, created = Shift.objects.for_organization(organization).get_or_create(
                    schedule=plan,
                    starts_at=occurrence.starts_at,
                    defaults={
                        "organization": organization,
                        "employment_id": plan.employment_id,
                        "station_id": plan.station_id,
                        "ends_at": occurrence.ends_at,
                        "schedule_version": plan.version,
                    },
                )
                if not created:
                    continue
                begins = occurrence.starts_at - lead if live and not plan.always_on else None
                reservation, answer = capacity.reserve(
                    organization,
                    gpu_class="cpu",
                    slots=1,
                    starts_at=begins or occurrence.starts_at,
                    ends_at=occurrence.ends_at,
                    holder=materialise.holder_of(shift.pk),
                )
                shift.reservation = reservation if answer.ok else None
                shift.at_risk, shift.risk_reason = (not answer.ok), answer.reason
                shift.save(update_fields=["reservation", "at_risk", "risk_reason"])
                made += 1
    return made


def _made(organizations: list[Organization]) -> set[tuple[Any, ...]]:
    rows = Shift.objects.unscoped_dangerously().filter(organization__in=organizations)
    return set(rows.values_list("schedule_id", "starts_at", "ends_at", "at_risk"))


def _forget(organizations: list[Organization]) -> None:
    Shift.objects.unscoped_dangerously().filter(organization__in=organizations).delete()
    Reservation.objects.unscoped_dangerously().filter(organization__in=organizations).delete()


def _materialise() -> dict[str, Any]:
    _pools()
    organizations = _organizations("mat", ORGANIZATIONS)
    timings = _mixed_timings()
    for organization in organizations:
        _staff(organization, PER_ORGANIZATION, _kinds_for(timings), timings)
    sample = organizations[:SAMPLE_ORGANIZATIONS]

    def bulk_sample() -> int:
        return sum(materialise.materialise_organization(o, now=MONDAY).created for o in sample)

    bulk_s, bulk_statements, sample_shifts = _timed(bulk_sample)
    bulk_made = _made(sample)
    _forget(sample)
    naive_s, naive_statements, naive_shifts = _timed(lambda: _naive(sample, MONDAY))
    if _made(sample) != bulk_made or naive_shifts != sample_shifts:
        raise RuntimeError("the naive and the bulk materialiser made different shifts")
    _forget(sample)

    first_s, first_statements, first = _timed(lambda: materialise.materialise_shifts(MONDAY))
    again_s, again_statements, again = _timed(lambda: materialise.materialise_shifts(MONDAY))
    return {
        "schedules": first.schedules,
        "organizations": ORGANIZATIONS,
        "shifts": first.created,
        "reserved": first.reserved,
        "at_risk": first.at_risk,
        "first_s": first_s,
        "first_queries": first_statements.total,
        "first_writes": first_statements.writes,
        "second_s": again_s,
        "second_queries": again_statements.total,
        "second_writes": again_statements.writes,
        "second_created": again.created,
        "sample_schedules": SAMPLE_ORGANIZATIONS * PER_ORGANIZATION,
        "sample_shifts": sample_shifts,
        "sample_bulk_s": bulk_s,
        "sample_bulk_queries": bulk_statements.total,
        "sample_naive_s": naive_s,
        "sample_naive_queries": naive_statements.total,
        "naive_over_bulk": naive_s / bulk_s,
        "naive_full_estimate_s": naive_s / max(sample_shifts, 1) * first.created,
    }


def _materialise_markdown(m: dict[str, Any]) -> str:
    per = 1e6 / max(m["sample_shifts"], 1)
    return "\n".join(
        [
            f"{m['schedules']:,} schedules of {m['organizations']} organizations (8 in 10 weekday "
            "evening live rooms, 1 daily live room, 1 24/7 web-widget desk), 14 days from a "
            f"Monday: {m['shifts']:,} shifts, {m['reserved']:,} reservations, "
            f"{m['at_risk']} at risk.",
            "",
            "| run | time | statements | writes | shifts made |",
            "|---|---:|---:|---:|---:|",
            f"| first (bulk) | {m['first_s']:.2f} s | {m['first_queries']:,} | "
            f"{m['first_writes']:,} | {m['shifts']:,} |",
            f"| second (idempotent) | {m['second_s']:.2f} s | {m['second_queries']:,} | "
            f"{m['second_writes']:,} | {m['second_created']} |",
            "",
            f"Against a naive save-per-occurrence on the same {m['sample_schedules']} schedules "
            f"({m['sample_shifts']:,} shifts; both made the same shifts):",
            "",
            "| materialiser | time | per shift | statements |",
            "|---|---:|---:|---:|",
            f"| bulk | {m['sample_bulk_s']:.2f} s | {m['sample_bulk_s'] * per:.0f} µs | "
            f"{m['sample_bulk_queries']:,} |",
            f"| naive | {m['sample_naive_s']:.2f} s | {m['sample_naive_s'] * per:.0f} µs | "
            f"{m['sample_naive_queries']:,} |",
            "",
            f"Naive over bulk: **{m['naive_over_bulk']:.1f}×** the time. At its per-shift cost "
            f"the naive one would take about {m['naive_full_estimate_s']:.0f} s for all "
            f"{m['shifts']:,} shifts.",
        ]
    )


# --- 2. the roster ---------------------------------------------------------------------------


def _roster(*, iterations: int, warmup: int) -> dict[str, Any]:
    _pools()
    (organization,) = _organizations("roster", 1)
    daily = [
        {"rrule": "FREQ=DAILY", "start_time": dt.time(8 + i % 14, 0), "duration_minutes": 120}
        for i in range(9)
    ]
    desk: dict[str, Any] = {
        "rrule": "",
        "start_time": None,
        "duration_minutes": None,
        "always_on": True,
    }
    timings = [*daily, desk]  # 450 live rooms, 50 desks
    _staff(organization, ROSTER_STATIONS, _kinds_for(timings), timings)
    start = dt.datetime.combine(MONTH[0], dt.time(), ZONE)
    end = dt.datetime.combine(MONTH[1], dt.time(), ZONE)
    # Made before the month, so that the whole month is theirs to cover (gaps count from then).
    Schedule.objects.for_organization(organization).update(created_at=start)
    with override_settings(SCHEDULING_HORIZON_DAYS=(MONTH[1] - MONTH[0]).days):
        made_s, _statements, made = _timed(
            lambda: materialise.materialise_organization(organization, now=start)
        )
    # One desk day in ten was missed: the month has gaps to find.
    desk_days = Shift.objects.for_organization(organization).filter(
        station__kind=StationKind.WEB_WIDGET
    )
    missed = list(desk_days.order_by("id").values_list("id", flat=True)[::10])
    desk_days.filter(id__in=missed).update(state="missed")
    _key, token = services.create_api_key(
        SYSTEM, organization, name="benchmark", scopes=[Permission.STATIONS_VIEW]
    )
    client = Client()
    list_url = reverse("roster-list", kwargs={"org": organization.slug})
    month_url = f"{list_url}?start={MONTH[0]}&end={MONTH[1]}&page_size=2000"
    gaps_url = reverse("roster-gaps", kwargs={"org": organization.slug})
    gaps_url += f"?start={MONTH[0]}&end={MONTH[1]}"

    def get(url: str) -> dict[str, Any]:
        response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
        body: dict[str, Any] = json.loads(response.content)
        return body

    def whole_month() -> int:
        url: str | None = month_url
        rows = 0
        while url:
            page = get(url)
            rows += len(page["results"])
            url = page["next"]
        return rows

    def first_page() -> int:
        return len(get(month_url)["results"])

    def orm_month() -> int:
        fields = ("id", "schedule_id", "station_id", "employment_id", "starts_at", "ends_at")
        return len(list(roster.shifts_between(organization, start, end).values_list(*fields)))

    def month_gaps() -> int:
        response = client.get(gaps_url, HTTP_AUTHORIZATION=f"Bearer {token}")
        return len(json.loads(response.content))

    found = json.loads(client.get(gaps_url, HTTP_AUTHORIZATION=f"Bearer {token}").content)
    gaps = len(found)
    if sum(gap["minutes"] for gap in found) != len(missed) * 24 * 60:
        raise RuntimeError("the gaps found do not add up to the desk days missed")

    rows = orm_month()
    if whole_month() != rows:
        raise RuntimeError("the roster's pages and the query disagree")
    cases = [
        Case("month", "orm", "one ORM query of the month's rows (baseline)", orm_month),
        Case("month", "endpoint", "every page through the full stack", whole_month, "orm"),
        Case("month", "first_page", "first page (2,000 shifts)", first_page, "orm"),
        Case("month", "gaps", "coverage gaps of the month", month_gaps, "orm"),
    ]
    measure_interleaved(cases, iterations=iterations, warmup=warmup)
    for case in cases:
        capture_queries(case)
    pages = -(-rows // 2000)
    return {
        "stations": ROSTER_STATIONS,
        "desks": ROSTER_DESKS,
        "shifts": rows,
        "pages": pages,
        "materialise_month_s": made_s,
        "materialised": made.created,
        "gaps": gaps,
        "iterations": iterations,
        "cases": [
            {
                "name": case.name,
                "label": case.label,
                "p50_ms": case.timing.p50_ms if case.timing else None,
                "p99_ms": case.timing.p99_ms if case.timing else None,
                "queries": len(case.queries),
                "baseline": case.baseline,
            }
            for case in cases
        ],
    }


def _roster_markdown(r: dict[str, Any]) -> str:
    cases = {case["name"]: case for case in r["cases"]}
    base = cases["orm"]["p50_ms"]
    lines = [
        f"A month of an organization with {r['stations']} stations ({r['desks']} of them 24/7 "
        f"desks): {r['shifts']:,} shifts, {r['pages']} pages of 2,000 (materialising the month "
        f"took {r['materialise_month_s']:.1f} s); one desk day in ten was missed, which the "
        f"gaps must add up to ({r['gaps']} gaps). {r['iterations']} rounds, interleaved.",
        "",
        "| case | p50 | p99 | statements | × baseline (p50) |",
        "|---|---:|---:|---:|---:|",
    ]
    for case in r["cases"]:
        ratio = case["p50_ms"] / base if case["baseline"] else 1.0
        lines.append(
            f"| {case['label']} | {case['p50_ms']:.1f} ms | {case['p99_ms']:.1f} ms | "
            f"{case['queries']} | {ratio:.2f}× |"
        )
    return "\n".join(lines)


# --- the entry ---------------------------------------------------------------------------------


def run(*, iterations: int, warmup: int) -> BenchmarkSection:
    rounds = max(5, iterations // 50)
    data: dict[str, Any] = {}
    with transaction.atomic():
        data["materialise"] = _materialise()
        transaction.set_rollback(True)
    with transaction.atomic():
        data["roster"] = _roster(iterations=rounds, warmup=min(warmup, 1))
        transaction.set_rollback(True)
    markdown = "\n".join(
        [
            "### Materialising shifts",
            "",
            _materialise_markdown(data["materialise"]),
            "",
            "### The roster for a month",
            "",
            _roster_markdown(data["roster"]),
        ]
    )
    return BenchmarkSection(
        name="scheduling",
        title="Scheduling: materialising shifts, the roster",
        markdown=markdown,
        data=data,
    )
