"""Consent: recording it (with a recorded clip, scope and expiry), revoking it, and what its end
does — builds under it are cancelled (with their workloads) and hires of versions built under it
are suspended with the reason, in every organization that hired the avatar. The hourly sweep is
called in-process, as beat's worker would run it; its clock is the real one, with consents made to
have expired already.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from avatars import builds as build_services
from avatars import consent as consent_services
from avatars import tasks
from avatars.models import AvatarBuild, Consent, EmploymentTransition
from inference.models import Workload
from ironbowl.celery import app
from tenants.audit import Actor
from tenants.models import AuditEntry
from tests.avatars.building import SimulatedWorker
from tests.avatars.factories import (
    AvatarBuildFactory,
    AvatarFactory,
    AvatarVersionFactory,
    ConsentFactory,
    EmploymentFactory,
    UploadFactory,
)


def _url(org, consent_id=None, suffix=""):
    base = f"/api/v1/orgs/{org.slug}/consents/"
    return base if consent_id is None else f"{base}{consent_id}/{suffix}"


def _record(client, org, avatar, clip, **fields):
    body = {
        "avatar": str(avatar.pk),
        "subject_name": "Chen Jing",
        "statement": "I agree that my face and voice are used to build this digital human.",
        "clip": str(clip.pk),
        "scope": "any",
        "expires_at": (timezone.now() + dt.timedelta(days=365)).isoformat(),
        **fields,
    }
    return client.post(_url(org), body, format="json")


def test_a_consent_is_recorded_with_its_clip_scope_and_expiry(api_a, org_a, org_b):
    avatar = AvatarFactory(organization=org_a)
    clip = UploadFactory(organization=org_a, purpose="consent_clip")

    response = _record(
        api_a, org_a, avatar, clip, scope="listed", scope_organizations=[org_b.slug, org_a.slug]
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["avatar"] == str(avatar.pk)
    assert body["clip"] == str(clip.pk)
    assert body["scope"] == "listed"
    assert sorted(body["scope_organizations"]) == sorted([org_a.slug, org_b.slug])
    assert body["valid"] is True
    assert body["revoked_at"] is None
    assert (
        api_a.get(_url(org_a), {"avatar": str(avatar.pk)}).json()["results"][0]["id"]
        == (body["id"])
    )
    assert AuditEntry.objects.for_organization(org_a).filter(action="consent.create").exists()


@pytest.mark.parametrize(
    ("clip_fields", "fields", "field", "message"),
    [
        ({"purpose": "footage"}, {}, "clip", "upload the recorded consent as a consent clip"),
        (
            {"status": "receiving", "received": 10},
            {},
            "clip",
            "has not finished uploading (10 of 1024 bytes)",
        ),
        (
            {"status": "failed", "failure_reason": "The consent clip has no sound."},
            {},
            "clip",
            "failed its checks: The consent clip has no sound.",
        ),
        ({}, {"expires_at": "2020-01-01T00:00:00Z"}, "expires_at", "must be in the future"),
        ({}, {"scope": "listed"}, "scope_organizations", "name at least one organization"),
        (
            {},
            {"scope": "listed", "scope_organizations": ["no-such-org"]},
            "scope_organizations",
            "No organization has the slug no-such-org.",
        ),
        (
            {},
            {"scope": "owner", "scope_organizations": ["alpha-hospital"]},
            "scope_organizations",
            "only with the scope 'listed'",
        ),
    ],
    ids=[
        "clip-is-footage",
        "clip-unfinished",
        "clip-failed",
        "past",
        "listed-empty",
        "unknown-slug",
        "list-without-listed",
    ],
)
def test_a_consent_without_a_usable_clip_or_scope_is_refused(
    api_a, org_a, clip_fields, fields, field, message
):
    avatar = AvatarFactory(organization=org_a)
    clip = UploadFactory(organization=org_a, **{"purpose": "consent_clip", **clip_fields})

    response = _record(api_a, org_a, avatar, clip, **fields)

    assert response.status_code == 400, response.content
    assert message in response.json()["fields"][field][0]["message"]
    assert not Consent.objects.for_organization(org_a).exists()


def _published_avatar_hired_elsewhere(vendor, institution):
    """A vendor's avatar with version 1 under a consent, hired (active) by an institution."""
    avatar = AvatarFactory(organization=vendor, visibility="public", status="ready")
    consent = ConsentFactory(avatar=avatar, subject_name="Wang Fang")
    version = AvatarVersionFactory(avatar=avatar, consent=consent, number=1)
    avatar.current_version = version
    avatar.save(update_fields=["current_version"])
    hire = EmploymentFactory(
        organization=institution, avatar=avatar, avatar_version=version, status="active"
    )
    return avatar, consent, version, hire


def test_revoking_stops_builds_and_suspends_hires_in_other_organizations(
    api_a, org_a, org_b, owner_a
):
    avatar, consent, _version, hire = _published_avatar_hired_elsewhere(org_a, org_b)
    queued = AvatarBuildFactory(avatar=avatar, consent=consent)
    running = AvatarBuildFactory(avatar=avatar, consent=consent, status="running")
    other_consent = ConsentFactory(avatar=avatar)
    unrelated_build = AvatarBuildFactory(avatar=avatar, consent=other_consent)
    other_version = AvatarVersionFactory(avatar=avatar, consent=other_consent, number=2)
    unaffected = EmploymentFactory(
        organization=org_b, avatar=avatar, avatar_version=other_version, status="active"
    )

    response = api_a.post(
        _url(org_a, consent.pk, "revoke/"), {"reason": "She left the company."}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["valid"] is False
    assert response.json()["revoked_reason"] == "She left the company."
    expected = f"The person filmed for {avatar} revoked their consent: She left the company."
    queued.refresh_from_db()
    assert (queued.status, queued.failure_code, queued.failure_reason) == (
        "cancelled",
        "consent_revoked",
        expected,
    )
    running.refresh_from_db()
    assert (running.status, running.cancel_requested, running.failure_reason) == (
        "cancelled",
        True,
        expected,
    )
    unrelated_build.refresh_from_db()
    assert unrelated_build.status == "queued"
    hire.refresh_from_db()
    assert (hire.status, hire.status_reason) == ("suspended", expected)
    transition = EmploymentTransition.objects.for_organization(org_b).get(employment=hire)
    assert (transition.from_status, transition.to_status, transition.reason) == (
        "active",
        "suspended",
        expected,
    )
    # The institution's log names the system, not the vendor's staff.
    suspended = AuditEntry.objects.for_organization(org_b).get(action="employment.suspend")
    assert suspended.actor_label == "system"
    unaffected.refresh_from_db()
    assert unaffected.status == "active"
    enforced = AuditEntry.objects.for_organization(org_a).get(action="consent.enforce")
    assert enforced.after["employments_suspended"] == 1
    assert enforced.after["builds_stopped"] == 2
    assert not AuditEntry.objects.for_organization(org_a).filter(object_id=str(hire.pk)).exists()


def test_a_revoked_consent_cannot_be_revoked_again_or_used_for_a_build(api_a, org_a):
    avatar = AvatarFactory(organization=org_a)
    consent = ConsentFactory(avatar=avatar)
    api_a.post(_url(org_a, consent.pk, "revoke/"), {"reason": "Withdrawn."}, format="json")

    again = api_a.post(_url(org_a, consent.pk, "revoke/"), {"reason": "Again."}, format="json")
    build = api_a.post(
        f"/api/v1/orgs/{org_a.slug}/builds/",
        {
            "avatar": str(avatar.pk),
            "footage": str(UploadFactory(organization=org_a, purpose="footage").pk),
            "consent": str(consent.pk),
        },
        format="json",
    )

    assert again.status_code == 409
    assert again.json()["code"] == "consent_revoked"
    assert build.status_code == 400
    assert build.json()["code"] == "consent_not_valid"


def test_revoking_needs_a_reason(api_a, org_a):
    consent = ConsentFactory(avatar=AvatarFactory(organization=org_a))

    response = api_a.post(_url(org_a, consent.pk, "revoke/"), {"reason": "  "}, format="json")

    assert response.status_code == 400
    consent.refresh_from_db()
    assert consent.revoked_at is None


def test_the_hourly_sweep_enforces_expired_consents_once(org_a, org_b):
    avatar, consent, _version, hire = _published_avatar_hired_elsewhere(org_a, org_b)
    build = AvatarBuildFactory(avatar=avatar, consent=consent)
    *_rest, valid_hire = _published_avatar_hired_elsewhere(org_a, org_b)
    expired_on = timezone.now() - dt.timedelta(hours=2)
    Consent.objects.for_organization(org_a).filter(pk=consent.pk).update(expires_at=expired_on)

    first = tasks.enforce_consents()
    transitions = EmploymentTransition.objects.for_organization(org_b).count()
    audit = AuditEntry.objects.for_organization(org_a).count()
    second = tasks.enforce_consents()

    assert (first, second) == (1, 0)
    expected = (
        f"The consent of the person filmed for {avatar} expired on "
        f"{timezone.localdate(expired_on).isoformat()}."
    )
    hire.refresh_from_db()
    assert (hire.status, hire.status_reason) == ("suspended", expected)
    build.refresh_from_db()
    assert (build.status, build.failure_code) == ("cancelled", "consent_expired")
    consent.refresh_from_db()
    assert consent.enforced_at is not None
    valid_hire.refresh_from_db()
    assert valid_hire.status == "active"
    assert EmploymentTransition.objects.for_organization(org_b).count() == transitions
    assert AuditEntry.objects.for_organization(org_a).count() == audit


def test_a_suspended_hire_that_was_resumed_is_not_suspended_again_by_the_sweep(org_a, org_b):
    _avatar, consent, _version, hire = _published_avatar_hired_elsewhere(org_a, org_b)
    Consent.objects.for_organization(org_a).filter(pk=consent.pk).update(
        expires_at=timezone.now() - dt.timedelta(minutes=5)
    )
    tasks.enforce_consents()
    hire.refresh_from_db()
    hire.status = "active"  # e.g. moved to a version under a new consent, and resumed
    hire.save(update_fields=["status"])

    assert tasks.enforce_consents() == 0

    hire.refresh_from_db()
    assert hire.status == "active"


def test_consents_of_another_organization_are_not_shown_or_revocable(api_b, org_a, org_b):
    consent = ConsentFactory(avatar=AvatarFactory(organization=org_a))

    listed = api_b.get(_url(org_b)).json()["results"]
    revoke = api_b.post(_url(org_a, consent.pk, "revoke/"), {"reason": "x"}, format="json")
    in_own = api_b.post(_url(org_b, consent.pk, "revoke/"), {"reason": "x"}, format="json")

    assert listed == []
    assert (revoke.status_code, in_own.status_code) == (404, 404)
    consent.refresh_from_db()
    assert consent.revoked_at is None


def test_an_analyst_reads_consents_but_only_managers_record_them(org_a, member_factory, client_for):
    analyst = client_for(member_factory(org_a, "analyst"))
    avatar = AvatarFactory(organization=org_a)
    clip = UploadFactory(organization=org_a, purpose="consent_clip")

    assert analyst.get(_url(org_a)).status_code == 200
    assert _record(analyst, org_a, avatar, clip).status_code == 403


def test_a_build_under_a_consent_revoked_while_queued_never_runs(org_a, owner_a, build_pool):
    avatar = AvatarFactory(organization=org_a)
    consent = ConsentFactory(avatar=avatar)
    footage = UploadFactory(organization=org_a, purpose="footage")
    build = build_services.start_build(
        Actor(user=owner_a.user), org_a, avatar=avatar, footage=footage, consent=consent
    )
    consent_services.revoke_consent(Actor(user=owner_a.user), consent, "Withdrawn.")
    SimulatedWorker().pass_once()

    build = AvatarBuild.objects.for_organization(org_a).get(pk=build.pk)
    assert (build.status, build.failure_code) == ("cancelled", "consent_revoked")
    assert build.started_at is None
    workload = Workload.objects.for_organization(org_a).get(pk=build.workload_id)
    assert (workload.state, workload.attempts) == ("cancelled", 0)  # never placed


def test_beat_runs_the_consent_sweep_every_hour():
    entry = app.conf.beat_schedule["avatars.enforce_consents"]

    assert entry["task"] == tasks.enforce_consents.name == "avatars.enforce_consents"
    assert entry["schedule"].minute == {5}
    assert len(entry["schedule"].hour) == 24
