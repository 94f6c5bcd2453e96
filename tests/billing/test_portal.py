"""POST /api/v1/orgs/{org}/billing/account/portal/: a Stripe Billing Portal session, where
finance adds the card or bank debit that Stripe charges its invoices to.

Real: the HTTP requests through Django and DRF as members of each role; the `stripe` SDK making
the customer and the portal session over a socket; the database and its audit log. Simulated:
Stripe's servers (the local stand-in, which refuses a POST whose idempotency key is not derived
from our ids and replays the answer of a key it has seen), and the clock of one test (a `now`
given to the service, to ask twice within one minute without depending on when the test runs).
"""

from __future__ import annotations

import datetime as dt

import pytest

from ironbowl.billing import push, stripe_client
from ironbowl.billing.models import BillingAccount
from tenants.audit import SYSTEM
from tenants.models import AuditEntry
from tenants.roles import Role
from tests import factories

pytestmark = pytest.mark.django_db


def portal(client, slug: str, body=None):
    return client.post(f"/api/v1/orgs/{slug}/billing/account/portal/", body or {}, format="json")


def written(organization) -> tuple:
    return (
        list(
            BillingAccount.objects.for_organization(organization).values_list(
                "stripe_customer_id", "email"
            )
        ),
        AuditEntry.objects.for_organization(organization).count(),
    )


def test_finance_gets_a_portal_session_for_its_customer(stripe_standin, org_a, client_for):
    """The customer is made on the way (with the owner's e-mail); the session is Stripe's,
    for that customer, and leads back to the console's billing page; audited."""
    owner = factories.MembershipFactory(organization=org_a, role=Role.OWNER)
    billing = client_for(factories.MembershipFactory(organization=org_a, role=Role.BILLING))

    answer = portal(billing, org_a.slug)

    assert answer.status_code == 201, answer.json()
    [session] = stripe_standin.portal_sessions.values()
    assert answer.json() == {"url": session["url"]}
    account = BillingAccount.objects.for_organization(org_a).get()
    assert session["customer"] == account.stripe_customer_id
    assert stripe_standin.customers[account.stripe_customer_id]["email"] == owner.user.email
    assert session["return_url"] == f"http://testserver/console/o/{org_a.slug}/billing/"
    assert AuditEntry.objects.for_organization(org_a).filter(action="billing.open_portal").exists()
    assert stripe_standin.violations == []


def test_the_return_address_is_always_ours(stripe_standin, org_a, client_for):
    """A body naming another return address is not an open redirect: it is ignored."""
    owner = client_for(factories.MembershipFactory(organization=org_a, role=Role.OWNER))
    answer = portal(owner, org_a.slug, {"return_url": "https://evil.example/"})
    assert answer.status_code == 201
    [session] = stripe_standin.portal_sessions.values()
    assert session["return_url"].startswith(f"http://testserver/console/o/{org_a.slug}/")


def test_without_stripe_there_is_no_portal(settings, org_a, client_for):
    settings.STRIPE_SECRET_KEY = ""
    owner = client_for(factories.MembershipFactory(organization=org_a, role=Role.OWNER))
    before = written(org_a)

    answer = portal(owner, org_a.slug)

    assert answer.status_code == 409
    assert answer.json()["code"] == "stripe_not_configured"
    assert written(org_a) == before


def test_with_stripe_down_nothing_is_written(stripe_standin, org_a, client_for):
    owner = client_for(factories.MembershipFactory(organization=org_a, role=Role.OWNER))
    before = written(org_a)
    stripe_standin.down = True

    answer = portal(owner, org_a.slug)

    assert answer.status_code == 503
    assert answer.json()["code"] == "stripe_unavailable"
    assert written(org_a) == before


def test_who_may_open_the_portal(stripe_standin, org_a, org_b, client_for):
    """billing.manage only (owners and billing members); another organization's owner gets
    404, and nothing reaches Stripe for alpha."""
    admin = client_for(factories.MembershipFactory(organization=org_a, role=Role.ADMIN))
    analyst = client_for(factories.MembershipFactory(organization=org_a, role=Role.ANALYST))
    beta_owner = client_for(factories.MembershipFactory(organization=org_b, role=Role.OWNER))
    before = written(org_a)

    assert portal(admin, org_a.slug).status_code == 403
    assert portal(analyst, org_a.slug).status_code == 403
    assert portal(beta_owner, org_a.slug).status_code == 404

    assert written(org_a) == before
    assert stripe_standin.calls == []


def test_asking_twice_within_a_minute_gives_the_same_session(stripe_standin, org_a):
    """The key is the organization and the minute: a retry after a lost answer gets the same
    session; the next minute, a new one."""
    at = dt.datetime(2024, 6, 3, 9, 15, 20, tzinfo=dt.UTC)
    back = "http://testserver/console/o/alpha-hospital/billing/"
    push.ensure_customer(org_a, stripe_client.client())
    stripe_standin.lose_answers(1)  # the session is made, its answer lost
    with pytest.raises(stripe_client.StripeDown):
        push.billing_portal_url(SYSTEM, org_a, back, now=at)

    first = push.billing_portal_url(SYSTEM, org_a, back, now=at + dt.timedelta(seconds=30))
    later = push.billing_portal_url(SYSTEM, org_a, back, now=at + dt.timedelta(minutes=1))

    assert stripe_standin.posts("/v1/billing_portal/sessions")[1].replayed
    assert len(stripe_standin.portal_sessions) == 2
    assert [s["url"] for s in stripe_standin.portal_sessions.values()] == [first, later]


def test_two_return_addresses_within_a_minute_get_a_session_each(stripe_standin, org_a):
    """The API and the console may be reached at different hosts: the same minute with another
    return address is another request, not a reuse of the first one's key (which Stripe — and
    the stand-in — refuse)."""
    at = dt.datetime(2024, 6, 3, 9, 15, 20, tzinfo=dt.UTC)
    first = push.billing_portal_url(SYSTEM, org_a, "https://console.example/billing/", now=at)
    second = push.billing_portal_url(SYSTEM, org_a, "https://api.example/billing/", now=at)

    assert first != second
    assert [s["return_url"] for s in stripe_standin.portal_sessions.values()] == [
        "https://console.example/billing/",
        "https://api.example/billing/",
    ]
    assert stripe_standin.violations == []


def test_stripes_refusal_is_told_without_its_internals(org_a):
    """Stripe's own words (request ids, our idempotency keys, dashboard links) stay in the
    operators' log; the organization reads a sentence to act on."""
    words = (
        f"Request req_8xY: Keys for idempotent requests can only be used with the same "
        f"parameters. Try a key other than 'org-{org_a.pk}-portal-202406030915'. See "
        "https://dashboard.stripe.com/test/settings/billing/portal"
    )

    told = stripe_client.as_domain_error(stripe_client.StripeRefused(words))

    assert told.code == "stripe_refused"
    assert "req_8xY" not in str(told.detail) and str(org_a.pk) not in str(told.detail)
    assert "dashboard.stripe.com" not in str(told.detail)
