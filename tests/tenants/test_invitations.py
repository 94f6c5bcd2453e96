"""Invitations: an administrator invites by email, the person accepts with the token they were sent.

The email itself is simulated: the token from the creating response is handed to the invitee's
client, as the mail would carry it. Expiry is simulated by moving `expires_at` into the past.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tenants import services, tasks
from tenants.audit import Actor
from tenants.models import AuditEntry, Invitation, InvitationStatus, Membership
from tenants.roles import Role
from tests import factories
from tests.support import database_rows

ACCEPT_URL = "/api/v1/invitations/accept/"


def _invitations_url(org, *parts: object) -> str:
    return "/".join([f"/api/v1/orgs/{org.slug}/invitations", *map(str, parts), ""])


def _person(email: str) -> APIClient:
    client = APIClient(REMOTE_ADDR="203.0.113.9")
    client.force_authenticate(user=factories.UserFactory(email=email))
    return client


def _invite(org, email: str = "nurse@example.org", role: str = Role.OPERATOR):
    owner = Membership.objects.for_organization(org).filter(role=Role.OWNER).first()
    actor = Actor(user=owner.user if owner else None, role=Role.OWNER)
    return services.invite_member(actor, org, email=email, role=role)


def test_an_invitation_shows_its_token_once(api_a, org_a):
    created = api_a.post(
        _invitations_url(org_a), {"email": "Nurse@Example.org", "role": "operator"}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["email"] == "nurse@example.org"
    assert body["status"] == "pending"
    token = body["token"]
    stored = Invitation.objects.for_organization(org_a).get(pk=body["id"])
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    for response in (
        api_a.get(_invitations_url(org_a)),
        api_a.get(_invitations_url(org_a, body["id"])),
    ):
        assert response.status_code == 200
        assert token not in response.content.decode()
    entry = AuditEntry.objects.for_organization(org_a).get(action="invitation.create")
    assert entry.after is not None
    assert "token_hash" not in entry.after
    assert entry.after["email"] == "nurse@example.org"


def test_the_invited_person_accepts_and_becomes_a_member(org_a, owner_a):
    invitation, token = _invite(org_a, "nurse@example.org", Role.OPERATOR)
    nurse = _person("nurse@example.org")
    response = nurse.post(ACCEPT_URL, {"token": token}, format="json", HTTP_X_REQUEST_ID="req-42")
    assert response.status_code == 201, response.content
    assert response.json()["organization"]["slug"] == org_a.slug
    assert response.json()["role"] == "operator"
    assert "stations.view" in response.json()["permissions"]

    membership = Membership.objects.for_organization(org_a).get(user__email="nurse@example.org")
    assert membership.role == Role.OPERATOR
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.ACCEPTED
    assert invitation.accepted_at is not None

    entries = AuditEntry.objects.for_organization(org_a).filter(
        action__in=["invitation.accept", "membership.create"], actor_label="nurse@example.org"
    )
    assert sorted(e.action for e in entries) == ["invitation.accept", "membership.create"]
    for entry in entries:
        assert entry.ip_address == "203.0.113.9"
        assert entry.request_id == "req-42"
    created = entries.get(action="membership.create")
    assert created.object_id == str(membership.pk)
    assert created.after is not None
    assert created.after["role"] == "operator"

    # The new member now sees the organization.
    assert nurse.get(f"/api/v1/orgs/{org_a.slug}/").status_code == 200


def test_accepting_is_case_insensitive_about_the_email(org_a, owner_a):
    _invitation, token = _invite(org_a, "Nurse@Example.ORG", Role.ANALYST)
    response = _person("nurse@example.org").post(ACCEPT_URL, {"token": token}, format="json")
    assert response.status_code == 201, response.content


def test_an_expired_invitation_says_what_to_do_and_writes_nothing(org_a, owner_a):
    invitation, token = _invite(org_a)
    Invitation.objects.for_organization(org_a).filter(pk=invitation.pk).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    nurse = _person("nurse@example.org")
    before = database_rows()
    response = nurse.post(ACCEPT_URL, {"token": token}, format="json")
    assert response.status_code == 410
    assert response.json()["code"] == "invitation_expired"
    assert org_a.name in response.json()["detail"]
    assert "invite you again" in response.json()["detail"]
    assert database_rows() == before


def test_an_invitation_marked_expired_is_gone_too(org_a, owner_a):
    invitation, token = _invite(org_a)
    services.expire_invitations(now=invitation.expires_at)
    response = _person("nurse@example.org").post(ACCEPT_URL, {"token": token}, format="json")
    assert response.status_code == 410
    assert response.json()["code"] == "invitation_expired"


def test_a_revoked_invitation_is_gone(api_a, org_a):
    created = api_a.post(
        _invitations_url(org_a), {"email": "nurse@example.org", "role": "analyst"}, format="json"
    ).json()
    revoked = api_a.post(_invitations_url(org_a, created["id"], "revoke"))
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"

    nurse = _person("nurse@example.org")
    before = database_rows()
    response = nurse.post(ACCEPT_URL, {"token": created["token"]}, format="json")
    assert response.status_code == 410
    assert response.json()["code"] == "invitation_revoked"
    assert org_a.name in response.json()["detail"]
    assert database_rows() == before


def test_revoking_an_invitation_that_is_not_pending_is_a_conflict(api_a, org_a):
    invitation, _token = _invite(org_a)
    assert api_a.post(_invitations_url(org_a, invitation.pk, "revoke")).status_code == 200
    again = api_a.post(_invitations_url(org_a, invitation.pk, "revoke"))
    assert again.status_code == 409
    assert again.json()["code"] == "invitation_not_pending"
    assert "Revoked" in again.json()["detail"]


def test_someone_else_cannot_use_the_invitation(org_a, owner_a):
    invitation, token = _invite(org_a, "nurse@example.org")
    intruder = _person("intruder@example.org")
    before = database_rows()
    response = intruder.post(ACCEPT_URL, {"token": token}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invitation_other_email"
    assert "Sign in with that address" in response.json()["detail"]
    assert database_rows() == before
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.PENDING


def test_an_accepted_invitation_cannot_be_used_again(org_a, owner_a):
    _invitation, token = _invite(org_a, "nurse@example.org")
    nurse = _person("nurse@example.org")
    assert nurse.post(ACCEPT_URL, {"token": token}, format="json").status_code == 201
    before = database_rows()
    again = nurse.post(ACCEPT_URL, {"token": token}, format="json")
    assert again.status_code == 410
    assert again.json()["code"] == "invitation_used"
    assert database_rows() == before


def test_a_made_up_token_is_a_field_error(org_a):
    response = _person("nurse@example.org").post(ACCEPT_URL, {"token": "made-up"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invitation_invalid"
    assert response.json()["fields"]["token"][0]["code"] == "invitation_invalid"


def test_accepting_needs_a_signed_in_person(org_a, owner_a):
    _invitation, token = _invite(org_a)
    response = APIClient().post(ACCEPT_URL, {"token": token}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_an_admin_cannot_invite_an_owner(org_a, member_factory, client_for):
    admin = client_for(member_factory(org_a, Role.ADMIN))
    before = database_rows()
    response = admin.post(
        _invitations_url(org_a), {"email": "boss@example.org", "role": "owner"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "role_not_assignable"
    assert "owner" in response.json()["fields"]["role"][0]["message"]
    assert database_rows() == before


def test_an_admin_may_invite_an_administrator_and_an_owner_an_owner(
    org_a, owner_a, api_a, member_factory, client_for
):
    admin = client_for(member_factory(org_a, Role.ADMIN))
    as_admin = admin.post(
        _invitations_url(org_a), {"email": "deputy@example.org", "role": "admin"}, format="json"
    )
    as_owner = api_a.post(
        _invitations_url(org_a), {"email": "boss@example.org", "role": "owner"}, format="json"
    )
    assert as_admin.status_code == as_owner.status_code == 201


def test_a_member_cannot_be_invited_again(api_a, org_a, member_factory):
    analyst = member_factory(org_a, Role.ANALYST)
    response = api_a.post(
        _invitations_url(org_a), {"email": analyst.user.email, "role": "admin"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "already_member"


def test_a_second_pending_invitation_is_a_conflict_until_the_first_expires(api_a, org_a):
    payload = {"email": "nurse@example.org", "role": "analyst"}
    first = api_a.post(_invitations_url(org_a), payload, format="json")
    second = api_a.post(_invitations_url(org_a), payload, format="json")
    assert second.status_code == 409
    assert second.json()["code"] == "already_invited"

    Invitation.objects.for_organization(org_a).filter(pk=first.json()["id"]).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    third = api_a.post(_invitations_url(org_a), payload, format="json")
    assert third.status_code == 201, third.content
    earlier = Invitation.objects.for_organization(org_a).get(pk=first.json()["id"])
    assert earlier.status == InvitationStatus.EXPIRED


def test_the_status_filter_lists_invitations_by_status(api_a, org_a):
    pending, _ = _invite(org_a, "a@example.org")
    revoked, _ = _invite(org_a, "b@example.org")
    services.revoke_invitation(Actor(), revoked)
    listed = api_a.get(_invitations_url(org_a), {"status": "revoked"}).json()["results"]
    assert [i["id"] for i in listed] == [str(revoked.pk)]
    bad = api_a.get(_invitations_url(org_a), {"status": "lost"})
    assert bad.status_code == 400
    assert "status" in bad.json()["fields"]
    assert pending.status == InvitationStatus.PENDING


@pytest.mark.parametrize("run", [services.expire_invitations, tasks.expire_invitations])
def test_expire_invitations_marks_only_past_pending_ones(org_a, org_b, run):
    now = timezone.now()
    past = factories.InvitationFactory(organization=org_a, expires_at=now - dt.timedelta(hours=1))
    past_b = factories.InvitationFactory(organization=org_b, expires_at=now - dt.timedelta(days=3))
    future = factories.InvitationFactory(organization=org_a, expires_at=now + dt.timedelta(days=1))
    accepted = factories.InvitationFactory(
        organization=org_a,
        expires_at=now - dt.timedelta(hours=1),
        status=InvitationStatus.ACCEPTED,
    )
    revoked = factories.InvitationFactory(
        organization=org_a,
        expires_at=now - dt.timedelta(hours=1),
        status=InvitationStatus.REVOKED,
    )
    assert run() == 2
    for invitation, status in [
        (past, InvitationStatus.EXPIRED),
        (past_b, InvitationStatus.EXPIRED),
        (future, InvitationStatus.PENDING),
        (accepted, InvitationStatus.ACCEPTED),
        (revoked, InvitationStatus.REVOKED),
    ]:
        invitation.refresh_from_db()
        assert invitation.status == status, invitation.email
    assert run() == 0
