"""The seat-day ledger: one record per hire per local day it was active at any time, read from
its status history; append-only and idempotent; a seat increase mid-month is prorated by day.

Real: the services and the database; hires' histories are EmploymentTransition rows as the
lifecycle service writes them. Simulated: the clock (`now` passed in), and the transitions'
times (written directly rather than waiting for days to pass).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from avatars.models import Employment
from ironbowl.analytics.models import UsageRecord, UsageType
from ironbowl.billing import rating, seats, tasks
from ironbowl.billing.models import LineKind
from tenants.errors import DomainError
from tests.billing.conftest import hire, local, make_organization

pytestmark = pytest.mark.django_db

SH, NY = "Asia/Shanghai", "America/New_York"


def seat_days(organization):
    return list(
        UsageRecord.objects.for_organization(organization)
        .filter(usage_type=UsageType.SEAT_DAYS)
        .order_by("occurred_at", "source_id")
        .values_list("id", "source_id", "quantity", "unit_price", "occurred_at")
    )


def test_each_active_local_day_is_one_record_at_its_local_midnight(shanghai):
    employment = hire(shanghai, seats=3, rate="2500.00")

    appended = seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 2))

    assert appended == 2
    assert seat_days(shanghai) == [
        (
            seat_days(shanghai)[0][0],
            f"seat:{employment.pk}:2024-03-01",
            Decimal(3),
            Decimal("2500.00"),
            local(SH, 2024, 3, 1),
        ),
        (
            seat_days(shanghai)[1][0],
            f"seat:{employment.pk}:2024-03-02",
            Decimal(3),
            Decimal("2500.00"),
            local(SH, 2024, 3, 2),
        ),
    ]
    assert seat_days(shanghai)[0][4] == dt.datetime(2024, 2, 29, 16, tzinfo=dt.UTC)


def test_the_status_history_decides_which_days_count(new_york):
    # Active on the 3rd at 23:30 (local), suspended on the 5th at 00:10, back on the 8th at
    # 23:59, terminated on the 9th at noon.
    employment = hire(
        new_york,
        active_since=local(NY, 2024, 3, 3, 23, 30),
        history=[
            (local(NY, 2024, 3, 5, 0, 10), "suspended"),
            (local(NY, 2024, 3, 8, 23, 59), "active"),
            (local(NY, 2024, 3, 9, 12), "terminated"),
        ],
    )

    seats.record_seat_days(new_york, dt.date(2024, 3, 1), dt.date(2024, 3, 12))

    days = [source.rsplit(":", 1)[1] for _id, source, *_rest in seat_days(new_york)]
    assert days == ["2024-03-03", "2024-03-04", "2024-03-05", "2024-03-08", "2024-03-09"]
    assert employment.status == "terminated"
    # The 10th is 23 hours long (DST starts); the records sit at each local midnight.
    assert [at.astimezone(dt.UTC).hour for *_rest, at in seat_days(new_york)] == [5, 5, 5, 5, 5]


def test_recording_again_appends_nothing_and_changes_nothing(shanghai):
    hire(shanghai)
    seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 10))
    before = seat_days(shanghai)
    Employment.objects.for_organization(shanghai).update(seats=5, rate=Decimal("1.00"))

    again = seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 10))

    assert again == 0
    assert seat_days(shanghai) == before


def test_a_seat_increase_mid_month_is_billed_by_the_day(shanghai):
    employment = hire(shanghai, seats=1, rate="3100.00")
    seats.record_seat_days(shanghai, dt.date(2024, 3, 1), dt.date(2024, 3, 15))
    Employment.objects.for_organization(shanghai).filter(pk=employment.pk).update(seats=3)
    seats.record_seat_days(shanghai, dt.date(2024, 3, 16), dt.date(2024, 3, 31))

    rated = rating.rate(shanghai, dt.date(2024, 3, 1))

    (line,) = [line for line in rated.lines if line.kind == LineKind.SEATS]
    assert line.used == 15 * 1 + 16 * 3
    assert line.amount == Decimal(63 * 100)  # 63 seat-days × 3,100 / 31


@pytest.mark.parametrize(
    ("first", "last", "code"),
    [
        (dt.date(2024, 3, 5), dt.date(2024, 3, 1), "bad_range"),
        (dt.date(2024, 3, 1), dt.date(2099, 1, 1), "day_not_over"),
        (dt.date(2020, 1, 1), dt.date(2024, 1, 1), "range_too_long"),
    ],
)
def test_a_bad_range_is_refused_and_writes_nothing(shanghai, first, last, code):
    hire(shanghai)

    with pytest.raises(DomainError) as refused:
        seats.record_seat_days(shanghai, first, last)

    assert refused.value.code == code
    assert seat_days(shanghai) == []


def test_today_is_not_recorded_until_it_is_over(shanghai):
    hire(shanghai)
    now = local(SH, 2024, 3, 10, 23, 59)

    with pytest.raises(DomainError):
        seats.record_seat_days(shanghai, dt.date(2024, 3, 10), dt.date(2024, 3, 10), now=now)
    recent = seats.record_recent_seat_days(shanghai, now)

    assert recent == seats.LOOKBACK_DAYS
    assert seat_days(shanghai)[-1][1].endswith("2024-03-09")


def test_the_hourly_task_records_every_organization_and_survives_a_bad_one(shanghai):
    hire(shanghai)
    other = make_organization(time_zone=NY)
    hire(other)
    broken = make_organization()
    hire(broken)
    # A time zone the database holds but zoneinfo does not know: that organization fails.
    type(broken).objects.filter(pk=broken.pk).update(time_zone="Mars/Olympus_Mons")

    outcome = tasks.record_seat_days()

    assert outcome == {"done": 2 * seats.LOOKBACK_DAYS, "failed": 1}
    assert len(seat_days(shanghai)) == len(seat_days(other)) == seats.LOOKBACK_DAYS
