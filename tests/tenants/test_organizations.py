"""Creating an organization and changing its settings."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tenants.models import AuditEntry, Membership, Organization
from tenants.roles import Role
from tests import factories
from tests.support import database_rows

ORGS_URL = "/api/v1/orgs/"


@pytest.fixture
def person(db) -> APIClient:
    client = APIClient(REMOTE_ADDR="198.51.100.7")
    client.force_authenticate(user=factories.UserFactory(email="founder@example.org"))
    return client


def test_the_creator_becomes_the_owner(person):
    response = person.post(
        ORGS_URL,
        {
            "slug": "city-hospital",
            "name": "City Hospital",
            "kind": "hospital",
            "time_zone": "Europe/Berlin",
            "locale": "en",
        },
        format="json",
        HTTP_X_REQUEST_ID="req-create-1",
    )
    assert response.status_code == 201, response.content
    assert response.json()["slug"] == "city-hospital"
    assert response.json()["time_zone"] == "Europe/Berlin"
    assert response.json()["plan"] == "trial"

    organization = Organization.objects.get(slug="city-hospital")
    owner = Membership.objects.for_organization(organization).get()
    assert owner.user.email == "founder@example.org"
    assert owner.role == Role.OWNER

    mine = person.get(ORGS_URL).json()
    assert [(m["organization"]["slug"], m["role"]) for m in mine] == [("city-hospital", "owner")]
    assert person.get("/api/v1/orgs/city-hospital/members/").status_code == 200

    entries = AuditEntry.objects.for_organization(organization).order_by("id")
    assert [e.action for e in entries] == ["organization.create", "membership.create"]
    for entry in entries:
        assert entry.actor_label == "founder@example.org"
        assert entry.ip_address == "198.51.100.7"
        assert entry.request_id == "req-create-1"
        assert entry.before is None
    assert entries[0].after is not None
    assert entries[0].after["slug"] == "city-hospital"


def test_defaults_apply_when_time_zone_and_locale_are_left_out(person):
    response = person.post(
        ORGS_URL, {"slug": "bureau", "name": "Bureau", "kind": "market_supervision"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["time_zone"] == "Asia/Shanghai"
    assert response.json()["locale"] == "zh-hans"


def test_a_taken_slug_is_a_conflict_on_the_slug_field(person, org_a):
    before = database_rows()
    response = person.post(
        ORGS_URL, {"slug": org_a.slug, "name": "Copycat", "kind": "hospital"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "slug_taken"
    assert response.json()["fields"]["slug"][0]["code"] == "slug_taken"
    assert database_rows() == before


@pytest.mark.parametrize(
    "slug", ["City Hospital", "-leading", "trailing-", "UPPER", "a" * 51, "under_score", ""]
)
def test_a_bad_slug_is_a_field_error(person, slug):
    before = database_rows()
    response = person.post(ORGS_URL, {"slug": slug, "name": "X", "kind": "hospital"}, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()["fields"]) == ["slug"]
    assert response.json()["fields"]["slug"][0]["message"]
    assert database_rows() == before


def test_missing_fields_are_each_named(person):
    response = person.post(ORGS_URL, {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"slug", "name", "kind"}
    assert response.json()["fields"]["name"][0]["code"] == "required"


def test_an_unknown_time_zone_is_refused_at_creation(person):
    response = person.post(
        ORGS_URL,
        {"slug": "moon", "name": "Moon", "kind": "other", "time_zone": "Moon/Base"},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["time_zone"]
    assert not Organization.objects.filter(slug="moon").exists()


def test_the_list_shows_only_my_organizations(org_a, org_b, owner_a, owner_b, api_a):
    org_b.is_active = False
    org_b.save()
    factories.MembershipFactory(organization=org_b, user=owner_a.user, role=Role.ANALYST)
    listed = api_a.get(ORGS_URL).json()
    assert [m["organization"]["slug"] for m in listed] == [org_a.slug]


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_an_administrator_changes_the_name_and_time_zone(org_a, member_factory, client_for, role):
    member = member_factory(org_a, role)
    response = client_for(member).patch(
        f"/api/v1/orgs/{org_a.slug}/",
        {"name": "Alpha Teaching Hospital", "time_zone": "America/New_York"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Alpha Teaching Hospital"
    org_a.refresh_from_db()
    assert (org_a.name, org_a.time_zone) == ("Alpha Teaching Hospital", "America/New_York")
    entry = AuditEntry.objects.for_organization(org_a).get(action="organization.update")
    assert entry.actor_label == member.user.email
    assert entry.before is not None and entry.after is not None
    assert entry.before["name"] == "Alpha Hospital"
    assert entry.before["time_zone"] == "Asia/Shanghai"
    assert entry.after["name"] == "Alpha Teaching Hospital"
    assert entry.after["time_zone"] == "America/New_York"


@pytest.mark.parametrize("role", [Role.ANALYST, Role.OPERATOR, Role.BILLING])
def test_other_roles_cannot_change_the_organization(org_a, member_factory, client_for, role):
    client = client_for(member_factory(org_a, role))
    before = database_rows()
    response = client.patch(f"/api/v1/orgs/{org_a.slug}/", {"name": "Hijacked"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert f"({Role(role).label})" in response.json()["detail"]
    assert database_rows() == before


def test_an_unknown_time_zone_is_refused(api_a, org_a):
    before = database_rows()
    response = api_a.patch(
        f"/api/v1/orgs/{org_a.slug}/", {"time_zone": "Asia/Atlantis"}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["time_zone"]
    assert "Asia/Atlantis" in response.json()["fields"]["time_zone"][0]["message"]
    assert database_rows() == before


def test_the_slug_and_plan_are_read_only(api_a, org_a):
    """Sending them is refused with a field error, so the caller knows the edit did not apply."""
    response = api_a.patch(
        f"/api/v1/orgs/{org_a.slug}/", {"slug": "renamed", "plan": "enterprise"}, format="json"
    )
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert fields["slug"][0]["message"] == "This field is read-only."
    assert "plan" in fields
    org_a.refresh_from_db()
    assert (org_a.slug, org_a.plan) == ("alpha-hospital", "trial")


def test_every_member_can_read_the_organization(org_a, member_factory, client_for):
    for role in Role:
        response = client_for(member_factory(org_a, role)).get(f"/api/v1/orgs/{org_a.slug}/")
        assert response.status_code == 200, role
        assert response.json()["name"] == "Alpha Hospital"
