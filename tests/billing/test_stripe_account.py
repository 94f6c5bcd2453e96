"""GET /api/v1/orgs/{org}/billing/account/: whether Stripe collects, and where dunning stands.

Real: the HTTP requests through Django and DRF as members of each role; the failed payment
delivered as a webhook signed like Stripe's and verified by the `stripe` SDK; the database.
Simulated: Stripe's servers (the local stand-in the invoice was pushed to).
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from ironbowl.billing import push
from ironbowl.billing.models import LineKind, StripeInvoice
from tenants.roles import Role
from tests import factories
from tests.billing.conftest import closed_statement, hire, make_organization
from tests.billing.stripe_standin import event, signature

pytestmark = pytest.mark.django_db


def account(client, slug: str):
    return client.get(f"/api/v1/orgs/{slug}/billing/account/")


def test_an_organization_without_stripe_sees_ledger_only_billing(settings, client_for):
    settings.STRIPE_SECRET_KEY = ""
    organization = make_organization(slug="ledger-only")
    owner = client_for(factories.MembershipFactory(organization=organization, role=Role.OWNER))
    answer = account(owner, "ledger-only")
    assert answer.status_code == 200
    assert answer.json() == {
        "stripe_enabled": False,
        "stripe_customer": False,
        "dunning": "good",
        "grace_until": None,
        "suspended_employments": [],
        "stripe_subscription_status": "",
    }


def test_members_who_read_billing_see_the_dunning_and_others_do_not(stripe_standin, client_for):
    organization = make_organization(slug="alpha")
    statement = closed_statement(organization, [(hire(organization), LineKind.SEATS, "10.00")])
    push.statement_closed(statement)
    push.sync()
    mirror = StripeInvoice.objects.for_organization(organization).get()
    body = event("invoice.payment_failed", stripe_standin.fail_payment(mirror.stripe_invoice_id))
    APIClient().post(
        "/api/v1/billing/stripe/webhook/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature(body),
    )
    billing = client_for(factories.MembershipFactory(organization=organization, role=Role.BILLING))
    analyst = client_for(factories.MembershipFactory(organization=organization, role=Role.ANALYST))
    beta_owner = client_for(
        factories.MembershipFactory(organization=make_organization(slug="beta"), role=Role.OWNER)
    )

    seen = account(billing, "alpha").json()

    assert seen["stripe_enabled"] and seen["stripe_customer"]
    assert seen["dunning"] == "past_due" and seen["grace_until"]
    assert account(analyst, "alpha").status_code == 403
    assert account(beta_owner, "alpha").status_code == 404
