"""Seeing KPIs and opening a statement, in both languages, in Chromium: today's KPIs on the
dashboard and in analytics, then a month's statement with its payslip per digital employee.

Real: everything the pages read. Events are ingested through `ironbowl.analytics.ingestion`
(validation, attribution to the station, viewer hashing, storage) and rolled up by
`ironbowl.analytics.rollups.run` (the Celery task's work), both run in the server's process; the
statement is rated and closed by `ironbowl.billing.statements.close` from ledger rows. Simulated:
who sends the events (a streaming platform would post them to the events API) and the ledger
rows (the worker protocol would append them, as tests/billing's helpers do); and another
organization's events and statement, which must not show."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from ironbowl.analytics import ingestion, rollups
from ironbowl.billing import seats, statements
from ironbowl.billing.models import Statement
from tests.billing.conftest import EPOCH, ensure_plans, hire, local, subscribe, usage
from tests.e2e.conftest import MARKS, says
from tests.factories import StationFactory

pytestmark = MARKS

MARCH = dt.date(2024, 3, 1)
IN_MAY = dt.datetime(2024, 5, 20, tzinfo=dt.UTC)


def _events(station, visits: int, interactions: int, peak: int) -> list[dict[str, object]]:
    """The last minutes' events of a live room, as a streaming platform posts them."""
    now = timezone.now()
    at = [(now - dt.timedelta(minutes=5 + i)).isoformat() for i in range(visits + interactions)]
    events: list[dict[str, object]] = []
    for i in range(visits):
        events.append({"type": "visit", "occurred_at": at[i], "viewer": f"v{i}"})
    for i in range(interactions):
        events.append({"type": "interaction", "occurred_at": at[visits + i], "viewer": f"v{i}"})
    events.append({"type": "view", "occurred_at": at[0], "value": peak})
    return [{"id": uuid.uuid4().hex, "station": str(station.pk), **event} for event in events]


@pytest.fixture
def counted(people, server):
    """Alpha's and Beta's events of the last minutes, ingested and rolled up."""
    ours = StationFactory(organization=people.alpha, name="Outpatient live room")
    theirs = StationFactory(organization=people.beta, name="Beta desk")
    for organization, events in (
        (people.alpha, _events(ours, visits=7, interactions=3, peak=40)),
        (people.beta, _events(theirs, visits=11, interactions=5, peak=900)),
    ):
        result = server.run(ingestion.ingest, organization, events)
        assert result.accepted == len(events), result.errors
    server.run(rollups.run)


@pytest.fixture
def books(people):
    """March 2024's statement of each organization, closed (two hires at Alpha, one at Beta)."""
    ensure_plans()
    closed = {}
    for organization, names, minutes in (
        (people.alpha, ["小艺", "小明"], 12_000),
        (people.beta, ["贝塔导购"], 98_760),
    ):
        subscribe(organization, [("standard", EPOCH)])
        hires = [hire(organization, name=name, seats=n + 1) for n, name in enumerate(names)]
        seats.record_seat_days(organization, MARCH, dt.date(2024, 4, 30))
        for employment in hires:
            usage(
                organization,
                "stream_minutes",
                minutes,
                local("Asia/Shanghai", 2024, 3, 9),
                employment,
            )
        closed[organization.slug] = statements.close(organization, MARCH, now=IN_MAY)
    return closed


def test_see_todays_kpis(console, people, counted, language):
    page = console.page
    console.sign_in(people.email)
    console.goto(f"/console/o/{people.alpha.slug}/")
    console.choose_language(language)

    # The dashboard: today's figures, Alpha's only.
    expect(page.locator("h1")).to_have_text(says(language, "Dashboard"))
    today = page.locator("[data-testid=today]")
    expect(today).to_contain_text(says(language, "Visits"))
    expect(today.locator("[data-kpi=visits]")).to_have_text("7")
    expect(today.locator("[data-kpi=interactions]")).to_have_text("3")
    expect(today.locator("[data-kpi=unique_viewers]")).to_have_text("7")
    expect(today.locator("[data-kpi=peak_viewers]")).to_have_text("40")
    console.shot("dashboard-kpis")

    # Analytics: the same totals, with charts.
    today.get_by_role("link", name=says(language, "More in analytics")).click()
    expect(page.locator("h1")).to_have_text(says(language, "Analytics"))
    totals = page.locator("[data-testid=totals]")
    expect(totals.locator("[data-kpi=visits] .value")).to_have_text("7")
    expect(totals.locator("[data-kpi=interactions] .value")).to_have_text("3")
    expect(totals.locator("[data-kpi=visits] .label")).to_have_text(says(language, "Visits"))
    expect(page.locator("main svg").first).to_be_visible()
    assert "900" not in console.text() and "Beta desk" not in console.text()
    console.shot("analytics")


def test_open_a_statement(console, people, books, language):
    page = console.page
    march = books[people.alpha.slug]
    console.sign_in(people.email)
    console.goto(f"/console/o/{people.alpha.slug}/")
    console.choose_language(language)

    page.locator("nav.side a[data-section=billing]").click()
    expect(page.locator("h1")).to_have_text(says(language, "Billing"))
    page.get_by_role("link", name=says(language, "Statements"), exact=True).click()
    listed = page.locator("[data-testid=statements] tbody tr")
    expect(listed).to_have_count(Statement.objects.for_organization(people.alpha).count())
    console.shot("statements")

    listed.filter(has_text="2024-03").get_by_role("link").click()
    expect(page.locator("h1")).to_have_text(says(language, "Statement %(month)s", month="2024-03"))
    total = f"{march.currency} {march.total:,.2f}"
    expect(page.locator("[data-testid=totals]")).to_contain_text(total)
    payslips = page.locator("[data-testid=payslip]")
    expect(payslips).to_have_count(2)
    expect(payslips.filter(has_text="小艺")).to_have_count(1)
    expect(payslips.filter(has_text="小明")).to_have_count(1)
    assert "贝塔导购" not in console.text()
    their_total = books[people.beta.slug].total
    assert f"{their_total:,.2f}" not in console.text()
    assert march.total > Decimal(0)
    console.shot("statement")

    # One employee's payslip.
    payslips.filter(has_text="小艺").locator("h3 a").click()
    expect(page.locator("h1")).to_contain_text("小艺")
    expect(page.locator("[data-testid=payslip]")).to_contain_text(says(language, "Payslip total"))
    console.shot("payslip")
