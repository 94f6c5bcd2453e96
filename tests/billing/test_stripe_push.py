"""Closed statements pushed to Stripe: a customer per organization, one invoice item per payslip
and per organization line, a finalized invoice, each created once.

Real: the `stripe` SDK making HTTP requests over a socket; the statement close and its
after-commit signal (one test); the database. Simulated: Stripe's servers, by the local stand-in
(tests/billing/stripe_standin.py), which refuses any POST without an idempotency key derived
from our ids and replays an answer for a key it has seen, as Stripe does.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from ironbowl.billing import push, statements, stripe_client
from ironbowl.billing.models import (
    BillingAccount,
    LineKind,
    Notification,
    Statement,
    StatementLine,
    StatementStatus,
    StripeInvoice,
    StripeInvoiceStatus,
)
from tests.billing.conftest import closed_statement, hire, local, make_organization, usage
from tests.billing.stripe_standin import event, running
from tests.billing.test_webhooks import deliver

pytestmark = pytest.mark.django_db


def mirror_of(statement) -> StripeInvoice:
    return StripeInvoice.objects.for_organization(statement.organization).get(statement=statement)


def created(standin, kind: str) -> int:
    return len(getattr(standin, kind))


def payroll(organization):
    """Two payslips (seats and usage each), the platform fee and a 10% discount line:
    10,032.57 CNY less 1,003.26, before tax."""
    first = hire(organization, name="小艺")
    second = hire(organization, name="小安")
    return closed_statement(
        organization,
        [
            (None, LineKind.PLATFORM_FEE, "4800.00"),
            (first, LineKind.SEATS, "1999.00"),
            (first, LineKind.STREAM_HOURS, "1234.56"),
            (second, LineKind.SEATS, "1999.00"),
            (second, LineKind.INTERACTIONS, "0.01"),
            (None, LineKind.DISCOUNT, "-1003.26"),
        ],
    )


def test_without_a_secret_key_nothing_reaches_stripe(settings, django_capture_on_commit_callbacks):
    """Stripe is optional: without STRIPE_SECRET_KEY a closed statement gets no mirror and the
    sync does nothing, not one request (the stand-in runs, the SDK is pointed at it)."""
    settings.STRIPE_SECRET_KEY = ""
    organization = make_organization()
    hire(organization)
    with running() as standin:
        with django_capture_on_commit_callbacks(execute=True):
            statement = statements.close(
                organization, dt.date(2024, 5, 1), now=dt.datetime(2024, 6, 10, tzinfo=dt.UTC)
            )
        assert push.sync() == {}
        assert standin.calls == []
    assert statement.status == "closed"
    assert not StripeInvoice.objects.for_organization(organization).exists()
    assert not BillingAccount.objects.for_organization(organization).exists()


def test_closing_a_statement_invoices_it_in_stripe_once(
    stripe_standin, django_capture_on_commit_callbacks
):
    """The real close sends statement_closed after commit; the receiver records a pending
    mirror; the sync makes the customer, the items and the finalized invoice, whose amount is
    the statement's total in fen. A second sync sends nothing."""
    organization = make_organization(time_zone="Asia/Shanghai")
    employee = hire(organization, name="小艺")
    usage(organization, "stream_minutes", 6_000, local("Asia/Shanghai", 2024, 5, 3, 10), employee)
    with django_capture_on_commit_callbacks(execute=True):
        statement = statements.close(
            organization, dt.date(2024, 5, 1), now=dt.datetime(2024, 6, 10, tzinfo=dt.UTC)
        )
    assert statement.total > 0
    mirror = mirror_of(statement)
    assert mirror.status == StripeInvoiceStatus.PENDING
    assert stripe_standin.calls == []  # the close itself never waits on Stripe

    result = push.sync()

    assert result["pushed"] == 1
    mirror.refresh_from_db()
    account = BillingAccount.objects.for_organization(organization).get()
    assert [c["metadata"]["organization_id"] for c in stripe_standin.customers.values()] == [
        str(organization.pk)
    ]
    assert account.stripe_customer_id in stripe_standin.customers
    invoice = stripe_standin.invoices[mirror.stripe_invoice_id]
    assert invoice["status"] == "open" and invoice["currency"] == "cny"
    assert invoice["metadata"] == {
        "organization_id": str(organization.pk),
        "statement_id": str(statement.pk),
    }
    assert invoice["amount_due"] == stripe_client.to_minor(statement.total, "CNY")
    assert mirror.status == StripeInvoiceStatus.OPEN
    assert mirror.amount_due == statement.total
    assert stripe_standin.violations == []

    calls = len(stripe_standin.calls)
    assert push.sync()["pushed"] == 0
    assert len(stripe_standin.calls) == calls


def test_items_are_payslips_organization_lines_and_tax_with_derived_keys(stripe_standin):
    """One item per payslip (its lines summed), one per organization line (the discount is a
    line already), one for the tax; amounts exact in fen; each POST's key names our ids."""
    organization = make_organization()
    statement = payroll(organization)
    push.statement_closed(statement)
    push.sync()

    mirror = mirror_of(statement)
    items = {
        item["metadata"].get("employment_id") or item["description"]: item["amount"]
        for item in stripe_standin.invoice_items.values()
    }
    first, second = (
        line.employment_id
        for line in statements.lines_of(statement).filter(kind=LineKind.SEATS).order_by("position")
    )
    assert items[str(first)] == 199_900 + 123_456
    assert items[str(second)] == 199_900 + 1
    assert items["platform_fee line"] == 480_000
    assert items["discount line"] == -100_326
    assert items["Tax"] == stripe_client.to_minor(statement.tax, "CNY")
    assert sum(items.values()) == stripe_client.to_minor(statement.total, "CNY")
    assert statement.total == Decimal("10032.57") - Decimal("1003.26") + statement.tax

    sid = statement.pk
    keys = {call.idempotency_key for call in stripe_standin.posts()}
    assert keys == {
        f"org-{organization.pk}-customer",
        f"stmt-{sid}-invoice",
        f"stmt-{sid}-payslip-{first}",
        f"stmt-{sid}-payslip-{second}",
        *(
            f"stmt-{sid}-line-{line.pk}"
            for line in statements.lines_of(statement).filter(employment_id__isnull=True)
        ),
        f"stmt-{sid}-tax",
        f"stmt-{sid}-finalize",
    }
    assert sorted(mirror.pushed_items) == sorted(
        key for key in keys if "-payslip-" in key or "-line-" in key or key.endswith("-tax")
    )


def test_usd_statement_is_sent_in_cents(stripe_standin):
    """A USD statement: the invoice is in usd and its amount in cents, computed exactly."""
    organization = make_organization()
    employee = hire(organization, currency="USD")
    statement = closed_statement(
        organization, [(employee, LineKind.SEATS, "299.99")], currency="USD", tax_rate="0.0725"
    )
    push.statement_closed(statement)
    push.sync()
    invoice = stripe_standin.invoices[mirror_of(statement).stripe_invoice_id]
    assert invoice["currency"] == "usd"
    assert invoice["amount_due"] == 29_999 + 2_175  # tax 21.749275 → 21.75


def test_minor_units_are_exact():
    """Decimal to fen and cents without floats; a fraction of a cent is refused, not rounded."""
    assert stripe_client.to_minor(Decimal("0.01"), "CNY") == 1
    assert stripe_client.to_minor(Decimal("12345678.90"), "cny") == 1_234_567_890
    assert stripe_client.to_minor(Decimal("-1003.26"), "USD") == -100_326
    assert stripe_client.from_minor(1_234_567_890, "CNY") == Decimal("12345678.90")
    with pytest.raises(ValueError, match="minor units"):
        stripe_client.to_minor(Decimal("0.005"), "CNY")


def test_lost_answers_are_retried_with_the_same_keys_and_nothing_is_made_twice(stripe_standin):
    """Stripe does the work but its answers are lost (500): the push fails and backs off; the
    next sync repeats the same keys, Stripe replays its answers, and one customer, one invoice
    and one set of items exist."""
    organization = make_organization()
    statement = payroll(organization)
    push.statement_closed(statement)
    stripe_standin.lose_answers(3)  # the customer, the invoice, the first item

    now = timezone.now()
    assert push.sync(now)["pushed"] == 0
    mirror = mirror_of(statement)
    assert mirror.push_error and mirror.next_push_at > now
    assert push.sync(now)["pushed"] == 0  # backing off: not tried again yet

    for _attempt in range(3):
        now = mirror_of(statement).next_push_at
        push.sync(now)
    mirror = mirror_of(statement)
    assert mirror.status == StripeInvoiceStatus.OPEN
    assert created(stripe_standin, "customers") == 1
    assert created(stripe_standin, "invoices") == 1
    assert created(stripe_standin, "invoice_items") == 5
    assert any(call.replayed for call in stripe_standin.calls)
    assert stripe_standin.invoices[mirror.stripe_invoice_id]["amount_due"] == (
        stripe_client.to_minor(statement.total, "CNY")
    )


def test_stripe_down_never_blocks_the_close_and_the_push_catches_up(
    stripe_standin, django_capture_on_commit_callbacks
):
    """With Stripe down the statement still closes; the push fails, is retried by the sync
    with a growing back-off, and completes once Stripe is back."""
    stripe_standin.down = True
    organization = make_organization()
    hire(organization)
    with django_capture_on_commit_callbacks(execute=True):
        statement = statements.close(
            organization, dt.date(2024, 5, 1), now=dt.datetime(2024, 6, 10, tzinfo=dt.UTC)
        )
    assert statement.status == "closed"

    now = timezone.now()
    push.sync(now)
    first = mirror_of(statement)
    push.sync(first.next_push_at)
    second = mirror_of(statement)
    assert second.push_attempts == 2
    assert second.next_push_at - first.next_push_at > first.next_push_at - now
    assert "down" in second.push_error

    stripe_standin.up()
    assert push.sync(second.next_push_at)["pushed"] == 1
    assert mirror_of(statement).status == StripeInvoiceStatus.OPEN
    assert mirror_of(statement).push_error == ""


def test_a_push_resumed_after_stripe_forgot_its_keys_sends_only_what_is_missing(stripe_standin):
    """Stripe keeps idempotency keys for 24 hours. The mirror records each item Stripe
    confirmed, so a push interrupted and resumed later sends only the missing items."""
    organization = make_organization()
    statement = payroll(organization)
    push.statement_closed(statement)
    stripe_standin.go_down_after(4)  # the customer, the invoice, two items
    push.sync()
    assert len(mirror_of(statement).pushed_items) == 2

    stripe_standin.forget_idempotency_keys()
    stripe_standin.up()
    push.sync(mirror_of(statement).next_push_at)

    assert created(stripe_standin, "invoice_items") == 5
    assert mirror_of(statement).status == StripeInvoiceStatus.OPEN


def test_too_many_payslips_for_one_invoice_are_folded(stripe_standin, monkeypatch):
    """Stripe takes 250 items on an invoice: payslips past the room left are sent as one item
    (the statement lists them); the invoice still adds up to the total."""
    monkeypatch.setattr(push, "MAX_INVOICE_ITEMS", 4)
    organization = make_organization()
    hires = [hire(organization) for _ in range(4)]
    statement = closed_statement(
        organization,
        [(None, LineKind.PLATFORM_FEE, "100.00")]
        + [(h, LineKind.SEATS, f"{10 + i}.00") for i, h in enumerate(hires)],
    )
    push.statement_closed(statement)
    push.sync()
    amounts = sorted(i["amount"] for i in stripe_standin.invoice_items.values())
    assert len(amounts) == 4  # one payslip, three folded into one item, the fee, the tax
    assert sum(amounts) == stripe_client.to_minor(statement.total, "CNY")


def test_a_statement_with_nothing_to_collect_is_not_invoiced(stripe_standin):
    organization = make_organization()
    statement = closed_statement(organization, [(None, LineKind.PLATFORM_FEE, "0.00")])
    assert push.statement_closed(statement) is None
    push.sync()
    assert stripe_standin.calls == []


def test_a_close_whose_signal_was_lost_is_caught_up(stripe_standin):
    """A statement closed without its receiver running (a crash right after the commit) gets
    its mirror from the sync, and is invoiced."""
    organization = make_organization()
    statement = payroll(organization)  # closed, no signal sent
    assert push.sync()["caught_up"] == 1
    assert mirror_of(statement).status == StripeInvoiceStatus.OPEN


def test_a_statement_that_does_not_add_up_is_not_sent(stripe_standin):
    """Lines, discount and tax must make the total to the fen; if not (a bug), nothing at all
    goes to Stripe and the mirror says why. (Written open, then closed with a total one fen
    off: a closed statement's figures cannot be changed afterwards, on PostgreSQL not even by
    raw SQL.)"""
    organization = make_organization()
    statement = Statement.objects.create(
        organization=organization,
        period=dt.date(2024, 5, 1),
        currency="CNY",
        subtotal=Decimal("10.00"),
        tax=Decimal("0.60"),
        total=Decimal("10.60"),
    )
    StatementLine.objects.create(
        organization=organization,
        statement=statement,
        employment_id=hire(organization).pk,
        kind=LineKind.SEATS,
        description="seats",
        quantity=Decimal(1),
        unit="month",
        unit_price=Decimal("10.00"),
        amount=Decimal("10.00"),
    )
    Statement.objects.for_organization(organization).filter(pk=statement.pk).update(
        status=StatementStatus.CLOSED, total=Decimal("10.61"), closed_at=timezone.now()
    )
    push.sync()
    mirror = mirror_of(statement)
    assert mirror.status == StripeInvoiceStatus.PENDING
    assert "add up" in mirror.push_error
    assert stripe_standin.calls == []


# --- Credits, and invoices the credit pays -------------------------------------------------------


def credit_statement(organization, amount: str = "-500.00", period=dt.date(2024, 5, 1)):
    """A closed month whose lines are a credit (a reversal larger than the month's charges)."""
    return closed_statement(organization, [(None, LineKind.SEATS, amount)], period=period)


def charge_statement(organization, amount: str, period=dt.date(2024, 6, 1)):
    return closed_statement(
        organization, [(hire(organization), LineKind.SEATS, amount)], period=period
    )


def paid_notices(organization) -> int:
    return (
        Notification.objects.for_organization(organization).filter(kind="payment_received").count()
    )


def test_a_credit_statement_is_pushed_to_the_customers_balance_once(stripe_standin):
    """A negative statement is not skipped: its total (tax included) becomes a credit on the
    customer's Stripe balance under a key derived from the statement, even when the first
    answer is lost; its mirror is settled, with no invoice, and nothing is sent again."""
    organization = make_organization()
    statement = credit_statement(organization)
    assert statement.total == Decimal("-530.00")
    push.statement_closed(statement)
    push.ensure_customer(organization, stripe_client.client())
    stripe_standin.lose_answers(1)  # the credit is made, its answer lost

    assert push.sync()["pushed"] == 0
    assert push.sync(mirror_of(statement).next_push_at)["pushed"] == 1

    [credit] = stripe_standin.balance_transactions.values()
    assert credit["amount"] == -53_000 and credit["currency"] == "cny"
    assert credit["metadata"]["statement_id"] == str(statement.pk)
    customer = BillingAccount.objects.for_organization(organization).get().stripe_customer_id
    assert stripe_standin.customers[customer]["balance"] == -53_000
    keys = [c.idempotency_key for c in stripe_standin.posts("/v1/customers/")]
    assert keys == [f"stmt-{statement.pk}-credit"] * 2
    mirror = mirror_of(statement)
    assert (mirror.status, mirror.stripe_invoice_id) == (StripeInvoiceStatus.PAID, "")
    assert mirror.pushed_items == [f"stmt-{statement.pk}-credit"]
    assert stripe_standin.invoices == {}
    assert stripe_standin.violations == []

    calls = len(stripe_standin.calls)
    push.sync()
    assert len(stripe_standin.calls) == calls


def test_a_lost_credit_close_is_caught_up(stripe_standin):
    organization = make_organization()
    statement = credit_statement(organization)  # closed, no signal sent
    assert push.sync()["caught_up"] == 1
    assert mirror_of(statement).status == StripeInvoiceStatus.PAID
    assert len(stripe_standin.balance_transactions) == 1


def test_an_invoice_the_credit_covers_is_paid_at_finalizing(stripe_standin):
    """The next month's invoice is covered by the credit: Stripe answers the finalize with
    `paid` (nothing charged). The payment is recorded then — statement paid in full, one
    notification — and the `invoice.paid` event arriving afterwards changes nothing."""
    organization = make_organization()
    push.statement_closed(credit_statement(organization))
    push.sync()
    statement = charge_statement(organization, "400.00")  # 424.00 with tax, of 530.00 credit
    push.statement_closed(statement)

    push.sync()

    mirror = mirror_of(statement)
    invoice = stripe_standin.invoices[mirror.stripe_invoice_id]
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", 0)
    assert mirror.status == StripeInvoiceStatus.PAID
    assert mirror.amount_paid == Decimal("424.00")
    assert Statement.objects.for_organization(organization).get(pk=statement.pk).amount_paid == (
        Decimal("424.00")
    )
    assert paid_notices(organization) == 1

    assert deliver(event("invoice.paid", invoice)).json()["outcome"] == "already_paid"

    assert Statement.objects.for_organization(organization).get(pk=statement.pk).amount_paid == (
        Decimal("424.00")
    )
    assert paid_notices(organization) == 1


def _covered_by_credit(organization):
    """A credit of 530.00 in Stripe, then a closed statement of 424.00 waiting to be pushed."""
    push.statement_closed(credit_statement(organization))
    push.sync()
    statement = charge_statement(organization, "400.00")
    push.statement_closed(statement)
    return statement


def _paid_once(organization, statement) -> None:
    mirror = mirror_of(statement)
    assert (mirror.status, mirror.amount_paid) == (StripeInvoiceStatus.PAID, Decimal("424.00"))
    assert (mirror.push_error, mirror.next_push_at) == ("", None)
    assert Statement.objects.for_organization(organization).get(pk=statement.pk).amount_paid == (
        Decimal("424.00")
    )
    assert paid_notices(organization) == 1


def test_the_paid_event_first_then_the_finalize_answer(stripe_standin, monkeypatch):
    """The other order: the `invoice.paid` event is applied while the push's finalize answer
    (`paid`) is on its way; the push, recording that answer after it, records nothing twice.
    (The order is forced by delivering the event just before the push handles the answer.)"""
    organization = make_organization()
    statement = _covered_by_credit(organization)
    record = push._finalized
    outcomes = []

    def event_first(mirror, finalized, currency):
        invoice = stripe_standin.invoices[mirror.stripe_invoice_id]
        outcomes.append(deliver(event("invoice.paid", invoice)).json()["outcome"])
        record(mirror, finalized, currency)

    monkeypatch.setattr(push, "_finalized", event_first)

    assert push.sync()["pushed"] == 1

    assert outcomes == ["paid"]
    _paid_once(organization, statement)


def test_a_lost_finalize_answer_is_settled_by_the_event(stripe_standin):
    """Stripe finalized the invoice (paid by the credit) but its answer was lost: the push
    failed and would retry; the `invoice.paid` event records the payment, after which the
    sync has nothing left to send."""
    organization = make_organization()
    statement = _covered_by_credit(organization)
    stripe_standin.go_down_after(3)  # the invoice, its item and the tax; not the finalize
    push.sync()
    stripe_standin.up()
    stripe_standin.lose_answers(1)
    push.sync(mirror_of(statement).next_push_at)  # finalized (paid) in Stripe, the answer lost
    invoice = stripe_standin.invoices[mirror_of(statement).stripe_invoice_id]
    assert invoice["status"] == "paid" and mirror_of(statement).status == "draft"

    assert deliver(event("invoice.paid", invoice)).json()["outcome"] == "paid"

    calls = len(stripe_standin.calls)
    assert push.sync(timezone.now() + dt.timedelta(days=1))["pushed"] == 0
    assert len(stripe_standin.calls) == calls
    _paid_once(organization, statement)


def test_a_partial_credit_and_the_rest_charged_make_the_statement_paid(stripe_standin):
    """530.00 of credit against a 1,060.00 invoice: Stripe charges 530.00; the statement
    records 1,060.00 paid (charged plus credit)."""
    organization = make_organization()
    push.statement_closed(credit_statement(organization))
    push.sync()
    statement = charge_statement(organization, "1000.00")
    push.statement_closed(statement)
    push.sync()
    mirror = mirror_of(statement)
    assert mirror.status == StripeInvoiceStatus.OPEN
    assert mirror.amount_due == Decimal("530.00")

    paid = stripe_standin.pay(mirror.stripe_invoice_id)
    assert paid["amount_paid"] == 53_000
    assert deliver(event("invoice.paid", paid)).json()["outcome"] == "paid"

    assert Statement.objects.for_organization(organization).get(pk=statement.pk).amount_paid == (
        Decimal("1060.00")
    )
