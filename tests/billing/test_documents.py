"""Statement documents: a long statement's PDF runs onto more pages and reads back whole; text
mixing Chinese and Latin is set in the right fonts; a hire's name cannot inject markup into the
HTML nor a formula into the CSV; late lines say which month they bill; the CSV's rows add up.

Real: documents.py, Django's templates, pypdf reading the PDF back, the database. Simulated:
nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zlib
from decimal import Decimal

import pytest
from pypdf import PdfReader

from ironbowl.billing import documents, statements
from tests.billing.conftest import EPOCH, hire, local, subscribe, usage

pytestmark = pytest.mark.django_db

MARCH, APRIL = dt.date(2024, 3, 1), dt.date(2024, 4, 1)
IN_MAY = dt.datetime(2024, 5, 20, tzinfo=dt.UTC)


def test_a_long_statement_runs_onto_more_pages_and_reads_back(shanghai):
    for number in range(60):
        employment = hire(shanghai, name=f"讲解员{number:02d}")
        usage(
            shanghai,
            "stream_minutes",
            60 * (number + 1),
            local("Asia/Shanghai", 2024, 3, 4),
            employment,
        )
        usage(shanghai, "interactions", 1000, local("Asia/Shanghai", 2024, 3, 4), employment)
    statement = statements.refresh(shanghai, MARCH, now=IN_MAY)

    reader = PdfReader(io.BytesIO(documents.render_pdf(statement, shanghai, "en")))

    assert len(reader.pages) > 1
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert all(f"讲解员{number:02d}" in text for number in range(60))
    assert f"CNY {statement.total:,.2f}" in text
    assert reader.metadata.title.endswith("Statement 2024-03")


def test_chinese_is_set_in_the_cjk_font_and_latin_in_courier():
    pdf = documents.PdfWriter()
    pdf.text(40, "小艺 - anchor (live)")

    content = pdf.output("t")
    stream = zlib.decompress(content.split(b"stream\n")[1].split(b"\nendstream")[0])

    ops = stream.decode().splitlines()
    assert ops[0].startswith("BT /F3 8 Tf 40.00")
    assert "<5C0F827A> Tj" in ops[0]  # 小艺 in UTF-16BE, for UniGB-UTF16-H
    assert ops[1].startswith("BT /F1 8 Tf 56.00")  # two CJK glyphs of 8 points later
    assert r"( - anchor \(live\)) Tj" in ops[1]
    assert b"/BaseFont /STSong-Light /Encoding /UniGB-UTF16-H" in content
    assert documents.text_width("小艺ab", 10) == 2 * 10 + 2 * 6


def test_a_name_cannot_inject_markup_into_the_html(shanghai):
    employment = hire(shanghai, name="<script>alert(1)</script>")
    usage(shanghai, "stream_minutes", 60, local("Asia/Shanghai", 2024, 3, 4), employment)
    statement = statements.refresh(shanghai, MARCH, now=IN_MAY)

    page = documents.render_html(statement, shanghai, "en")

    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_late_lines_say_which_month_they_bill(shanghai):
    employment = hire(shanghai, name="小艺")
    statements.close(shanghai, MARCH, now=IN_MAY)
    usage(shanghai, "stream_minutes", 60 * 400, local("Asia/Shanghai", 2024, 3, 30), employment)
    april = statements.refresh(shanghai, APRIL, now=IN_MAY)

    page = documents.render_html(april, shanghai, "en")
    rows = list(
        csv.DictReader(io.StringIO(documents.render_csv(april, shanghai).decode("utf-8-sig")))
    )

    assert "Stream hours (late usage of 2024-03)" in page
    (late,) = [row for row in rows if row["late_period"]]
    assert (late["late_period"], late["kind"], late["amount"]) == (
        "2024-03",
        "stream_hours",
        "1800.00",
    )
    lines = [row for row in rows if row["employment_id"] or row["description"]]
    assert sum(Decimal(row["amount"]) for row in lines) == april.subtotal
    assert re.fullmatch(r"\d+\.\d{2}", rows[-1]["amount"])


def test_a_name_that_is_a_formula_is_written_as_text_in_the_csv(shanghai):
    """An avatar's name is chosen by its vendor: a spreadsheet must not run it. Amounts stay
    numbers, a negative discount included."""
    subscribe(shanghai, [("standard", EPOCH)], discount="10")
    employment = hire(shanghai, name='=HYPERLINK("http://evil.example","pay")')
    usage(shanghai, "stream_minutes", 60 * 400, local("Asia/Shanghai", 2024, 3, 4), employment)
    statement = statements.refresh(shanghai, MARCH, now=IN_MAY)

    rows = list(
        csv.DictReader(io.StringIO(documents.render_csv(statement, shanghai).decode("utf-8-sig")))
    )

    (line,) = [row for row in rows if row["kind"] == "stream_hours"]
    assert line["employment"] == '\'=HYPERLINK("http://evil.example","pay") - ' + str(
        employment.position.title
    )
    assert line["description"].startswith("'=HYPERLINK(")
    assert not any(
        cell.startswith(("=", "+", "@")) for row in rows for cell in row.values() if cell
    )
    (discount,) = [row for row in rows if row["kind"] == "discount" and row["description"]]
    assert Decimal(discount["amount"]) < 0  # a number, not "'-…"
    assert Decimal(rows[-3]["amount"]) == -statement.discount  # the discount total row
