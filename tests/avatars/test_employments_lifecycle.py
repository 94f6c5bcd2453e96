"""The employment lifecycle: every (from, to) pair is allowed or refused as the one table says,
every change needs a reason and leaves history and an audit entry, and becoming active is guarded
by a ready avatar, a consent that covers the organization, and finished onboarding."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.utils import timezone

from avatars import employments as services
from avatars.models import EmploymentStatus, EmploymentTransition
from tenants.audit import SYSTEM
from tenants.errors import DomainError
from tenants.models import AuditEntry
from tests.avatars.factories import (
    AvatarVersionFactory,
    EmploymentFactory,
    onboarded_employment,
    ready_avatar,
)
from tests.factories import OrganizationFactory
from tests.support import database_rows

pytestmark = pytest.mark.django_db

STATUSES = [s.value for s in EmploymentStatus]

ALLOWED = {
    ("offered", "onboarding"): "accept",
    ("onboarding", "active"): "activate",
    ("active", "suspended"): "suspend",
    ("suspended", "active"): "resume",
    ("offered", "terminated"): "terminate",
    ("onboarding", "terminated"): "terminate",
    ("active", "terminated"): "terminate",
    ("suspended", "terminated"): "terminate",
}


def _transition(client, employment, to, reason="Agreed with the department head."):
    return client.post(
        f"/api/v1/orgs/{employment.organization.slug}/employments/{employment.pk}/transition/",
        {"to": to, "reason": reason},
        format="json",
    )


def test_the_table_in_the_code_is_the_table_here():
    assert services.TRANSITIONS == ALLOWED


@pytest.mark.parametrize(
    ("current", "to"), [pair for pair in itertools.product(STATUSES, STATUSES) if pair in ALLOWED]
)
def test_an_allowed_transition_moves_the_employment_and_records_why(
    org_a, owner_a, api_a, current, to
):
    # Onboarding done, a ready avatar, a valid consent for any organization: every guard passes.
    employment = onboarded_employment(organization=org_a, status=current)

    response = _transition(api_a, employment, to, "  Agreed with the department head. ")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == to
    assert response.json()["status_reason"] == "Agreed with the department head."
    employment.refresh_from_db()
    assert employment.status == to
    row = EmploymentTransition.objects.for_organization(org_a).get(employment=employment)
    assert (row.from_status, row.to_status) == (current, to)
    assert row.reason == "Agreed with the department head."
    assert row.actor_label == owner_a.user.email
    entry = AuditEntry.objects.for_organization(org_a).get(
        action=f"employment.{ALLOWED[current, to]}"
    )
    assert entry.object_id == str(employment.pk)
    assert (entry.before["status"], entry.after["status"]) == (current, to)


@pytest.mark.parametrize(
    ("current", "to"),
    [pair for pair in itertools.product(STATUSES, STATUSES) if pair not in ALLOWED],
)
def test_an_illegal_transition_is_refused_with_the_allowed_ones_and_writes_nothing(
    org_a, api_a, current, to
):
    employment = onboarded_employment(organization=org_a, status=current)
    before = database_rows()

    response = _transition(api_a, employment, to)

    assert response.status_code == 409
    assert response.json()["code"] == "illegal_transition"
    allowed = [t for (f, t) in ALLOWED if f == current]
    assert response.json()["detail"].endswith(
        f"allowed next: {', '.join(allowed) if allowed else 'none'}."
    )
    assert database_rows() == before


def test_the_refusal_reads_as_a_sentence(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)

    response = _transition(api_a, employment, "suspended")

    assert response.json()["detail"] == (
        "An employment that is offered cannot be suspended; allowed next: onboarding, terminated."
    )


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_transition_without_a_reason_is_refused(org_a, api_a, reason):
    employment = EmploymentFactory(organization=org_a)
    before = database_rows()

    response = _transition(api_a, employment, "onboarding", reason)

    assert response.status_code == 400
    assert response.json()["code"] == "reason_required"
    assert response.json()["fields"]["reason"][0]["message"].startswith("Give a reason")
    assert database_rows() == before


def test_a_transition_with_no_reason_field_or_an_unknown_status_is_refused(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)
    url = f"/api/v1/orgs/{org_a.slug}/employments/{employment.pk}/transition/"
    before = database_rows()

    missing = api_a.post(url, {"to": "onboarding"}, format="json")
    unknown = api_a.post(url, {"to": "hired", "reason": "Why not."}, format="json")

    assert missing.status_code == unknown.status_code == 400
    assert "reason" in missing.json()["fields"]
    assert "to" in unknown.json()["fields"]
    assert database_rows() == before


def test_the_service_refuses_a_reason_only_a_machine_would_write(org_a):
    employment = EmploymentFactory(organization=org_a)

    with pytest.raises(DomainError) as caught:
        services.transition_employment(SYSTEM, employment, "onboarding", "x" * 301)

    assert caught.value.code == "reason_too_long"


# --- Guards on becoming active --------------------------------------------------------------------


def _retire(avatar, status="retired"):
    avatar.status = status
    avatar.save()


def _expire(consent):
    consent.expires_at = timezone.now() - dt.timedelta(days=1)
    consent.save()


def _revoke(consent):
    consent.revoked_at = timezone.now()
    consent.save()


def _scope_owner(consent):
    consent.scope = "owner"
    consent.save()


def _scope_someone_else(consent):
    consent.scope = "listed"
    consent.save()
    consent.scope_organizations.add(OrganizationFactory())


GUARDS = [
    ("avatar_not_ready", "is retired, not ready", lambda e: _retire(e.avatar)),
    ("avatar_not_ready", "is building, not ready", lambda e: _retire(e.avatar, "building")),
    ("consent_expired", "expired on", lambda e: _expire(e.avatar_version.consent)),
    ("consent_revoked", "withdrew their consent", lambda e: _revoke(e.avatar_version.consent)),
    ("consent_not_covering", "does not cover", lambda e: _scope_owner(e.avatar_version.consent)),
    (
        "consent_not_covering",
        "does not cover Alpha Hospital",
        lambda e: _scope_someone_else(e.avatar_version.consent),
    ),
]


@pytest.mark.parametrize("current", ["onboarding", "suspended"])
@pytest.mark.parametrize(("code", "fragment", "spoil"), GUARDS, ids=[g[1] for g in GUARDS])
def test_an_employment_cannot_become_active_unless_its_avatar_may_work_here(
    org_a, api_a, current, code, fragment, spoil
):
    employment = onboarded_employment(organization=org_a, status=current)
    spoil(employment)
    before = database_rows()

    response = _transition(api_a, employment, "active")

    assert response.status_code == 409
    assert response.json()["code"] == code
    assert fragment in response.json()["detail"]
    assert database_rows() == before


def test_a_consent_that_lists_the_organization_covers_it(org_a, api_a):
    employment = onboarded_employment(organization=org_a)
    consent = employment.avatar_version.consent
    consent.scope = "listed"
    consent.save()
    consent.scope_organizations.add(org_a)

    assert _transition(api_a, employment, "active").status_code == 200


def test_a_consent_for_the_owner_only_covers_the_owners_own_hire(org_a, api_a):
    avatar = ready_avatar(organization=org_a)
    _scope_owner(avatar.current_version.consent)
    employment = onboarded_employment(organization=org_a, avatar=avatar)

    assert _transition(api_a, employment, "active").status_code == 200


def test_the_consent_that_counts_is_the_pinned_versions(org_a, api_a):
    employment = onboarded_employment(organization=org_a)
    avatar = employment.avatar
    newer = AvatarVersionFactory(avatar=avatar, number=2)
    avatar.current_version = newer
    avatar.save()
    _expire(employment.avatar_version.consent)

    response = _transition(api_a, employment, "active")

    assert response.json()["code"] == "consent_expired"


@pytest.mark.parametrize(
    ("undone", "missing"),
    [
        ({"persona_reviewed": False}, "review the persona"),
        ({"voice": {}}, "choose a voice"),
        ("knowledge", "attach knowledge (an entry or a document)"),
    ],
)
def test_activation_waits_for_onboarding_and_says_what_is_missing(org_a, api_a, undone, missing):
    if undone == "knowledge":
        employment = EmploymentFactory(
            organization=org_a, status="onboarding", persona_reviewed=True, voice={"voice_id": "a"}
        )
    else:
        employment = onboarded_employment(organization=org_a, **undone)
    before = database_rows()

    response = _transition(api_a, employment, "active")

    assert response.status_code == 409
    assert response.json()["code"] == "onboarding_incomplete"
    assert response.json()["detail"] == f"Onboarding is not finished: {missing}."
    assert database_rows() == before


def test_nothing_onboarded_lists_every_item(org_a, api_a):
    employment = EmploymentFactory(organization=org_a, status="onboarding")

    response = _transition(api_a, employment, "active")

    assert response.json()["detail"] == (
        "Onboarding is not finished: review the persona; choose a voice; "
        "attach knowledge (an entry or a document)."
    )


# --- Suspension by consent enforcement ------------------------------------------------------------


def test_suspending_an_active_hire_records_the_reason(org_a):
    employment = onboarded_employment(organization=org_a, status="active")

    suspended = services.suspend_employment(SYSTEM, employment, "Consent expired.")

    assert suspended is True
    assert employment.status == "suspended"
    assert employment.status_reason == "Consent expired."
    row = EmploymentTransition.objects.for_organization(org_a).get(employment=employment)
    assert (row.from_status, row.to_status, row.actor_label) == ("active", "suspended", "system")
    assert AuditEntry.objects.for_organization(org_a).filter(action="employment.suspend").exists()


@pytest.mark.parametrize("status", ["offered", "onboarding", "suspended", "terminated"])
def test_suspending_a_hire_that_is_not_active_changes_nothing(org_a, status):
    employment = EmploymentFactory(organization=org_a, status=status)
    before = database_rows()

    assert services.suspend_employment(SYSTEM, employment, "Consent expired.") is False
    assert database_rows() == before
