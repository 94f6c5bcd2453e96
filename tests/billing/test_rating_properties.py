"""Properties of rating, for any ledger hypothesis draws: lines add up to the totals with the
stated rounding; the shared allowance is used up exactly; re-rating the same ledger gives the
same statement (and refreshing writes nothing new); proration follows local month boundaries in
any time zone, and usage is priced by the plan in force at its instant.

Real: rating, statements and the database (each example makes its own organization, plans from
migration 0002). Simulated: nothing; expected fractions are computed here independently, from
the zone's wall clock with exact fractions.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ironbowl.billing import rating, statements
from ironbowl.billing.models import LineKind, Plan, StatementLine
from tests.billing.conftest import EPOCH, hire, make_organization, subscribe, usage

pytestmark = pytest.mark.django_db

ZONES = ["Asia/Shanghai", "America/New_York", "UTC", "Asia/Kolkata", "Australia/Adelaide"]
CODES = ["trial", "standard", "enterprise"]
TYPES = ["stream_minutes", "interactions", "gpu_seconds", "rendered_seconds"]
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CENT = Decimal("0.01")


def cents(value):
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def month_of_period(zone, period):
    """[start, end) of the local month, computed here from the wall clock (not by rating)."""
    tz = zoneinfo.ZoneInfo(zone)
    following = dt.date(period.year + period.month // 12, period.month % 12 + 1, 1)
    return (
        dt.datetime(period.year, period.month, 1, tzinfo=tz).astimezone(dt.UTC),
        dt.datetime(following.year, following.month, 1, tzinfo=tz).astimezone(dt.UTC),
    )


quantities = st.decimals(
    min_value=Decimal("0.000001"), max_value=Decimal(500_000), places=6, allow_nan=False
)


@st.composite
def worlds(draw):
    zone = draw(st.sampled_from(ZONES))
    period = dt.date(draw(st.integers(2023, 2025)), draw(st.integers(1, 12)), 1)
    start, end = month_of_period(zone, period)
    span = int((end - start).total_seconds())
    # Plan changes anywhere from a few days before the month to a few days after it.
    changes = draw(
        st.lists(
            st.tuples(st.sampled_from(CODES), st.integers(-3 * 86400, span + 3 * 86400)),
            max_size=3,
            unique_by=lambda change: change[1],
        )
    )
    hires = draw(
        st.lists(
            st.tuples(st.integers(1, 5), st.decimals(Decimal("0.01"), Decimal(9999), places=2)),
            min_size=1,
            max_size=3,
        )
    )
    records = draw(
        st.lists(
            st.tuples(
                st.one_of(st.none(), st.integers(0, len(hires) - 1)),
                st.sampled_from([*TYPES, "seat_days"]),
                quantities,
                st.integers(0, span - 1),
            ),
            max_size=12,
        )
    )
    discount = draw(st.decimals(Decimal(0), Decimal(30), places=2))
    return zone, period, start, end, changes, hires, records, discount


def build(world):
    zone, _period, start, _end, changes, hires, records, discount = world
    organization = make_organization(time_zone=zone, plan=CODES[0])
    history = [(CODES[0], EPOCH)] + [
        (code, start + dt.timedelta(seconds=offset)) for code, offset in changes
    ]
    subscribe(organization, history, discount=str(discount))
    employed = [hire(organization, seats=seats, rate=str(rate)) for seats, rate in hires]
    for who, usage_type, quantity, offset in records:
        employment = employed[who] if who is not None else employed[0]
        if usage_type == "seat_days":
            # A seat-day as billing appends it: the hire's seats at its rate per seat-month.
            usage(
                organization,
                usage_type,
                employment.seats,
                start + dt.timedelta(seconds=offset),
                employment,
                unit_price=employment.rate,
            )
        else:
            usage(
                organization,
                usage_type,
                quantity,
                start + dt.timedelta(seconds=offset),
                employment if who is not None else None,
            )
    return organization, sorted(history, key=lambda change: change[1])


@PROPERTY
@given(world=worlds())
def test_lines_add_up_to_the_totals(db, world):
    organization, _history = build(world)

    rated = rating.rate(organization, world[1])

    for line in rated.lines:
        assert line.amount == cents(line.amount)
        if line.kind not in (LineKind.DISCOUNT, LineKind.PLATFORM_FEE, LineKind.SEATS):
            assert line.quantity == line.used - line.included
            assert line.amount == cents(line.quantity * line.unit_price)
    discounts = [line.amount for line in rated.lines if line.kind == LineKind.DISCOUNT]
    others = [line.amount for line in rated.lines if line.kind != LineKind.DISCOUNT]
    assert rated.subtotal == sum(others, Decimal(0))
    assert rated.discount == -sum(discounts, Decimal(0))
    assert rated.tax == cents((rated.subtotal - rated.discount) * Decimal("0.06"))
    assert rated.total == rated.subtotal - rated.discount + rated.tax


@PROPERTY
@given(world=worlds())
def test_the_allowance_is_shared_exactly(db, world):
    organization, _history = build(world)
    start, end = world[2], world[3]
    plans = {plan.code: plan for plan in Plan.objects.all()}

    rated = rating.rate(organization, world[1])

    by_plan = defaultdict(lambda: [Decimal(0), Decimal(0), None])
    subscriptions = {s.pk: s for s in rating.subscriptions_of(organization)}
    for line in rated.lines:
        meter = next((m for m in rating.METERS if m.kind == line.kind), None)
        if meter is None:
            continue
        assert line.used > 0 and 0 <= line.included <= line.used
        group = by_plan[(line.subscription_id, line.kind)]
        group[0] += line.used
        group[1] += line.included
        group[2] = meter
    for (subscription_id, _kind), (used, included, meter) in by_plan.items():
        subscription = subscriptions[subscription_id]
        share = Fraction(
            (min(end, subscription.ends_at or end) - max(start, subscription.starts_at))
            // dt.timedelta(microseconds=1),
            (end - start) // dt.timedelta(microseconds=1),
        )
        allowance = meter.allowance(plans[subscription.plan.code])
        expected = Decimal(allowance) * Decimal(share.numerator) / Decimal(share.denominator)
        assert included == min(used, rating.units(max(expected, Decimal(0))))


@PROPERTY
@given(world=worlds())
def test_rerating_the_same_ledger_gives_the_same_statement(db, world):
    organization, _history = build(world)
    now = world[3] + dt.timedelta(days=40)

    first, second = rating.rate(organization, world[1]), rating.rate(organization, world[1])
    stored = statements.refresh(organization, world[1], now=now)
    rows = list(
        StatementLine.objects.for_organization(organization)
        .filter(statement=stored)
        .values_list("id", "amount")
    )
    again = statements.refresh(organization, world[1], now=now)

    assert first == second
    assert (stored.total, stored.subtotal, stored.tax) == (first.total, first.subtotal, first.tax)
    assert (
        list(
            StatementLine.objects.for_organization(organization)
            .filter(statement=again)
            .values_list("id", "amount")
        )
        == rows
    )


@PROPERTY
@given(
    zone=st.sampled_from(ZONES),
    period=st.builds(dt.date, st.integers(2023, 2025), st.integers(1, 12), st.just(1)),
    change=st.floats(min_value=0.0, max_value=1.0),
    at_local_midnight=st.booleans(),
    usage_at=st.floats(min_value=0.0, max_value=1.0),
)
def test_proration_follows_the_local_month_in_any_zone(
    db, zone, period, change, at_local_midnight, usage_at
):
    start, end = month_of_period(zone, period)
    instant = start + (end - start) * change
    if at_local_midnight:
        local_day = instant.astimezone(zoneinfo.ZoneInfo(zone)).date()
        instant = dt.datetime.combine(local_day, dt.time(), zoneinfo.ZoneInfo(zone)).astimezone(
            dt.UTC
        )
    instant = max(instant.replace(microsecond=0), start + dt.timedelta(seconds=1))
    organization = make_organization(time_zone=zone)
    subscribe(organization, [("standard", EPOCH), ("enterprise", instant)])
    employment = hire(organization)
    happened = start + (end - start) * usage_at
    happened = min(happened, end - dt.timedelta(microseconds=1))
    usage(organization, "gpu_seconds", 40_000_000, happened, employment)  # past any allowance
    usage(organization, "stream_minutes", 60, start - dt.timedelta(microseconds=1), employment)
    usage(organization, "stream_minutes", 60, end, employment)  # next month's

    rated = rating.rate(organization, period)

    whole = (end - start) // dt.timedelta(microseconds=1)
    before = (instant - start) // dt.timedelta(microseconds=1)
    fees = sorted(line.amount for line in rated.lines if line.kind == LineKind.PLATFORM_FEE)
    expected = [
        cents(Decimal(4800) * before / whole),
        cents(Decimal(38000) * (whole - before) / whole),
    ]
    assert fees == sorted(fee for fee in expected if fee)
    (gpu,) = [line for line in rated.lines if line.kind == LineKind.GPU_HOURS]
    in_force = "standard" if happened < instant else "enterprise"
    assert gpu.unit_price == Plan.objects.get(code=in_force).price_gpu_hour
    # The minute before the month is late usage of the previous month; the month's end is not in.
    (late,) = [line for line in rated.lines if line.kind == LineKind.STREAM_HOURS]
    assert late.late_period == (start - dt.timedelta(days=1)).astimezone(
        zoneinfo.ZoneInfo(zone)
    ).date().replace(day=1)
