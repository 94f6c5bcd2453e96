"""Refunds: POST /api/v1/billing/statements/{id}/refunds/ (platform staff only), and the
organization's list at /api/v1/orgs/{org}/billing/refunds/.

Real: the HTTP requests through Django and DRF with session users and API keys; the `stripe` SDK
calling the stand-in over a socket; the payment applied by a signed webhook verified by the SDK;
the audit log; the database. Simulated: Stripe's servers (the local stand-in, which refunds
against the invoice's payment intent and never more than was paid, like Stripe), and Stripe's
24 hours of idempotency keys running out (`forget_idempotency_keys`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from ironbowl.billing import push
from ironbowl.billing.models import LineKind, Refund, RefundStatus, Statement, StripeInvoice
from tenants.models import AuditEntry
from tenants.roles import Role
from tests import factories
from tests.billing.conftest import closed_statement, hire, make_organization
from tests.billing.stripe_standin import event, signature

pytestmark = pytest.mark.django_db


def url(statement) -> str:
    return f"/api/v1/billing/statements/{statement.pk}/refunds/"


@pytest.fixture
def staff() -> APIClient:
    client = APIClient()
    client.force_authenticate(user=factories.UserFactory(is_staff=True))
    return client


def paid_statement(organization, standin, amount: str = "1000.00") -> Statement:
    """A statement invoiced in the stand-in, paid there, and the payment applied by webhook."""
    statement = closed_statement(
        organization, [(hire(organization), LineKind.SEATS, amount)], tax_rate="0"
    )
    push.statement_closed(statement)
    push.sync()
    mirror = StripeInvoice.objects.for_organization(organization).get(statement=statement)
    body = event("invoice.paid", standin.pay(mirror.stripe_invoice_id))
    answer = APIClient().post(
        "/api/v1/billing/stripe/webhook/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature(body),
    )
    assert answer.status_code == 200
    statement.refresh_from_db()
    assert statement.amount_paid == Decimal(amount)
    return statement


def refunded(statement) -> Decimal:
    statement.refresh_from_db()
    return statement.amount_refunded


def test_staff_refund_part_of_a_paid_statement(stripe_standin, staff):
    """Stripe refunds the invoice's payment for the amount in fen, under `refund-{id}`; the
    refund is recorded, counted on the statement and audited in the organization."""
    organization = make_organization()
    statement = paid_statement(organization, stripe_standin)

    answer = staff.post(
        url(statement), {"amount": "300.50", "reason": "Outage on 5 May"}, format="json"
    )

    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert (body["status"], body["amount"]) == ("succeeded", "300.50")
    refund = Refund.objects.for_organization(organization).get()
    (made,) = stripe_standin.refunds.values()
    assert made["amount"] == 30_050
    assert made["metadata"]["refund_id"] == str(refund.pk)
    assert refund.stripe_refund_id == made["id"]
    assert stripe_standin.posts("/v1/refunds")[0].idempotency_key == f"refund-{refund.pk}"
    assert refunded(statement) == Decimal("300.50")
    actions = set(
        AuditEntry.objects.for_organization(organization).values_list("action", flat=True)
    )
    assert {"billing.refund", "billing.refund_settled"} <= actions
    assert stripe_standin.violations == []


@pytest.mark.parametrize("first", [None, "600.00"])
def test_a_refund_larger_than_what_is_left_is_refused_and_changes_nothing(
    stripe_standin, staff, first
):
    """More than paid less refunded: 400 refund_exceeds_charge; no refund, no request to
    Stripe, the statement as it was, nothing audited."""
    organization = make_organization()
    statement = paid_statement(organization, stripe_standin)
    if first:
        assert (
            staff.post(url(statement), {"amount": first, "reason": "x"}, format="json").status_code
            == 201
        )
    too_much = "1000.01" if first is None else "400.01"
    before = (
        refunded(statement),
        Refund.objects.for_organization(organization).count(),
        len(stripe_standin.calls),
        AuditEntry.objects.for_organization(organization).count(),
    )

    answer = staff.post(url(statement), {"amount": too_much, "reason": "Goodwill"}, format="json")

    assert answer.status_code == 400
    assert answer.json()["code"] == "refund_exceeds_charge"
    assert answer.json()["fields"]["amount"][0]["code"] == "refund_exceeds_charge"
    after = (
        refunded(statement),
        Refund.objects.for_organization(organization).count(),
        len(stripe_standin.calls),
        AuditEntry.objects.for_organization(organization).count(),
    )
    assert after == before


def test_an_unpaid_statement_cannot_be_refunded(stripe_standin, staff):
    organization = make_organization()
    statement = closed_statement(organization, [(hire(organization), LineKind.SEATS, "10.00")])
    answer = staff.post(url(statement), {"amount": "0.01", "reason": "x"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["code"] == "refund_exceeds_charge"


@pytest.mark.parametrize("amount", ["abc", "-5", "0", "1.234", ""])
def test_bad_amounts_are_refused(stripe_standin, staff, amount):
    organization = make_organization()
    statement = paid_statement(organization, stripe_standin)
    answer = staff.post(url(statement), {"amount": amount, "reason": "x"}, format="json")
    assert answer.status_code == 400
    assert "amount" in answer.json()["fields"]
    assert not Refund.objects.for_organization(organization).exists()


def test_only_platform_staff_may_refund(stripe_standin, client_for):
    """An owner or billing member of the organization itself may not move money out; nor may
    an API key, nor anyone signed out."""
    organization = make_organization()
    statement = paid_statement(organization, stripe_standin)
    payload = {"amount": "1.00", "reason": "x"}
    for role in (Role.OWNER, Role.BILLING):
        member = factories.MembershipFactory(organization=organization, role=role)
        assert client_for(member).post(url(statement), payload, format="json").status_code == 403
    _key, raw = factories.make_api_key(organization, scopes=["billing.view"])
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert keyed.post(url(statement), payload, format="json").status_code == 403
    assert APIClient().post(url(statement), payload, format="json").status_code == 401
    assert not Refund.objects.for_organization(organization).exists()


def test_refund_while_stripe_is_down_stays_pending_and_is_made_once_later(stripe_standin, staff):
    """Stripe down: 202 and pending (its amount held); the sync asks again once Stripe is back,
    and a single Stripe refund is made, even after Stripe forgot the idempotency key."""
    organization = make_organization()
    statement = paid_statement(organization, stripe_standin)
    stripe_standin.lose_answers(1)  # Stripe refunds, but its answer is lost

    answer = staff.post(url(statement), {"amount": "100.00", "reason": "x"}, format="json")

    assert answer.status_code == 202
    assert answer.json()["status"] == "pending"
    assert refunded(statement) == Decimal("100.00")
    stripe_standin.forget_idempotency_keys()
    push.sync(timezone.now() + dt.timedelta(minutes=5))
    refund = Refund.objects.for_organization(organization).get()
    assert refund.status == RefundStatus.SUCCEEDED
    assert len(stripe_standin.refunds) == 1
    assert refund.stripe_refund_id == next(iter(stripe_standin.refunds))


def test_a_refund_stripe_refuses_gives_its_amount_back(stripe_standin, staff):
    """Someone refunded in Stripe's dashboard meanwhile: Stripe refuses ours; the refund is
    failed, the statement's refunded amount as before, and the answer says why."""
    organization = make_organization()
    statement = paid_statement(organization, stripe_standin)
    payment = next(iter(stripe_standin.invoice_payments.values()))
    stripe_standin.refunds["re_dashboard"] = {
        "id": "re_dashboard",
        "amount": 90_000,
        "payment_intent": payment["payment"]["payment_intent"],
        "metadata": {},
    }

    answer = staff.post(url(statement), {"amount": "200.00", "reason": "x"}, format="json")

    assert answer.status_code == 409
    assert answer.json()["code"] == "stripe_refused"
    assert "greater than unrefunded" in answer.json()["detail"]
    assert Refund.objects.for_organization(organization).get().status == RefundStatus.FAILED
    assert refunded(statement) == Decimal(0)


def test_the_organization_lists_its_own_refunds(stripe_standin, staff, client_for):
    alpha, beta = make_organization(slug="alpha"), make_organization(slug="beta")
    statement = paid_statement(alpha, stripe_standin)
    staff.post(url(statement), {"amount": "1.00", "reason": "x"}, format="json")
    billing = client_for(factories.MembershipFactory(organization=alpha, role=Role.BILLING))
    operator = client_for(factories.MembershipFactory(organization=alpha, role=Role.OPERATOR))
    stranger = client_for(factories.MembershipFactory(organization=beta, role=Role.OWNER))

    rows = billing.get("/api/v1/orgs/alpha/billing/refunds/").json()["results"]

    assert [row["amount"] for row in rows] == ["1.00"]
    assert operator.get("/api/v1/orgs/alpha/billing/refunds/").status_code == 403
    assert stranger.get("/api/v1/orgs/alpha/billing/refunds/").status_code == 404
    assert stranger.get("/api/v1/orgs/beta/billing/refunds/").json()["results"] == []
    assert staff.get(url(statement)).json()[0]["status"] == "succeeded"
