"""Stripe's webhook: POST /api/v1/billing/stripe/webhook/.

Real: the HTTP request through Django and DRF; the signature check by the `stripe` SDK
(`stripe.Webhook.construct_event` with its default five minutes' tolerance); the database.
Simulated: Stripe itself — event bodies are built and signed here exactly as Stripe signs them
(t=<time>,v1=HMAC-SHA256(secret, "<time>.<body>")), and the invoices they speak of were pushed
to the local stand-in by the real push code and the real SDK.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from ironbowl.billing import push
from ironbowl.billing.models import (
    BillingAccount,
    DunningState,
    LineKind,
    Notification,
    Statement,
    StripeEvent,
    StripeInvoice,
    StripeInvoiceStatus,
)
from tenants.models import AuditEntry
from tests.billing.conftest import closed_statement, hire, make_organization
from tests.billing.stripe_standin import event, signature

pytestmark = pytest.mark.django_db

URL = "/api/v1/billing/stripe/webhook/"


def deliver(body: bytes, header: str | None = None):
    extra = {"HTTP_STRIPE_SIGNATURE": signature(body) if header is None else header}
    return APIClient().post(URL, data=body, content_type="application/json", **extra)


def invoiced(organization, amount: str = "1999.00") -> StripeInvoice:
    """A closed statement pushed to the stand-in: an open Stripe invoice and its mirror."""
    statement = closed_statement(organization, [(hire(organization), LineKind.SEATS, amount)])
    push.statement_closed(statement)
    push.sync()
    mirror = StripeInvoice.objects.for_organization(organization).get(statement=statement)
    assert mirror.status == StripeInvoiceStatus.OPEN
    return mirror


@pytest.fixture
def world(stripe_standin):
    """Two organizations, each with an open invoice in the stand-in."""
    alpha, beta = make_organization(slug="alpha"), make_organization(slug="beta")
    return alpha, invoiced(alpha), beta, invoiced(beta, "2999.00")


def state(organization) -> tuple:
    """Everything a webhook may change for an organization."""
    account = BillingAccount.objects.for_organization(organization).get()
    return (
        list(
            StripeInvoice.objects.for_organization(organization).values_list(
                "status", "amount_paid", "payment_failed_at", "last_event_at"
            )
        ),
        list(Statement.objects.for_organization(organization).values_list("amount_paid")),
        (account.dunning, account.grace_until, account.stripe_subscription_status),
        Notification.objects.for_organization(organization).count(),
        AuditEntry.objects.for_organization(organization).count(),
    )


def test_a_paid_invoice_is_applied(stripe_standin, world):
    """invoice.paid: the mirror is paid, the statement records what was paid, a notification."""
    alpha, mirror, beta, _other = world
    before_beta = state(beta)
    body = event("invoice.paid", stripe_standin.pay(mirror.stripe_invoice_id))

    answer = deliver(body)

    assert answer.status_code == 200, answer.json()
    assert answer.json()["outcome"] == "paid"
    mirror.refresh_from_db()
    assert mirror.status == StripeInvoiceStatus.PAID
    assert mirror.amount_paid == mirror.amount_due
    statement = Statement.objects.for_organization(alpha).get(pk=mirror.statement_id)
    assert statement.amount_paid == statement.total
    assert Notification.objects.for_organization(alpha).get().kind == "payment_received"
    assert StripeEvent.objects.get().organization == alpha
    assert state(beta) == before_beta


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("t={now},v1=" + "0" * 64, "signature_invalid"),  # forged
        ("wrong-secret", "signature_invalid"),  # signed with another secret
        ("", "signature_invalid"),  # no signature at all
        ("stale", "signature_stale"),  # ours, but ten minutes old: a replay
    ],
)
def test_forged_or_stale_deliveries_are_refused_and_change_nothing(
    stripe_standin, world, header, code
):
    alpha, mirror, _beta, _other = world
    body = event("invoice.paid", stripe_standin.pay(mirror.stripe_invoice_id))
    if header == "wrong-secret":
        header = signature(body, "whsec_someone_else")
    elif header == "stale":
        header = signature(body, at=int(time.time()) - 600)
    else:
        header = header.format(now=int(time.time()))
    before = state(alpha)

    answer = deliver(body, header)

    assert answer.status_code == 400
    assert answer.json()["code"] == code
    assert state(alpha) == before
    assert not StripeEvent.objects.exists()


def test_a_body_changed_after_signing_is_refused(stripe_standin, world):
    _alpha, mirror, _beta, _other = world
    body = event("invoice.paid", stripe_standin.pay(mirror.stripe_invoice_id))
    header = signature(body)
    tampered = body.replace(b'"amount_paid": 211894', b'"amount_paid": 1')
    assert tampered != body
    answer = deliver(tampered, header)
    assert answer.status_code == 400
    assert answer.json()["code"] == "signature_invalid"


def test_a_redelivered_event_is_applied_once(stripe_standin, world):
    """Stripe delivers at least once: the same event id a second time answers 200 and changes
    nothing (one notification, one recorded event)."""
    alpha, mirror, _beta, _other = world
    body = event("invoice.paid", stripe_standin.pay(mirror.stripe_invoice_id))
    assert deliver(body).json()["outcome"] == "paid"
    after_first = state(alpha)

    again = deliver(body)

    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert state(alpha) == after_first
    assert StripeEvent.objects.count() == 1


def test_an_older_failure_arriving_after_the_payment_does_not_undo_it(stripe_standin, world):
    """Out of order: the payment (created later) arrives first, then the earlier failed attempt.
    The invoice stays paid and the organization is not put in dunning."""
    alpha, mirror, _beta, _other = world
    now = int(time.time())
    failed = event(
        "invoice.payment_failed",
        stripe_standin.fail_payment(mirror.stripe_invoice_id),
        created=now - 60,
    )
    paid = event("invoice.paid", stripe_standin.pay(mirror.stripe_invoice_id), created=now)
    assert deliver(paid).json()["outcome"] == "paid"

    answer = deliver(failed)

    assert answer.status_code == 200
    assert answer.json()["outcome"] == "stale"
    mirror.refresh_from_db()
    assert mirror.status == StripeInvoiceStatus.PAID and mirror.payment_failed_at is None
    assert BillingAccount.objects.for_organization(alpha).get().dunning == DunningState.GOOD


def test_a_failure_event_for_a_paid_invoice_never_unpays_it(stripe_standin, world):
    """Even a later-stamped failure (same second, clock skew) leaves a paid invoice paid."""
    alpha, mirror, _beta, _other = world
    now = int(time.time())
    paid = event("invoice.paid", stripe_standin.pay(mirror.stripe_invoice_id), created=now)
    assert deliver(paid).json()["outcome"] == "paid"
    invoice = dict(stripe_standin.invoices[mirror.stripe_invoice_id], status="open")
    answer = deliver(event("invoice.payment_failed", invoice, created=now + 1))
    assert answer.json()["outcome"] == "already_paid"
    assert BillingAccount.objects.for_organization(alpha).get().dunning == DunningState.GOOD


def test_an_unknown_customer_is_refused(stripe_standin, world):
    alpha, mirror, beta, _other = world
    invoice = dict(stripe_standin.invoices[mirror.stripe_invoice_id], customer="cus_not_ours")
    before = state(alpha), state(beta)
    answer = deliver(event("invoice.paid", invoice))
    assert answer.status_code == 400
    assert answer.json()["code"] == "unknown_customer"
    assert (state(alpha), state(beta)) == before
    assert not StripeEvent.objects.exists()


def test_another_organizations_invoice_under_our_customer_is_refused(stripe_standin, world):
    """An event pairing alpha's customer with beta's invoice touches neither."""
    alpha, mirror, beta, other = world
    invoice = dict(
        stripe_standin.invoices[other.stripe_invoice_id],
        customer=stripe_standin.invoices[mirror.stripe_invoice_id]["customer"],
        metadata={},
    )
    before = state(alpha), state(beta)
    answer = deliver(event("invoice.paid", invoice))
    assert answer.status_code == 400
    assert answer.json()["code"] == "unknown_invoice"
    assert (state(alpha), state(beta)) == before


def test_metadata_naming_another_organization_is_refused(stripe_standin, world):
    alpha, mirror, beta, _other = world
    invoice = stripe_standin.invoices[mirror.stripe_invoice_id]
    invoice = dict(invoice, metadata={**invoice["metadata"], "organization_id": str(beta.pk)})
    before = state(alpha), state(beta)
    answer = deliver(event("invoice.payment_failed", invoice))
    assert answer.status_code == 400
    assert answer.json()["code"] == "organization_mismatch"
    assert (state(alpha), state(beta)) == before


def test_subscription_updates_are_mirrored_and_a_deletion_only_noted(stripe_standin, world):
    """Subscriptions made in Stripe are mirrored, newest event winning; a deletion is written
    to the audit log and changes nothing else (no hire is touched)."""
    alpha, mirror, _beta, _other = world
    customer = stripe_standin.invoices[mirror.stripe_invoice_id]["customer"]
    subscription = {"id": "sub_1", "object": "subscription", "customer": customer}
    now = int(time.time())
    assert (
        deliver(
            event(
                "customer.subscription.updated", {**subscription, "status": "past_due"}, created=now
            )
        ).json()["outcome"]
        == "subscription_past_due"
    )
    older = event(
        "customer.subscription.updated", {**subscription, "status": "active"}, created=now - 5
    )
    assert deliver(older).json()["outcome"] == "stale"
    account = BillingAccount.objects.for_organization(alpha).get()
    assert account.stripe_subscription_status == "past_due"

    answer = deliver(
        event(
            "customer.subscription.deleted", {**subscription, "status": "canceled"}, created=now + 1
        )
    )

    assert answer.json()["outcome"] == "subscription_deleted"
    account.refresh_from_db()
    assert (account.stripe_subscription_id, account.stripe_subscription_status) == (
        "sub_1",
        "canceled",
    )
    assert account.dunning == DunningState.GOOD
    note = AuditEntry.objects.for_organization(alpha).get(
        action="billing.stripe_subscription_deleted"
    )
    assert note.after["stripe_subscription_status"] == "canceled"


def test_an_event_type_we_do_not_handle_is_recorded_and_ignored(stripe_standin, world):
    _alpha, mirror, _beta, _other = world
    answer = deliver(event("invoice.finalized", stripe_standin.invoices[mirror.stripe_invoice_id]))
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "ignored"
    assert StripeEvent.objects.get().outcome == "ignored"


def test_a_signed_body_that_is_not_an_event_is_refused(stripe_standin):
    body = b'{"hello": "world"}'
    answer = deliver(body)
    assert answer.status_code == 400
    assert answer.json()["code"] == "payload_invalid"


def test_without_a_webhook_secret_there_is_no_endpoint(settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = event("invoice.paid", {"id": "in_1", "customer": "cus_1"})
    assert deliver(body, "t=1,v1=00").status_code == 404


def test_amounts_come_back_exactly(stripe_standin, world):
    """What Stripe says was paid (in fen) is stored to the cent."""
    alpha, mirror, _beta, _other = world
    deliver(event("invoice.paid", stripe_standin.pay(mirror.stripe_invoice_id)))
    statement = Statement.objects.for_organization(alpha).get(pk=mirror.statement_id)
    assert statement.amount_paid == Decimal("2118.94")  # 1,999.00 + 6% tax


def test_a_payment_older_than_the_last_failure_still_counts(stripe_standin, world):
    """Out of order the other way: the failed attempt (created later, by clock skew or a
    retry's timing) was applied first, then the payment arrives with an older time. Paid is
    final: it is applied, and the dunning it started is cleared."""
    alpha, mirror, _beta, _other = world
    now = int(time.time())
    paid = event("invoice.paid", stripe_standin.pay(mirror.stripe_invoice_id), created=now - 60)
    invoice = dict(stripe_standin.invoices[mirror.stripe_invoice_id], status="open")
    assert deliver(event("invoice.payment_failed", invoice, created=now)).json()["outcome"] == (
        "past_due"
    )

    answer = deliver(paid)

    assert answer.json()["outcome"] == "paid"
    mirror.refresh_from_db()
    assert mirror.status == StripeInvoiceStatus.PAID and mirror.payment_failed_at is None
    statement = Statement.objects.for_organization(alpha).get(pk=mirror.statement_id)
    assert statement.amount_paid == statement.total
    assert BillingAccount.objects.for_organization(alpha).get().dunning == DunningState.GOOD


def test_an_invoice_in_another_currency_is_refused(stripe_standin, world):
    """A statement in CNY is not paid by an event saying USD, whatever its amount."""
    alpha, mirror, beta, _other = world
    invoice = dict(stripe_standin.pay(mirror.stripe_invoice_id), currency="usd")
    before = state(alpha), state(beta)

    answer = deliver(event("invoice.paid", invoice))

    assert answer.status_code == 400
    assert answer.json()["code"] == "currency_mismatch"
    assert (state(alpha), state(beta)) == before
    assert not StripeEvent.objects.exists()


@pytest.mark.parametrize(
    ("key", "livemode"), [("sk_test_ironbowl_standin", True), ("sk_live_ironbowl", False)]
)
def test_an_event_of_the_other_mode_is_refused(stripe_standin, world, settings, key, livemode):
    """A live event at a test key's endpoint, or a test event at a live one: a
    misconfiguration, refused with nothing written."""
    alpha, mirror, _beta, _other = world
    body = event("invoice.paid", stripe_standin.pay(mirror.stripe_invoice_id), livemode=livemode)
    settings.STRIPE_SECRET_KEY = key
    before = state(alpha)

    answer = deliver(body)

    assert answer.status_code == 400
    assert answer.json()["code"] == "livemode_mismatch"
    assert state(alpha) == before
    assert not StripeEvent.objects.exists()


def test_an_event_of_the_keys_mode_is_applied_under_a_live_key(stripe_standin, world, settings):
    _alpha, mirror, _beta, _other = world
    body = event("invoice.paid", stripe_standin.pay(mirror.stripe_invoice_id), livemode=True)
    settings.STRIPE_SECRET_KEY = "sk_live_ironbowl"
    assert deliver(body).json()["outcome"] == "paid"
