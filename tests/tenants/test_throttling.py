"""Rate limits: per organization (all its callers together) and per credential (a person or a key).

Rates are lowered for the test with override_settings; the throttles read them at call time.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from tenants.roles import Role
from tests import factories
from tests.support import database_rows


@contextmanager
def rates(
    organization: str = "1000/minute",
    credential: str = "1000/minute",
    anonymous: str = "1000/minute",
):
    framework = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            "organization": organization,
            "credential": credential,
            "anonymous": anonymous,
        },
    }
    with override_settings(REST_FRAMEWORK=framework):
        yield


def _machine(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "throttled"
    assert "available in" in response.json()["detail"]
    assert 0 < int(response["Retry-After"]) <= 60


def test_an_organization_shares_one_budget_among_its_callers(
    org_a, org_b, owner_b, member_factory, client_for
):
    members = [client_for(member_factory(org_a, role)) for role in (Role.ADMIN, Role.ANALYST)]
    url = f"/api/v1/orgs/{org_a.slug}/"
    with rates(organization="3/minute"):
        statuses = [members[i % 2].get(url).status_code for i in range(3)]
        assert statuses == [200, 200, 200]
        _assert_throttled(members[0].get(url))
        _assert_throttled(members[1].get(f"/api/v1/orgs/{org_a.slug}/members/"))
        # Another organization has its own budget.
        assert client_for(owner_b).get(f"/api/v1/orgs/{org_b.slug}/").status_code == 200


def test_api_keys_count_against_their_organization(org_a, api_a):
    _key, token = factories.make_api_key(org_a)
    url = f"/api/v1/orgs/{org_a.slug}/"
    with rates(organization="2/minute"):
        assert _machine(token).get(url).status_code == 200
        assert api_a.get(url).status_code == 200
        _assert_throttled(_machine(token).get(url))


def test_each_person_has_their_own_budget(org_a, owner_a, member_factory, client_for):
    busy, calm = client_for(owner_a), client_for(member_factory(org_a, Role.ANALYST))
    url = f"/api/v1/orgs/{org_a.slug}/members/"
    with rates(credential="2/minute"):
        assert [busy.get(url).status_code for _ in range(2)] == [200, 200]
        _assert_throttled(busy.get(url))
        assert calm.get(url).status_code == 200


def test_the_personal_budget_spans_organizations_and_account_pages(org_a, org_b, owner_a):
    person = factories.MembershipFactory(
        organization=org_b, user=owner_a.user, role=Role.ANALYST
    ).user
    client = APIClient()
    client.force_authenticate(user=person)
    with rates(credential="2/minute"):
        assert client.get(f"/api/v1/orgs/{org_a.slug}/").status_code == 200
        assert client.get(f"/api/v1/orgs/{org_b.slug}/").status_code == 200
        _assert_throttled(client.get("/api/v1/me/"))


def test_each_key_has_its_own_budget(org_a, api_a):
    _busy, busy_token = factories.make_api_key(org_a, name="busy")
    _calm, calm_token = factories.make_api_key(org_a, name="calm")
    url = f"/api/v1/orgs/{org_a.slug}/stations/"
    with rates(credential="2/minute"):
        busy = _machine(busy_token)
        assert [busy.get(url).status_code for _ in range(2)] == [200, 200]
        _assert_throttled(busy.get(url))
        assert _machine(calm_token).get(url).status_code == 200
        assert api_a.get(url).status_code == 200


def test_a_throttled_write_writes_nothing(org_a, api_a):
    url = f"/api/v1/orgs/{org_a.slug}/stations/"
    with rates(credential="1/minute"):
        assert api_a.post(url, {"name": "First", "kind": "kiosk"}, format="json").status_code == 201
        before = database_rows()
        _assert_throttled(api_a.post(url, {"name": "Second", "kind": "kiosk"}, format="json"))
        assert database_rows() == before


def test_signing_in_is_limited_per_address(db):
    factories.UserFactory(email="nurse@example.org")
    here, elsewhere = APIClient(REMOTE_ADDR="192.0.2.1"), APIClient(REMOTE_ADDR="192.0.2.2")
    wrong = {"email": "nurse@example.org", "password": "guess"}
    with rates(anonymous="2/minute"):
        assert [
            here.post("/api/v1/auth/login/", wrong, format="json").status_code for _ in range(2)
        ] == [401, 401]
        _assert_throttled(here.post("/api/v1/auth/login/", wrong, format="json"))
        assert (
            elsewhere.post(
                "/api/v1/auth/login/", {**wrong, "password": factories.PASSWORD}, format="json"
            ).status_code
            == 200
        )


def test_a_forged_forwarded_for_header_does_not_reset_the_sign_in_budget(db):
    """An attacker rotates X-Forwarded-For on every try, hoping each looks like a new address."""
    factories.UserFactory(email="nurse@example.org")
    attacker = APIClient(REMOTE_ADDR="192.0.2.66")
    wrong = {"email": "nurse@example.org", "password": "guess"}
    with rates(anonymous="2/minute"):
        for attempt in range(2):
            response = attacker.post(
                "/api/v1/auth/login/",
                wrong,
                format="json",
                HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}",
            )
            assert response.status_code == 401
        _assert_throttled(
            attacker.post(
                "/api/v1/auth/login/", wrong, format="json", HTTP_X_FORWARDED_FOR="203.0.113.99"
            )
        )


def test_normal_rates_let_ordinary_use_through(org_a, api_a):
    url = f"/api/v1/orgs/{org_a.slug}/"
    assert all(api_a.get(url).status_code == 200 for _ in range(20))
