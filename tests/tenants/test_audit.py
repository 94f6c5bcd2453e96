"""The audit log: every change is recorded (who, from where, before, after); nothing erases it.

Callers are simulated with a fixed client address (REMOTE_ADDR) and an `X-Request-ID` header, as a
load balancer in front of the web tier would send them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from scheduling import services as scheduling_services
from tenants import services
from tenants.audit import SYSTEM, Actor
from tenants.models import AppendOnlyError, AuditEntry
from tenants.roles import Role
from tests import factories

IP = "192.0.2.10"
REQUEST_ID = "audit-req-1"


def _client(user) -> APIClient:
    client = APIClient(REMOTE_ADDR=IP, HTTP_X_REQUEST_ID=REQUEST_ID)
    client.force_authenticate(user=user)
    return client


@dataclass
class World:
    org: Any
    owner: Any
    analyst: Any
    operator: Any
    granted: Any
    station: Any
    invitation: Any
    invitation_token: str
    api_key: Any
    invitee: Any


@pytest.fixture
def world(org_a, owner_a, member_factory) -> World:
    station = factories.StationFactory(organization=org_a, name="Main hall")
    granted = member_factory(org_a, Role.OPERATOR)
    scheduling_services.grant_station_operator(SYSTEM, station, granted)
    invitation, token = services.invite_member(
        Actor(role=Role.OWNER), org_a, email="invitee@example.org", role=Role.ANALYST
    )
    return World(
        org=org_a,
        owner=owner_a,
        analyst=member_factory(org_a, Role.ANALYST),
        operator=member_factory(org_a, Role.OPERATOR),
        granted=granted,
        station=station,
        invitation=invitation,
        invitation_token=token,
        api_key=factories.api_key_factory(org_a),
        invitee=factories.UserFactory(email="invitee@example.org"),
    )


@dataclass
class Change:
    """A state-changing call: who makes it, the request, and the audit actions it must write."""

    name: str
    request: Callable[[World], tuple[str, str, dict[str, Any] | None]]
    actions: dict[str, tuple[bool, bool]]  # action -> (has before, has after)
    actor: Callable[[World], Any] = lambda w: w.owner.user


ORG = "/api/v1/orgs/alpha-hospital"
CHANGES = [
    Change(
        "change organization",
        lambda w: ("patch", f"{ORG}/", {"name": "Alpha Clinic"}),
        {"organization.update": (True, True)},
    ),
    Change(
        "change role",
        lambda w: ("patch", f"{ORG}/members/{w.analyst.pk}/", {"role": "billing"}),
        {"membership.update": (True, True)},
    ),
    Change(
        "remove member",
        lambda w: ("delete", f"{ORG}/members/{w.analyst.pk}/", None),
        {"membership.delete": (True, False)},
    ),
    Change(
        "invite",
        lambda w: ("post", f"{ORG}/invitations/", {"email": "new@example.org", "role": "operator"}),
        {"invitation.create": (False, True)},
    ),
    Change(
        "revoke invitation",
        lambda w: ("post", f"{ORG}/invitations/{w.invitation.pk}/revoke/", None),
        {"invitation.revoke": (True, True)},
    ),
    Change(
        "create api key",
        lambda w: ("post", f"{ORG}/api-keys/", {"name": "ci", "scopes": ["stations.view"]}),
        {"api_key.create": (False, True)},
    ),
    Change(
        "revoke api key",
        lambda w: ("post", f"{ORG}/api-keys/{w.api_key.pk}/revoke/", None),
        {"api_key.revoke": (True, True)},
    ),
    Change(
        "create station",
        lambda w: ("post", f"{ORG}/stations/", {"name": "Lobby", "kind": "kiosk"}),
        {"station.create": (False, True)},
    ),
    Change(
        "change station",
        lambda w: ("patch", f"{ORG}/stations/{w.station.pk}/", {"description": "second floor"}),
        {"station.update": (True, True)},
    ),
    Change(
        "delete station",
        lambda w: ("delete", f"{ORG}/stations/{w.station.pk}/", None),
        {"station.delete": (True, False)},
    ),
    Change(
        "grant operator",
        lambda w: (
            "post",
            f"{ORG}/stations/{w.station.pk}/operators/",
            {"member": str(w.operator.pk)},
        ),
        {"station.grant_operator": (False, True)},
    ),
    Change(
        "revoke operator",
        lambda w: ("delete", f"{ORG}/stations/{w.station.pk}/operators/{w.granted.pk}/", None),
        {"station.revoke_operator": (True, False)},
    ),
    Change(
        "operator changes their station",
        lambda w: ("patch", f"{ORG}/stations/{w.station.pk}/", {"is_active": False}),
        {"station.update": (True, True)},
        actor=lambda w: w.granted.user,
    ),
    Change(
        "create organization",
        lambda w: ("post", "/api/v1/orgs/", {"slug": "gamma", "name": "Gamma", "kind": "bank"}),
        {"organization.create": (False, True), "membership.create": (False, True)},
    ),
    Change(
        "accept invitation",
        lambda w: ("post", "/api/v1/invitations/accept/", {"token": w.invitation_token}),
        {"invitation.accept": (False, True), "membership.create": (False, True)},
        actor=lambda w: w.invitee,
    ),
]


@pytest.mark.parametrize("change", CHANGES, ids=[c.name for c in CHANGES])
def test_every_change_is_recorded_with_actor_before_after_ip_and_request_id(world, change):
    last = AuditEntry._base_manager.order_by("-id").values_list("id", flat=True).first()
    user = change.actor(world)
    method, url, body = change.request(world)
    response = getattr(_client(user), method)(url, body, format="json")
    assert response.status_code in (200, 201, 204), response.content

    entries = list(AuditEntry._base_manager.filter(id__gt=last).order_by("id"))
    assert sorted(e.action for e in entries) == sorted(change.actions)
    for entry in entries:
        has_before, has_after = change.actions[entry.action]
        assert entry.actor_label == user.email
        assert entry.actor_user_id == user.pk
        assert entry.ip_address == IP
        assert entry.request_id == REQUEST_ID
        assert (entry.before is not None, entry.after is not None) == (has_before, has_after)
        assert entry.object_type and entry.object_id


def test_a_key_is_named_as_the_actor(world):
    key, token = factories.make_api_key(world.org)
    machine = APIClient(REMOTE_ADDR=IP, HTTP_X_REQUEST_ID=REQUEST_ID)
    machine.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = machine.delete(f"{ORG}/stations/{world.station.pk}/")
    assert response.status_code == 204
    entry = AuditEntry.objects.for_organization(world.org).get(action="station.delete")
    assert entry.actor_label == f"api-key:{key.prefix}"
    assert (entry.actor_user_id, entry.actor_api_key_id) == (None, key.pk)
    assert (entry.ip_address, entry.request_id) == (IP, REQUEST_ID)


def test_a_request_without_an_id_gets_one(world):
    client = APIClient()
    client.force_authenticate(user=world.owner.user)
    client.patch(f"{ORG}/", {"name": "Alpha Clinic"}, format="json")
    entry = AuditEntry.objects.for_organization(world.org).get(action="organization.update")
    assert len(entry.request_id) >= 8


def test_the_log_is_readable_through_the_api(world):
    _client(world.owner.user).patch(f"{ORG}/", {"name": "Alpha Clinic"}, format="json")
    listed = _client(world.owner.user).get(f"{ORG}/audit/", {"action": "organization.update"})
    assert listed.status_code == 200
    [entry] = listed.json()["results"]
    assert entry["actor_label"] == world.owner.user.email
    assert entry["before"]["name"] == "Alpha Hospital"
    assert entry["after"]["name"] == "Alpha Clinic"
    assert (entry["ip_address"], entry["request_id"]) == (IP, REQUEST_ID)
    one = _client(world.owner.user).get(f"{ORG}/audit/{entry['id']}/")
    assert one.json() == entry


@pytest.mark.parametrize("method", ["post", "patch", "put", "delete"])
def test_the_log_cannot_be_changed_through_the_api(world, method):
    entry = factories.AuditEntryFactory(organization=world.org)
    url = f"{ORG}/audit/" if method == "post" else f"{ORG}/audit/{entry.pk}/"
    response = getattr(_client(world.owner.user), method)(url, {"action": "x"}, format="json")
    assert response.status_code == 405
    entry.refresh_from_db()
    assert entry.action == "test.event"


# --- append-only, through the ORM -----------------------------------------------------------


def _entry(org):
    return factories.AuditEntryFactory(organization=org, action="station.create")


def _save_changed(org, entry):
    entry.action = "forged"
    entry.save()


def _save_over_an_existing_id(org, entry):
    AuditEntry(
        id=entry.pk, organization=org, action="forged", object_type="x", object_id="1"
    ).save()


def _bulk_update(org, entry):
    entry.action = "forged"
    AuditEntry.objects.for_organization(org).bulk_update([entry], ["action"])


ATTEMPTS: dict[str, Callable[[Any, AuditEntry], object]] = {
    "instance save": _save_changed,
    "instance delete": lambda org, e: e.delete(),
    "queryset update": lambda org, e: AuditEntry.objects.for_organization(org).update(
        action="forged"
    ),
    "queryset delete": lambda org, e: (
        AuditEntry.objects.for_organization(org).filter(pk=e.pk).delete()
    ),
    "unscoped update": lambda org, e: AuditEntry.objects.unscoped_dangerously().update(
        action="forged"
    ),
    "unscoped delete": lambda org, e: AuditEntry.objects.unscoped_dangerously().delete(),
    "save over an existing id": _save_over_an_existing_id,
    "bulk update": _bulk_update,
}


@pytest.mark.parametrize("attempt", list(ATTEMPTS))
def test_entries_cannot_be_changed_or_deleted_through_the_orm(org_a, attempt):
    entry = _entry(org_a)
    with pytest.raises(AppendOnlyError, match="append-only"), transaction.atomic():
        ATTEMPTS[attempt](org_a, entry)
    stored = AuditEntry._base_manager.get(pk=entry.pk)
    assert stored.action == "station.create"


def test_a_deleted_organization_keeps_its_log(org_a):
    from django.db.models import ProtectedError

    _entry(org_a)
    with pytest.raises(ProtectedError):
        org_a.delete()


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the append-only trigger exists on PostgreSQL only; SQLite relies on the ORM guard",
)
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE tenants_auditentry SET action = 'forged' WHERE id = %s",
        "DELETE FROM tenants_auditentry WHERE id = %s",
    ],
)
def test_on_postgresql_not_even_raw_sql_changes_an_entry(org_a, sql):
    entry = _entry(org_a)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [entry.pk])
    assert AuditEntry._base_manager.get(pk=entry.pk).action == "station.create"


# --- filters ---------------------------------------------------------------------------------


@pytest.fixture
def history(org_a, org_b):
    start = timezone.now().replace(microsecond=0) - dt.timedelta(days=10)

    def at(day: int, **fields):
        return factories.AuditEntryFactory(
            organization=fields.pop("organization", org_a),
            created_at=start + dt.timedelta(days=day),
            **fields,
        )

    entries = {
        "created": at(0, action="station.create", object_type="scheduling.station"),
        "updated": at(2, action="station.update", object_type="scheduling.station"),
        "invited": at(4, action="invitation.create", object_type="tenants.invitation"),
        "role": at(
            6, action="membership.update", object_type="tenants.membership", object_id="m-1"
        ),
        "theirs": at(
            3, action="station.create", object_type="scheduling.station", organization=org_b
        ),
    }
    return start, entries


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return sorted(item["id"] for item in response.json()["results"])


def _pks(*entries) -> list[int]:
    return sorted(entry.pk for entry in entries)


def test_filter_by_action(api_a, history):
    _start, e = history
    assert _ids(api_a.get(f"{ORG}/audit/", {"action": "station.create"})) == _pks(e["created"])


def test_filter_by_object_type_and_id(api_a, history):
    _start, e = history
    stations = api_a.get(f"{ORG}/audit/", {"object_type": "scheduling.station"})
    assert _ids(stations) == _pks(e["created"], e["updated"])
    one = api_a.get(f"{ORG}/audit/", {"object_type": "tenants.membership", "object_id": "m-1"})
    assert _ids(one) == _pks(e["role"])


def test_filter_by_period_includes_since_and_excludes_until(api_a, history):
    start, e = history
    window = api_a.get(
        f"{ORG}/audit/",
        {
            "since": (start + dt.timedelta(days=2)).isoformat(),
            "until": (start + dt.timedelta(days=6)).isoformat(),
        },
    )
    assert _ids(window) == _pks(e["updated"], e["invited"])
    later = api_a.get(f"{ORG}/audit/", {"since": (start + dt.timedelta(days=5)).isoformat()})
    assert _ids(later) == _pks(e["role"])


def test_the_newest_entries_come_first(api_a, history):
    _start, e = history
    response = api_a.get(f"{ORG}/audit/")
    assert [item["id"] for item in response.json()["results"]] == [
        e["role"].pk,
        e["invited"].pk,
        e["updated"].pk,
        e["created"].pk,
    ]


def test_a_bad_date_is_a_field_error(api_a, history):
    response = api_a.get(f"{ORG}/audit/", {"since": "last tuesday"})
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["since"]


def test_filters_never_reach_another_organization(api_b, history):
    _start, e = history
    response = api_b.get("/api/v1/orgs/beta-bureau/audit/", {"action": "station.create"})
    assert _ids(response) == _pks(e["theirs"])
    theirs = api_b.get(f"/api/v1/orgs/beta-bureau/audit/{e['created'].pk}/")
    assert theirs.status_code == 404
