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

A statement whose total is negative (credits outweigh charges) is not invoiced: its amount is
pushed as a credit to the customer's balance (key `stmt-{id}-credit`), which Stripe applies to
the next invoices; its mirror is then settled (`paid`, nothing collected, no Stripe invoice). An
invoice the credit covers entirely comes back from finalizing already `paid`: the payment is
recorded there and then (`dunning.record_payment`, once, whichever of this and the webhook is
first).

The customer is also where the organization's billing contact lives (`set_billing_email`: key
`org-{id}-customer-email-{version}`) and where finance adds a card or bank debit, through a
Stripe Billing Portal session (`billing_portal_url`: key `org-{id}-portal-{minute}`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

import stripe
import structlog
from celery import shared_task
from django.contrib.auth.base_user import BaseUserManager
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from avatars.models import Employment
from ironbowl.billing import dunning, stripe_client
from ironbowl.billing.models import (
    BillingAccount,
    Statement,
    StatementLine,
    StatementStatus,
    StripeInvoice,
    StripeInvoiceStatus,
)
from tenants import audit
from tenants.audit import SYSTEM, Actor
from tenants.models import Membership, Organization
from tenants.roles import Role

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
    """Record that a closed statement is to be sent to Stripe (the sync task sends it): an
    invoice, or for a negative total a credit to the customer's balance. Nothing without Stripe
    configured, and nothing for a statement of zero."""
    if not stripe_client.configured() or statement.status != StatementStatus.CLOSED:
        return None
    if statement.total == 0:
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


# --- The customer ---------------------------------------------------------------------------------


def _first_owner_email(organization: Organization) -> str:
    email = (
        Membership.objects.for_organization(organization)
        .filter(role=Role.OWNER)
        .exclude(user__email="")
        .order_by("created_at", "id")
        .values_list("user__email", flat=True)
        .first()
    )
    return email or ""


def ensure_customer(organization: Organization, api: stripe.StripeClient) -> BillingAccount:
    """The organization's Stripe customer, created on first need (key `org-{id}-customer`),
    with the billing e-mail — the first owner's when none was set, which is then kept."""
    account = BillingAccount.objects.for_organization(organization).first()
    if account is not None and account.stripe_customer_id:
        return account
    with transaction.atomic():
        # Locked (made if need be, and not kept when Stripe fails): an e-mail set meanwhile
        # waits, then finds the customer and updates it.
        account = dunning.locked_account(organization)
        if account.stripe_customer_id:
            return account
        before = audit.snapshot(account)
        email = account.email or _first_owner_email(organization)
        params: dict[str, Any] = {
            "name": organization.name,
            "metadata": {
                "organization_id": str(organization.pk),
                "organization": organization.slug,
            },
        }
        if email:
            params["email"] = email
        try:
            customer = api.v1.customers.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"org-{organization.pk}-customer"},
            )
        except stripe.StripeError as error:
            raise stripe_client.translate_error(error) from error
        account.stripe_customer_id = customer.id
        account.email = email
        account.save(update_fields=["stripe_customer_id", "email", "updated_at"])
        audit.record_update(SYSTEM, organization, "billing.stripe_customer", account, before=before)
    return account


def set_billing_email(actor: Actor, organization: Organization, email: str) -> BillingAccount:
    """Set the billing contact's e-mail (where Stripe sends invoices and receipts); audited.

    With a Stripe customer, Stripe is updated first (key `org-{id}-customer-email-{version}`,
    the version being the account's last change, so a retry of the same change replays and a
    later change is a new request); when Stripe does not answer or refuses, nothing is saved
    (`stripe_unavailable` 503, `stripe_refused` 409)."""
    email = BaseUserManager.normalize_email(email.strip())
    with transaction.atomic():
        account = dunning.locked_account(organization)
        if account.email == email:
            return account
        if account.stripe_customer_id and stripe_client.configured():
            version = int(account.updated_at.timestamp() * 1_000_000)
            try:
                stripe_client.client().v1.customers.update(
                    account.stripe_customer_id,
                    params={"email": email},
                    options={"idempotency_key": f"org-{organization.pk}-customer-email-{version}"},
                )
            except stripe.StripeError as error:
                raise stripe_client.as_domain_error(stripe_client.translate_error(error)) from error
        before = audit.snapshot(account)
        account.email = email
        account.save(update_fields=["email", "updated_at"])
        audit.record_update(actor, organization, "billing.set_email", account, before=before)
    return account


def billing_portal_url(
    actor: Actor, organization: Organization, return_url: str, now: dt.datetime | None = None
) -> str:
    """A Stripe Billing Portal session for the organization's customer (made if need be), where
    finance adds or changes the card or bank debit Stripe charges; returns its URL, which
    leads back to `return_url`. Audited. Asked twice within a minute for the same return
    address, Stripe answers the same session (key `org-{id}-portal-{minute}-{address hash}`).
    Refused without Stripe (`stripe_not_configured`)."""
    if not stripe_client.configured():
        raise stripe_client.not_configured()
    minute = f"{(now or timezone.now()).astimezone(dt.UTC):%Y%m%d%H%M}"
    back = hashlib.sha256(return_url.encode()).hexdigest()[:12]
    api = stripe_client.client()
    try:
        account = ensure_customer(organization, api)
        session = api.v1.billing_portal.sessions.create(
            params={"customer": account.stripe_customer_id, "return_url": return_url},
            # The return address is part of the request: the console and the API may send two.
            options={"idempotency_key": f"org-{organization.pk}-portal-{minute}-{back}"},
        )
    except stripe.StripeError as error:
        raise stripe_client.as_domain_error(stripe_client.translate_error(error)) from error
    except (stripe_client.StripeUnavailable, stripe_client.StripeRefused) as error:
        raise stripe_client.as_domain_error(error) from error
    audit.record(actor, organization, "billing.open_portal", account)
    return session.url


# --- The push -------------------------------------------------------------------------------------


def _push_credit(mirror: StripeInvoice, statement: Statement, api: stripe.StripeClient) -> None:
    """A negative statement: its amount credited to the customer's balance, once."""
    organization = mirror.organization
    customer = ensure_customer(organization, api).stripe_customer_id
    key = f"stmt-{statement.pk}-credit"
    try:
        minor = stripe_client.to_minor(statement.total, statement.currency)
    except (KeyError, ValueError) as error:
        raise StatementMismatch(f"{key}: {error}") from error
    with translation.override(organization.locale):
        description = _("Credit from the statement of %(month)s") % {
            "month": f"{statement.period:%Y-%m}"
        }
    try:
        api.v1.customers.balance_transactions.create(
            customer,
            params={
                "amount": minor,
                "currency": statement.currency.lower(),
                "description": description,
                "metadata": {
                    "organization_id": str(organization.pk),
                    "statement_id": str(statement.pk),
                },
            },
            options={"idempotency_key": key},
        )
    except stripe.StripeError as error:
        raise stripe_client.translate_error(error) from error
    StripeInvoice.objects.for_organization(organization).filter(
        pk=mirror.pk, status__in=UNPUSHED
    ).update(status=StripeInvoiceStatus.PAID, pushed_items=[key], next_push_at=None, push_error="")
    logger.info("stripe_credit_pushed", statement_id=str(statement.pk), amount=minor)


def _finalized(mirror: StripeInvoice, finalized: stripe.Invoice, currency: str) -> None:
    """Record what finalizing answered; an invoice paid at once (the customer's credit covered
    it) has its payment recorded now. A webhook may have moved the mirror on meanwhile."""
    organization = mirror.organization
    with transaction.atomic():
        locked = (
            StripeInvoice.objects.for_organization(organization)
            .select_for_update(of=("self",))
            .select_related("statement")
            .get(pk=mirror.pk)
        )
        paid = finalized.status == StripeInvoiceStatus.PAID
        if locked.status in UNPUSHED:
            locked.amount_due = stripe_client.from_minor(finalized.amount_due, currency)
            if not paid:  # paid: `record_payment` below makes it so
                locked.status = finalized.status or StripeInvoiceStatus.OPEN
        locked.next_push_at = None
        locked.push_error = ""
        locked.save(update_fields=["status", "amount_due", "next_push_at", "push_error"])
        if paid:
            settled = stripe_client.settled_minor(finalized.to_dict())
            dunning.record_payment(organization, locked, settled)


def _push(mirror: StripeInvoice, api: stripe.StripeClient) -> None:
    organization = mirror.organization
    statement = Statement.objects.for_organization(organization).get(pk=mirror.statement_id)
    if statement.total < 0:
        _push_credit(mirror, statement, api)
        return
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
    _finalized(mirror, finalized, statement.currency)
    logger.info(
        "stripe_invoice_pushed",
        statement_id=str(statement.pk),
        stripe_invoice_id=mirror.stripe_invoice_id,
        items=len(items),
        status=finalized.status,
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
        .filter(status=StatementStatus.CLOSED, closed_at__gte=now - CATCH_UP)
        .exclude(total=0)
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
