"""The statements API: the list (newest month first), one statement with a payslip per digital
employee (names read in one query, however many hires), and its HTML, PDF and CSV documents;
billing.view to read; another organization gets 404 for every one of them.

Real: the API (session login), rating and statements, the database, pypdf reading the PDF.
Simulated: nothing; the ledger rows are written directly.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pypdf import PdfReader

from ironbowl.billing import seats, statements
from tenants.roles import Role
from tests.billing.conftest import EPOCH, hire, local, subscribe, usage

pytestmark = pytest.mark.django_db

MARCH, APRIL = dt.date(2024, 3, 1), dt.date(2024, 4, 1)
IN_MAY = dt.datetime(2024, 5, 20, tzinfo=dt.UTC)


def base(organization):
    return f"/api/v1/orgs/{organization.slug}/billing/statements/"


def world(organization, hires=2):
    subscribe(organization, [("standard", EPOCH)])
    employed = [
        hire(organization, name=f"导购{number}", seats=number + 1) for number in range(hires)
    ]
    seats.record_seat_days(organization, dt.date(2024, 3, 1), dt.date(2024, 4, 30))
    for employment in employed:
        usage(
            organization, "stream_minutes", 12_000, local("Asia/Shanghai", 2024, 3, 9), employment
        )
    usage(organization, "interactions", 250_000, local("Asia/Shanghai", 2024, 3, 9))
    march = statements.close(organization, MARCH, now=IN_MAY)
    april = statements.refresh(organization, APRIL, now=IN_MAY)
    return employed, march, april


def test_the_list_is_newest_first_with_exact_totals(org_a, api_a):
    _hires, march, _april = world(org_a)

    response = api_a.get(base(org_a))

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["period"] for row in rows] == ["2024-04-01", "2024-03-01"]
    assert rows[1]["status"] == "closed" and rows[0]["status"] == "open"
    assert rows[1]["total"] == f"{march.total:.2f}"
    assert Decimal(rows[1]["subtotal"]) - Decimal(rows[1]["discount"]) + Decimal(
        rows[1]["tax"]
    ) == Decimal(rows[1]["total"])


def test_a_statement_has_a_payslip_per_hire_and_the_organizations_lines(org_a, api_a):
    employed, march, _april = world(org_a)

    response = api_a.get(f"{base(org_a)}{march.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert [slip["name"].split(" - ")[0] for slip in body["payslips"]] == ["导购0", "导购1"]
    assert {slip["employment"] for slip in body["payslips"]} == {str(e.pk) for e in employed}
    for slip in body["payslips"]:
        assert [line["kind"] for line in slip["lines"]] == ["seats", "stream_hours"]
        assert Decimal(slip["total"]) == sum(Decimal(line["amount"]) for line in slip["lines"])
    assert [line["kind"] for line in body["organization_lines"]] == ["interactions", "platform_fee"]
    every_line = [line for slip in body["payslips"] for line in slip["lines"]]
    every_line += body["organization_lines"]
    assert sum(Decimal(line["amount"]) for line in every_line) == Decimal(body["subtotal"])


def test_the_names_of_the_hires_are_read_in_one_query(org_a, org_b, api_a, api_b):
    _few, few, _april = world(org_a, hires=1)
    _many, many, _april_b = world(org_b, hires=5)
    api_a.get(f"{base(org_a)}{few.pk}/")  # warm: sessions, throttles
    api_b.get(f"{base(org_b)}{many.pk}/")

    with CaptureQueriesContext(connection) as one:
        api_a.get(f"{base(org_a)}{few.pk}/")
    with CaptureQueriesContext(connection) as five:
        api_b.get(f"{base(org_b)}{many.pk}/")

    assert len(one.captured_queries) == len(five.captured_queries)


def test_the_html_page_is_printable_in_the_organizations_zone_and_language(org_a, api_a):
    _hires, march, _april = world(org_a)

    english = api_a.get(f"{base(org_a)}{march.pk}/html/")
    chinese = api_a.get(f"{base(org_a)}{march.pk}/html/?language=zh-hans")
    unknown = api_a.get(f"{base(org_a)}{march.pk}/html/?language=fr")

    assert english.status_code == chinese.status_code == 200
    assert english["Content-Type"] == "text/html; charset=utf-8"
    page = english.content.decode()
    assert '<html lang="en">' in page and "@media print" in page
    assert "导购0" in page and f"{march.total:,.2f}" in page
    assert "2024-05-20 08:00" in page  # closed at 00:00 UTC, shown in Shanghai time
    assert '<html lang="zh-hans">' in chinese.content.decode()
    assert chinese["Content-Language"] == "zh-hans"
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_language"


def test_the_pdf_reads_back_with_the_names_and_the_total(org_a, api_a):
    _hires, march, _april = world(org_a)

    response = api_a.get(f"{base(org_a)}{march.pk}/pdf/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="statement-2024-03.pdf"'
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert "导购0" in text and "导购1" in text
    assert f"CNY {march.total:,.2f}" in text


def test_the_csv_has_a_bom_every_line_and_the_totals(org_a, api_a):
    _hires, march, _april = world(org_a)

    response = api_a.get(f"{base(org_a)}{march.pk}/csv/")

    assert response.status_code == 200
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    lines = [row for row in rows if row["kind"] not in ("subtotal", "discount", "tax", "total")]
    totals = {row["kind"]: Decimal(row["amount"]) for row in rows if row not in lines}
    assert totals["subtotal"] == march.subtotal == sum(Decimal(row["amount"]) for row in lines)
    assert totals["total"] == march.total
    hires = {row["employment"].split(" - ")[0] for row in lines if row["employment"]}
    assert hires == {"导购0", "导购1"}


def test_reading_needs_billing_view(org_a, member_factory, client_for):
    _hires, march, _april = world(org_a)
    analyst = client_for(member_factory(org_a, Role.ANALYST))
    billing = client_for(member_factory(org_a, Role.BILLING))

    assert analyst.get(base(org_a)).status_code == 403
    assert analyst.get(f"{base(org_a)}{march.pk}/pdf/").status_code == 403
    assert billing.get(f"{base(org_a)}{march.pk}/pdf/").status_code == 200


def test_another_organization_never_sees_a_statement(org_a, api_b):
    _hires, march, _april = world(org_a)

    listed = api_b.get(base(org_a))
    own = api_b.get(base(org_a).replace(org_a.slug, "beta-bureau"))
    probes = [
        api_b.get(f"{base(org_a)}{march.pk}/{suffix}") for suffix in ("", "html/", "pdf/", "csv/")
    ]
    mine_by_their_id = api_b.get(f"{base(org_a).replace(org_a.slug, 'beta-bureau')}{march.pk}/")

    assert listed.status_code == 404
    assert own.status_code == 200 and own.json()["results"] == []
    assert [probe.status_code for probe in probes] == [404, 404, 404, 404]
    assert mine_by_their_id.status_code == 404
