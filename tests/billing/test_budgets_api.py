"""The budget API: GET and PUT /api/v1/orgs/{org}/billing/budget/.

Real: the API (authentication, roles, errors), the budget service, the audit log, and the
rating of the month's spend (the organizations have no usage, so they spend their plan's
platform fee: nothing on the trial plan, 4,800.00 CNY plus tax on the standard plan).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from ironbowl.billing import budgets
from ironbowl.billing.models import Budget, Notification, Subscription
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.billing.conftest import make_organization


def _url(organization) -> str:
    return f"/api/v1/orgs/{organization.slug}/billing/budget/"


BODY = {"monthly_amount": "8000.00", "hard_stop": True, "exempt_public_service": True}


def test_without_a_budget_the_get_says_so_with_the_month_so_far(org_a, api_a):
    response = api_a.get(_url(org_a))

    assert response.status_code == 200
    body = response.json()
    assert body["monthly_amount"] is None
    assert (body["currency"], body["hard_stop"], body["stopped"]) == ("CNY", False, False)
    assert body["spent"] == "0.00"
    assert len(body["month"]) == 7  # YYYY-MM, the organization's month


def test_put_sets_the_budget_and_get_reads_it_back(org_a, api_a):
    saved = api_a.put(_url(org_a), BODY, format="json")

    assert saved.status_code == 200, saved.json()
    read = api_a.get(_url(org_a)).json()
    assert read == saved.json()
    assert (read["monthly_amount"], read["currency"], read["hard_stop"]) == ("8000.00", "CNY", True)
    assert (read["alerted_80"], read["alerted_100"], read["stopped"]) == (False, False, False)
    entry = AuditEntry.objects.for_organization(org_a).get(action="billing.set_budget")
    assert entry.actor_label == api_a.handler._force_user.email
    assert entry.after["monthly_amount"] == "8000.00"


def test_a_budget_below_the_month_so_far_is_used_up_at_once(member_factory, client_for):
    """On the standard plan for the whole month, the platform fee, 4,800.00 CNY + 6% tax, is
    the month's spend already."""
    organization = make_organization(plan="standard")
    client = client_for(member_factory(organization, Role.OWNER))

    response = client.put(_url(organization), {**BODY, "monthly_amount": "5000"}, format="json")

    body = response.json()
    assert body["spent"] == "5088.00"
    assert (body["alerted_80"], body["alerted_100"], body["stopped"]) == (True, True, True)
    (notification,) = Notification.objects.for_organization(organization)
    assert notification.kind == "budget_100"


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"currency": "USD"}, "currency", "currency_mismatch"),
        ({"monthly_amount": "-1.00"}, "monthly_amount", "min_value"),
        ({"monthly_amount": "ten"}, "monthly_amount", "invalid"),
        ({"monthly_amount": "1.001"}, "monthly_amount", "max_decimal_places"),
        ({"currency": "EUR"}, "currency", "invalid_choice"),
        ({"hard_stop": None}, "hard_stop", "null"),
        ({"colour": "red"}, "colour", "unknown_field"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(org_a, api_a, change, field, code):
    api_a.put(_url(org_a), BODY, format="json")
    before = list(Budget.objects.for_organization(org_a).values())

    response = api_a.put(_url(org_a), {**BODY, **change}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["fields"][field][0]["code"] == code
    if code == "currency_mismatch":
        assert body["code"] == "currency_mismatch"
        assert "must be in CNY" in body["detail"]
    assert list(Budget.objects.for_organization(org_a).values()) == before
    assert (
        AuditEntry.objects.for_organization(org_a).filter(action="billing.set_budget").count() == 1
    )


def test_a_missing_field_is_refused(org_a, api_a):
    response = api_a.put(_url(org_a), {"monthly_amount": "10"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"hard_stop", "exempt_public_service"}
    assert not Budget.objects.for_organization(org_a).exists()


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        (Role.OWNER, 200, 200),
        (Role.BILLING, 200, 200),
        (Role.ADMIN, 200, 403),
        (Role.OPERATOR, 403, 403),
        (Role.ANALYST, 403, 403),
    ],
)
def test_billing_view_reads_and_billing_manage_changes(
    org_a, member_factory, client_for, role, read, write
):
    client = client_for(member_factory(org_a, role))

    assert client.get(_url(org_a)).status_code == read
    assert client.put(_url(org_a), BODY, format="json").status_code == write
    assert Budget.objects.for_organization(org_a).exists() == (write == 200)


def test_another_organization_can_neither_read_nor_set_it(org_a, org_b, api_a, api_b):
    api_a.put(_url(org_a), {**BODY, "monthly_amount": "123.00"}, format="json")

    assert api_b.get(_url(org_a)).status_code == 404
    assert api_b.put(_url(org_a), BODY, format="json").status_code == 404

    budget = budgets.budget_of(org_a)
    assert budget is not None and budget.monthly_amount == Decimal("123.00")
    assert api_b.get(_url(org_b)).json()["monthly_amount"] is None
    assert not Subscription.objects.for_organization(org_b).exists()  # reading wrote nothing
