"""Knowledge documents: text sent directly, or read from an uploaded text, Markdown or PDF file.

The PDFs are real files written by `make_pdf` (Helvetica text on pages), read back by pypdf.
Uploads are rows made by the factory with the file placed where the upload service keeps it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avatars.models import KnowledgeDocument
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.avatars.factories import KnowledgeDocumentFactory, UploadFactory
from tests.support import database_rows


def make_pdf(*pages: list[str]) -> bytes:
    """A valid PDF with one page per list of lines (Latin-1 text in Helvetica)."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    page_count = len(pages)
    font = 3 + 2 * page_count
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [{}] /Count {} >>".format(
            " ".join(f"{3 + 2 * i} 0 R" for i in range(page_count)), page_count
        ),
    ]
    for index, lines in enumerate(pages):
        text = " ".join(f"({escape(line)}) Tj T*" for line in lines)
        stream = f"BT /F1 12 Tf 14 TL 72 720 Td {text} ET" if lines else ""
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * index} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return out


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def operator(org_a, owner_a, member_factory, client_for):
    return client_for(member_factory(org_a, Role.OPERATOR))


def _url(org, *parts: object) -> str:
    return "/".join([f"/api/v1/orgs/{org.slug}/knowledge/documents", *map(str, parts), ""])


def uploaded(media: Path, org, filename: str, data: bytes, **fields):
    fields.setdefault("purpose", "document")
    fields.setdefault("content_type", "application/octet-stream")
    upload = UploadFactory(
        organization=org, filename=filename, size=len(data), received=len(data), **fields
    )
    path = media / upload.relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return upload


def test_a_markdown_document_is_created_from_text_and_changed(operator, org_a):
    created = operator.post(
        _url(org_a),
        {
            "title": "Opening hours",
            "format": "markdown",
            "content": "# Opening hours\n\nMonday to Friday, 9:00–17:00.\n",
            "language": "en-us",
            "tags": ["hours"],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    document_id = created.json()["id"]
    assert created.json()["language"] == "en-US"
    assert created.json()["content"] == "# Opening hours\n\nMonday to Friday, 9:00–17:00."
    assert created.json()["source"] is None

    changed = operator.patch(
        _url(org_a, document_id),
        {"content": "Also Saturdays 9:00–12:00.", "format": "text"},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["format"], changed.json()["content"]) == (
        "text",
        "Also Saturdays 9:00–12:00.",
    )
    assert operator.delete(_url(org_a, document_id)).status_code == 204
    assert operator.get(_url(org_a, document_id)).status_code == 404
    audit = AuditEntry.objects.for_organization(org_a).filter(object_id=document_id)
    assert list(audit.order_by("id").values_list("action", flat=True)) == [
        "knowledge_document.create",
        "knowledge_document.update",
        "knowledge_document.delete",
    ]
    # The log keeps the text's size and fingerprint, not the text.
    update = audit.get(action="knowledge_document.update")
    assert "content" not in update.after
    assert update.after["content_chars"] == len("Also Saturdays 9:00–12:00.")


def test_a_pdf_upload_becomes_a_document_with_its_text(operator, org_a, media):
    pdf = make_pdf(
        ["Food safety complaints", "Call 12315 or visit the service hall."],
        ["Opening hours (weekdays) 9:00 to 17:00"],
    )
    upload = uploaded(media, org_a, "food-safety.pdf", pdf, content_type="application/pdf")
    created = operator.post(
        _url(org_a), {"source": str(upload.pk), "language": "en-US"}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["format"], body["title"], body["source"]) == ("pdf", "food-safety", str(upload.pk))
    assert "Call 12315 or visit the service hall." in body["content"]
    assert "Opening hours (weekdays) 9:00 to 17:00" in body["content"]
    assert body["content"].index("Food safety") < body["content"].index("Opening hours")
    found = operator.get(_url(org_a), {"q": "12315"}).json()["results"]
    assert [d["id"] for d in found] == [body["id"]]
    assert found[0]["characters"] == len(body["content"])
    assert "content" not in found[0]  # lists leave the text out


def test_text_and_markdown_uploads_are_read_as_utf8(operator, org_a, media):
    markdown = uploaded(
        media, org_a, "价格争议.md", "\ufeff# 价格争议\n\n先与商家协商，再拨打12315。".encode()
    )
    text = uploaded(media, org_a, "hours.txt", "工作日 9:00–17:00".encode())
    made_md = operator.post(
        _url(org_a),
        {"source": str(markdown.pk), "language": "zh-CN", "tags": ["价格"]},
        format="json",
    )
    made_txt = operator.post(
        _url(org_a),
        {"source": str(text.pk), "language": "zh-CN", "title": "办事时间"},
        format="json",
    )
    assert made_md.status_code == 201, made_md.content
    assert (made_md.json()["format"], made_md.json()["title"]) == ("markdown", "价格争议")
    assert made_md.json()["content"] == "# 价格争议\n\n先与商家协商，再拨打12315。"
    assert made_txt.status_code == 201, made_txt.content
    assert (made_txt.json()["format"], made_txt.json()["title"]) == ("text", "办事时间")
    assert [d["id"] for d in operator.get(_url(org_a), {"q": "商家"}).json()["results"]] == [
        made_md.json()["id"]
    ]
    assert [d["id"] for d in operator.get(_url(org_a), {"tag": "价格"}).json()["results"]] == [
        made_md.json()["id"]
    ]


@pytest.mark.parametrize(
    ("filename", "data", "fields", "message"),
    [
        ("notes.txt", "营业执照".encode("gbk"), {}, "not UTF-8 text (line 1"),
        ("scan.pdf", make_pdf([]), {}, "No text was found in this PDF"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", {}, "This PDF could not be read"),
        ("notes.txt", b"plain words", {"format": "pdf"}, "This file is not a PDF"),
        ("a.pdf", make_pdf(["x"]), {"format": "markdown"}, "This file is a PDF"),
        ("empty.txt", b"   \n", {}, "The document has no text."),
    ],
)
def test_an_unreadable_file_gets_a_clear_error_and_nothing_is_stored(
    operator, org_a, media, filename, data, fields, message
):
    upload = uploaded(media, org_a, filename, data)
    before = database_rows()
    response = operator.post(
        _url(org_a), {"source": str(upload.pk), "language": "zh-CN", **fields}, format="json"
    )
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert list(response.json()["fields"]) in (["source"], ["content"])
    assert database_rows() == before


@pytest.mark.parametrize(
    ("upload_fields", "code"),
    [
        ({"purpose": "footage"}, "wrong_upload_purpose"),
        ({"status": "receiving"}, "upload_incomplete"),
    ],
)
def test_only_a_complete_document_upload_can_be_a_source(
    operator, org_a, media, upload_fields, code
):
    upload = uploaded(media, org_a, "a.txt", b"text", **upload_fields)
    before = database_rows()
    response = operator.post(
        _url(org_a), {"source": str(upload.pk), "language": "en"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert database_rows() == before


def test_a_missing_file_says_to_upload_again(operator, org_a, media):
    upload = UploadFactory(organization=org_a, purpose="document", filename="gone.txt")
    response = operator.post(
        _url(org_a), {"source": str(upload.pk), "language": "en"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "The uploaded file is gone: upload it again."


def test_bad_combinations_are_refused(operator, org_a, media):
    upload = uploaded(media, org_a, "a.txt", b"text")
    before = database_rows()
    both = operator.post(
        _url(org_a),
        {"source": str(upload.pk), "content": "typed", "language": "en"},
        format="json",
    )
    assert both.status_code == 400
    assert "not both" in both.json()["detail"]
    pdf_without_file = operator.post(
        _url(org_a),
        {"title": "T", "format": "pdf", "content": "x", "language": "en"},
        format="json",
    )
    assert pdf_without_file.status_code == 400
    assert "send its id as source" in pdf_without_file.json()["detail"]
    nothing = operator.post(_url(org_a), {"title": "T", "language": "en"}, format="json")
    assert nothing.status_code == 400
    assert nothing.json()["detail"] == "The document has no text."
    untitled = operator.post(_url(org_a), {"content": "x", "language": "en"}, format="json")
    assert untitled.json()["fields"]["title"][0]["message"] == "Give the document a title."
    assert database_rows() == before


def test_a_pdf_stays_a_pdf_and_the_file_cannot_be_swapped(operator, org_a, media):
    document = KnowledgeDocumentFactory(organization=org_a, format="pdf", content="text")
    other = uploaded(media, org_a, "b.txt", b"other")
    before = database_rows()
    to_text = operator.patch(_url(org_a, document.pk), {"format": "text"}, format="json")
    assert to_text.status_code == 400
    assert to_text.json()["code"] == "format_fixed"
    swap = operator.patch(_url(org_a, document.pk), {"source": str(other.pk)}, format="json")
    assert swap.status_code == 400
    assert "cannot be changed" in swap.json()["fields"]["source"][0]["message"]
    assert database_rows() == before


def test_the_list_filters_by_language_format_and_tag(operator, org_a):
    wanted = KnowledgeDocumentFactory(
        organization=org_a, language="zh-CN", format="markdown", tags=["Food"]
    )
    KnowledgeDocumentFactory(organization=org_a, language="en-US", format="markdown", tags=["food"])
    KnowledgeDocumentFactory(organization=org_a, language="zh-CN", format="text", tags=["food"])
    listed = operator.get(
        _url(org_a), {"language": "zh", "document_format": "markdown", "tag": "FOOD"}
    )
    assert [d["id"] for d in listed.json()["results"]] == [str(wanted.pk)]


def test_another_organizations_document_and_upload_are_not_found(operator, org_a, org_b, media):
    theirs = KnowledgeDocumentFactory(organization=org_b)
    their_upload = uploaded(media, org_b, "theirs.txt", b"their secret text")
    before = database_rows()
    for response in (
        operator.get(_url(org_a, theirs.pk)),
        operator.patch(_url(org_a, theirs.pk), {"title": "Mine"}, format="json"),
        operator.delete(_url(org_a, theirs.pk)),
    ):
        assert response.status_code == 404
        assert response.json() == {"code": "not_found", "detail": "Not found."}
    from_their_file = operator.post(
        _url(org_a), {"source": str(their_upload.pk), "language": "en"}, format="json"
    )
    assert from_their_file.status_code == 400
    assert from_their_file.json()["fields"]["source"][0]["message"] == (
        f"No such object: {their_upload.pk}."
    )
    assert database_rows() == before
    assert KnowledgeDocument.objects.for_organization(org_a).count() == 0
