"""Rating one month by hand-checked examples: seats, allowance shared exactly across hires,
overage, platform fee, discount, tax; plan changes prorated at local and UTC midnights in
Asia/Shanghai and America/New_York (across a DST change); usage priced by the plan in force;
refusals (a hire in another currency, an unknown usage type).

Real: the rating code, the database (ledger rows, subscriptions, hires with status history), the
plans of migration 0002. Simulated: nothing; the ledger is written directly, as the worker
protocol or an import would append it.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest

from ironbowl.analytics.models import UsageRecord
from ironbowl.billing import rating, seats
from ironbowl.billing.models import LineKind
from ironbowl.billing.rating import RatingError
from tests.billing.conftest import hire, local, make_organization, subscribe, usage

pytestmark = pytest.mark.django_db

MARCH = dt.date(2024, 3, 1)
SH = "Asia/Shanghai"
NY = "America/New_York"


def lines_of(rated, kind, employment=None):
    return [
        line
        for line in rated.lines
        if line.kind == kind and (employment is None or line.employment_id == employment.pk)
    ]


def one(rated, kind, employment=None):
    found = lines_of(rated, kind, employment)
    assert len(found) == 1, found
    return found[0]


def march_world(organization):
    """Two hires of a standard-plan organization in March 2024 (31 days) with usage."""
    xiaoyi = hire(organization, seats=2, rate="1999.00", name="小艺")
    anchor = hire(
        organization, rate="3100.00", name="主播", active_since=local(SH, 2024, 3, 11, 9, 30)
    )
    seats.record_seat_days(organization, dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    at = local(SH, 2024, 3, 20, 10)
    usage(organization, "stream_minutes", 12_000, at, xiaoyi)  # 200 hours
    usage(organization, "stream_minutes", 9_000, at, anchor)  # 150 hours
    usage(organization, "interactions", 150_000, at)  # nobody's: the organization's line
    usage(organization, "gpu_seconds", 1_800_000, at, xiaoyi)  # 500 GPU hours
    return xiaoyi, anchor


def test_a_month_is_rated_line_by_line_to_the_cent(shanghai):
    xiaoyi, anchor = march_world(shanghai)

    rated = rating.rate(shanghai, MARCH)

    seat = one(rated, LineKind.SEATS, xiaoyi)
    assert (seat.used, seat.amount) == (Decimal(62), Decimal("3998.00"))  # 62 × 1999 / 31
    # Active from 09:30 on the 11th: that day counts, 21 days.
    assert one(rated, LineKind.SEATS, anchor).amount == Decimal("2100.00")
    # 350 stream hours against 300 included: the allowance is split 200:150, exactly.
    mine, theirs = one(rated, LineKind.STREAM_HOURS, xiaoyi), one(rated, "stream_hours", anchor)
    assert (mine.used, mine.included, mine.amount) == (
        200,
        Decimal("171.428571"),
        Decimal("514.29"),
    )
    assert (theirs.used, theirs.included, theirs.amount) == (
        150,
        Decimal("128.571429"),
        Decimal("385.71"),
    )
    assert mine.included + theirs.included == 300
    interactions = one(rated, LineKind.INTERACTIONS)
    assert interactions.employment_id is None
    assert (interactions.used, interactions.quantity, interactions.amount) == (150, 50, 600)
    gpu = one(rated, LineKind.GPU_HOURS, xiaoyi)
    assert (gpu.used, gpu.included, gpu.amount) == (500, 500, 0)
    assert one(rated, LineKind.PLATFORM_FEE).amount == Decimal("4800.00")
    assert rated.subtotal == Decimal("12398.00")
    assert (rated.discount, rated.tax, rated.total) == (0, Decimal("743.88"), Decimal("13141.88"))
    assert rated.currency == "CNY"
    # Payslips first (hires by name), then the organization's own lines.
    kinds = [line.kind for line in rated.lines]
    assert kinds[-2:] == [LineKind.INTERACTIONS, LineKind.PLATFORM_FEE]


def test_a_negotiated_discount_is_a_negative_line_before_tax(shanghai):
    march_world(shanghai)
    subscribe(shanghai, [("standard", local(SH, 2023, 1, 1))], discount="10")

    rated = rating.rate(shanghai, MARCH)

    discount = one(rated, LineKind.DISCOUNT)
    assert discount.amount == Decimal("-1239.80")
    assert (rated.subtotal, rated.discount) == (Decimal("12398.00"), Decimal("1239.80"))
    assert rated.tax == Decimal("669.49")  # 6% of 11,158.20, half up
    assert rated.total == Decimal("11827.69")


def fees(rated):
    return sorted(line.amount for line in lines_of(rated, LineKind.PLATFORM_FEE))


def money(fraction_numerator, denominator, fee):
    return rating.money(Decimal(fee) * fraction_numerator / denominator)


@pytest.mark.parametrize(
    ("zone", "change", "standard_share"),
    [
        # Shanghai (no DST, 744 hours in March): at local midnight, 15 of 31 days.
        (SH, local(SH, 2024, 3, 16), (360, 744)),
        # At UTC midnight, which is 08:00 in Shanghai: 8 hours more on standard.
        (SH, dt.datetime(2024, 3, 16, tzinfo=dt.UTC), (368, 744)),
        # New York's March has 743 hours (clocks skip an hour on the 10th).
        (NY, local(NY, 2024, 3, 16), (359, 743)),
        # UTC midnight is 20:00 the evening before in New York (EDT).
        (NY, dt.datetime(2024, 3, 16, tzinfo=dt.UTC), (355, 743)),
    ],
)
def test_a_plan_change_prorates_the_fee_and_the_allowance_by_local_time(
    zone, change, standard_share
):
    organization = make_organization(time_zone=zone)
    subscribe(organization, [("standard", local(zone, 2023, 1, 1)), ("enterprise", change)])
    hours, month = standard_share

    rated = rating.rate(organization, MARCH)

    assert fees(rated) == sorted([money(hours, month, 4800), money(month - hours, month, 38000)])
    # The included stream hours follow the same shares: 300 × share + 3,000 × the rest, used
    # up exactly by enough usage in each part.
    employment = hire(organization)
    usage(organization, "stream_minutes", 600_000, local(zone, 2024, 3, 2), employment)
    usage(organization, "stream_minutes", 600_000, local(zone, 2024, 3, 30), employment)
    rated = rating.rate(organization, MARCH)
    stream = sorted(lines_of(rated, LineKind.STREAM_HOURS), key=lambda line: line.unit_price)
    assert [line.included for line in stream] == [
        rating.units(Decimal(3000) * (month - hours) / month),
        rating.units(Decimal(300) * hours / month),
    ]
    assert [line.unit_price for line in stream] == [12, 18]


@pytest.mark.parametrize(
    ("change", "price"),
    [
        (local(SH, 2024, 3, 16), Decimal(12)),  # enterprise since local midnight
        (dt.datetime(2024, 3, 16, tzinfo=dt.UTC), Decimal(18)),  # still standard until 08:00
    ],
)
def test_usage_is_priced_by_the_plan_in_force_when_it_happened(change, price):
    organization = make_organization(time_zone=SH)
    subscribe(organization, [("standard", local(SH, 2023, 1, 1)), ("enterprise", change)])
    employment = hire(organization)
    # Past both allowances, at 03:00 local on the 16th (19:00 UTC on the 15th).
    usage(organization, "stream_minutes", 600_000, local(SH, 2024, 3, 16, 3), employment)

    rated = rating.rate(organization, MARCH)

    (stream,) = lines_of(rated, LineKind.STREAM_HOURS)
    assert stream.unit_price == price
    assert stream.amount == rating.money(stream.quantity * price)


def test_reversals_net_out_within_the_month(shanghai):
    employment = hire(shanghai)
    record = usage(shanghai, "stream_minutes", 60_000, local(SH, 2024, 3, 5), employment)
    usage(
        shanghai,
        "stream_minutes",
        -60_000,
        record.occurred_at,
        employment,
        reverses=record,
    )

    rated = rating.rate(shanghai, MARCH)

    assert lines_of(rated, LineKind.STREAM_HOURS) == []
    assert rated.total == Decimal("5088.00")  # the platform fee and its tax only


def test_a_hire_paid_in_another_currency_is_refused_by_name(shanghai):
    dollars = hire(shanghai, currency="USD", rate="280.00", name="Ada")
    usage(shanghai, "stream_minutes", 60, local(SH, 2024, 3, 5), dollars)

    with pytest.raises(RatingError) as refused:
        rating.rate(shanghai, MARCH)

    assert refused.value.code == "employment_currency"
    assert "Ada" in str(refused.value.detail)
    assert "USD" in str(refused.value.detail)


def test_an_unknown_usage_type_in_the_ledger_is_refused(shanghai):
    # Written past the ORM's choices, as a bad import straight into the table would.
    UsageRecord.objects.create(
        organization=shanghai,
        source_id="bad:1",
        usage_type="teleports",
        quantity=Decimal(3),
        occurred_at=local(SH, 2024, 3, 5),
    )

    with pytest.raises(RatingError) as refused:
        rating.rate(shanghai, MARCH)

    assert refused.value.code == "unknown_usage_type"


def test_rating_writes_nothing_not_even_the_first_subscription(db):
    from ironbowl.billing.models import Statement, Subscription
    from tests import factories

    organization = factories.OrganizationFactory(plan="enterprise")

    zone = zoneinfo.ZoneInfo(organization.time_zone)
    rated = rating.rate(organization, rating.month_of(organization.created_at, zone))

    assert one(rated, LineKind.PLATFORM_FEE).unit_price == Decimal("38000.00")
    assert not Subscription.objects.for_organization(organization).exists()
    assert not Statement.objects.for_organization(organization).exists()


def test_allocate_splits_exactly_by_largest_remainder():
    shares = rating.allocate(10, {"a": 1, "b": 1, "c": 1})
    assert shares == {"a": 4, "b": 3, "c": 3}
    assert sum(rating.allocate(7, {None: 5, "x": 3, "y": 2}).values()) == 7
    assert rating.allocate(0, {"a": 3}) == {"a": 0}
