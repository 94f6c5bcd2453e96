"""A statement as people read it: payslips grouped by digital employee, as HTML (printable), PDF
and CSV.

The PDF is written here, by hand: text lines on A4 pages, no layout engine. Latin text is set in
Courier (a PDF standard font); Chinese text in STSong-Light, one of the predefined CJK fonts of
the PDF specification (Adobe-GB1 character collection, UniGB-UTF16-H encoding), which is named
and not embedded — no font file ships with the platform; PDF readers supply the glyphs (Acrobat,
pdf.js and browsers do; poppler needs its CJK data). The CSV is UTF-8 with a byte order mark, so
spreadsheet programs read the Chinese names correctly, written by analytics' CSV renderer: a text
cell that a spreadsheet would run as a formula (an avatar's name is chosen by its vendor) is
prefixed with `'`.
"""

from __future__ import annotations

import dataclasses
import io
import uuid
import zlib
import zoneinfo
from decimal import Decimal
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ironbowl.analytics.api.kpis import CsvRenderer
from ironbowl.billing.models import LineKind, Statement, StatementLine
from ironbowl.billing.rating import employment_names
from tenants.models import Organization

UNITS = {
    "seat-month": gettext_lazy("seat-months"),
    "hour": gettext_lazy("hours"),
    "1,000 interactions": gettext_lazy("thousand interactions"),
    "GPU hour": gettext_lazy("GPU hours"),
    "minute": gettext_lazy("minutes"),
    "month": gettext_lazy("month"),
    "%": "%",
}


@dataclasses.dataclass(frozen=True)
class Payslip:
    """One digital employee's lines of a statement (or the organization's own lines)."""

    employment_id: uuid.UUID | None
    name: str
    lines: list[StatementLine]

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))


@dataclasses.dataclass(frozen=True)
class StatementDocument:
    statement: Statement
    organization: Organization
    payslips: list[Payslip]
    organization_lines: list[StatementLine]


def document_of(statement: Statement, organization: Organization) -> StatementDocument:
    """The statement's lines grouped into payslips, in line order, with the hires' names (two
    queries: the lines, and the names)."""
    lines = list(
        StatementLine.objects.for_organization(organization)
        .filter(statement=statement)
        .order_by("position", "id")
    )
    hires = {line.employment_id for line in lines if line.employment_id is not None}
    english = translation.get_language() == "en"
    names = employment_names(organization, hires, english=english) if hires else {}
    grouped: dict[uuid.UUID, list[StatementLine]] = {}
    own: list[StatementLine] = []
    for line in lines:
        if line.employment_id is None:
            own.append(line)
        else:
            grouped.setdefault(line.employment_id, []).append(line)
    payslips = [
        Payslip(pk, names.get(pk, (str(pk)[:8], ""))[0], found) for pk, found in grouped.items()
    ]
    return StatementDocument(statement, organization, payslips, own)


def unit_label(unit: str) -> str:
    return str(UNITS.get(unit, unit))


def line_label(line: StatementLine) -> str:
    """What the line is, in the active language."""
    label = str(LineKind(line.kind).label)
    if line.late_period:
        label += " " + _("(late usage of %(month)s)") % {"month": f"{line.late_period:%Y-%m}"}
    return label


def _number(value: Decimal) -> str:
    """A quantity without trailing zeros (at least two decimals for money-like values)."""
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _local(organization: Organization, value: Any) -> str:
    if value is None:
        return ""
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    return str(timezone.localtime(value, zone).strftime("%Y-%m-%d %H:%M"))


# --- HTML ---------------------------------------------------------------------------------------


def render_html(statement: Statement, organization: Organization, language: str) -> str:
    with translation.override(language):
        document = document_of(statement, organization)
        rows = [
            {
                "name": payslip.name,
                "lines": [_line_row(line) for line in payslip.lines],
                "total": _money(payslip.total),
            }
            for payslip in document.payslips
        ]
        context = {
            "language": language,
            "organization": organization,
            "statement": statement,
            "month": f"{statement.period:%Y-%m}",
            "payslips": rows,
            "organization_lines": [_line_row(line) for line in document.organization_lines],
            "totals": {
                "subtotal": _money(statement.subtotal),
                "discount": _money(-statement.discount),
                "tax": _money(statement.tax),
                "total": _money(statement.total),
            },
            "rated_at": _local(organization, statement.rated_at),
            "closed_at": _local(organization, statement.closed_at),
        }
        return render_to_string("billing/statement.html", context)


def _line_row(line: StatementLine) -> dict[str, str]:
    return {
        "label": line_label(line),
        "description": line.description,
        "used": _number(line.used),
        "included": _number(line.included),
        "quantity": _number(line.quantity),
        "unit": unit_label(line.unit),
        "unit_price": _number(line.unit_price),
        "amount": _money(line.amount),
        "late": "late" if line.late_period else "",
    }


# --- CSV ----------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "period",
    "employment_id",
    "employment",
    "kind",
    "description",
    "late_period",
    "used",
    "included",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "currency",
)


def render_csv(statement: Statement, organization: Organization) -> bytes:
    """Every line, then the subtotal, discount, tax and total rows; UTF-8 with a BOM."""
    with translation.override(organization.locale):
        document = document_of(statement, organization)
    rows: list[list[Any]] = [list(CSV_COLUMNS)]
    period = f"{statement.period:%Y-%m}"
    groups = [(p.employment_id, p.name, p.lines) for p in document.payslips]
    groups.append((None, "", document.organization_lines))
    for employment_id, name, lines in groups:
        for line in lines:
            rows.append(
                [
                    period,
                    employment_id,
                    name,
                    line.kind,
                    line.description,
                    f"{line.late_period:%Y-%m}" if line.late_period else "",
                    line.used,
                    line.included,
                    line.quantity,
                    line.unit,
                    line.unit_price,
                    line.amount,
                    statement.currency,
                ]
            )
    for kind, amount in (
        ("subtotal", statement.subtotal),
        ("discount", -statement.discount),
        ("tax", statement.tax),
        ("total", statement.total),
    ):
        row: dict[str, Any] = dict.fromkeys(CSV_COLUMNS, "")
        # Amounts stay numbers: a negative one is not a formula to escape.
        row.update(period=period, kind=kind, amount=amount, currency=statement.currency)
        rows.append([row[column] for column in CSV_COLUMNS])
    return CsvRenderer().render(rows)


# --- PDF ----------------------------------------------------------------------------------------

PAGE_WIDTH, PAGE_HEIGHT = 595.28, 841.89  # A4 in points
MARGIN = 40.0
LATIN_WIDTH = 0.6  # Courier: every glyph 600/1000 of the size
CJK_WIDTH = 1.0  # STSong-Light's default width


def _runs(text: str) -> list[tuple[bool, str]]:
    """The text cut into runs of printable ASCII (Courier) and of anything else (CJK font)."""
    runs: list[tuple[bool, str]] = []
    for char in text:
        latin = " " <= char <= "~"
        if runs and runs[-1][0] == latin:
            runs[-1] = (latin, runs[-1][1] + char)
        else:
            runs.append((latin, char))
    return runs


def text_width(text: str, size: float) -> float:
    return sum(
        len(run) * size * (LATIN_WIDTH if latin else CJK_WIDTH) for latin, run in _runs(text)
    )


def _fit(text: str, size: float, width: float) -> str:
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "...", size) > width:
        text = text[:-1]
    return text + "..."


class PdfWriter:
    """Text on A4 pages: `text(x, y, …)` from the top-left, new pages as the cursor runs out."""

    def __init__(self) -> None:
        self.pages: list[list[bytes]] = []
        self.y = 0.0
        self.new_page()

    def new_page(self) -> None:
        self.pages.append([])
        self.y = MARGIN

    def need(self, height: float) -> None:
        if self.y + height > PAGE_HEIGHT - MARGIN:
            self.new_page()

    def text(
        self, x: float, text: str, *, size: float = 8.0, bold: bool = False, right: bool = False
    ) -> None:
        """Write `text` at x on the current line (`right`: x is where it ends)."""
        if right:
            x -= text_width(text, size)
        baseline = PAGE_HEIGHT - self.y - size
        ops = self.pages[-1]
        for latin, run in _runs(text):
            if latin:
                escaped = run.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
                font, shown = ("F2" if bold else "F1"), f"({escaped})"
            else:
                font, shown = "F3", "<" + run.encode("utf-16-be").hex().upper() + ">"
            ops.append(f"BT /{font} {size:g} Tf {x:.2f} {baseline:.2f} Td {shown} Tj ET".encode())
            x += text_width(run, size)

    def rule(self) -> None:
        y = PAGE_HEIGHT - self.y - 2
        self.pages[-1].append(
            f"0.5 w {MARGIN:.2f} {y:.2f} m {PAGE_WIDTH - MARGIN:.2f} {y:.2f} l S".encode()
        )

    def down(self, height: float) -> None:
        self.y += height

    def output(self, title: str) -> bytes:
        objects: list[bytes] = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"",  # the page tree, once the pages are numbered
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier-Bold /Encoding /WinAnsiEncoding >>",
            b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UTF16-H "
            b"/DescendantFonts [6 0 R] >>",
            b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo "
            b"<< /Registry (Adobe) /Ordering (GB1) /Supplement 4 >> /FontDescriptor 7 0 R "
            b"/DW 1000 /W [1 95 500] >>",
            b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 "
            b"/FontBBox [-25 -254 1000 880] /ItalicAngle 0 /Ascent 880 /Descent -120 "
            b"/CapHeight 880 /StemV 93 >>",
            b"<< /Producer (Ironbowl) /Title <"
            + ("\ufeff" + title).encode("utf-16-be").hex().upper().encode()
            + b"> >>",
        ]
        kids = []
        for ops in self.pages:
            stream = zlib.compress(b"\n".join(ops))
            objects.append(
                b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream)
                + stream
                + b"\nendstream"
            )
            content = len(objects)
            objects.append(
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] "
                b"/Resources << /Font << /F1 3 0 R /F2 4 0 R /F3 5 0 R >> >> "
                b"/Contents %d 0 R >>" % (PAGE_WIDTH, PAGE_HEIGHT, content)
            )
            kids.append(len(objects))
        objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
            b" ".join(b"%d 0 R" % kid for kid in kids),
            len(kids),
        )
        out = io.BytesIO()
        out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(out.tell())
            out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
        for offset in offsets:
            out.write(b"%010d 00000 n \n" % offset)
        out.write(
            b"trailer\n<< /Size %d /Root 1 0 R /Info 8 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, xref)
        )
        return out.getvalue()


# Columns: the label from the left margin, then numbers whose right edges are here.
COLUMNS = (("used", 300.0), ("included", 360.0), ("quantity", 420.0), ("unit_price", 485.0))
AMOUNT_RIGHT = PAGE_WIDTH - MARGIN
LABEL_WIDTH = 200.0
LINE = 11.0


def render_pdf(statement: Statement, organization: Organization, language: str) -> bytes:
    with translation.override(language):
        document = document_of(statement, organization)
        pdf = PdfWriter()
        month = f"{statement.period:%Y-%m}"
        title = _("Statement %(month)s") % {"month": month}
        pdf.text(MARGIN, f"{organization.name} - {title}", size=14, bold=True)
        pdf.down(22)
        status = str(statement.get_status_display())
        pdf.text(
            MARGIN,
            _("Status: %(status)s. Currency: %(currency)s. Time zone: %(zone)s.")
            % {"status": status, "currency": statement.currency, "zone": organization.time_zone},
        )
        pdf.down(LINE)
        when = _local(organization, statement.closed_at or statement.rated_at)
        if when:
            pdf.text(MARGIN, _("Rated: %(when)s") % {"when": when})
            pdf.down(LINE)
        pdf.down(LINE)
        headings = {
            "used": _("Used"),
            "included": _("Included"),
            "quantity": _("Billed"),
            "unit_price": _("Unit price"),
        }

        def table_head() -> None:
            for key, right in COLUMNS:
                pdf.text(right, headings[key], bold=True, right=True)
            pdf.text(AMOUNT_RIGHT, _("Amount"), bold=True, right=True)
            pdf.down(LINE)

        def line_row(line: StatementLine) -> None:
            pdf.need(LINE)
            row = _line_row(line)
            pdf.text(MARGIN + 8, _fit(f"{row['label']} ({row['unit']})", 8, LABEL_WIDTH))
            for key, right in COLUMNS:
                pdf.text(right, row[key], right=True)
            pdf.text(AMOUNT_RIGHT, row["amount"], right=True)
            pdf.down(LINE)

        sections = [(p.name, p.lines, p.total) for p in document.payslips]
        if document.organization_lines:
            own = document.organization_lines
            total = sum((line.amount for line in own), Decimal(0))
            sections.append((_("Organization"), own, total))
        for name, lines, total in sections:
            pdf.need(LINE * 4)
            pdf.text(MARGIN, _fit(name, 10, PAGE_WIDTH - 2 * MARGIN), size=10, bold=True)
            pdf.down(LINE + 3)
            table_head()
            for line in lines:
                line_row(line)
            pdf.text(AMOUNT_RIGHT - 80, _("Payslip total"), right=True)
            pdf.text(AMOUNT_RIGHT, _money(total), bold=True, right=True)
            pdf.down(LINE)
            pdf.rule()
            pdf.down(LINE)
        pdf.need(LINE * 5)
        for label, amount, bold in (
            (_("Subtotal"), statement.subtotal, False),
            (_("Discount"), -statement.discount, False),
            (_("Tax"), statement.tax, False),
            (_("Total"), statement.total, True),
        ):
            pdf.text(AMOUNT_RIGHT - 100, label, bold=bold, right=True)
            pdf.text(AMOUNT_RIGHT, f"{statement.currency} {_money(amount)}", bold=bold, right=True)
            pdf.down(LINE)
        return pdf.output(f"{organization.name} {title}")
