"""The demo seed: what `make run` shows, and that running it again changes nothing.

Runs the real seed (services, uploads, consent, hires) against the test database, with media
written under a temporary folder. Avatar versions are the seed's drawn stand-ins (no footage).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avatars import employments, market
from avatars.models import (
    Avatar,
    Consent,
    Employment,
    KnowledgeEntry,
    Position,
    Upload,
)
from ironbowl.demo import seed_demo
from tenants.models import Organization
from tests.support import database_rows


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def seeded(db, media, settings):
    # The demo users' passwords are hashed on creation; the slow hasher would dominate the test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    created = seed_demo()
    return {org.slug: org for org in Organization.objects.all()}, created


def _active_hire(organization: Organization) -> Employment:
    return (
        Employment.objects.for_organization(organization)
        .select_related("avatar", "position", "avatar_version")
        .get(status="active")
    )


def test_seeding_twice_changes_nothing_the_second_time(seeded, media):
    _organizations, created = seeded
    assert "qinghe-hospital" in created
    assert any(item.startswith("hire of") for item in created)
    files = sorted(path for path in media.rglob("*") if path.is_file())
    before = database_rows()

    assert seed_demo() == []

    assert database_rows() == before
    assert sorted(path for path in media.rglob("*") if path.is_file()) == files


def test_the_vendor_publishes_mandarin_cantonese_english_and_bilingual_avatars(seeded, media):
    organizations, _created = seeded
    vendor = organizations["lumen-avatars"]
    avatars = list(Avatar.objects.for_organization(vendor).select_related("current_version"))
    assert len(avatars) >= 4
    languages = [tuple(avatar.languages) for avatar in avatars]
    assert ("zh-CN",) in languages
    assert ("yue-HK",) in languages
    assert ("en-US",) in languages
    assert any({"zh-CN", "en-US"} <= set(tags) for tags in languages)
    in_market = set(market.market_avatars().filter(organization=vendor))
    for avatar in avatars:
        assert (avatar.status, avatar.visibility) == ("ready", "public")
        assert avatar in in_market
        assert avatar.list_price > 0
        assert avatar.skills
        version = avatar.current_version
        assert version is not None
        assert version.number == 1
        consent = Consent.objects.for_organization(vendor).get(pk=version.consent_id)
        assert consent.scope == "any"
        assert consent.is_valid()
        clip = Upload.objects.for_organization(vendor).get(pk=consent.clip_id)
        assert (clip.purpose, clip.status) == ("consent_clip", "complete")
        assert (media / clip.relative_path).stat().st_size == clip.size
        assert clip.media_info["has_audio"] is True
        assert (media / version.portrait).read_bytes().startswith(b"\x89PNG")
        assert (media / version.bundle / "manifest.json").is_file()


def test_the_hospital_has_an_active_health_live_stream_anchor(seeded):
    organizations, _created = seeded
    hospital = organizations["qinghe-hospital"]
    hire = _active_hire(hospital)
    assert "live_anchor" in hire.avatar.skills
    assert "anchor" in hire.position.title.lower()
    assert hire.avatar.organization.slug == "lumen-avatars"
    assert employments.checklist_of(hire).complete
    assert hire.rate == hire.avatar.list_price


def test_the_bureau_has_a_service_desk_agent_with_a_bilingual_knowledge_base(seeded):
    organizations, _created = seeded
    bureau = organizations["lanxi-market-bureau"]
    hire = _active_hire(bureau)
    assert "service_desk" in hire.avatar.skills
    assert {"zh-CN", "en-US"} <= set(hire.avatar.languages)
    assert employments.checklist_of(hire).complete
    entry_ids, _documents = employments.attached_knowledge(hire)
    attached = KnowledgeEntry.objects.for_organization(bureau).filter(pk__in=entry_ids)
    assert attached.count() >= 30
    by_language = {
        language: attached.filter(language=language).count() for language in ("zh-CN", "en-US")
    }
    assert min(by_language.values()) >= 15, by_language
    # The entries answer what people ask a market-supervision bureau.
    for needle in ("12315", "营业执照", "annual report", "食品"):
        assert attached.filter(search_text__contains=needle.casefold()).exists(), needle
    assert Position.objects.for_organization(bureau).get(pk=hire.position_id).required_skills == [
        "service_desk"
    ]
