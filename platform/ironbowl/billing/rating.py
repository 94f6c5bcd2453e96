"""Rating: one organization's month, computed from the ledger, its subscriptions and their plans.

`rate(organization, period)` reads and never writes; the same ledger gives the same statement.
The month is the organization's local month. What it includes:

- the records that occurred in the month (with `watermark`, only those with an id up to it);
- late records: those of earlier months that arrived after the last closed statement took its
  watermark (id above it) — only while no earlier statement is still open, since that one comes
  first. They are lines marked with their own month (`late_period`).

How it prices:

- Seats, per hire: each seat-day costs seats × the hire's rate per seat-month / the days of its
  month (the rate the ledger recorded with the day).
- Stream hours, interactions, GPU hours and rendered minutes: the ledger's units converted to
  billing units (stream minutes / 60, interactions / 1,000, GPU seconds / 3,600, rendered
  seconds / 60), to 6 decimal places. Usage is priced by the plan in force when it happened.
  Each subscription covering part of the month brings that fraction of its plan's included
  allowance (and of its platform fee); the allowance is shared by the organization and split
  across the hires in proportion to their use, exactly (largest remainder, to the millionth of a
  unit), so the parts add up to it. Usage past the allowance is overage × the plan's price.
  Late usage uses what its month's allowance had left after the lines already billed for that
  month (a late reversal gives allowance back first), so a month billed in pieces costs what it
  would have cost at once.
- Usage attributed to no hire is the organization's own line; so are the platform fee and the
  discount (each subscription's `discount_percent` of the lines it priced, a negative line).

Rounding: every line is rounded to the cent, half up; the subtotal is the sum of the lines
other than discounts, the discount the (positive) sum of the discount lines, the tax the
subtotal after discount × the plan's tax rate rounded to the cent half up (per tax rate, if the
month's plans differ), and the total = subtotal − discount + tax. Totals are sums of rounded
lines, never rounded again.

Currency: the plans'. A hire paid in another currency is refused by name, never converted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from django.db.models import Count, Max, Q, Sum
from django.utils import translation
from django.utils.translation import gettext as _

from avatars.models import Employment
from ironbowl.analytics.models import UsageRecord, UsageType
from ironbowl.billing.models import (
    LineKind,
    Plan,
    Statement,
    StatementLine,
    StatementStatus,
    Subscription,
)
from ironbowl.billing.plans import in_force, subscriptions_of
from tenants.errors import ConflictError
from tenants.models import Organization

CENT = Decimal("0.01")
MICRO = Decimal("0.000001")
MICROS = 10**6

K = TypeVar("K", bound=Hashable)


class RatingError(ConflictError):
    """The ledger or the terms cannot be rated as they are (nothing is written)."""


@dataclasses.dataclass(frozen=True)
class Meter:
    """A usage type as billed: ledger units per billing unit, the plan's allowance and price."""

    kind: str
    usage_type: str
    ledger_per_unit: Decimal
    unit: str
    included_field: str
    included_per_unit: Decimal  # the plan's allowance field is in these per billing unit
    price_field: str

    def allowance(self, plan: Plan) -> Decimal:
        return Decimal(getattr(plan, self.included_field)) / self.included_per_unit

    def price(self, plan: Plan) -> Decimal:
        return Decimal(getattr(plan, self.price_field))


METERS = (
    Meter(
        LineKind.STREAM_HOURS,
        UsageType.STREAM_MINUTES,
        Decimal(60),
        "hour",
        "included_stream_hours",
        Decimal(1),
        "price_stream_hour",
    ),
    Meter(
        LineKind.INTERACTIONS,
        UsageType.INTERACTIONS,
        Decimal(1000),
        "1,000 interactions",
        "included_interactions",
        Decimal(1000),
        "price_thousand_interactions",
    ),
    Meter(
        LineKind.GPU_HOURS,
        UsageType.GPU_SECONDS,
        Decimal(3600),
        "GPU hour",
        "included_gpu_hours",
        Decimal(1),
        "price_gpu_hour",
    ),
    Meter(
        LineKind.RENDERED_MINUTES,
        UsageType.RENDERED_SECONDS,
        Decimal(60),
        "minute",
        "included_rendered_minutes",
        Decimal(1),
        "price_rendered_minute",
    ),
)
METER_OF_TYPE = {meter.usage_type: meter for meter in METERS}
KIND_ORDER = {
    LineKind.SEATS: 0,
    **{meter.kind: number for number, meter in enumerate(METERS, start=1)},
    LineKind.PLATFORM_FEE: 10,
    LineKind.DISCOUNT: 11,
}


@dataclasses.dataclass(frozen=True)
class RatedLine:
    employment_id: uuid.UUID | None
    subscription_id: uuid.UUID | None
    kind: str
    description: str
    quantity: Decimal  # billed, in `unit`
    unit: str
    used: Decimal  # before the allowance (seats: seat-days; platform fee: share of the month)
    included: Decimal  # covered by the plan's allowance
    unit_price: Decimal
    amount: Decimal
    late_period: dt.date | None = None


@dataclasses.dataclass(frozen=True)
class RatedStatement:
    organization_id: uuid.UUID
    period: dt.date
    currency: str
    lines: tuple[RatedLine, ...]
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal
    watermark: int | None


# --- Months -------------------------------------------------------------------------------------


def next_month(period: dt.date) -> dt.date:
    return (period.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def days_in_month(period: dt.date) -> int:
    return (next_month(period) - period.replace(day=1)).days


def month_bounds(period: dt.date, zone: zoneinfo.ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The local month starting at `period` as [start, end) instants in UTC."""
    start = dt.datetime.combine(period.replace(day=1), dt.time(), tzinfo=zone)
    end = dt.datetime.combine(next_month(period), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def month_of(instant: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.date:
    return instant.astimezone(zone).date().replace(day=1)


def _micros(span: dt.timedelta) -> int:
    return span // dt.timedelta(microseconds=1)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def units(value: Decimal) -> Decimal:
    return value.quantize(MICRO, rounding=ROUND_HALF_UP)


# --- Exact shares -------------------------------------------------------------------------------


def _order(key: object) -> tuple[int, str]:
    return (1, "") if key is None else (0, str(key))


def allocate(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """Split `total` (≥ 0) in proportion to `weights` (≥ 0, some positive) exactly: each gets
    its share rounded down, and the units left over go one by one to the largest remainders
    (ties: by key, no key last)."""
    whole = sum(weights.values())
    if total == 0 or whole == 0:
        return dict.fromkeys(weights, 0)
    shares = {key: total * weight // whole for key, weight in weights.items()}
    left = total - sum(shares.values())
    ranked = sorted(weights, key=lambda key: (-(total * weights[key] % whole), _order(key)))
    for key in ranked[:left]:
        shares[key] += 1
    return shares


def split_allowance(
    uses: Mapping[K, Decimal],
    allowance: Decimal,
    used_before: Decimal = Decimal(0),
    included_before: Decimal = Decimal(0),
) -> dict[K, Decimal]:
    """The part of each use the allowance covers. `used_before`/`included_before`: what lines
    billed already for the same month, plan and meter (late usage). The organization-wide
    covered amount becomes min(max(all use, 0), allowance); what changes is split in proportion
    to the uses that move it (positive uses take allowance, negative ones give it back)."""
    after = min(max(used_before + sum(uses.values(), Decimal(0)), Decimal(0)), allowance)
    change = after - included_before
    sign = 1 if change >= 0 else -1
    weights = {key: int(abs(use) * MICROS) for key, use in uses.items() if use * sign > 0}
    if change and not weights:  # the allowance moved without a use to carry it
        weights = {min(uses, key=_order): 1}
    shares = allocate(int(abs(change) * MICROS), weights)
    return {key: Decimal(sign * shares.get(key, 0)) / MICROS for key in uses}


# --- Segments -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Segment:
    """Part of a month under one subscription: usage in [start, end) is priced by its plan.
    `fraction` is the part of the month the subscription itself covered (fee and allowance)."""

    subscription: Subscription
    start: dt.datetime
    end: dt.datetime
    fraction: Decimal


def coverage(subscription: Subscription, start: dt.datetime, end: dt.datetime) -> Decimal:
    """The fraction of [start, end) the subscription covered."""
    begin = max(start, subscription.starts_at)
    until = min(end, subscription.ends_at or end)
    if until <= begin:
        return Decimal(0)
    return Decimal(_micros(until - begin)) / Decimal(_micros(end - start))


def segments(
    subscriptions: list[Subscription], start: dt.datetime, end: dt.datetime
) -> list[Segment]:
    points = sorted({start, *(s.starts_at for s in subscriptions if start < s.starts_at < end)})
    bounds = [*points, end]
    found: list[Segment] = []
    for begin, until in itertools.pairwise(bounds):
        subscription = in_force(subscriptions, begin)
        if found and found[-1].subscription is subscription:
            # The first subscription starting within the month: it prices what came before too.
            found[-1] = dataclasses.replace(found[-1], end=until)
        else:
            found.append(Segment(subscription, begin, until, coverage(subscription, start, end)))
    return found


# --- Rating -------------------------------------------------------------------------------------

InPeriod = dict[tuple[int, uuid.UUID | None, str, Decimal | None], Decimal]


def _saved_id(subscription: Subscription) -> uuid.UUID | None:
    """The subscription's id when it is stored (the first one may be only taken, unsaved)."""
    return None if subscription._state.adding else subscription.pk


@dataclasses.dataclass
class _Rating:
    """One rating's state: what it knows, and the lines it made (each with its sort key)."""

    organization: Organization
    zone: zoneinfo.ZoneInfo
    subscriptions: list[Subscription]
    names: dict[uuid.UUID, str] = dataclasses.field(default_factory=dict)
    several_plans: bool = False
    rows: list[tuple[tuple[Any, ...], RatedLine]] = dataclasses.field(default_factory=list)

    def name(self, employment_id: uuid.UUID | None) -> str:
        if employment_id is None:
            return _("Not attributed to a digital employee")
        return self.names.get(employment_id, str(employment_id)[:8])

    def describe(
        self, employment_id: uuid.UUID | None, what: str, plan: Plan, late: dt.date | None
    ) -> str:
        text = f"{self.name(employment_id)}: {what}"
        if self.several_plans:
            text += " " + _("(%(plan)s plan)") % {"plan": plan.name}
        if late:
            text += " " + _("- late usage of %(month)s") % {"month": f"{late:%Y-%m}"}
        return text

    def add(self, line: RatedLine, start: dt.datetime, *rest: Any) -> None:
        employment_id, kind = line.employment_id, line.kind
        group = 0 if employment_id is not None else 1
        if kind == LineKind.PLATFORM_FEE:
            group = 2
        elif kind == LineKind.DISCOUNT:
            group = 3
        key = (
            group,
            self.name(employment_id) if employment_id else "",
            str(employment_id or ""),
            line.late_period or dt.date.min,
            KIND_ORDER[kind],
            start,
            *rest,
        )
        self.rows.append((key, line))

    def ordered(self) -> list[RatedLine]:
        return [line for _key, line in sorted(self.rows, key=lambda row: row[0])]


def rate(
    organization: Organization, period: dt.date, *, watermark: int | None = None
) -> RatedStatement:
    """The organization's statement for the local month of `period`, computed (nothing is
    written). `watermark`: rate only ledger records with an id up to it (closing)."""
    period = period.replace(day=1)
    zone = zoneinfo.ZoneInfo(organization.time_zone)
    start, end = month_bounds(period, zone)
    subscriptions = subscriptions_of(organization)
    ledger = UsageRecord.objects.for_organization(organization)
    if watermark is not None:
        ledger = ledger.filter(id__lte=watermark)

    month_segments = segments(subscriptions, start, end)
    in_period = _in_period_totals(ledger, month_segments)
    late = _late_records(organization, ledger, period, start)
    used = {_saved_id(segment.subscription): segment.subscription for segment in month_segments}
    for row in late:
        row["subscription"] = in_force(subscriptions, row["occurred_at"])
        row["month"] = month_of(row["occurred_at"], zone)
        used[_saved_id(row["subscription"])] = row["subscription"]
    currency = _currency(list(used.values()))
    employment_ids = {key[1] for key in in_period if key[1] is not None} | {
        row["employment_id"] for row in late if row["employment_id"] is not None
    }

    rating = _Rating(organization, zone, subscriptions)
    rating.several_plans = len({subscription.plan_id for subscription in used.values()}) > 1
    # Descriptions are written in the organization's language.
    with translation.override(organization.locale):
        rating.names = _employment_names(organization, employment_ids, currency)
        for index, segment in enumerate(month_segments):
            _rate_segment(rating, segment, period, index, in_period)
        if late:
            _rate_late(rating, late)
        _discounts(rating, used)
    return _totals(organization, period, currency, rating.ordered(), used, watermark)


def _in_period_totals(ledger: Any, month_segments: list[Segment]) -> InPeriod:
    """Net quantities (reversals included) by (segment, employment, usage type, unit price)."""
    found: InPeriod = {}
    for index, segment in enumerate(month_segments):
        rows = (
            ledger.filter(occurred_at__gte=segment.start, occurred_at__lt=segment.end)
            .order_by()
            .values("employment_id", "usage_type", "unit_price")
            .annotate(total=Sum("quantity"))
        )
        for row in rows:
            _known_type(row["usage_type"])
            key = (index, row["employment_id"], row["usage_type"], row["unit_price"])
            found[key] = found.get(key, Decimal(0)) + row["total"]
    return found


def _known_type(usage_type: str) -> None:
    if usage_type != UsageType.SEAT_DAYS and usage_type not in METER_OF_TYPE:
        raise RatingError(
            "unknown_usage_type",
            _("The ledger holds usage of an unknown type, %(type)r: it cannot be priced.")
            % {"type": usage_type},
        )


def _late_records(
    organization: Organization, ledger: Any, period: dt.date, start: dt.datetime
) -> list[dict[str, Any]]:
    """Records of earlier months that arrived after the last closed statement's watermark;
    none while an earlier statement is open (it takes them first)."""
    earlier = (
        Statement.objects.for_organization(organization)
        .filter(period__lt=period)
        .aggregate(
            open=Count("pk", filter=Q(status=StatementStatus.OPEN)),
            watermark=Max("ledger_watermark", filter=Q(status=StatementStatus.CLOSED)),
        )
    )
    if earlier["open"]:
        return []
    rows = list(
        ledger.filter(occurred_at__lt=start, id__gt=earlier["watermark"] or 0)
        .order_by("id")
        .values("id", "employment_id", "usage_type", "unit_price", "quantity", "occurred_at")
    )
    for row in rows:
        _known_type(row["usage_type"])
    return rows


def _currency(used: list[Subscription]) -> str:
    currencies = {subscription.plan.currency for subscription in used}
    if len(currencies) > 1:
        raise RatingError(
            "plan_currencies_differ",
            _("The plans of this month bill in %(currencies)s: one statement has one currency.")
            % {"currencies": ", ".join(sorted(currencies))},
        )
    return currencies.pop()


def employment_names(
    organization: Organization, employment_ids: Iterable[uuid.UUID], *, english: bool
) -> dict[uuid.UUID, tuple[str, str]]:
    """Each hire's (name, currency) in one query: its avatar's name and its position's title."""
    rows = (
        Employment.objects.for_organization(organization)
        .filter(pk__in=set(employment_ids))
        .values("pk", "currency", "avatar__name_zh", "avatar__name_en", "position__title")
    )
    names = {}
    for row in rows:
        avatar = (row["avatar__name_en"] if english else "") or row["avatar__name_zh"]
        names[row["pk"]] = (f"{avatar} - {row['position__title']}", row["currency"])
    return names


def _employment_names(
    organization: Organization, employment_ids: set[uuid.UUID], currency: str
) -> dict[uuid.UUID, str]:
    """Names of the hires; a hire paid in another currency than the statement's is refused by
    name (amounts are never converted)."""
    if not employment_ids:
        return {}
    english = translation.get_language() == "en"
    found = employment_names(organization, employment_ids, english=english)
    for name, theirs in sorted(found.values()):
        if theirs != currency:
            raise RatingError(
                "employment_currency",
                _(
                    "%(employment)s is paid in %(theirs)s and the plan bills in %(ours)s; "
                    "amounts are never converted. Set the hire's rate in %(ours)s."
                )
                % {"employment": name, "theirs": theirs, "ours": currency},
            )
    return {pk: name for pk, (name, _theirs) in found.items()}


def _seat_line(
    rating: _Rating,
    employment_id: uuid.UUID | None,
    subscription: Subscription,
    rate_per_month: Decimal | None,
    seat_days: Decimal,
    month: dt.date,
    late: dt.date | None,
    start: dt.datetime,
) -> None:
    if rate_per_month is None:
        raise RatingError(
            "seat_price_missing",
            _("Seat-days of %(employment)s carry no rate.")
            % {"employment": rating.name(employment_id)},
        )
    days = days_in_month(month)
    # A rate in whole cents shows two decimals; a finer one (a negotiated rate) shows them all.
    shown = money(rate_per_month) if rate_per_month == money(rate_per_month) else rate_per_month
    what = _("%(days)s seat-days at %(rate)s a seat-month (a %(month_days)d-day month)") % {
        "days": f"{seat_days.normalize():f}",
        "rate": f"{shown:f}",
        "month_days": days,
    }
    rating.add(
        RatedLine(
            employment_id=employment_id,
            subscription_id=_saved_id(subscription),
            kind=LineKind.SEATS,
            description=rating.describe(employment_id, what, subscription.plan, late),
            quantity=units(seat_days / days),
            unit="seat-month",
            used=seat_days,
            included=Decimal(0),
            unit_price=rate_per_month,
            # Each seat-day is a day's share of the month's rate; rounded once, per line.
            amount=money(seat_days * rate_per_month / days),
            late_period=late,
        ),
        start,
        rate_per_month,
    )


def _meter_lines(
    rating: _Rating,
    meter: Meter,
    subscription: Subscription,
    uses: dict[uuid.UUID | None, Decimal],
    covered: dict[uuid.UUID | None, Decimal],
    late: dt.date | None,
    start: dt.datetime,
) -> None:
    price = meter.price(subscription.plan)
    label = str(LineKind(meter.kind).label)
    for employment_id, used in uses.items():
        included = covered[employment_id]
        overage = used - included
        amount = money(overage * price)
        if not used and not amount:
            continue
        rating.add(
            RatedLine(
                employment_id=employment_id,
                subscription_id=_saved_id(subscription),
                kind=meter.kind,
                description=rating.describe(employment_id, label, subscription.plan, late),
                quantity=overage,
                unit=meter.unit,
                used=used,
                included=included,
                unit_price=price,
                amount=amount,
                late_period=late,
            ),
            start,
        )


def _rate_segment(
    rating: _Rating, segment: Segment, period: dt.date, index: int, in_period: InPeriod
) -> None:
    subscription, plan = segment.subscription, segment.subscription.plan
    raw: dict[str, dict[uuid.UUID | None, Decimal]] = defaultdict(dict)
    seats: dict[tuple[uuid.UUID | None, Decimal | None], Decimal] = defaultdict(Decimal)
    for (number, employment_id, usage_type, unit_price), quantity in in_period.items():
        if number != index:
            continue
        if usage_type == UsageType.SEAT_DAYS:
            seats[(employment_id, unit_price)] += quantity
        else:
            uses = raw[usage_type]
            uses[employment_id] = uses.get(employment_id, Decimal(0)) + quantity
    for (employment_id, unit_price), seat_days in seats.items():
        if seat_days:
            _seat_line(
                rating,
                employment_id,
                subscription,
                unit_price,
                seat_days,
                period,
                None,
                segment.start,
            )
    for meter in METERS:
        if meter.usage_type in raw:
            uses = {
                key: units(value / meter.ledger_per_unit)
                for key, value in raw[meter.usage_type].items()
            }
            allowance = units(meter.allowance(plan) * segment.fraction)
            covered = split_allowance(uses, allowance)
            _meter_lines(rating, meter, subscription, uses, covered, None, segment.start)
    fee = money(plan.platform_fee * segment.fraction)
    if fee:
        share = units(segment.fraction)
        rating.add(
            RatedLine(
                employment_id=None,
                subscription_id=_saved_id(subscription),
                kind=LineKind.PLATFORM_FEE,
                description=_("Platform fee, %(plan)s plan (%(share)s%% of the month)")
                % {"plan": plan.name, "share": f"{(share * 100).normalize():f}"},
                quantity=share,
                unit="month",
                used=share,
                included=Decimal(0),
                unit_price=plan.platform_fee,
                amount=fee,
            ),
            segment.start,
        )


def _billed_before(
    rating: _Rating, months: set[dt.date]
) -> dict[tuple[dt.date, uuid.UUID | None, str], tuple[Decimal, Decimal]]:
    """What closed statements billed already for each of `months`, by subscription and meter:
    (used, included) summed over the month's own lines and its late lines since."""
    rows = (
        StatementLine.objects.for_organization(rating.organization)
        .filter(statement__status=StatementStatus.CLOSED, kind__in=[m.kind for m in METERS])
        .filter(
            Q(late_period__in=months) | Q(late_period__isnull=True, statement__period__in=months)
        )
        .order_by()
        .values("late_period", "statement__period", "subscription_id", "kind")
        .annotate(used=Sum("used"), included=Sum("included"))
    )
    found: dict[tuple[dt.date, uuid.UUID | None, str], tuple[Decimal, Decimal]] = {}
    for row in rows:
        key = (row["late_period"] or row["statement__period"], row["subscription_id"], row["kind"])
        used, included = found.get(key, (Decimal(0), Decimal(0)))
        found[key] = (used + row["used"], included + row["included"])
    return found


def _rate_late(rating: _Rating, late: list[dict[str, Any]]) -> None:
    """Lines for usage of earlier, closed months, by month, subscription and hire: seats as in
    their month; metered usage against what its month's allowance had left."""
    seats: dict[tuple[dt.date, Any, uuid.UUID | None, Decimal | None], Decimal] = defaultdict(
        Decimal
    )
    raw: dict[tuple[dt.date, Any, str], dict[uuid.UUID | None, Decimal]] = defaultdict(dict)
    subscriptions: dict[Any, Subscription] = {}
    for row in late:
        subscription = row["subscription"]
        subscriptions[subscription.pk] = subscription
        month, employment_id = row["month"], row["employment_id"]
        if row["usage_type"] == UsageType.SEAT_DAYS:
            seats[(month, subscription.pk, employment_id, row["unit_price"])] += row["quantity"]
        else:
            uses = raw[(month, subscription.pk, row["usage_type"])]
            uses[employment_id] = uses.get(employment_id, Decimal(0)) + row["quantity"]
    for (month, pk, employment_id, unit_price), seat_days in seats.items():
        if seat_days:
            start = month_bounds(month, rating.zone)[0]
            subscription = subscriptions[pk]
            _seat_line(
                rating, employment_id, subscription, unit_price, seat_days, month, month, start
            )
    billed = _billed_before(rating, {month for month, _pk, _type in raw})
    for (month, pk, usage_type), quantities in raw.items():
        subscription, meter = subscriptions[pk], METER_OF_TYPE[usage_type]
        start, end = month_bounds(month, rating.zone)
        uses = {key: units(value / meter.ledger_per_unit) for key, value in quantities.items()}
        allowance = units(meter.allowance(subscription.plan) * coverage(subscription, start, end))
        used_before, included_before = billed.get(
            (month, _saved_id(subscription), meter.kind), (Decimal(0), Decimal(0))
        )
        covered = split_allowance(uses, allowance, used_before, included_before)
        _meter_lines(rating, meter, subscription, uses, covered, month, start)


def _discounts(rating: _Rating, used: Mapping[uuid.UUID | None, Subscription]) -> None:
    """Each subscription's negotiated discount on the lines it priced, as a negative line."""
    bases: dict[uuid.UUID | None, Decimal] = defaultdict(Decimal)
    for _key, line in rating.rows:
        bases[line.subscription_id] += line.amount
    for pk, subscription in used.items():
        percent, base = subscription.discount_percent, bases.get(pk, Decimal(0))
        if not percent or base <= 0:
            continue
        rating.add(
            RatedLine(
                employment_id=None,
                subscription_id=pk,
                kind=LineKind.DISCOUNT,
                description=_("Discount of %(percent)s%% on the %(plan)s plan")
                % {"percent": f"{percent.normalize():f}", "plan": subscription.plan.name},
                quantity=percent,
                unit="%",
                used=Decimal(0),
                included=Decimal(0),
                unit_price=-base / 100,
                amount=-money(base * percent / 100),
            ),
            subscription.starts_at,
        )


def _totals(
    organization: Organization,
    period: dt.date,
    currency: str,
    lines: list[RatedLine],
    used: Mapping[uuid.UUID | None, Subscription],
    watermark: int | None,
) -> RatedStatement:
    subtotal = sum((line.amount for line in lines if line.kind != LineKind.DISCOUNT), Decimal(0))
    discount = -sum((line.amount for line in lines if line.kind == LineKind.DISCOUNT), Decimal(0))
    # Tax on what is left after discounts, rounded once per tax rate (one rate: once).
    nets: dict[Decimal, Decimal] = defaultdict(Decimal)
    for line in lines:
        nets[used[line.subscription_id].plan.tax_rate] += line.amount
    tax = sum((money(net * tax_rate) for tax_rate, net in sorted(nets.items())), Decimal(0))
    return RatedStatement(
        organization_id=organization.pk,
        period=period,
        currency=currency,
        lines=tuple(lines),
        subtotal=subtotal,
        discount=discount,
        tax=tax,
        total=subtotal - discount + tax,
        watermark=watermark,
    )
