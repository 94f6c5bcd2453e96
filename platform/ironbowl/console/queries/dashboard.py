"""What the dashboard reads: who is on air, today's KPIs, and the alerts a member can act on.

Every function starts from the organization and costs a fixed number of queries, whatever the
number of stations, employments and shifts: lists are fetched with their related rows joined,
counted with one aggregate, and cut to a few rows for the page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Generic, TypeVar

from django.db.models import Count, Model, QuerySet, Window

from avatars.models import Consent, Employment, EmploymentStatus
from inference import selectors as inference
from inference.models import Workload, WorkloadState
from ironbowl.analytics import kpis
from ironbowl.billing import budgets
from ironbowl.billing.models import NotificationKind
from scheduling import duty, roster
from scheduling.models import SHIFT_FINAL_STATES, Shift, Station
from tenants.models import Organization

T = TypeVar("T")
M = TypeVar("M", bound=Model)

ON_AIR_SHOWN = 50  # on-air rows on the dashboard; the board shows them all
ALERT_ROWS = 5  # rows shown per alert; the count says how many there are
GAPS_AHEAD = dt.timedelta(hours=24)  # how far ahead 24/7 coverage gaps are looked for
FAILED_SINCE = dt.timedelta(hours=24)  # failed workloads of the last day
CONSENT_WARNING = dt.timedelta(days=30)  # consents expiring within this are shown


@dataclasses.dataclass(frozen=True)
class Some(Generic[T]):
    """The first rows of a list and how many there are in all."""

    rows: list[T]
    total: int

    @property
    def more(self) -> int:
        return max(self.total - len(self.rows), 0)

    def __bool__(self) -> bool:
        return self.total > 0


def _some(queryset: QuerySet[M], limit: int) -> Some[M]:
    """The first `limit` rows and the count of all, in one query (a window over the whole set
    is computed before the limit applies)."""
    rows = list(queryset.annotate(total_rows=Window(Count("pk")))[:limit])
    return Some(rows, getattr(rows[0], "total_rows", len(rows)) if rows else 0)


# --- On air and today's KPIs ----------------------------------------------------------------------


def on_air(organization: Organization, limit: int = ON_AIR_SHOWN) -> Some[Shift]:
    """Shifts under way now (warming up, on duty, taken over), by station, with the employee,
    its avatar and position, and the station joined."""
    shifts = (
        Shift.objects.for_organization(organization)
        .filter(state__in=duty.STARTED)
        .select_related("station", "employment__avatar", "employment__position")
        .order_by("station__name", "starts_at", "id")
    )
    return _some(shifts, limit)


def today_kpis(organization: Organization, now: dt.datetime) -> kpis.Tally:
    """Today's totals, today being the organization's local day (the KPI API's selector)."""
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    today = now.astimezone(zone).date()
    span = kpis.window(organization, kpis.local_midnight(today, zone), None, kpis.DAY, now=now)
    return kpis.series(organization, span).totals


# --- Alerts ---------------------------------------------------------------------------------------


def at_risk_shifts(organization: Organization, now: dt.datetime) -> Some[Shift]:
    """Shifts not over yet that materialisation flagged at risk (their GPU capacity could not
    be reserved), soonest first."""
    shifts = (
        Shift.objects.for_organization(organization)
        .filter(at_risk=True, ends_at__gt=now)
        .exclude(state__in=SHIFT_FINAL_STATES)
        .select_related("station", "employment__avatar")
        .order_by("starts_at", "id")
    )
    return _some(shifts, ALERT_ROWS)


@dataclasses.dataclass(frozen=True)
class GapAt:
    """A gap in a 24/7 station's coverage, with its station."""

    station: Station
    starts_at: dt.datetime
    ends_at: dt.datetime
    minutes: int


def coverage_gaps(organization: Organization, now: dt.datetime) -> Some[GapAt]:
    """Where a 24/7 schedule says a station is staffed in the next GAPS_AHEAD and no shift
    covers it (scheduling's roster; the roster page shows any range), soonest first."""
    gaps = sorted(
        roster.coverage_gaps(organization, now, now + GAPS_AHEAD, now=now),
        key=lambda gap: (gap.starts_at, str(gap.station_id)),
    )
    shown = gaps[:ALERT_ROWS]
    stations = Station.objects.for_organization(organization).in_bulk(
        {gap.station_id for gap in shown}
    )
    rows = [
        GapAt(stations[gap.station_id], gap.starts_at, gap.ends_at, gap.minutes)
        for gap in shown
        if gap.station_id in stations
    ]
    return Some(rows, len(gaps))


def failed_workloads(organization: Organization, now: dt.datetime) -> Some[Workload]:
    """GPU work that failed in the last day, latest first."""
    failed = (
        inference.workloads_of(organization)
        .filter(state=WorkloadState.FAILED, finished_at__gte=now - FAILED_SINCE)
        .order_by("-finished_at", "id")
    )
    return _some(failed, ALERT_ROWS)


@dataclasses.dataclass(frozen=True)
class BudgetAlert:
    """A budget alert that stands this month: 80 or 100 (percent of the budget spent)."""

    threshold: int
    amount: Decimal
    currency: str
    stopped: bool  # past 100% with a hard stop: new work is held now

    @property
    def label(self) -> str:
        """What billing calls this alert (its notification's kind)."""
        kind = NotificationKind.BUDGET_100 if self.threshold >= 100 else NotificationKind.BUDGET_80
        return str(kind.label)


def budget_alert(organization: Organization, now: dt.datetime) -> BudgetAlert | None:
    """The highest budget alert billing has raised for this local month and that still holds;
    None without a budget or without one.

    Read from the budget's alert marks (`Budget.alerted_80_for`, `alerted_100_for`: the month
    each alert was sent for), not rated again: billing's budget check keeps them current (soon
    after every usage report, every 15 minutes, and at once when the budget changes), while
    rating the month here would cost the dashboard as much as a statement. One query."""
    budget = budgets.budget_of(organization)
    if budget is None:
        return None
    # Billing's own reading of the marks; `spent` is not rated here and not read by it.
    state = budgets.BudgetState(
        budget=budget,
        month=budgets.local_month(organization, now),
        spent=Decimal(0),
        currency=budget.currency,
    )
    raised = [threshold for threshold in budgets.THRESHOLDS if state.alerted(threshold)]
    if not raised:
        return None
    return BudgetAlert(
        threshold=max(raised),
        amount=budget.monthly_amount,
        currency=budget.currency,
        stopped=state.stopped,
    )


def hires_with_consent_expiring(organization: Organization, now: dt.datetime) -> Some[Employment]:
    """Hires not let go whose avatar version's consent ends within CONSENT_WARNING: when it
    does, the hire is suspended. Soonest first, the consent joined (only its dates are shown:
    it may be a vendor's)."""
    hires = (
        Employment.objects.for_organization(organization)
        .exclude(status=EmploymentStatus.TERMINATED)
        .filter(
            avatar_version__consent__revoked_at__isnull=True,
            avatar_version__consent__expires_at__gt=now,
            avatar_version__consent__expires_at__lte=now + CONSENT_WARNING,
        )
        .select_related("avatar", "avatar_version__consent")
        .order_by("avatar_version__consent__expires_at", "id")
    )
    return _some(hires, ALERT_ROWS)


def own_consents_expiring(organization: Organization, now: dt.datetime) -> Some[Consent]:
    """The organization's own recorded consents (its custom avatars) ending within
    CONSENT_WARNING, soonest first."""
    consents = (
        Consent.objects.for_organization(organization)
        .filter(revoked_at__isnull=True, expires_at__gt=now, expires_at__lte=now + CONSENT_WARNING)
        .select_related("avatar")
        .order_by("expires_at", "id")
    )
    return _some(consents, ALERT_ROWS)
