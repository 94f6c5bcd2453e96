"""The console's billing pages: the plan, usage and charges so far this month, statements with a
payslip per digital employee and their documents, and the budget — money exact, with its
currency; another organization's statements and payslips answered as missing ones; billing.view
to read and billing.manage to set the budget; a refused budget changes nothing; a double submit
sets it once. The payment panel: the billing e-mail (seen with billing.view, set with
billing.manage through the API's serializer, once per submit, nothing saved when refused or when
Stripe does not answer), Stripe's billing portal (a 303 to the session's URL; absent without
Stripe), and dunning's grace end in the organization's time zone.

Real: the pages through Django's test client signed in as members (sessions, middleware, submit
tokens), rating, statements closed and refreshed by billing's services, the documents the API
serves, budgets set by billing's service through the API's serializer, the billing e-mail and
portal session through billing's push service, the `stripe` SDK over a socket, the audit log,
the database the suite runs on. Simulated: the ledger rows are written directly (as the worker
protocol would append them), March's statement is closed with an explicit "now", Stripe's
servers (the local stand-in, tests/billing/stripe_standin.py), and dunning's state, written
directly on the billing account (as Stripe's events and the dunning task would leave it).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from pypdf import PdfReader

from ironbowl.billing import budgets, dunning, push, rating, seats, statements, stripe_client
from ironbowl.billing.models import BillingAccount, Budget
from tenants.audit import SYSTEM
from tenants.models import AuditEntry
from tenants.roles import Role
from tests.billing import conftest as billing_fixtures
from tests.billing.conftest import EPOCH, hire, local, subscribe, usage
from tests.console.conftest import submit_token
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

# Stripe configured, answered by the local stand-in (billing's own fixture).
stripe_standin = billing_fixtures.stripe_standin

MARCH, APRIL = dt.date(2024, 3, 1), dt.date(2024, 4, 1)
IN_MAY = dt.datetime(2024, 5, 20, tzinfo=dt.UTC)
# org_b's figures: quantities and names nothing of org_a's shares.
B_MINUTES = 98_760


def world(organization, names: list[str], minutes: int):
    """Hires on the standard plan since EPOCH, their March seat-days and stream minutes, March's
    statement closed and April's open."""
    subscribe(organization, [("standard", EPOCH)])
    employed = [hire(organization, name=name, seats=n + 1) for n, name in enumerate(names)]
    seats.record_seat_days(organization, MARCH, dt.date(2024, 4, 30))
    for employment in employed:
        usage(
            organization, "stream_minutes", minutes, local("Asia/Shanghai", 2024, 3, 9), employment
        )
    usage(organization, "interactions", 250_000, local("Asia/Shanghai", 2024, 3, 9))
    march = statements.close(organization, MARCH, now=IN_MAY)
    april = statements.refresh(organization, APRIL, now=IN_MAY)
    return employed, march, april


@pytest.fixture
def books(org_a, org_b):
    employed, march, april = world(org_a, ["导购0", "导购1"], 12_000)
    theirs, their_march, _ = world(org_b, ["贝塔导购"], B_MINUTES)
    return {
        "employed": employed,
        "march": march,
        "april": april,
        "theirs": theirs,
        "their_march": their_march,
    }


def page(organization, name: str = "") -> str:
    return f"/console/o/{organization.slug}/billing/{name}"


def statement_page(organization, statement) -> str:
    return page(organization, f"statements/{statement.pk}/")


def payslip_page(organization, statement, employment_id) -> str:
    return page(organization, f"statements/{statement.pk}/payslips/{employment_id}/")


def cny(amount: Decimal) -> str:
    return f"CNY {amount:,.2f}"


def field_errors(html: str, name: str) -> list[str]:
    """The errors shown next to one field of a form (the field partial's markup)."""
    for chunk in html.split('<div class="field')[1:]:
        if f'id="field-{name}"' in chunk.split("</div>")[0]:
            return re.findall(r"<li>([^<]*)</li>", chunk.split("</div>")[0])
    raise AssertionError(f"no field {name}")


def link(html: str, label: str) -> str:
    match = re.search(rf'href="([^"]+)"[^>]*>{re.escape(label)}</a>', html)
    assert match, f"no link {label}"
    return match.group(1).replace("&amp;", "&")


# --- Plan and usage ------------------------------------------------------------------------------


def test_the_plan_usage_and_charges_so_far_this_month(console_a, org_a, books):
    now = timezone.now()
    usage(org_a, "stream_minutes", 600, now, books["employed"][0])
    usage(org_a, "interactions", "2500", now)
    usage(books["their_march"].organization, "stream_minutes", B_MINUTES, now)

    response = console_a.get(page(org_a))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Standard" in html and "(standard)" in html
    usage_table = html.split('data-testid="usage"')[1].split("</table>")[0]
    assert "<td>Stream minutes</td><td>600</td>" in usage_table
    assert "<td>Interactions</td><td>2,500</td>" in usage_table
    rated = rating.rate(org_a, statements.current_period(org_a))
    totals = html.split('data-testid="totals"')[1].split("</table>")[0]
    assert f"<td>{cny(rated.total)}</td>" in totals
    assert f"<td>{cny(rated.tax)}</td>" in totals
    assert "Stream hours" in html.split('data-testid="charges"')[1]
    assert "No budget is set" in html
    assert str(B_MINUTES) not in html and f"{B_MINUTES:,}" not in html


def test_the_statements_are_listed_newest_first_with_exact_totals(console_a, org_a, books):
    html = console_a.get(page(org_a, "statements/")).content.decode()

    table = html.split('data-testid="statements"')[1]
    assert table.index("2024-04") < table.index("2024-03")
    assert f"<td>{cny(books['march'].total)}</td>" in table
    assert f"<td>{cny(books['april'].total)}</td>" in table
    assert "Closed" in table and "Open" in table


def test_a_statement_shows_its_payslips_lines_and_totals(console_a, org_a, books):
    march = books["march"]

    response = console_a.get(statement_page(org_a, march))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Statement 2024-03" in html
    payslips = html.split('data-testid="payslip"')[1:]
    assert len(payslips) == 2
    assert "导购0" in payslips[0] and "导购1" in payslips[1]
    for section in payslips:
        assert "Seats" in section and "Stream hours" in section
    totals = html.split('data-testid="totals"')[1].split("</table>")[0]
    assert f"<td>{cny(march.subtotal)}</td>" in totals
    assert f"<td>{cny(march.total)}</td>" in totals
    assert "Platform fee" in html.split('data-testid="organization-lines"')[1]
    amounts = [Decimal(a.replace(",", "")) for a in re.findall(r"<td>CNY ([\d,.-]+)</td>", html)]
    assert amounts  # every amount is shown to the cent with its currency


def test_the_statements_documents_open_with_the_console_session(console_a, org_a, books):
    march = books["march"]
    html = console_a.get(statement_page(org_a, march)).content.decode()

    printable = console_a.get(link(html, "Printable page"))
    pdf = console_a.get(link(html, "PDF"))
    spreadsheet = console_a.get(link(html, "CSV"))

    assert printable.status_code == pdf.status_code == spreadsheet.status_code == 200
    assert "导购0" in printable.content.decode()
    assert pdf["Content-Type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert cny(march.total) in text
    assert spreadsheet["Content-Type"].startswith("text/csv")


def test_a_payslip_shows_one_employees_lines(console_a, org_a, books):
    march, first = books["march"], books["employed"][0]
    html = console_a.get(statement_page(org_a, march)).content.decode()

    response = console_a.get(link(html, "导购0 - " + first.position.title))

    text = response.content.decode()
    assert response.status_code == 200
    assert "Payslip of 导购0" in text and "导购1" not in text
    payslip = text.split('data-testid="payslip"')[1]
    amounts = [Decimal(a.replace(",", "")) for a in re.findall(r"<td>CNY ([\d,.-]+)</td>", payslip)]
    *lines, total = amounts
    assert len(lines) == 2 and sum(lines) == total


def test_a_payslip_of_someone_not_on_the_statement_is_missing(console_a, org_a, books):
    newcomer = hire(org_a, name="新人")

    response = console_a.get(payslip_page(org_a, books["march"], newcomer.pk))

    assert response.status_code == 404


# --- Budget --------------------------------------------------------------------------------------


def budget_form(client, organization) -> str:
    return submit_token(client.get(page(organization, "budget/")).content.decode())


def test_the_budget_is_set_and_shown_with_its_currency(console_a, org_a, books):
    token = budget_form(console_a, org_a)

    response = console_a.post(
        page(org_a, "budget/"),
        {"monthly_amount": "5000.50", "hard_stop": "true", "submit_token": token},
    )

    assert response.status_code == 302
    assert response["Location"] == page(org_a, "budget/")
    budget = budgets.budget_of(org_a)
    assert budget.monthly_amount == Decimal("5000.50") and budget.currency == "CNY"
    assert budget.hard_stop is True and budget.exempt_public_service is False  # left unticked
    html = console_a.get(response["Location"]).content.decode()
    assert "CNY 5,000.50" in html and "The budget is saved." in html
    assert (
        AuditEntry.objects.for_organization(org_a).filter(action="billing.set_budget").count() == 1
    )


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-1", "Ensure this value is greater than or equal to 0."),
        ("lots", "A valid number is required."),
        ("", "A valid number is required."),
        ("12.345", "Ensure that there are no more than 2 decimal places."),
    ],
)
def test_a_bad_budget_is_refused_next_to_the_amount_and_changes_nothing(
    console_a, org_a, books, amount, message
):
    budgets.set_budget(
        SYSTEM, org_a, monthly_amount=Decimal("800.00"), hard_stop=False,
        exempt_public_service=True,
    )  # fmt: skip
    token = budget_form(console_a, org_a)

    response = console_a.post(
        page(org_a, "budget/"),
        {"monthly_amount": amount, "hard_stop": "true", "submit_token": token},
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert field_errors(html, "monthly_amount") == [message]
    assert f'value="{amount}"' in html  # what was typed is kept
    budget = budgets.budget_of(org_a)
    assert (budget.monthly_amount, budget.hard_stop) == (Decimal("800.00"), False)
    # The refused submit freed its token: the corrected form goes through.
    fixed = console_a.post(page(org_a, "budget/"), {"monthly_amount": "900", "submit_token": token})
    assert fixed.status_code == 302 and budgets.budget_of(org_a).monthly_amount == Decimal(900)


def test_a_double_submit_sets_the_budget_once(console_a, org_a, books):
    token = budget_form(console_a, org_a)

    first = console_a.post(page(org_a, "budget/"), {"monthly_amount": "100", "submit_token": token})
    again = console_a.post(page(org_a, "budget/"), {"monthly_amount": "200", "submit_token": token})

    assert first.status_code == again.status_code == 302
    assert again["Location"] == first["Location"]
    assert budgets.budget_of(org_a).monthly_amount == Decimal(100)
    assert Budget.objects.for_organization(org_a).count() == 1
    assert (
        AuditEntry.objects.for_organization(org_a).filter(action="billing.set_budget").count() == 1
    )


def test_only_billing_manage_may_change_the_budget(org_a, member_factory, console_for, books):
    admin = console_for(member_factory(org_a, Role.ADMIN))
    finance = console_for(member_factory(org_a, Role.BILLING))

    seen = admin.get(page(org_a, "budget/"))
    refused = admin.post(page(org_a, "budget/"), {"monthly_amount": "1"})
    token = budget_form(finance, org_a)
    allowed = finance.post(page(org_a, "budget/"), {"monthly_amount": "3", "submit_token": token})

    assert seen.status_code == 200 and 'data-testid="budget-form"' not in seen.content.decode()
    assert refused.status_code == 403
    assert allowed.status_code == 302 and budgets.budget_of(org_a).monthly_amount == Decimal(3)


def test_an_expired_session_keeps_the_typed_budget(client, org_a, owner_a, books):
    """Sent signed out: nothing is set; after sign-in the form shows what was typed (the box
    left unticked stays unticked)."""
    url = page(org_a, "budget/")
    response = client.post(url, {"monthly_amount": "4321.09", "submit_token": "t"})
    client.post(response["Location"], {"email": owner_a.user.email, "password": PASSWORD})

    html = client.get(url).content.decode()

    assert budgets.budget_of(org_a) is None
    assert 'value="4321.09"' in html
    assert 'name="exempt_public_service" value="true">' in html  # not checked


# --- Tenancy and roles ---------------------------------------------------------------------------


def test_another_organization_gets_404_for_statements_and_payslips(console_b, org_a, org_b, books):
    march, first = books["march"], books["employed"][0]
    their_march = books["their_march"]

    probes = [
        console_b.get(statement_page(org_b, march)),
        console_b.get(payslip_page(org_b, march, first.pk)),
        console_b.get(payslip_page(org_b, their_march, first.pk)),
        console_b.get(statement_page(org_a, march)),
        console_b.get(page(org_a)),
        console_b.get(page(org_a, "budget/")),
    ]
    own = console_b.get(statement_page(org_b, their_march))

    assert [probe.status_code for probe in probes] == [404] * len(probes)
    assert own.status_code == 200 and "贝塔导购" in own.content.decode()


def test_another_organizations_figures_never_appear(console_a, org_a, books):
    their_march = books["their_march"]
    pages = [
        page(org_a),
        page(org_a, "statements/"),
        statement_page(org_a, books["march"]),
        payslip_page(org_a, books["march"], books["employed"][0].pk),
        page(org_a, "budget/"),
    ]

    for url in pages:
        html = console_a.get(url).content.decode()
        assert "贝塔导购" not in html
        assert cny(their_march.total) not in html and cny(their_march.subtotal) not in html


def test_billing_needs_billing_view(org_a, member_factory, console_for, books):
    analyst = console_for(member_factory(org_a, Role.ANALYST))
    finance = console_for(member_factory(org_a, Role.BILLING))
    urls = [
        page(org_a),
        page(org_a, "statements/"),
        statement_page(org_a, books["march"]),
        payslip_page(org_a, books["march"], books["employed"][0].pk),
        page(org_a, "budget/"),
    ]

    assert [analyst.get(url).status_code for url in urls] == [403] * len(urls)
    assert [finance.get(url).status_code for url in urls] == [200] * len(urls)
    assert analyst.get(f"/console/o/{org_a.slug}/analytics/").status_code == 200


# --- Payment: the billing e-mail, Stripe's portal, dunning ---------------------------------------

FINANCE_EMAIL = "finance@alpha.example"


def email_form(client, organization) -> str:
    html = client.get(page(organization)).content.decode()
    form = html.split('data-testid="email-form"')[1].split("</form>")[0]
    return submit_token(form)


def set_email(client, organization, email: str, token: str):
    return client.post(page(organization), {"email": email, "submit_token": token})


def paid_by(organization) -> tuple:
    """What the payment panel can change: the account's customer and e-mail, and the audit log."""
    return (
        list(
            BillingAccount.objects.for_organization(organization).values_list(
                "stripe_customer_id", "email"
            )
        ),
        AuditEntry.objects.for_organization(organization).count(),
    )


@pytest.fixture
def no_stripe(settings):
    settings.STRIPE_SECRET_KEY = ""


def test_billing_view_sees_the_billing_email_but_no_form(
    org_a, member_factory, console_for, no_stripe
):
    push.set_billing_email(SYSTEM, org_a, FINANCE_EMAIL)
    admin = console_for(member_factory(org_a, Role.ADMIN))
    analyst = console_for(member_factory(org_a, Role.ANALYST))
    before = paid_by(org_a)

    html = admin.get(page(org_a)).content.decode()
    refused = admin.post(page(org_a), {"email": "admin@alpha.example"})

    panel = html.split('data-testid="payment"')[1]
    assert FINANCE_EMAIL in panel.split('data-testid="billing-email"')[1].split("</p>")[0]
    assert 'data-testid="email-form"' not in html and 'data-testid="portal-form"' not in html
    assert refused.status_code == 403
    assert analyst.get(page(org_a)).status_code == 403
    assert analyst.post(page(org_a), {"email": "analyst@alpha.example"}).status_code == 403
    assert paid_by(org_a) == before


def test_finance_sets_the_billing_email(org_a, member_factory, console_for, no_stripe):
    finance = console_for(member_factory(org_a, Role.BILLING))

    response = set_email(finance, org_a, f"  {FINANCE_EMAIL} ", email_form(finance, org_a))

    assert response.status_code == 302 and response["Location"] == page(org_a)
    assert dunning.billing_account(org_a).email == FINANCE_EMAIL
    html = finance.get(page(org_a)).content.decode()
    assert "The billing e-mail is saved." in html
    assert f'value="{FINANCE_EMAIL}"' in html.split('data-testid="email-form"')[1]
    audited = AuditEntry.objects.for_organization(org_a).filter(action="billing.set_email")
    assert audited.count() == 1


def test_the_billing_email_goes_to_the_stripe_customer(stripe_standin, console_a, org_a):
    customer = push.ensure_customer(org_a, stripe_client.client()).stripe_customer_id

    response = set_email(console_a, org_a, FINANCE_EMAIL, email_form(console_a, org_a))

    assert response.status_code == 302
    assert stripe_standin.customers[customer]["email"] == FINANCE_EMAIL
    assert dunning.billing_account(org_a).email == FINANCE_EMAIL
    assert stripe_standin.violations == []


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("not-an-email", "Enter a valid email address."),
        ("", "This field may not be blank."),
        (f"{'x' * 250}@alpha.example", "Ensure this field has no more than 254 characters."),
    ],
)
def test_a_bad_billing_email_is_refused_next_to_the_field_and_changes_nothing(
    console_a, org_a, no_stripe, email, message
):
    push.set_billing_email(SYSTEM, org_a, FINANCE_EMAIL)
    before = paid_by(org_a)
    token = email_form(console_a, org_a)

    response = set_email(console_a, org_a, email, token)

    html = response.content.decode()
    assert response.status_code == 400
    assert message in field_errors(html, "email")
    assert f'value="{email}"' in html  # what was typed is kept
    assert paid_by(org_a) == before
    # The refused submit freed its token: the corrected form goes through.
    fixed = set_email(console_a, org_a, "ap@alpha.example", token)
    assert fixed.status_code == 302 and dunning.billing_account(org_a).email == "ap@alpha.example"


def test_with_stripe_down_the_billing_email_is_not_saved(stripe_standin, console_a, org_a):
    push.ensure_customer(org_a, stripe_client.client())
    before = paid_by(org_a)
    stripe_standin.down = True

    response = set_email(console_a, org_a, FINANCE_EMAIL, email_form(console_a, org_a))

    html = response.content.decode()
    assert response.status_code == 503
    form = html.split('data-testid="email-form"')[1]
    assert "Stripe did not answer; nothing was changed." in form.split('class="field')[0]
    assert f'value="{FINANCE_EMAIL}"' in form
    assert paid_by(org_a) == before


def test_a_double_submit_sets_the_billing_email_once(console_a, org_a, no_stripe):
    token = email_form(console_a, org_a)

    first = set_email(console_a, org_a, FINANCE_EMAIL, token)
    again = set_email(console_a, org_a, "other@alpha.example", token)

    assert first.status_code == again.status_code == 302
    assert again["Location"] == first["Location"]
    assert dunning.billing_account(org_a).email == FINANCE_EMAIL
    audited = AuditEntry.objects.for_organization(org_a).filter(action="billing.set_email")
    assert audited.count() == 1


def test_an_expired_session_keeps_the_typed_billing_email(client, org_a, owner_a, no_stripe):
    response = client.post(page(org_a), {"email": FINANCE_EMAIL, "submit_token": "t"})
    client.post(response["Location"], {"email": owner_a.user.email, "password": PASSWORD})

    html = client.get(page(org_a)).content.decode()

    assert BillingAccount.objects.for_organization(org_a).count() == 0
    assert f'value="{FINANCE_EMAIL}"' in html.split('data-testid="email-form"')[1]


def test_manage_payment_method_leads_to_stripes_portal(
    stripe_standin, org_a, member_factory, console_for
):
    finance = console_for(member_factory(org_a, Role.BILLING))
    html = finance.get(page(org_a)).content.decode()
    form = re.search(r'<form method="post" action="([^"]+)" data-testid="portal-form">', html)
    assert form and "Manage payment method" in html.split('data-testid="portal-form"')[1]

    response = finance.post(form.group(1))

    [session] = stripe_standin.portal_sessions.values()
    assert response.status_code == 303
    assert response["Location"] == session["url"]
    account = BillingAccount.objects.for_organization(org_a).get()
    assert session["customer"] == account.stripe_customer_id
    assert session["return_url"] == f"http://testserver{page(org_a)}"
    assert AuditEntry.objects.for_organization(org_a).filter(action="billing.open_portal").exists()
    assert stripe_standin.violations == []
    # Back from sign-in on the portal's address: the billing page.
    assert finance.get(form.group(1))["Location"] == page(org_a)


def test_without_stripe_payments_are_settled_outside_and_there_is_no_portal(
    console_a, org_a, no_stripe
):
    before = paid_by(org_a)

    html = console_a.get(page(org_a)).content.decode()
    response = console_a.post(page(org_a, "payment-portal/"))

    assert "Payments are settled outside Ironbowl" in html.split('data-testid="payment"')[1]
    assert 'data-testid="portal-form"' not in html and "Manage payment method" not in html
    assert response.status_code == 409
    alert = response.content.decode().split('data-testid="portal-error"')[1].split("</div>")[0]
    assert "Stripe is not configured on this platform" in alert
    assert paid_by(org_a) == before


def test_with_stripe_down_the_portal_says_so_and_nothing_changes(stripe_standin, console_a, org_a):
    before = paid_by(org_a)
    stripe_standin.down = True

    response = console_a.post(page(org_a, "payment-portal/"))

    html = response.content.decode()
    assert response.status_code == 503
    alert = html.split('data-testid="portal-error"')[1].split("</div>")[0]
    assert "Stripe did not answer; nothing was changed. Please try again in a minute." in alert
    assert paid_by(org_a) == before


def test_only_billing_manage_may_open_the_portal(
    stripe_standin, org_a, member_factory, console_for
):
    admin = console_for(member_factory(org_a, Role.ADMIN))
    before = paid_by(org_a)

    html = admin.get(page(org_a)).content.decode()
    refused = admin.post(page(org_a, "payment-portal/"))

    assert "Manage payment method" not in html
    assert refused.status_code == 403
    assert paid_by(org_a) == before and stripe_standin.calls == []


def test_another_organization_can_neither_set_the_email_nor_open_the_portal(
    stripe_standin, console_b, org_a, org_b
):
    push.set_billing_email(SYSTEM, org_a, FINANCE_EMAIL)
    before = paid_by(org_a)
    token = email_form(console_b, org_b)

    probes = [
        console_b.post(page(org_a), {"email": "thief@beta.example", "submit_token": token}),
        console_b.post(page(org_a, "payment-portal/")),
        console_b.get(page(org_a, "payment-portal/")),
    ]

    assert [probe.status_code for probe in probes] == [404] * len(probes)
    assert paid_by(org_a) == before
    assert stripe_standin.calls == []


def test_the_grace_period_ends_in_the_organizations_time_zone(console_a, org_a, no_stripe):
    account = dunning.billing_account(org_a)
    account.dunning = "past_due"
    account.grace_until = dt.datetime(2024, 6, 3, 16, 30, tzinfo=dt.UTC)
    account.save()

    html = console_a.get(page(org_a)).content.decode()

    alert = html.split('data-testid="dunning"')[1].split("</div>")[0]
    assert "A payment is overdue." in alert
    assert "2024-06-04 00:30 (Asia/Shanghai)" in alert  # 16:30 UTC is past midnight in Shanghai


def test_a_suspended_account_says_so_and_one_in_good_standing_says_nothing(
    console_a, org_a, no_stripe
):
    good = console_a.get(page(org_a)).content.decode()
    account = dunning.billing_account(org_a)
    account.dunning = "suspended"
    account.save()

    suspended = console_a.get(page(org_a)).content.decode()

    assert 'data-testid="dunning"' not in good
    alert = suspended.split('data-testid="dunning"')[1].split("</div>")[0]
    assert "suspended for non-payment" in alert
