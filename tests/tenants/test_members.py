"""Members: changing roles and removing people, with the owner safeguards."""

from __future__ import annotations

import pytest

from scheduling import services as scheduling_services
from scheduling.models import StationUserObjectPermission
from tenants.audit import SYSTEM
from tenants.models import AuditEntry, Membership
from tenants.roles import Role
from tests import factories
from tests.support import database_rows


def _member_url(membership) -> str:
    return f"/api/v1/orgs/{membership.organization.slug}/members/{membership.pk}/"


def test_a_role_change_is_audited(api_a, owner_a, org_a, member_factory):
    analyst = member_factory(org_a, Role.ANALYST)
    response = api_a.patch(_member_url(analyst), {"role": "operator"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["role"] == "operator"
    assert response.json()["email"] == analyst.user.email
    analyst.refresh_from_db()
    assert analyst.role == Role.OPERATOR
    entry = AuditEntry.objects.for_organization(org_a).get(action="membership.update")
    assert entry.object_id == str(analyst.pk)
    assert entry.actor_label == owner_a.user.email
    assert entry.before is not None and entry.after is not None
    assert (entry.before["role"], entry.after["role"]) == ("analyst", "operator")


def test_the_members_list_shows_email_and_role_and_filters_by_role(api_a, org_a, member_factory):
    analyst = member_factory(org_a, Role.ANALYST)
    member_factory(org_a, Role.BILLING)
    listed = api_a.get(f"/api/v1/orgs/{org_a.slug}/members/", {"role": "analyst"}).json()
    assert [(m["email"], m["role"]) for m in listed["results"]] == [(analyst.user.email, "analyst")]


def test_an_unknown_role_is_a_field_error(api_a, org_a, member_factory):
    analyst = member_factory(org_a, Role.ANALYST)
    before = database_rows()
    response = api_a.patch(_member_url(analyst), {"role": "superuser"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["role"]
    assert database_rows() == before


def test_the_last_owner_cannot_step_down(api_a, owner_a):
    before = database_rows()
    response = api_a.patch(_member_url(owner_a), {"role": "admin"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "last_owner"
    assert "make someone else owner first" in response.json()["detail"]
    assert database_rows() == before


def test_the_last_owner_cannot_be_removed(api_a, owner_a):
    before = database_rows()
    response = api_a.delete(_member_url(owner_a))
    assert response.status_code == 409
    assert response.json()["code"] == "last_owner"
    assert database_rows() == before


def test_with_a_second_owner_an_owner_may_step_down(api_a, owner_a, org_a, member_factory):
    member_factory(org_a, Role.OWNER)
    response = api_a.patch(_member_url(owner_a), {"role": "admin"}, format="json")
    assert response.status_code == 200, response.content
    owner_a.refresh_from_db()
    assert owner_a.role == Role.ADMIN


def test_an_owner_may_make_an_admin_owner(api_a, org_a, member_factory):
    admin = member_factory(org_a, Role.ADMIN)
    response = api_a.patch(_member_url(admin), {"role": "owner"}, format="json")
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("change", [{"role": "admin"}, {"role": "analyst"}, None])
def test_an_admin_cannot_demote_or_remove_an_owner(
    org_a, owner_a, member_factory, client_for, change
):
    member_factory(org_a, Role.OWNER)  # not the last owner: the admin's rank is what refuses
    admin = client_for(member_factory(org_a, Role.ADMIN))
    before = database_rows()
    if change is None:
        response = admin.delete(_member_url(owner_a))
    else:
        response = admin.patch(_member_url(owner_a), change, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "role_not_assignable"
    assert response.json()["detail"] == "Only an owner can change or remove another owner."
    assert database_rows() == before


def test_an_admin_cannot_make_anyone_owner(org_a, owner_a, member_factory, client_for):
    admin_membership = member_factory(org_a, Role.ADMIN)
    admin = client_for(admin_membership)
    for target in (admin_membership, member_factory(org_a, Role.ANALYST)):
        before = database_rows()
        response = admin.patch(_member_url(target), {"role": "owner"}, format="json")
        assert response.status_code == 400
        assert response.json()["fields"]["role"][0]["code"] == "role_not_assignable"
        assert database_rows() == before


def test_an_admin_manages_other_non_owners(org_a, owner_a, member_factory, client_for):
    admin = client_for(member_factory(org_a, Role.ADMIN))
    analyst = member_factory(org_a, Role.ANALYST)
    other_admin = member_factory(org_a, Role.ADMIN)
    assert (
        admin.patch(_member_url(other_admin), {"role": "billing"}, format="json").status_code == 200
    )
    assert admin.delete(_member_url(analyst)).status_code == 204
    assert not Membership.objects.for_organization(org_a).filter(pk=analyst.pk).exists()


def test_removing_a_member_is_audited_and_locks_them_out(
    api_a, owner_a, org_a, member_factory, client_for
):
    analyst = member_factory(org_a, Role.ANALYST)
    analyst_client = client_for(analyst)
    assert analyst_client.get(f"/api/v1/orgs/{org_a.slug}/").status_code == 200
    assert api_a.delete(_member_url(analyst)).status_code == 204
    entry = AuditEntry.objects.for_organization(org_a).get(action="membership.delete")
    assert entry.object_id == str(analyst.pk)
    assert entry.before is not None
    assert entry.before["role"] == "analyst"
    assert entry.after is None
    assert analyst_client.get(f"/api/v1/orgs/{org_a.slug}/").status_code == 404


def test_removing_a_member_drops_their_station_grants_in_that_organization_only(
    api_a, org_a, org_b, client_for
):
    person = factories.UserFactory()
    in_a = factories.MembershipFactory(organization=org_a, user=person, role=Role.OPERATOR)
    in_b = factories.MembershipFactory(organization=org_b, user=person, role=Role.OPERATOR)
    stations_a = factories.StationFactory.create_batch(2, organization=org_a)
    station_b = factories.StationFactory(organization=org_b)
    for station in stations_a:
        scheduling_services.grant_station_operator(SYSTEM, station, in_a)
    scheduling_services.grant_station_operator(SYSTEM, station_b, in_b)

    assert api_a.delete(_member_url(in_a)).status_code == 204

    grants = StationUserObjectPermission.objects.filter(user=person)
    assert [g.content_object_id for g in grants] == [station_b.pk]
    as_b = client_for(in_b)
    response = as_b.patch(
        f"/api/v1/orgs/{org_b.slug}/stations/{station_b.pk}/",
        {"description": "still mine"},
        format="json",
    )
    assert response.status_code == 200, response.content


def test_a_member_of_another_organization_is_not_found(api_a, org_b, owner_b, member_factory):
    theirs = member_factory(org_b, Role.ANALYST)
    url = f"/api/v1/orgs/alpha-hospital/members/{theirs.pk}/"
    before = database_rows()
    for response in (
        api_a.get(url),
        api_a.patch(url, {"role": "admin"}, format="json"),
        api_a.delete(url),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert database_rows() == before


def test_members_cannot_be_created_through_the_members_endpoint(api_a, org_a):
    response = api_a.post(f"/api/v1/orgs/{org_a.slug}/members/", {"role": "admin"}, format="json")
    assert response.status_code == 405
