"""Per-station operator grants (django-guardian, direct foreign keys).

An operator sees every station but changes only those an administrator granted to them.
"""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from scheduling.models import StationUserObjectPermission
from tenants.models import AuditEntry
from tenants.roles import Role
from tests import factories
from tests.support import database_rows


def _stations_url(org, *parts: object) -> str:
    return "/".join([f"/api/v1/orgs/{org.slug}/stations", *map(str, parts), ""])


@pytest.fixture
def admin(org_a, owner_a, member_factory, client_for):
    return client_for(member_factory(org_a, Role.ADMIN))


@pytest.fixture
def operator(org_a, member_factory):
    return member_factory(org_a, Role.OPERATOR)


@pytest.fixture
def rooms(org_a):
    return (
        factories.StationFactory(organization=org_a, name="Room A"),
        factories.StationFactory(organization=org_a, name="Room B"),
    )


def _grant(admin, station, member):
    return admin.post(
        _stations_url(station.organization, station.pk, "operators"),
        {"member": str(member.pk)},
        format="json",
    )


def _change(client, station, description="moved"):
    return client.patch(
        _stations_url(station.organization, station.pk),
        {"description": description},
        format="json",
    )


def test_an_operator_without_a_grant_cannot_change_a_station(client_for, operator, rooms):
    before = database_rows()
    response = _change(client_for(operator), rooms[0])
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "Ask an administrator to grant it to you" in response.json()["detail"]
    assert database_rows() == before


def test_an_operator_still_sees_every_station(client_for, operator, rooms, org_a):
    listed = client_for(operator).get(_stations_url(org_a))
    assert listed.status_code == 200
    assert {s["name"] for s in listed.json()["results"]} == {"Room A", "Room B"}


def test_after_a_grant_the_operator_changes_that_station_only(admin, client_for, operator, rooms):
    granted = _grant(admin, rooms[0], operator)
    assert granted.status_code == 201, granted.content
    assert granted.json()["id"] == str(operator.pk)
    assert granted.json()["email"] == operator.user.email

    as_operator = client_for(operator)
    changed = _change(as_operator, rooms[0], "on air at 8pm")
    assert changed.status_code == 200, changed.content
    assert changed.json()["description"] == "on air at 8pm"
    assert _change(as_operator, rooms[1]).status_code == 403

    entry = AuditEntry.objects.for_organization(rooms[0].organization).get(
        action="station.grant_operator"
    )
    assert entry.after == {"member": str(operator.pk)}


def test_an_operator_cannot_delete_or_grant_even_their_own_station(
    admin, client_for, operator, rooms, org_a, member_factory
):
    _grant(admin, rooms[0], operator)
    as_operator = client_for(operator)
    colleague = member_factory(org_a, Role.OPERATOR)
    before = database_rows()
    assert as_operator.delete(_stations_url(org_a, rooms[0].pk)).status_code == 403
    assert _grant(as_operator, rooms[0], colleague).status_code == 403
    assert database_rows() == before


def test_the_operators_of_a_station_are_listed(admin, operator, rooms, org_a, member_factory):
    other = member_factory(org_a, Role.OPERATOR)
    _grant(admin, rooms[0], operator)
    _grant(admin, rooms[0], other)
    _grant(admin, rooms[1], other)
    listed = admin.get(_stations_url(org_a, rooms[0].pk, "operators"))
    assert listed.status_code == 200
    assert [m["id"] for m in listed.json()] == [str(operator.pk), str(other.pk)]


def test_filter_stations_by_operator(admin, operator, rooms, org_a, member_factory):
    factories.StationFactory(organization=org_a, name="Room C")
    _grant(admin, rooms[0], operator)
    _grant(admin, rooms[1], operator)
    _grant(admin, rooms[1], member_factory(org_a, Role.OPERATOR))
    listed = admin.get(_stations_url(org_a), {"operator": str(operator.pk)})
    assert listed.status_code == 200
    assert {s["name"] for s in listed.json()["results"]} == {"Room A", "Room B"}
    nobody = admin.get(_stations_url(org_a), {"operator": str(member_factory(org_a).pk)})
    assert nobody.json()["results"] == []


def test_the_operator_filter_treats_another_organizations_member_as_unknown(
    admin, org_a, org_b, rooms
):
    theirs = factories.MembershipFactory(organization=org_b, role=Role.OPERATOR)
    foreign = admin.get(_stations_url(org_a), {"operator": str(theirs.pk)})
    unknown = admin.get(_stations_url(org_a), {"operator": str(uuid.uuid4())})
    assert foreign.status_code == unknown.status_code == 400
    assert foreign.json() == unknown.json()
    assert list(foreign.json()["fields"]) == ["operator"]


@pytest.mark.parametrize("role", [Role.ANALYST, Role.ADMIN, Role.OWNER, Role.BILLING])
def test_only_operators_get_grants(admin, rooms, org_a, member_factory, role):
    member = member_factory(org_a, role)
    before = database_rows()
    response = _grant(admin, rooms[0], member)
    assert response.status_code == 400
    assert response.json()["code"] == "not_an_operator"
    assert response.json()["fields"]["member"][0]["code"] == "not_an_operator"
    assert database_rows() == before


def test_granting_twice_is_a_conflict(admin, operator, rooms):
    _grant(admin, rooms[0], operator)
    before = database_rows()
    again = _grant(admin, rooms[0], operator)
    assert again.status_code == 409
    assert again.json()["code"] == "already_granted"
    assert database_rows() == before


def test_a_member_of_another_organization_looks_like_a_random_id(admin, rooms, org_b):
    theirs = factories.MembershipFactory(organization=org_b, role=Role.OPERATOR)
    random_id = uuid.uuid4()
    before = database_rows()
    foreign = _grant(admin, rooms[0], theirs)
    made_up = admin.post(
        _stations_url(rooms[0].organization, rooms[0].pk, "operators"),
        {"member": str(random_id)},
        format="json",
    )
    assert foreign.status_code == made_up.status_code == 400
    assert foreign.content.decode().replace(str(theirs.pk), "<id>") == (
        made_up.content.decode().replace(str(random_id), "<id>")
    )
    assert foreign.json()["fields"]["member"][0]["code"] == "does_not_exist"
    assert database_rows() == before


def test_revoking_a_grant_takes_the_right_away(admin, client_for, operator, rooms, org_a):
    _grant(admin, rooms[0], operator)
    response = admin.delete(_stations_url(org_a, rooms[0].pk, "operators", operator.pk))
    assert response.status_code == 204
    assert response.content == b""
    assert admin.get(_stations_url(org_a, rooms[0].pk, "operators")).json() == []
    assert _change(client_for(operator), rooms[0]).status_code == 403
    entry = AuditEntry.objects.for_organization(org_a).get(action="station.revoke_operator")
    assert entry.before == {"member": str(operator.pk)}


def test_revoking_what_was_never_granted_writes_nothing(admin, operator, rooms, org_a):
    before = database_rows()
    response = admin.delete(_stations_url(org_a, rooms[0].pk, "operators", operator.pk))
    assert response.status_code == 400
    assert response.json()["detail"] == "This member does not operate this station."
    assert database_rows() == before


def test_revoking_for_another_organizations_member_is_not_found(admin, rooms, org_a, org_b):
    theirs = factories.MembershipFactory(organization=org_b, role=Role.OPERATOR)
    response = admin.delete(_stations_url(org_a, rooms[0].pk, "operators", theirs.pk))
    assert response.status_code == 404


def test_a_demoted_operator_loses_operate_rights_and_their_grants(
    admin, api_a, client_for, operator, rooms, org_a
):
    _grant(admin, rooms[0], operator)
    as_operator = client_for(operator)
    assert _change(as_operator, rooms[0]).status_code == 200

    demoted = api_a.patch(
        f"/api/v1/orgs/{org_a.slug}/members/{operator.pk}/", {"role": "analyst"}, format="json"
    )
    assert demoted.status_code == 200, demoted.content
    assert not StationUserObjectPermission.objects.filter(
        user=operator.user, content_object=rooms[0]
    ).exists()
    operators = admin.get(_stations_url(org_a, rooms[0].pk, "operators"))
    assert operators.json() == []

    before = database_rows()
    refused = _change(as_operator, rooms[0], "after demotion")
    assert refused.status_code == 403
    assert "Your role (Analyst)" in refused.json()["detail"]
    assert database_rows() == before


def test_a_grant_in_one_organization_gives_nothing_in_another(org_a, org_b, client_for, admin):
    person = factories.UserFactory()
    in_a = factories.MembershipFactory(organization=org_a, user=person, role=Role.OPERATOR)
    factories.MembershipFactory(organization=org_b, user=person, role=Role.OPERATOR)
    room_a = factories.StationFactory(organization=org_a)
    room_b = factories.StationFactory(organization=org_b)
    _grant(admin, room_a, in_a)
    as_person = client_for(in_a)
    assert _change(as_person, room_a).status_code == 200
    assert _change(as_person, room_b).status_code == 403


def test_a_key_without_the_operate_scope_is_told_which_scope(org_a, rooms):
    _key, token = factories.make_api_key(org_a)  # view and manage, not operate
    machine = APIClient()
    machine.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = _change(machine, rooms[0])
    assert response.status_code == 403
    assert "stations.operate" in response.json()["detail"]

    _key, operate_token = factories.make_api_key(org_a, scopes=["stations.operate"])
    machine.credentials(HTTP_AUTHORIZATION=f"Bearer {operate_token}")
    response = _change(machine, rooms[0])
    assert response.status_code == 403
    assert "stations.view" in response.json()["detail"]

    _key, both_token = factories.make_api_key(org_a, scopes=["stations.view", "stations.operate"])
    machine.credentials(HTTP_AUTHORIZATION=f"Bearer {both_token}")
    assert _change(machine, rooms[0]).status_code == 200
