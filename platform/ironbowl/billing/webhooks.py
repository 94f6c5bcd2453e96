"""Stripe's webhook events: verified, applied once, in order, and only to our own objects.

- The signature is checked by the Stripe SDK (`stripe.Webhook.construct_event`, with
  STRIPE_WEBHOOK_SECRET and the SDK's default tolerance of five minutes): a forged body and a
  replayed old one are refused, saying which.
- Each event is applied once: its id is recorded in the same transaction as its effects, so a
  redelivery (or two deliveries at once) changes nothing the second time.
- Out of order: an event created before the last one applied to the same invoice (or
  subscription) is recorded and ignored — except `invoice.paid`: paid is final (a refund does
  not un-pay an invoice), so a payment is applied whenever it arrives, and a paid invoice never
  goes back to failing. The payment is recorded once (`dunning.record_payment`), whether this
  event or the push that finalized an invoice paid from the customer's credit comes first.
- Only ours: the event's `livemode` must be the configured key's mode, the customer one of our
  billing accounts, the invoice one of that account's mirrors in the statement's currency, and
  metadata naming an organization or statement must name the same ones; otherwise the event is
  refused with a reason and nothing is written (not even its id: Stripe shows the refusal on
  the endpoint and delivers it again, for a person to look at).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import stripe
import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from ironbowl.billing import dunning, stripe_client
from ironbowl.billing.models import (
    BillingAccount,
    StripeEvent,
    StripeInvoice,
    StripeInvoiceStatus,
)
from tenants import audit
from tenants.audit import SYSTEM
from tenants.errors import DomainError
from tenants.models import Organization

logger = structlog.get_logger(__name__)


class EventRefused(DomainError):
    """A verified event about an object that is not ours: nothing was written."""

    status_code = 400


@dataclasses.dataclass(frozen=True)
class Outcome:
    event_id: str
    type: str
    outcome: str  # applied: paid, past_due, …; or duplicate, stale, ignored


class _Duplicate(Exception):
    pass


def verify(payload: bytes, header: str | None) -> dict[str, Any]:
    """The event in `payload`, if the Stripe-Signature header proves Stripe sent it recently."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    try:
        stripe.Webhook.construct_event(payload, header, secret)
    except stripe.SignatureVerificationError:
        try:  # the same check without the time limit tells a stale signature from a forged one
            stripe.WebhookSignature.verify_header(payload, header, secret)
        except stripe.SignatureVerificationError:
            raise DomainError(
                "signature_invalid",
                _("The Stripe-Signature header does not match this body and our webhook secret."),
            ) from None
        raise DomainError(
            "signature_stale",
            _("The signature is older than Stripe's five minutes' tolerance: a replay is refused."),
        ) from None
    except ValueError:
        raise DomainError("payload_invalid", _("The body is not a Stripe event.")) from None
    event: dict[str, Any] = json.loads(payload)
    return event


def handle(payload: bytes, header: str | None) -> Outcome:
    """Verify the event, then apply it once (see the module's docstring)."""
    event = verify(payload, header)
    try:
        event_id = str(event["id"])
        kind = str(event["type"])
        created = dt.datetime.fromtimestamp(int(event["created"]), tz=dt.UTC)
        obj: dict[str, Any] = event["data"]["object"]
        object_id = str(obj.get("id", ""))
    except (KeyError, TypeError, ValueError):
        raise DomainError("payload_invalid", _("The body is not a Stripe event.")) from None
    _check_mode(event)
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    record = StripeEvent.objects.create(
                        event_id=event_id, type=kind, created=created, object_id=object_id[:100]
                    )
            except IntegrityError:
                raise _Duplicate() from None
            handler = HANDLERS.get(kind)
            if handler is None:
                organization, outcome = None, "ignored"
            else:
                organization, outcome = handler(obj, created)
            record.organization = organization
            record.outcome = outcome
            record.save(update_fields=["organization", "outcome"])
    except _Duplicate:
        return Outcome(event_id, kind, "duplicate")
    logger.info("stripe_event", event_id=event_id, type=kind, outcome=outcome)
    return Outcome(event_id, kind, outcome)


# --- Whose object is it ---------------------------------------------------------------------------


def _check_mode(event: dict[str, Any]) -> None:
    """A test-mode event at a live key's endpoint (or the reverse) is a misconfiguration."""
    live = stripe_client.live_mode()
    if live is not None and "livemode" in event and bool(event["livemode"]) != live:
        raise EventRefused(
            "livemode_mismatch",
            _(
                "The event's livemode is not the mode of this platform's Stripe key: a test "
                "event sent to a live endpoint, or the reverse."
            ),
        )


def _id_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _account_of(obj: dict[str, Any]) -> BillingAccount:
    customer = _id_of(obj.get("customer"))
    # Cross-tenant by nature: Stripe's customer id is what says which organization this is.
    account = (
        BillingAccount.objects.unscoped_dangerously()
        .select_related("organization")
        .filter(stripe_customer_id=customer)
        .first()
        if customer
        else None
    )
    if account is None:
        raise EventRefused(
            "unknown_customer", _("The event is about a Stripe customer that is not one of ours.")
        )
    named = (obj.get("metadata") or {}).get("organization_id")
    if named and named != str(account.organization_id):
        raise EventRefused(
            "organization_mismatch",
            _("The event's metadata names another organization than its customer's."),
        )
    return account


def _invoice_of(organization: Organization, obj: dict[str, Any]) -> StripeInvoice:
    mirror = (
        StripeInvoice.objects.for_organization(organization)
        .select_for_update(of=("self",))
        .select_related("statement")
        .filter(stripe_invoice_id=_id_of(obj.get("id")))
        .first()
        if obj.get("id")
        else None
    )
    if mirror is None:
        raise EventRefused(
            "unknown_invoice",
            _("The event is about an invoice that is not one of this customer's."),
        )
    named = (obj.get("metadata") or {}).get("statement_id")
    if named and named != str(mirror.statement_id):
        raise EventRefused(
            "statement_mismatch", _("The invoice's metadata names another statement than ours.")
        )
    if str(obj.get("currency") or "").upper() != mirror.currency:
        raise EventRefused(
            "currency_mismatch",
            _("The invoice is in %(currency)s; the statement is in %(statement)s.")
            % {"currency": str(obj.get("currency") or "?").upper(), "statement": mirror.currency},
        )
    return mirror


def _older(last: dt.datetime | None, created: dt.datetime) -> bool:
    return last is not None and created < last


# --- Handlers -------------------------------------------------------------------------------------


def _invoice_paid(obj: dict[str, Any], created: dt.datetime) -> tuple[Organization, str]:
    """Paid wins whatever the order: no staleness check (see the module's docstring)."""
    organization = _account_of(obj).organization
    mirror = _invoice_of(organization, obj)
    return organization, dunning.record_payment(
        organization, mirror, stripe_client.settled_minor(obj), created
    )


def _invoice_payment_failed(obj: dict[str, Any], created: dt.datetime) -> tuple[Organization, str]:
    organization = _account_of(obj).organization
    mirror = _invoice_of(organization, obj)
    if _older(mirror.last_event_at, created):
        return organization, "stale"
    if mirror.status in (StripeInvoiceStatus.PAID, StripeInvoiceStatus.VOID):
        return organization, f"already_{mirror.status}"
    status = obj.get("status")
    mirror.status = status if status in StripeInvoiceStatus.values else StripeInvoiceStatus.OPEN
    mirror.payment_failed_at = created
    mirror.last_event_at = created
    mirror.save(update_fields=["status", "payment_failed_at", "last_event_at"])
    return organization, dunning.payment_failed(organization, mirror)


def _subscription(
    obj: dict[str, Any], created: dt.datetime, *, deleted: bool
) -> tuple[Organization, str]:
    """Mirror a subscription someone made in Stripe. A deletion is noted (audit log, warning
    log), and nothing else happens: ending service is a person's decision."""
    account = _account_of(obj)
    organization = account.organization
    account = (
        BillingAccount.objects.for_organization(organization).select_for_update().get(pk=account.pk)
    )
    if _older(account.subscription_event_at, created):
        return organization, "stale"
    before = audit.snapshot(account)
    account.stripe_subscription_id = _id_of(obj.get("id"))[:100]
    status = "canceled" if deleted else str(obj.get("status") or "")
    account.stripe_subscription_status = status[:30]
    account.subscription_event_at = created
    account.save(
        update_fields=[
            "stripe_subscription_id",
            "stripe_subscription_status",
            "subscription_event_at",
            "updated_at",
        ]
    )
    action = "billing.stripe_subscription_deleted" if deleted else "billing.stripe_subscription"
    audit.record_update(SYSTEM, organization, action, account, before=before)
    if deleted:
        logger.warning(
            "stripe_subscription_deleted",
            organization=organization.slug,
            subscription=account.stripe_subscription_id,
        )
        return organization, "subscription_deleted"
    return organization, f"subscription_{status}"


Handler = Callable[[dict[str, Any], dt.datetime], tuple[Organization, str]]

HANDLERS: dict[str, Handler] = {
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_payment_failed,
    "customer.subscription.updated": lambda obj, at: _subscription(obj, at, deleted=False),
    "customer.subscription.deleted": lambda obj, at: _subscription(obj, at, deleted=True),
}
