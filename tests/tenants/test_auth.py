"""Signing in and out as the console does (a session cookie and a CSRF token), and `/me/`."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tenants.roles import MATRIX, Role
from tests import factories

LOGIN = "/api/v1/auth/login/"
LOGOUT = "/api/v1/auth/logout/"
ME = "/api/v1/me/"


@pytest.fixture
def nurse(org_a, org_b):
    user = factories.UserFactory(email="nurse@example.org", full_name="Li Na")
    factories.MembershipFactory(organization=org_a, user=user, role=Role.OPERATOR)
    factories.MembershipFactory(organization=org_b, user=user, role=Role.ANALYST)
    return user


def _console() -> APIClient:
    """A browser: cookies kept between requests, CSRF checked as in production."""
    return APIClient(enforce_csrf_checks=True)


def _sign_in(client: APIClient, email: str, password: str = factories.PASSWORD):
    return client.post(LOGIN, {"email": email, "password": password}, format="json")


def _expected_permissions(role: str) -> list[str]:
    return sorted(permission.value for permission, roles in MATRIX.items() if role in roles)


def test_signing_in_gives_a_session_that_works_for_me(nurse):
    console = _console()
    response = _sign_in(console, "nurse@example.org")
    assert response.status_code == 200, response.content
    assert response.json()["email"] == "nurse@example.org"
    assert "sessionid" in console.cookies
    assert "csrftoken" in console.cookies

    me = console.get(ME)
    assert me.status_code == 200
    body = me.json()
    assert (body["email"], body["full_name"], body["is_staff"]) == (
        "nurse@example.org",
        "Li Na",
        False,
    )
    memberships = {m["organization"]["slug"]: m for m in body["memberships"]}
    assert set(memberships) == {"alpha-hospital", "beta-bureau"}
    assert memberships["alpha-hospital"]["role"] == "operator"
    assert memberships["alpha-hospital"]["permissions"] == _expected_permissions(Role.OPERATOR)
    assert memberships["beta-bureau"]["permissions"] == _expected_permissions(Role.ANALYST)
    assert "audit.view" in memberships["beta-bureau"]["permissions"]
    assert "audit.view" not in memberships["alpha-hospital"]["permissions"]


def test_the_email_is_not_case_sensitive(nurse):
    assert _sign_in(_console(), "Nurse@Example.ORG").status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [("nurse@example.org", "wrong password"), ("nobody@example.org", factories.PASSWORD)],
    ids=["wrong password", "unknown email"],
)
def test_wrong_credentials_are_refused_with_a_clear_message(nurse, email, password):
    console = _console()
    response = _sign_in(console, email, password)
    assert response.status_code == 401
    assert response.json() == {
        "code": "bad_credentials",
        "detail": "The email address or password is wrong.",
    }
    assert "sessionid" not in console.cookies
    assert console.get(ME).status_code == 401


def test_an_empty_password_is_a_field_error(nurse):
    response = _sign_in(_console(), "nurse@example.org", "")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["password"]


def test_unknown_email_and_wrong_password_look_the_same(nurse):
    wrong_password = _sign_in(_console(), "nurse@example.org", "wrong password")
    unknown_email = _sign_in(_console(), "nobody@example.org", "wrong password")
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()


def test_a_deactivated_person_cannot_sign_in(nurse):
    nurse.is_active = False
    nurse.save()
    response = _sign_in(_console(), "nurse@example.org")
    assert response.status_code == 401
    assert response.json()["code"] == "bad_credentials"


def test_signing_out_ends_the_session(nurse):
    console = _console()
    _sign_in(console, "nurse@example.org")
    response = console.post(LOGOUT, HTTP_X_CSRFTOKEN=console.cookies["csrftoken"].value)
    assert response.status_code == 204
    refused = console.get(ME)
    assert refused.status_code == 401
    assert refused.json()["code"] == "not_authenticated"


def test_a_signed_in_change_needs_the_csrf_token(nurse, org_a):
    console = _console()
    _sign_in(console, "nurse@example.org")
    payload = {"slug": "gamma", "name": "Gamma", "kind": "bank"}
    without = console.post("/api/v1/orgs/", payload, format="json")
    assert without.status_code == 403
    assert without.json()["code"] == "permission_denied"
    assert "CSRF" in without.json()["detail"]
    with_token = console.post(
        "/api/v1/orgs/",
        payload,
        format="json",
        HTTP_X_CSRFTOKEN=console.cookies["csrftoken"].value,
    )
    assert with_token.status_code == 201, with_token.content


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ME),
        ("get", "/api/v1/orgs/"),
        ("post", "/api/v1/orgs/"),
        ("post", LOGOUT),
        ("get", "/api/v1/orgs/alpha-hospital/"),
        ("get", "/api/v1/orgs/alpha-hospital/members/"),
        ("post", "/api/v1/orgs/alpha-hospital/stations/"),
        ("get", "/api/v1/orgs/no-such-org/"),
    ],
)
def test_an_anonymous_request_gets_a_structured_401(org_a, method, path):
    response = getattr(APIClient(), method)(path, {}, format="json")
    assert response.status_code == 401
    assert response.json() == {
        "code": "not_authenticated",
        "detail": "Authentication credentials were not provided.",
    }
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_me_lists_no_organization_of_a_person_without_memberships(db):
    client = APIClient()
    client.force_authenticate(user=factories.UserFactory())
    assert client.get(ME).json()["memberships"] == []
