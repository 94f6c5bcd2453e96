"""Portraits: the PNG a build stored for a version, streamed to members of the organization that
owns the avatar, and to any organization for an avatar of the talent market."""

from __future__ import annotations

import uuid

import pytest

from tests.avatars import factories as af
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _own(org, avatar_id, query=""):
    return f"/api/v1/orgs/{org.slug}/avatars/{avatar_id}/portrait/{query}"


def _market(org, avatar_id):
    return f"/api/v1/orgs/{org.slug}/market/avatars/{avatar_id}/portrait/"


def _png(response):
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "image/png"
    return response.getvalue()  # reads the stream to its end, which closes the file


def test_the_url_in_the_versions_list_streams_each_versions_portrait(org_a, api_a, settings):
    avatar = af.with_portrait(af.ready_avatar(organization=org_a))
    second = af.AvatarVersionFactory(avatar=avatar, number=2)
    af.with_portrait(avatar, second)
    rebuilt = af.PORTRAIT_PNG + b"v2"  # tells the two files apart
    (settings.MEDIA_ROOT / second.portrait).write_bytes(rebuilt)
    avatar.current_version = second
    avatar.save()

    newest, first = api_a.get(f"/api/v1/orgs/{org_a.slug}/avatars/{avatar.pk}/versions/").json()
    current = api_a.get(_own(org_a, avatar.pk))

    assert _png(api_a.get(newest["portrait_url"])) == rebuilt
    assert _png(api_a.get(first["portrait_url"])) == af.PORTRAIT_PNG
    assert current["Cache-Control"] == "private"
    assert _png(current) == rebuilt


def test_an_avatar_without_a_portrait_answers_not_found_with_why(org_a, api_a, settings):
    draft = af.AvatarFactory(organization=org_a)
    built = af.with_portrait(af.ready_avatar(organization=org_a))
    gone = af.with_portrait(af.ready_avatar(organization=org_a))
    (settings.MEDIA_ROOT / gone.current_version.portrait).unlink()

    unbuilt = api_a.get(_own(org_a, draft.pk))
    no_such_version = api_a.get(_own(org_a, built.pk, "?version=7"))
    not_a_number = api_a.get(_own(org_a, built.pk, "?version=latest"))
    file_gone = api_a.get(_own(org_a, gone.pk))

    assert unbuilt.status_code == no_such_version.status_code == file_gone.status_code == 404
    assert unbuilt.json()["detail"] == "This avatar has not been built yet, so it has no portrait."
    assert no_such_version.json()["detail"] == "This avatar has no version 7."
    assert file_gone.json()["detail"] == "Version 1 of this avatar has no portrait."
    assert not_a_number.status_code == 400
    assert list(not_a_number.json()["fields"]) == ["version"]


@pytest.mark.parametrize("stored", ["../outside.png", "/etc/hostname", "avatars/../../outside.png"])
def test_a_portrait_path_leading_out_of_media_root_is_never_served(org_a, api_a, settings, stored):
    outside = settings.MEDIA_ROOT.parent / "outside.png"
    outside.write_bytes(af.PORTRAIT_PNG)
    avatar = af.ready_avatar(organization=org_a)
    avatar.current_version.portrait = stored
    avatar.current_version.save()

    response = api_a.get(_own(org_a, avatar.pk))

    assert response.status_code == 404


def test_any_member_sees_the_portrait_of_a_market_avatar(org_a, api_a):
    vendor = OrganizationFactory(kind="vendor")
    published = af.with_portrait(af.ready_avatar(organization=vendor, visibility="public"))

    listed = api_a.get(f"/api/v1/orgs/{org_a.slug}/market/avatars/").json()["results"]

    assert [row["portrait_url"] for row in listed] == [
        f"http://testserver{_market(org_a, published.pk)}"
    ]
    assert _png(api_a.get(listed[0]["portrait_url"])) == af.PORTRAIT_PNG


def test_the_portrait_of_an_avatar_off_the_market_answers_like_a_random_id(org_a, api_a):
    vendor = OrganizationFactory(kind="vendor")
    private = af.with_portrait(af.ready_avatar(organization=vendor, visibility="private"))

    theirs = api_a.get(_market(org_a, private.pk))
    missing = api_a.get(_market(org_a, uuid.uuid4()))
    through_own = api_a.get(_own(org_a, private.pk))

    assert theirs.status_code == missing.status_code == through_own.status_code == 404
    assert theirs.json() == missing.json() == through_own.json()
