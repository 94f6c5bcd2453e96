"""Importing Q&A entries from CSV: a row-level report, all rows or none, and no duplicates."""

from __future__ import annotations

import pytest
from django.test import override_settings

from avatars.models import KnowledgeEntry
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.avatars.factories import KnowledgeEntryFactory
from tests.support import database_rows

GOOD_CSV = (
    "question,answer,language,tags\n"
    "营业执照怎么办理？|如何申请营业执照,可在政务服务网在线申请。,zh-CN,证照;licensing\n"
    '"How do I file a complaint?\nWhere can I complain?","Call 12315, or file it online.",'
    "en-US,complaints\n"
    "办事大厅几点开门？,工作日9:00至17:00。,zh-CN,\n"
)


def _url(org, mode: str | None = None) -> str:
    url = f"/api/v1/orgs/{org.slug}/knowledge/entries/import/"
    return f"{url}?mode={mode}" if mode else url


@pytest.fixture
def admin(org_a, owner_a, member_factory, client_for):
    return client_for(member_factory(org_a, Role.ADMIN))


def _send(client, org, body: str | bytes, mode: str | None = "commit", **extra):
    data = body.encode() if isinstance(body, str) else body
    return client.post(_url(org, mode), data=data, content_type="text/csv", **extra)


def _entries(org):
    return KnowledgeEntry.objects.for_organization(org)


def test_a_good_file_is_imported_with_variants_and_tags(admin, org_a):
    response = _send(admin, org_a, GOOD_CSV)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "committed": True,
        "rows": 3,
        "created": 3,
        "skipped": [],
        "errors": [],
    }
    licence = _entries(org_a).get(language="zh-CN", answer="可在政务服务网在线申请。")
    assert licence.questions == ["营业执照怎么办理？", "如何申请营业执照"]
    assert licence.tags == ["证照", "licensing"]
    complaint = _entries(org_a).get(language="en-US")
    assert complaint.questions == ["How do I file a complaint?", "Where can I complain?"]
    assert complaint.answer == "Call 12315, or file it online."
    assert _entries(org_a).get(answer="工作日9:00至17:00。").tags == []
    audit = AuditEntry.objects.for_organization(org_a)
    assert audit.filter(action="knowledge_entry.create").count() == 3
    assert audit.get(action="knowledge_entry.import").after["created"] == 3


def test_a_file_with_a_byte_order_mark_and_windows_line_ends_is_read(admin, org_a):
    body = ("\ufeff" + GOOD_CSV.replace("\n", "\r\n")).encode()
    response = _send(admin, org_a, body)
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 3
    # The BOM did not end up in the first column's name, nor in any question.
    assert all(not q.startswith("\ufeff") for e in _entries(org_a) for q in e.questions)


def test_broken_rows_are_reported_by_row_and_column_and_nothing_is_imported(admin, org_a):
    body = (
        "question,answer,language,tags\n"
        "营业执照怎么办理？,可在政务服务网在线申请。,zh-CN,证照\n"  # row 2: fine
        "Where do I complain?,,en-US,complaints\n"  # row 3: no answer
        "价格争议怎么处理？,先与商家协商。,chinese,\n"  # row 4: bad language tag
        + "|".join(f"问法{n}" for n in range(21))
        + ",答案,zh-CN,\n"  # row 5: 21 variants
        "a,b,en-US,x,surplus\n"  # row 6: a cell too many
        ",Only an answer,en-US,\n"  # row 7: no question
    )
    before = database_rows()
    response = _send(admin, org_a, body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "csv_invalid"
    assert "nothing was imported" in response.json()["detail"]
    report = response.json()["report"]
    assert report["committed"] is False
    assert report["rows"] == 6
    problems = [(e["row"], e["column"]) for e in report["errors"]]
    assert problems == [
        (3, "answer"),
        (4, "language"),
        (5, "question"),
        (6, None),
        (7, "question"),
    ]
    messages = {e["row"]: e["message"] for e in report["errors"]}
    assert messages[3] == "Write the answer."
    assert "“chinese” is not a BCP-47 language tag" in messages[4]
    assert "at most 20 question variants; this one has 21" in messages[5]
    assert "5 cells but the header has 4 columns" in messages[6]
    assert database_rows() == before


def test_a_row_can_have_several_problems(admin, org_a):
    body = "question,answer,language\n,,\nq,,zh\n"
    response = _send(admin, org_a, body)
    report = response.json()["report"]
    # Row 2 is blank and ignored; row 3 lacks an answer.
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(3, "answer")]
    body = "question,answer,language\n ,,english\n"
    report = _send(admin, org_a, body).json()["report"]
    assert [(e["row"], e["column"]) for e in report["errors"]] == [
        (2, "question"),
        (2, "answer"),
        (2, "language"),
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("question,anwser,language,tags", [(1, "anwser"), (1, "answer")]),
        ("question,answer", [(1, "language")]),
        ("question,answer,language,language", [(1, "language")]),
        ("", [(1, None)]),
    ],
)
def test_a_wrong_header_is_reported_on_row_one(admin, org_a, header, expected):
    before = database_rows()
    response = _send(admin, org_a, f"{header}\nq,a,zh-CN,t\n" if header else "")
    assert response.status_code == 400, response.content
    report = response.json()["report"]
    assert [(e["row"], e["column"]) for e in report["errors"]] == expected
    assert "question,answer,language,tags" in report["errors"][0]["message"] or (
        "twice" in report["errors"][0]["message"]
    )
    assert database_rows() == before


def test_chinese_column_names_are_understood(admin, org_a):
    response = _send(
        admin, org_a, "问题,答案,语言,标签\n食品安全怎么举报？,拨打12315。,zh-CN,食品\n"
    )
    assert response.status_code == 200, response.content
    assert _entries(org_a).get().tags == ["食品"]


def test_a_file_that_is_not_utf8_says_how_to_save_it(admin, org_a):
    body = "question,answer,language\n营业执照？,网上办理,zh-CN\n".encode("gbk")
    before = database_rows()
    response = _send(admin, org_a, body)
    assert response.status_code == 400
    (error,) = response.json()["report"]["errors"]
    assert "not UTF-8 text (line 2" in error["message"]
    assert "Save it as UTF-8" in error["message"]
    assert database_rows() == before


def test_a_declared_charset_other_than_utf8_is_refused(admin, org_a):
    response = admin.post(
        _url(org_a, "commit"),
        data="question,answer,language\n".encode("gbk"),
        content_type="text/csv; charset=gbk",
    )
    assert response.status_code == 400
    assert "send it as UTF-8" in response.json()["detail"]


def test_validate_mode_reports_what_a_commit_would_do_and_writes_nothing(admin, org_a):
    KnowledgeEntryFactory(organization=org_a, questions=["办事大厅几点开门？"], language="zh-CN")
    before = database_rows()
    response = _send(admin, org_a, GOOD_CSV, mode="validate")
    assert response.status_code == 200, response.content
    report = response.json()
    assert (report["committed"], report["rows"], report["created"]) == (False, 3, 2)
    assert [s["row"] for s in report["skipped"]] == [4]
    assert database_rows() == before
    # Validation is the default; a broken file is a 200 with the problems in the report.
    broken = _send(admin, org_a, "question,answer,language\nq,,en-US\n", mode=None)
    assert broken.status_code == 200
    assert broken.json()["errors"][0]["row"] == 2
    assert database_rows() == before


def test_importing_the_same_file_again_adds_nothing(admin, org_a):
    assert _send(admin, org_a, GOOD_CSV).json()["created"] == 3
    again = _send(admin, org_a, GOOD_CSV)
    assert again.status_code == 200
    assert again.json()["created"] == 0
    assert [s["row"] for s in again.json()["skipped"]] == [2, 3, 4]
    assert "already exists" in again.json()["skipped"][0]["message"]
    assert _entries(org_a).count() == 3


def test_the_same_question_in_another_language_or_later_in_the_file(admin, org_a):
    body = (
        "question,answer,language\n"
        "Opening hours?,9 to 5.,en-US\n"
        "opening  HOURS?,Nine to five.,en-US\n"  # the same first question: skipped
        "Opening hours?,9 到 5.,zh-CN\n"  # another language: a new entry
    )
    report = _send(admin, org_a, body).json()
    assert report["created"] == 2
    assert report["skipped"] == [
        {
            "row": 3,
            "question": "opening HOURS?",
            "message": "Same first question and language as row 2.",
        }
    ]


def test_a_file_with_only_a_header_is_an_error(admin, org_a):
    report = _send(admin, org_a, "question,answer,language,tags\n").json()["report"]
    assert report["errors"][0]["message"] == "The file has a header but no rows to import."


def test_an_unclosed_quote_is_reported(admin, org_a):
    body = 'question,answer,language\n"Opening hours?,9 to 5,en-US\n'
    report = _send(admin, org_a, body).json()["report"]
    assert report["errors"][0]["row"] == 2
    assert "check the quotes" in report["errors"][0]["message"]


def test_an_unknown_mode_and_a_json_body_are_refused(admin, org_a):
    before = database_rows()
    assert _send(admin, org_a, GOOD_CSV, mode="maybe").status_code == 400
    as_json = admin.post(_url(org_a, "commit"), {"question": "q"}, format="json")
    assert as_json.status_code == 415
    assert as_json.json()["code"] == "unsupported_media_type"
    assert database_rows() == before


def test_a_file_over_the_body_limit_is_refused_with_the_sizes(admin, org_a):
    before = database_rows()
    with override_settings(API_MAX_BODY_BYTES=100):
        response = _send(admin, org_a, GOOD_CSV)
    assert response.status_code == 413
    assert "the limit is 100 bytes" in response.json()["detail"]
    assert database_rows() == before


def test_an_analyst_may_not_import(org_a, owner_a, member_factory, client_for):
    analyst = client_for(member_factory(org_a, Role.ANALYST))
    before = database_rows()
    assert _send(analyst, org_a, GOOD_CSV).status_code == 403
    assert _send(analyst, org_a, GOOD_CSV, mode="validate").status_code == 403
    assert database_rows() == before


def test_another_organization_cannot_import_here(admin, org_a, org_b, api_b):
    before = database_rows()
    response = _send(api_b, org_a, GOOD_CSV)
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}
    assert database_rows() == before
    # Another organization's entries do not make this one's rows look like duplicates.
    KnowledgeEntryFactory(organization=org_b, questions=["办事大厅几点开门？"], language="zh-CN")
    assert _send(admin, org_a, GOOD_CSV).json()["created"] == 3
