"""Monthly budgets: alerts at 80% and 100% of the month's spend, and the hard stop's state.

The month is the organization's local month; its spend so far is what the open statement would
total now, tax included (`statements.spend_to_date`). A threshold is reached when
spend × 100 ≥ budget × threshold, compared exactly in decimals (a budget of 0 is used up from
the month's first day). Each threshold alerts once a month: `Budget.alerted_80_for` and
`alerted_100_for` hold the month it was sent for, and are set by a compare-and-set update, so
two checks at once send one alert. An alert whose threshold no longer holds (the budget was
raised, usage was reversed) is re-armed, and alerts again if it is reached later that month.
A new month re-arms everything by itself: the stored month is no longer the current one.

Past 100% with `hard_stop`, admission holds new work (`ironbowl.billing.admission`): the stop
is exactly "the 100% alert stands for this month", so it takes hold when that alert is sent
and lifts when it is re-armed or the month turns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
import zoneinfo
from decimal import Decimal
from typing import Any

import structlog
from celery import shared_task
from django.core.cache import cache
from django.db import transaction
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from ironbowl.billing import notifications, statements
from ironbowl.billing.models import Budget, NotificationKind
from ironbowl.billing.plans import in_force, subscriptions_of
from tenants import audit
from tenants.audit import Actor
from tenants.errors import DomainError
from tenants.models import Organization

logger = structlog.get_logger(__name__)

THRESHOLDS = (80, 100)
_FLAG = {80: "alerted_80_for", 100: "alerted_100_for"}
_KIND = {80: NotificationKind.BUDGET_80, 100: NotificationKind.BUDGET_100}
# What a change of the budget is audited with (the alert bookkeeping is not a change by people).
_AUDITED = ("monthly_amount", "currency", "hard_stop", "exempt_public_service")
# A check prompted by new usage runs at most this often per organization.
CHECK_SOON_INTERVAL_S = 60


@dataclasses.dataclass(frozen=True)
class BudgetState:
    """The budget (None: not set) against the month so far, as the console shows it."""

    budget: Budget | None
    month: dt.date
    spent: Decimal
    currency: str

    def alerted(self, threshold: int) -> bool:
        """The threshold's alert was sent this month (and still holds)."""
        return self.budget is not None and getattr(self.budget, _FLAG[threshold]) == self.month

    @property
    def stopped(self) -> bool:
        """New non-essential work is held now."""
        return self.budget is not None and self.budget.hard_stop and self.alerted(100)


def local_month(organization: Organization, now: dt.datetime) -> dt.date:
    """The first day of the organization's month at `now`, in its time zone."""
    return timezone.localtime(now, zoneinfo.ZoneInfo(organization.time_zone)).date().replace(day=1)


def reached(spent: Decimal, amount: Decimal) -> dict[int, bool]:
    return {threshold: spent * 100 >= amount * threshold for threshold in THRESHOLDS}


def budget_of(organization: Organization) -> Budget | None:
    return Budget.objects.for_organization(organization).first()


def plan_currency(organization: Organization, now: dt.datetime) -> str:
    """The currency the organization is billed in now: its current plan's."""
    return str(in_force(subscriptions_of(organization), now).plan.currency)


def state_of(organization: Organization, now: dt.datetime | None = None) -> BudgetState:
    """The budget and the month's spend so far (rated now: one rating)."""
    now = now or timezone.now()
    budget = budget_of(organization)
    return BudgetState(
        budget=budget,
        month=local_month(organization, now),
        spent=statements.spend_to_date(organization, now),
        currency=budget.currency if budget is not None else plan_currency(organization, now),
    )


@transaction.atomic
def set_budget(
    actor: Actor,
    organization: Organization,
    *,
    monthly_amount: Decimal,
    hard_stop: bool,
    exempt_public_service: bool,
    currency: str | None = None,
    now: dt.datetime | None = None,
) -> Budget:
    """Set the organization's monthly budget (created the first time); audited.

    The currency must be the plan's (spend is rated in it; nothing is converted). The alerts are
    then checked against the new amount at once: a lowered budget already passed alerts now, a
    raised one re-arms the alerts that no longer hold (and lifts a hard stop).
    """
    now = now or timezone.now()
    billed_in = plan_currency(organization, now)
    currency = currency or billed_in
    if currency != billed_in:
        raise DomainError(
            "currency_mismatch",
            _(
                "The budget must be in %(plan_currency)s, the currency of your plan; "
                "%(currency)s cannot be compared with what you spend."
            )
            % {"plan_currency": billed_in, "currency": currency},
            field="currency",
        )
    if monthly_amount < 0:
        raise DomainError(
            "negative_budget",
            _("A budget cannot be negative."),
            field="monthly_amount",
        )
    # One change of an organization's budget at a time (the first one creates the row).
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    budget = Budget.objects.for_organization(organization).select_for_update().first()
    created = budget is None
    if budget is None:
        budget = Budget(organization=organization)
    before = _audited(budget)
    budget.monthly_amount = monthly_amount
    budget.currency = currency
    budget.hard_stop = hard_stop
    budget.exempt_public_service = exempt_public_service
    budget.save()
    after = _audited(budget)
    if created or after != before:
        audit.record(
            actor,
            organization,
            "billing.set_budget",
            budget,
            before=None if created else before,
            after=after,
        )
    spent = statements.spend_to_date(organization, now)
    _settle(organization, budget, local_month(organization, now), spent)
    return budget


def _audited(budget: Budget) -> dict[str, Any]:
    return {
        name: str(value) if isinstance(value, Decimal) else value
        for name, value in ((name, getattr(budget, name)) for name in _AUDITED)
    }


def check_budget(organization: Organization, now: dt.datetime | None = None) -> list[str]:
    """Compare the month's spend with the budget: send the alerts newly due (each once a
    month), re-arm those that no longer hold. Returns the kinds of the alerts sent."""
    budget = budget_of(organization)
    if budget is None:
        return []
    now = now or timezone.now()
    spent = statements.spend_to_date(organization, now)
    return _settle(organization, budget, local_month(organization, now), spent)


def _settle(
    organization: Organization, budget: Budget, month: dt.date, spent: Decimal
) -> list[str]:
    """Bring the alert flags in line with `spent` against the amount `budget` was read with.

    Every update names that amount: a check that read the budget before someone changed it
    writes nothing, and the change's own check decides. Updates are compare-and-set on the
    flag, so of two checks at once only one sends each alert.
    """
    amount = budget.monthly_amount
    now_reached = reached(spent, amount)
    row = Budget.objects.for_organization(organization).filter(pk=budget.pk, monthly_amount=amount)
    sent: list[str] = []
    with transaction.atomic():
        for threshold in THRESHOLDS:
            flag = _FLAG[threshold]
            if not now_reached[threshold] and row.filter(**{flag: month}).update(**{flag: None}):
                setattr(budget, flag, None)
                logger.info("budget_alert_rearmed", threshold=threshold, month=str(month))
        if now_reached[100]:
            # The 100% alert says the 80% one too: a month that jumps past both gets one e-mail.
            won = row.exclude(alerted_100_for=month).update(alerted_100_for=month)
            row.exclude(alerted_80_for=month).update(alerted_80_for=month)
            budget.alerted_80_for = budget.alerted_100_for = month
            if won:
                _alert(organization, budget, 100, month, spent)
                sent.append(NotificationKind.BUDGET_100)
        elif now_reached[80] and row.exclude(alerted_80_for=month).update(alerted_80_for=month):
            budget.alerted_80_for = month
            _alert(organization, budget, 80, month, spent)
            sent.append(NotificationKind.BUDGET_80)
    return sent


def _alert(
    organization: Organization, budget: Budget, threshold: int, month: dt.date, spent: Decimal
) -> None:
    def money(value: Decimal) -> str:
        amount = formats.number_format(value, decimal_pos=2, use_l10n=True, force_grouping=True)
        return f"{amount} {budget.currency}"

    def message() -> str:
        words = {
            "organization": organization.name,
            "spent": money(spent),
            "budget": money(budget.monthly_amount),
            "month": formats.date_format(month, "YEAR_MONTH_FORMAT"),
        }
        if threshold == 80:
            text = _("%(organization)s has spent %(spent)s of its %(budget)s budget for %(month)s.")
            if budget.hard_stop:
                text += " " + _(
                    "Once the budget is used up, new work will wait until it is raised or the "
                    "month ends."
                )
            return text % words
        text = _(
            "%(organization)s has used up its %(budget)s budget for %(month)s: %(spent)s "
            "spent so far."
        )
        if not budget.hard_stop:
            text += " " + _("Work goes on: this budget does not stop new work.")
        elif budget.exempt_public_service:
            text += " " + _(
                "New work now waits until the budget is raised or the month ends; work already "
                "running goes on, and 24/7 public service still starts."
            )
        else:
            text += " " + _(
                "New work now waits until the budget is raised or the month ends; work already "
                "running goes on."
            )
        return text % words

    notifications.notify(
        organization,
        _KIND[threshold],
        message,
        {
            "threshold": threshold,
            "month": f"{month:%Y-%m}",
            "spent": str(spent),
            "budget": str(budget.monthly_amount),
            "currency": budget.currency,
            "hard_stop": budget.hard_stop,
        },
    )


@dataclasses.dataclass
class Sweep:
    checked: int = 0
    alerts: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def check_all_budgets(now: dt.datetime | None = None) -> Sweep:
    """Check every active organization's budget (the periodic safety net). One organization
    that cannot be rated is logged and skipped; the others are checked."""
    now = now or timezone.now()
    result = Sweep()
    # Cross-tenant by design: each budget is checked against its own organization's spend.
    budgets = (
        Budget.objects.unscoped_dangerously()
        .filter(organization__is_active=True)
        .select_related("organization")
        .order_by("organization_id")
    )
    for budget in budgets:
        organization = budget.organization
        try:
            spent = statements.spend_to_date(organization, now)
            result.alerts += len(
                _settle(organization, budget, local_month(organization, now), spent)
            )
        except Exception:
            logger.exception("budget_check_failed", organization_id=str(organization.pk))
            result.failed += 1
            continue
        result.checked += 1
    return result


def check_soon(organization_id: uuid.UUID) -> bool:
    """New usage was recorded: check that organization's budget in the background, at most
    once a minute per organization (the periodic check catches anything in between). True
    when a check was queued."""
    if not Budget.objects.unscoped_dangerously().filter(organization_id=organization_id).exists():
        return False
    if not cache.add(f"billing:budget-check:{organization_id}", 1, CHECK_SOON_INTERVAL_S):
        return False
    check_budget_task.delay(str(organization_id))
    return True


def on_usage_reported(sender: Any, organization_id: uuid.UUID, **kwargs: Any) -> None:
    """Receiver of `inference.signals.usage_reported` (sent after the report committed)."""
    check_soon(organization_id)


@shared_task(name="billing.check_budgets")
def check_budgets_task() -> dict[str, int]:
    """Every 15 minutes: every budget against its month's spend (`check_all_budgets`)."""
    return check_all_budgets().as_dict()


@shared_task(name="billing.check_budget")
def check_budget_task(organization_id: str) -> list[str]:
    """One organization's budget, soon after its usage was recorded (`check_soon`)."""
    organization = Organization.objects.filter(pk=organization_id, is_active=True).first()
    return [] if organization is None else check_budget(organization)
