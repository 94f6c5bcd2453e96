"""Who may do what: every endpoint and action, tried by a member in each role.

The table below spells out the expected answer for each role by hand; a separate test checks it
against the one matrix in tenants/roles.py, and another that it covers every action the API has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from ironbowl.api.base import OrganizationScoped
from scheduling import services as scheduling_services
from tenants import services
from tenants.audit import SYSTEM, Actor
from tenants.roles import MATRIX, Permission, Role
from tests import factories
from tests.support import database_rows

EVERYONE = frozenset(Role)
MANAGERS = frozenset({Role.OWNER, Role.ADMIN})
VIEWERS = frozenset({Role.OWNER, Role.ADMIN, Role.OPERATOR, Role.ANALYST})
AUDITORS = frozenset({Role.OWNER, Role.ADMIN, Role.ANALYST})


@dataclass(frozen=True)
class Row:
    name: str  # "<view class>.<action>", as in the view's permission_map
    request: str  # "<METHOD> <path under /api/v1/orgs/{org}/>", with {target ids} filled in
    permission: Permission
    allowed: frozenset[Role]
    success: int = 200
    body: dict[str, Any] | None = None
    # What a denied role reads, when it is more useful than naming the role.
    denial: dict[Role, str] = field(default_factory=dict)


P = Permission
# fmt: off
ROWS = [
    Row("OrganizationDetailView.get", "GET ", P.ORGANIZATION_VIEW, EVERYONE),
    Row("OrganizationDetailView.patch", "PATCH ", P.ORGANIZATION_MANAGE, MANAGERS,
        body={"name": "Renamed"}),
    Row("MemberViewSet.list", "GET members/", P.MEMBERS_VIEW, EVERYONE),
    Row("MemberViewSet.retrieve", "GET members/{analyst}/", P.MEMBERS_VIEW, EVERYONE),
    Row("MemberViewSet.partial_update", "PATCH members/{analyst}/", P.MEMBERS_MANAGE, MANAGERS,
        body={"role": "billing"}),
    Row("MemberViewSet.destroy", "DELETE members/{analyst}/", P.MEMBERS_MANAGE, MANAGERS, 204),
    Row("InvitationViewSet.list", "GET invitations/", P.MEMBERS_VIEW, EVERYONE),
    Row("InvitationViewSet.retrieve", "GET invitations/{invitation}/", P.MEMBERS_VIEW, EVERYONE),
    Row("InvitationViewSet.create", "POST invitations/", P.MEMBERS_MANAGE, MANAGERS, 201,
        body={"email": "new@example.org", "role": "analyst"}),
    Row("InvitationViewSet.revoke", "POST invitations/{invitation}/revoke/", P.MEMBERS_MANAGE,
        MANAGERS),
    Row("ApiKeyViewSet.list", "GET api-keys/", P.API_KEYS_MANAGE, MANAGERS),
    Row("ApiKeyViewSet.retrieve", "GET api-keys/{api_key}/", P.API_KEYS_MANAGE, MANAGERS),
    Row("ApiKeyViewSet.create", "POST api-keys/", P.API_KEYS_MANAGE, MANAGERS, 201,
        body={"name": "ci", "scopes": ["stations.view"]}),
    Row("ApiKeyViewSet.revoke", "POST api-keys/{api_key}/revoke/", P.API_KEYS_MANAGE, MANAGERS),
    Row("AuditEntryViewSet.list", "GET audit/", P.AUDIT_VIEW, AUDITORS),
    Row("AuditEntryViewSet.retrieve", "GET audit/{audit_entry}/", P.AUDIT_VIEW, AUDITORS),
    Row("StationViewSet.list", "GET stations/", P.STATIONS_VIEW, VIEWERS),
    Row("StationViewSet.retrieve", "GET stations/{station}/", P.STATIONS_VIEW, VIEWERS),
    Row("StationViewSet.create", "POST stations/", P.STATIONS_MANAGE, MANAGERS, 201,
        body={"name": "Lobby kiosk", "kind": "kiosk"}),
    # Operators operate only the stations granted to them; this one is not.
    Row("StationViewSet.partial_update", "PATCH stations/{station}/", P.STATIONS_OPERATE,
        MANAGERS, body={"description": "moved"},
        denial={Role.OPERATOR: "You do not operate this station."}),
    Row("StationViewSet.destroy", "DELETE stations/{station}/", P.STATIONS_MANAGE, MANAGERS, 204),
    Row("StationViewSet.operators", "GET stations/{station}/operators/", P.STATIONS_VIEW,
        VIEWERS),
    Row("StationViewSet.grant_operator", "POST stations/{station}/operators/",
        P.STATIONS_MANAGE, MANAGERS, 201, body={"member": "{operator}"}),
    Row("StationViewSet.revoke_operator",
        "DELETE stations/{station}/operators/{granted_operator}/", P.STATIONS_MANAGE, MANAGERS,
        204),
]
# fmt: on


@pytest.fixture
def targets(org_a, owner_a, member_factory) -> dict[str, str]:
    """One of everything the table acts on, in organization A."""
    station = factories.StationFactory(organization=org_a, name="Main hall")
    granted = member_factory(org_a, Role.OPERATOR)
    scheduling_services.grant_station_operator(SYSTEM, station, granted)
    invitation, _token = services.invite_member(
        Actor(role=Role.OWNER), org_a, email="invitee@example.org", role=Role.ANALYST
    )
    ids = {
        "analyst": member_factory(org_a, Role.ANALYST).pk,
        "operator": member_factory(org_a, Role.OPERATOR).pk,
        "granted_operator": granted.pk,
        "invitation": invitation.pk,
        "api_key": factories.api_key_factory(org_a).pk,
        "audit_entry": factories.AuditEntryFactory(organization=org_a).pk,
        "station": station.pk,
    }
    return {name: str(value) for name, value in ids.items()}


def _fill(value: Any, targets: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**targets)
    if isinstance(value, dict):
        return {key: _fill(item, targets) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, targets) for item in value]
    return value


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_each_role_gets_what_the_table_says(org_a, targets, member_factory, client_for, row, role):
    client = client_for(member_factory(org_a, role))
    method, path = row.request.split(" ")
    url = f"/api/v1/orgs/{org_a.slug}/" + _fill(path, targets)
    before = database_rows()
    response = getattr(client, method.lower())(url, _fill(row.body, targets), format="json")

    if role in row.allowed:
        assert response.status_code == row.success, response.content
        return
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "permission_denied"
    expected = row.denial.get(role, f"Your role ({Role(role).label}) does not allow this")
    assert expected in response.json()["detail"]
    assert database_rows() == before


def test_the_table_agrees_with_the_matrix_in_roles_py():
    for row in ROWS:
        assert row.allowed == MATRIX[row.permission], row.name
    assert {row.permission for row in ROWS} == set(Permission)


def _organization_views() -> list[type[OrganizationScoped]]:
    found, pending = [], list(OrganizationScoped.__subclasses__())
    while pending:
        view = pending.pop()
        pending.extend(view.__subclasses__())
        if view.permission_map and not view.__module__.startswith(("ironbowl.api.", "tests.")):
            found.append(view)
    return found


def test_the_table_covers_every_action_of_every_organization_endpoint():
    api = {
        (view.__name__, action) for view in _organization_views() for action in view.permission_map
    }
    table = {tuple(row.name.split(".")) for row in ROWS}
    assert api - table == set(), "add these actions to ROWS"
    assert table - api == set(), "these rows name actions the API does not have"


def test_a_person_outside_the_organization_gets_not_found_not_forbidden(
    targets, org_b, owner_b, client_for
):
    outsider = client_for(owner_b)
    before = database_rows()
    for row in ROWS:
        method, path = row.request.split(" ")
        url = "/api/v1/orgs/alpha-hospital/" + _fill(path, targets)
        response = getattr(outsider, method.lower())(url, _fill(row.body, targets), format="json")
        assert response.status_code == 404, row.name
        assert response.json() == {"code": "not_found", "detail": "Not found."}
    assert database_rows() == before
