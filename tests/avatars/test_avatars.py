"""An organization's own avatars through the API: create, change, publish, retire, delete, and
read their versions. Nothing is simulated; builds are stood in for by factories that leave an
avatar ready with a version under a consent."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from avatars import languages
from avatars.models import Avatar, AvatarStatus
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.avatars import factories as af
from tests.support import database_rows


def _url(org, avatar=None, action=""):
    base = f"/api/v1/orgs/{org.slug}/avatars/"
    if avatar is None:
        return base
    return f"{base}{avatar.pk}/" + (f"{action}/" if action else "")


def _message(response, field):
    return " ".join(error["message"] for error in response.json()["fields"][field])


def _audit_actions(org):
    return list(
        AuditEntry.objects.for_organization(org)
        .order_by("created_at")
        .values_list("action", flat=True)
    )


# --- create ---------------------------------------------------------------------------------


def test_an_admin_creates_a_draft_avatar_with_normalised_languages(org_a, api_a):
    response = api_a.post(
        _url(org_a),
        {
            "name_zh": "小安",
            "name_en": "An",
            "languages": ["ZH-cn", "yue-hk", "zh-hans-cn", "zh-CN"],
            "skills": ["service_desk", "presenter", "service_desk"],
            "persona": "Calm, precise, never guesses.",
            "wardrobe": [{"name": "Suit", "description": "Navy"}, {"name": "Lab coat"}],
            "description": "A service-desk agent for public offices.",
            "list_price": "2999.00",
            "currency": "cny",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "draft"
    assert body["visibility"] == "private"
    assert body["languages"] == ["zh-CN", "yue-HK", "zh-Hans-CN"]
    assert body["skills"] == ["service_desk", "presenter"]
    assert body["wardrobe"] == [
        {"name": "Suit", "description": "Navy"},
        {"name": "Lab coat", "description": ""},
    ]
    assert body["currency"] == "CNY"
    assert body["current_version"] is None
    avatar = Avatar.objects.for_organization(org_a).get(pk=body["id"])
    assert avatar.language_index == "|zh-cn|yue-hk|zh-hans-cn|"
    assert _audit_actions(org_a) == ["avatar.create"]


@pytest.mark.parametrize(
    "tag",
    ["zh_CN", "chinese", "zh-", "z", "en-US-", "zh-Hans-CN-x-private", "12-CN", "zh-C", "<b>"],
)
def test_a_malformed_language_tag_is_refused_with_examples(org_a, api_a, tag):
    before = database_rows()

    response = api_a.post(_url(org_a), {"name_zh": "小安", "languages": [tag]}, format="json")

    assert response.status_code == 400
    message = _message(response, "languages")
    assert f"“{tag}”" in message
    assert "zh-CN, yue-HK, en-US, zh-Hans-CN" in message
    assert database_rows() == before


@pytest.mark.parametrize(
    ("tag", "normalised"),
    [
        ("zh-cn", "zh-CN"),
        ("YUE-hk", "yue-HK"),
        ("zh-hans-cn", "zh-Hans-CN"),
        ("en", "en"),
        ("es-419", "es-419"),
        ("de-ch-1996", "de-CH-1996"),
        ("sr-latn", "sr-Latn"),
    ],
)
def test_language_tags_take_their_conventional_case(tag, normalised):
    assert languages.normalise(tag) == normalised


def test_unknown_skills_negative_price_and_bad_currency_are_each_explained(org_a, api_a):
    response = api_a.post(
        _url(org_a),
        {
            "name_zh": "小安",
            "skills": ["presenter", "juggler"],
            "list_price": "-1",
            "currency": "yuan",
            "wardrobe": [{"name": "Suit"}, {"name": "suit"}],
        },
        format="json",
    )

    assert response.status_code == 400
    assert "“juggler”" in _message(response, "skills")
    assert "live_anchor, service_desk" in _message(response, "skills")
    assert "greater than or equal to 0" in _message(response, "list_price")
    assert "ISO 4217" in _message(response, "currency")
    assert "same name" in _message(response, "wardrobe")


def test_status_cannot_be_set_and_a_new_avatar_cannot_be_public(org_a, api_a):
    status = api_a.post(_url(org_a), {"name_zh": "小安", "status": "ready"}, format="json")
    public = api_a.post(_url(org_a), {"name_zh": "小安", "visibility": "public"}, format="json")

    assert status.status_code == 400
    assert status.json()["fields"]["status"][0]["code"] == "read_only"
    assert public.status_code == 400
    assert public.json()["code"] == "cannot_publish"
    assert "once it is ready" in public.json()["detail"]
    assert not Avatar.objects.for_organization(org_a).exists()


def test_an_operator_may_read_avatars_but_not_create_them(org_a, member_factory, client_for):
    avatar = af.AvatarFactory(organization=org_a)
    operator = client_for(member_factory(org_a, Role.OPERATOR))

    listed = operator.get(_url(org_a))
    created = operator.post(_url(org_a), {"name_zh": "小安"}, format="json")

    assert [row["id"] for row in listed.json()["results"]] == [str(avatar.pk)]
    assert created.status_code == 403


# --- list, change ---------------------------------------------------------------------------


def test_the_list_shows_only_the_organizations_own_avatars_filtered_and_ordered(
    org_a, org_b, api_a
):
    cheap = af.ready_avatar(organization=org_a, list_price="100.00")
    dear = af.AvatarFactory(organization=org_a, list_price="900.00")
    af.ready_avatar(organization=org_b, visibility="public")

    by_price = api_a.get(_url(org_a), {"ordering": "-list_price"}).json()["results"]
    ready = api_a.get(_url(org_a), {"status": "ready"}).json()["results"]

    assert [row["id"] for row in by_price] == [str(dear.pk), str(cheap.pk)]
    assert [row["id"] for row in ready] == [str(cheap.pk)]
    assert ready[0]["current_version"]["number"] == 1


def test_changing_an_avatar_validates_and_audits_the_change(org_a, api_a):
    avatar = af.AvatarFactory(organization=org_a, languages=["zh-CN"])

    bad = api_a.patch(_url(org_a, avatar), {"languages": ["mandarin"]}, format="json")
    good = api_a.patch(
        _url(org_a, avatar), {"languages": ["yue-hk"], "list_price": "10.50"}, format="json"
    )

    assert bad.status_code == 400
    assert "“mandarin”" in _message(bad, "languages")
    assert good.status_code == 200, good.content
    assert good.json()["languages"] == ["yue-HK"]
    entry = AuditEntry.objects.for_organization(org_a).get(action="avatar.update")
    assert entry.before["languages"] == ["zh-CN"]
    assert entry.after["languages"] == ["yue-HK"]
    avatar.refresh_from_db()
    assert avatar.language_index == "|yue-hk|"


def test_status_is_read_only_on_change(org_a, api_a):
    avatar = af.AvatarFactory(organization=org_a)

    response = api_a.patch(_url(org_a, avatar), {"status": "ready"}, format="json")

    assert response.status_code == 400
    avatar.refresh_from_db()
    assert avatar.status == "draft"


# --- publishing -----------------------------------------------------------------------------


def test_a_ready_avatar_under_consent_for_anyone_is_published(org_a, api_a):
    avatar = af.ready_avatar(organization=org_a)

    response = api_a.patch(_url(org_a, avatar), {"visibility": "public"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["visibility"] == "public"
    assert "avatar.publish" in _audit_actions(org_a)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("draft", "this one is a draft"),
        ("building", "still being built"),
    ],
)
def test_an_unfinished_avatar_cannot_be_published(org_a, api_a, status, expected):
    avatar = af.AvatarFactory(organization=org_a, status=status)

    response = api_a.patch(_url(org_a, avatar), {"visibility": "public"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "cannot_publish"
    assert expected in _message(response, "visibility")
    avatar.refresh_from_db()
    assert avatar.visibility == "private"


@pytest.mark.parametrize(
    ("consent", "expected"),
    [
        ({"scope": "owner"}, "lets only your organization use this likeness"),
        ({"scope": "listed"}, "lets only the organizations it lists use"),
        ({"revoked_at": timezone.now()}, "was revoked"),
        ({"expires_at": timezone.now() - dt.timedelta(days=1)}, "has expired"),
    ],
)
def test_publishing_needs_a_valid_consent_for_any_organization(org_a, api_a, consent, expected):
    avatar = af.ready_avatar(organization=org_a)
    version = avatar.current_version
    for field, value in consent.items():
        setattr(version.consent, field, value)
    version.consent.save()

    response = api_a.patch(_url(org_a, avatar), {"visibility": "public"}, format="json")

    assert response.status_code == 400
    assert expected in _message(response, "visibility")
    assert "version 1" in _message(response, "visibility")


def test_making_a_public_avatar_private_takes_it_off_the_market(org_a, api_a):
    avatar = af.ready_avatar(organization=org_a, visibility="public")

    response = api_a.patch(_url(org_a, avatar), {"visibility": "private"}, format="json")

    assert response.status_code == 200
    assert "avatar.unpublish" in _audit_actions(org_a)
    assert api_a.get(f"/api/v1/orgs/{org_a.slug}/market/avatars/").json()["results"] == []


# --- retiring -------------------------------------------------------------------------------


def test_retiring_takes_the_avatar_off_the_market_and_freezes_it(org_a, api_a):
    avatar = af.ready_avatar(organization=org_a, visibility="public")

    response = api_a.post(
        _url(org_a, avatar, "retire"), {"reason": "Replaced by v2 avatar"}, format="json"
    )
    change = api_a.patch(_url(org_a, avatar), {"description": "new"}, format="json")
    again = api_a.post(_url(org_a, avatar, "retire"), {"reason": "again"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["visibility"]) == ("retired", "private")
    assert body["status_reason"] == "Replaced by v2 avatar"
    entry = AuditEntry.objects.for_organization(org_a).get(action="avatar.retire")
    assert entry.after["reason"] == "Replaced by v2 avatar"
    assert change.status_code == 409
    assert change.json()["code"] == "avatar_retired"
    assert again.status_code == 409
    assert again.json()["code"] == "already_retired"


def test_retiring_needs_a_reason(org_a, api_a):
    avatar = af.ready_avatar(organization=org_a)

    response = api_a.post(_url(org_a, avatar, "retire"), {"reason": "  "}, format="json")

    assert response.status_code == 400
    avatar.refresh_from_db()
    assert avatar.status == AvatarStatus.READY


def test_an_avatar_with_hires_that_have_not_ended_cannot_be_retired(org_a, org_b, api_a):
    avatar = af.ready_avatar(organization=org_a, visibility="public")
    af.EmploymentFactory(organization=org_b, avatar=avatar, status="active", seats=3)
    af.EmploymentFactory(organization=org_b, avatar=avatar, status="suspended")
    af.EmploymentFactory(organization=org_b, avatar=avatar, status="terminated")
    before = database_rows()

    response = api_a.post(_url(org_a, avatar, "retire"), {"reason": "Old"}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "avatar_hired"
    assert "2 hires of this avatar have not ended (1 Active, 1 Suspended)" in body["detail"]
    assert org_b.slug not in body["detail"] and org_b.name not in body["detail"]
    assert database_rows() == before


def test_an_avatar_whose_hires_all_ended_can_be_retired(org_a, org_b, api_a):
    avatar = af.ready_avatar(organization=org_a, visibility="public")
    af.EmploymentFactory(organization=org_b, avatar=avatar, status="terminated")

    response = api_a.post(_url(org_a, avatar, "retire"), {"reason": "Old"}, format="json")

    assert response.status_code == 200


def test_an_avatar_being_built_cannot_be_retired(org_a, api_a):
    avatar = af.AvatarFactory(organization=org_a, status="building")
    af.AvatarBuildFactory(avatar=avatar, status="running")

    response = api_a.post(_url(org_a, avatar, "retire"), {"reason": "Old"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "build_in_progress"


# --- deleting -------------------------------------------------------------------------------


def test_a_draft_that_was_never_built_is_deleted(org_a, api_a):
    avatar = af.AvatarFactory(organization=org_a)

    response = api_a.delete(_url(org_a, avatar))

    assert response.status_code == 204
    assert not Avatar.objects.for_organization(org_a).exists()
    assert _audit_actions(org_a) == ["avatar.delete"]


def test_a_built_avatar_is_retired_instead_of_deleted(org_a, api_a):
    ready = af.ready_avatar(organization=org_a)
    rebuilt_draft = af.AvatarFactory(organization=org_a)
    af.AvatarVersionFactory(avatar=rebuilt_draft, number=1)
    before = database_rows()

    for avatar in (ready, rebuilt_draft):
        response = api_a.delete(_url(org_a, avatar))
        assert response.status_code == 409
        assert response.json()["code"] == "retire_instead"
        assert "retire this avatar instead" in response.json()["detail"]
    assert database_rows() == before


# --- versions -------------------------------------------------------------------------------


def test_versions_are_listed_newest_first_with_what_they_hold(org_a, api_a):
    avatar = af.ready_avatar(organization=org_a)
    build = af.AvatarBuildFactory(avatar=avatar, status="succeeded")
    second = af.AvatarVersionFactory(
        avatar=avatar,
        number=2,
        build=build,
        portrait=f"avatars/{avatar.pk}/v2/portrait.png",
        bundle=f"avatars/{avatar.pk}/v2/bundle.tar",
        voice_profile={"pitch_hz": 210.0},
    )
    avatar.current_version = second
    avatar.save()

    response = api_a.get(_url(org_a, avatar, "versions"))

    assert response.status_code == 200
    newest, first = response.json()
    assert (newest["number"], first["number"]) == (2, 1)
    assert newest["is_current"] and not first["is_current"]
    assert newest["build"] == str(build.pk)
    assert newest["consent"] == str(second.consent_id)
    assert newest["voice_profile"] == {"pitch_hz": 210.0}
    assert newest["portrait_available"] and newest["bundle_available"]
    assert newest["portrait_url"].endswith(
        f"/orgs/{org_a.slug}/avatars/{avatar.pk}/portrait/?version=2"
    )
    assert not first["portrait_available"] and first["portrait_url"] is None


def test_versions_cannot_be_written_through_the_api(org_a, api_a):
    avatar = af.ready_avatar(organization=org_a)

    response = api_a.post(_url(org_a, avatar, "versions"), {"number": 9}, format="json")

    assert response.status_code == 405
