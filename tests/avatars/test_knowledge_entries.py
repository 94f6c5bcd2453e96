"""Q&A entries of the knowledge base: create, change, delete, validation, filters and search."""

from __future__ import annotations

import pytest

from avatars.models import KnowledgeEntry
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.avatars.factories import KnowledgeEntryFactory
from tests.support import database_rows


def _url(org, *parts: object) -> str:
    return "/".join([f"/api/v1/orgs/{org.slug}/knowledge/entries", *map(str, parts), ""])


@pytest.fixture
def operator(org_a, owner_a, member_factory, client_for):
    return client_for(member_factory(org_a, Role.OPERATOR))


def _entry(**overrides):
    return {
        "questions": ["营业执照怎么办理？", "如何申请营业执照"],
        "answer": "可在政务服务网在线申请，或到办事大厅窗口办理。",
        "language": "zh-CN",
        "tags": ["licensing", "证照"],
        **overrides,
    }


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_an_operator_creates_reads_changes_and_deletes_an_entry(operator, org_a):
    created = operator.post(_url(org_a), _entry(), format="json")
    assert created.status_code == 201, created.content
    entry_id = created.json()["id"]
    assert created.json()["questions"] == ["营业执照怎么办理？", "如何申请营业执照"]
    assert created.json()["tags"] == ["licensing", "证照"]

    changed = operator.patch(
        _url(org_a, entry_id),
        {"answer": "  在线申请：政务服务网。  ", "language": "zh-cn"},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["answer"] == "在线申请：政务服务网。"
    assert changed.json()["language"] == "zh-CN"  # stored in the canonical case
    assert operator.get(_url(org_a, entry_id)).json()["answer"] == "在线申请：政务服务网。"

    assert operator.delete(_url(org_a, entry_id)).status_code == 204
    assert operator.get(_url(org_a, entry_id)).status_code == 404
    actions = list(
        AuditEntry.objects.for_organization(org_a)
        .filter(object_id=entry_id)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "knowledge_entry.create",
        "knowledge_entry.update",
        "knowledge_entry.delete",
    ]


def test_question_variants_are_trimmed_and_deduplicated(operator, org_a):
    created = operator.post(
        _url(org_a),
        _entry(questions=["  Opening   hours? ", "opening hours?", "When are you open?"]),
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["questions"] == ["Opening hours?", "When are you open?"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"questions": []}, "questions", "Give at least one question."),
        ({"questions": ["ok", "   "]}, "questions", "Question 2 is empty"),
        ({"questions": [f"q{n}" for n in range(21)]}, "questions", "at most 20 question variants"),
        (
            {"questions": ["x" * 501]},
            "questions",
            "Question 1 has 501 characters; the limit is 500",
        ),
        ({"questions": "one string"}, "questions", "Expected a list"),
        ({"answer": ""}, "answer", "This field may not be blank."),
        ({"answer": "   "}, "answer", "Write the answer."),
        ({"answer": "答" * 5001}, "answer", "The answer has 5001 characters; the limit is 5000"),
        ({"language": "english"}, "language", "“english” is not a BCP-47 language tag"),
        (
            {"language": "zh_CN"},
            "language",
            "Use hyphens, not underscores, in language tags: zh-CN",
        ),
        ({"language": "xx-CN"}, "language", "“xx” is not an ISO 639 language code"),
        ({"language": "zh-CN-"}, "language", "is not a BCP-47 language tag"),
        ({"tags": ["a|b"]}, "tags", "may not contain"),
        ({"tags": ["t" * 51]}, "tags", "longer than 50 characters"),
        ({"tags": [f"t{n}" for n in range(21)]}, "tags", "At most 20 tags"),
    ],
)
def test_a_bad_field_gets_a_message_that_says_what_to_fix(operator, org_a, change, field, message):
    before = database_rows()
    response = operator.post(_url(org_a), _entry(**change), format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()["fields"]) == [field]
    assert message in response.json()["fields"][field][0]["message"]
    assert database_rows() == before


def test_a_change_is_validated_like_a_creation(operator, org_a):
    entry = KnowledgeEntryFactory(organization=org_a)
    before = database_rows()
    response = operator.patch(_url(org_a, entry.pk), {"language": "中文"}, format="json")
    assert response.status_code == 400
    assert "not a BCP-47 language tag" in response.json()["fields"]["language"][0]["message"]
    assert database_rows() == before


@pytest.mark.parametrize(
    "tag", ["zh-CN", "yue-HK", "en-US", "zh-Hant-TW", "cmn-Hans-CN", "en", "es-419", "de-CH-1996"]
)
def test_well_formed_language_tags_are_accepted(operator, org_a, tag):
    response = operator.post(_url(org_a), _entry(language=tag.lower()), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["language"] == tag


def test_an_analyst_reads_but_does_not_write(org_a, owner_a, member_factory, client_for):
    analyst = client_for(member_factory(org_a, Role.ANALYST))
    entry = KnowledgeEntryFactory(organization=org_a)
    assert analyst.get(_url(org_a, entry.pk)).status_code == 200
    before = database_rows()
    response = analyst.patch(_url(org_a, entry.pk), {"answer": "no"}, format="json")
    assert response.status_code == 403
    assert database_rows() == before


def test_the_list_filters_by_language_including_more_specific_tags(operator, org_a):
    mandarin = KnowledgeEntryFactory(organization=org_a, language="zh-CN")
    taiwan = KnowledgeEntryFactory(organization=org_a, language="zh-Hant-TW")
    english = KnowledgeEntryFactory(organization=org_a, language="en-US")
    assert set(_ids(operator.get(_url(org_a), {"language": "zh"}))) == {
        str(mandarin.pk),
        str(taiwan.pk),
    }
    assert _ids(operator.get(_url(org_a), {"language": "zh-cn"})) == [str(mandarin.pk)]
    assert _ids(operator.get(_url(org_a), {"language": "en"})) == [str(english.pk)]
    bad = operator.get(_url(org_a), {"language": "chinese!"})
    assert bad.status_code == 400
    assert "not a BCP-47 language tag" in bad.json()["fields"]["language"][0]["message"]


def test_the_list_filters_by_tag_ignoring_case_and_in_chinese(operator, org_a):
    licensing = KnowledgeEntryFactory(organization=org_a, tags=["Licensing", "证照"])
    KnowledgeEntryFactory(organization=org_a, tags=["complaints", "licensing-fees"])
    untagged = KnowledgeEntryFactory(organization=org_a, tags=[])
    assert _ids(operator.get(_url(org_a), {"tag": "licensing"})) == [str(licensing.pk)]
    assert _ids(operator.get(_url(org_a), {"tag": "证照"})) == [str(licensing.pk)]
    assert _ids(operator.get(_url(org_a), {"tag": "证"})) == []  # whole tags only
    assert str(untagged.pk) in _ids(operator.get(_url(org_a)))


def test_search_finds_chinese_and_english_in_questions_and_answers(operator, org_a):
    license_zh = KnowledgeEntryFactory(
        organization=org_a,
        questions=["营业执照怎么办理？"],
        answer="可在政务服务网在线申请。",
        language="zh-CN",
    )
    complaint_zh = KnowledgeEntryFactory(
        organization=org_a,
        questions=["怎么投诉商家？"],
        answer="拨打12315热线，或在全国12315平台在线投诉。",
        language="zh-CN",
    )
    hours_en = KnowledgeEntryFactory(
        organization=org_a,
        questions=["When is the service hall open?"],
        answer="Monday to Friday, 9:00 to 17:00. Closed on public holidays.",
        language="en-US",
    )
    for query, expected in [
        ("营业执照", [license_zh]),  # in a question
        ("12315", [complaint_zh]),  # in an answer
        ("政务服务", [license_zh]),
        ("service HALL", [hours_en]),  # case does not matter
        ("public holidays", [hours_en]),
        ("怎么", [license_zh, complaint_zh]),
        ("nothing like this", []),
    ]:
        found = set(_ids(operator.get(_url(org_a), {"q": query})))
        assert found == {str(entry.pk) for entry in expected}, query


def test_search_follows_a_change_of_the_answer(operator, org_a):
    entry = KnowledgeEntryFactory(organization=org_a, answer="旧的答案")
    operator.patch(_url(org_a, entry.pk), {"answer": "新的答案：周六也办公"}, format="json")
    assert _ids(operator.get(_url(org_a), {"q": "周六"})) == [str(entry.pk)]
    assert _ids(operator.get(_url(org_a), {"q": "旧的"})) == []


def test_filters_combine(operator, org_a):
    wanted = KnowledgeEntryFactory(
        organization=org_a, language="en-US", tags=["food"], answer="Food safety hotline"
    )
    KnowledgeEntryFactory(organization=org_a, language="zh-CN", tags=["food"], answer="食品安全")
    KnowledgeEntryFactory(organization=org_a, language="en-US", tags=["price"], answer="Food price")
    listed = operator.get(_url(org_a), {"language": "en", "tag": "food", "q": "food"})
    assert _ids(listed) == [str(wanted.pk)]


def test_another_organizations_entry_is_not_found(operator, org_a, org_b):
    theirs = KnowledgeEntryFactory(organization=org_b, questions=["他们的问题"])
    before = database_rows()
    for response in (
        operator.get(_url(org_a, theirs.pk)),
        operator.patch(_url(org_a, theirs.pk), {"answer": "mine"}, format="json"),
        operator.delete(_url(org_a, theirs.pk)),
    ):
        assert response.status_code == 404
        assert response.json() == {"code": "not_found", "detail": "Not found."}
    assert database_rows() == before
    assert _ids(operator.get(_url(org_a), {"q": "他们"})) == []


def test_an_entry_made_by_a_factory_is_searchable_too(org_a):
    # The search text is derived on save, whoever saves.
    entry = KnowledgeEntryFactory(organization=org_a, questions=["Parking?"], tags=["Visit"])
    rows = KnowledgeEntry.objects.for_organization(org_a)
    assert rows.filter(search_text__contains="parking").get() == entry
    entry.tags = ["Parking"]
    entry.save(update_fields=["tags"])
    assert rows.filter(tag_index__contains="|parking|").get() == entry
