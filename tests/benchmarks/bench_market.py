"""Benchmark: talent-market search over 10,000 published avatars against raw SQL of the same page.

Measures GET /api/v1/orgs/{org}/market/avatars/ through the whole Django stack (API-key
authentication, organization and permission checks, throttling, django-filter, keyset cursor
pagination, serialization, JSON) with the test client, first with no filter and then with skill +
language + price range + text combined. Beside each, in the same run and interleaved: the raw SQL
that fetches the same page from the derived search columns (the baseline), the ORM alone, and raw
SQL that reads the JSON lists instead of the derived columns — the design those columns replace.

Needs Django set up on a throwaway database: `tests.benchmarks.run` does that.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from unittest import mock
from urllib.parse import urlencode

from django.db import connection
from django.db.models import OuterRef, Subquery
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from avatars import market
from avatars.api.market import LIST_FIELDS
from avatars.models import Avatar, AvatarVersion, Consent, Skill, Upload
from ironbowl.api.pagination import KeysetCursorPagination
from tenants import services
from tenants.audit import SYSTEM
from tenants.models import Organization, User
from tenants.roles import Permission
from tests.benchmarks.bench_api import (
    BenchmarkSection,
    Case,
    _Clock,
    _endpoint,
    capture_queries,
    measure_interleaved,
)

PUBLISHED = 10_000
UNPUBLISHED = 2_000  # private drafts beside them, which every query must keep out
VENDORS = 50
PAGE_SIZE = KeysetCursorPagination.page_size
FILTERS = {
    "skill": "live_anchor",
    "language": "zh",
    "min_price": "1000",
    "max_price": "3000",
    "q": "health",
}
_LANGUAGE_SETS = [
    ["zh-CN"],
    ["zh-CN", "en-US"],
    ["yue-HK"],
    ["yue-HK", "zh-CN"],
    ["zh-Hans-CN"],
    ["en-US"],
    ["en-GB"],
    ["ja-JP"],
]
_TOPICS = ["health", "banking", "museum", "tax", "travel", "retail", "law", "school"]
_BATCH = 1_000


# --- data -----------------------------------------------------------------------------------


def _vendors() -> list[Organization]:
    return Organization.objects.bulk_create(
        Organization(slug=f"vendor-{n:02d}", name=f"Vendor {n:02d}", kind="vendor")
        for n in range(VENDORS)
    )


def _insert_avatars(vendors: list[Organization], clock: _Clock) -> None:
    """Published avatars with a version under a consent for anyone, then private drafts."""
    rng = random.Random(3)  # reproducible data
    clips = {
        vendor.pk: Upload(
            organization=vendor,
            purpose="consent_clip",
            filename="consent.mp4",
            content_type="video/mp4",
            size=1,
            received=1,
            status="complete",
        )
        for vendor in vendors
    }
    Upload.objects.unscoped_dangerously().bulk_create(clips.values())
    skills = list(Skill.values)
    expires = timezone.now() + dt.timedelta(days=3650)
    for start in range(0, PUBLISHED + UNPUBLISHED, _BATCH):
        avatars = []
        for index in range(start, min(start + _BATCH, PUBLISHED + UNPUBLISHED)):
            published = index < PUBLISHED
            topic = rng.choice(_TOPICS)
            avatar = Avatar(
                organization=vendors[index % VENDORS],
                name_zh=f"数字人{index:05d}",
                name_en=f"Avatar {index:05d}",
                description=f"A {topic} presenter who explains things plainly.",
                visibility="public" if published else "private",
                status="ready" if published else "draft",
                languages=rng.choice(_LANGUAGE_SETS),
                skills=rng.sample(skills, rng.randint(1, 3)),
                list_price=Decimal(rng.randrange(500, 5001, 100)),
            )
            avatar.derive_search_fields()  # bulk_create does not call save()
            avatars.append(avatar)
        with mock.patch("django.utils.timezone.now", clock):
            Avatar.objects.unscoped_dangerously().bulk_create(avatars)
        built = [a for a in avatars if a.status == "ready"]
        consents = [
            Consent(
                organization_id=avatar.organization_id,
                avatar=avatar,
                subject_name="A person",
                statement="I agree.",
                clip=clips[avatar.organization_id],
                scope="any",
                expires_at=expires,
            )
            for avatar in built
        ]
        Consent.objects.unscoped_dangerously().bulk_create(consents)
        AvatarVersion.objects.unscoped_dangerously().bulk_create(
            AvatarVersion(
                organization_id=consent.organization_id,
                avatar=consent.avatar,
                number=1,
                consent=consent,
                voice_profile={"pitch_hz": 180.0},
            )
            for consent in consents
        )
    versions = AvatarVersion.objects.unscoped_dangerously().filter(avatar=OuterRef("pk"))
    Avatar.objects.unscoped_dangerously().update(
        current_version=Subquery(versions.values("pk")[:1])
    )
    with connection.cursor() as cursor:
        for model in (Avatar, AvatarVersion, Consent, Organization):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


# --- the cases -------------------------------------------------------------------------------


class RawPage:
    """The query a hand-written endpoint would run for the same page: the published avatars with
    their vendor and version, the filters on the derived columns (or, with `json_lists`, on the
    JSON lists themselves), newest first, a page plus one row."""

    def __init__(self, filters: dict[str, str], *, json_lists: bool = False) -> None:
        quote = connection.ops.quote_name
        expires_at = Consent._meta.get_field("expires_at")
        now = expires_at.get_db_prep_value(timezone.now(), connection)
        where = [
            "a.visibility = %s",
            "a.status = %s",
            "o.is_active = %s",
            "c.scope = %s",
            "c.revoked_at IS NULL",
            "c.expires_at > %s",
        ]
        self.params: list[Any] = ["public", "ready", True, "any", now]
        self.json_lists = json_lists
        if "skill" in filters:
            self._skill(filters["skill"], where)
        if "language" in filters:
            self._language(filters["language"], where)
        price = Avatar._meta.get_field("list_price")
        if "min_price" in filters:
            where.append("a.list_price >= %s")
            self.params.append(price.get_db_prep_value(Decimal(filters["min_price"]), connection))
        if "max_price" in filters:
            where.append("a.list_price <= %s")
            self.params.append(price.get_db_prep_value(Decimal(filters["max_price"]), connection))
        if "q" in filters:
            where.append("a.search_text LIKE %s")
            self.params.append(f"%{filters['q'].casefold()}%")
        self.sql = (
            "SELECT a.id, a.name_zh, a.name_en, a.description, a.languages, a.skills, "  # noqa: S608
            "a.list_price, a.currency, a.created_at, o.slug, o.name, v.number, v.portrait "
            f"FROM {quote(Avatar._meta.db_table)} a "
            f"JOIN {quote(Organization._meta.db_table)} o ON o.id = a.organization_id "
            f"JOIN {quote(AvatarVersion._meta.db_table)} v ON v.id = a.current_version_id "
            f"JOIN {quote(Consent._meta.db_table)} c ON c.id = v.consent_id "
            f"WHERE {' AND '.join(where)} "
            f"ORDER BY a.created_at DESC, a.id DESC LIMIT {PAGE_SIZE + 1}"
        )

    def _skill(self, skill: str, where: list[str]) -> None:
        if not self.json_lists:
            where.append("a.skill_index LIKE %s")
            self.params.append(f"%|{skill}|%")
        elif connection.vendor == "postgresql":
            where.append("a.skills @> %s::jsonb")
            self.params.append(json.dumps([skill]))
        else:
            where.append("EXISTS (SELECT 1 FROM json_each(a.skills) WHERE value = %s)")
            self.params.append(skill)

    def _language(self, language: str, where: list[str]) -> None:
        tag = language.casefold()
        if not self.json_lists:
            where.append("(a.language_index LIKE %s OR a.language_index LIKE %s)")
            self.params += [f"%|{tag}|%", f"%|{tag}-%"]
            return
        elements = (
            "jsonb_array_elements_text(a.languages) AS t(value)"
            if connection.vendor == "postgresql"
            else "json_each(a.languages)"
        )
        where.append(
            f"EXISTS (SELECT 1 FROM {elements} WHERE lower(value) = %s OR lower(value) LIKE %s)"  # noqa: S608
        )
        self.params += [tag, f"{tag}-%"]

    def __call__(self) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            return rows


def _orm_page(filters: dict[str, str]) -> Callable[[], list[Avatar]]:
    """The endpoint's query through the ORM, model instances included, without DRF."""

    def run() -> list[Avatar]:
        avatars = market.market_avatars()
        if "skill" in filters:
            avatars = market.with_any_skill(avatars, [filters["skill"]])
        if "language" in filters:
            avatars = market.speaking_any(avatars, [filters["language"]])
        if "min_price" in filters:
            avatars = avatars.filter(list_price__gte=Decimal(filters["min_price"]))
        if "max_price" in filters:
            avatars = avatars.filter(list_price__lte=Decimal(filters["max_price"]))
        if "q" in filters:
            avatars = market.matching_text(avatars, filters["q"])
        avatars = avatars.only(*LIST_FIELDS).order_by("-created_at", "-id")
        return list(avatars[: PAGE_SIZE + 1])

    return run


def _same_page(endpoint: Callable[[], bytes], *baselines: Callable[[], list[Any]]) -> int:
    """Check that each baseline fetches the rows the endpoint shows; return how many it shows."""
    shown = [row["id"] for row in json.loads(endpoint())["results"]]
    for baseline in baselines:
        fetched = [str(Avatar._meta.pk.to_python(_first(row))) for row in baseline()[:PAGE_SIZE]]
        if shown != fetched or not shown:
            raise RuntimeError(f"baseline and endpoint disagree: {shown[:3]}… vs {fetched[:3]}…")
    return len(shown)


def _first(row: Any) -> Any:
    return row.pk if isinstance(row, Avatar) else row[0]


def _matching(filters: dict[str, str]) -> int:
    avatars = market.market_avatars()
    if "skill" in filters:
        avatars = market.with_any_skill(avatars, [filters["skill"]])
    if "language" in filters:
        avatars = market.speaking_any(avatars, [filters["language"]])
    avatars = avatars.filter(
        list_price__gte=Decimal(filters.get("min_price", "0")),
        list_price__lte=Decimal(filters.get("max_price", "1e9")),
    )
    return market.matching_text(avatars, filters.get("q", "")).count()


def _cases(client: Client, url: str, token: str) -> tuple[list[Case], dict[str, int]]:
    shown: dict[str, int] = {}
    cases: list[Case] = []
    for scenario, filters in (("no filter", {}), ("skill + language + price + q", FILTERS)):
        prefix = "filtered_" if filters else ""
        endpoint = _endpoint(client, f"{url}?{urlencode(filters)}" if filters else url, token)
        raw, orm = RawPage(filters), _orm_page(filters)
        shown[scenario] = _same_page(endpoint, raw, orm)
        baseline = f"{prefix}raw_sql"
        cases.append(Case(scenario, baseline, "raw SQL, derived columns (baseline)", raw))
        if filters:  # without filters the JSON variant is the same query
            json_raw = RawPage(filters, json_lists=True)
            _same_page(endpoint, json_raw)
            label = "raw SQL, JSON lists instead"
            cases.append(Case(scenario, f"{prefix}raw_json", label, json_raw, baseline))
        cases += [
            Case(scenario, f"{prefix}orm", "ORM, no DRF", orm, baseline),
            Case(scenario, f"{prefix}endpoint", "endpoint, full stack", endpoint, baseline),
        ]
    return cases, shown


def _plan(filters: dict[str, str]) -> list[str]:
    """The database's plan for the endpoint's query of the filtered page."""
    avatars = market.market_avatars()
    avatars = market.with_any_skill(avatars, [filters["skill"]])
    avatars = market.speaking_any(avatars, [filters["language"]])
    avatars = avatars.filter(
        list_price__gte=Decimal(filters["min_price"]), list_price__lte=Decimal(filters["max_price"])
    )
    avatars = market.matching_text(avatars, filters["q"]).only(*LIST_FIELDS)
    return avatars.order_by("-created_at", "-id")[: PAGE_SIZE + 1].explain().splitlines()


# --- the entry ------------------------------------------------------------------------------


def run(*, iterations: int, warmup: int) -> BenchmarkSection:
    clock = _Clock(dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    _insert_avatars(_vendors(), clock)
    owner = User.objects.create_user("owner@bench-buyer.example.org", password=None)
    buyer = services.create_organization(
        slug="bench-buyer", name="Buyer", kind="hospital", owner=owner
    )
    _key, token = services.create_api_key(
        SYSTEM, buyer, name="benchmark", scopes=[Permission.MARKET_VIEW]
    )
    url = reverse("market-avatar-list", kwargs={"org": buyer.slug})
    cases, shown = _cases(Client(), url, token)
    for case in cases:
        capture_queries(case)
    measure_interleaved(cases, iterations=iterations, warmup=warmup)
    data = {
        "endpoint": "GET /api/v1/orgs/{org}/market/avatars/",
        "authentication": "API key (Bearer), scope market.view",
        "published_avatars": PUBLISHED,
        "unpublished_avatars": UNPUBLISHED,
        "vendors": VENDORS,
        "filters": FILTERS,
        "matching": {"no filter": PUBLISHED, "skill + language + price + q": _matching(FILTERS)},
        "shown": shown,
        "page_size": PAGE_SIZE,
        "iterations": iterations,
        "warmup": warmup,
        "measurements": _records(cases),
        "endpoint_queries": {c.scenario: c.queries for c in cases if c.name.endswith("endpoint")},
        "filtered_query_plan": _plan(FILTERS),
    }
    return BenchmarkSection(
        name="talent_market",
        title="Talent-market search: GET /api/v1/orgs/{org}/market/avatars/",
        markdown=_markdown(data),
        data=data,
    )


def _records(cases: list[Case]) -> list[dict[str, Any]]:
    by_name = {case.name: case for case in cases}
    records = []
    for case in cases:
        assert case.timing is not None  # measure_interleaved set it
        ratio = None
        if case.baseline is not None:
            base = by_name[case.baseline].timing
            assert base is not None
            ratio = round(case.timing.p50_ms / base.p50_ms, 2)
        records.append(
            {
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
                "p50_ratio_to_baseline": ratio,
            }
        )
    return records


def _markdown(data: dict[str, Any]) -> str:
    query = urlencode(data["filters"])
    lines = [
        f"{data['endpoint']}, first page of {data['page_size']}, newest first, called with an "
        f"{data['authentication']}. {data['published_avatars']:,} published avatars from "
        f"{data['vendors']} vendors, and {data['unpublished_avatars']:,} private drafts beside "
        f"them. Filtered request: `?{query}` "
        f"({data['matching']['skill + language + price + q']:,} avatars match). Each case ran "
        f"{data['iterations']} times after {data['warmup']} warm-up calls, interleaved with the "
        "others. Ratio: this case's p50 divided by its baseline's p50, same run.",
        "",
        "| request | case | p50 ms | p99 ms | mean ms | queries | × baseline (p50) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for m in data["measurements"]:
        ratio = m["p50_ratio_to_baseline"]
        ratio_text = "1 (baseline)" if m["baseline"] is None else f"{ratio:.2f}"
        lines.append(
            f"| {m['scenario']} | {m['label']} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | "
            f"{m['mean_ms']:.3f} | {m['queries']} | {ratio_text} |"
        )
    lines += [
        "",
        "The baseline reads the derived search columns (`skill_index`, `language_index`, "
        '`search_text`) that the endpoint reads; "JSON lists instead" is the same query over the '
        "`skills` and `languages` JSON (`json_each` on SQLite, `@>` and "
        "`jsonb_array_elements_text` on PostgreSQL), the per-database alternative those columns "
        "replace.",
        "",
        "Queries the endpoint ran, per request:",
        "",
    ]
    for scenario, queries in data["endpoint_queries"].items():
        lines.append(f"- {scenario}: {len(queries)}")
    lines += ["", "The database's plan for the filtered page's query:", "", "```"]
    lines += [*data["filtered_query_plan"], "```"]
    return "\n".join(lines)
