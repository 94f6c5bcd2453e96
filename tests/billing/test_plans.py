"""Plans and subscriptions: the three plans of migration 0002; a first subscription made lazily
from Organization.plan; changing plan through the API ends one subscription and starts the next
at the same instant, moves Organization.plan (and so the quotas), and is audited; refusals leave
everything as it was; another organization answers 404.

Real: the API (session login), the services, the database. Simulated: nothing.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from ironbowl.billing import plans
from ironbowl.billing.models import Plan, Subscription
from tenants.audit import SYSTEM
from tenants.models import AuditEntry
from tenants.plans import PLANS, limits_of
from tenants.roles import Role
from tests.avatars.factories import EmploymentFactory

pytestmark = pytest.mark.django_db


def url(organization, path):
    return f"/api/v1/orgs/{organization.slug}/billing/{path}"


def subscriptions(organization):
    return list(
        Subscription.objects.for_organization(organization)
        .order_by("starts_at")
        .values_list("plan__code", "starts_at", "ends_at")
    )


def test_the_plans_match_the_quota_codes_and_are_priced_in_yuan(org_a, api_a):
    response = api_a.get(url(org_a, "plans/"))

    assert response.status_code == 200
    listed = {plan["code"]: plan for plan in response.json()}
    assert set(listed) == set(PLANS)
    standard = listed["standard"]
    assert (standard["currency"], standard["platform_fee"], standard["tax_rate"]) == (
        "CNY",
        "4800.00",
        "0.060000",
    )
    assert Decimal(listed["enterprise"]["price_gpu_hour"]) < Decimal(standard["price_gpu_hour"])


def test_the_first_subscription_is_made_from_the_organizations_plan(org_a, api_a):
    assert subscriptions(org_a) == []

    response = api_a.get(url(org_a, "subscription/"))

    assert response.status_code == 200
    body = response.json()
    assert body["current"]["plan"] == org_a.plan == "trial"
    assert body["current"]["ends_at"] is None
    assert subscriptions(org_a) == [("trial", org_a.created_at, None)]
    assert (
        plans.ensure_subscription(org_a).pk == Subscription.objects.for_organization(org_a).get().pk
    )


def test_changing_plan_ends_one_subscription_where_the_next_starts(org_a, owner_a, api_a):
    plans.ensure_subscription(org_a)

    response = api_a.post(url(org_a, "subscription/"), {"plan": "enterprise"}, format="json")

    assert response.status_code == 200, response.content
    (first_plan, _start, ended), (plan, started, still) = subscriptions(org_a)
    assert (first_plan, plan, still) == ("trial", "enterprise", None)
    assert ended == started
    org_a.refresh_from_db()
    assert org_a.plan == "enterprise"
    assert limits_of(org_a) == PLANS["enterprise"]
    assert [row["plan"] for row in response.json()["history"]] == ["trial", "enterprise"]
    entry = AuditEntry.objects.for_organization(org_a).get(action="billing.change_plan")
    assert entry.before == {"plan": "trial", "subscription": entry.before["subscription"]}
    assert entry.after["plan"] == "enterprise"
    assert entry.actor_label == owner_a.user.email


def test_asking_for_the_current_plan_changes_nothing(org_a, api_a):
    plans.ensure_subscription(org_a)
    before = subscriptions(org_a)

    response = api_a.post(url(org_a, "subscription/"), {"plan": "trial"}, format="json")

    assert response.status_code == 200
    assert subscriptions(org_a) == before
    assert (
        not AuditEntry.objects.for_organization(org_a).filter(action="billing.change_plan").exists()
    )


def test_the_discount_carries_over_to_the_next_plan(org_a):
    current = plans.ensure_subscription(org_a)
    Subscription.objects.for_organization(org_a).filter(pk=current.pk).update(
        discount_percent=Decimal("12.5")
    )

    following = plans.change_plan(SYSTEM, org_a, "standard")

    assert following.discount_percent == Decimal("12.5")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"plan": "platinum"}, 400, "unknown_plan"),
        ({"plan": ""}, 400, "invalid"),
        ({}, 400, "invalid"),
    ],
)
def test_an_unknown_plan_is_refused_and_nothing_changes(org_a, api_a, body, status, code):
    plans.ensure_subscription(org_a)
    before = subscriptions(org_a)

    response = api_a.post(url(org_a, "subscription/"), body, format="json")

    assert response.status_code == status
    assert response.json()["code"] == code
    assert subscriptions(org_a) == before


def test_a_private_plan_is_refused_like_a_missing_one(org_a, api_a):
    Plan.objects.create(code="hospital-group", name="Negotiated", is_public=False)

    response = api_a.post(url(org_a, "subscription/"), {"plan": "hospital-group"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "unknown_plan"


def test_moving_to_a_plan_with_fewer_seats_than_the_hires_hold_is_refused(org_a, api_a):
    api_a.post(url(org_a, "subscription/"), {"plan": "standard"}, format="json")
    EmploymentFactory(organization=org_a, seats=PLANS["trial"].seats + 1)
    before = subscriptions(org_a)

    response = api_a.post(url(org_a, "subscription/"), {"plan": "trial"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "seats_over_plan"
    assert subscriptions(org_a) == before
    org_a.refresh_from_db()
    assert org_a.plan == "standard"


def test_only_owners_and_billing_change_plan(org_a, member_factory, client_for):
    admin = client_for(member_factory(org_a, Role.ADMIN))

    looked = admin.get(url(org_a, "subscription/"))
    changed = admin.post(url(org_a, "subscription/"), {"plan": "standard"}, format="json")

    assert looked.status_code == 200
    assert changed.status_code == 403
    org_a.refresh_from_db()
    assert org_a.plan == "trial"


def test_another_organization_cannot_see_or_change_the_plan(org_a, api_b):
    plans.ensure_subscription(org_a)
    before = subscriptions(org_a)

    looked = api_b.get(url(org_a, "subscription/"))
    changed = api_b.post(url(org_a, "subscription/"), {"plan": "enterprise"}, format="json")

    assert (looked.status_code, changed.status_code) == (404, 404)
    assert subscriptions(org_a) == before
