"""Pushing closed statements to Stripe: the organization's customer, one invoice item per payslip
and per organization line, and the invoice, finalized so that Stripe collects it.

The statement is the truth; Stripe only collects. Every request carries an idempotency key derived
from our ids (`org-{id}-customer`, `stmt-{id}-invoice`, `stmt-{id}-payslip-{employment}`,
`stmt-{id}-line-{line}`, `stmt-{id}-tax`, `stmt-{id}-finalize`), and the mirror records each item
Stripe confirmed, so a push retried after any failure creates nothing twice. A statement's close
only records a pending mirror; the push itself runs in `billing.sync_stripe`, so Stripe being slow
or down never holds up (or undoes) a close.

One item per payslip rather than per line: Stripe allows 250 items on an invoice and an
organization may employ hundreds of digital staff; the payslip's lines stay in the statement
(HTML, PDF, CSV), which is the bill of record.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

import stripe
import structlog
from celery import shared_task
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from avatars.models import Employment
from ironbowl.billing import stripe_client
from ironbowl.billing.dunning import billing_account
from ironbowl.billing.models import (
    BillingAccount,
    Statement,
    StatementLine,
    StatementStatus,
    StripeInvoice,
    StripeInvoiceStatus,
)
from tenants.models import Organization

logger = structlog.get_logger(__name__)

# Stripe's limit of items on one invoice.
MAX_INVOICE_ITEMS = 250
# A push holds its mirror this long; one that dies is taken up again after it.
LEASE = dt.timedelta(minutes=10)
MAX_BACKOFF = dt.timedelta(hours=6)
# Closed statements this recent with no mirror (a close whose signal was lost) are caught up.
CATCH_UP = dt.timedelta(days=2)
UNPUSHED = (StripeInvoiceStatus.PENDING, StripeInvoiceStatus.DRAFT)


class StatementMismatch(Exception):
    """The statement's lines, discount and tax do not add up to its total: nothing is sent."""


@dataclasses.dataclass(frozen=True)
class InvoiceItem:
    key: str  # the idempotency key, also what the mirror records once Stripe confirmed it
    amount: int  # in the currency's minor unit; negative for a discount
    description: str
    metadata: dict[str, str]


# --- Selectors ------------------------------------------------------------------------------------


def _payslip_names(organization: Organization, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = (
        Employment.objects.for_organization(organization)
        .filter(pk__in=ids)
        .select_related("avatar", "position")
    )
    return {row.pk: f"{row.avatar} · {row.position.title}" for row in rows}


def invoice_items(statement: Statement) -> list[InvoiceItem]:
    """What Stripe is sent for a closed statement: a payslip's lines summed into one item, the
    organization's own lines (platform fee) one each, the discount when it is not a line already,
    and the tax. Items of zero are left out. Their sum is the statement's total, exactly."""
    organization = statement.organization
    currency = statement.currency
    lines = list(
        StatementLine.objects.for_organization(organization)
        .filter(statement=statement)
        .order_by("position", "id")
    )
    payslips: dict[uuid.UUID, list[StatementLine]] = defaultdict(list)
    own_lines: list[StatementLine] = []
    for line in lines:
        if line.employment_id is None:
            own_lines.append(line)
        else:
            payslips[line.employment_id].append(line)
    names = _payslip_names(organization, list(payslips))
    sid = statement.pk
    base = {"organization_id": str(organization.pk), "statement_id": str(sid)}

    def item(key: str, amount: Decimal, description: str, **metadata: str) -> InvoiceItem:
        try:
            minor = stripe_client.to_minor(amount, currency)
        except (KeyError, ValueError) as error:  # an unknown currency, a fraction of a cent
            raise StatementMismatch(f"{key}: {error}") from error
        return InvoiceItem(
            key=key, amount=minor, description=description[:500], metadata={**base, **metadata}
        )

    with translation.override(organization.locale):
        slips = [
            item(
                f"stmt-{sid}-payslip-{employment_id}",
                sum((line.amount for line in group), Decimal(0)),
                _("Payslip %(month)s: %(employee)s")
                % {
                    "month": f"{statement.period:%Y-%m}",
                    "employee": names.get(employment_id, str(employment_id)),
                },
                employment_id=str(employment_id),
            )
            for employment_id, group in payslips.items()
        ]
        others = [
            item(f"stmt-{sid}-line-{line.pk}", line.amount, line.description, line_id=str(line.pk))
            for line in own_lines
        ]
        lines_total = sum((line.amount for line in lines), Decimal(0))
        if statement.discount and lines_total == statement.subtotal:
            others.append(item(f"stmt-{sid}-discount", -statement.discount, _("Discount")))
        elif lines_total != statement.subtotal - statement.discount:
            raise StatementMismatch(
                f"lines add up to {lines_total}, the statement says {statement.subtotal} "
                f"less {statement.discount}"
            )
        others.append(item(f"stmt-{sid}-tax", statement.tax, _("Tax")))
        slips = [slip for slip in slips if slip.amount]
        others = [other for other in others if other.amount]
        room = MAX_INVOICE_ITEMS - len(others)
        if len(slips) > room:
            kept, folded = slips[: room - 1], slips[room - 1 :]
            rest = InvoiceItem(
                key=f"stmt-{sid}-payslips-from-{room - 1}",
                amount=sum(slip.amount for slip in folded),
                description=_("%(count)d more payslips (listed in the statement)")
                % {"count": len(folded)},
                metadata=base,
            )
            slips = [*kept, rest]
    items = [*slips, *others]
    if sum(i.amount for i in items) != item("total", statement.total, "").amount:
        raise StatementMismatch(f"the items do not add up to the total, {statement.total}")
    return items


# --- Services -------------------------------------------------------------------------------------


def statement_closed(statement: Statement) -> StripeInvoice | None:
    """Record that a closed statement is to be invoiced in Stripe (the sync task sends it).
    Nothing without Stripe configured, and nothing for a statement with nothing to collect."""
    if not stripe_client.configured() or statement.status != StatementStatus.CLOSED:
        return None
    if statement.total <= 0:
        logger.info("stripe_nothing_to_collect", statement_id=str(statement.pk))
        return None
    mirror, _created = StripeInvoice.objects.for_organization(statement.organization).get_or_create(
        statement=statement,
        defaults={
            "organization": statement.organization,
            "currency": statement.currency,
            "amount_due": statement.total,
        },
    )
    return mirror


def ensure_customer(organization: Organization, api: stripe.StripeClient) -> BillingAccount:
    """The organization's Stripe customer, created on first need (key `org-{id}-customer`)."""
    account = billing_account(organization)
    if account.stripe_customer_id:
        return account
    params: dict[str, Any] = {
        "name": organization.name,
        "metadata": {"organization_id": str(organization.pk), "organization": organization.slug},
    }
    if account.email:
        params["email"] = account.email
    try:
        customer = api.v1.customers.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": f"org-{organization.pk}-customer"},
        )
    except stripe.StripeError as error:
        raise stripe_client.translate_error(error) from error
    BillingAccount.objects.for_organization(organization).filter(
        pk=account.pk, stripe_customer_id=""
    ).update(stripe_customer_id=customer.id)
    account.refresh_from_db()
    return account


def _push(mirror: StripeInvoice, api: stripe.StripeClient) -> None:
    organization = mirror.organization
    statement = Statement.objects.for_organization(organization).get(pk=mirror.statement_id)
    items = invoice_items(statement)
    customer = ensure_customer(organization, api).stripe_customer_id
    currency = statement.currency.lower()
    mirrors = StripeInvoice.objects.for_organization(organization).filter(pk=mirror.pk)
    try:
        if not mirror.stripe_invoice_id:
            invoice = api.v1.invoices.create(
                params={
                    "customer": customer,
                    "currency": currency,
                    "collection_method": "charge_automatically",
                    # Stripe would finalize a draft by itself after an hour, items or not.
                    "auto_advance": False,
                    "pending_invoice_items_behavior": "exclude",
                    "description": str(statement),
                    "metadata": {
                        "organization_id": str(organization.pk),
                        "statement_id": str(statement.pk),
                    },
                },
                options={"idempotency_key": f"stmt-{statement.pk}-invoice"},
            )
            if not invoice.id:
                raise stripe_client.StripeUnavailable("Stripe answered an invoice without an id")
            mirror.stripe_invoice_id = invoice.id
            mirror.status = StripeInvoiceStatus.DRAFT
            mirrors.update(stripe_invoice_id=invoice.id, status=StripeInvoiceStatus.DRAFT)
        for item in items:
            if item.key in mirror.pushed_items:
                continue
            api.v1.invoice_items.create(
                params={
                    "customer": customer,
                    "invoice": mirror.stripe_invoice_id,
                    "amount": item.amount,
                    "currency": currency,
                    "description": item.description,
                    "metadata": item.metadata,
                },
                options={"idempotency_key": item.key},
            )
            mirror.pushed_items = [*mirror.pushed_items, item.key]
            mirrors.update(pushed_items=mirror.pushed_items)
        finalized = api.v1.invoices.finalize_invoice(
            mirror.stripe_invoice_id,
            params={"auto_advance": True},
            options={"idempotency_key": f"stmt-{statement.pk}-finalize"},
        )
    except stripe.StripeError as error:
        raise stripe_client.translate_error(error) from error
    # A webhook may have moved the mirror on (paid) while we waited for this answer.
    mirrors.filter(status__in=UNPUSHED).update(
        status=finalized.status or StripeInvoiceStatus.OPEN,
        amount_due=stripe_client.from_minor(finalized.amount_due, statement.currency),
    )
    mirrors.update(next_push_at=None, push_error="")
    logger.info(
        "stripe_invoice_pushed",
        statement_id=str(statement.pk),
        stripe_invoice_id=mirror.stripe_invoice_id,
        items=len(items),
    )


def _backoff(attempts: int) -> dt.timedelta:
    return min(dt.timedelta(minutes=2 ** min(max(attempts - 1, 0), 12)), MAX_BACKOFF)


def push_invoice(mirror_id: uuid.UUID, now: dt.datetime | None = None) -> bool:
    """Send one pending mirror's statement to Stripe; returns whether it is now finalized there.

    The mirror is claimed first (a lease in `next_push_at`), so two syncs never push the same
    statement at once. A failure is kept in `push_error` and tried again later, sooner when
    Stripe was unavailable than when it refused."""
    now = now or timezone.now()
    # Cross-tenant: the sync works through every organization's pending invoices.
    claimed = (
        StripeInvoice.objects.unscoped_dangerously()
        .filter(pk=mirror_id, status__in=UNPUSHED)
        .filter(Q(next_push_at__isnull=True) | Q(next_push_at__lte=now))
        .update(next_push_at=now + LEASE, push_attempts=F("push_attempts") + 1)
    )
    if not claimed:
        return False
    mirror = (
        StripeInvoice.objects.unscoped_dangerously()
        .select_related("organization")
        .get(pk=mirror_id)
    )
    mirrors = StripeInvoice.objects.for_organization(mirror.organization).filter(pk=mirror.pk)
    try:
        _push(mirror, stripe_client.client())
    except (stripe_client.StripeUnavailable, stripe_client.StripeRefused) as error:
        refused = isinstance(error, stripe_client.StripeRefused)
        wait = MAX_BACKOFF if refused else _backoff(mirror.push_attempts)
        mirrors.update(next_push_at=now + wait, push_error=str(error)[:300])
        logger.warning(
            "stripe_push_failed",
            statement_id=str(mirror.statement_id),
            refused=refused,
            error=str(error),
            retry_in_s=int(wait.total_seconds()),
        )
        return False
    except StatementMismatch as error:
        mirrors.update(next_push_at=now + MAX_BACKOFF, push_error=str(error)[:300])
        logger.error("stripe_statement_mismatch", statement_id=str(mirror.statement_id))
        return False
    return True


def catch_up_closed_statements(now: dt.datetime) -> int:
    """Mirrors for recently closed statements that have none (their close's signal was lost)."""
    lost = (
        Statement.objects.unscoped_dangerously()
        .filter(status=StatementStatus.CLOSED, closed_at__gte=now - CATCH_UP, total__gt=0)
        .filter(invoice__isnull=True)
        .select_related("organization")
    )
    return sum(1 for statement in lost if statement_closed(statement) is not None)


def sync(now: dt.datetime | None = None) -> dict[str, int]:
    """Everything owed to Stripe: pending and interrupted invoices, then pending refunds."""
    from ironbowl.billing import refunds  # refunds reads the mirrors this module writes

    if not stripe_client.configured():
        return {}
    now = now or timezone.now()
    caught_up = catch_up_closed_statements(now)
    due = (
        StripeInvoice.objects.unscoped_dangerously()
        .filter(status__in=UNPUSHED)
        .filter(Q(next_push_at__isnull=True) | Q(next_push_at__lte=now))
        .order_by("created_at")
        .values_list("pk", flat=True)
    )
    pushed = failed = 0
    for mirror_id in list(due):
        try:
            pushed += push_invoice(mirror_id, now)
        except Exception:  # one statement's surprise must not hold up the others (leased)
            logger.exception("stripe_push_crashed", mirror_id=str(mirror_id))
            failed += 1
    return {
        "caught_up": caught_up,
        "pushed": pushed,
        "crashed": failed,
        **refunds.retry_pending(now),
    }


@shared_task(name="billing.sync_stripe")
def sync_stripe() -> dict[str, int]:
    """Push what Stripe is owed (`push.sync`); does nothing without STRIPE_SECRET_KEY."""
    return sync()
