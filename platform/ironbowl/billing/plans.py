"""Which plan an organization is on, and when: its subscription history, and changing plan.

An organization is on one plan at a time through `Subscription` rows: a change ends the current
one and starts the next at the same instant, so every instant has exactly one plan (the first
subscription also prices anything before it). The first subscription is created lazily, from
`Organization.plan`, starting when the organization was created. `Organization.plan` follows
every change, so the quotas in tenants.plans follow the plan too.
"""

from __future__ import annotations

import bisect
import datetime as dt
import zoneinfo

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from avatars.employments import seats_in_use
from ironbowl.billing.models import Plan, Statement, StatementStatus, Subscription
from tenants import audit
from tenants.audit import Actor
from tenants.errors import ConflictError, DomainError
from tenants.models import Organization
from tenants.plans import PLANS

DEFAULT_PLAN = "trial"


def public_plans() -> list[Plan]:
    return list(Plan.objects.filter(is_public=True))


def plan_by_code(code: str) -> Plan:
    """A public plan by its code; an unknown or private one is refused the same way."""
    plan = Plan.objects.filter(code=code, is_public=True).first()
    if plan is None:
        raise DomainError(
            "unknown_plan", _("There is no plan with the code %(code)s.") % {"code": code}, "plan"
        )
    return plan


def _first_subscription(organization: Organization) -> Subscription:
    """The subscription an organization without any is taken to have had since it was created:
    the plan `Organization.plan` names (the default plan when that code has no Plan)."""
    plan = (
        Plan.objects.filter(code=organization.plan).first()
        or Plan.objects.filter(code=DEFAULT_PLAN).first()
    )
    if plan is None:
        raise DomainError(
            "no_plan", _("No plan is defined for %(code)s.") % {"code": organization.plan}
        )
    return Subscription(organization=organization, plan=plan, starts_at=organization.created_at)


def subscriptions_of(organization: Organization) -> list[Subscription]:
    """The organization's subscriptions, oldest first, plans loaded; never empty (an
    organization without any gets its first one, unsaved: reading writes nothing)."""
    found = list(
        Subscription.objects.for_organization(organization)
        .select_related("plan")
        .order_by("starts_at")
    )
    return found or [_first_subscription(organization)]


def in_force(subscriptions: list[Subscription], at: dt.datetime) -> Subscription:
    """The subscription whose plan prices something that happened at `at` (oldest first list);
    before the first subscription, the first one."""
    starts = [subscription.starts_at for subscription in subscriptions]
    return subscriptions[max(bisect.bisect_right(starts, at) - 1, 0)]


def ensure_subscription(organization: Organization) -> Subscription:
    """The current subscription, created from `Organization.plan` when the organization has
    none yet (two callers at once: the unique current subscription keeps one)."""
    current = _current(organization)
    if current is not None:
        return current
    first = _first_subscription(organization)
    try:
        with transaction.atomic():
            first.save(force_insert=True)
    except IntegrityError:
        current = _current(organization)
        if current is None:  # pragma: no cover - the constraint that failed names a current one
            raise
        return current
    return first


def _current(organization: Organization) -> Subscription | None:
    return (
        Subscription.objects.for_organization(organization)
        .select_related("plan")
        .filter(ends_at__isnull=True)
        .first()
    )


@transaction.atomic
def change_plan(
    actor: Actor, organization: Organization, code: str, *, at: dt.datetime | None = None
) -> Subscription:
    """Move the organization to the plan `code` from `at` (now): the current subscription ends
    and the next starts at that instant, with the same negotiated discount. The month it falls
    in is prorated when rated. Audited. Asking for the plan it is on changes nothing."""
    at = at or timezone.now()
    plan = plan_by_code(code)
    # One change at a time per organization (and against hires taking seats meanwhile).
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    current = ensure_subscription(organization)
    current = (
        Subscription.objects.for_organization(organization).select_for_update().get(pk=current.pk)
    )
    if current.plan_id == plan.pk:
        return current
    _check_change(organization, current, plan, at)
    before = {"plan": current.plan.code, "subscription": str(current.pk)}
    current.ends_at = at
    current.save(update_fields=["ends_at"])
    following = Subscription.objects.create(
        organization=organization,
        plan=plan,
        starts_at=at,
        discount_percent=current.discount_percent,
    )
    organization.plan = plan.code
    organization.save(update_fields=["plan"])
    audit.record(
        actor,
        organization,
        "billing.change_plan",
        following,
        before=before,
        after={**audit.snapshot(following), "plan": plan.code},
    )
    return following


def _check_change(
    organization: Organization, current: Subscription, plan: Plan, at: dt.datetime
) -> None:
    if at <= current.starts_at:
        raise ConflictError(
            "plan_change_before_start",
            _("A plan change must come after the current plan started (%(start)s).")
            % {"start": current.starts_at.isoformat()},
        )
    if plan.currency != current.plan.currency:
        raise ConflictError(
            "plan_currency_differs",
            _(
                "The %(plan)s plan bills in %(new)s, and this organization is billed in "
                "%(old)s; changing the currency is arranged with us, not by a plan change."
            )
            % {"plan": plan.name, "new": plan.currency, "old": current.plan.currency},
            field="plan",
        )
    month = timezone.localdate(at, timezone=zoneinfo.ZoneInfo(organization.time_zone))
    closed = (
        Statement.objects.for_organization(organization)
        .filter(status=StatementStatus.CLOSED, period__gte=month.replace(day=1))
        .exists()
    )
    if closed:
        raise ConflictError(
            "period_closed",
            _("The statement of %(month)s is closed: a plan change cannot start in it.")
            % {"month": f"{month:%Y-%m}"},
        )
    limits = PLANS.get(plan.code)
    held = seats_in_use(organization)
    if limits is not None and held > limits.seats:
        raise ConflictError(
            "seats_over_plan",
            _(
                "The %(plan)s plan allows %(limit)d seats and your hires hold %(held)d. Let "
                "hires go or lower their seats first."
            )
            % {"plan": plan.name, "limit": limits.seats, "held": held},
            field="plan",
        )
