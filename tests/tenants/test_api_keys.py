"""API keys: shown once, stored hashed, scoped, bound to one organization, revocable.

Machines are simulated by an APIClient that sends `Authorization: Bearer <token>` and no session.
"""

from __future__ import annotations

import hashlib

import pytest
from rest_framework.test import APIClient

from tenants import services
from tenants.audit import SYSTEM
from tenants.errors import DomainError
from tenants.models import ApiKey, AuditEntry
from tenants.roles import API_KEY_SCOPES, Permission, Role
from tests import factories
from tests.support import database_rows


def _machine(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _rows_apart_from_key_use() -> dict[str, list[tuple[object, ...]]]:
    """The database, minus `last_used_at`: using a key is recorded even when it is refused."""
    rows = database_rows()
    rows["tenants.ApiKey"] = list(
        ApiKey.objects.unscoped_dangerously()
        .order_by("pk")
        .values_list("pk", "revoked_at", "scopes")
    )
    return rows


def _keys_url(org, *parts: object) -> str:
    return "/".join([f"/api/v1/orgs/{org.slug}/api-keys", *map(str, parts), ""])


def test_the_token_is_shown_once_at_creation(api_a, org_a):
    created = api_a.post(
        _keys_url(org_a), {"name": "ingest", "scopes": ["stations.view"]}, format="json"
    )
    assert created.status_code == 201, created.content
    token = created.json()["token"]
    assert token.startswith(f"ib_{created.json()['prefix']}_")

    listed = api_a.get(_keys_url(org_a))
    retrieved = api_a.get(_keys_url(org_a, created.json()["id"]))
    assert listed.status_code == retrieved.status_code == 200
    for response in (listed, retrieved):
        assert token not in response.content.decode()
        assert token.split("_", 2)[2] not in response.content.decode()  # the secret part
    assert "token" not in retrieved.json()
    assert "key_hash" not in retrieved.json()
    assert [key["name"] for key in listed.json()["results"]] == ["ingest"]


def test_only_the_prefix_and_a_sha256_digest_are_stored(org_a):
    key, token = factories.make_api_key(org_a)
    row = ApiKey.objects.for_organization(org_a).values().get(pk=key.pk)
    assert row["key_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token.startswith(f"ib_{row['prefix']}_")
    secret = token.split("_", 2)[2]
    for value in row.values():
        assert secret not in str(value)


def test_a_key_works_as_a_bearer_token(org_a):
    factories.StationFactory(organization=org_a, name="Health live room")
    _key, token = factories.make_api_key(org_a, scopes=[Permission.STATIONS_VIEW])
    response = _machine(token).get(f"/api/v1/orgs/{org_a.slug}/stations/")
    assert response.status_code == 200, response.content
    assert [s["name"] for s in response.json()["results"]] == ["Health live room"]


def test_a_key_can_do_what_its_scopes_allow(org_a):
    _key, token = factories.make_api_key(org_a, scopes=[Permission.STATIONS_MANAGE])
    response = _machine(token).post(
        f"/api/v1/orgs/{org_a.slug}/stations/", {"name": "Kiosk", "kind": "kiosk"}, format="json"
    )
    assert response.status_code == 201, response.content
    entry = AuditEntry.objects.for_organization(org_a).get(action="station.create")
    assert entry.actor_label == f"api-key:{_key.prefix}"
    assert entry.actor_api_key_id == _key.pk
    assert entry.actor_user_id is None


def test_a_missing_scope_is_named(org_a):
    _key, token = factories.make_api_key(org_a, scopes=[Permission.ORGANIZATION_VIEW])
    before = _rows_apart_from_key_use()
    response = _machine(token).post(
        f"/api/v1/orgs/{org_a.slug}/stations/", {"name": "Kiosk", "kind": "kiosk"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "stations.manage" in response.json()["detail"]
    assert _rows_apart_from_key_use() == before


def test_a_revoked_key_is_refused_with_a_clear_message(org_a):
    key, token = factories.make_api_key(org_a)
    services.revoke_api_key(SYSTEM, key)
    response = _machine(token).get(f"/api/v1/orgs/{org_a.slug}/")
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_revoked"
    assert "revoked" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "garbage",
    ["nonsense", "ib_", "ib_abcdefghij_", "ib_short_secret", "ib_abcdefghij_wrong-secret"],
)
def test_a_garbage_token_is_refused(org_a, garbage):
    response = _machine(garbage).get(f"/api/v1/orgs/{org_a.slug}/")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"
    assert "not valid" in response.json()["detail"]


def test_a_right_prefix_with_a_wrong_secret_is_refused(org_a):
    key, token = factories.make_api_key(org_a)
    forged = f"ib_{key.prefix}_" + "A" * 43
    assert forged != token
    response = _machine(forged).get(f"/api/v1/orgs/{org_a.slug}/")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


def test_a_key_of_another_organization_gets_not_found(org_a, org_b):
    factories.StationFactory(organization=org_a)
    _key, token_b = factories.make_api_key(org_b)
    before = _rows_apart_from_key_use()
    for method, path, body in [
        ("get", "", None),
        ("get", "stations/", None),
        ("post", "stations/", {"name": "Theirs", "kind": "kiosk"}),
    ]:
        response = getattr(_machine(token_b), method)(
            f"/api/v1/orgs/{org_a.slug}/{path}", body, format="json"
        )
        assert response.status_code == 404, (method, path, response.content)
        assert response.json() == {"code": "not_found", "detail": "Not found."}
    assert _rows_apart_from_key_use() == before


def test_a_key_of_a_deactivated_organization_stops_working(org_a):
    _key, token = factories.make_api_key(org_a)
    org_a.is_active = False
    org_a.save()
    response = _machine(token).get(f"/api/v1/orgs/{org_a.slug}/")
    assert response.status_code == 401


def test_last_used_at_is_set_when_the_key_is_used(org_a, api_a):
    key, token = factories.make_api_key(org_a)
    assert key.last_used_at is None
    assert _machine(token).get(f"/api/v1/orgs/{org_a.slug}/").status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None
    shown = api_a.get(_keys_url(org_a, key.pk)).json()
    assert shown["last_used_at"] is not None


def test_a_refused_key_is_not_marked_as_used(org_a):
    key, token = factories.make_api_key(org_a, scopes=[Permission.ORGANIZATION_VIEW])
    services.revoke_api_key(SYSTEM, key)
    _machine(token).get(f"/api/v1/orgs/{org_a.slug}/")
    key.refresh_from_db()
    assert key.last_used_at is None


def test_revoking_twice_is_harmless(api_a, org_a):
    key, token = factories.make_api_key(org_a)
    first = api_a.post(_keys_url(org_a, key.pk, "revoke"))
    second = api_a.post(_keys_url(org_a, key.pk, "revoke"))
    assert first.status_code == second.status_code == 200
    assert first.json()["is_active"] is False
    assert second.json()["revoked_at"] == first.json()["revoked_at"]
    revocations = AuditEntry.objects.for_organization(org_a).filter(action="api_key.revoke")
    assert revocations.count() == 1
    assert _machine(token).get(f"/api/v1/orgs/{org_a.slug}/").status_code == 401


def test_active_filter_lists_live_keys(api_a, org_a):
    live = factories.api_key_factory(org_a, name="live")
    dead = factories.api_key_factory(org_a, name="dead")
    services.revoke_api_key(SYSTEM, dead)
    active = api_a.get(_keys_url(org_a), {"active": "true"}).json()["results"]
    inactive = api_a.get(_keys_url(org_a), {"active": "false"}).json()["results"]
    assert [k["id"] for k in active] == [str(live.pk)]
    assert [k["id"] for k in inactive] == [str(dead.pk)]


@pytest.mark.parametrize(
    "scopes",
    [
        [Permission.MEMBERS_MANAGE],
        [Permission.API_KEYS_MANAGE],
        [Permission.ORGANIZATION_MANAGE],
        [Permission.STATIONS_VIEW, Permission.MEMBERS_MANAGE],
        [],
        ["stations.everything"],
    ],
)
def test_keys_cannot_be_given_powers_over_people_or_keys(api_a, org_a, scopes):
    before = database_rows()
    response = api_a.post(_keys_url(org_a), {"name": "admin bot", "scopes": scopes}, format="json")
    assert response.status_code == 400, response.content
    assert "scopes" in response.json()["fields"]
    assert database_rows() == before


@pytest.mark.parametrize("scope", [Permission.MEMBERS_MANAGE, Permission.API_KEYS_MANAGE])
def test_the_service_refuses_the_same_scopes(org_a, scope):
    with pytest.raises(DomainError) as refused:
        services.create_api_key(SYSTEM, org_a, name="bot", scopes=[scope])
    assert refused.value.field == "scopes"
    assert not ApiKey.objects.for_organization(org_a).exists()


def test_a_key_with_every_allowed_scope_still_cannot_manage_members_or_keys(org_a, member_factory):
    analyst = member_factory(org_a, Role.ANALYST)
    key, token = factories.make_api_key(org_a, scopes=sorted(API_KEY_SCOPES))
    machine = _machine(token)
    before = _rows_apart_from_key_use()
    attempts = [
        machine.patch(
            f"/api/v1/orgs/{org_a.slug}/members/{analyst.pk}/", {"role": "admin"}, format="json"
        ),
        machine.delete(f"/api/v1/orgs/{org_a.slug}/members/{analyst.pk}/"),
        machine.post(
            f"/api/v1/orgs/{org_a.slug}/invitations/",
            {"email": "bot@example.org", "role": "owner"},
            format="json",
        ),
        machine.post(
            _keys_url(org_a), {"name": "child", "scopes": ["stations.view"]}, format="json"
        ),
        machine.get(_keys_url(org_a)),
        machine.post(_keys_url(org_a, key.pk, "revoke")),
        machine.patch(f"/api/v1/orgs/{org_a.slug}/", {"name": "Bot Hospital"}, format="json"),
    ]
    for response in attempts:
        assert response.status_code == 403, response.content
        assert "This API key lacks the scope" in response.json()["detail"]
    assert _rows_apart_from_key_use() == before


@pytest.mark.parametrize("path", ["/api/v1/me/", "/api/v1/orgs/"])
def test_a_key_is_not_a_person(org_a, path):
    _key, token = factories.make_api_key(org_a)
    response = _machine(token).get(path)
    assert response.status_code == 403
    assert "API keys cannot" in response.json()["detail"]


def test_creating_a_key_is_audited_without_its_secret(api_a, org_a, owner_a):
    response = api_a.post(
        _keys_url(org_a), {"name": "ci", "scopes": ["stations.view"]}, format="json"
    )
    token = response.json()["token"]
    entry = AuditEntry.objects.for_organization(org_a).get(action="api_key.create")
    assert entry.actor_label == owner_a.user.email
    assert entry.after is not None
    assert entry.after["scopes"] == ["stations.view"]
    assert "key_hash" not in entry.after
    assert token not in str(entry.after)
