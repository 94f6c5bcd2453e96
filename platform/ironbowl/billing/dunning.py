"""Dunning: what happens when Stripe cannot collect a statement, and when it finally does.

A failed payment puts the organization's billing account past due with a grace period of
BILLING_GRACE_DAYS, and tells its owners and billing members (e-mail and a console notification).
After the grace, `billing.enforce_dunning` (hourly) suspends its non-essential digital employees —
every active hire except those on an active 24/7 schedule (public service goes on) — and keeps,
for each, the id of the suspension it made (`suspended_employments`: employment and
transition ids). While the account stays suspended, each run also suspends a non-essential hire
that became active meanwhile. A payment that leaves no invoice failing puts the account back in
good standing and resumes exactly those hires whose latest lifecycle transition is still that
suspension (not one a person has resumed, suspended again, or let go since). Nothing here ends a
hire or deletes anything.

The payment itself is recorded once (`record_payment`), by whichever comes first: the push
that finalized an invoice Stripe paid at once from the customer's credit, or the `invoice.paid`
event.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

import structlog
from celery import shared_task
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from avatars import employments
from avatars.models import Employment, EmploymentStatus, EmploymentTransition
from ironbowl.billing import stripe_client
from ironbowl.billing.models import (
    BillingAccount,
    DunningState,
    NotificationKind,
    Statement,
    StripeInvoice,
    StripeInvoiceStatus,
)
from ironbowl.billing.notifications import notify
from scheduling.models import Schedule
from tenants import audit
from tenants.audit import SYSTEM
from tenants.errors import DomainError
from tenants.models import Organization

logger = structlog.get_logger(__name__)


# --- Selectors ------------------------------------------------------------------------------------


def billing_account(organization: Organization) -> BillingAccount:
    """The organization's billing account, made on first need."""
    accounts = BillingAccount.objects.for_organization(organization)
    account = accounts.first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return BillingAccount.objects.create(organization=organization)
    except IntegrityError:  # made at the same moment by someone else
        return accounts.get()


def essential_posts(organization: Organization) -> set[tuple[str, str]]:
    """(employment id, station id) of each active around-the-clock schedule: 24/7 public
    service, never suspended here, and exempt from a budget's hard stop when it says so."""
    return {
        (str(employment_id), str(station_id))
        for employment_id, station_id in Schedule.objects.for_organization(organization)
        .filter(always_on=True, is_active=True)
        .values_list("employment_id", "station_id")
    }


def essential_employment_ids(organization: Organization) -> set[uuid.UUID]:
    """Hires on an active around-the-clock schedule (`essential_posts`)."""
    return {uuid.UUID(employment_id) for employment_id, _station in essential_posts(organization)}


def suspensions(account: BillingAccount) -> dict[str, int | None]:
    """Employment id → the id of the transition by which dunning suspended it. An entry written
    before transition ids were kept (a bare employment id) has None."""
    found: dict[str, int | None] = {}
    for entry in account.suspended_employments:
        if isinstance(entry, dict):
            found[str(entry["employment"])] = int(entry["transition"])
        else:
            found[str(entry)] = None
    return found


def suspended_ids(account: BillingAccount) -> list[str]:
    """The employments dunning suspended, as the account API lists them."""
    return sorted(suspensions(account))


def _suspension_reason(organization: Organization) -> str:
    with translation.override(organization.locale):
        return _("Suspended for non-payment; resumed when the overdue invoice is paid.")


def _money(amount: Any, currency: str) -> str:
    return f"{amount} {currency}"


# --- Services -------------------------------------------------------------------------------------


def locked_account(organization: Organization) -> BillingAccount:
    """The billing account, locked for the caller's transaction (made on first need)."""
    account = billing_account(organization)
    return (
        BillingAccount.objects.for_organization(organization).select_for_update().get(pk=account.pk)
    )


def payment_failed(
    organization: Organization, invoice: StripeInvoice, now: dt.datetime | None = None
) -> str:
    """A payment attempt failed: past due with a grace period, and a notice, the first time.

    Later failures (Stripe retries) neither extend the grace nor notify again. Runs in the
    caller's transaction."""
    now = now or timezone.now()
    account = locked_account(organization)
    if account.dunning != DunningState.GOOD:
        return f"already_{account.dunning}"
    before = audit.snapshot(account)
    account.dunning = DunningState.PAST_DUE
    account.grace_until = now + dt.timedelta(days=settings.BILLING_GRACE_DAYS)
    account.save(update_fields=["dunning", "grace_until", "updated_at"])
    audit.record_update(SYSTEM, organization, "billing.dunning", account, before=before)
    statement = invoice.statement
    grace_until = account.grace_until

    def message() -> str:
        local = timezone.localtime(grace_until, zoneinfo.ZoneInfo(organization.time_zone))
        return _(
            "Stripe could not collect %(amount)s for the statement of %(month)s. Please update "
            "the payment method before %(date)s; after that, digital employees that are not on "
            "a 24/7 public service schedule are suspended until the invoice is paid."
        ) % {
            "amount": _money(invoice.amount_due, invoice.currency),
            "month": f"{statement.period:%Y-%m}",
            "date": f"{local:%Y-%m-%d %H:%M}",
        }

    notify(
        organization,
        NotificationKind.PAYMENT_FAILED,
        message,
        {"statement_id": str(statement.pk), "grace_until": grace_until.isoformat()},
    )
    return "past_due"


def _due(account: BillingAccount, now: dt.datetime) -> bool:
    """Suspension is due: the grace ran out, or the account is suspended already (a hire may
    have become active since)."""
    if account.dunning == DunningState.SUSPENDED:
        return True
    return (
        account.dunning == DunningState.PAST_DUE
        and account.grace_until is not None
        and account.grace_until <= now
    )


def _latest_transitions(organization: Organization, ids: list[str]) -> dict[str, int]:
    """Employment id → the id of its latest lifecycle transition."""
    rows = (
        EmploymentTransition.objects.for_organization(organization)
        .filter(employment_id__in=ids)
        .values("employment_id")
        .annotate(latest=Max("id"))
        .values_list("employment_id", "latest")
    )
    return {str(employment_id): latest for employment_id, latest in rows}


def suspend_for_non_payment(organization: Organization, now: dt.datetime) -> list[str]:
    """After the grace: suspend the organization's non-essential active hires; returns the ids
    suspended now. Each is kept on the account with the id of its suspension, so that only
    they are resumed. Run again while suspended, it suspends only hires that became active
    since (none: nothing changes), so the hourly task may run it as often as it likes."""
    with transaction.atomic():
        account = locked_account(organization)
        if not _due(account, now):
            return []
        first = account.dunning != DunningState.SUSPENDED
        before = audit.snapshot(account)
        reason = _suspension_reason(organization)
        essential = essential_employment_ids(organization)
        hires = (
            Employment.objects.for_organization(organization)
            .filter(status=EmploymentStatus.ACTIVE)
            .exclude(pk__in=essential)
            .order_by("created_at")
        )
        suspended = [
            str(hire.pk) for hire in hires if employments.suspend_employment(SYSTEM, hire, reason)
        ]
        if not first and not suspended:
            return []
        kept = {**suspensions(account), **_latest_transitions(organization, suspended)}
        account.dunning = DunningState.SUSPENDED
        account.suspended_employments = [
            {"employment": employment_id, "transition": transition}
            for employment_id, transition in sorted(kept.items())
        ]
        account.save(update_fields=["dunning", "suspended_employments", "updated_at"])
        audit.record_update(SYSTEM, organization, "billing.dunning", account, before=before)
        _tell_suspended(organization, suspended, essential, first=first)
    logger.warning(
        "billing_suspended_for_non_payment",
        organization=organization.slug,
        suspended=len(suspended),
    )
    return suspended


def _tell_suspended(
    organization: Organization, suspended: list[str], essential: set[uuid.UUID], *, first: bool
) -> None:
    count = len(suspended)

    def message() -> str:
        if first:
            text = _(
                "The overdue invoice was not paid within the grace period, so %(count)d "
                "digital employees are suspended. Those on a 24/7 public service schedule go "
                "on working. They are resumed as soon as the invoice is paid."
            )
        else:
            text = _(
                "%(count)d digital employees became active while the account is suspended for "
                "non-payment, so they are suspended too. They are resumed as soon as the "
                "overdue invoice is paid."
            )
        return text % {"count": count}

    notify(
        organization,
        NotificationKind.SUSPENDED_FOR_PAYMENT,
        message,
        {"suspended": suspended, "kept_working": sorted(str(pk) for pk in essential)},
    )


def record_payment(
    organization: Organization,
    invoice: StripeInvoice,
    settled_minor: int,
    at: dt.datetime | None = None,
) -> str:
    """Stripe says the invoice is paid (`settled_minor`: what was charged plus the credit used,
    `stripe_client.settled_minor`): the mirror is paid, the statement records the amount, and
    dunning hears of it (`payment_received`) — once, whichever of the push and the webhook
    comes first; the other answers `already_paid`. `at`: the event's time, kept so an older
    failure arriving later is ignored. The caller holds `invoice` locked in its transaction."""
    newer = at is not None and (invoice.last_event_at is None or at > invoice.last_event_at)
    if newer:
        invoice.last_event_at = at
    if invoice.status == StripeInvoiceStatus.PAID:
        if newer:
            invoice.save(update_fields=["last_event_at"])
        return "already_paid"
    invoice.status = StripeInvoiceStatus.PAID
    invoice.amount_paid = stripe_client.from_minor(settled_minor, invoice.currency)
    invoice.payment_failed_at = None
    # Paid: nothing is left to push (a push whose answer was lost is not retried).
    invoice.next_push_at = None
    invoice.push_error = ""
    invoice.save(
        update_fields=[
            "status",
            "amount_paid",
            "payment_failed_at",
            "last_event_at",
            "next_push_at",
            "push_error",
        ]
    )
    statement = (
        Statement.objects.for_organization(organization)
        .select_for_update()
        .get(pk=invoice.statement_id)
    )
    before = audit.snapshot(statement)
    statement.amount_paid = invoice.amount_paid
    statement.save(update_fields=["amount_paid"])
    audit.record_update(SYSTEM, organization, "statement.paid", statement, before=before)
    resumed = payment_received(organization, invoice)
    return f"paid; resumed {len(resumed)}" if resumed else "paid"


def payment_received(organization: Organization, invoice: StripeInvoice) -> list[str]:
    """An invoice was paid. Once no invoice of the organization is left failing, dunning is
    cleared and the hires it suspended are resumed; returns the ids resumed. Runs in the
    caller's transaction."""
    account = locked_account(organization)

    def received() -> str:
        return _("Stripe collected %(amount)s for the statement of %(month)s.") % {
            "amount": _money(invoice.amount_paid, invoice.currency),
            "month": f"{invoice.statement.period:%Y-%m}",
        }

    data: dict[str, Any] = {"statement_id": str(invoice.statement_id)}
    still_failing = (
        StripeInvoice.objects.for_organization(organization)
        .filter(status=StripeInvoiceStatus.OPEN, payment_failed_at__isnull=False)
        .exists()
    )
    if account.dunning == DunningState.GOOD or still_failing:
        notify(organization, NotificationKind.PAYMENT_RECEIVED, received, data, email=False)
        return []
    before = audit.snapshot(account)
    resumed: list[str] = []
    not_resumed: dict[str, str] = {}
    for hire in _still_suspended_by_us(organization, account):
        try:
            with transaction.atomic():
                employments.transition_employment(
                    SYSTEM, hire, EmploymentStatus.ACTIVE, _resume_reason(organization)
                )
        except DomainError as error:  # e.g. the avatar's consent lapsed meanwhile
            not_resumed[str(hire.pk)] = str(error.detail)
        else:
            resumed.append(str(hire.pk))
    account.dunning = DunningState.GOOD
    account.grace_until = None
    account.suspended_employments = []
    account.save(update_fields=["dunning", "grace_until", "suspended_employments", "updated_at"])
    audit.record_update(SYSTEM, organization, "billing.dunning", account, before=before)

    def message() -> str:
        parts = [received(), _("The account is in good standing again.")]
        if resumed:
            parts.append(
                _("%(count)d digital employees are back at work.") % {"count": len(resumed)}
            )
        if not_resumed:
            parts.append(
                _("%(count)d could not be resumed and need a person to look at them.")
                % {"count": len(not_resumed)}
            )
        return " ".join(parts)

    notify(
        organization,
        NotificationKind.PAYMENT_RECEIVED,
        message,
        {**data, "resumed": resumed, "not_resumed": not_resumed},
    )
    return resumed


def _still_suspended_by_us(organization: Organization, account: BillingAccount) -> list[Employment]:
    """The hires dunning suspended whose latest transition is still that suspension: not one a
    person has resumed, suspended again or let go since. Matched on ids, so a change of the
    organization's language (the reason's words) changes nothing. An entry kept without its
    transition id (before they were kept) counts when the latest transition is a suspension by
    the system."""
    kept = suspensions(account)
    latest = (
        EmploymentTransition.objects.for_organization(organization)
        .filter(pk__in=list(_latest_transitions(organization, list(kept)).values()))
        .in_bulk()
    )
    ours: set[uuid.UUID] = set()
    for transition in latest.values():
        expected = kept[str(transition.employment_id)]
        if expected == transition.pk or (
            expected is None
            and transition.to_status == EmploymentStatus.SUSPENDED
            and transition.actor_label == SYSTEM.label
        ):
            ours.add(transition.employment_id)
    return list(
        Employment.objects.for_organization(organization)
        .filter(pk__in=ours, status=EmploymentStatus.SUSPENDED)
        .order_by("created_at")
    )


def _resume_reason(organization: Organization) -> str:
    with translation.override(organization.locale):
        return _("Resumed: the overdue invoice was paid.")


def enforce(now: dt.datetime | None = None) -> dict[str, int]:
    """Suspend for non-payment wherever the grace has run out, and catch hires activated while
    suspended (the hourly task)."""
    now = now or timezone.now()
    # Cross-tenant: the sweep looks at every organization's account.
    due = (
        BillingAccount.objects.unscoped_dangerously()
        .filter(
            Q(dunning=DunningState.SUSPENDED)
            | Q(dunning=DunningState.PAST_DUE, grace_until__lte=now)
        )
        .select_related("organization")
    )
    organizations = [account.organization for account in due]
    suspended = sum(len(suspend_for_non_payment(org, now)) for org in organizations)
    return {"organizations": len(organizations), "suspended": suspended}


@shared_task(name="billing.enforce_dunning")
def enforce_dunning() -> dict[str, int]:
    """Hourly: suspend non-essential hires of organizations whose grace ran out (`enforce`)."""
    return enforce()
