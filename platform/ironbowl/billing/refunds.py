"""Refunds: money given back on a statement paid through Stripe. Platform staff only (see
billing/api/refunds.py); never more than was paid less what was already refunded.

A refund is written (pending, its amount counted as refunded) before Stripe is asked, under the
idempotency key `refund-{id}`; Stripe's answer makes it succeeded, or failed (its amount given
back). When Stripe does not answer, it stays pending and `billing.sync_stripe` asks again; a retry
first looks for a Stripe refund carrying our id, so even past Stripe's 24 hours of idempotency
keys a refund is made once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Literal

import stripe
import structlog
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _
from stripe.params import RefundCreateParams, RefundListParams

from ironbowl.billing import stripe_client
from ironbowl.billing.models import (
    Refund,
    RefundStatus,
    Statement,
    StripeInvoice,
    StripeInvoiceStatus,
)
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError

logger = structlog.get_logger(__name__)

# A pending refund is left this long to the request that made it before the sync asks again.
RETRY_AFTER = dt.timedelta(minutes=2)


def refundable(statement: Statement) -> Decimal:
    return statement.amount_paid - statement.amount_refunded


def _lock(statement_id: uuid.UUID) -> Statement:
    # Staff act across organizations: the statement is found by its id alone.
    return (
        Statement.objects.unscoped_dangerously()
        .select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=statement_id)
    )


def _paid_invoice(statement: Statement) -> StripeInvoice | None:
    return (
        StripeInvoice.objects.for_organization(statement.organization)
        .filter(statement=statement, status=StripeInvoiceStatus.PAID)
        .exclude(stripe_invoice_id="")
        .first()
    )


def refund_statement(actor: Actor, statement: Statement, amount: Decimal, reason: str) -> Refund:
    """Refund `amount` of a paid statement through Stripe; audited. Refused, with nothing written,
    when it is more than was paid less earlier refunds (`refund_exceeds_charge`), when the
    statement was not paid through Stripe, or when Stripe is not configured."""
    reason = reason.strip()
    if not reason:
        raise DomainError("reason_required", _("Say why the money is given back."), "reason")
    if amount <= 0:
        raise DomainError("invalid_amount", _("A refund is more than zero."), "amount")
    with transaction.atomic():
        locked = _lock(statement.pk)
        available = refundable(locked)
        if amount > available:
            raise DomainError(
                "refund_exceeds_charge",
                _(
                    "%(amount)s is more than was paid and not yet refunded on this statement "
                    "(%(available)s %(currency)s)."
                )
                % {"amount": amount, "available": available, "currency": locked.currency},
                "amount",
            )
        if _paid_invoice(locked) is None:
            raise ConflictError(
                "not_paid_through_stripe",
                _("This statement was not paid through Stripe; refund it where it was paid."),
            )
        if not stripe_client.configured():
            raise ConflictError(
                "stripe_not_configured", _("Stripe is not configured: nothing can be refunded.")
            )
        refund = Refund.objects.create(
            organization=locked.organization,
            statement=locked,
            amount=amount,
            reason=reason[:300],
            actor_label=actor.label[:254],
        )
        before = audit.snapshot(locked)
        locked.amount_refunded = F("amount_refunded") + amount
        locked.save(update_fields=["amount_refunded"])
        locked.refresh_from_db(fields=["amount_refunded"])
        audit.record(
            actor, locked.organization, "billing.refund", refund, after=audit.snapshot(refund)
        )
        audit.record_update(actor, locked.organization, "statement.refund", locked, before=before)
    send_refund(refund, actor=actor)
    refund.refresh_from_db()
    return refund


Payment = tuple[Literal["payment_intent", "charge"], str]


def _payment_of(api: stripe.StripeClient, invoice_id: str) -> Payment:
    """What Stripe refunds for a paid invoice: its payment intent (or charge)."""
    payments = api.v1.invoice_payments.list(params={"invoice": invoice_id, "status": "paid"})
    for payment in payments.data:
        paid_with = payment.payment
        if paid_with.payment_intent:
            intent = paid_with.payment_intent
            return "payment_intent", intent if isinstance(intent, str) else intent.id
        if paid_with.charge:
            charge = paid_with.charge
            return "charge", charge if isinstance(charge, str) else charge.id
    raise stripe_client.StripeRefused(f"Stripe lists no payment of invoice {invoice_id}")


def _already_made(api: stripe.StripeClient, payment: Payment, refund: Refund) -> str | None:
    """The id of a Stripe refund made for ours on an earlier try, if any."""
    kind, paid_with = payment
    query: RefundListParams = {"limit": 100}
    if kind == "payment_intent":
        query["payment_intent"] = paid_with
    else:
        query["charge"] = paid_with
    for existing in api.v1.refunds.list(params=query).data:
        metadata = existing.metadata.to_dict() if existing.metadata else {}
        if metadata.get("refund_id") == str(refund.pk):
            return existing.id
    return None


def _create(api: stripe.StripeClient, payment: Payment, refund: Refund, currency: str) -> str:
    kind, paid_with = payment
    params: RefundCreateParams = {
        "amount": stripe_client.to_minor(refund.amount, currency),
        "reason": "requested_by_customer",
        "metadata": {
            "refund_id": str(refund.pk),
            "statement_id": str(refund.statement_id),
            "organization_id": str(refund.organization_id),
        },
    }
    if kind == "payment_intent":
        params["payment_intent"] = paid_with
    else:
        params["charge"] = paid_with
    made = api.v1.refunds.create(params=params, options={"idempotency_key": f"refund-{refund.pk}"})
    return made.id


def _settle(refund: Refund, actor: Actor, *, stripe_refund_id: str = "", failure: str = "") -> None:
    with transaction.atomic():
        statement = _lock(refund.statement_id)
        row = (
            Refund.objects.for_organization(statement.organization)
            .select_for_update()
            .get(pk=refund.pk)
        )
        if row.status != RefundStatus.PENDING:
            return
        before = audit.snapshot(row)
        if failure:
            row.status = RefundStatus.FAILED
            row.failure = failure[:300]
            statement.amount_refunded = F("amount_refunded") - row.amount
            statement.save(update_fields=["amount_refunded"])
        else:
            row.status = RefundStatus.SUCCEEDED
            row.stripe_refund_id = stripe_refund_id
        row.save(update_fields=["status", "failure", "stripe_refund_id"])
        audit.record_update(
            actor, statement.organization, "billing.refund_settled", row, before=before
        )


def send_refund(refund: Refund, *, actor: Actor = audit.SYSTEM) -> str:
    """Ask Stripe for a pending refund once; returns its status afterwards."""
    claimed = (
        Refund.objects.for_organization(refund.organization)
        .filter(pk=refund.pk, status=RefundStatus.PENDING, attempts=refund.attempts)
        .update(attempts=F("attempts") + 1)
    )
    if not claimed:
        return Refund.objects.for_organization(refund.organization).get(pk=refund.pk).status
    statement = Statement.objects.for_organization(refund.organization).get(pk=refund.statement_id)
    invoice = _paid_invoice(statement)
    if invoice is None:  # voided in Stripe since: nothing to refund against
        _settle(refund, actor, failure=_("The Stripe invoice is no longer paid."))
        return RefundStatus.FAILED
    api = stripe_client.client()
    try:
        payment = _payment_of(api, invoice.stripe_invoice_id)
        made = _already_made(api, payment, refund) if refund.attempts else None
        if made is None:
            made = _create(api, payment, refund, statement.currency)
    except stripe.StripeError as error:
        translated = stripe_client.translate_error(error)
        if isinstance(translated, stripe_client.StripeUnavailable):
            logger.warning("stripe_refund_postponed", refund_id=str(refund.pk), error=str(error))
            return RefundStatus.PENDING
        _settle(refund, actor, failure=str(translated))
        return RefundStatus.FAILED
    except stripe_client.StripeRefused as error:
        _settle(refund, actor, failure=str(error))
        return RefundStatus.FAILED
    _settle(refund, actor, stripe_refund_id=made)
    return RefundStatus.SUCCEEDED


def retry_pending(now: dt.datetime) -> dict[str, int]:
    """Pending refunds older than RETRY_AFTER are asked again (`billing.sync_stripe`)."""
    # Cross-tenant: the sync works through every organization's pending refunds.
    pending = (
        Refund.objects.unscoped_dangerously()
        .filter(status=RefundStatus.PENDING, created_at__lte=now - RETRY_AFTER)
        .select_related("organization")
        .order_by("created_at")
    )
    retried = 0
    for refund in pending:
        try:
            send_refund(refund)
        except Exception:  # one refund's surprise must not hold up the others
            logger.exception("stripe_refund_crashed", refund_id=str(refund.pk))
        retried += 1
    return {"refunds_retried": retried}
