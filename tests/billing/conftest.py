"""Shared fixtures of the billing tests: organizations on a plan since a known time, hires with
a status history, and usage written straight into the ledger."""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import uuid
import zoneinfo
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import pytest

from avatars.models import Employment, EmploymentStatus, EmploymentTransition
from ironbowl.analytics.models import UsageRecord
from ironbowl.billing.models import Plan, Subscription
from tenants.models import Organization
from tests import factories
from tests.avatars.factories import EmploymentFactory, ready_avatar

# Long before any month the tests rate: organizations and their first plan start here.
EPOCH = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
_sources = itertools.count(1)


def local(zone: str, *args: int) -> dt.datetime:
    """A wall-clock time in `zone`, as an aware datetime."""
    return dt.datetime(*args, tzinfo=zoneinfo.ZoneInfo(zone))  # type: ignore[misc]


def ensure_plans() -> None:
    """The plans migration 0002 makes. A transactional test's flush empties every table,
    migrated rows included, so the transactional tests that run after one make them again."""
    migration = importlib.import_module("ironbowl.billing.migrations.0002_plans")
    for fields in migration.PLANS:
        Plan.objects.get_or_create(
            code=fields["code"], defaults={**fields, "currency": "CNY", "tax_rate": Decimal("0.06")}
        )


def make_organization(
    *, time_zone: str = "Asia/Shanghai", plan: str = "standard", **kwargs: Any
) -> Organization:
    """An organization created at EPOCH, on `plan` since then (a stored subscription)."""
    ensure_plans()
    organization: Organization = factories.OrganizationFactory(
        time_zone=time_zone, plan=plan, **kwargs
    )
    Organization.objects.filter(pk=organization.pk).update(created_at=EPOCH)
    organization.refresh_from_db()
    Subscription.objects.create(
        organization=organization, plan=Plan.objects.get(code=plan), starts_at=EPOCH
    )
    return organization


def subscribe(
    organization: Organization, changes: Iterable[tuple[str, dt.datetime]], discount: str = "0"
) -> None:
    """Replace the organization's subscriptions: each (plan code, start) runs to the next."""
    Subscription.objects.for_organization(organization).delete()
    changes = sorted(changes, key=lambda change: change[1])
    for (code, starts_at), following in itertools.zip_longest(changes, changes[1:]):
        Subscription.objects.create(
            organization=organization,
            plan=Plan.objects.get(code=code),
            starts_at=starts_at,
            ends_at=following[1] if following else None,
            discount_percent=Decimal(discount),
        )


def hire(
    organization: Organization,
    *,
    active_since: dt.datetime = EPOCH,
    seats: int = 1,
    rate: str = "1999.00",
    currency: str = "CNY",
    name: str | None = None,
    history: Iterable[tuple[dt.datetime, str]] = (),
) -> Employment:
    """A hire offered at EPOCH, active from `active_since`, then through `history`'s
    (time, status) steps — written as the transitions the lifecycle service records."""
    employment: Employment = EmploymentFactory(
        organization=organization,
        avatar=ready_avatar(visibility="public", name_zh=name or "小艺", name_en=""),
        seats=seats,
        rate=Decimal(rate),
        currency=currency,
    )
    Employment.objects.for_organization(organization).filter(pk=employment.pk).update(
        created_at=EPOCH
    )
    steps = [(active_since, EmploymentStatus.ACTIVE.value), *history]
    status = EmploymentStatus.OFFERED.value
    for at, to in steps:
        EmploymentTransition.objects.create(
            organization=organization,
            employment=employment,
            from_status=status,
            to_status=to,
            reason="test",
            actor_label="test",
            created_at=at,
        )
        status = to
    Employment.objects.for_organization(organization).filter(pk=employment.pk).update(status=status)
    employment.refresh_from_db()
    return employment


def usage(
    organization: Organization,
    usage_type: str,
    quantity: Decimal | int | str,
    at: dt.datetime,
    employment: Employment | None = None,
    **fields: Any,
) -> UsageRecord:
    """One record appended straight to the ledger (what the worker protocol or an import
    would append), with a fresh source id."""
    record: UsageRecord = UsageRecord.objects.create(
        organization=organization,
        source_id=f"test:{next(_sources)}:{uuid.uuid4().hex[:8]}",
        usage_type=usage_type,
        quantity=Decimal(quantity),
        employment_id=employment.pk if employment else None,
        occurred_at=at,
        **fields,
    )
    return record


@pytest.fixture
def shanghai(db) -> Organization:
    return make_organization(time_zone="Asia/Shanghai")


@pytest.fixture
def new_york(db) -> Organization:
    return make_organization(time_zone="America/New_York")


@pytest.fixture
def stripe_standin(settings):
    """Stripe configured, its HTTP API answered by the local stand-in (tests/billing/
    stripe_standin.py) that the real SDK calls over a socket."""
    from tests.billing import stripe_standin as standin

    settings.STRIPE_SECRET_KEY = standin.SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = standin.WEBHOOK_SECRET
    with standin.running() as running:
        yield running


def closed_statement(
    organization: Organization,
    lines: Iterable[tuple[Employment | None, str, str]],
    *,
    period: dt.date = dt.date(2024, 5, 1),
    tax_rate: str = "0.06",
    currency: str = "CNY",
) -> Any:
    """A closed statement written directly (as rating would close it): `lines` are
    (employment or None, kind, amount); discount lines are negative; totals add up the way
    rating's do (tax on the subtotal after discount, rounded half up to the cent). Written open,
    then closed, as `statements.close` does: on PostgreSQL a closed statement's lines are final."""
    from decimal import ROUND_HALF_UP

    from django.utils import timezone

    from ironbowl.billing.models import LineKind, Statement, StatementLine, StatementStatus

    rows = [(employment, kind, Decimal(amount)) for employment, kind, amount in lines]
    subtotal = sum((a for _e, k, a in rows if k != LineKind.DISCOUNT), Decimal(0))
    discount = -sum((a for _e, k, a in rows if k == LineKind.DISCOUNT), Decimal(0))
    tax = ((subtotal - discount) * Decimal(tax_rate)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    statement = Statement.objects.create(
        organization=organization,
        period=period,
        currency=currency,
        subtotal=subtotal,
        discount=discount,
        tax=tax,
        total=subtotal - discount + tax,
        rated_at=timezone.now(),
    )
    for position, (employment, kind, amount) in enumerate(rows):
        StatementLine.objects.create(
            organization=organization,
            statement=statement,
            employment_id=employment.pk if employment else None,
            kind=kind,
            description=f"{kind} line",
            quantity=Decimal(1),
            unit="month",
            unit_price=amount,
            amount=amount,
            position=position,
        )
    statement.status, statement.closed_at = StatementStatus.CLOSED, timezone.now()
    statement.save(update_fields=["status", "closed_at"])
    return statement
