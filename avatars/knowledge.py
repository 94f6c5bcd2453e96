"""The knowledge base: Q&A entries and documents that digital employees answer from.

Services (create, change, delete, CSV import) validate with the same rules the API shows, so the
seed, imports and the API cannot store what a person could not have typed in.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from avatars import languages, uploads
from avatars.models import (
    DocumentFormat,
    KnowledgeDocument,
    KnowledgeEntry,
    Upload,
    UploadPurpose,
    UploadStatus,
)
from tenants import audit
from tenants.audit import Actor
from tenants.errors import DomainError
from tenants.models import Organization

MAX_QUESTIONS = 20
MAX_QUESTION_CHARS = 500
MAX_ANSWER_CHARS = 5000
MAX_TAGS = 20
MAX_TAG_CHARS = 50
MAX_TITLE_CHARS = 300
MAX_DOCUMENT_CHARS = 1_000_000
MAX_IMPORT_ROWS = 10_000

ENTRY_FIELDS = ("questions", "answer", "language", "tags")
DOCUMENT_FIELDS = ("title", "format", "content", "language", "tags")


class InvalidValue(ValueError):
    """A value breaks a rule of the knowledge base; the message says what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- Field rules ---------------------------------------------------------------------------------


def clean_language(value: object) -> str:
    """A BCP-47 tag in its conventional case (zh-CN, yue-HK, en-US); see `avatars.languages`."""
    try:
        return languages.normalise(value)
    except languages.InvalidLanguageTag as invalid:
        raise InvalidValue(invalid.message) from None


def language_filter(tag: str) -> Q:
    """Rows in this language or a more specific one: `zh` finds zh, zh-CN and zh-Hant-TW."""
    return languages.within("language", clean_language(tag))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def clean_questions(value: object) -> list[str]:
    """1–20 distinct, non-empty question variants of at most 500 characters each."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidValue(_("Give the questions as a list of variants."))
    questions: list[str] = []
    for position, item in enumerate(value, start=1):
        if not isinstance(item, str):
            raise InvalidValue(_("Question %(n)d is not text.") % {"n": position})
        question = _one_line(item)
        if not question:
            raise InvalidValue(
                _("Question %(n)d is empty: write it or leave it out.") % {"n": position}
            )
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidValue(
                _("Question %(n)d has %(length)d characters; the limit is %(limit)d.")
                % {"n": position, "length": len(question), "limit": MAX_QUESTION_CHARS}
            )
        if question.casefold() not in {q.casefold() for q in questions}:
            questions.append(question)
    if not questions:
        raise InvalidValue(_("Give at least one question."))
    if len(questions) > MAX_QUESTIONS:
        raise InvalidValue(
            _("An entry has at most %(limit)d question variants; this one has %(count)d.")
            % {"limit": MAX_QUESTIONS, "count": len(questions)}
        )
    return questions


def clean_answer(value: object) -> str:
    answer = str(value or "").strip()
    if not answer:
        raise InvalidValue(_("Write the answer."))
    if len(answer) > MAX_ANSWER_CHARS:
        raise InvalidValue(
            _("The answer has %(length)d characters; the limit is %(limit)d.")
            % {"length": len(answer), "limit": MAX_ANSWER_CHARS}
        )
    return answer


def clean_tags(value: object) -> list[str]:
    """At most 20 short labels (50 characters, no `|` or `;`); duplicates are dropped."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidValue(_("Give the tags as a list of short labels."))
    tags: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise InvalidValue(_("Each tag is a short text label."))
        tag = _one_line(item)
        if not tag:
            continue
        if len(tag) > MAX_TAG_CHARS:
            raise InvalidValue(
                _("The tag “%(tag)s…” is longer than %(limit)d characters.")
                % {"tag": tag[:20], "limit": MAX_TAG_CHARS}
            )
        if "|" in tag or ";" in tag:
            raise InvalidValue(_("A tag may not contain “|” or “;”: “%(tag)s”.") % {"tag": tag})
        if tag.casefold() not in {t.casefold() for t in tags}:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidValue(
            _("At most %(limit)d tags; there are %(count)d.")
            % {"limit": MAX_TAGS, "count": len(tags)}
        )
    return tags


def clean_title(value: object) -> str:
    title = _one_line(str(value or ""))
    if not title:
        raise InvalidValue(_("Give the document a title."))
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidValue(
            _("The title has %(length)d characters; the limit is %(limit)d.")
            % {"length": len(title), "limit": MAX_TITLE_CHARS}
        )
    return title


def clean_content(value: object) -> str:
    content = str(value or "").replace("\r\n", "\n").strip()
    if not content:
        raise InvalidValue(_("The document has no text."))
    if len(content) > MAX_DOCUMENT_CHARS:
        raise InvalidValue(
            _("The text has %(length)d characters; the limit is %(limit)d. Split the document.")
            % {"length": len(content), "limit": MAX_DOCUMENT_CHARS}
        )
    return content


_ENTRY_RULES = {
    "questions": clean_questions,
    "answer": clean_answer,
    "language": clean_language,
    "tags": clean_tags,
}
_DOCUMENT_RULES = {
    "title": clean_title,
    "content": clean_content,
    "language": clean_language,
    "tags": clean_tags,
}


def _cleaned(rules: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    cleaned = {}
    for field, value in values.items():
        rule = rules.get(field)
        if rule is None:
            raise DomainError("read_only", _("This field cannot be changed."), field=field)
        try:
            cleaned[field] = rule(value)
        except InvalidValue as problem:
            raise DomainError("invalid", problem.message, field=field) from None
    return cleaned


def _question_key(question: str, language: str) -> tuple[str, str]:
    return (_one_line(question).casefold(), language)


# --- Entries -------------------------------------------------------------------------------------


@transaction.atomic
def create_entry(
    actor: Actor,
    organization: Organization,
    *,
    questions: Sequence[str],
    answer: str,
    language: str,
    tags: Sequence[str] = (),
) -> KnowledgeEntry:
    fields = _cleaned(
        _ENTRY_RULES,
        {"questions": questions, "answer": answer, "language": language, "tags": list(tags)},
    )
    entry = KnowledgeEntry.objects.create(organization=organization, **fields)
    audit.record(actor, organization, "knowledge_entry.create", entry, after=audit.snapshot(entry))
    return entry


@transaction.atomic
def update_entry(actor: Actor, entry: KnowledgeEntry, **changes: Any) -> KnowledgeEntry:
    before = audit.snapshot(entry)
    for field, value in _cleaned(_ENTRY_RULES, changes).items():
        setattr(entry, field, value)
    entry.save()
    audit.record_update(actor, entry.organization, "knowledge_entry.update", entry, before=before)
    return entry


@transaction.atomic
def delete_entry(actor: Actor, entry: KnowledgeEntry) -> None:
    """Delete an entry; employments it was attached to no longer answer from it."""
    audit.record(
        actor, entry.organization, "knowledge_entry.delete", entry, before=audit.snapshot(entry)
    )
    entry.delete()


def search_entries(entries: QuerySet[KnowledgeEntry], text: str) -> QuerySet[KnowledgeEntry]:
    """Entries whose questions or answer contain the text, ignoring case (Chinese included)."""
    needle = _one_line(text).casefold()
    return entries.filter(search_text__contains=needle) if needle else entries


def with_tag(rows: QuerySet[Any], tag: str) -> QuerySet[Any]:
    """Rows (entries or documents) carrying the tag, ignoring case."""
    return rows.filter(tag_index__contains=f"|{_one_line(tag).casefold()}|")


# --- Documents -----------------------------------------------------------------------------------


def _audit_picture(document: KnowledgeDocument) -> dict[str, Any]:
    # The text itself can be a megabyte: the log keeps its size and fingerprint instead.
    picture = audit.snapshot(document, exclude=("content",))
    picture["content_chars"] = len(document.content)
    picture["content_sha256"] = hashlib.sha256(document.content.encode()).hexdigest()
    return picture


def _read_upload(upload: Upload) -> bytes:
    if upload.purpose != UploadPurpose.DOCUMENT:
        raise DomainError(
            "wrong_upload_purpose",
            _(
                "This upload is not a document (it is for %(purpose)s). Upload the file again "
                "with the purpose “document”."
            )
            % {"purpose": upload.get_purpose_display().lower()},
            field="source",
        )
    if upload.status != UploadStatus.COMPLETE:
        raise DomainError(
            "upload_incomplete",
            _("This upload is not complete yet: finish sending the file, then try again."),
            field="source",
        )
    try:
        return uploads.path_of(upload).read_bytes()
    except FileNotFoundError:
        raise DomainError(
            "upload_missing", _("The uploaded file is gone: upload it again."), field="source"
        ) from None


def _decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InvalidValue(
            _(
                "The file is not UTF-8 text (line %(line)d, byte %(byte)d). Save it as UTF-8 and "
                "upload it again."
            )
            % {"line": line, "byte": error.start + 1}
        ) from None


def extract_pdf_text(data: bytes) -> str:
    """The text of a PDF's pages, page after page; InvalidValue when there is none to read."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidValue(
                _("This PDF is password-protected. Remove the password and upload it again.")
            )
        pages: list[str] = []
        length = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            pages.append(text.strip())
            length += len(text)
            if length > MAX_DOCUMENT_CHARS:
                break
    except DependencyError:
        raise InvalidValue(
            _(
                "This PDF is encrypted in a way that cannot be read here. Save it without "
                "encryption and upload it again."
            )
        ) from None
    # A broken file makes pypdf raise its own errors or plain Python ones from deep inside.
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise InvalidValue(
            _("This PDF could not be read (%(error)s). Check that the file is a whole, valid PDF.")
            % {"error": str(error)[:120] or type(error).__name__}
        ) from None
    content = "\n\n".join(text for text in pages if text)
    if not content.strip():
        raise InvalidValue(
            _(
                "No text was found in this PDF: it may hold only scanned images. Run text "
                "recognition (OCR) on it first, or paste the text as a text document."
            )
        )
    return content


def _format_of(upload: Upload, data: bytes, wanted: str) -> str:
    """The document format of the file; the one asked for must agree with what the file is."""
    is_pdf = data[:1024].lstrip().startswith(b"%PDF-")
    if wanted == DocumentFormat.PDF and not is_pdf:
        raise InvalidValue(_("This file is not a PDF: it lacks the PDF signature at its start."))
    if wanted in (DocumentFormat.TEXT, DocumentFormat.MARKDOWN) and is_pdf:
        raise InvalidValue(_("This file is a PDF: create the document with the format “pdf”."))
    if wanted:
        return wanted
    if is_pdf:
        return DocumentFormat.PDF
    if upload.filename.lower().endswith((".md", ".markdown")) or "markdown" in upload.content_type:
        return DocumentFormat.MARKDOWN
    return DocumentFormat.TEXT


def document_text(upload: Upload, document_format: str = "") -> tuple[str, str]:
    """(format, text) of an uploaded document file: UTF-8 text or Markdown, or a PDF's text."""
    data = _read_upload(upload)
    try:
        document_format = _format_of(upload, data, document_format)
        if document_format == DocumentFormat.PDF:
            text = extract_pdf_text(data)
        else:
            text = _decode_text(data)
    except InvalidValue as problem:
        raise DomainError("unreadable_document", problem.message, field="source") from None
    return document_format, text


@transaction.atomic
def create_document(
    actor: Actor,
    organization: Organization,
    *,
    language: str,
    title: str = "",
    document_format: str = "",
    content: str = "",
    tags: Sequence[str] = (),
    source: Upload | None = None,
) -> KnowledgeDocument:
    """A document from text sent as `content`, or from an uploaded file (`source`)."""
    if source is not None:
        if source.organization_id != organization.pk:
            raise DomainError("not_found", _("No such upload."), field="source")
        if content:
            raise DomainError(
                "content_and_source",
                _("Send either the text (content) or an uploaded file (source), not both."),
                field="content",
            )
        document_format, content = document_text(source, document_format)
        title = title or Path(source.filename).stem
    elif document_format == DocumentFormat.PDF:
        raise DomainError(
            "pdf_needs_file",
            _(
                "A PDF document is made from the file: upload it (purpose “document”) and send its "
                "id as source."
            ),
            field="source",
        )
    fields = _cleaned(
        _DOCUMENT_RULES,
        {"title": title, "content": content, "language": language, "tags": list(tags)},
    )
    document = KnowledgeDocument.objects.create(
        organization=organization,
        format=document_format or DocumentFormat.TEXT,
        source=source,
        **fields,
    )
    audit.record(
        actor, organization, "knowledge_document.create", document, after=_audit_picture(document)
    )
    return document


@transaction.atomic
def update_document(actor: Actor, document: KnowledgeDocument, **changes: Any) -> KnowledgeDocument:
    before = _audit_picture(document)
    document_format = changes.pop("format", None)
    if document_format is not None and document_format != document.format:
        if DocumentFormat.PDF in (document_format, document.format):
            raise DomainError(
                "format_fixed",
                _(
                    "A PDF document stays a PDF, and a text one cannot become a PDF; create a new "
                    "document instead."
                ),
                field="format",
            )
        document.format = document_format
    for field, value in _cleaned(_DOCUMENT_RULES, changes).items():
        setattr(document, field, value)
    document.save()
    after = _audit_picture(document)
    if after != before:
        audit.record(
            actor,
            document.organization,
            "knowledge_document.update",
            document,
            before=before,
            after=after,
        )
    return document


@transaction.atomic
def delete_document(actor: Actor, document: KnowledgeDocument) -> None:
    audit.record(
        actor,
        document.organization,
        "knowledge_document.delete",
        document,
        before=_audit_picture(document),
    )
    document.delete()


def search_documents(
    documents: QuerySet[KnowledgeDocument], text: str
) -> QuerySet[KnowledgeDocument]:
    needle = _one_line(text)
    if not needle:
        return documents
    return documents.filter(Q(title__icontains=needle) | Q(content__icontains=needle))


# --- CSV import ----------------------------------------------------------------------------------

IMPORT_COLUMNS = ("question", "answer", "language", "tags")
_REQUIRED_COLUMNS = ("question", "answer", "language")
# Spreadsheets made in Chinese often name the columns in Chinese.
_COLUMN_ALIASES = {"问题": "question", "答案": "answer", "语言": "language", "标签": "tags"}
_VARIANT_SEPARATOR = re.compile(r"[|\n]")


@dataclasses.dataclass
class ImportReport:
    """What an import did (commit) or would do (validate), row by row.

    Rows are numbered as a spreadsheet shows them: the header is row 1.
    """

    committed: bool = False
    rows: int = 0
    created: int = 0
    skipped: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def error(self, row: int | None, column: str | None, message: str) -> None:
        self.errors.append({"row": row, "column": column, "message": message})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class _Row:
    number: int
    questions: list[str]
    answer: str
    language: str
    tags: list[str]


def _header(cells: list[str], report: ImportReport) -> dict[str, int] | None:
    columns: dict[str, int] = {}
    expected = ",".join(IMPORT_COLUMNS)
    for index, cell in enumerate(cells):
        name = cell.strip().lower()
        name = _COLUMN_ALIASES.get(name, name)
        if name not in IMPORT_COLUMNS:
            report.error(
                1,
                cell.strip() or None,
                _("Unknown column “%(name)s”. The header is: %(expected)s (tags optional).")
                % {"name": cell.strip(), "expected": expected},
            )
        elif name in columns:
            report.error(1, name, _("The column “%(name)s” appears twice.") % {"name": name})
        else:
            columns[name] = index
    for name in _REQUIRED_COLUMNS:
        if name not in columns:
            report.error(
                1,
                name,
                _(
                    "The header has no “%(name)s” column. The header is: %(expected)s "
                    "(tags optional)."
                )
                % {"name": name, "expected": expected},
            )
    return None if report.errors else columns


def _parse_row(
    number: int, cells: list[str], columns: dict[str, int], report: ImportReport
) -> _Row | None:
    if len(cells) > len(columns):
        report.error(
            number,
            None,
            _(
                "This row has %(cells)d cells but the header has %(columns)d columns; put cells "
                "that contain commas in double quotes."
            )
            % {"cells": len(cells), "columns": len(columns)},
        )
        return None

    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index] if index is not None and index < len(cells) else ""

    values: dict[str, Any] = {}
    raw = {
        "question": [part for part in _VARIANT_SEPARATOR.split(cell("question")) if part.strip()],
        "answer": cell("answer"),
        "language": cell("language"),
        "tags": cell("tags").split(";"),
    }
    rules = {
        "question": clean_questions,
        "answer": clean_answer,
        "language": clean_language,
        "tags": clean_tags,
    }
    ok = True
    for column, rule in rules.items():
        try:
            values[column] = rule(raw[column])
        except InvalidValue as problem:
            report.error(number, column, problem.message)
            ok = False
    if not ok:
        return None
    return _Row(number, values["question"], values["answer"], values["language"], values["tags"])


def _read_csv(data: bytes, report: ImportReport) -> list[_Row]:
    try:
        text = _decode_text(data)
    except InvalidValue as problem:
        report.error(None, None, problem.message)
        return []
    records = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[_Row] = []
    columns: dict[str, int] | None = None
    number = 0
    try:
        for number, cells in enumerate(records, start=1):
            if columns is None:
                columns = _header(cells, report)
                if columns is None:
                    return []
                continue
            if not any(cell.strip() for cell in cells):
                continue
            report.rows += 1
            if report.rows > MAX_IMPORT_ROWS:
                report.error(
                    number,
                    None,
                    _("A file may hold at most %(limit)d rows: split it and import the parts.")
                    % {"limit": MAX_IMPORT_ROWS},
                )
                return []
            row = _parse_row(number, cells, columns, report)
            if row is not None:
                rows.append(row)
    except csv.Error as error:
        report.error(
            number + 1,
            None,
            _("The CSV cannot be read here (%(error)s); check the quotes in this row.")
            % {"error": str(error)},
        )
        return []
    if columns is None:
        report.error(
            1,
            None,
            _("The file is empty. Its first row is the header: %(expected)s.")
            % {"expected": ",".join(IMPORT_COLUMNS)},
        )
    elif report.rows == 0:
        report.error(2, None, _("The file has a header but no rows to import."))
    return rows


def import_entries_csv(
    actor: Actor, organization: Organization, data: bytes, *, commit: bool
) -> ImportReport:
    """Import Q&A entries from CSV: all rows or none.

    Columns: question (variants separated by `|` or a line break), answer, language, tags
    (separated by `;`). A row whose first question already exists in that language — stored
    before, or earlier in the file — is skipped, so importing the same file twice adds nothing.
    With `commit=False` nothing is written; the report says what a commit would do.
    """
    report = ImportReport()
    rows = _read_csv(data, report)
    if report.errors:
        return report
    if not commit:
        _plan(organization, rows, report)
        return report
    with transaction.atomic():
        # One import at a time per organization, so two runs of one file cannot both add it.
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
        new_rows = _plan(organization, rows, report)
        for row in new_rows:
            entry = KnowledgeEntry.objects.create(
                organization=organization,
                questions=row.questions,
                answer=row.answer,
                language=row.language,
                tags=row.tags,
            )
            audit.record(
                actor,
                organization,
                "knowledge_entry.create",
                entry,
                after={**audit.snapshot(entry), "imported_from_row": row.number},
            )
        audit.record(
            actor,
            organization,
            "knowledge_entry.import",
            organization,
            after={
                "rows": report.rows,
                "created": report.created,
                "skipped": len(report.skipped),
                "sha256": hashlib.sha256(data).hexdigest(),
            },
        )
        report.committed = True
    return report


def _plan(organization: Organization, rows: Iterable[_Row], report: ImportReport) -> list[_Row]:
    """The rows to create; the others are reported as skipped."""
    existing = KnowledgeEntry.objects.for_organization(organization).values_list(
        "questions", "language"
    )
    seen = {_question_key(questions[0], language) for questions, language in existing if questions}
    first_rows: dict[tuple[str, str], int] = {}
    new_rows = []
    for row in rows:
        key = _question_key(row.questions[0], row.language)
        if key in seen:
            earlier = first_rows.get(key)
            report.skipped.append(
                {
                    "row": row.number,
                    "question": row.questions[0],
                    "message": (
                        _("Same first question and language as row %(row)d.") % {"row": earlier}
                        if earlier
                        else _("An entry with this first question and language already exists.")
                    ),
                }
            )
            continue
        seen.add(key)
        first_rows[key] = row.number
        new_rows.append(row)
    report.created = len(new_rows)
    return new_rows
