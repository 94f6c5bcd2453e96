"""Dunning: what happens when Stripe cannot collect a statement, and when it finally does.

A failed payment puts the organization's billing account past due with a grace period of
BILLING_GRACE_DAYS, and tells its owners and billing members (e-mail and a console notification).
After the grace, `billing.enforce_dunning` suspends its non-essential digital employees — every
active hire except those on an active 24/7 schedule (public service goes on) — and keeps their
ids. A payment that leaves no invoice failing puts the account back in good standing and resumes
exactly those hires, as long as they are still suspended for non-payment (not one a person has
suspended again, or let go, since). Nothing here ends a hire or deletes anything.
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
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from avatars import employments
from avatars.models import Employment, EmploymentStatus
from ironbowl.billing.models import (
    BillingAccount,
    DunningState,
    NotificationKind,
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


def essential_employment_ids(organization: Organization) -> set[uuid.UUID]:
    """Hires on an active around-the-clock schedule: 24/7 public service, never suspended here."""
    return set(
        Schedule.objects.for_organization(organization)
        .filter(always_on=True, is_active=True)
        .values_list("employment_id", flat=True)
    )


def _suspension_reason(organization: Organization) -> str:
    with translation.override(organization.locale):
        return _("Suspended for non-payment; resumed when the overdue invoice is paid.")


def _money(amount: Any, currency: str) -> str:
    return f"{amount} {currency}"


# --- Services -------------------------------------------------------------------------------------


def _locked_account(organization: Organization) -> BillingAccount:
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
    account = _locked_account(organization)
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


def suspend_for_non_payment(organization: Organization, now: dt.datetime) -> list[str]:
    """After the grace: suspend the organization's non-essential active hires, once; returns
    their ids (kept on the account, so that only they are resumed)."""
    with transaction.atomic():
        account = _locked_account(organization)
        if (
            account.dunning != DunningState.PAST_DUE
            or account.grace_until is None
            or account.grace_until > now
        ):
            return []
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
        account.dunning = DunningState.SUSPENDED
        account.suspended_employments = sorted({*account.suspended_employments, *suspended})
        account.save(update_fields=["dunning", "suspended_employments", "updated_at"])
        audit.record_update(SYSTEM, organization, "billing.dunning", account, before=before)
        count = len(suspended)
        notify(
            organization,
            NotificationKind.SUSPENDED_FOR_PAYMENT,
            lambda: (
                _(
                    "The overdue invoice was not paid within the grace period, so %(count)d "
                    "digital employees are suspended. Those on a 24/7 public service schedule go "
                    "on working. They are resumed as soon as the invoice is paid."
                )
                % {"count": count}
            ),
            {"suspended": suspended, "kept_working": sorted(str(pk) for pk in essential)},
        )
    logger.warning(
        "billing_suspended_for_non_payment",
        organization=organization.slug,
        suspended=len(suspended),
    )
    return suspended


def payment_received(organization: Organization, invoice: StripeInvoice) -> list[str]:
    """An invoice was paid. Once no invoice of the organization is left failing, dunning is
    cleared and the hires it suspended are resumed; returns the ids resumed. Runs in the
    caller's transaction."""
    account = _locked_account(organization)

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
    reason = _suspension_reason(organization)
    resumed: list[str] = []
    not_resumed: dict[str, str] = {}
    hires = Employment.objects.for_organization(organization).filter(
        pk__in=account.suspended_employments
    )
    for hire in hires.order_by("created_at"):
        # Only a hire still suspended by us: a person may have let it go or suspended it since.
        if hire.status != EmploymentStatus.SUSPENDED or hire.status_reason != reason:
            continue
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


def _resume_reason(organization: Organization) -> str:
    with translation.override(organization.locale):
        return _("Resumed: the overdue invoice was paid.")


def enforce(now: dt.datetime | None = None) -> dict[str, int]:
    """Suspend for non-payment wherever the grace has run out (the daily task)."""
    now = now or timezone.now()
    # Cross-tenant: the daily sweep looks at every organization's account.
    due = (
        BillingAccount.objects.unscoped_dangerously()
        .filter(dunning=DunningState.PAST_DUE, grace_until__lte=now)
        .select_related("organization")
    )
    organizations = [account.organization for account in due]
    suspended = sum(len(suspend_for_non_payment(org, now)) for org in organizations)
    return {"organizations": len(organizations), "suspended": suspended}


@shared_task(name="billing.enforce_dunning")
def enforce_dunning() -> dict[str, int]:
    """Daily: suspend non-essential hires of organizations whose grace ran out (`enforce`)."""
    return enforce()
