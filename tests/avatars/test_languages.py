"""BCP-47 language tags: one set of rules for avatars, positions, the talent market's filter and
the knowledge base, with the same message for the same wrong tag wherever it is typed."""

from __future__ import annotations

import pytest

from avatars import languages, positions
from tenants.audit import SYSTEM
from tenants.errors import DomainError
from tests.support import database_rows

EXAMPLES = "Write tags such as zh-CN, yue-HK, en-US, zh-Hans-CN."


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "Give a language as a BCP-47 tag."),
        (None, "Give a language as a BCP-47 tag."),
        ("zh_cn", "Use hyphens, not underscores, in language tags: zh-CN, not “zh_cn”."),
        ("mandarin", "“mandarin” is not a BCP-47 language tag."),
        ("xx-CN", "“xx” is not an ISO 639 language code."),
        (
            "zh-Hans-CN-x-private",
            "“zh-Hans-CN-x-private” has an extension or private-use part; give only the language, "
            "script, region and variants, as in zh-Hans-CN.",
        ),
        ("sl-Latn-IT-rozaj-biske-1994-abcdefgh", "A language tag has at most 35 characters."),
    ],
)
def test_a_wrong_tag_is_explained_specifically_with_examples(value, problem):
    with pytest.raises(languages.InvalidLanguageTag) as caught:
        languages.normalise(value)

    assert caught.value.message == f"{problem} {EXAMPLES}"
    assert languages.problem(value) == caught.value.message


def test_a_list_is_normalised_without_duplicates_in_its_order():
    assert languages.normalise_all(["ZH-cn", "yue-hk", "zh-CN", " en ", "yue-HK"]) == [
        "zh-CN",
        "yue-HK",
        "en",
    ]
    assert languages.list_problem(["zh-CN"]) is None


def test_a_list_names_every_wrong_tag_at_once_and_the_examples_once():
    problem = languages.list_problem(["zh-CN", "chinese", "en_US", "chinese"])

    assert problem == (
        "“chinese” is not a BCP-47 language tag. "
        "Use hyphens, not underscores, in language tags: en-US, not “en_US”. " + EXAMPLES
    )


def test_a_list_holds_at_most_twenty_languages():
    many = [f"zh-{n:03d}" for n in range(21)]

    assert languages.list_problem(many) == "At most 20 languages."
    assert languages.list_problem([*many[:20], "ZH-000"]) is None  # a duplicate is not one more


@pytest.mark.parametrize(
    ("tag", "wanted", "matches"),
    [
        ("zh-CN", "zh", True),
        ("zh-Hans-CN", "zh", True),
        ("zh-Hans-CN", "zh-hans", True),
        ("yue-HK", "yue", True),
        ("zh-CN", "zh-CN", True),
        ("zh", "zh-CN", False),
        ("zh-TW", "zh-CN", False),
        ("zha", "zh", False),
    ],
)
def test_a_tag_matches_a_range_of_its_primary_language(tag, wanted, matches):
    assert languages.matches(tag, wanted) is matches


def test_a_required_language_is_met_by_a_more_specific_tag():
    assert languages.speaks(["yue-HK", "en-US"], "yue")
    assert not languages.speaks(["zh-CN"], "yue")


def test_the_position_service_refuses_a_wrong_tag_like_the_api(org_a):
    before = database_rows()

    with pytest.raises(DomainError) as caught:
        positions.create_position(SYSTEM, org_a, title="Desk", required_languages=["xx-CN"])

    assert (caught.value.code, caught.value.field) == ("invalid_language", "required_languages")
    assert str(caught.value.detail) == f"“xx” is not an ISO 639 language code. {EXAMPLES}"
    assert database_rows() == before


def _message(response, field):
    assert response.status_code == 400, response.content
    return response.json()["fields"][field][0]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("tag", ["xx-CN", "zh_CN", "chinese!"])
def test_every_place_that_takes_a_tag_explains_a_wrong_one_alike(org_a, api_a, tag):
    base = f"/api/v1/orgs/{org_a.slug}"
    expected = languages.problem(tag)

    avatar = api_a.post(f"{base}/avatars/", {"name_zh": "小安", "languages": [tag]}, format="json")
    position = api_a.post(
        f"{base}/positions/", {"title": "Desk", "required_languages": [tag]}, format="json"
    )
    entry = api_a.post(
        f"{base}/knowledge/entries/",
        {"questions": ["Hours?"], "answer": "9 to 5.", "language": tag},
        format="json",
    )
    entries = api_a.get(f"{base}/knowledge/entries/", {"language": tag})
    market = api_a.get(f"{base}/market/avatars/", {"language": tag})

    assert _message(avatar, "languages") == expected
    assert _message(position, "required_languages") == expected
    assert _message(entry, "language") == expected
    assert _message(entries, "language") == expected
    assert _message(market, "language") == expected
