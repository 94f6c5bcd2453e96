"""Statements: refreshed while open (the same ledger rewrites nothing), closed once and never
changed; late usage goes to the next statement marked with its month, priced against what its
month's allowance had left, reversals (`usage.reverse`) of a closed month credited there too;
statements close in order, after the month and its grace; the close is announced after commit;
spend to date; on PostgreSQL, triggers refuse any change to a closed statement and its lines,
even by raw SQL.

Real: the services, the database, the ledger (rows written directly, as the worker protocol or
an import appends them), PostgreSQL's table lock in the race test and its triggers (skipped on
SQLite, which has a single writer and no triggers). Simulated: the clock (`now` passed in).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from ironbowl.analytics import usage as ledger_usage
from ironbowl.analytics.models import UsageRecord
from ironbowl.billing import plans, rating, signals, statements
from ironbowl.billing.models import LineKind, Statement, StatementLine, StatementStatus
from tenants.audit import SYSTEM
from tenants.errors import ConflictError, DomainError
from tenants.models import AuditEntry
from tests.billing.conftest import hire, local, usage
from tests.races import in_thread, require_row_locks, someone_waits_for_a_lock

SH = "Asia/Shanghai"
MARCH, APRIL, MAY = dt.date(2024, 3, 1), dt.date(2024, 4, 1), dt.date(2024, 5, 1)
IN_MAY = dt.datetime(2024, 5, 20, tzinfo=dt.UTC)


def usage_records(organization):
    return UsageRecord.objects.for_organization(organization)


def lines(statement):
    return list(
        StatementLine.objects.for_organization(statement.organization)
        .filter(statement=statement)
        .order_by("position")
        .values_list("id", "kind", "amount", "late_period", "used", "included")
    )


def stream(organization, hours, at, employment=None):
    return usage(organization, "stream_minutes", hours * 60, at, employment)


@pytest.mark.django_db
def test_refresh_writes_the_rating_and_the_same_ledger_rewrites_nothing(shanghai):
    employment = hire(shanghai)
    stream(shanghai, 320, local(SH, 2024, 3, 3), employment)

    first = statements.refresh(shanghai, MARCH, now=IN_MAY)
    before = lines(first)
    again = statements.refresh(shanghai, dt.date(2024, 3, 17), now=IN_MAY)

    assert again.pk == first.pk and again.status == StatementStatus.OPEN
    assert lines(again) == before  # the same rows, ids included
    assert again.subtotal == sum(amount for _id, _kind, amount, *_rest in before)
    assert again.total == again.subtotal - again.discount + again.tax
    assert [kind for _id, kind, *_rest in before] == [LineKind.STREAM_HOURS, "platform_fee"]


@pytest.mark.django_db
def test_a_closed_statement_never_changes_and_late_usage_goes_to_the_next_marked(shanghai):
    employment = hire(shanghai)
    stream(shanghai, 100, local(SH, 2024, 3, 3), employment)
    closed = statements.close(shanghai, MARCH, now=IN_MAY)
    frozen = (lines(closed), closed.total, closed.ledger_watermark)

    # March usage reported after the close: 250 more hours, of which 200 were still included.
    late = stream(shanghai, 250, local(SH, 2024, 3, 30, 23), employment)
    with pytest.raises(ConflictError) as refused:
        statements.refresh(shanghai, MARCH, now=IN_MAY)
    again = statements.close(shanghai, MARCH, now=IN_MAY)
    april = statements.refresh(shanghai, APRIL, now=IN_MAY)

    assert refused.value.code == "statement_closed"
    assert late.pk > closed.ledger_watermark
    closed.refresh_from_db()
    assert (lines(closed), closed.total, closed.ledger_watermark) == frozen
    assert (lines(again), again.total) == frozen[:2]
    (late_line,) = [row for row in lines(april) if row[3] is not None]
    _id, kind, amount, late_period, used, included = late_line
    assert (kind, late_period, used, included) == (LineKind.STREAM_HOURS, MARCH, 250, 200)
    assert amount == Decimal("900.00")  # 50 hours past March's 300, at 18.00


@pytest.mark.django_db
def test_a_late_reversal_gives_back_what_was_billed_in_its_month(shanghai):
    employment = hire(shanghai)
    original = stream(shanghai, 350, local(SH, 2024, 3, 3), employment)  # 50 hours overage
    statements.close(shanghai, MARCH, now=IN_MAY)
    ledger_usage.reverse(shanghai, original, "Counted twice.", SYSTEM)
    stream(shanghai, 290, local(SH, 2024, 3, 3), employment)  # the corrected figure

    april = rating.rate(shanghai, APRIL)

    late = [line for line in april.lines if line.late_period == MARCH]
    # 350 → 290 hours in March: 10 hours of allowance taken back, the 50 overage hours credited
    # — and nothing else, since 290 of the 300 included hours are used.
    assert sum(line.used for line in late) == -60
    assert sum(line.included for line in late) == -10
    assert sum(line.amount for line in late) == Decimal("-900.00")


@pytest.mark.django_db
def test_statements_close_in_order_and_only_after_their_month(shanghai):
    statements.refresh(shanghai, MARCH, now=IN_MAY)

    with pytest.raises(ConflictError) as out_of_order:
        statements.close(shanghai, APRIL, now=IN_MAY)
    with pytest.raises(DomainError) as too_early:
        statements.close(shanghai, MAY, now=IN_MAY)
    statements.close(shanghai, MARCH, now=IN_MAY)
    statements.close(shanghai, APRIL, now=IN_MAY)
    with pytest.raises(DomainError) as before_a_closed_one:
        statements.refresh(shanghai, dt.date(2024, 2, 1), now=IN_MAY)

    assert out_of_order.value.code == "close_in_order"
    assert too_early.value.code == "period_not_over"
    assert before_a_closed_one.value.code == "later_month_closed"
    assert not Statement.objects.for_organization(shanghai).filter(period=MAY).exists()
    assert not Statement.objects.for_organization(shanghai).filter(period="2024-02-01").exists()


@pytest.mark.django_db
def test_the_close_is_announced_after_commit_and_audited(
    shanghai, django_capture_on_commit_callbacks
):
    heard = []

    def receiver(sender, statement, **kwargs):
        heard.append((statement.pk, statement.status))

    signals.statement_closed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            closed = statements.close(shanghai, MARCH, now=IN_MAY)
        assert heard == []  # nothing before the commit
        for callback in callbacks:
            callback()
    finally:
        signals.statement_closed.disconnect(receiver)

    assert heard == [(closed.pk, StatementStatus.CLOSED)]
    entry = AuditEntry.objects.for_organization(shanghai).get(action="billing.close_statement")
    assert entry.object_id == str(closed.pk)
    assert entry.actor_label == SYSTEM.label


@pytest.mark.django_db
def test_the_monthly_run_closes_last_month_after_its_grace(shanghai):
    april_ends = local(SH, 2024, 5, 1)
    statements.refresh(shanghai, MARCH, now=april_ends)  # left open by an earlier outage

    during_grace = statements.close_due(shanghai, april_ends + dt.timedelta(days=1))
    after_grace = statements.close_due(shanghai, april_ends + statements.GRACE)
    rerun = statements.close_due(shanghai, april_ends + statements.GRACE)

    assert [s.period for s in during_grace] == [MARCH]  # its own grace ended long ago
    assert [s.period for s in after_grace] == [APRIL]
    assert rerun == []
    assert set(Statement.objects.for_organization(shanghai).values_list("period", "status")) == {
        (MARCH, "closed"),
        (APRIL, "closed"),
    }


@pytest.mark.django_db
def test_spend_to_date_is_the_open_month_so_far_with_tax(shanghai):
    employment = hire(shanghai)
    now = local(SH, 2024, 3, 20, 12)
    stream(shanghai, 400, local(SH, 2024, 3, 3), employment)

    spent = statements.spend_to_date(shanghai, now)

    # 100 hours past the allowance at 18.00, plus the platform fee, plus 6% tax.
    assert spent == (Decimal("1800.00") + Decimal("4800.00")) * Decimal("1.06")
    assert not Statement.objects.for_organization(shanghai).exists()


@pytest.mark.django_db
def test_a_plan_change_cannot_start_inside_a_closed_month(shanghai):
    statements.close(shanghai, MARCH, now=IN_MAY)

    with pytest.raises(ConflictError) as refused:
        plans.change_plan(SYSTEM, shanghai, "enterprise", at=local(SH, 2024, 3, 20))

    assert refused.value.code == "period_closed"
    shanghai.refresh_from_db()
    assert shanghai.plan == "standard"


@pytest.mark.django_db(transaction=True)
def test_the_watermark_waits_for_a_record_being_inserted_and_counts_it(shanghai):
    """PostgreSQL: a record inserted in a transaction still open when the close starts is
    either counted by the close or gets an id above its watermark — never lost in between."""
    require_row_locks()
    inserted, ready, commit = {}, threading.Event(), threading.Event()

    def insert_and_hold():
        with transaction.atomic():
            record = stream(shanghai, 1, local(SH, 2024, 3, 31, 23))
            inserted["id"] = record.pk
            ready.set()
            commit.wait(timeout=60)

    writer, _writer_out = in_thread("writer", insert_and_hold)
    closer, closer_out = in_thread("closer", lambda: statements.close(shanghai, MARCH, now=IN_MAY))
    writer.start()
    assert ready.wait(timeout=60)
    closer.start()
    assert someone_waits_for_a_lock()  # the close waits for the insert's transaction
    commit.set()
    writer.join(timeout=60)
    closer.join(timeout=60)

    closed = closer_out["result"]
    assert closed.ledger_watermark >= inserted["id"]
    assert any(row[1] == LineKind.STREAM_HOURS for row in lines(closed))


@pytest.mark.django_db
def test_a_reversed_seat_day_of_a_closed_month_is_credited_on_the_next_statement(shanghai):
    employment = hire(shanghai, seats=1, rate="3100.00")
    march = statements.close(shanghai, MARCH, now=IN_MAY)  # records March's seat-days first
    frozen = (lines(march), march.total)
    day = usage_records(shanghai).get(source_id=f"seat:{employment.pk}:2024-03-10")

    ledger_usage.reverse(shanghai, day, "Not on duty that day.", SYSTEM)
    april = statements.refresh(shanghai, APRIL, now=IN_MAY)

    march.refresh_from_db()
    assert (lines(march), march.total) == frozen
    (credit,) = [row for row in lines(april) if row[3] == MARCH]
    assert (credit[1], credit[2], credit[4]) == (LineKind.SEATS, Decimal("-100.00"), -1)


# --- PostgreSQL: a closed statement is final for every client -----------------------------------


def _require_postgresql() -> None:
    if connection.vendor == "postgresql":
        return
    reason = (
        "The closed-statement triggers exist on PostgreSQL only (SQLite relies on the services). "
        "Run with DATABASE_URL=postgres://… (CI does)."
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def closed_march(shanghai):
    _require_postgresql()
    stream(shanghai, 400, local(SH, 2024, 3, 3), hire(shanghai))
    return statements.close(shanghai, MARCH, now=IN_MAY)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE billing_statement SET total = total + 1 WHERE id = %(statement)s",
        "UPDATE billing_statement SET status = 'open' WHERE id = %(statement)s",
        "DELETE FROM billing_statement WHERE id = %(statement)s",
        "UPDATE billing_statementline SET amount = 0 WHERE statement_id = %(statement)s",
        "DELETE FROM billing_statementline WHERE statement_id = %(statement)s",
        "INSERT INTO billing_statementline (organization_id, statement_id, kind, description, "
        "quantity, unit, used, included, unit_price, amount, position) SELECT organization_id, "
        "id, 'discount', 'x', 1, '%%', 0, 0, -1, -1, 99 FROM billing_statement "
        "WHERE id = %(statement)s",
        "UPDATE billing_statementline SET statement_id = %(statement)s "
        "WHERE statement_id = %(other)s",
    ],
    ids=[
        "total",
        "reopen",
        "delete",
        "line-amount",
        "line-delete",
        "line-insert",
        "line-moved-in",
    ],
)
def test_on_postgresql_not_even_raw_sql_changes_a_closed_statement(closed_march, sql):
    april = statements.refresh(closed_march.organization, APRIL, now=IN_MAY)
    frozen = (lines(closed_march), closed_march.total)

    with (
        pytest.raises(DatabaseError, match="closed"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, {"statement": closed_march.pk, "other": april.pk})

    closed_march.refresh_from_db()
    assert (lines(closed_march), closed_march.total) == frozen
    assert closed_march.status == StatementStatus.CLOSED


@pytest.mark.django_db
def test_on_postgresql_payments_and_open_statements_still_change(closed_march):
    """What moves after the close — payments and refunds — may; an open statement's lines are
    rewritten by refresh as before."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE billing_statement SET amount_paid = total, amount_refunded = 1 WHERE id = %s",
            [closed_march.pk],
        )
    april = statements.refresh(closed_march.organization, APRIL, now=IN_MAY)
    stream(closed_march.organization, 400, local(SH, 2024, 4, 3))
    again = statements.refresh(closed_march.organization, APRIL, now=IN_MAY)

    closed_march.refresh_from_db()
    assert (closed_march.amount_paid, closed_march.amount_refunded) == (
        closed_march.total,
        Decimal(1),
    )
    assert again.total > april.total
