"""/api/v1/orgs/{org}/billing/account/: whether Stripe collects, the billing e-mail (GET, and
PUT / PATCH to set it), and where dunning stands.

Real: the HTTP requests through Django and DRF as members of each role; the `stripe` SDK
creating and updating the customer over a socket; the failed payment delivered as a webhook
signed like Stripe's and verified by the SDK; the database and its audit log. Simulated:
Stripe's servers (the local stand-in, which refuses a POST whose idempotency key is not derived
from our ids and replays the answer of a key it has seen).
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from ironbowl.billing import push, stripe_client
from ironbowl.billing.models import BillingAccount, LineKind, StripeInvoice
from tenants.models import AuditEntry
from tenants.roles import Role
from tests import factories
from tests.billing.conftest import closed_statement, hire, make_organization
from tests.billing.stripe_standin import event, signature

pytestmark = pytest.mark.django_db


def account(client, slug: str):
    return client.get(f"/api/v1/orgs/{slug}/billing/account/")


def set_email(client, slug: str, email, method: str = "put"):
    return getattr(client, method)(
        f"/api/v1/orgs/{slug}/billing/account/", {"email": email}, format="json"
    )


def written(organization) -> tuple:
    """What setting the e-mail may change: the account and the audit log."""
    return (
        list(BillingAccount.objects.for_organization(organization).values_list("email")),
        AuditEntry.objects.for_organization(organization).count(),
    )


def customer_of(organization) -> str:
    return BillingAccount.objects.for_organization(organization).get().stripe_customer_id


def test_an_organization_without_stripe_sees_ledger_only_billing(settings, client_for):
    settings.STRIPE_SECRET_KEY = ""
    organization = make_organization(slug="ledger-only")
    owner = client_for(factories.MembershipFactory(organization=organization, role=Role.OWNER))
    answer = account(owner, "ledger-only")
    assert answer.status_code == 200
    assert answer.json() == {
        "stripe_enabled": False,
        "stripe_customer": False,
        "email": "",
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


def test_billing_members_set_the_email_and_it_is_audited(settings, org_a, client_for):
    """Without Stripe the e-mail is kept for when it is configured; PUT and PATCH both set it."""
    settings.STRIPE_SECRET_KEY = ""
    billing = client_for(factories.MembershipFactory(organization=org_a, role=Role.BILLING))

    answer = set_email(billing, org_a.slug, "Finance@Alpha-Hospital.EXAMPLE")

    assert answer.status_code == 200, answer.json()
    assert answer.json()["email"] == "Finance@alpha-hospital.example"
    assert account(billing, org_a.slug).json()["email"] == "Finance@alpha-hospital.example"
    entry = AuditEntry.objects.for_organization(org_a).get(action="billing.set_email")
    assert entry.after["email"] == "Finance@alpha-hospital.example"
    assert set_email(billing, org_a.slug, "ap@alpha.example", "patch").json()["email"] == (
        "ap@alpha.example"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not an address"},
        {"email": ""},
        {"email": None},
        {},
        {"email": "ap@alpha.example", "dunning": "good"},  # read-only fields are not settable
        {"email": "a" * 250 + "@x.example"},
    ],
)
def test_a_bad_email_is_refused_and_changes_nothing(stripe_standin, org_a, client_for, body):
    owner = client_for(factories.MembershipFactory(organization=org_a, role=Role.OWNER))
    assert set_email(owner, org_a.slug, "first@alpha.example").status_code == 200
    before, calls = written(org_a), len(stripe_standin.calls)

    answer = owner.put(f"/api/v1/orgs/{org_a.slug}/billing/account/", body, format="json")

    assert answer.status_code == 400
    assert written(org_a) == before
    assert len(stripe_standin.calls) == calls


def test_who_may_set_the_email(stripe_standin, org_a, org_b, client_for):
    """Owners and billing members only; an admin sees it, cannot set it; another organization's
    owner is told the account does not exist, and alpha's is untouched."""
    admin = client_for(factories.MembershipFactory(organization=org_a, role=Role.ADMIN))
    beta_owner = client_for(factories.MembershipFactory(organization=org_b, role=Role.OWNER))
    before = written(org_a)

    assert set_email(admin, org_a.slug, "x@evil.example").status_code == 403
    assert set_email(beta_owner, org_a.slug, "x@evil.example").status_code == 404
    assert account(admin, org_a.slug).status_code == 200

    assert written(org_a) == before
    assert stripe_standin.calls == []


def test_the_stripe_customer_gets_the_first_owners_email_then_each_change(
    stripe_standin, client_for
):
    """The customer is made (here at the first invoice) with the first owner's e-mail, which
    the account then shows. Each later change is sent to Stripe under a key of its own — back
    to an earlier address too, which a key derived from the address alone would replay as a
    no-op — and every POST carries a key derived from our ids."""
    organization = make_organization(slug="alpha")
    first = factories.MembershipFactory(organization=organization, role=Role.OWNER)
    factories.MembershipFactory(organization=organization, role=Role.OWNER)
    billing = client_for(factories.MembershipFactory(organization=organization, role=Role.BILLING))
    statement = closed_statement(organization, [(hire(organization), LineKind.SEATS, "10.00")])
    push.statement_closed(statement)
    push.sync()
    customer = stripe_standin.customers[customer_of(organization)]
    assert customer["email"] == first.user.email
    assert account(billing, "alpha").json()["email"] == first.user.email

    for address in ("ap@alpha.example", first.user.email, "ap@alpha.example"):
        assert set_email(billing, "alpha", address).status_code == 200
        assert stripe_standin.customers[customer_of(organization)]["email"] == address

    updates = stripe_standin.posts(f"/v1/customers/{customer['id']}")
    assert len({call.idempotency_key for call in updates}) == 3
    assert not any(call.replayed for call in updates)
    assert stripe_standin.violations == []


def test_an_email_set_before_the_customer_exists_is_the_customers(stripe_standin, client_for):
    organization = make_organization(slug="alpha")
    factories.MembershipFactory(organization=organization, role=Role.OWNER)
    billing = client_for(factories.MembershipFactory(organization=organization, role=Role.BILLING))
    assert set_email(billing, "alpha", "ap@alpha.example").status_code == 200
    assert stripe_standin.calls == []  # no customer yet: nothing to update

    push.ensure_customer(organization, stripe_client.client())

    assert stripe_standin.customers[customer_of(organization)]["email"] == "ap@alpha.example"


def test_with_stripe_down_the_email_is_not_changed(stripe_standin, client_for):
    """Stripe must hear of the change: when it does not answer, 503 and nothing is saved, so
    the account and Stripe never disagree; the same change later goes through."""
    organization = make_organization(slug="alpha")
    billing = client_for(factories.MembershipFactory(organization=organization, role=Role.BILLING))
    push.ensure_customer(organization, stripe_client.client())
    before = written(organization)
    stripe_standin.down = True

    answer = set_email(billing, "alpha", "ap@alpha.example")

    assert answer.status_code == 503
    assert answer.json()["code"] == "stripe_unavailable"
    assert written(organization) == before

    stripe_standin.up()
    assert set_email(billing, "alpha", "ap@alpha.example").status_code == 200
    assert stripe_standin.customers[customer_of(organization)]["email"] == "ap@alpha.example"
