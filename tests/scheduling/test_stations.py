"""Stations: administrators create, change and delete them; names are unique per organization."""

from __future__ import annotations

import pytest

from scheduling.models import Station
from tenants.models import AuditEntry
from tenants.roles import Role
from tests import factories
from tests.support import database_rows


def _stations_url(org, *parts: object) -> str:
    return "/".join([f"/api/v1/orgs/{org.slug}/stations", *map(str, parts), ""])


@pytest.fixture
def admin(org_a, owner_a, member_factory, client_for):
    return client_for(member_factory(org_a, Role.ADMIN))


def test_an_admin_creates_changes_and_deletes_a_station(admin, org_a):
    created = admin.post(
        _stations_url(org_a),
        {"name": "Health live room", "kind": "live_room", "description": "Douyin, 8pm"},
        format="json",
    )
    assert created.status_code == 201, created.content
    station_id = created.json()["id"]
    assert created.json()["is_active"] is True

    changed = admin.patch(
        _stations_url(org_a, station_id),
        {"name": "Health live room 2", "is_active": False},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["name"], changed.json()["is_active"]) == ("Health live room 2", False)
    assert admin.get(_stations_url(org_a, station_id)).json()["name"] == "Health live room 2"

    assert admin.delete(_stations_url(org_a, station_id)).status_code == 204
    assert admin.get(_stations_url(org_a, station_id)).status_code == 404
    assert not Station.objects.for_organization(org_a).exists()

    actions = list(
        AuditEntry.objects.for_organization(org_a)
        .filter(object_id=station_id)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["station.create", "station.update", "station.delete"]


def test_a_station_name_is_unique_within_an_organization(admin, org_a, org_b):
    factories.StationFactory(organization=org_a, name="Lobby")
    factories.StationFactory(organization=org_b, name="Elsewhere")
    before = database_rows()
    taken = admin.post(_stations_url(org_a), {"name": "Lobby", "kind": "kiosk"}, format="json")
    assert taken.status_code == 409
    assert taken.json()["code"] == "station_name_taken"
    assert "name" in taken.json()["fields"]
    assert database_rows() == before
    # Another organization's names do not count (and are not revealed).
    assert (
        admin.post(
            _stations_url(org_a), {"name": "Elsewhere", "kind": "kiosk"}, format="json"
        ).status_code
        == 201
    )


def test_renaming_onto_a_taken_name_is_a_conflict(admin, org_a):
    factories.StationFactory(organization=org_a, name="Lobby")
    hall = factories.StationFactory(organization=org_a, name="Hall")
    before = database_rows()
    response = admin.patch(_stations_url(org_a, hall.pk), {"name": "Lobby"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "station_name_taken"
    assert database_rows() == before


def test_an_unknown_kind_is_a_field_error(admin, org_a):
    response = admin.post(_stations_url(org_a), {"name": "Moon", "kind": "rocket"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["kind"]


def test_the_list_filters_by_kind_and_activity(admin, org_a):
    kiosk = factories.StationFactory(organization=org_a, name="Kiosk", kind="kiosk")
    factories.StationFactory(organization=org_a, name="Room", kind="live_room")
    factories.StationFactory(organization=org_a, name="Old kiosk", kind="kiosk", is_active=False)
    listed = admin.get(_stations_url(org_a), {"kind": "kiosk", "is_active": "true"})
    assert [s["id"] for s in listed.json()["results"]] == [str(kiosk.pk)]


def test_another_organizations_station_is_not_found(admin, org_a, org_b):
    theirs = factories.StationFactory(organization=org_b, name="Theirs")
    before = database_rows()
    for response in (
        admin.get(_stations_url(org_a, theirs.pk)),
        admin.patch(_stations_url(org_a, theirs.pk), {"name": "Mine"}, format="json"),
        admin.delete(_stations_url(org_a, theirs.pk)),
        admin.get(_stations_url(org_a, theirs.pk, "operators")),
    ):
        assert response.status_code == 404
        assert response.json() == {"code": "not_found", "detail": "Not found."}
    assert database_rows() == before
    assert [s["name"] for s in admin.get(_stations_url(org_a)).json()["results"]] == []
