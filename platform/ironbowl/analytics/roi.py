"""Return on investment: outcomes valued at the organization's own prices, against cost.

Cost is the seat-days (each local day an employment was active at some moment, times its
seats) plus the ledger's usage records (stream minutes, GPU seconds, rendered seconds,
interactions; a correcting record reverses with the opposite quantity, so sums are net), priced
as `rates.pricing` says: at the billing plan's prices ("billing") or at the list rates ("list").
With billing's prices, the seat-days the ledger recorded (billing's `seat_days` records) are
priced as rating prices them, their rate per seat-month / the days of their local month, and
the local days it has no record of (before billing recorded them) are counted from the
employment's status history at the list seat-day rate. With list rates, all seat-days come from
the history.

Outcomes: visits, interactions, interactions answered without a person (those not handed off),
and viewer-hours — for each hour and stream, the mean concurrent-viewer sample times the time
on air that hour. Each is valued by the organization's `OutcomeValues`.

Money is exact (Decimal); every line is rounded to cents half up, totals are sums of lines, and
ROI = (value − cost) / cost, rounded half up to four places (none without cost, or before the
organization has said what its outcomes are worth).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import Case, ExpressionWrapper, F, FloatField, Sum, When

from avatars.models import Employment, EmploymentStatus, EmploymentTransition
from ironbowl.analytics import kpis, rates, usage
from ironbowl.analytics.models import OutcomeValues, UsageType
from tenants import audit
from tenants.audit import Actor
from tenants.models import Organization

ROI_PLACES = Decimal("0.0001")
HOURS_PLACES = Decimal("0.0001")
UNIT_PLACES = Decimal("0.000001")
VALUE_FIELDS = ("per_visit", "per_interaction", "per_viewer_hour", "per_handoff_avoided")


# --- Outcome values -------------------------------------------------------------------------------


def outcome_values(organization: Organization) -> OutcomeValues:
    """The organization's outcome values; unsaved defaults (CNY, all zero) until it sets them."""
    found = OutcomeValues.objects.for_organization(organization).first()
    return found or OutcomeValues(organization=organization)


@transaction.atomic
def set_outcome_values(
    actor: Actor, organization: Organization, *, currency: str, **values: Decimal
) -> OutcomeValues:
    """Replace what the organization's outcomes are worth; audited (before and after). Two
    first settings at once make one row (the second updates it)."""
    current, created = (
        OutcomeValues.objects.for_organization(organization)
        .select_for_update()
        .get_or_create(organization=organization)
    )
    before = None if created else audit.snapshot(current)
    current.currency = currency
    for name in VALUE_FIELDS:
        setattr(current, name, values[name])
    current.save()
    if before is None:
        after = audit.snapshot(current)
        audit.record(actor, organization, "outcome_values.set", current, after=after)
    else:
        audit.record_update(actor, organization, "outcome_values.set", current, before=before)
    return current


# --- Cost -----------------------------------------------------------------------------------------


def _active_spans(
    employment: Employment, history: list[EmploymentTransition]
) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """When the employment was active, from its status history: [since, until) spans."""
    status = history[0].from_status if history else employment.status
    since = employment.created_at
    spans: list[tuple[dt.datetime, dt.datetime | None]] = []
    for transition in history:
        if status == EmploymentStatus.ACTIVE:
            spans.append((since, transition.created_at))
        status, since = transition.to_status, transition.created_at
    if status == EmploymentStatus.ACTIVE:
        spans.append((since, None))
    return spans


def active_days(
    spans: list[tuple[dt.datetime, dt.datetime | None]],
    start: dt.datetime,
    end: dt.datetime,
    zone: zoneinfo.ZoneInfo,
) -> int:
    """How many local days of [start, end) the spans touch."""
    return len(active_dates(spans, start, end, zone))


def active_dates(
    spans: list[tuple[dt.datetime, dt.datetime | None]],
    start: dt.datetime,
    end: dt.datetime,
    zone: zoneinfo.ZoneInfo,
) -> set[dt.date]:
    """The local days of [start, end) the spans touch."""
    days: set[dt.date] = set()
    for since, until in spans:
        begins, ends = max(since, start), min(until or end, end)
        if begins >= ends:
            continue
        day = begins.astimezone(zone).date()
        last = (ends - dt.timedelta(microseconds=1)).astimezone(zone).date()
        while day <= last:
            days.add(day)
            day += dt.timedelta(days=1)
    return days


@dataclasses.dataclass
class Seats:
    """An employment's seat-days in a window: `listed`, counted from its history (priced at the
    list seat-day rate), and `billed`, recorded by the ledger, by the price of one seat-day."""

    listed: int = 0
    billed: dict[Decimal, Decimal] = dataclasses.field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.listed + int(sum(self.billed.values(), Decimal(0)))


def _ledger_seat_days(
    organization: Organization,
    span: kpis.Window,
    ids: list[uuid.UUID],
    seat_day: Callable[[Decimal, dt.date], Decimal],
) -> dict[uuid.UUID, dict[dt.date, dict[Decimal, Decimal]]]:
    """The ledger's seat-days of the window: employment -> local day -> price -> seat-days
    (reversals net). A record without a unit price is left out (billing refuses to rate it)."""
    found: dict[uuid.UUID, dict[dt.date, dict[Decimal, Decimal]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(Decimal))
    )
    records = (
        usage.records_between(organization, span.start, span.end)
        .filter(usage_type=UsageType.SEAT_DAYS, employment_id__in=ids, unit_price__isnull=False)
        .values_list("employment_id", "occurred_at", "unit_price", "quantity")
    )
    for employment_id, occurred_at, unit_price, quantity in records:
        if employment_id is None or unit_price is None:  # pragma: no cover - filtered out
            continue
        day = occurred_at.astimezone(span.zone).date()
        found[employment_id][day][seat_day(unit_price, day)] += quantity
    return found


def seat_days(
    organization: Organization,
    span: kpis.Window,
    employments: list[Employment],
    seat_day: Callable[[Decimal, dt.date], Decimal] | None = None,
) -> dict[uuid.UUID, Seats]:
    """Seat-days of each employment in the window: local days active × seats, from the history;
    with `seat_day` (billing's prices), the days the ledger recorded come from the ledger
    instead. One query, two with `seat_day`."""
    ids = [e.pk for e in employments]
    ledger = _ledger_seat_days(organization, span, ids, seat_day) if seat_day else {}
    history: dict[uuid.UUID, list[EmploymentTransition]] = defaultdict(list)
    transitions = (
        EmploymentTransition.objects.for_organization(organization)
        .filter(employment_id__in=ids, created_at__lt=span.end)
        .order_by("created_at", "id")
    )
    for transition in transitions:
        history[transition.employment_id].append(transition)
    found: dict[uuid.UUID, Seats] = {}
    for employment in employments:
        spans = _active_spans(employment, history[employment.pk])
        recorded = ledger.get(employment.pk, {})
        listed = active_dates(spans, span.start, span.end, span.zone) - set(recorded)
        seats = Seats(listed=employment.seats * len(listed))
        for prices in recorded.values():
            for price, quantity in prices.items():
                seats.billed[price] = seats.billed.get(price, Decimal(0)) + quantity
        found[employment.pk] = seats
    return found


def _added_seats(seats: Iterable[Seats]) -> Seats:
    total = Seats()
    for one in seats:
        total.listed += one.listed
        for price, quantity in one.billed.items():
            total.billed[price] = total.billed.get(price, Decimal(0)) + quantity
    return total


def usage_by_employment(
    organization: Organization, span: kpis.Window, *, employment_id: uuid.UUID | None = None
) -> dict[uuid.UUID | None, dict[str, Decimal]]:
    """Net usage quantities in the window, per employment (None: not attributed). One query."""
    records = usage.records_between(organization, span.start, span.end)
    if employment_id is not None:
        records = records.filter(employment_id=employment_id)
    found: dict[uuid.UUID | None, dict[str, Decimal]] = defaultdict(dict)
    for row in usage.totals(records, "employment_id", "usage_type"):
        found[row["employment_id"]][row["usage_type"]] = Decimal(row["quantity"] or 0)
    return found


# --- Outcomes -------------------------------------------------------------------------------------

_VIEWER_SECONDS = Case(
    When(
        view_samples__gt=0,
        then=ExpressionWrapper(
            F("view_sum") * F("broadcast_seconds") / F("view_samples"), output_field=FloatField()
        ),
    ),
    default=0.0,
    output_field=FloatField(),
)


def viewer_hours(
    organization: Organization,
    span: kpis.Window,
    *,
    employment_id: uuid.UUID | None = None,
    employment_ids: Iterable[uuid.UUID] | None = None,
) -> dict[uuid.UUID | None, Decimal]:
    """Viewer-hours per employment from the hourly rollups of the window. One query."""
    hours = dataclasses.replace(span, granularity=kpis.HOUR)  # the same range, hourly rollups
    rows = kpis.rollups(
        organization, hours, employment_id=employment_id, employment_ids=employment_ids
    )
    totals = rows.values("employment_id").annotate(seconds=Sum(_VIEWER_SECONDS)).order_by()
    return {row["employment_id"]: _hours(row["seconds"] or 0.0) for row in totals}


def _hours(seconds: float) -> Decimal:
    return (Decimal(repr(float(seconds))) / 3600).quantize(HOURS_PLACES, rounding=ROUND_HALF_UP)


# --- Valuation ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Line:
    """A quantity priced (cost) or valued (outcome): amount = quantity × unit, in cents."""

    item: str
    quantity: Decimal
    unit: Decimal
    amount: Decimal

    @classmethod
    def of(cls, item: str, quantity: Decimal | int, unit: Decimal) -> Line:
        """The line of `quantity` at `unit`; a unit finer than a millionth (a seat-day's share
        of a monthly rate) is shown to 6 places, the amount uses it exactly."""
        quantity = Decimal(quantity)
        shown = unit.quantize(UNIT_PLACES, rounding=ROUND_HALF_UP) if _finer(unit) else unit
        return cls(item, quantity, shown, rates.to_cents(quantity * unit))


def _finer(unit: Decimal) -> bool:
    exponent = Decimal(unit).normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent < -6


@dataclasses.dataclass(frozen=True)
class Valuation:
    currency: str
    costs: list[Line]
    outcomes: list[Line]
    values_set: bool  # whether the organization has said what its outcomes are worth
    rates: str = "list"  # where the prices came from: "billing" (the plan's) or "list"

    @property
    def cost(self) -> Decimal:
        return sum((line.amount for line in self.costs), Decimal("0.00"))

    @property
    def value(self) -> Decimal:
        return sum((line.amount for line in self.outcomes), Decimal("0.00"))

    @property
    def net(self) -> Decimal:
        return self.value - self.cost

    @property
    def roi(self) -> Decimal | None:
        if not self.values_set or not self.cost:
            return None
        return (self.net / self.cost).quantize(ROI_PLACES, rounding=ROUND_HALF_UP)


def valuate(
    tally: kpis.Tally,
    viewer_hours: Decimal,
    seats: Seats,
    used: dict[str, Decimal],
    price: rates.Pricing,
    values: OutcomeValues,
) -> Valuation:
    """Cost and outcomes of one employment (or of several, added up before pricing). Seat-days:
    a line per price of a ledger seat-day (lowest first), and the list-rate line (kept when it
    is the only one)."""
    unit = price.rates.per_usage_type()
    costs = [Line.of("seat_days", seats.billed[each], each) for each in sorted(seats.billed)]
    if seats.listed or not costs:
        costs.append(Line.of("seat_days", seats.listed, price.rates.seat_day))
    costs += [Line.of(kind, used.get(kind, Decimal(0)), unit[kind]) for kind in unit]
    outcomes = [
        Line.of("visits", tally.visits, values.per_visit),
        Line.of("interactions", tally.interactions, values.per_interaction),
        Line.of("viewer_hours", viewer_hours, values.per_viewer_hour),
        Line.of("answered_without_person", tally.answered, values.per_handoff_avoided),
    ]
    values_set = not values._state.adding
    return Valuation(values.currency, costs, outcomes, values_set, rates=price.source)


@dataclasses.dataclass(frozen=True)
class Report:
    """ROI of the organization (or of one employment) over a window."""

    window: kpis.Window
    tally: kpis.Tally
    viewer_hours: Decimal
    seat_days: int
    valuation: Valuation


def _employments(
    organization: Organization, span: kpis.Window, ids: Iterable[uuid.UUID] | None = None
) -> list[Employment]:
    found = (
        Employment.objects.for_organization(organization)
        .filter(created_at__lt=span.end)
        .select_related("avatar", "position")
        .order_by("created_at", "id")
    )
    if ids is not None:
        found = found.filter(pk__in=list(ids))
    return list(found)


def _added(usages: Iterable[dict[str, Decimal]]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = defaultdict(Decimal)
    for used in usages:
        for kind, quantity in used.items():
            total[kind] += quantity
    return dict(total)


def report(
    organization: Organization, span: kpis.Window, *, employment_id: uuid.UUID | None = None
) -> Report:
    """ROI over the window, of the whole organization or of one employment. Six queries, and
    the pricing's (the provider's one or two, and the ledger's seat-days with billing's)."""
    values = outcome_values(organization)
    price = rates.pricing(organization, values.currency)
    ids = None if employment_id is None else [employment_id]
    employments = _employments(organization, span, ids)
    seats = _added_seats(seat_days(organization, span, employments, price.seat_day).values())
    tally = kpis.totals(organization, span, employment_id=employment_id)
    hours = sum(viewer_hours(organization, span, employment_id=employment_id).values(), Decimal(0))
    used = _added(usage_by_employment(organization, span, employment_id=employment_id).values())
    return Report(
        span, tally, hours, seats.total, valuate(tally, hours, seats, used, price, values)
    )


@dataclasses.dataclass(frozen=True)
class Scorecard:
    employment: Employment
    tally: kpis.Tally
    viewer_hours: Decimal
    seat_days: int
    valuation: Valuation

    def per_broadcast_hour(self, count: int) -> float | None:
        hours = self.tally.broadcast_hours
        return round(count / hours, 4) if hours else None


def scorecards(
    organization: Organization,
    span: kpis.Window,
    *,
    employment_ids: Iterable[uuid.UUID] | None = None,
) -> list[Scorecard]:
    """One scorecard per employment that was active or had activity in the window (or per
    employment asked for), in hiring order. Seven queries and the pricing's (as `report`),
    whatever the number of employments."""
    values = outcome_values(organization)
    price = rates.pricing(organization, values.currency)
    ids = None if employment_ids is None else list(employment_ids)
    employments = _employments(organization, span, ids)
    seats = seat_days(organization, span, employments, price.seat_day)
    known = [e.pk for e in employments]
    tallies = kpis.totals_by(organization, span, "employment", employment_ids=known)
    hours = viewer_hours(organization, span, employment_ids=known)
    used = usage_by_employment(organization, span)
    cards = []
    for employment in employments:
        tally = tallies.get(employment.pk)
        idle = tally is None and not seats[employment.pk].total and not used.get(employment.pk)
        if idle and ids is None:
            continue  # neither on the payroll nor at work in the window
        tally = tally or kpis.Tally()
        viewer = hours.get(employment.pk, Decimal(0))
        valuation = valuate(
            tally, viewer, seats[employment.pk], used.get(employment.pk, {}), price, values
        )
        card = Scorecard(employment, tally, viewer, seats[employment.pk].total, valuation)
        cards.append(card)
    return cards
