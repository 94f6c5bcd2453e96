"""The console's administration pages: members and roles, invitations, per-station operator
grants, API keys and the audit log with its CSV export.

Driven through Django's test client (real sessions, middleware, templates, services and
database). Simulated: the invitation email (the invitee's own client opens the link the page
showed) and the passing of time (audit entries are written with chosen `created_at` values).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ironbowl.console.pages import administration
from scheduling import selectors as station_selectors
from scheduling import services as station_services
from tenants import selectors, tokens
from tenants.audit import Actor
from tenants.models import ApiKey, AuditEntry, Invitation, InvitationStatus, Membership
from tenants.roles import Role
from tests import factories
from tests.console.conftest import submit_token
from tests.support import database_rows

pytestmark = pytest.mark.django_db


def url(org, name: str, *args: object) -> str:
    return reverse(f"console:{name}", args=[org.slug, *args])


def send(client: Client, path: str, data: dict, token: str | None = None):
    """POST a console form with a submit token (a fresh one unless given)."""
    return client.post(path, {**data, "submit_token": token or uuid.uuid4().hex})


def errors_next_to(html: str, field_id: str) -> str:
    """The error list rendered right after a field (empty when there is none)."""
    match = re.search(rf'<ul class="errors" id="{field_id}-errors"[^>]*>(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


def select_options(html: str, select_id: str) -> list[str]:
    match = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', html, re.S)
    assert match, f"no select {select_id}"
    return re.findall(r'<option value="([^"]*)"', match.group(1))


def actor_of(membership: Membership) -> Actor:
    return Actor(user=membership.user, role=membership.role)


# -- tabs and roles --------------------------------------------------------------------------


def test_the_tabs_show_what_the_role_may_open(org_a, owner_a, member_factory, console_for):
    owner_html = console_for(owner_a).get(url(org_a, "members")).content.decode()
    assert re.findall(r'data-tab="([^"]+)"', owner_html) == [
        "members",
        "invitations",
        "grants",
        "api-keys",
        "audit",
    ]
    analyst = console_for(member_factory(org_a, Role.ANALYST))
    analyst_html = analyst.get(url(org_a, "members")).content.decode()
    assert re.findall(r'data-tab="([^"]+)"', analyst_html) == [
        "members",
        "invitations",
        "grants",
        "audit",
    ]


def test_each_page_needs_its_permission(org_a, member_factory, console_for):
    operator = console_for(member_factory(org_a, Role.OPERATOR))
    analyst = console_for(member_factory(org_a, Role.ANALYST))
    billing = console_for(member_factory(org_a, Role.BILLING))
    assert operator.get(url(org_a, "members")).status_code == 200
    assert operator.get(url(org_a, "invitations")).status_code == 200
    assert operator.get(url(org_a, "grants")).status_code == 200
    assert operator.get(url(org_a, "api-keys")).status_code == 403
    assert operator.get(url(org_a, "audit")).status_code == 403
    assert operator.get(url(org_a, "audit-export")).status_code == 403
    assert analyst.get(url(org_a, "audit")).status_code == 200
    assert analyst.get(url(org_a, "audit-export")).status_code == 200
    assert analyst.get(url(org_a, "api-keys")).status_code == 403
    assert billing.get(url(org_a, "grants")).status_code == 403
    assert billing.get(url(org_a, "audit")).status_code == 403


# -- members ---------------------------------------------------------------------------------


def test_members_lists_this_organizations_people_only(console_a, org_a, owner_a, owner_b):
    html = console_a.get(url(org_a, "members")).content.decode()
    assert owner_a.user.email in html
    assert owner_b.user.email not in html


def test_an_owner_changes_a_role(console_a, org_a, member_factory):
    operator = member_factory(org_a, Role.OPERATOR)
    response = send(console_a, url(org_a, "member-role", operator.pk), {"role": Role.ANALYST})
    assert response.status_code == 302
    assert response["Location"] == url(org_a, "members")
    operator.refresh_from_db()
    assert operator.role == Role.ANALYST
    entry = AuditEntry.objects.for_organization(org_a).get(action="membership.update")
    assert entry.before["role"] == Role.OPERATOR and entry.after["role"] == Role.ANALYST
    page = console_a.get(response["Location"]).content.decode()
    assert f"{operator.user.email} is now Analyst." in page


def test_an_admin_is_offered_only_the_roles_they_may_give(org_a, member_factory, console_for):
    admin = console_for(member_factory(org_a, Role.ADMIN))
    operator = member_factory(org_a, Role.OPERATOR)
    html = admin.get(url(org_a, "members")).content.decode()
    assert Role.OWNER.value not in select_options(html, f"role-{operator.pk}")


def test_an_admin_may_not_make_an_owner(org_a, member_factory, console_for):
    admin = console_for(member_factory(org_a, Role.ADMIN))
    operator = member_factory(org_a, Role.OPERATOR)
    before = database_rows()
    response = send(admin, url(org_a, "member-role", operator.pk), {"role": Role.OWNER})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Only an owner can make someone an owner." in errors_next_to(html, f"role-{operator.pk}")
    assert database_rows() == before


def test_an_unknown_role_is_refused_next_to_the_field(console_a, org_a, member_factory):
    operator = member_factory(org_a, Role.OPERATOR)
    before = database_rows()
    response = send(console_a, url(org_a, "member-role", operator.pk), {"role": "emperor"})
    assert response.status_code == 400
    assert "emperor" in errors_next_to(response.content.decode(), f"role-{operator.pk}")
    assert database_rows() == before


def test_the_last_owner_can_neither_step_down_nor_leave(console_a, org_a, owner_a):
    before = database_rows()
    demoted = send(console_a, url(org_a, "member-role", owner_a.pk), {"role": Role.ADMIN})
    removed = send(console_a, url(org_a, "member-remove", owner_a.pk), {})
    for response in (demoted, removed):
        assert response.status_code == 409
        assert "An organization needs at least one owner" in response.content.decode()
    assert database_rows() == before


def test_an_admin_may_not_remove_an_owner(org_a, owner_a, member_factory, console_for):
    admin = console_for(member_factory(org_a, Role.ADMIN))
    before = database_rows()
    response = send(admin, url(org_a, "member-remove", owner_a.pk), {})
    assert response.status_code == 400
    assert "Only an owner can change or remove another owner." in response.content.decode()
    assert database_rows() == before


def test_removing_a_member_drops_their_station_grants(console_a, org_a, owner_a, member_factory):
    operator = member_factory(org_a, Role.OPERATOR)
    station = factories.StationFactory(organization=org_a)
    station_services.grant_station_operator(actor_of(owner_a), station, operator)
    response = send(console_a, url(org_a, "member-remove", operator.pk), {})
    assert response.status_code == 302
    assert not Membership.objects.for_organization(org_a).filter(pk=operator.pk).exists()
    assert not station_selectors.stations_operated_by(org_a, operator.user).exists()
    assert AuditEntry.objects.for_organization(org_a).filter(action="membership.delete").exists()


def test_one_who_leaves_goes_back_to_their_organizations(org_a, owner_a, member_factory):
    second_owner = member_factory(org_a, Role.OWNER)
    client = Client()
    client.force_login(second_owner.user)
    response = send(client, url(org_a, "member-remove", second_owner.pk), {})
    assert response.status_code == 302
    assert response["Location"] == reverse("console:home")
    assert selectors.membership_of(second_owner.user, org_a) is None


def test_a_double_submitted_role_change_acts_once(console_a, org_a, member_factory):
    operator = member_factory(org_a, Role.OPERATOR)
    path = url(org_a, "member-role", operator.pk)
    first = send(console_a, path, {"role": Role.ANALYST}, token="same")
    second = send(console_a, path, {"role": Role.ANALYST}, token="same")
    assert first.status_code == second.status_code == 302
    assert second["Location"] == first["Location"]
    updates = AuditEntry.objects.for_organization(org_a).filter(action="membership.update")
    assert updates.count() == 1


def test_an_operator_cannot_manage_members(org_a, owner_a, member_factory, console_for):
    operator = member_factory(org_a, Role.OPERATOR)
    client = console_for(operator)
    html = client.get(url(org_a, "members")).content.decode()
    assert 'data-action="role"' not in html and 'data-action="remove"' not in html
    before = database_rows()
    assert (
        send(client, url(org_a, "member-role", owner_a.pk), {"role": "analyst"}).status_code == 403
    )
    assert send(client, url(org_a, "member-remove", owner_a.pk), {}).status_code == 403
    assert database_rows() == before


def test_another_organizations_member_ids_answer_404(console_b, org_a, org_b, owner_a):
    before = database_rows()
    for name in ("member-role", "member-remove"):
        assert send(console_b, url(org_b, name, owner_a.pk), {"role": "analyst"}).status_code == 404
        assert send(console_b, url(org_a, name, owner_a.pk), {"role": "analyst"}).status_code == 404
    assert console_b.get(url(org_a, "members")).status_code == 404
    assert database_rows() == before


# -- invitations -----------------------------------------------------------------------------


def _invited_page(client: Client, org, email: str = "nurse@example.org", role: str = "operator"):
    created = send(client, url(org, "invitations"), {"email": email, "role": role})
    assert created.status_code == 302, created.content.decode()
    return created, client.get(created["Location"]).content.decode()


def test_an_invitation_link_is_shown_once(console_a, org_a):
    created, html = _invited_page(console_a, org_a, email="Nurse@Example.org")
    assert "?reveal=" in created["Location"]
    link = re.search(r'id="invitation-link" type="text" readonly value="([^"]+)"', html).group(1)
    token = re.search(r"token=([A-Za-z0-9_\-]+)", link).group(1)
    invitation = Invitation.objects.for_organization(org_a).get()
    assert invitation.email == "nurse@example.org"
    assert invitation.token_hash == tokens.digest(token)
    assert link.startswith("http://testserver" + url(org_a, "invitation-accept"))
    for again in (console_a.get(created["Location"]), console_a.get(url(org_a, "invitations"))):
        assert again.status_code == 200
        assert token not in again.content.decode()
        assert "nurse@example.org" in again.content.decode()


@pytest.mark.parametrize(
    ("page", "data", "secret_field"),
    [
        ("api-keys", {"name": "Widget", "scopes": ["events.write"]}, 'id="api-key-secret"'),
        ("invitations", {"email": "nurse@example.org", "role": "operator"}, 'id="invitation-link"'),
    ],
)
def test_another_admin_opening_the_same_reveal_link_gets_nothing(
    console_a, org_a, member_factory, console_for, page, data, secret_field
):
    """A secret is kept for the one who created it, briefly, and read once: another
    administrator of the same organization given the same ?reveal= URL sees no secret, and the
    creator still sees it, once."""
    created = send(console_a, url(org_a, page), data)
    assert created.status_code == 302 and "?reveal=" in created["Location"]
    other_admin = console_for(member_factory(org_a, Role.ADMIN))
    theirs = other_admin.get(created["Location"])
    assert theirs.status_code == 200 and secret_field not in theirs.content.decode()
    assert secret_field in console_a.get(created["Location"]).content.decode()
    assert secret_field not in console_a.get(created["Location"]).content.decode()
    assert administration.REVEAL_TTL_S <= 2 * 60


def test_a_double_submitted_invitation_invites_once(console_a, org_a):
    token = submit_token(console_a.get(url(org_a, "invitations")).content.decode())
    data = {"email": "nurse@example.org", "role": "operator"}
    first = send(console_a, url(org_a, "invitations"), data, token=token)
    second = send(console_a, url(org_a, "invitations"), data, token=token)
    assert first.status_code == second.status_code == 302
    assert second["Location"] == first["Location"]
    assert Invitation.objects.for_organization(org_a).count() == 1


def test_a_bad_email_is_refused_next_to_the_field(console_a, org_a):
    before = database_rows()
    response = send(console_a, url(org_a, "invitations"), {"email": "nurse@", "role": "operator"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Enter a valid email address." in errors_next_to(html, "field-email")
    assert 'value="nurse@"' in html  # what was typed stays
    assert database_rows() == before


def test_what_was_typed_survives_an_expired_session(org_a, owner_a):
    client = Client()
    path = url(org_a, "invitations")
    signed_out = send(client, path, {"email": "nurse@example.org", "role": "analyst"})
    assert signed_out.status_code == 302
    assert signed_out["Location"].startswith(reverse("console:sign-in"))
    client.force_login(owner_a.user)
    html = client.get(path).content.decode()
    assert 'value="nurse@example.org"' in html
    assert select_options(html, "field-role")  # the form is there, with the role kept:
    assert re.search(r'<option value="analyst" selected>', html)
    assert not Invitation.objects.for_organization(org_a).exists()


def test_an_admin_may_not_invite_an_owner(org_a, member_factory, console_for):
    admin = console_for(member_factory(org_a, Role.ADMIN))
    html = admin.get(url(org_a, "invitations")).content.decode()
    assert Role.OWNER.value not in select_options(html, "field-role")
    before = database_rows()
    response = send(admin, url(org_a, "invitations"), {"email": "a@example.org", "role": "owner"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Only an owner can make someone an owner." in errors_next_to(html, "field-role")
    assert database_rows() == before


def test_a_second_pending_invitation_is_refused_with_the_services_words(console_a, org_a):
    _invited_page(console_a, org_a)
    before = database_rows()
    response = send(
        console_a, url(org_a, "invitations"), {"email": "nurse@example.org", "role": "analyst"}
    )
    assert response.status_code == 409
    assert "already has a pending invitation" in errors_next_to(
        response.content.decode(), "field-email"
    )
    assert database_rows() == before


def test_an_invitation_is_withdrawn(console_a, org_a):
    _invited_page(console_a, org_a)
    invitation = Invitation.objects.for_organization(org_a).get()
    response = send(console_a, url(org_a, "invitation-revoke", invitation.pk), {})
    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.REVOKED
    page = console_a.get(url(org_a, "invitations")).content.decode()
    assert f'data-invitation="{invitation.pk}"' not in page
    again = send(console_a, url(org_a, "invitation-revoke", invitation.pk), {})
    assert again.status_code == 409
    assert "Only a pending invitation can be revoked" in again.content.decode()


def test_an_operator_sees_invitations_but_cannot_invite(org_a, member_factory, console_for):
    invitation = factories.InvitationFactory(organization=org_a)
    client = console_for(member_factory(org_a, Role.OPERATOR))
    html = client.get(url(org_a, "invitations")).content.decode()
    assert invitation.email in html
    assert 'data-action="invite"' not in html
    before = database_rows()
    data = {"email": "x@example.org", "role": "analyst"}
    assert send(client, url(org_a, "invitations"), data).status_code == 403
    assert send(client, url(org_a, "invitation-revoke", invitation.pk), {}).status_code == 403
    assert database_rows() == before


def test_another_organizations_invitation_ids_answer_404(console_b, org_a, org_b):
    invitation = factories.InvitationFactory(organization=org_a)
    before = database_rows()
    assert send(console_b, url(org_b, "invitation-revoke", invitation.pk), {}).status_code == 404
    assert send(console_b, url(org_a, "invitation-revoke", invitation.pk), {}).status_code == 404
    assert invitation.email not in console_b.get(url(org_b, "invitations")).content.decode()
    assert database_rows() == before


def test_the_invitee_joins_through_the_link(console_a, org_a):
    _created, html = _invited_page(console_a, org_a, role="analyst")
    link = re.search(r'id="invitation-link" type="text" readonly value="([^"]+)"', html).group(1)
    path = link.removeprefix("http://testserver")
    signed_out = Client().get(path)
    assert signed_out.status_code == 302
    assert signed_out["Location"].startswith(reverse("console:sign-in"))
    invitee = Client()
    invitee.force_login(factories.UserFactory(email="nurse@example.org"))
    page = invitee.get(path)
    assert page.status_code == 200
    assert "Join Alpha Hospital" in page.content.decode()
    token = re.search(r"token=([A-Za-z0-9_\-]+)", link).group(1)
    joined = send(invitee, url(org_a, "invitation-accept"), {"token": token})
    assert joined.status_code == 302
    assert joined["Location"] == reverse("console:dashboard", args=[org_a.slug])
    membership = Membership.objects.for_organization(org_a).get(user__email="nurse@example.org")
    assert membership.role == Role.ANALYST


def test_the_join_page_exists_only_for_a_valid_token_of_that_organization(
    console_a, console_b, org_a, org_b
):
    _created, html = _invited_page(console_a, org_a)
    token = re.search(r"token=([A-Za-z0-9_\-]+)", html).group(1)
    assert console_b.get(url(org_a, "invitation-accept")).status_code == 404
    assert console_b.get(url(org_a, "invitation-accept") + "?token=nope").status_code == 404
    assert console_b.get(url(org_b, "invitation-accept") + f"?token={token}").status_code == 404
    before = database_rows()
    # The right link, opened by someone else: the service's refusal, and nobody joins.
    wrong = send(console_b, url(org_a, "invitation-accept"), {"token": token})
    assert wrong.status_code == 400
    assert "sent to another email address" in wrong.content.decode()
    assert database_rows() == before


# -- station grants --------------------------------------------------------------------------


@pytest.fixture
def station_a(org_a):
    return factories.StationFactory(organization=org_a, name="Outpatient live room")


@pytest.fixture
def operator_a(org_a, member_factory):
    return member_factory(org_a, Role.OPERATOR)


def test_an_operator_is_granted_a_station(console_a, org_a, station_a, operator_a):
    response = send(
        console_a, url(org_a, "grants"), {"station": station_a.pk, "member": operator_a.pk}
    )
    assert response.status_code == 302
    assert list(station_selectors.stations_operated_by(org_a, operator_a.user)) == [station_a]
    html = console_a.get(url(org_a, "grants")).content.decode()
    assert f'data-grant="{station_a.pk}:{operator_a.pk}"' in html
    assert "Outpatient live room" in html and operator_a.user.email in html


def test_a_double_submitted_grant_acts_once(console_a, org_a, station_a, operator_a):
    data = {"station": station_a.pk, "member": operator_a.pk}
    first = send(console_a, url(org_a, "grants"), data, token="same")
    second = send(console_a, url(org_a, "grants"), data, token="same")
    assert first.status_code == second.status_code == 302
    grants = AuditEntry.objects.for_organization(org_a).filter(action="station.grant_operator")
    assert grants.count() == 1


def test_a_foreign_member_or_station_is_refused_like_a_missing_one(
    console_a, org_a, org_b, station_a, operator_a, member_factory
):
    operator_b = member_factory(org_b, Role.OPERATOR)
    station_b = factories.StationFactory(organization=org_b)
    missing = uuid.uuid4()
    before = database_rows()

    def error(field: str, data: dict) -> str:
        response = send(console_a, url(org_a, "grants"), data)
        assert response.status_code == 400
        return errors_next_to(response.content.decode(), f"field-{field}")

    foreign_member = error("member", {"station": station_a.pk, "member": operator_b.pk})
    missing_member = error("member", {"station": station_a.pk, "member": missing})
    assert foreign_member.replace(str(operator_b.pk), "ID") == missing_member.replace(
        str(missing), "ID"
    )
    assert "No such object" in foreign_member
    foreign_station = error("station", {"station": station_b.pk, "member": operator_a.pk})
    missing_station = error("station", {"station": missing, "member": operator_a.pk})
    assert foreign_station.replace(str(station_b.pk), "ID") == missing_station.replace(
        str(missing), "ID"
    )
    assert database_rows() == before


def test_only_operators_get_station_grants(console_a, org_a, station_a, member_factory):
    analyst = member_factory(org_a, Role.ANALYST)
    before = database_rows()
    response = send(
        console_a, url(org_a, "grants"), {"station": station_a.pk, "member": analyst.pk}
    )
    assert response.status_code == 400
    assert "Only members with the operator role get per-station grants" in errors_next_to(
        response.content.decode(), "field-member"
    )
    assert database_rows() == before


def test_a_grant_is_revoked(console_a, org_a, owner_a, station_a, operator_a):
    station_services.grant_station_operator(actor_of(owner_a), station_a, operator_a)
    response = send(console_a, url(org_a, "grant-revoke", station_a.pk, operator_a.pk), {})
    assert response.status_code == 302
    assert not station_selectors.stations_operated_by(org_a, operator_a.user).exists()
    again = send(console_a, url(org_a, "grant-revoke", station_a.pk, operator_a.pk), {})
    assert again.status_code == 400
    assert "This member does not operate this station." in again.content.decode()


def test_the_grants_page_costs_the_same_queries_however_many_operators(
    console_a, org_a, member_factory, django_assert_max_num_queries
):
    """Grants are read for the whole organization at once, not once per operator."""

    def add_operator_with_grants(n: int) -> None:
        operator = member_factory(org_a, Role.OPERATOR)
        for k in range(2):
            station = factories.StationFactory(organization=org_a, name=f"Room {n}-{k}")
            station_services.grant_station_operator(actor_of(owner), station, operator)

    owner = Membership.objects.for_organization(org_a).get(role=Role.OWNER)
    add_operator_with_grants(0)
    console_a.get(url(org_a, "grants"))  # the first page of the org writes the session once
    with CaptureQueriesContext(connection) as few:
        assert console_a.get(url(org_a, "grants")).status_code == 200
    for n in range(1, 5):
        add_operator_with_grants(n)
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = console_a.get(url(org_a, "grants")).content.decode()
    assert html.count("data-grant=") == 10 and html.count("data-operator=") == 5
    assert "Room 4-0, Room 4-1" in html  # each operator's stations, by name


def test_another_organizations_station_and_member_ids_answer_404(
    console_b, org_a, org_b, owner_a, owner_b, station_a, operator_a, member_factory
):
    station_services.grant_station_operator(actor_of(owner_a), station_a, operator_a)
    station_b = factories.StationFactory(organization=org_b)
    operator_b = member_factory(org_b, Role.OPERATOR)
    before = database_rows()
    for station, member in (
        (station_a, operator_a),
        (station_b, operator_a),
        (station_a, operator_b),
    ):
        path = url(org_b, "grant-revoke", station.pk, member.pk)
        assert send(console_b, path, {}).status_code == 404
    assert (
        send(console_b, url(org_a, "grant-revoke", station_a.pk, operator_a.pk), {}).status_code
        == 404
    )
    html = console_b.get(url(org_b, "grants")).content.decode()
    assert station_a.name not in html and operator_a.user.email not in html
    assert database_rows() == before


def test_an_operator_sees_grants_but_cannot_grant(org_a, station_a, operator_a, console_for):
    client = console_for(operator_a)
    html = client.get(url(org_a, "grants")).content.decode()
    assert 'data-action="grant"' not in html
    before = database_rows()
    response = send(
        client, url(org_a, "grants"), {"station": station_a.pk, "member": operator_a.pk}
    )
    assert response.status_code == 403
    assert database_rows() == before


# -- API keys --------------------------------------------------------------------------------


def _created_key(client: Client, org, name: str = "Douyin events", scopes=("events.write",)):
    created = send(client, url(org, "api-keys"), {"name": name, "scopes": list(scopes)})
    assert created.status_code == 302, created.content.decode()
    html = client.get(created["Location"]).content.decode()
    secret = re.search(r'id="api-key-secret" type="text" readonly value="([^"]+)"', html)
    assert secret, "the new key's secret is shown on the page after creating it"
    return created, secret.group(1)


def test_an_api_keys_secret_is_shown_once(console_a, org_a):
    created, secret = _created_key(console_a, org_a, scopes=("events.write", "analytics.view"))
    key = ApiKey.objects.for_organization(org_a).get()
    assert selectors.api_key_for_token(secret) == key
    assert key.scopes == ["analytics.view", "events.write"]
    assert "no-store" in console_a.get(created["Location"])["Cache-Control"]
    for again in (console_a.get(created["Location"]), console_a.get(url(org_a, "api-keys"))):
        html = again.content.decode()
        assert again.status_code == 200
        assert secret not in html
        assert 'id="api-key-secret"' not in html
        assert key.prefix in html  # the key is still recognisable by its prefix


def test_a_double_submitted_key_is_created_once(console_a, org_a):
    token = submit_token(console_a.get(url(org_a, "api-keys")).content.decode())
    data = {"name": "Widget", "scopes": ["events.write"]}
    first = send(console_a, url(org_a, "api-keys"), data, token=token)
    second = send(console_a, url(org_a, "api-keys"), data, token=token)
    assert first.status_code == second.status_code == 302
    assert ApiKey.objects.for_organization(org_a).count() == 1


def test_a_key_needs_a_name_and_scopes(console_a, org_a):
    before = database_rows()
    response = send(console_a, url(org_a, "api-keys"), {"name": ""})
    assert response.status_code == 400
    html = response.content.decode()
    assert errors_next_to(html, "field-name")
    assert errors_next_to(html, "field-scopes")
    assert database_rows() == before


def test_a_scope_no_key_may_have_is_refused(console_a, org_a):
    before = database_rows()
    response = send(
        console_a,
        url(org_a, "api-keys"),
        {"name": "Robot", "scopes": ["events.write", "members.manage"]},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "members.manage" in errors_next_to(html, "field-scopes")
    assert re.search(r'value="events.write" checked', html)  # what was chosen stays chosen
    assert database_rows() == before


def test_a_key_is_revoked(console_a, org_a):
    _created, secret = _created_key(console_a, org_a)
    key = ApiKey.objects.for_organization(org_a).get()
    response = send(console_a, url(org_a, "api-key-revoke", key.pk), {})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    html = console_a.get(url(org_a, "api-keys")).content.decode()
    assert "Revoked" in html and secret not in html
    again = send(console_a, url(org_a, "api-key-revoke", key.pk), {})
    assert again.status_code == 302  # revoking twice is harmless, as in the API


def test_another_organizations_key_ids_answer_404(console_b, org_a, org_b):
    key, _secret = factories.make_api_key(org_a, name="Alpha robot")
    before = database_rows()
    assert send(console_b, url(org_b, "api-key-revoke", key.pk), {}).status_code == 404
    assert send(console_b, url(org_a, "api-key-revoke", key.pk), {}).status_code == 404
    html = console_b.get(url(org_b, "api-keys")).content.decode()
    assert "Alpha robot" not in html and key.prefix not in html
    assert database_rows() == before


def test_only_owners_and_admins_manage_keys(org_a, member_factory, console_for):
    key, _secret = factories.make_api_key(org_a)
    before = database_rows()
    for role in (Role.OPERATOR, Role.ANALYST, Role.BILLING):
        client = console_for(member_factory(org_a, role))
        data = {"name": "x", "scopes": ["events.write"]}
        assert send(client, url(org_a, "api-keys"), data).status_code == 403
        assert send(client, url(org_a, "api-key-revoke", key.pk), {}).status_code == 403
    assert ApiKey.objects.for_organization(org_a).count() == 1
    assert database_rows()["tenants.ApiKey"] == before["tenants.ApiKey"]
    admin = console_for(member_factory(org_a, Role.ADMIN))
    assert admin.get(url(org_a, "api-keys")).status_code == 200


# -- audit log -------------------------------------------------------------------------------


def entry(org, at: dt.datetime, **fields) -> AuditEntry:
    return factories.AuditEntryFactory(organization=org, created_at=at, **fields)


def entry_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-entry="(\d+)"', html)]


def test_an_analyst_reads_the_audit_log_in_the_organizations_time(
    org_a, member_factory, console_for
):
    org_a.time_zone = "Asia/Shanghai"
    org_a.save()
    entry(org_a, dt.datetime(2026, 3, 9, 16, 30, tzinfo=dt.UTC), action="station.create")
    analyst = console_for(member_factory(org_a, Role.ANALYST))
    html = analyst.get(url(org_a, "audit")).content.decode()
    assert "2026-03-10 00:30:00" in html  # 16:30 UTC is 00:30 the next day in Shanghai
    assert "station.create" in html


def test_filters_by_actor_action_and_object_type(console_a, org_a):
    at = dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)
    match = entry(
        org_a,
        at,
        actor_label="nurse@example.org",
        action="station.create",
        object_type="scheduling.station",
    )
    entry(
        org_a,
        at,
        actor_label="doctor@example.org",
        action="station.create",
        object_type="scheduling.station",
    )
    entry(
        org_a,
        at,
        actor_label="nurse@example.org",
        action="station.update",
        object_type="scheduling.station",
    )
    entry(
        org_a,
        at,
        actor_label="nurse@example.org",
        action="station.create",
        object_type="tests.other",
    )
    query = {"actor": "NURSE", "action": "station.create", "object_type": "scheduling.station"}
    response = console_a.get(url(org_a, "audit"), query)
    assert response.status_code == 200
    assert entry_ids(response.content.decode()) == [match.pk]


def test_the_filters_offer_readable_actions_and_object_types(console_a, org_a, org_b):
    """The choices read as words (the model's name, what was done), their values stay the
    codes the filter takes; another organization's codes are not offered."""
    at = dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)
    entry(org_a, at, action="station.grant_operator", object_type="scheduling.station")
    entry(org_a, at, action="widget.polish", object_type="tests.other")
    entry(org_b, at, action="avatar.retire", object_type="avatars.avatar")
    html = console_a.get(url(org_a, "audit")).content.decode()
    assert '<option value="station.grant_operator">Station: operator granted</option>' in html
    assert '<option value="widget.polish">Widget: polish</option>' in html  # unknown: words
    assert '<option value="scheduling.station">Station</option>' in html
    assert '<option value="tests.other">tests.other</option>' in html
    assert "avatar.retire" not in html and "avatars.avatar" not in html
    chosen = console_a.get(url(org_a, "audit"), {"action": "station.grant_operator"})
    assert len(entry_ids(chosen.content.decode())) == 1


def test_a_date_range_is_whole_days_in_the_organizations_time_zone(console_a, org_a):
    # New York moves its clocks forward on 2026-03-08: that local day is 23 hours long,
    # 05:00 UTC to 04:00 UTC the next day.
    org_a.time_zone = "America/New_York"
    org_a.save()
    utc = dt.UTC
    entry(org_a, dt.datetime(2026, 3, 8, 4, 59, 59, tzinfo=utc))  # 7 March, 23:59:59 EST
    first = entry(org_a, dt.datetime(2026, 3, 8, 5, 0, 0, tzinfo=utc))  # 8 March, 00:00 EST
    last = entry(org_a, dt.datetime(2026, 3, 9, 3, 59, 59, tzinfo=utc))  # 8 March, 23:59:59 EDT
    entry(org_a, dt.datetime(2026, 3, 9, 4, 0, 0, tzinfo=utc))  # 9 March, 00:00 EDT
    response = console_a.get(url(org_a, "audit"), {"since": "2026-03-08", "until": "2026-03-08"})
    assert entry_ids(response.content.decode()) == [last.pk, first.pk]


def test_bad_dates_are_refused_next_to_the_field(console_a, org_a):
    entry(org_a, dt.datetime(2026, 3, 9, tzinfo=dt.UTC))
    bad = console_a.get(url(org_a, "audit"), {"since": "2026-02-30"})
    assert bad.status_code == 400
    assert "Enter a date" in errors_next_to(bad.content.decode(), "field-since")
    assert entry_ids(bad.content.decode()) == []
    backwards = console_a.get(url(org_a, "audit"), {"since": "2026-03-09", "until": "2026-03-01"})
    assert backwards.status_code == 400
    assert "before the start date" in errors_next_to(backwards.content.decode(), "field-until")
    export = console_a.get(url(org_a, "audit-export"), {"since": "yesterday"})
    assert export.status_code == 400
    assert export["Content-Type"].startswith("text/html")


def test_pages_follow_a_keyset_cursor_through_equal_times(console_a, org_a, monkeypatch):
    monkeypatch.setattr(administration, "AUDIT_PAGE_SIZE", 5)
    base = dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)
    created = [
        entry(org_a, base + dt.timedelta(seconds=i // 3), action=f"test.n{i}") for i in range(13)
    ]
    expected = [e.pk for e in sorted(created, key=lambda e: (e.created_at, e.pk), reverse=True)]
    seen: list[int] = []
    path = url(org_a, "audit") + "?action="
    pages = 0
    while path:
        html = console_a.get(path).content.decode()
        seen += entry_ids(html)
        pages += 1
        older = re.search(r'href="([^"]+)" rel="next"', html)
        path = url(org_a, "audit") + older.group(1).replace("&amp;", "&") if older else ""
    assert seen == expected
    assert pages == 3


def test_a_broken_cursor_starts_again_from_the_newest(console_a, org_a):
    newest = entry(org_a, dt.datetime(2026, 3, 9, tzinfo=dt.UTC))
    response = console_a.get(url(org_a, "audit"), {"cursor": "not-a-cursor"})
    html = response.content.decode()
    assert "This page link is broken" in html
    assert entry_ids(html) == [newest.pk]


def _csv(response) -> tuple[str, list[list[str]]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return body, list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))


def test_the_export_streams_the_filtered_entries_for_excel(console_a, org_a):
    org_a.time_zone = "Asia/Shanghai"
    org_a.save()
    kept = entry(
        org_a,
        dt.datetime(2026, 3, 9, 16, 30, tzinfo=dt.UTC),
        action="station.update",
        object_repr='=HYPERLINK("http://evil.example")',
        after={"name": "门诊直播间"},
    )
    entry(org_a, dt.datetime(2026, 3, 9, 16, 31, tzinfo=dt.UTC), action="station.create")
    response = console_a.get(url(org_a, "audit-export"), {"action": "station.update"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-alpha-hospital-')
    body, rows = _csv(response)
    assert body.startswith("\ufeff")
    assert rows[0][:3] == ["Time", "Actor", "Action"]
    assert len(rows) == 2
    row = rows[1]
    assert row[0] == "2026-03-10T00:30:00+08:00"
    assert row[2] == "station.update"
    assert row[5] == '\'=HYPERLINK("http://evil.example")'  # not a formula to a spreadsheet
    assert "门诊直播间" in row[7]
    assert str(kept.object_id) == row[4]


def test_the_export_reads_the_log_in_chunks(console_a, org_a, monkeypatch):
    monkeypatch.setattr(administration, "EXPORT_CHUNK", 4)
    base = dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)
    created = [entry(org_a, base + dt.timedelta(seconds=i // 2)) for i in range(9)]
    response = console_a.get(url(org_a, "audit-export"))
    chunks = list(response.streaming_content)
    assert len(chunks) == 3  # 4 + 4 + 1 rows: one query per chunk
    _body, rows = _csv(type("R", (), {"streaming_content": chunks})())
    assert [r[4] for r in rows[1:]] == [
        e.object_id for e in sorted(created, key=lambda e: (e.created_at, e.pk), reverse=True)
    ]


def test_the_export_streams_asynchronously_over_asgi(org_a, owner_a):
    entry(org_a, dt.datetime(2026, 3, 9, tzinfo=dt.UTC), action="station.create")
    path = url(org_a, "audit-export")

    async def fetch():
        client = AsyncClient()
        await client.aforce_login(owner_a.user)
        response = await client.get(path)
        return response, [chunk async for chunk in response.streaming_content]

    response, chunks = async_to_sync(fetch)()
    assert response.status_code == 200
    assert response.is_async
    body = b"".join(chunks).decode("utf-8")
    assert body.startswith("\ufeff") and "station.create" in body


def test_another_organizations_entries_never_show(console_a, console_b, org_a, org_b):
    at = dt.datetime(2026, 3, 9, tzinfo=dt.UTC)
    mine = entry(org_a, at, action="alpha.visible", actor_label="alpha@example.org")
    entry(org_b, at, action="beta.secret", object_type="beta.thing", actor_label="beta@example.org")
    html = console_a.get(url(org_a, "audit")).content.decode()
    assert entry_ids(html) == [mine.pk]
    assert "beta" not in html
    unfiltered_body, rows = _csv(console_a.get(url(org_a, "audit-export")))
    assert "beta" not in unfiltered_body and len(rows) == 2
    asked_for = console_a.get(url(org_a, "audit-export"), {"action": "beta.secret"})
    assert len(_csv(asked_for)[1]) == 1  # the header only
    assert console_b.get(url(org_a, "audit")).status_code == 404
    assert console_b.get(url(org_a, "audit-export")).status_code == 404
