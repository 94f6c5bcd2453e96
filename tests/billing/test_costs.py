"""Billing's prices as ROI asks for them (`ANALYTICS_PRICE_PROVIDER`), and the dependency rule
that makes the provider necessary: analytics never imports billing.

Real: the plans migration 0002 makes, the organizations' subscriptions, the database the suite
runs on, the analytics source files read from disk. Nothing is simulated.
"""

from __future__ import annotations

import ast
import datetime as dt
import pathlib
from decimal import Decimal

import pytest
from django.conf import settings

from ironbowl.analytics import rates
from ironbowl.billing import costs
from ironbowl.billing.models import Plan, Subscription
from tests import factories
from tests.billing.conftest import ensure_plans, local, make_organization, subscribe

pytestmark = pytest.mark.django_db

D = Decimal
ANALYTICS = pathlib.Path(__file__).resolve().parents[2] / "platform" / "ironbowl" / "analytics"


def test_the_current_plans_overage_prices_per_ledger_unit(shanghai):
    """The organization moved from standard to enterprise: the current plan prices, each billing
    unit's price divided into the ledger's unit (no allowance subtracted)."""
    subscribe(shanghai, [("standard", local("Asia/Shanghai", 2022, 1, 1)),
                         ("enterprise", local("Asia/Shanghai", 2024, 6, 1))])  # fmt: skip

    found = costs.prices_for(shanghai, "CNY")

    assert found is not None
    assert found.stream_minute == D("12.00") / 60 == D("0.2")
    assert found.interaction == D("0.008")
    assert found.gpu_second == D("11.00") / 3600
    assert found.rendered_second == D("2.00") / 60
    assert found.seat_day(D("1999.00"), dt.date(2024, 2, 10)) == D("1999.00") / 29


def test_no_prices_in_another_currency(shanghai):
    assert costs.prices_for(shanghai, "USD") is None


def test_reading_prices_writes_no_subscription(db):
    """An organization without a subscription is priced by the plan its `plan` names; reading
    does not create the subscription."""
    ensure_plans()
    organization = factories.OrganizationFactory(plan="trial")

    found = costs.prices_for(organization, "CNY")

    trial = Plan.objects.get(code="trial")
    assert found is not None and found.stream_minute == trial.price_stream_hour / 60 == D("0.5")
    assert not Subscription.objects.for_organization(organization).exists()


def test_the_setting_names_this_provider_and_analytics_prices_with_it():
    organization = make_organization(plan="standard")

    pricing = rates.pricing(organization, "CNY")

    assert settings.ANALYTICS_PRICE_PROVIDER == "ironbowl.billing.costs.prices_for"
    assert pricing.source == "billing" and pricing.rates.interaction == D("0.012")
    assert pricing.rates.seat_day == rates.LIST_RATES["standard"]["CNY"].seat_day


def test_analytics_does_not_import_billing():
    """Every module of ironbowl.analytics, parsed: no import names ironbowl.billing."""
    offending = []
    for path in ANALYTICS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            if any(name.startswith("ironbowl.billing") for name in names):
                offending.append(str(path.relative_to(ANALYTICS)))
    assert list(ANALYTICS.rglob("*.py")) and offending == []
