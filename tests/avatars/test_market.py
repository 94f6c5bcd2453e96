"""The talent market, browsed by members of any organization, and the vendor's aggregate view of
how many seats of its avatars are hired. Nothing is simulated: real views and database; factories
stand in for builds (a ready avatar with a version under a consent)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.roles import Role
from tests import factories
from tests.avatars import factories as af


def _market(org, avatar=None):
    base = f"/api/v1/orgs/{org.slug}/market/avatars/"
    return base if avatar is None else f"{base}{avatar.pk}/"


def _ids(response):
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def _vendor(slug):
    return factories.OrganizationFactory(slug=slug, name=f"{slug.title()} Studio", kind="vendor")


def _published(vendor, **kwargs):
    return af.ready_avatar(organization=vendor, visibility="public", **kwargs)


# --- what the market shows ------------------------------------------------------------------


def test_the_market_lists_published_avatars_of_every_vendor(org_a, api_a):
    vendor = _vendor("lumen")
    avatar = _published(
        vendor,
        name_zh="小雅",
        name_en="Ya",
        languages=["zh-CN", "yue-HK"],
        skills=["live_anchor"],
        list_price="1888.00",
        persona="Secret instructions of the vendor.",
        wardrobe=[{"name": "Qipao", "description": "Red"}],
    )
    version = avatar.current_version
    version.portrait = f"avatars/{avatar.pk}/portrait.png"
    version.save()

    listed = api_a.get(_market(org_a))
    detail = api_a.get(_market(org_a, avatar))

    assert listed.status_code == detail.status_code == 200
    (row,) = listed.json()["results"]
    assert row["id"] == str(avatar.pk)
    assert row["vendor"] == {"slug": "lumen", "name": "Lumen Studio"}
    assert (row["list_price"], row["currency"]) == ("1888.00", "CNY")
    assert row["languages"] == ["zh-CN", "yue-HK"]
    assert row["skills"] == ["live_anchor"]
    assert row["current_version"] == 1
    assert row["portrait_url"].endswith(f"/orgs/{org_a.slug}/market/avatars/{avatar.pk}/portrait/")
    assert "persona" not in row and "wardrobe" not in row
    body = detail.json()
    assert body["wardrobe"] == [{"name": "Qipao", "description": "Red"}]
    assert body["voice_profile"] == version.voice_profile
    assert "Secret instructions" not in json.dumps(body)


def _unpublished(vendor):
    """One avatar of the vendor for each reason it stays out of the market."""
    revoked = _published(vendor)
    revoked.current_version.consent.revoked_at = timezone.now()
    revoked.current_version.consent.save()
    expired = _published(vendor)
    expired.current_version.consent.expires_at = timezone.now() - dt.timedelta(minutes=1)
    expired.current_version.consent.save()
    owner_only = af.AvatarFactory(organization=vendor, status="ready", visibility="public")
    version = af.AvatarVersionFactory(avatar=owner_only, number=1, consent__scope="owner")
    owner_only.current_version = version
    owner_only.save()
    retired = _published(vendor)
    retired.status = "retired"
    retired.save()
    return {
        "private": af.ready_avatar(organization=vendor, visibility="private"),
        "draft": af.AvatarFactory(organization=vendor, visibility="public", status="draft"),
        "building": af.AvatarFactory(organization=vendor, visibility="public", status="building"),
        "retired": retired,
        "consent revoked": revoked,
        "consent expired": expired,
        "consent for the owner only": owner_only,
    }


def test_unpublished_avatars_are_invisible_and_answer_like_missing_ones(org_a, org_b, api_b):
    hidden = _unpublished(org_a)
    visible = _published(org_a)
    missing = api_b.get(f"/api/v1/orgs/{org_b.slug}/market/avatars/{uuid.uuid4()}/")

    assert _ids(api_b.get(_market(org_b))) == {str(visible.pk)}
    assert missing.status_code == 404
    for reason, avatar in hidden.items():
        response = api_b.get(_market(org_b, avatar))
        assert response.status_code == 404, reason
        assert response.json() == missing.json(), reason


def test_an_organization_does_not_find_its_own_private_avatars_in_the_market(org_a, api_a):
    own = af.ready_avatar(organization=org_a)

    assert _ids(api_a.get(_market(org_a))) == set()
    assert api_a.get(_market(org_a, own)).status_code == 404


def test_a_deactivated_vendors_avatars_leave_the_market(org_a, api_a):
    vendor = _vendor("gone")
    avatar = _published(vendor)
    vendor.is_active = False
    vendor.save()

    assert _ids(api_a.get(_market(org_a))) == set()
    assert api_a.get(_market(org_a, avatar)).status_code == 404


@pytest.mark.parametrize("role", list(Role))
def test_every_member_may_browse_the_market(org_a, member_factory, client_for, role):
    avatar = _published(_vendor("lumen"))

    response = client_for(member_factory(org_a, role)).get(_market(org_a))

    assert _ids(response) == {str(avatar.pk)}


def test_an_api_key_with_the_market_scope_browses_it(org_a):
    avatar = _published(_vendor("lumen"))
    _key, token = factories.make_api_key(org_a, scopes=["market.view"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert _ids(client.get(_market(org_a))) == {str(avatar.pk)}


def test_the_market_is_read_only(org_a, api_a):
    avatar = _published(_vendor("lumen"))

    assert api_a.post(_market(org_a), {"name_zh": "x"}, format="json").status_code == 405
    patched = api_a.patch(_market(org_a, avatar), {"list_price": "1"}, format="json")
    assert patched.status_code == 405
    assert api_a.delete(_market(org_a, avatar)).status_code == 405


# --- filters --------------------------------------------------------------------------------


@pytest.fixture
def catalogue(db):
    lumen, north = _vendor("lumen"), _vendor("north")
    return {
        "anchor": _published(
            lumen,
            name_zh="健康主播小雅",
            name_en="Ya, health anchor",
            languages=["zh-CN"],
            skills=["live_anchor", "presenter"],
            list_price="1500.00",
        ),
        "cantonese": _published(
            lumen,
            name_zh="粤语客服阿明",
            name_en="Ming",
            description="Cantonese SERVICE desk for Hong Kong visitors.",
            languages=["yue-HK", "en-US"],
            skills=["service_desk"],
            list_price="2500.00",
        ),
        "hans": _published(
            north,
            name_zh="讲解员",
            name_en="Guide",
            languages=["zh-Hans-CN"],
            skills=["guide", "teacher"],
            list_price="800.00",
        ),
        "english": _published(
            north,
            name_zh="英语主持",
            name_en="Emma",
            languages=["en-GB"],
            skills=["presenter", "live_commerce"],
            list_price="3200.00",
            currency="USD",
        ),
    }


def _names(response, catalogue):
    ids = _ids(response)
    return {name for name, avatar in catalogue.items() if str(avatar.pk) in ids}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"skill": "presenter"}, {"anchor", "english"}),
        ({"skill": ["guide", "service_desk"]}, {"hans", "cantonese"}),
        ({"skill": "guide,service_desk"}, {"hans", "cantonese"}),
        ({"language": "zh"}, {"anchor", "hans"}),
        ({"language": "ZH-cn"}, {"anchor"}),
        ({"language": "zh-Hans"}, {"hans"}),
        ({"language": "yue"}, {"cantonese"}),
        ({"language": "en"}, {"cantonese", "english"}),
        ({"language": ["yue", "zh-CN"]}, {"cantonese", "anchor"}),
        ({"language": "z"}, None),
        ({"vendor": "north"}, {"hans", "english"}),
        ({"vendor": "nobody"}, set()),
        ({"min_price": "1500"}, {"anchor", "cantonese", "english"}),
        ({"max_price": "1500.00"}, {"anchor", "hans"}),
        ({"min_price": "1000", "max_price": "3000"}, {"anchor", "cantonese"}),
        ({"currency": "usd"}, {"english"}),
        ({"q": "service desk"}, {"cantonese"}),
        ({"q": "健康"}, {"anchor"}),
        ({"q": "HEALTH"}, {"anchor"}),
        ({"q": "ming hong kong"}, {"cantonese"}),
        ({"q": "ming paris"}, set()),
        ({"q": "100%"}, set()),
        ({"skill": "presenter", "language": "en", "max_price": "5000", "q": "emma"}, {"english"}),
        ({"skill": "presenter", "language": "zh", "vendor": "lumen"}, {"anchor"}),
        ({"skill": "presenter", "language": "zh", "vendor": "north"}, set()),
        ({"skill": "service_desk", "language": "yue", "min_price": "2600"}, set()),
    ],
)
def test_filters_combine(org_a, api_a, catalogue, query, expected):
    response = api_a.get(_market(org_a), query)

    if expected is None:
        assert response.status_code == 400
        return
    assert _names(response, catalogue) == expected


def test_bad_filter_values_are_explained(org_a, api_a, catalogue):
    skill = api_a.get(_market(org_a), {"skill": "presenter,juggler"})
    language = api_a.get(_market(org_a), {"language": "zh_CN"})
    price = api_a.get(_market(org_a), {"min_price": "cheap"})

    assert skill.status_code == language.status_code == price.status_code == 400
    assert "“juggler”" in skill.json()["fields"]["skill"][0]["message"]
    assert "zh-CN, yue-HK" in language.json()["fields"]["language"][0]["message"]
    assert "min_price" in price.json()["fields"]


def test_a_percent_sign_in_a_bad_filter_value_is_quoted_not_formatted(org_a, api_a, catalogue):
    """Found by the schema fuzzer: the message quotes the value, and "%0" once crashed it."""
    response = api_a.get(_market(org_a), {"language": ":%0x"})
    assert response.status_code == 400
    assert ":%0x" in response.json()["fields"]["language"][0]["message"]


@pytest.mark.parametrize("ordering", ["list_price", "-list_price", "name_en", "-created_at"])
def test_ordering(org_a, api_a, catalogue, ordering):
    field = ordering.lstrip("-")
    response = api_a.get(_market(org_a), {"ordering": ordering})

    rows = response.json()["results"]
    values = [row[field] if field != "list_price" else float(row[field]) for row in rows]
    assert values == sorted(values, reverse=ordering.startswith("-"))
    assert len(rows) == 4


def _follow(client, url, query=None):
    """Every page from the first, forwards; then back again through the `previous` links."""
    pages = []
    response = client.get(url, query)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append(body["results"])
        if body["next"] is None:
            break
        response = client.get(body["next"])
    backwards = [body["results"]]
    while body["previous"] is not None:
        body = client.get(body["previous"]).json()
        backwards.append(body["results"])
    return pages, backwards


def test_cursor_pages_through_ties_in_price_exactly_once_both_ways(org_a, api_a):
    vendor = _vendor("lumen")
    avatars = [_published(vendor, list_price="999.00") for _ in range(7)]
    avatars += [_published(vendor, list_price="10.00") for _ in range(2)]

    pages, backwards = _follow(
        api_a, _market(org_a), {"ordering": "list_price", "page_size": 2, "skill": "service_desk"}
    )

    seen = [row["id"] for page in pages for row in page]
    assert sorted(seen) == sorted(str(a.pk) for a in avatars)
    assert len(pages) == 5
    assert [row["list_price"] for row in pages[0]] == ["10.00", "10.00"]
    assert [[row["id"] for row in page] for page in reversed(backwards)] == [
        [row["id"] for row in page] for page in pages
    ]


def test_a_tampered_cursor_answers_not_found(org_a, api_a, catalogue):
    for cursor in ["garbage", "cD1bIjEiXQ==", "cD1bImEiLCAiYiJd"]:  # p=["1"], p=["a", "b"]
        response = api_a.get(_market(org_a), {"cursor": cursor, "ordering": "list_price"})
        assert response.status_code == 404
        assert response.json()["detail"] == "Invalid cursor"


def test_the_lists_query_count_does_not_grow_with_avatars(org_a, api_a):
    def publish(count):
        for index in range(count):
            _published(_vendor(f"vendor-{index}-{count}"), skills=["presenter", "guide"])

    query = {"skill": "presenter", "language": "zh", "min_price": "1", "q": "avatar"}
    publish(3)
    api_a.get(_market(org_a), query)  # warms per-process caches
    with CaptureQueriesContext(connection) as few:
        three = api_a.get(_market(org_a), query)
    publish(27)
    with CaptureQueriesContext(connection) as many:
        thirty = api_a.get(_market(org_a), query)

    assert len(three.json()["results"]) == 3
    assert len(thirty.json()["results"]) == 30
    assert len(many) == len(few)


# --- the vendor's view of its hires ---------------------------------------------------------


def test_a_vendor_sees_hires_of_its_avatar_in_aggregate_only(org_a, org_b, api_a):
    vendor_avatar = _published(org_a)
    hospital = factories.OrganizationFactory(slug="gamma-hospital", name="Gamma Hospital")
    for organization, status, seats in [
        (org_b, "active", 3),
        (org_b, "active", 2),
        (org_b, "offered", 1),
        (hospital, "onboarding", 4),
        (hospital, "suspended", 1),
        (hospital, "terminated", 9),
    ]:
        af.EmploymentFactory(
            organization=organization, avatar=vendor_avatar, status=status, seats=seats
        )
    af.EmploymentFactory(organization=org_b, status="active", seats=7)  # another avatar

    response = api_a.get(f"/api/v1/orgs/{org_a.slug}/avatars/{vendor_avatar.pk}/hires/")

    assert response.status_code == 200
    body = response.json()
    assert body == {
        "hires": {"offered": 1, "onboarding": 1, "active": 2, "suspended": 1},
        "seats": {"offered": 1, "onboarding": 4, "active": 5, "suspended": 1},
        "hires_not_ended": 5,
        "seats_not_ended": 11,
        "institutions": 2,
    }
    text = response.content.decode()
    for organization in (org_b, hospital):
        assert str(organization.pk) not in text
        assert organization.slug not in text
        assert organization.name not in text


def test_hire_statistics_of_another_vendors_avatar_are_not_found(org_a, org_b, api_b):
    vendor_avatar = _published(org_a)
    af.EmploymentFactory(organization=org_b, avatar=vendor_avatar, status="active")

    response = api_b.get(f"/api/v1/orgs/{org_b.slug}/avatars/{vendor_avatar.pk}/hires/")

    assert response.status_code == 404


def test_an_avatar_nobody_hired_has_zero_counts(org_a, api_a):
    avatar = af.AvatarFactory(organization=org_a)

    body = api_a.get(f"/api/v1/orgs/{org_a.slug}/avatars/{avatar.pk}/hires/").json()

    assert body["hires_not_ended"] == body["seats_not_ended"] == body["institutions"] == 0
