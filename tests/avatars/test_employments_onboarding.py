"""Onboarding a hire (persona, voice, knowledge) and moving it to a newer avatar version."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from avatars import employments as services
from avatars.models import Employment
from tenants.audit import SYSTEM
from tenants.models import AuditEntry
from tests.avatars.factories import (
    AvatarVersionFactory,
    ConsentFactory,
    EmploymentFactory,
    KnowledgeDocumentFactory,
    KnowledgeEntryFactory,
    attach_entry,
    ready_avatar,
)
from tests.support import database_rows

pytestmark = pytest.mark.django_db


def _url(employment, suffix=""):
    return f"/api/v1/orgs/{employment.organization.slug}/employments/{employment.pk}/{suffix}"


# --- Persona and voice ----------------------------------------------------------------------------


def test_a_reviewed_persona_ticks_the_checklist(org_a, api_a):
    employment = EmploymentFactory(organization=org_a, status="onboarding")

    response = api_a.patch(
        _url(employment),
        {
            "persona": "You answer for the outpatient desk. Never give diagnoses.",
            "persona_reviewed": True,
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["persona"].startswith("You answer for the outpatient desk.")
    assert response.json()["checklist"]["persona_reviewed"] is True
    entry = AuditEntry.objects.for_organization(org_a).get(action="employment.update")
    assert entry.after["persona_reviewed"] is True


def test_changing_a_reviewed_persona_needs_a_new_review(org_a, api_a):
    employment = EmploymentFactory(
        organization=org_a, status="onboarding", persona="Old.", persona_reviewed=True
    )

    unchanged = api_a.patch(_url(employment), {"persona": "Old."}, format="json")
    changed = api_a.patch(_url(employment), {"persona": "New wording."}, format="json")

    assert unchanged.json()["persona_reviewed"] is True
    assert changed.json()["persona_reviewed"] is False
    assert changed.json()["checklist"]["persona_reviewed"] is False


@pytest.mark.parametrize(
    "voice",
    [{"voice_id": "calm-female-2"}, {"pitch_hz": 190.5, "syllables_per_second": 4.2}],
)
def test_choosing_a_voice_ticks_the_checklist(org_a, api_a, voice):
    employment = EmploymentFactory(organization=org_a, status="onboarding")

    response = api_a.patch(_url(employment), {"voice": voice}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["voice"] == voice
    assert response.json()["checklist"]["voice_chosen"] is True


def test_a_voice_can_be_cleared(org_a, api_a):
    employment = EmploymentFactory(organization=org_a, voice={"voice_id": "a"})

    response = api_a.patch(_url(employment), {"voice": None}, format="json")

    assert response.json()["voice"] == {}
    assert response.json()["checklist"]["voice_chosen"] is False


@pytest.mark.parametrize(
    ("voice", "fragment"),
    [
        ({}, "Choose a voice"),
        ({"pitch_hz": 5}, "greater than or equal to 50"),
        ({"timbre": "warm"}, "Unknown field"),
    ],
)
def test_a_voice_that_says_nothing_usable_is_refused(org_a, api_a, voice, fragment):
    employment = EmploymentFactory(organization=org_a)
    before = database_rows()

    response = api_a.patch(_url(employment), {"voice": voice}, format="json")

    assert response.status_code == 400
    assert fragment in str(response.json()["fields"]["voice"])
    assert database_rows() == before


@pytest.mark.parametrize(
    "field", ["avatar", "position", "status", "rate_source", "avatar_version", "currency"]
)
def test_what_the_hire_is_cannot_be_patched(org_a, api_a, field):
    employment = EmploymentFactory(organization=org_a)
    before = database_rows()

    response = api_a.patch(_url(employment), {field: "x"}, format="json")

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert database_rows() == before


def test_a_rate_back_to_the_list_price(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)
    list_price = str(employment.avatar.list_price)

    negotiated = api_a.patch(_url(employment), {"rate": "100.00"}, format="json")
    reset = api_a.patch(_url(employment), {"rate": None}, format="json")

    assert (negotiated.json()["rate"], negotiated.json()["rate_source"]) == ("100.00", "negotiated")
    assert (reset.json()["rate"], reset.json()["rate_source"]) == (list_price, "list")


def test_dates_must_stay_in_order_when_changed(org_a, api_a):
    employment = EmploymentFactory(organization=org_a, starts_on=dt.date(2025, 3, 1))
    before = database_rows()

    response = api_a.patch(_url(employment), {"ends_on": "2025-01-31"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "ends_before_start"
    assert database_rows() == before


# --- Knowledge ------------------------------------------------------------------------------------


def test_knowledge_of_the_organization_is_attached_and_ticks_the_checklist(org_a, api_a):
    employment = EmploymentFactory(organization=org_a, status="onboarding")
    entry = KnowledgeEntryFactory(organization=org_a)
    document = KnowledgeDocumentFactory(organization=org_a)

    response = api_a.post(
        _url(employment, "knowledge/"),
        {"entries": [str(entry.pk)], "documents": [str(document.pk)]},
        format="json",
    )
    again = api_a.post(_url(employment, "knowledge/"), {"entries": [str(entry.pk)]}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["knowledge_entries"] == [str(entry.pk)]
    assert response.json()["knowledge_documents"] == [str(document.pk)]
    assert response.json()["checklist"]["knowledge_attached"] is True
    assert again.json()["knowledge_entries"] == [str(entry.pk)]
    entries = AuditEntry.objects.for_organization(org_a).filter(
        action="employment.attach_knowledge"
    )
    assert [e.after for e in entries] == [
        {"entries": [str(entry.pk)], "documents": [str(document.pk)]}
    ]


def test_another_organizations_knowledge_answers_like_a_random_id(org_a, org_b, api_a):
    employment = EmploymentFactory(organization=org_a)
    theirs = KnowledgeEntryFactory(organization=org_b)
    random_id = str(uuid.uuid4())
    before = database_rows()

    foreign = api_a.post(
        _url(employment, "knowledge/"), {"entries": [str(theirs.pk)]}, format="json"
    )
    missing = api_a.post(_url(employment, "knowledge/"), {"entries": [random_id]}, format="json")

    assert foreign.status_code == missing.status_code == 400
    assert foreign.json()["fields"]["entries"][0]["message"] == f"No such object: {theirs.pk}."
    assert missing.json()["fields"]["entries"][0]["message"] == f"No such object: {random_id}."
    assert database_rows() == before


def test_attaching_nothing_is_refused(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)

    response = api_a.post(_url(employment, "knowledge/"), {}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "nothing_named"


def test_knowledge_is_detached_by_id(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)
    kept = attach_entry(employment)
    dropped = attach_entry(employment)

    response = api_a.delete(_url(employment, f"knowledge/?entries={dropped.pk}"))

    assert response.status_code == 200, response.content
    assert response.json()["knowledge_entries"] == [str(kept.pk)]
    entry = AuditEntry.objects.for_organization(org_a).get(action="employment.detach_knowledge")
    assert str(dropped.pk) in entry.before["entries"]
    assert str(dropped.pk) not in entry.after["entries"]


def test_detaching_the_last_knowledge_unticks_the_checklist(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)
    entry = attach_entry(employment)

    response = api_a.delete(_url(employment, f"knowledge/?entries={entry.pk}"))

    assert response.json()["checklist"]["knowledge_attached"] is False


def test_detaching_with_a_bad_id_is_refused(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)
    attach_entry(employment)
    before = database_rows()

    response = api_a.delete(_url(employment, "knowledge/?entries=not-an-id"))

    assert response.status_code == 400
    assert "entries" in response.json()["fields"]
    assert database_rows() == before


# --- Newer versions -------------------------------------------------------------------------------


def _newer_version(avatar, number=2, make_current=True, **consent):
    version = AvatarVersionFactory(
        avatar=avatar,
        number=number,
        consent=ConsentFactory(avatar=avatar, **consent),
    )
    if make_current:
        avatar.current_version = version
        avatar.save()
    return version


def test_a_hire_moves_to_the_avatars_current_version(org_a, api_a):
    employment = EmploymentFactory(organization=org_a, status="active")
    newer = _newer_version(employment.avatar)

    response = api_a.post(_url(employment, "upgrade/"), {}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["avatar_version"] == str(newer.pk)
    assert response.json()["version_number"] == 2
    entry = AuditEntry.objects.for_organization(org_a).get(action="employment.upgrade")
    assert entry.before["version_number"] == 1
    assert entry.after == {"avatar_version": str(newer.pk), "version_number": 2}


def test_a_hire_moves_to_a_named_newer_version(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)
    second = _newer_version(employment.avatar, 2, make_current=False)
    _newer_version(employment.avatar, 3)

    response = api_a.post(_url(employment, "upgrade/"), {"version": str(second.pk)}, format="json")

    assert response.json()["version_number"] == 2


def test_a_hire_never_moves_back(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)
    first = employment.avatar_version
    services.move_to_version(SYSTEM, employment, _newer_version(employment.avatar))
    before = database_rows()

    back = api_a.post(_url(employment, "upgrade/"), {"version": str(first.pk)}, format="json")
    same = api_a.post(_url(employment, "upgrade/"), {}, format="json")

    assert back.status_code == 409
    assert back.json()["code"] == "version_not_newer"
    assert "Version 1 is older than version 2" in back.json()["detail"]
    assert same.status_code == 409
    assert same.json()["code"] == "already_on_version"
    assert database_rows() == before


def test_a_version_of_another_avatar_answers_like_a_random_id(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)
    other = ready_avatar(visibility="public").current_version
    random_id = str(uuid.uuid4())

    foreign = api_a.post(_url(employment, "upgrade/"), {"version": str(other.pk)}, format="json")
    missing = api_a.post(_url(employment, "upgrade/"), {"version": random_id}, format="json")

    assert foreign.status_code == missing.status_code == 400
    assert foreign.json()["fields"]["version"][0]["message"] == f"No such object: {other.pk}."
    assert missing.json()["fields"]["version"][0]["message"] == f"No such object: {random_id}."


def test_a_newer_version_whose_consent_does_not_cover_us_is_refused(org_a, api_a):
    employment = EmploymentFactory(organization=org_a, status="active")
    _newer_version(employment.avatar, scope="owner")
    before = database_rows()

    response = api_a.post(_url(employment, "upgrade/"), {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "consent_not_covering"
    assert database_rows() == before


def test_a_newer_version_under_expired_consent_is_refused(org_a, api_a):
    employment = EmploymentFactory(organization=org_a)
    _newer_version(employment.avatar, expires_at=timezone.now() - dt.timedelta(hours=1))

    response = api_a.post(_url(employment, "upgrade/"), {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "consent_expired"
    assert Employment.objects.for_organization(org_a).get().avatar_version.number == 1
