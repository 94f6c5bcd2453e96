"""Monthly statements: written from rating while open, closed once, then never changed.

`refresh` re-rates an open statement from the ledger (the same ledger gives the same lines, and
then nothing is rewritten). `close` records the month's remaining seat-days, takes the ledger
watermark, rates the month up to it and makes the statement final; usage of the month that
arrives later goes to the next statement, marked late. Statements close in month order, and a
month after a closed one cannot be refreshed or closed out of turn. `spend_to_date` is the open
month's total so far.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

import structlog
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from ironbowl.analytics.models import UsageRecord
from ironbowl.billing import plans, rating, seats, signals
from ironbowl.billing.models import Statement, StatementLine, StatementStatus
from tenants import audit
from tenants.audit import SYSTEM, Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization
from tenants.signals import send_after_commit

logger = structlog.get_logger(__name__)

# A month is closed this long after it ended locally: usage reported a little late (a worker
# back from an outage, an import) still lands in its own month.
GRACE = dt.timedelta(days=2)

LINE_FIELDS = (
    "employment_id",
    "subscription_id",
    "kind",
    "description",
    "quantity",
    "unit",
    "used",
    "included",
    "unit_price",
    "amount",
    "late_period",
)


def _zone(organization: Organization) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(organization.time_zone)


def current_period(organization: Organization, now: dt.datetime | None = None) -> dt.date:
    """The first day of the organization's local month at `now`."""
    return rating.month_of(now or timezone.now(), _zone(organization))


def statements_of(organization: Organization) -> Any:
    return Statement.objects.for_organization(organization)


def lines_of(statement: Statement) -> Any:
    return StatementLine.objects.for_organization(statement.organization).filter(
        statement=statement
    )


# --- Writing ------------------------------------------------------------------------------------


def _locked(organization: Organization, period: dt.date) -> Statement:
    """The month's statement, created when missing, locked for this transaction."""
    found = statements_of(organization).select_for_update().filter(period=period).first()
    if found is not None:
        return found  # type: ignore[no-any-return]
    currency = plans.ensure_subscription(organization).plan.currency
    try:
        with transaction.atomic():
            created: Statement = Statement.objects.create(
                organization=organization, period=period, currency=currency
            )
            return created
    except IntegrityError:  # created meanwhile by another caller
        return statements_of(organization).select_for_update().get(period=period)  # type: ignore[no-any-return]


def _refuse_closed_after(organization: Organization, period: dt.date) -> None:
    later = (
        statements_of(organization)
        .filter(period__gt=period, status=StatementStatus.CLOSED)
        .order_by("period")
        .first()
    )
    if later is not None:
        raise ConflictError(
            "later_month_closed",
            _(
                "The statement of %(later)s is closed already: usage of %(month)s that it did "
                "not bill goes to the next open statement, marked late."
            )
            % {"later": f"{later.period:%Y-%m}", "month": f"{period:%Y-%m}"},
        )


def _refuse_open_before(organization: Organization, period: dt.date) -> None:
    earlier = (
        statements_of(organization)
        .filter(period__lt=period, status=StatementStatus.OPEN)
        .order_by("period")
        .first()
    )
    if earlier is not None:
        raise ConflictError(
            "close_in_order",
            _("Statements close in order: close %(earlier)s before %(month)s.")
            % {"earlier": f"{earlier.period:%Y-%m}", "month": f"{period:%Y-%m}"},
        )


def _refuse_closed(statement: Statement) -> None:
    if statement.status == StatementStatus.CLOSED:
        raise ConflictError(
            "statement_closed",
            _(
                "The statement of %(month)s is closed and never changes; later usage of that "
                "month is billed on the next statement."
            )
            % {"month": f"{statement.period:%Y-%m}"},
        )


def _write(statement: Statement, rated: rating.RatedStatement, now: dt.datetime) -> None:
    """Make the statement's lines and totals what rating computed. Lines that are the same
    already are left as they are (re-rating the same ledger rewrites nothing)."""
    lines = [
        StatementLine(
            organization_id=statement.organization_id,
            statement=statement,
            employment_id=line.employment_id,
            subscription_id=line.subscription_id,
            kind=line.kind,
            description=line.description[:300],
            quantity=line.quantity,
            unit=line.unit,
            used=line.used,
            included=line.included,
            unit_price=line.unit_price,
            amount=line.amount,
            late_period=line.late_period,
            position=position,
        )
        for position, line in enumerate(rated.lines)
    ]
    stored = list(lines_of(statement).order_by("position", "id").values_list(*LINE_FIELDS))
    wanted = [tuple(getattr(line, field) for field in LINE_FIELDS) for line in lines]
    if stored != wanted:
        lines_of(statement).delete()
        StatementLine.objects.for_organization(statement.organization).bulk_create(
            lines, batch_size=1000
        )
    statement.currency = rated.currency
    statement.subtotal = rated.subtotal
    statement.discount = rated.discount
    statement.tax = rated.tax
    statement.total = rated.total
    statement.rated_at = now
    statement.save()


def refresh(
    organization: Organization, period: dt.date, *, now: dt.datetime | None = None
) -> Statement:
    """Re-rate the month's open statement (created when missing) from the ledger."""
    now = now or timezone.now()
    period = period.replace(day=1)
    if period > current_period(organization, now):
        raise DomainError(
            "period_in_future",
            _("%(month)s has not started yet.") % {"month": f"{period:%Y-%m}"},
            "period",
        )
    plans.ensure_subscription(organization)
    with transaction.atomic():
        statement = _locked(organization, period)
        _refuse_closed(statement)
        _refuse_closed_after(organization, period)
        _write(statement, rating.rate(organization, period), now)
    return statement


def ledger_watermark(organization: Organization) -> int:
    """A usage record id such that no record with a lower or equal id can still commit: what
    a statement closed now has seen for good (with the watermark of the organization's last
    closed statement as a floor)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Every INSERT takes ROW EXCLUSIVE on the table before it draws its id from the
            # sequence; SHARE conflicts with it. So LOCK waits for every transaction that is
            # inserting records to commit or roll back, and holds new ones back until this
            # transaction ends: once it returns, each id drawn so far is committed (and visible
            # to the next statement) or gone, and any record committed later draws a higher id.
            # Held only for the one read below. (SQLite has a single writer: a record committed
            # after this read always has a higher id.)
            with connection.cursor() as cursor:
                cursor.execute("LOCK TABLE analytics_usagerecord IN SHARE MODE")
        # The highest id of all: one step down the primary key's index. Only a number crosses
        # tenants; the organization's records are read below it by `rating.rate`. (Its own
        # highest id would cost a scan of the index past everyone's later records.)
        highest: int | None = UsageRecord.objects.unscoped_dangerously().aggregate(
            highest=Max("id")
        )["highest"]
    earlier: int | None = (
        statements_of(organization)
        .filter(status=StatementStatus.CLOSED)
        .aggregate(highest=Max("ledger_watermark"))["highest"]
    )
    return max(highest or 0, earlier or 0)


def close(
    organization: Organization,
    period: dt.date,
    *,
    now: dt.datetime | None = None,
    actor: Actor = SYSTEM,
) -> Statement:
    """Make the month's statement final: the month's seat-days not recorded yet are recorded,
    then it is rated from every record up to the ledger watermark, its lines and totals never
    changed again. Closing a closed statement returns it as it is. Sends `statement_closed` once
    the close has committed."""
    now = now or timezone.now()
    period = period.replace(day=1)
    end = rating.month_bounds(period, _zone(organization))[1]
    if now < end:
        raise DomainError(
            "period_not_over",
            _("%(month)s is not over yet in the organization's time zone.")
            % {"month": f"{period:%Y-%m}"},
            "period",
        )
    existing = statements_of(organization).filter(period=period).first()
    if existing is not None and existing.status == StatementStatus.CLOSED:
        return existing  # type: ignore[no-any-return]
    plans.ensure_subscription(organization)
    # Refused out of turn before anything is written (checked again under the lock).
    _refuse_open_before(organization, period)
    _refuse_closed_after(organization, period)
    # The hourly recording may have been down: the month's seat-days go in before the watermark.
    seats.record_seat_days(
        organization, period, rating.next_month(period) - dt.timedelta(days=1), now=now
    )
    watermark = ledger_watermark(organization)
    with transaction.atomic():
        statement = _locked(organization, period)
        if statement.status == StatementStatus.CLOSED:
            return statement
        _refuse_open_before(organization, period)
        _refuse_closed_after(organization, period)
        _write(statement, rating.rate(organization, period, watermark=watermark), now)
        statement.status = StatementStatus.CLOSED
        statement.closed_at = now
        statement.ledger_watermark = watermark
        statement.save(update_fields=["status", "closed_at", "ledger_watermark"])
        audit.record(
            actor,
            organization,
            "billing.close_statement",
            statement,
            after=audit.snapshot(statement),
        )
        send_after_commit(
            signals.statement_closed,
            Statement,
            "statement_closed_receiver_failed",
            statement=statement,
        )
    logger.info(
        "statement_closed",
        statement_id=str(statement.pk),
        period=f"{period:%Y-%m}",
        total=str(statement.total),
    )
    return statement


def spend_to_date(organization: Organization, now: dt.datetime | None = None) -> Decimal:
    """The open month's total so far, tax included (rated now, nothing written)."""
    return rating.rate(organization, current_period(organization, now)).total


# --- The monthly run ----------------------------------------------------------------------------


def periods_due(organization: Organization, now: dt.datetime) -> list[dt.date]:
    """Months to close now, oldest first: open statements of months that ended more than GRACE
    ago, and the last month once its grace is over (its statement made when missing)."""
    zone = _zone(organization)
    this_month = rating.month_of(now, zone)
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    due = {
        period
        for period in statements_of(organization)
        .filter(status=StatementStatus.OPEN, period__lt=this_month)
        .values_list("period", flat=True)
        if rating.month_bounds(period, zone)[1] + GRACE <= now
    }
    if rating.month_bounds(last_month, zone)[1] + GRACE <= now:
        closed = statements_of(organization).filter(
            period=last_month, status=StatementStatus.CLOSED
        )
        if not closed.exists():
            due.add(last_month)
    return sorted(due)


def close_due(organization: Organization, now: dt.datetime | None = None) -> list[Statement]:
    """Close the months due, in order; stops at the first that cannot close (logged)."""
    now = now or timezone.now()
    closed = []
    for period in periods_due(organization, now):
        try:
            closed.append(close(organization, period, now=now))
        except DomainError as error:
            logger.error(
                "statement_close_refused",
                organization=organization.slug,
                period=f"{period:%Y-%m}",
                code=error.code,
                detail=str(error.detail),
            )
            break
    return closed


def refresh_open(organization: Organization, now: dt.datetime | None = None) -> list[Statement]:
    """Re-rate this month's statement, and last month's while it waits for its close."""
    now = now or timezone.now()
    this_month = current_period(organization, now)
    previous = (this_month - dt.timedelta(days=1)).replace(day=1)
    refreshed = []
    for period in (previous, this_month):
        statement = statements_of(organization).filter(period=period).first()
        if period == previous and (statement is None or statement.status != StatementStatus.OPEN):
            continue
        try:
            refreshed.append(refresh(organization, period, now=now))
        except DomainError as error:
            logger.error(
                "statement_refresh_refused",
                organization=organization.slug,
                period=f"{period:%Y-%m}",
                code=error.code,
                detail=str(error.detail),
            )
    return refreshed
